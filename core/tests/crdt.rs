//! Property tests: gossip merge is a state CRDT (commutative, associative, idempotent), and
//! encoding round-trips, on generated states that satisfy the gossip invariants.

use fjell_core::gossip::Gossip;
use fjell_core::member::{AppVersion, Member, MemberStatus, RoleSet};
use fjell_core::reachability::{Reachability, ReachabilityStatus};
use fjell_core::wire::{self, Message, Outgoing};
use fjell_core::{Instant, UniqueAddress};
use proptest::prelude::*;

type G = Gossip<8, 32>;

const STATUSES: [MemberStatus; 8] = [
    MemberStatus::Joining,
    MemberStatus::WeaklyUp,
    MemberStatus::Up,
    MemberStatus::Leaving,
    MemberStatus::Exiting,
    MemberStatus::Down,
    MemberStatus::PreparingForShutdown,
    MemberStatus::ReadyForShutdown,
];

fn n(i: usize) -> UniqueAddress {
    UniqueAddress::new(([10, 0, 0, i as u8 + 1], 7355).into(), 100 + i as u64)
}

/// Nodes 0..3 are members of every generated state (they observe and are observed); nodes
/// 3..6 may be members, absent, or tombstoned.
#[derive(Debug, Clone)]
struct Spec {
    core: [(usize, u32, u16); 3],
    extra: [u8; 3], // 0 absent, 1 member, 2 tombstoned
    extra_member: [(usize, u32, u16); 3],
    tomb_age: [u16; 3],
    clock: [u8; 6],
    seen: u8,
    reach_prefix: [u8; 3],
}

fn member_spec() -> impl Strategy<Value = (usize, u32, u16)> {
    (0..STATUSES.len(), 1u32..6, 0u16..3)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        [member_spec(), member_spec(), member_spec()],
        [0u8..3, 0u8..3, 0u8..3],
        [member_spec(), member_spec(), member_spec()],
        [0u16..50, 0u16..50, 0u16..50],
        [0u8..4, 0u8..4, 0u8..4, 0u8..4, 0u8..4, 0u8..4],
        any::<u8>(),
        [0u8..5, 0u8..5, 0u8..5],
    )
        .prop_map(
            |(core, extra, extra_member, tomb_age, clock, seen, reach_prefix)| Spec {
                core,
                extra,
                extra_member,
                tomb_age,
                clock,
                seen,
                reach_prefix,
            },
        )
}

/// Observer `o`'s k-th reachability change: a fixed global history, so two states holding the
/// same observer version hold the same rows (only an observer writes its own rows).
fn history(o: usize, k: usize) -> (usize, ReachabilityStatus) {
    let subject = (o + 1 + k) % 3;
    let status = [
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Reachable,
        ReachabilityStatus::Unreachable,
        ReachabilityStatus::Terminated,
        ReachabilityStatus::Reachable,
    ][k % 5];
    (subject, status)
}

fn build(s: &Spec) -> G {
    let mut g = G::new();
    let add = |g: &mut G, i: usize, (st, up, ver): (usize, u32, u16)| {
        let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::new(ver, 0, 0));
        m.status = STATUSES[st];
        m.up_number = up;
        g.add_member(m).unwrap();
    };
    for i in 0..3 {
        add(&mut g, i, s.core[i]);
    }
    for k in 0..3 {
        if s.extra[k] == 1 {
            add(&mut g, 3 + k, s.extra_member[k]);
        }
    }
    // Reachability built through the public API, then copied in via a merge.
    let mut r = Reachability::<8, 32>::new();
    for o in 0..3 {
        for k in 0..s.reach_prefix[o] as usize {
            let (subj, st) = history(o, k);
            r.change(n(o), n(subj), st).unwrap();
        }
    }
    let mut with_r = g.clone();
    with_r.set_reachability_for_tests(r);
    let mut g = with_r;
    for i in 0..6 {
        if g.is_member(&n(i)) {
            for _ in 0..s.clock[i] {
                g.bump(n(i), false).unwrap();
            }
        }
    }
    for i in 0..6 {
        if s.seen & (1 << i) != 0 {
            g.add_seen(n(i));
        }
    }
    for k in 0..3 {
        if s.extra[k] == 2 {
            // A tombstone for a node that is not a member.
            g.remove_member(
                &n(3 + k),
                Instant::from_millis(1_000 + u64::from(s.tomb_age[k])),
            );
        }
    }
    g.check_invariants().unwrap();
    g
}

