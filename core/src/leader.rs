//! The leader: derived from the gossip on every node, never elected, and the actions it takes.
//!
//! Every node computes the same leader from the same gossip, so no election protocol is needed.
//! Most leader actions run only at convergence, when every node that matters has seen the same
//! state; that is what keeps two leaders on two sides of a partition from both acting.

use crate::buf::Buf;
use core::num::NonZeroU32;
use core::time::Duration;

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus, Role, MAX_UP_NUMBER};
use crate::reachability::ReachabilityStatus;
use crate::time::Instant;

/// The leader among members accepted by `filter` (notes §7.1).
///
/// Candidates are members that may lead (`leader-eligible`; where none is a candidate there
/// is no leader) that are not Down and that no (non-Down) observer flags (Pekko also
/// counts Down observers, whose stale verdicts then keep a healthy node from leading), with
/// `self_node` always counting as reachable for itself. The first candidate in address order
/// whose status is Up, Leaving, PreparingForShutdown or ReadyForShutdown leads; if none, the
/// lowest by (WeaklyUp, Joining, Exiting), so a bootstrapping Joining node leads itself.
pub fn leader_among<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    self_node: &UniqueAddress,
    filter: impl Fn(&Member) -> bool,
) -> Option<UniqueAddress> {
    among(g, self_node, &filter)
}

/// [`leader_among`] for any filter: one copy of the rule, not one for each caller's closure
/// (six of them cost 3 kB of a device's flash).
#[inline(never)]
fn among<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    self_node: &UniqueAddress,
    filter: &dyn Fn(&Member) -> bool,
) -> Option<UniqueAddress> {
    let reachable = |m: &Member| {
        m.address == *self_node
            || g.reachability.is_empty()
            || g.reachability_of(&m.address) == ReachabilityStatus::Reachable
    };
    let candidate = |m: &&Member| {
        m.leader_eligible && m.status != MemberStatus::Down && filter(m) && reachable(m)
    };
    if let Some(m) = g
        .members
        .iter()
        .filter(candidate)
        .find(|m| m.status.counts_for_convergence())
    {
        return Some(m.address);
    }
    let rank = |s: MemberStatus| match s {
        MemberStatus::WeaklyUp => 0,
        MemberStatus::Joining => 1,
        _ => 2,
    };
    g.members
        .iter()
        .filter(candidate)
        .min_by_key(|m| (rank(m.status), m.address))
        .map(|m| m.address)
}

/// The cluster leader as `self_node` sees it.
pub fn leader<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    self_node: &UniqueAddress,
) -> Option<UniqueAddress> {
    leader_among(g, self_node, |_| true)
}

/// The leader among members with `role`.
pub fn role_leader<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    self_node: &UniqueAddress,
    role: &str,
) -> Option<UniqueAddress> {
    leader_among(g, self_node, |m| m.has_role(role))
}

/// The minimum member counts the leader waits for before moving anyone Up.
#[derive(Debug, Clone, Copy)]
pub struct UpRequirements<'a> {
    /// `min-nr-of-members`.
    pub min_members: u32,
    /// Per-role minimums.
    pub role_minimums: &'a [(Role, u32)],
    /// A full-cluster shutdown is in progress: nobody is moved up.
    pub preparing_for_shutdown: bool,
}

impl UpRequirements<'_> {
    /// True if the gossip has enough members (of any status) overall and per role.
    pub fn met<const M: usize, const R: usize>(&self, g: &Gossip<M, R>) -> bool {
        !self.preparing_for_shutdown
            && g.members.len() as u64 >= u64::from(self.min_members)
            && self.role_minimums.iter().all(|(role, min)| {
                g.members
                    .iter()
                    .filter(|m| m.has_role(role.as_str()))
                    .count() as u64
                    >= u64::from(*min)
            })
    }
}

/// What the convergence actions changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderOutcome {
    /// Members moved to Up.
    pub moved_up: u32,
    /// Members moved Leaving → Exiting.
    pub exiting: u32,
    /// Members moved PreparingForShutdown → ReadyForShutdown.
    pub ready_for_shutdown: u32,
    /// Members removed.
    pub removed: u32,
    /// Members that were due for removal but wait: their tombstones would push out tombstones
    /// younger than `keep_tombstones` (see [`actions_on_convergence`]).
    pub deferred: u32,
}

