//! Split brain resolver decisions (notes §11.4): given this node's view of who is reachable,
//! which side of a partition survives.
//!
//! This module holds the decision rules only, as pure functions of the gossip, so every case
//! of every strategy is testable in isolation. Driving them — the stable-after timer,
//! down-all-when-unstable, acting only as leader, downing and self-downing — is not wired
//! into [`crate::Node`] yet.

use crate::address::UniqueAddress;
use crate::gossip::Gossip;
use crate::member::{Member, MemberStatus, Role};
use crate::reachability::ReachabilityStatus;

/// A downing strategy (Pekko `split-brain-resolver.active-strategy`).
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
    /// Some members can reach only part of the cluster: down those.
    DownIndirectlyConnected,
}

/// This node's view of the partition, as sets of members.
struct Sides<'a, const M: usize, const R: usize> {
    g: &'a Gossip<M, R>,
    role: Option<Role>,
}

impl<const M: usize, const R: usize> Sides<'_, M, R> {
    fn unreachable(&self, m: &Member) -> bool {
        self.g.reachability_of(&m.address) != ReachabilityStatus::Reachable
    }

    fn has_role(&self, m: &Member) -> bool {
        self.role.as_ref().is_none_or(|r| m.has_role(r.as_str()))
    }

    /// Members that count: not Joining, WeaklyUp, Down or Exiting (and with the role).
    fn counted(&self) -> impl Iterator<Item = &Member> + '_ {
        self.g
            .members()
            .iter()
            .filter(|m| counts(m.status) && self.has_role(m))
    }

    /// (reachable, unreachable) counts of counted members.
    fn counts(&self) -> (usize, usize) {
        let unreachable = self.counted().filter(|m| self.unreachable(m)).count();
        (self.counted().count() - unreachable, unreachable)
    }

    /// The pessimistic counts used to re-check a decision to survive: members joining during
    /// the split may have made the other side bigger, and ours may be leaving.
    fn pessimistic_counts(&self) -> (usize, usize) {
        let with_role = |m: &&Member| self.has_role(m);
        let ours = self
            .g
            .members()
            .iter()
            .filter(with_role)
            .filter(|m| !self.unreachable(m))
            .filter(|m| counts(m.status) && m.status != MemberStatus::Leaving)
            .count();
        let theirs = self
            .g
            .members()
            .iter()
            .filter(with_role)
            .filter(|m| self.unreachable(m))
            .filter(|m| !matches!(m.status, MemberStatus::Down | MemberStatus::Exiting))
            .count();
        (ours, theirs)
    }
}

/// Statuses counted when sizing a side.
fn counts(s: MemberStatus) -> bool {
    !matches!(
        s,
        MemberStatus::Joining | MemberStatus::WeaklyUp | MemberStatus::Down | MemberStatus::Exiting
    )
}

/// Members that observe someone unreachable and are themselves observed unreachable: a cycle
/// in the unreachability graph, which clean partitions and crashes never produce.
pub fn indirectly_connected<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
) -> impl Iterator<Item = UniqueAddress> + '_ {
    let flagged = |r: &&crate::reachability::Record| {
        r.status != ReachabilityStatus::Reachable && g.observer_counts(&r.observer)
    };
    let records = g.reachability().records();
    g.members().iter().map(|m| m.address).filter(move |a| {
        records.iter().filter(flagged).any(|r| r.observer == *a)
            && records.iter().filter(flagged).any(|r| r.subject == *a)
    })
}

/// The decision of `strategy` on the side of the partition this gossip's owner is on.
pub fn decide<const M: usize, const R: usize>(strategy: &Strategy, g: &Gossip<M, R>) -> Decision {
    let indirect = indirectly_connected(g).next().is_some();
    match strategy {
        Strategy::DownAll => Decision::DownAll,
        Strategy::KeepMajority { role } => {
            if indirect {
                return Decision::DownIndirectlyConnected;
            }
            let sides = Sides { g, role: *role };
            let (ours, theirs) = sides.counts();
            if ours + theirs == 0 {
                return Decision::DownAll;
            }
            let keep = |ours: usize, theirs: usize| match ours.cmp(&theirs) {
                core::cmp::Ordering::Greater => true,
                core::cmp::Ordering::Less => false,
                // Equal halves: the side holding the lowest address survives.
                core::cmp::Ordering::Equal => sides
                    .counted()
                    .next()
                    .is_some_and(|lowest| !sides.unreachable(lowest)),
            };
            if !keep(ours, theirs) {
                return Decision::DownReachable;
            }
            let (p_ours, p_theirs) = sides.pessimistic_counts();
            if p_ours > p_theirs || (p_ours == p_theirs && keep(p_ours, p_theirs)) {
                Decision::DownUnreachable
            } else {
                // Membership changed during the split enough to make the verdict uncertain.
                Decision::DownAll
            }
        }
        Strategy::StaticQuorum { size, role } => {
            let sides = Sides { g, role: *role };
            let (ours, theirs) = sides.counts();
            let q = *size as usize;
            if ours + theirs > 2 * q - 1 {
                // Two sides could both reach the quorum: the setting is unsafe for this size.
                return Decision::DownAll;
            }
            if indirect {
                return Decision::DownIndirectlyConnected;
            }
            if ours >= q {
                Decision::DownUnreachable
            } else {
                Decision::DownReachable
            }
        }
        Strategy::KeepOldest {
            down_if_alone,
            role,
        } => {
            if indirect {
                return Decision::DownIndirectlyConnected;
            }
            let sides = Sides { g, role: *role };
            let (ours, theirs) = sides.counts();
            let oldest = sides.counted().min_by_key(|m| (m.up_number, m.address));
            let Some(oldest) = oldest else {
                return Decision::DownAll;
            };
            let oldest_here = !sides.unreachable(oldest);
            match (oldest_here, *down_if_alone) {
                (true, true) if ours == 1 && theirs >= 2 => Decision::DownReachable,
                (true, _) => Decision::DownUnreachable,
                (false, true) if theirs == 1 && ours >= 2 => Decision::DownUnreachable,
                (false, _) => Decision::DownReachable,
            }
        }
    }
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
                m.up_number = u32::from(i);
            }
            g.add_member(m).unwrap();
        }
        // Observed by a reachable member (the first one not flagged).
        let observer = (1..=count).find(|i| !unreachable.contains(i)).unwrap_or(1);
        for u in unreachable {
            g.reachability
                .change(n(observer), n(*u), ReachabilityStatus::Unreachable)
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
        g.reachability
            .change(n(2), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        g.reachability
            .change(n(3), n(2), ReachabilityStatus::Unreachable)
            .unwrap();
        let ic: heapless::Vec<UniqueAddress, 4> = indirectly_connected(&g).collect();
        assert_eq!(&ic[..], &[n(2), n(3)]);
        assert_eq!(decide(&MAJ, &g), DownIndirectlyConnected);
        // A clean partition has no cycle.
        assert_eq!(indirectly_connected(&view(5, &[], &[4, 5])).count(), 0);
    }
}