fn merge(a: &G, b: &G) -> G {
    let mut out = G::new();
    out.merge_from(a, b).unwrap();
    out.check_invariants().unwrap();
    out
}

/// The replicated state without the seen set. The seen set annotates one version ("who has
/// seen exactly this"); it is not part of the lattice (Pekko resets it on every concurrent
/// merge, as fjell does), so the CRDT laws are stated for everything else.
fn lattice(g: &G) -> G {
    let mut g = g.clone();
    g.clear_seen_for_tests();
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn merge_is_commutative(a in spec(), b in spec()) {
        let (a, b) = (build(&a), build(&b));
        // Commutative including the seen set.
        prop_assert_eq!(merge(&a, &b), merge(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in spec(), b in spec(), c in spec()) {
        let (a, b, c) = (build(&a), build(&b), build(&c));
        prop_assert_eq!(lattice(&merge(&merge(&a, &b), &c)), lattice(&merge(&a, &merge(&b, &c))));
    }

    #[test]
    fn merge_is_idempotent(a in spec(), b in spec()) {
        let (a, b) = (build(&a), build(&b));
        // Idempotent including the seen set.
        prop_assert_eq!(merge(&a, &a), a.clone());
        let ab = merge(&a, &b);
        prop_assert_eq!(lattice(&merge(&ab, &b)), lattice(&ab));
    }

    #[test]
    fn merged_state_dominates_both_sides(a in spec(), b in spec()) {
        use fjell_core::vclock::Causality::*;
        let (a, b) = (build(&a), build(&b));
        let m = merge(&a, &b);
        for side in [&a, &b] {
            // Entries dropped by tombstones aside, the merge is never older than either side.
            if side.tombstones().iter().all(|t| m.tombstones().iter().any(|x| x.address == t.address))
                && side.members().iter().all(|x| m.is_member(&x.address)) {
                prop_assert!(matches!(m.compare(side), Same | After));
            }
        }
    }

    #[test]
    fn equal_versions_union_their_seen_sets(a in spec(), seen in any::<u8>()) {
        let a = build(&a);
        let mut b = a.clone();
        for i in 0..6 {
            if seen & (1 << i) != 0 {
                b.add_seen(n(i));
            }
        }
        let m = merge(&a, &b);
        for x in a.seen().iter().chain(b.seen()) {
            prop_assert!(m.seen_by(x));
        }
    }

    #[test]
    fn gossip_round_trips_through_the_wire(a in spec()) {
        let g = build(&a);
        let mut buf = vec![0u8; 4096];
        let now = Instant::from_millis(60_000);
        let len = wire::encode(&Outgoing::Gossip { from: n(0), to: n(1) }, &g, now, &mut buf).unwrap();
        let mut back = G::new();
        let msg = wire::decode(&buf[..len], &mut back, now).unwrap();
        prop_assert_eq!(msg, Message::Gossip { from: n(0), to: n(1) });
        // Tombstone times survive at millisecond resolution (ages, not instants, travel).
        prop_assert_eq!(back, g);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut scratch = G::new();
        let _ = wire::decode(&bytes, &mut scratch, Instant::ZERO);
        let mut framed = vec![wire::MAGIC, wire::PROTOCOL_VERSION];
        framed.extend_from_slice(&bytes);
        if let Ok(Message::Gossip { .. } | Message::Welcome { .. }) = wire::decode(&framed, &mut scratch, Instant::ZERO) {
            prop_assert!(scratch.check_invariants().is_ok());
        }
    }
}
