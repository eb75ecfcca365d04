//! Property test: every wire message kind, with arbitrary field values (and arbitrary valid
//! gossip for the kinds that carry one), emits and parses back to the same message, and the
//! parse consumes exactly what was emitted.

use core::time::Duration;

use fjell_core::capacity::Capacity;
use fjell_core::compat::{DowningSetting, Incompatibility};
use fjell_core::config::{Config, Downing, DowningSettings, Name, Value, WhenUnstable};
use fjell_core::member::{AppVersion, Member, MemberStatus, Role, RoleSet};
use fjell_core::testing::gossip::Gossip;
use fjell_core::testing::wire::{
    Beat, BufferTooSmall, Compat, Echo, InScratch, Message, WireError,
};
use fjell_core::ReachabilityStatus;
use fjell_core::Strategy as Sbr;
use fjell_core::{Instant, UniqueAddress};
use fjell_sim::gen::{self, SPEC_LEN};
use proptest::prelude::*;
use proptest::sample::select;

type G = Gossip<16, 32>;

/// The decoding node's clock; tombstones are removed before it, at whole milliseconds (ages
/// travel in milliseconds).
const NOW_MS: u64 = 10_000_000;

fn address() -> impl Strategy<Value = UniqueAddress> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(core::net::IpAddr::from),
        any::<[u8; 16]>().prop_map(core::net::IpAddr::from),
    ];
    (ip, any::<u16>(), any::<u64>())
        .prop_map(|(ip, port, uid)| UniqueAddress::new((ip, port).into(), uid))
}

/// A string of at most `max` bytes from a few one- and multi-byte characters.
fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    let chars = select(vec!['a', 'z', '0', '-', '.', 'é', '☃', '\u{7f}']);
    proptest::collection::vec(chars, min..=max).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() <= max {
                s.push(c);
            }
        }
        s
    })
}

fn name() -> impl Strategy<Value = Name> {
    text(0, 32).prop_map(|s| Name::try_from(s.as_str()).unwrap())
}

fn role() -> impl Strategy<Value = Role> {
    text(1, 16).prop_map(|s| Role::new(&s).unwrap())
}

fn roles() -> impl Strategy<Value = RoleSet> {
    proptest::collection::vec(role(), 0..=3).prop_map(|rs| {
        let mut set = RoleSet::new();
        for r in rs {
            set.insert(r).unwrap();
        }
        set
    })
}

fn app_version() -> impl Strategy<Value = AppVersion> {
    any::<(u16, u16, u16)>().prop_map(|(a, b, c)| AppVersion::new(a, b, c))
}

/// A declared capacity: a node holds at least one member and one record. Often small, so
/// reachability tables get compacted.
fn capacity() -> impl Strategy<Value = Capacity> {
    let n = || prop_oneof![1..=8u16, 1..=u16::MAX];
    (n(), n()).prop_map(|(members, records)| Capacity { members, records })
}

fn duration() -> impl Strategy<Value = Duration> {
    (any::<u32>(), 0..1_000_000u32).prop_map(|(s, us)| {
        Duration::from_secs(u64::from(s)) + Duration::from_micros(u64::from(us))
    })
}

fn compat() -> impl Strategy<Value = Compat> {
    let strategy = prop_oneof![
        proptest::option::of(role()).prop_map(|role| Sbr::KeepMajority { role }),
        (any::<u32>(), proptest::option::of(role()))
            .prop_map(|(size, role)| Sbr::StaticQuorum { size, role }),
        (any::<bool>(), proptest::option::of(role())).prop_map(|(down_if_alone, role)| {
            Sbr::KeepOldest {
                down_if_alone,
                role,
            }
        }),
        Just(Sbr::DownAll),
        proptest::option::of(role()).prop_map(|role| Sbr::LeaseMajority { role }),
    ];
    let downing = prop_oneof![
        Just(Downing::Manual),
        strategy.prop_map(Downing::SplitBrainResolver),
        duration().prop_map(|after| Downing::UnsafeAutoDown { after }),
    ];
    let unstable = prop_oneof![
        Just(WhenUnstable::Off),
        Just(WhenUnstable::On),
        duration().prop_map(WhenUnstable::After),
    ];
    let settings = (
        downing,
        proptest::option::of(duration()),
        unstable,
        proptest::option::of(duration()),
        duration(),
        duration(),
    )
        .prop_map(
            |(downing, stable, unstable, margin, delay, release)| DowningSettings {
                downing,
                stable_after: stable,
                down_all_when_unstable: unstable,
                down_removal_margin: margin,
                acquire_lease_delay_for_minority: delay,
                lease_release_after: release,
            },
        );
    let pairs = proptest::collection::vec((name(), text(0, 32)), 0..=4);
    let flags = (any::<bool>(), any::<bool>());
    (name(), pairs, settings, flags, capacity()).prop_map(
        |(cluster_name, pairs, downing, (enforce_on_join, leader_eligible), capacity)| {
            let mut c = Config {
                cluster_name,
                downing,
                enforce_on_join,
                leader_eligible,
                ..Config::default()
            };
            for (k, v) in pairs {
                c.compat_settings
                    .push((k, Value::try_from(v.as_str()).unwrap()))
                    .unwrap();
            }
            Compat {
                capacity,
                ..Compat::of(&c)
            }
        },
    )
}

