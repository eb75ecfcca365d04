//! Split brain resolver decisions (notes §11.4): given this node's view of who is reachable,
//! which side of a partition survives, and which members that means downing.
//!
//! The rules are pure functions of the gossip, so every case of every strategy is testable in
//! isolation. When to decide — the stable-after timer, down-all-when-unstable, the lease, acting
//! only as leader — lives in [`crate::resolver`].

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus, Role};
use crate::reachability::{ReachabilityStatus, Row};

/// A split brain resolver strategy (Pekko `split-brain-resolver.active-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The side with more members survives; equal halves: the side with the lowest address.
    KeepMajority {
        /// Count only members with this role.
        role: Option<Role>,
    },
    /// A side survives if it has at least `size` members.
    StaticQuorum {
        /// The quorum.
        size: u32,
        /// Count only members with this role.
        role: Option<Role>,
    },
    /// The side with the oldest member survives.
    KeepOldest {
        /// If the oldest is alone on its side, that side downs itself instead.
        down_if_alone: bool,
        /// Consider only members with this role.
        role: Option<Role>,
    },
    /// Every member is downed (for small clusters that prefer a restart to a guess).
    DownAll,
    /// The side that acquires a lease (a lock held outside the cluster) survives; the
    /// minority side waits a little before trying, so the majority usually wins. The driver
    /// must answer the node's [`crate::Node::poll_lease`] requests: until it does, this side
    /// does not act (down-all-when-unstable still applies).
    LeaseMajority {
        /// Count only members with this role when telling the minority.
        role: Option<Role>,
    },
}

impl Strategy {
    /// The strategy's configuration name.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::KeepMajority { .. } => "keep-majority",
            Strategy::StaticQuorum { .. } => "static-quorum",
            Strategy::KeepOldest { .. } => "keep-oldest",
            Strategy::DownAll => "down-all",
            Strategy::LeaseMajority { .. } => "lease-majority",
        }
    }
}

/// What this side should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// This side survives: down the unreachable members.
    DownUnreachable,
    /// This side loses: down the reachable members, this node included.
    DownReachable,
    /// Down every member.
    DownAll,
    /// Some members can reach only part of the cluster: down those (and whatever the strategy
    /// decides about the rest once their observations are set aside).
    DownIndirectlyConnected,
    /// The lease was lost after finding indirectly connected members: down those and this
    /// whole side.
    ReverseDownIndirectlyConnected,
}

impl Decision {
    /// What a side that wanted to act on `self` does when another side holds the lease.
    pub fn reverse(self) -> Decision {
        match self {
            Decision::DownUnreachable => Decision::DownReachable,
            Decision::DownIndirectlyConnected => Decision::ReverseDownIndirectlyConnected,
            other => other,
        }
    }
}

/// Statuses counted when sizing a side: not Joining, WeaklyUp, Down or Exiting.
fn counts(s: MemberStatus) -> bool {
    !matches!(
        s,
        MemberStatus::Joining | MemberStatus::WeaklyUp | MemberStatus::Down | MemberStatus::Exiting
    )
}

/// Statuses the resolver may down: every status but Down and Exiting.
pub fn downable(s: MemberStatus) -> bool {
    !matches!(s, MemberStatus::Down | MemberStatus::Exiting)
}

/// This node's view of a partition: for every member (by its index in the gossip), whether
/// observers that count flag it, and whether it is indirectly connected (reachable by some
/// members but not all).
///
/// Built in one pass over the reachability records, so deciding costs O(R log M + M) rather
/// than a pass over the records per member.
pub struct Partition<'a, const M: usize, const R: usize> {
    g: &'a Gossip<M, R>,
    unreachable: [bool; M],
    indirect: [bool; M],
    /// Members that count as unreachable because they are silent (see
    /// [`Partition::for_decision`]).
    silent: [bool; M],
    /// Members known not to be in contact with this side (see [`Partition::for_decision`]):
    /// they stay unreachable however the records are read.
    out_of_contact: [bool; M],
    /// Down members whose Down not every member has seen (see [`Partition::with_records`]).
    pending_down: [bool; M],
}

impl<'a, const M: usize, const R: usize> Partition<'a, M, R> {
    /// The partition as seen in `g`.
    pub fn of(g: &'a Gossip<M, R>) -> Self {
        Self::with_records(g, &|_| true)
    }

    /// The partition a decision acts on: as [`Partition::of`], and members this side counts as
    /// reachable but that are not `in_contact` (have not seen any version since the resolver's
    /// confirmation) are silent and taken as the other side: a side that wins downs them, a
    /// side that loses leaves them alone (they are most likely on the winning side, which a
    /// Down from here would reach once the network heals). Every member in contact with this
    /// side sees the confirmation within a bounded time, so silent members are cut off where no
    /// monitor of this side watches them, or too far behind to be counted on.
    pub fn for_decision(g: &'a Gossip<M, R>, in_contact: impl Fn(&UniqueAddress) -> bool) -> Self {
        let mut p = Self::of(g);
        for (i, m) in g.members().iter().enumerate() {
            if downable(m.status) && !in_contact(&m.address) {
                p.silent[i] = !p.unreachable[i];
                p.unreachable[i] = true;
                p.out_of_contact[i] = true;
            }
        }
        p
    }

