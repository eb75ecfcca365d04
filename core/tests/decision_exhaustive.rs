//! Exhaustive check of the split brain resolver's decision rule for 3 and 4 members (issue 12).
//!
//! The resolver decides on a side made of the members that have seen a version made after the
//! stable period (the confirmation round); everyone else counts as the other side
//! ([`Partition::for_decision`]). Two leaders cut off from each other therefore decide on
//! disjoint sides. The safety of the whole scheme rests on one property of the decision table,
//! checked here for every case: **two disjoint sides never both survive**, for every strategy
//! and setting, every mix of member statuses, and views that differ as two sides' views can
//! (a member's status may have moved further on one side than on the other; ages agree).
//!
//! Tried first: the `stateright` model checker over whole nodes. The state space of even three
//! `Node`s with timers is far beyond what it explores in minutes, and a model of the protocol
//! written for it would check the model rather than this code. The decision rule is the part
//! whose every case can be enumerated, so it is enumerated directly, on the real code.

use fjell_core::member::{AppVersion, Member, MemberStatus, Role, RoleSet};
use fjell_core::testing::downing::{Decision, Partition, Strategy};
use fjell_core::testing::gossip::Gossip;
use fjell_core::{testing::leader, UniqueAddress};

type G = Gossip<8, 16>;

fn addr(i: usize) -> UniqueAddress {
    UniqueAddress::new(([10, 0, 0, i as u8 + 1], 7355).into(), 100 + i as u64)
}

/// Statuses a member can have in the state both sides shared before they were cut off: all
/// but Removed (gone from the state) and ReadyForShutdown (it acts as PreparingForShutdown
/// does in every strategy).
fn statuses() -> Vec<MemberStatus> {
    MemberStatus::ALL
        .into_iter()
        .filter(|s| !matches!(s, MemberStatus::Removed | MemberStatus::ReadyForShutdown))
        .collect()
}

/// A side's view: every member with its status here, and `ours` (the members that have seen
/// this side's confirmation) marked seen. Member `i` is `i`-th oldest; `backend` marks members
/// with the role.
fn view(statuses: &[MemberStatus], ours: u32, backend: u32) -> G {
    let mut g = G::new();
    let role = Role::new("backend").unwrap();
    for (i, s) in statuses.iter().enumerate() {
        let mut roles = RoleSet::new();
        if backend & (1 << i) != 0 {
            roles.insert(role).unwrap();
        }
        let mut m = Member::joining(addr(i), roles, AppVersion::default());
        m.status = *s;
        if !matches!(s, MemberStatus::Joining | MemberStatus::WeaklyUp) {
            m.up_number = std::num::NonZeroU32::new(i as u32 + 1);
        }
        g.add_member(m).unwrap();
        if ours & (1 << i) != 0 {
            g.add_seen(addr(i));
        }
    }
    g
}

/// Whether a leader in this view keeps its side and downs (some of) the other.
fn survives(g: &G, strategy: &Strategy) -> bool {
    let p = Partition::for_decision(g, |a| g.seen_by(a));
    p.decide(strategy) == Decision::DownUnreachable
}

/// Statuses a serving leader can have.
fn serving(s: MemberStatus) -> bool {
    matches!(
        s,
        MemberStatus::Up
            | MemberStatus::WeaklyUp
            | MemberStatus::Leaving
            | MemberStatus::PreparingForShutdown
    )
}

fn strategies(n: usize) -> Vec<Strategy> {
    let backend = Some(Role::new("backend").unwrap());
    let mut v = vec![
        Strategy::KeepMajority { role: None },
        Strategy::KeepMajority { role: backend },
        Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        },
        Strategy::KeepOldest {
            down_if_alone: false,
            role: None,
        },
        Strategy::KeepOldest {
            down_if_alone: true,
            role: backend,
        },
        Strategy::DownAll,
    ];
    for q in 1..=n as u32 {
        v.push(Strategy::StaticQuorum {
            size: q,
            role: None,
        });
        v.push(Strategy::StaticQuorum {
            size: q,
            role: backend,
        });
    }
    v
}

/// Whether a shared state can exist: members are numbered in age order, and up-numbers are
/// handed out in that order, so no member younger than one still Joining or WeaklyUp is Up.
fn possible(s: &[MemberStatus]) -> bool {
    let unnumbered = |x: &MemberStatus| matches!(x, MemberStatus::Joining | MemberStatus::WeaklyUp);
    match s.iter().position(unnumbered) {
        Some(i) => s[i..].iter().all(unnumbered),
        None => true,
    }
}

/// The leader's actions on convergence: Joining and WeaklyUp members become Up, Leaving
/// members Exiting.
fn converge(s: &mut [MemberStatus]) {
    for x in s.iter_mut() {
        *x = match *x {
            MemberStatus::Joining | MemberStatus::WeaklyUp => MemberStatus::Up,
            MemberStatus::Leaving => MemberStatus::Exiting,
            other => other,
        };
    }
}

/// A change one side can make on its own, without convergence: 0 none, 1 leave, 2 Joining
/// to WeaklyUp. `None` if it does not apply to `s`. (Down is in the shared state only: see
/// the module docs.)
fn local_change(s: MemberStatus, change: usize) -> Option<MemberStatus> {
    match (change, s) {
        (0, s) => Some(s),
        (1, MemberStatus::Up) => Some(MemberStatus::Leaving),
        (2, MemberStatus::Joining) => Some(MemberStatus::WeaklyUp),
        _ => None,
    }
}