impl LeaderOutcome {
    /// True if the gossip changed.
    pub fn changed(&self) -> bool {
        self.moved_up + self.exiting + self.ready_for_shutdown + self.removed > 0
    }
}

/// The leader's actions at convergence (notes §7.3), applied to `g` in place.
///
/// Removes Down and Exiting members that are unreachable or have confirmed they stopped
/// (`departed`) — unconfirmed Down members only when `keep_down` is false (the down-removal
/// margin has passed); moves Joining/WeaklyUp to Up when the requirements are met, handing out
/// up-numbers in address order after the youngest current one; Leaving → Exiting;
/// PreparingForShutdown → ReadyForShutdown. Does not bump the clock: the caller does, once.
///
/// A removal needs a tombstone, and the table holds `M`: a member waits (Down or Exiting,
/// counted in [`LeaderOutcome::deferred`]) rather than push out a tombstone younger than
/// `keep_tombstones`. A tombstone keeps a stale copy of the state (a message long in flight)
/// from bringing its member back, so it must outlive any such copy.
pub fn actions_on_convergence<const M: usize, const R: usize>(
    g: &mut Gossip<M, R>,
    now: Instant,
    req: &UpRequirements<'_>,
    departed: &[UniqueAddress],
    keep_down: bool,
    keep_tombstones: Duration,
) -> LeaderOutcome {
    let mut out = LeaderOutcome::default();
    // Removals first (collected, then applied, so indices stay valid).
    let mut doomed: Buf<UniqueAddress, M> = Buf::new();
    for m in &g.members {
        let confirmed = departed.contains(&m.address);
        let unreachable = !g.reachability().is_reachable(&m.address);
        let gone = match m.status {
            MemberStatus::Exiting => confirmed || unreachable,
            MemberStatus::Down => confirmed || (unreachable && !keep_down),
            _ => false,
        };
        if gone {
            let _ = doomed.push(m.address);
        }
    }
    let room = g.tombstone_room(now, keep_tombstones);
    if doomed.len() > room {
        out.deferred = (doomed.len() - room) as u32;
        doomed.truncate(room);
    }
    let up_ok = req.met(g);
    let mut next_up = g
        .members
        .iter()
        .map(|m| m.up_number.map_or(0, NonZeroU32::get))
        .max()
        .unwrap_or(0);
    for m in g.members.iter_mut() {
        if doomed.contains(&m.address) {
            continue;
        }
        match m.status {
            MemberStatus::Joining | MemberStatus::WeaklyUp if up_ok => {
                next_up = next_up.saturating_add(1).min(MAX_UP_NUMBER);
                m.status = MemberStatus::Up;
                m.up_number = NonZeroU32::new(next_up);
                out.moved_up += 1;
            }
            MemberStatus::Leaving => {
                m.status = MemberStatus::Exiting;
                out.exiting += 1;
            }
            MemberStatus::PreparingForShutdown => {
                m.status = MemberStatus::ReadyForShutdown;
                out.ready_for_shutdown += 1;
            }
            _ => {}
        }
    }
    for a in &doomed {
        g.remove_member(a, now);
        out.removed += 1;
    }
    out
}