    /// Which members are silent, by index (see [`Partition::for_decision`]).
    pub fn silent(&self) -> [bool; M] {
        self.silent
    }

    /// Whether some member is silent (see [`Partition::for_decision`]).
    pub fn has_silent(&self) -> bool {
        self.silent.iter().any(|x| *x)
    }

    /// The partition seen through the records accepted by `keep` only.
    fn with_records(g: &'a Gossip<M, R>, keep: &dyn Fn(&Row) -> bool) -> Self {
        let mut p = Partition {
            g,
            unreachable: [false; M],
            indirect: [false; M],
            silent: [false; M],
            out_of_contact: [false; M],
            pending_down: [false; M],
        };
        let mut observes = [false; M];
        let members = g.members();
        // A Down that some member has not seen yet leaves the member in the count, on the
        // other side: that member may be cut off together with the downed one and count it as
        // an ally. Excluding it here (as Pekko does) lets two sides size the cluster
        // differently, and both win, after a partition moved across the decision that downed
        // it. Once every member has seen the Down the leader removes it at convergence.
        let all_seen = members
            .iter()
            .filter(|m| downable(m.status))
            .all(|m| g.seen_by(&m.address));
        if !all_seen {
            for (i, m) in members.iter().enumerate() {
                if m.status == MemberStatus::Down {
                    p.pending_down[i] = true;
                    p.unreachable[i] = true;
                }
            }
        }
        let seen = g.seen_column();
        // Rows name members by index.
        for r in g.reachability.rows() {
            if r.status == ReachabilityStatus::Reachable || !keep(r) {
                continue;
            }
            let (o, s) = (usize::from(r.observer), usize::from(r.subject));
            // A downed node's stale verdicts do not count.
            if members[o].status == MemberStatus::Down {
                continue;
            }
            p.unreachable[s] = true;
            observes[o] = true;
            // A flagged node that has seen this very state is talking to someone.
            if seen[s] {
                p.indirect[o] = true;
                p.indirect[s] = true;
            }
        }
        // Observing someone unreachable while being flagged oneself: a cycle in the
        // unreachability graph, which clean partitions and crashes never produce.
        for ((ind, obs), unr) in p.indirect.iter_mut().zip(observes).zip(p.unreachable) {
            *ind |= obs && unr;
        }
        p
    }

    /// The same view without the records between two indirectly connected members and those
    /// involving non-downable ones: how the strategy sees the rest of the cluster once the
    /// links among the indirectly connected are set aside. Records from or about a member
    /// outside that group stay: dropping them would let a side count members it cannot reach
    /// (a member flagged by this side and observing a third is no ally).
    fn without_indirectly_connected(&self) -> Self {
        let g = self.g;
        let indirect = |i: u16| self.indirect[usize::from(i)];
        let downable_at = |i: u16| downable(g.members()[usize::from(i)].status);
        let mut rest = Self::with_records(g, &|r| {
            let (o, s) = (r.observer, r.subject);
            !(indirect(o) && indirect(s)) && downable_at(o) && downable_at(s)
        });
        // Setting records aside must not make a member this side has no contact with look
        // reachable: after a partition moved, stale records make members of the far side
        // indirectly connected, and without their records the strategy would count them here.
        for (i, out) in self.out_of_contact.iter().enumerate() {
            if *out {
                rest.unreachable[i] = true;
                rest.out_of_contact[i] = true;
            }
        }
        rest.silent = self.silent;
        rest
    }

    /// Whether the member at `index` counts when sizing sides: by its status, or as a Down
    /// member not every member has seen downed (counted on the other side).
    fn counts_at(&self, index: usize, m: &Member) -> bool {
        counts(m.status) || self.pending_down[index]
    }

    /// Whether the member at `index` may still be on the other side's roster: downable, or
    /// downed where not every member has seen it.
    fn opposes_at(&self, index: usize, m: &Member) -> bool {
        downable(m.status) || self.pending_down[index]
    }

    /// Whether the member at `index` is flagged unreachable.
    pub fn is_unreachable(&self, index: usize) -> bool {
        self.unreachable[index]
    }

    /// Whether the member at `index` is indirectly connected.
    pub fn is_indirectly_connected(&self, index: usize) -> bool {
        self.indirect[index]
    }

    /// Whether any member is indirectly connected.
    pub fn has_indirectly_connected(&self) -> bool {
        self.indirect.iter().any(|x| *x)
    }

    /// Whether some member that may be downed is flagged unreachable: the only time there is
    /// anything to decide.
    pub fn has_unreachable(&self) -> bool {
        self.members()
            .any(|(i, m)| self.unreachable[i] && downable(m.status))
    }