/// Every pair of views two sides can hold after being cut off from each other. They shared a
/// state that everyone had seen. During a partition neither side converges (the other side's
/// members are unreachable and neither Down nor Exiting), so from there each view moved only
/// by changes that need no convergence (leave, down, WeaklyUp), except that the leader's
/// actions on the last convergence may have reached one side and not the other.
///
/// The leader's actions are in the leader's own view: they can have reached only side a if
/// that leader is on side a or on neither side, and likewise for b. `f` gets the two views
/// which side the last convergence reached only (0 both, 1 side a, 2 side b) and the shared
/// state's leader (by member index).
fn view_pairs(
    n: usize,
    statuses: &[MemberStatus],
    f: &mut impl FnMut(&[MemberStatus], &[MemberStatus], usize, usize),
) {
    let k = statuses.len();
    let mut shared = vec![MemberStatus::Up; n];
    for code in 0..k.pow(n as u32) {
        let mut c = code;
        for x in shared.iter_mut() {
            *x = statuses[c % k];
            c /= k;
        }
        if !possible(&shared) {
            continue;
        }
        let mut converged = shared.clone();
        converge(&mut converged);
        let Some(leader) = leader::leader(&view(&shared, 0, 0), &addr(0)) else {
            continue;
        };
        let leader = (0..n).find(|i| addr(*i) == leader).expect("a member");
        // The last convergence's actions reached: neither side, side a, or side b.
        for reached in 0..3 {
            let base_a = if reached == 1 { &converged } else { &shared };
            let base_b = if reached == 2 { &converged } else { &shared };
            for_each_local(base_a, &mut |a| {
                for_each_local(base_b, &mut |b| f(a, b, reached, leader));
            });
        }
    }
}

/// Calls `f` with every view `base` can move to by local changes.
fn for_each_local(base: &[MemberStatus], f: &mut impl FnMut(&[MemberStatus])) {
    let n = base.len();
    let mut v = base.to_vec();
    'next: for code in 0..3usize.pow(n as u32) {
        let mut c = code;
        for i in 0..n {
            match local_change(base[i], c % 3) {
                Some(s) => v[i] = s,
                None => continue 'next,
            }
            c /= 3;
        }
        f(&v);
    }
}

/// Checks every case for `n` members with `statuses`, role masks `backends`; returns how many
/// (view pair, strategy) cases were checked.
fn check(n: usize, statuses: &[MemberStatus], backends: &[u32]) -> u64 {
    let all_strategies = strategies(n);
    let mut cases = 0u64;
    let sides = 3usize.pow(n as u32);
    view_pairs(n, statuses, &mut |sa, sb, reached, leader| {
        for &backend in backends {
            let strategies: Vec<&Strategy> = all_strategies
                .iter()
                .filter(|s| backend != 0 || !has_role(s))
                .collect();
            // Each member is on side a, side b, or cut off from both.
            for code in 0..sides {
                let (mut a, mut b, mut c) = (0u32, 0u32, code);
                for i in 0..n {
                    match c % 3 {
                        1 => a |= 1 << i,
                        2 => b |= 1 << i,
                        _ => {}
                    }
                    c /= 3;
                }
                let leads = |side: u32, s: &[MemberStatus]| {
                    (0..n).any(|i| side & (1 << i) != 0 && serving(s[i]))
                };
                if !leads(a, sa) || !leads(b, sb) {
                    continue;
                }
                // Actions of the last convergence that reached one side only: their leader is
                // not on the side they missed.
                let missed = [0, b, a][reached];
                if missed & (1 << leader) != 0 {
                    continue;
                }
                let (ga, gb) = (view(sa, a, backend), view(sb, b, backend));
                for st in &strategies {
                    cases += 1;
                    assert!(
                        !(survives(&ga, st) && survives(&gb, st)),
                        "both sides survive: {st:?}, sides {a:#b} / {b:#b}, statuses \
                         {sa:?} / {sb:?}, backends {backend:#b}"
                    );
                }
            }
        }
    });
    cases
}

fn has_role(s: &Strategy) -> bool {
    matches!(
        s,
        Strategy::KeepMajority { role: Some(_) }
            | Strategy::KeepOldest { role: Some(_), .. }
            | Strategy::StaticQuorum { role: Some(_), .. }
    )
}

#[test]
fn two_disjoint_sides_never_both_survive_with_three_members() {
    let backends: Vec<u32> = (0..8).collect();
    let cases = check(3, &statuses(), &backends);
    eprintln!("{cases} cases");
    assert!(cases > 100_000, "{cases} cases");
}

#[test]
fn two_disjoint_sides_never_both_survive_with_four_members() {
    // Fewer statuses and role layouts, to stay within seconds: WeaklyUp behaves as Joining
    // and the shutdown statuses as Up in every strategy.
    let statuses = [
        MemberStatus::Joining,
        MemberStatus::Up,
        MemberStatus::Leaving,
        MemberStatus::Exiting,
        MemberStatus::Down,
    ];
    let cases = check(4, &statuses, &[0, 0b0011, 0b0101, 0b1000]);
    eprintln!("{cases} cases");
    assert!(cases > 1_000_000, "{cases} cases");
}