fn downing_setting() -> impl Strategy<Value = DowningSetting> {
    use DowningSetting::*;
    select(vec![
        Downing,
        AutoDownUnreachableAfter,
        QuorumSize,
        DownIfAlone,
        KeepMajorityRole,
        StaticQuorumRole,
        KeepOldestRole,
        LeaseMajorityRole,
        StableAfter,
        DownAllWhenUnstable,
        DownRemovalMargin,
        AcquireLeaseDelayForMinority,
        LeaseReleaseAfter,
    ])
}

fn incompatibility() -> impl Strategy<Value = Incompatibility> {
    prop_oneof![
        name().prop_map(|cluster| Incompatibility::ClusterName { cluster }),
        any::<(u8, u8)>()
            .prop_map(|(cluster, joiner)| Incompatibility::ProtocolVersion { cluster, joiner }),
        name().prop_map(|key| Incompatibility::SettingDiffers { key }),
        name().prop_map(|key| Incompatibility::SettingMissing { key }),
        downing_setting().prop_map(|setting| Incompatibility::DowningDiffers { setting }),
        Just(Incompatibility::Removed),
        (any::<u16>(), any::<u16>(), capacity()).prop_map(|(members, holds, joiner)| {
            Incompatibility::Capacity {
                members,
                holds,
                joiner,
            }
        }),
    ]
}

/// A member as gossip may hold it: never Removed, and numbered exactly when its status
/// requires (either way for statuses after Up).
fn member() -> impl Strategy<Value = Member> {
    let status = select(
        MemberStatus::ALL
            .into_iter()
            .filter(|s| *s != MemberStatus::Removed)
            .collect::<Vec<_>>(),
    );
    (
        address(),
        status,
        proptest::option::of(1..u32::MAX),
        roles(),
        app_version(),
        (capacity(), any::<bool>()),
    )
        .prop_map(
            |(address, status, number, roles, app_version, (capacity, lead))| {
                let numbered = match status {
                    MemberStatus::Joining | MemberStatus::WeaklyUp => false,
                    MemberStatus::Up
                    | MemberStatus::PreparingForShutdown
                    | MemberStatus::ReadyForShutdown => true,
                    _ => number.is_some(),
                };
                Member {
                    status,
                    up_number: if numbered {
                        core::num::NonZeroU32::new(number.unwrap_or(1))
                    } else {
                        None
                    },
                    capacity,
                    leader_eligible: lead,
                    ..Member::joining(address, roles, app_version)
                }
            },
        )
}

/// Arbitrary valid gossip: arbitrary members, clock counters, seen set, reachability changes
/// between members and tombstones (members removed at arbitrary times before [`NOW_MS`]).
fn arbitrary_gossip() -> impl Strategy<Value = G> {
    let reach = select(vec![
        ReachabilityStatus::Reachable,
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Terminated,
    ]);
    (
        proptest::collection::vec(member(), 0..12),
        proptest::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<bool>()), 0..12),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                reach,
                any::<bool>(),
            ),
            0..16,
        ),
        proptest::collection::vec((any::<prop::sample::Index>(), 0..NOW_MS), 0..4),
    )
        .prop_map(|(members, bumps, seen, changes, removals)| {
            let mut g = G::new();
            for m in members {
                g.add_member(m).unwrap();
            }
            let at = |g: &G, i: &prop::sample::Index| {
                let ms = g.members();
                (!ms.is_empty()).then(|| ms[i.index(ms.len())].address)
            };
            for (i, n, mark_seen) in &bumps {
                if let Some(a) = at(&g, i) {
                    for _ in 0..*n {
                        g.bump(a, *mark_seen).unwrap();
                    }
                }
            }
            for i in &seen {
                if let Some(a) = at(&g, i) {
                    g.add_seen(a);
                }
            }
            // As the protocol records them (compacting within the members' capacities, so
            // refusing some), or regardless of capacity.
            for (o, s, status, within_capacity) in &changes {
                if let (Some(o), Some(s)) = (at(&g, o), at(&g, s)) {
                    if *within_capacity {
                        let _ = g.observe(o, s, *status);
                    } else {
                        g.change_reachability_for_tests(o, s, *status).unwrap();
                    }
                }
            }
            for (i, removed_ms) in &removals {
                if let Some(a) = at(&g, i) {
                    g.remove_member(&a, Instant::from_millis(*removed_ms));
                }
            }
            g.check_invariants().unwrap();
            g
        })
}