    fn members(&self) -> impl Iterator<Item = (usize, &'a Member)> + '_ {
        self.g.members().iter().enumerate()
    }

    /// Members that count (with `role`), as (index, member), in address order.
    fn counted(&self, role: Option<Role>) -> impl Iterator<Item = (usize, &'a Member)> + '_ {
        self.members()
            .filter(move |(i, m)| self.counts_at(*i, m) && has_role(m, role))
    }

    /// (reachable, unreachable) counts of counted members.
    fn sizes(&self, role: Option<Role>) -> (usize, usize) {
        let unreachable = self.counted(role).filter(|(i, _)| self.unreachable[*i]);
        let theirs = unreachable.count();
        (self.counted(role).count() - theirs, theirs)
    }

    /// Equal halves: the side holding the lowest counted address survives.
    fn lowest_is_here(&self, role: Option<Role>) -> bool {
        self.counted(role)
            .next()
            .is_some_and(|(i, _)| !self.unreachable[i])
    }

    /// Whether this side is the minority for lease-majority: fewer members, or equal halves
    /// without the lowest address.
    pub fn lease_minority(&self, role: Option<Role>) -> bool {
        let (ours, theirs) = self.sizes(role);
        theirs > ours || (theirs == ours && !self.lowest_is_here(role))
    }

    /// The decision of `strategy` on the side of the partition this gossip's owner is on.
    pub fn decide(&self, strategy: &Strategy) -> Decision {
        match self.decide_by_rule(strategy) {
            Decision::DownIndirectlyConnected if !self.survivors_hold(strategy) => {
                Decision::DownAll
            }
            d => d,
        }
    }

    /// Whether the members a `DownIndirectlyConnected` decision leaves serving on this side
    /// would win by the strategy's own rule against every member that could form another side:
    /// all but them and the members it downs that are in contact with this side (they hear of
    /// it and stop). The strategy judged the rest with the indirectly connected counted as
    /// reachable: after a partition moved, nearly everyone can be indirectly connected, and a
    /// side of one could otherwise keep itself against eight (seed 51998). A side that keeps
    /// nobody passes.
    fn survivors_hold(&self, strategy: &Strategy) -> bool {
        let downed = self.to_down(strategy, Decision::DownIndirectlyConnected);
        let survives = |i: usize| {
            !downed[i]
                && !self.unreachable[i]
                && !self.out_of_contact[i]
                && downable(self.g.members()[i].status)
        };
        let stops = |i: usize| downed[i] && !self.out_of_contact[i];
        if !self.members().any(|(i, _)| survives(i)) {
            return true;
        }
        let (size, role) = match *strategy {
            Strategy::DownAll => return true,
            Strategy::StaticQuorum { size, role } => (Some(size as usize), role),
            Strategy::KeepOldest { role, .. } => {
                let oldest = self.counted(role).min_by_key(|(_, m)| m.age());
                return oldest.is_some_and(|(i, _)| survives(i));
            }
            Strategy::KeepMajority { role } | Strategy::LeaseMajority { role } => (None, role),
        };
        let ours = self.counted(role).filter(|(i, _)| survives(*i)).count();
        let theirs = self
            .counted(role)
            .filter(|(i, _)| !survives(*i) && !stops(*i))
            .count();
        let lowest = self.counted(role).find(|(i, _)| !stops(*i));
        match size {
            Some(q) => ours >= q,
            None => ours > theirs || (ours == theirs && lowest.is_some_and(|(i, _)| survives(i))),
        }
    }

    /// [`Partition::decide`] before the survivors of a `DownIndirectlyConnected` are checked.
    fn decide_by_rule(&self, strategy: &Strategy) -> Decision {
        let indirect = self.has_indirectly_connected();
        match *strategy {
            Strategy::DownAll => Decision::DownAll,
            Strategy::KeepMajority { role } => {
                if indirect {
                    return Decision::DownIndirectlyConnected;
                }
                self.keep_majority(role)
            }
            Strategy::StaticQuorum { size, role } => {
                let (ours, theirs) = self.sizes(role);
                let q = size as usize;
                if ours + theirs > 2 * q - 1 {
                    // Two sides could both reach the quorum: the setting is unsafe for this size.
                    return Decision::DownAll;
                }
                if indirect {
                    return Decision::DownIndirectlyConnected;
                }
                if ours < q {
                    return Decision::DownReachable;
                }
                // Re-check pessimistically (Pekko does not): our Leaving members may already
                // be Exiting on the other side, and its joiners may have become Up there.
                let mut p_ours = 0;
                let mut p_theirs = 0;
                for (i, m) in self.members().filter(|(_, m)| has_role(m, role)) {
                    let here = !self.unreachable[i];
                    if here && counts(m.status) && m.status != MemberStatus::Leaving {
                        p_ours += 1;
                    } else if !here && self.opposes_at(i, m) {
                        p_theirs += 1;
                    }
                }
                if p_ours >= q && ours + p_theirs < 2 * q {
                    Decision::DownUnreachable
                } else {
                    Decision::DownAll
                }
            }
            Strategy::KeepOldest {
                down_if_alone,
                role,
            } => {
                if indirect {
                    return Decision::DownIndirectlyConnected;
                }
                let d = self.keep_oldest(down_if_alone, &|i, m| {
                    self.counts_at(i, m) && has_role(m, role)
                });
                if d != Decision::DownUnreachable {
                    return d;
                }
                // Re-check pessimistically: our Leaving members may already be Exiting on the
                // other side (theirs may not be Leaving there at all: a leave issued here need
                // not have reached them), and with down-if-alone its joiners may have become Up
                // there.
                let pessimistic = |i: usize, m: &Member| {
                    has_role(m, role)
                        && self.opposes_at(i, m)
                        && (m.status != MemberStatus::Leaving || self.unreachable[i])
                        && (down_if_alone
                            || !matches!(m.status, MemberStatus::Joining | MemberStatus::WeaklyUp))
                };
                match self.keep_oldest(down_if_alone, &pessimistic) {
                    Decision::DownUnreachable => Decision::DownUnreachable,
                    _ => Decision::DownAll,
                }
            }
            Strategy::LeaseMajority { role } => {
                if indirect {
                    return Decision::DownIndirectlyConnected;
                }
                // A side left with nothing but leaving members may already be gone on the
                // other side (exited and removed there, which then asks for no lease): it must
                // not take the lease and down the others.
                let staying = self
                    .counted(role)
                    .any(|(i, m)| !self.unreachable[i] && m.status != MemberStatus::Leaving);
                if staying {
                    Decision::DownUnreachable
                } else {
                    Decision::DownAll
                }
            }
        }
    }

    fn keep_majority(&self, role: Option<Role>) -> Decision {
        let (ours, theirs) = self.sizes(role);
        if ours + theirs == 0 {
            return Decision::DownAll;
        }
        let keep = |ours: usize, theirs: usize| match ours.cmp(&theirs) {
            core::cmp::Ordering::Greater => true,
            core::cmp::Ordering::Less => false,
            core::cmp::Ordering::Equal => self.lowest_is_here(role),
        };
        if !keep(ours, theirs) {
            return Decision::DownReachable;
        }
        // Re-check pessimistically: members joining during the split may have made the other
        // side bigger, and ours may be leaving.
        let mut p_ours = 0;
        let mut p_theirs = 0;
        for (i, m) in self.members().filter(|(_, m)| has_role(m, role)) {
            if !self.unreachable[i] && counts(m.status) && m.status != MemberStatus::Leaving {
                p_ours += 1;
            } else if self.unreachable[i] && self.opposes_at(i, m) {
                p_theirs += 1;
            }
        }
        if keep(p_ours, p_theirs) {
            Decision::DownUnreachable
        } else {
            // Membership changed during the split enough to make the verdict uncertain.
            Decision::DownAll
        }
    }

    /// Keep-oldest over the members accepted by `eligible`, oldest by (up-number, address).
    fn keep_oldest(
        &self,
        down_if_alone: bool,
        eligible: &dyn Fn(usize, &Member) -> bool,
    ) -> Decision {
        let mut ours = 0;
        let mut theirs = 0;
        let mut oldest: Option<(usize, &Member)> = None;
        for (i, m) in self.members().filter(|(i, m)| eligible(*i, m)) {
            if self.unreachable[i] {
                theirs += 1;
            } else {
                ours += 1;
            }
            if oldest.is_none_or(|(_, o)| m.is_older_than(o)) {
                oldest = Some((i, m));
            }
        }
        let Some((oldest, _)) = oldest else {
            return Decision::DownAll;
        };
        match (!self.unreachable[oldest], down_if_alone) {
            (true, true) if ours == 1 && theirs >= 2 => Decision::DownReachable,
            (true, _) => Decision::DownUnreachable,
            (false, true) if theirs == 1 && ours >= 2 => Decision::DownUnreachable,
            (false, _) => Decision::DownReachable,
        }
    }

    /// Which members `decision` downs, by index: always only downable ones.
    pub fn to_down(&self, strategy: &Strategy, decision: Decision) -> [bool; M] {
        let mut out = [false; M];
        let downable_at = |i: usize| downable(self.g.members()[i].status);
        match decision {
            Decision::DownIndirectlyConnected => {
                // Set the indirectly connected aside and let the strategy judge the rest.
                let rest = self.without_indirectly_connected();
                let extra = match rest.decide_by_rule(strategy) {
                    Decision::DownIndirectlyConnected => Decision::DownAll,
                    d => d,
                };
                // A side that loses leaves the far side's members alone, indirectly connected
                // or not: they are most likely on the winning side, and a member of this side
                // that outlives the decision would otherwise count them as gone.
                let far_too = extra != Decision::DownReachable;
                let extra = rest.to_down(strategy, extra);
                for (i, x) in out.iter_mut().enumerate().take(self.g.members().len()) {
                    let indirect = self.indirect[i] && (far_too || !self.out_of_contact[i]);
                    *x = downable_at(i) && (indirect || extra[i]);
                }
            }
            _ => {
                for (i, x) in out.iter_mut().enumerate().take(self.g.members().len()) {
                    let selected = match decision {
                        Decision::DownUnreachable => self.unreachable[i],
                        Decision::DownReachable => !self.unreachable[i],
                        // Lost the lease: as for a side that loses above.
                        Decision::ReverseDownIndirectlyConnected => {
                            (self.indirect[i] && !self.out_of_contact[i]) || !self.unreachable[i]
                        }
                        _ => true,
                    };
                    *x = downable_at(i) && selected;
                }
            }
        }
        out
    }
}

fn has_role(m: &Member, role: Option<Role>) -> bool {
    role.is_none_or(|r| m.has_role(r.as_str()))
}

/// The decision of `strategy` on the side of the partition this gossip's owner is on.
pub fn decide<const M: usize, const R: usize>(strategy: &Strategy, g: &Gossip<M, R>) -> Decision {
    Partition::of(g).decide(strategy)
}

/// Members that are indirectly connected, in address order.
pub fn indirectly_connected<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
) -> impl Iterator<Item = UniqueAddress> + '_ {
    let p = Partition::of(g);
    let flags = p.indirect;
    g.members()
        .iter()
        .enumerate()
        .filter(move |(i, _)| flags[*i])
        .map(|(_, m)| m.address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, RoleSet};