/// Joining → WeaklyUp for reachable joiners, used when convergence has been missing for
/// `allow-weakly-up-members`. Returns how many moved.
pub fn weakly_up<const M: usize, const R: usize>(
    g: &mut Gossip<M, R>,
    req: &UpRequirements<'_>,
) -> u32 {
    if !req.met(g) {
        return 0;
    }
    let mut moved = 0;
    let eligible: Buf<UniqueAddress, M> = g
        .members
        .iter()
        .filter(|m| {
            m.status == MemberStatus::Joining
                && g.reachability_of(&m.address) == ReachabilityStatus::Reachable
        })
        .map(|m| m.address)
        .collect();
    for a in &eligible {
        if let Some(m) = g.member_mut(a) {
            m.status = MemberStatus::WeaklyUp;
            moved += 1;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, RoleSet};

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    fn with(members: &[(u8, MemberStatus)]) -> G {
        let mut g = G::new();
        for (i, s) in members {
            let mut m = Member::joining(n(*i), RoleSet::new(), AppVersion::default());
            m.status = *s;
            g.add_member(m).unwrap();
        }
        g
    }

    const REQ: UpRequirements<'static> = UpRequirements {
        min_members: 1,
        role_minimums: &[],
        preparing_for_shutdown: false,
    };

    #[test]
    fn leader_is_first_up_member_by_address() {
        use MemberStatus::*;
        assert_eq!(
            leader(&with(&[(1, Joining), (2, Up), (3, Up)]), &n(1)),
            Some(n(2))
        );
        assert_eq!(
            leader(&with(&[(1, Joining), (2, WeaklyUp)]), &n(1)),
            Some(n(2))
        );
        assert_eq!(
            leader(&with(&[(3, Joining), (2, Joining)]), &n(3)),
            Some(n(2))
        );
        assert_eq!(leader(&with(&[(1, Down), (2, Exiting)]), &n(1)), Some(n(2)));
        assert_eq!(leader(&with(&[(1, Down)]), &n(1)), None);
    }

    #[test]
    fn unreachable_members_do_not_lead_except_for_themselves() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Up)]);
        g.change_reachability_for_tests(n(2), n(1), ReachabilityStatus::Unreachable)
            .unwrap();
        assert_eq!(leader(&g, &n(2)), Some(n(2)));
        assert_eq!(leader(&g, &n(1)), Some(n(1)));
    }

    #[test]
    fn up_numbers_are_assigned_in_address_order_after_the_youngest() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Joining), (3, WeaklyUp), (4, Leaving)]);
        g.member_mut(&n(1)).unwrap().up_number = NonZeroU32::new(7);
        let out = actions_on_convergence(&mut g, Instant::ZERO, &REQ, &[], false, Duration::ZERO);
        assert_eq!(out.moved_up, 2);
        assert_eq!(g.member(&n(2)).unwrap().up_number, NonZeroU32::new(8));
        assert_eq!(g.member(&n(3)).unwrap().up_number, NonZeroU32::new(9));
        assert_eq!(g.member(&n(4)).unwrap().status, Exiting);
    }

    #[test]
    fn min_members_and_role_minimums_gate_up() {
        use MemberStatus::*;
        let mut g = with(&[(1, Joining), (2, Joining)]);
        let req = UpRequirements {
            min_members: 3,
            ..REQ
        };
        assert_eq!(
            actions_on_convergence(&mut g, Instant::ZERO, &req, &[], false, Duration::ZERO)
                .moved_up,
            0
        );
        let roles = [(Role::new("backend").unwrap(), 1)];
        let req = UpRequirements {
            role_minimums: &roles,
            ..REQ
        };
        assert_eq!(
            actions_on_convergence(&mut g, Instant::ZERO, &req, &[], false, Duration::ZERO)
                .moved_up,
            0
        );
        assert_eq!(
            actions_on_convergence(&mut g, Instant::ZERO, &REQ, &[], false, Duration::ZERO)
                .moved_up,
            2
        );
    }

    #[test]
    fn down_and_exiting_removed_only_when_unreachable_or_departed() {
        use MemberStatus::*;
        let mut g = with(&[(1, Up), (2, Down), (3, Exiting), (4, Down)]);
        g.change_reachability_for_tests(n(1), n(2), ReachabilityStatus::Unreachable)
            .unwrap();
        let out =
            actions_on_convergence(&mut g, Instant::ZERO, &REQ, &[n(3)], false, Duration::ZERO);
        assert_eq!(out.removed, 2);
        assert!(
            g.is_member(&n(4)),
            "a reachable Down member must stop itself first"
        );
        assert!(g.is_tombstoned(&n(2)) && g.is_tombstoned(&n(3)));
        g.check_invariants().unwrap();
    }
}