/// Arbitrary gossip, or the structured states of [`fjell_sim::gen`] (long reachability
/// histories, tombstones next to members).
fn gossip() -> impl Strategy<Value = G> {
    prop_oneof![
        arbitrary_gossip(),
        any::<[u8; SPEC_LEN]>().prop_map(|b| gen::gossip::<16, 32>(&b)),
    ]
}

/// A message of any kind; a gossip kind's gossip is generated beside it.
fn message() -> impl Strategy<Value = Message> {
    let gossip = InScratch;
    prop_oneof![
        (address(), compat()).prop_map(|(from, compat)| Message::InitJoin { from, compat }),
        address().prop_map(|from| Message::InitJoinAck { from }),
        (address(), any::<bool>())
            .prop_map(|(from, member)| Message::InitJoinNack { from, member }),
        (address(), roles(), app_version(), compat()).prop_map(
            |(from, roles, app_version, compat)| Message::Join {
                from,
                roles,
                app_version,
                compat
            }
        ),
        (address(), address()).prop_map(move |(from, to)| Message::Welcome { from, to, gossip }),
        any::<(u64, u16, u64, u64, bool)>().prop_map(
            |(to_uid, from_index, version, seen, reply)| {
                Message::GossipStatus {
                    to_uid,
                    from_index,
                    version,
                    seen,
                    reply,
                }
            }
        ),
        (address(), address()).prop_map(move |(from, to)| Message::Gossip { from, to, gossip }),
        // `parse` applies a delta to the empty state: emitted whole, it rebuilds the gossip.
        (address(), address()).prop_map(move |(from, to)| Message::GossipDelta {
            from,
            to,
            gossip
        }),
        address().prop_map(|from| Message::Departed { from }),
        (address(), incompatibility())
            .prop_map(|(from, reason)| Message::JoinRefused { from, reason }),
        any::<u8>().prop_map(|version| Message::VersionRefused { version }),
        (any::<(u16, u16, u16, bool)>(), any::<Option<(u16, u16)>>()).prop_map(
            |((seq, sent, tag, reply), echo)| Message::Heartbeat(Beat {
                seq,
                sent,
                tag,
                reply,
                echo: echo.map(|(sent, held)| Echo { sent, held }),
            })
        ),
    ]
}

/// Every kind, by an exhaustive match: a new kind does not compile here until it is added,
/// and [`every_kind_is_generated`] then fails until [`message`] generates it.
fn kind_index(m: &Message) -> usize {
    match m {
        Message::InitJoin { .. } => 0,
        Message::InitJoinAck { .. } => 1,
        Message::InitJoinNack { .. } => 2,
        Message::Join { .. } => 3,
        Message::Welcome { .. } => 4,
        Message::GossipStatus { .. } => 5,
        Message::Gossip { .. } => 6,
        Message::Departed { .. } => 7,
        Message::JoinRefused { .. } => 8,
        Message::VersionRefused { .. } => 9,
        Message::Heartbeat { .. } => 10,
        Message::GossipDelta { .. } => 11,
    }
}

const KINDS: usize = 12;

#[test]
fn every_kind_is_generated() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = [false; KINDS];
    for _ in 0..1000 {
        let m = message().new_tree(&mut runner).unwrap().current();
        seen[kind_index(&m)] = true;
    }
    assert_eq!(seen, [true; KINDS]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Emit, then parse into a scratch holding other gossip: the same message, the same
    /// gossip, exactly `buffer_len` bytes, all of them consumed.
    #[test]
    fn every_message_round_trips(msg in message(), g in gossip(), stale in gossip()) {
        let now = Instant::from_millis(NOW_MS);
        let out = msg.clone().with_gossip(&g);
        let len = out.buffer_len(now);
        let mut buf = vec![0u8; len + 1];
        prop_assert_eq!(out.emit(now, &mut buf[..len - 1]), Err(BufferTooSmall));
        prop_assert_eq!(out.emit(now, &mut buf), Ok(len));
        prop_assert_eq!(buf[2], out.kind() as u8);

        let mut scratch = stale;
        let parsed = Message::parse(&buf[..len], &mut scratch, now);
        prop_assert_eq!(parsed.as_ref(), Ok(&msg));
        if matches!(msg, Message::Welcome { .. } | Message::Gossip { .. }) {
            prop_assert_eq!(&scratch, &g);
        }
        prop_assert_eq!(parsed.unwrap().with_gossip(&scratch), out);

        // Nothing may be missing or left over. A version refusal has no body and is read
        // whatever follows, so a later version may add one.
        prop_assert!(Message::parse(&buf[..len - 1], &mut scratch, now).is_err());
        if !matches!(msg, Message::VersionRefused { .. }) {
            prop_assert_eq!(
                Message::parse(&buf[..=len], &mut scratch, now),
                Err(WireError::TrailingBytes)
            );
        }
    }
}