    type G = Gossip<16, 64>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    /// Members 1..=count, Up with up-number = index (1 is the oldest and the lowest address),
    /// and `observer` flags `unreachable` (as seen from the node `me`).
    fn view(count: u8, statuses: &[(u8, MemberStatus)], unreachable: &[u8]) -> G {
        let mut g = G::new();
        for i in 1..=count {
            let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            m.status = statuses
                .iter()
                .find(|(x, _)| *x == i)
                .map_or(MemberStatus::Up, |(_, s)| *s);
            if !matches!(m.status, MemberStatus::Joining | MemberStatus::WeaklyUp) {
                m.up_number = core::num::NonZeroU32::new(u32::from(i));
            }
            g.add_member(m).unwrap();
        }
        // Observed by a reachable member (the first one not flagged).
        let observer = (1..=count).find(|i| !unreachable.contains(i)).unwrap_or(1);
        for u in unreachable {
            g.change_reachability_for_tests(n(observer), n(*u), ReachabilityStatus::Unreachable)
                .unwrap();
        }
        g
    }

    use Decision::*;
    use MemberStatus::*;

    const MAJ: Strategy = Strategy::KeepMajority { role: None };

    #[test]
    fn keep_majority_cases() {
        /// (members, non-Up statuses, unreachable members, expected decision, why)
        type Case<'a> = (u8, &'a [(u8, MemberStatus)], &'a [u8], Decision, &'a str);
        let cases: &[Case] = &[
            (5, &[], &[4, 5], DownUnreachable, "3 of 5 survive"),
            (5, &[], &[1, 2, 3], DownReachable, "2 of 5 down themselves"),
            (
                4,
                &[],
                &[3, 4],
                DownUnreachable,
                "equal halves: lowest address (1) is here",
            ),
            (
                4,
                &[],
                &[1, 2],
                DownReachable,
                "equal halves: lowest address is there",
            ),
            (
                5,
                &[(1, Joining), (2, Joining), (3, Joining)],
                &[4, 5],
                DownReachable,
                "joining members do not count",
            ),
            (
                4,
                &[(2, Leaving)],
                &[3, 4],
                DownAll,
                "won only with a leaving member: uncertain",
            ),
            (
                3,
                &[(3, Down)],
                &[3],
                DownUnreachable,
                "down members do not count",
            ),
        ];
        for (count, statuses, unreachable, want, why) in cases {
            let g = view(*count, statuses, unreachable);
            assert_eq!(decide(&MAJ, &g), *want, "{why}");
        }
    }

    #[test]
    fn keep_majority_with_role_counts_only_that_role() {
        let mut g = view(5, &[], &[4, 5]);
        let backend = Role::new("backend").unwrap();
        for i in [4, 5] {
            g.member_mut(&n(i)).unwrap().roles.insert(backend).unwrap();
        }
        let s = Strategy::KeepMajority {
            role: Some(backend),
        };
        assert_eq!(
            decide(&s, &g),
            DownReachable,
            "all backends are on the other side"
        );
    }

    #[test]
    fn static_quorum_cases() {
        let q3 = Strategy::StaticQuorum {
            size: 3,
            role: None,
        };
        assert_eq!(decide(&q3, &view(5, &[], &[4, 5])), DownUnreachable);
        assert_eq!(decide(&q3, &view(5, &[], &[3, 4, 5])), DownReachable);
        assert_eq!(
            decide(&q3, &view(6, &[], &[5, 6])),
            DownAll,
            "6 > 2·3 − 1: both sides could reach the quorum"
        );
    }

    #[test]
    fn keep_oldest_cases() {
        let alone = Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        };
        let not_alone = Strategy::KeepOldest {
            down_if_alone: false,
            role: None,
        };
        assert_eq!(
            decide(&alone, &view(5, &[], &[4, 5])),
            DownUnreachable,
            "oldest here"
        );
        assert_eq!(
            decide(&alone, &view(5, &[], &[1, 2])),
            DownReachable,
            "oldest there"
        );
        assert_eq!(
            decide(&alone, &view(5, &[], &[2, 3, 4, 5])),
            DownReachable,
            "oldest alone here, others there: it downs itself"
        );
        assert_eq!(
            decide(&alone, &view(5, &[], &[1])),
            DownUnreachable,
            "oldest alone there: this side keeps"
        );
        assert_eq!(
            decide(&not_alone, &view(5, &[], &[1])),
            DownReachable,
            "without down-if-alone the oldest always wins"
        );
        assert_eq!(
            decide(&alone, &view(2, &[], &[2])),
            DownUnreachable,
            "two nodes keep the oldest"
        );
    }

    #[test]
    fn down_all_and_indirect_connections() {
        assert_eq!(decide(&Strategy::DownAll, &view(5, &[], &[5])), DownAll);
        // 2 cannot reach 3 and 3 cannot reach 2, both reach 1: indirectly connected.
        let mut g = view(3, &[], &[]);
        g.change_reachability_for_tests(n(2), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        g.change_reachability_for_tests(n(3), n(2), ReachabilityStatus::Unreachable)
            .unwrap();
        let ic: heapless::Vec<UniqueAddress, 4> = indirectly_connected(&g).collect();
        assert_eq!(&ic[..], &[n(2), n(3)]);
        assert_eq!(decide(&MAJ, &g), DownIndirectlyConnected);
        // A clean partition has no cycle.
        assert_eq!(indirectly_connected(&view(5, &[], &[4, 5])).count(), 0);
    }

    fn flag(g: &mut G, observer: u8, subject: u8) {
        g.change_reachability_for_tests(n(observer), n(subject), ReachabilityStatus::Unreachable)
            .unwrap();
    }

    fn downed(g: &G, s: &Strategy, d: Decision) -> heapless::Vec<u8, 16> {
        let mask = Partition::of(g).to_down(s, d);
        (0..g.members().len())
            .filter(|i| mask[*i])
            .map(|i| i as u8 + 1)
            .collect()
    }

    #[test]
    fn keep_majority_more_cases() {
        // Members joining on the other side during the split: the pessimistic count loses.
        let g = view(7, &[(6, Joining), (7, Joining)], &[4, 5, 6, 7]);
        assert_eq!(
            decide(&MAJ, &g),
            DownAll,
            "3 vs 2 only while 6 and 7 are not Up"
        );
        // No member counts at all.
        let g = view(2, &[(1, Joining), (2, Joining)], &[2]);
        assert_eq!(decide(&MAJ, &g), DownAll);
        // Three parts, none with a majority: every part downs itself.
        assert_eq!(decide(&MAJ, &view(6, &[], &[3, 4, 5, 6])), DownReachable);
    }

    #[test]
    fn static_quorum_more_cases() {
        let q3 = Strategy::StaticQuorum {
            size: 3,
            role: None,
        };
        let mut g = view(5, &[], &[]);
        flag(&mut g, 4, 5);
        flag(&mut g, 5, 4);
        assert_eq!(decide(&q3, &g), DownIndirectlyConnected);
        // With a role, only its members count towards the quorum and the size limit.
        let backend = Role::new("backend").unwrap();
        let mut g = view(7, &[], &[6, 7]);
        for i in [1, 2, 6, 7] {
            g.member_mut(&n(i)).unwrap().roles.insert(backend).unwrap();
        }
        let q2 = Strategy::StaticQuorum {
            size: 2,
            role: Some(backend),
        };
        assert_eq!(decide(&q2, &g), Decision::DownAll, "4 backends > 2·2 − 1");
        let q3 = Strategy::StaticQuorum {
            size: 3,
            role: Some(backend),
        };
        assert_eq!(decide(&q3, &g), DownReachable, "2 backends here < 3");
    }

    #[test]
    fn keep_oldest_more_cases() {
        let alone = Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        };
        // The oldest is here but leaving: it may already be Exiting over there, where the next
        // oldest (2) is. Uncertain, so down all.
        let g = view(5, &[(1, Leaving)], &[2, 3]);
        assert_eq!(decide(&alone, &g), DownAll);
        let mut g = view(5, &[], &[]);
        flag(&mut g, 4, 5);
        flag(&mut g, 5, 4);
        assert_eq!(decide(&alone, &g), DownIndirectlyConnected);
        // By role: the oldest backend decides.
        let backend = Role::new("backend").unwrap();
        let mut g = view(5, &[], &[4, 5]);
        g.member_mut(&n(4)).unwrap().roles.insert(backend).unwrap();
        let s = Strategy::KeepOldest {
            down_if_alone: false,
            role: Some(backend),
        };
        assert_eq!(decide(&s, &g), DownReachable, "the only backend is there");
    }

    #[test]
    fn lease_majority_cases() {
        let lease = Strategy::LeaseMajority { role: None };
        let g = view(5, &[], &[4, 5]);
        assert_eq!(
            decide(&lease, &g),
            DownUnreachable,
            "once the lease is held"
        );
        assert!(!Partition::of(&g).lease_minority(None));
        assert!(Partition::of(&view(5, &[], &[1, 2, 3])).lease_minority(None));
        assert!(!Partition::of(&view(4, &[], &[3, 4])).lease_minority(None));
        assert!(
            Partition::of(&view(4, &[], &[1, 2])).lease_minority(None),
            "equal halves without the lowest address"
        );
        let mut g = view(3, &[], &[]);
        flag(&mut g, 2, 3);
        flag(&mut g, 3, 2);
        assert_eq!(decide(&lease, &g), DownIndirectlyConnected);
        assert_eq!(DownUnreachable.reverse(), DownReachable);
        assert_eq!(
            DownIndirectlyConnected.reverse(),
            ReverseDownIndirectlyConnected
        );
        assert_eq!(DownAll.reverse(), DownAll);
    }

    #[test]
    fn membership_changing_during_the_split_makes_static_quorum_and_keep_oldest_uncertain() {
        // Found by the exhaustive check (core/tests/decision_exhaustive.rs).
        let q1 = Strategy::StaticQuorum {
            size: 1,
            role: None,
        };
        // Our only counted member is leaving (it may be Exiting over there) and their joiner
        // may be Up there: both sides could reach the quorum of 1.
        let g = view(2, &[(1, Leaving), (2, Joining)], &[2]);
        assert_eq!(decide(&q1, &g), DownAll);
        // The oldest (1) is over there and Leaving here: the leave may not have reached it, so
        // it is not set aside, and with its joiner it is not alone there.
        let alone = Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        };
        let g = view(4, &[(1, Leaving), (4, Joining)], &[1, 4]);
        assert_eq!(decide(&alone, &g), DownAll);
    }

    #[test]
    fn lease_majority_never_lets_a_side_of_leaving_members_take_the_lease() {
        // Found by the adversarial campaign (seed 27018): 2 is leaving and cut off; 1 may
        // already have removed it, and then asks for no lease at all.
        let lease = Strategy::LeaseMajority { role: None };
        let g = view(2, &[(2, Leaving)], &[1]);
        assert_eq!(decide(&lease, &g), DownAll);
        let g = view(3, &[(2, Leaving)], &[1]);
        assert_eq!(decide(&lease, &g), DownUnreachable, "3 stays");
    }

    #[test]
    fn a_flagged_member_that_saw_the_state_is_indirectly_connected() {
        // 1 flags 3, yet 3 has seen this very state: it talks to someone.
        let mut g = view(3, &[], &[3]);
        g.add_seen(n(3));
        let ic: heapless::Vec<UniqueAddress, 4> = indirectly_connected(&g).collect();
        assert_eq!(&ic[..], &[n(1), n(3)]);
    }

    #[test]
    fn members_to_down_per_decision() {
        let g = view(5, &[(3, Down), (5, Exiting)], &[4, 5]);
        assert_eq!(&downed(&g, &MAJ, DownUnreachable)[..], &[4]);
        assert_eq!(&downed(&g, &MAJ, DownReachable)[..], &[1, 2]);
        assert_eq!(
            &downed(&g, &MAJ, DownAll)[..],
            &[1, 2, 4],
            "never Down or Exiting"
        );
        // 4 and 5 cannot talk to each other, and 3 crashed (flagged by 1).
        let mut g = view(5, &[], &[3]);
        flag(&mut g, 4, 5);
        flag(&mut g, 5, 4);
        assert_eq!(decide(&MAJ, &g), DownIndirectlyConnected);
        assert_eq!(
            &downed(&g, &MAJ, DownIndirectlyConnected)[..],
            &[3, 4, 5],
            "the pair, and the crashed member judged by the rest"
        );
        assert_eq!(
            &downed(&g, &MAJ, ReverseDownIndirectlyConnected)[..],
            &[1, 2, 4, 5],
            "lease lost: the pair and this whole side"
        );
        // 4 flags 5 and 1 flags 4: 4 is indirectly connected, and with its link set aside it
        // is still observing and observed — no safe verdict, so everyone goes.
        let mut g = view(5, &[], &[4]);
        flag(&mut g, 4, 5);
        assert_eq!(decide(&MAJ, &g), DownIndirectlyConnected);
        assert_eq!(
            &downed(&g, &MAJ, DownIndirectlyConnected)[..],
            &[1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn members_out_of_contact_are_silent_and_count_as_the_other_side() {
        let mut g = view(5, &[], &[4, 5]);
        for i in [1, 2] {
            g.add_seen(n(i));
        }
        let contact = |g: &G| Partition::for_decision(g, |a| g.seen_by(a)).silent();
        assert_eq!(
            &contact(&g)[..5],
            &[false, false, true, false, false],
            "3 is silent"
        );
        // 3 against 4 and 5 flagged: 2 here, 3 there.
        let p = Partition::for_decision(&g, |a| g.seen_by(a));
        assert_eq!(p.decide(&MAJ), DownReachable);
        g.add_seen(n(3));
        assert!(!Partition::for_decision(&g, |a| g.seen_by(a)).has_silent());
        assert_eq!(decide(&MAJ, &g), DownUnreachable);
    }

    /// Seed 15774's shape: this node (2) downed 1 while 3 was with it; then the partition
    /// moved 3 over to 1, which never saw the Down. Counting 1 as gone would make 2 and 3 equal
    /// halves that 2 wins on its address, while 1 and 3 win as two of three.
    #[test]
    fn a_down_not_everyone_has_seen_counts_on_the_other_side() {
        let mut g = view(3, &[(1, Down)], &[]);
        flag(&mut g, 2, 3);
        g.add_seen(n(2));
        assert_eq!(decide(&MAJ, &g), DownReachable, "2 alone against 1 and 3");
        // Keep-oldest: the downed oldest may still lead the other side.
        let oldest = Strategy::KeepOldest {
            down_if_alone: false,
            role: None,
        };
        let mut g = view(3, &[(1, Down)], &[]);
        flag(&mut g, 2, 3);
        g.add_seen(n(2));
        assert_eq!(decide(&oldest, &g), DownReachable);
    }

    /// Seed 39894's shape: stale records about this side, brought over by a member that moved,
    /// make members of the far side (4, 5 observing 1 and 2) indirectly connected. A side that
    /// loses must leave them alone: they are on the winning side.
    #[test]
    fn a_losing_side_leaves_far_indirectly_connected_members_alone() {
        // This node is 1, with 2; 3..=7 are out of contact. 4 and 5 flagged 1 and 2 before the
        // partition moved; 1 and 2 flag 3.
        let mut g = view(7, &[], &[]);
        for (o, s) in [(4, 1), (4, 2), (5, 1), (5, 2), (1, 3), (2, 3)] {
            flag(&mut g, o, s);
        }
        for i in [1, 2] {
            g.add_seen(n(i));
        }
        let p = Partition::for_decision(&g, |a| g.seen_by(a));
        assert!(p.is_indirectly_connected(3) && p.is_indirectly_connected(4));
        assert_eq!(p.decide(&MAJ), DownIndirectlyConnected);
        let mask = p.to_down(&MAJ, DownIndirectlyConnected);
        let downed: heapless::Vec<u8, 16> =
            (0..7).filter(|i| mask[*i]).map(|i| i as u8 + 1).collect();
        assert_eq!(&downed[..], &[1, 2], "only this side: 4 and 5 stay");
        let mask = p.to_down(&MAJ, ReverseDownIndirectlyConnected);
        assert!(!mask[3] && !mask[4], "nor when the lease was denied");
    }

    /// Seed 51998's shape: the strategy judged the rest with the indirectly connected counted
    /// as this side's (2, 4, 6, 7 here), then the decision downs them, and what is left (8 and
    /// 9) must still win on its own against the members that could form another side (1, 3
    /// and 5, out of contact). It does not, so the decision is down-all.
    #[test]
    fn the_survivors_of_down_indirectly_connected_must_win_on_their_own() {
        let mut g = view(9, &[], &[]);
        for (a, b) in [(2, 4), (4, 2), (6, 7), (7, 6)] {
            flag(&mut g, a, b);
        }
        for i in [2, 4, 6, 7, 8, 9] {
            g.add_seen(n(i));
        }
        let p = Partition::for_decision(&g, |a| g.seen_by(a));
        assert_eq!(p.decide_by_rule(&MAJ), DownIndirectlyConnected);
        assert_eq!(p.decide(&MAJ), DownAll, "2 of 9 kept against 3");
        // With 1, 3 and 5 in contact too, they hear of the decision: 8 and 9 stay.
        for i in [1, 3, 5] {
            g.add_seen(n(i));
        }
        let p = Partition::for_decision(&g, |a| g.seen_by(a));
        assert_eq!(p.decide(&MAJ), DownIndirectlyConnected);
    }
}
