//! Capacity as a contract: what each node can hold, how large the cluster may grow, and which
//! members go when concurrent admissions overshoot.
//!
//! Every node declares its [`Capacity`] when joining, and the declaration travels in its member
//! record, so every member computes the same bound for the cluster: the smallest
//! [`Capacity::holds`] of its members. Three rules follow, each in one place:
//!
//! - **Admission**: a member takes a joiner only if the cluster with the joiner
//!   stays within every member's bound, the joiner's included. Otherwise it refuses with
//!   [`Incompatibility::Capacity`], reported on both sides like any other refusal.
//! - **Concurrent admissions**: two members can each take a joiner at the same
//!   instant. When a merge would exceed the bound, Joining members go first, then WeaklyUp
//!   members, highest address first, until the rest fits. The choice depends only on the
//!   merged members, so every node drops the same ones and merges never fail for lack of room.
//!   A dropped joiner learns it from the first gossip without it ([`crate::Node`]).
//! - **Reachability records** ([`Capacity::records`]): the table is compacted to the smallest
//!   record capacity in the cluster (see [compaction](#reachability-compaction)), so any
//!   member's gossip decodes at every other member.
//!
//! A node holds at most `M` members, and at most `2 R` so that compaction always has room: in a
//! partition the side that may survive flags fewer than half of the members, one compacted
//! record each.
//!
//! # Reachability compaction
//!
//! A table that would exceed the smallest record capacity in the cluster is compacted: one
//! row per flagged subject (the worst status, from an observer that is itself neither flagged
//! nor Down where there is one, lowest address first), no rows saying Reachable; if more
//! subjects are flagged than the table holds, those with the highest addresses lose their rows
//! (a merge makes the same cut before its union, so that it never overflows). Versions stay,
//! so a peer with the full rows of an observer merges them back in.
//!
//! What the split brain resolver reads survives compaction: which members are flagged and by
//! an observer that counts, and whether some flagging observer is itself reachable (a member
//! flagged only by flagged observers is indirectly connected). Which members each observer
//! flags is lost, so a member one observer takes back stays reachable until another observer
//! that still flags it re-flags it (its next reaper tick).

use serde::{Deserialize, Serialize};

use crate::address::UniqueAddress;
use crate::compat::Incompatibility;
use crate::member::{Member, MemberStatus};

/// What a node can hold: its compile-time member and reachability-record capacities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capacity {
    /// Members (`M`).
    pub members: u16,
    /// Reachability records (`R`).
    pub records: u16,
}

impl Capacity {
    /// No bound beyond the wire format's. For member records built by hand (tests, tools).
    pub const UNBOUNDED: Capacity = Capacity {
        members: u16::MAX,
        records: u16::MAX,
    };

    /// The capacity of a `Node<M, R, _>`; values beyond `u16::MAX` saturate (such a node is
    /// refused at construction).
    pub const fn of(m: usize, r: usize) -> Capacity {
        Capacity {
            members: if m > u16::MAX as usize {
                u16::MAX
            } else {
                m as u16
            },
            records: if r > u16::MAX as usize {
                u16::MAX
            } else {
                r as u16
            },
        }
    }

    /// The largest cluster this node can be a member of: `M`, and at most `2 R` members.
    pub const fn holds(self) -> usize {
        let by_records = 2 * self.records as usize;
        if (self.members as usize) < by_records {
            self.members as usize
        } else {
            by_records
        }
    }
}

/// The largest cluster `members` allow, for a node whose own capacity is `own`.
pub(crate) fn cluster_holds(members: &[Member], own: Capacity) -> usize {
    members
        .iter()
        .map(|m| m.capacity.holds())
        .fold(own.holds(), usize::min)
}

/// The record capacity every member can hold (the smallest), for a node whose own is `own`.
pub(crate) fn cluster_records(members: &[Member], own: Capacity) -> usize {
    members
        .iter()
        .map(|m| usize::from(m.capacity.records))
        .fold(usize::from(own.records), usize::min)
}

/// Whether a cluster with `members` (as seen by a node of capacity `own`) may take one more
/// member declaring `joiner`; the refusal says why not.
pub(crate) fn admits(
    members: &[Member],
    own: Capacity,
    joiner: Capacity,
) -> Result<(), Incompatibility> {
    let after = members.len() + 1;
    let bound = cluster_holds(members, own).min(joiner.holds());
    if after <= bound {
        Ok(())
    } else {
        Err(full(members, own, joiner))
    }
}

/// The refusal a cluster with `members` (seen by a node of capacity `own`) gives a joiner
/// declaring `joiner`.
pub(crate) fn full(members: &[Member], own: Capacity, joiner: Capacity) -> Incompatibility {
    let saturate = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    Incompatibility::Capacity {
        members: saturate(members.len()),
        holds: saturate(cluster_holds(members, own)),
        joiner,
    }
}

/// Which members a merge drops: every member whose merged status is Joining, or WeaklyUp if
/// `weakly_up`, at or above address `from` (and every Joining member if `weakly_up`). Dropped
/// members form a prefix of one fixed order (Joining before WeaklyUp, each by descending
/// address), so the line is all a merge needs to decide each copy on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropLine {
    weakly_up: bool,
    from: UniqueAddress,
}

impl DropLine {
    /// Whether a copy of a member with `status` at `address` is dropped. A copy's status is
    /// never ahead of the merged one, and every Joining member goes before any WeaklyUp one,
    /// so judging a single copy gives the merged member's verdict.
    pub fn drops(&self, address: &UniqueAddress, status: MemberStatus) -> bool {
        match status {
            MemberStatus::Joining => self.weakly_up || *address >= self.from,
            MemberStatus::WeaklyUp => self.weakly_up && *address >= self.from,
            _ => false,
        }
    }

    /// Whether `m` is dropped, given the other side's copy of it, if any (the merged status
    /// decides).
    pub fn drops_member(&self, m: &Member, copy: Option<&Member>) -> bool {
        let status = copy.map_or(m.status, |c| Member::merge_winner(m, c).status);
        self.drops(&m.address, status)
    }

    /// The line for merging the member lists `a` and `b` (each sorted, restricted to members
    /// for which `alive` holds) on a node of capacity `own`: `Ok(None)` if the union fits,
    /// `Err(OverCapacity)` if it does not fit even without any Joining or WeaklyUp member (two sides each
    /// moved members up past the bound: only a split brain does that).
    pub fn compute(
        a: &[Member],
        b: &[Member],
        alive: impl Fn(&UniqueAddress) -> bool,
        own: Capacity,
    ) -> Result<Option<DropLine>, OverCapacity> {
        Self::compute_dyn(a, b, &alive, own)
    }

    /// [`DropLine::compute`], one copy for every caller's `alive` (a copy is 1.2 kB of a
    /// device's flash).
    #[inline(never)]
    fn compute_dyn<'a>(
        a: &'a [Member],
        b: &'a [Member],
        alive: &dyn Fn(&UniqueAddress) -> bool,
        own: Capacity,
    ) -> Result<Option<DropLine>, OverCapacity> {
        // The common case first, cheaply: the size of the union, and the smallest bound of
        // any copy (copies of one member declare the same capacity; should a hostile one
        // not, the smaller counts on every node alike).
        let mut n = union_len(a, b, alive);
        let find = |list: &'a [Member], x: &UniqueAddress| {
            list.binary_search_by(|m| m.address.cmp(x))
                .ok()
                .map(|i| &list[i])
        };
        let bound = |line: Option<DropLine>| {
            let kept = |m: &Member, other: &'a [Member]| {
                alive(&m.address)
                    && line.is_none_or(|l| !l.drops_member(m, find(other, &m.address)))
            };
            let ours = a.iter().filter(|m| kept(m, b));
            let theirs = b.iter().filter(|m| kept(m, a));
            ours.chain(theirs)
                .map(|m| m.capacity.holds())
                .fold(own.holds(), usize::min)
        };
        let mut cap = bound(None);
        if n <= cap {
            return Ok(None);
        }
        let union = || Union::new(a, b, &alive);
        for weakly_up in [false, true] {
            let wanted = if weakly_up {
                MemberStatus::WeaklyUp
            } else {
                MemberStatus::Joining
            };
            for m in union().rev().filter(|m| m.status == wanted) {
                let line = DropLine {
                    weakly_up,
                    from: m.address,
                };
                n -= 1;
                if m.capacity.holds() <= cap {
                    // It may have been the smallest: the bound can only grow.
                    cap = bound(Some(line));
                }
                if n <= cap {
                    return Ok(Some(line));
                }
            }
        }
        Err(OverCapacity)
    }
}

/// The size of the union of two member lists sorted by address, counting only members for
/// which `alive` holds.
pub(crate) fn union_len(
    a: &[Member],
    b: &[Member],
    alive: &dyn Fn(&UniqueAddress) -> bool,
) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    loop {
        while a.get(i).is_some_and(|m| !alive(&m.address)) {
            i += 1;
        }
        while b.get(j).is_some_and(|m| !alive(&m.address)) {
            j += 1;
        }
        match (a.get(i), b.get(j)) {
            (None, None) => return n,
            (Some(_), None) => i += 1,
            (None, Some(_)) => j += 1,
            (Some(x), Some(y)) => match x.address.cmp(&y.address) {
                core::cmp::Ordering::Less => i += 1,
                core::cmp::Ordering::Greater => j += 1,
                core::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
            },
        }
        n += 1;
    }
}

/// Members that may not be dropped (Up and further on) exceed the cluster's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverCapacity;

/// The merged members of two sorted lists, each member once with its merge winner's status and
/// capacity, in address order (either way).
struct Union<'a, F> {
    a: &'a [Member],
    b: &'a [Member],
    alive: &'a F,
}

impl<'a, F: Fn(&UniqueAddress) -> bool> Union<'a, F> {
    fn new(a: &'a [Member], b: &'a [Member], alive: &'a F) -> Self {
        Union { a, b, alive }
    }

    fn skip_dead(&mut self) {
        let alive = self.alive;
        while self.a.first().is_some_and(|m| !alive(&m.address)) {
            self.a = &self.a[1..];
        }
        while self.b.first().is_some_and(|m| !alive(&m.address)) {
            self.b = &self.b[1..];
        }
        while self.a.last().is_some_and(|m| !alive(&m.address)) {
            self.a = &self.a[..self.a.len() - 1];
        }
        while self.b.last().is_some_and(|m| !alive(&m.address)) {
            self.b = &self.b[..self.b.len() - 1];
        }
    }
}

impl<'a, F: Fn(&UniqueAddress) -> bool> Union<'a, F> {
    /// The next member from the front (or the back): the lower (higher) address of the two
    /// lists' ends, merged when both hold it.
    fn take(&mut self, front: bool) -> Option<&'a Member> {
        self.skip_dead();
        let end = |l: &'a [Member]| if front { l.first() } else { l.last() };
        let (x, y) = (end(self.a), end(self.b));
        let order = match (x, y) {
            (None, None) => return None,
            (Some(_), None) => core::cmp::Ordering::Less,
            (None, Some(_)) => core::cmp::Ordering::Greater,
            (Some(x), Some(y)) if front => x.address.cmp(&y.address),
            (Some(x), Some(y)) => y.address.cmp(&x.address),
        };
        let shrink = |l: &mut &'a [Member]| {
            *l = if front { &l[1..] } else { &l[..l.len() - 1] };
        };
        match order {
            core::cmp::Ordering::Less => shrink(&mut self.a),
            core::cmp::Ordering::Greater => shrink(&mut self.b),
            core::cmp::Ordering::Equal => {
                shrink(&mut self.a);
                shrink(&mut self.b);
            }
        }
        match (x, y, order) {
            (Some(x), Some(y), core::cmp::Ordering::Equal) => Some(Member::merge_winner(x, y)),
            (Some(x), _, core::cmp::Ordering::Less) => Some(x),
            (_, y, _) => y,
        }
    }
}

impl<'a, F: Fn(&UniqueAddress) -> bool> Iterator for Union<'a, F> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        self.take(true)
    }
}

impl<'a, F: Fn(&UniqueAddress) -> bool> DoubleEndedIterator for Union<'a, F> {
    fn next_back(&mut self) -> Option<&'a Member> {
        self.take(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{AppVersion, RoleSet};

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), u64::from(i))
    }

    fn member(i: u8, status: MemberStatus, cap: u16) -> Member {
        let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
        m.status = status;
        m.up_number = if matches!(status, Joining | WeaklyUp) {
            None
        } else {
            core::num::NonZeroU32::new(1)
        };
        m.capacity = Capacity {
            members: cap,
            records: cap,
        };
        m
    }

    use MemberStatus::*;

    /// Members 1, 2, 3 Up, then `rest`, all holding `cap`.
    fn three_up_and(rest: &[(u8, MemberStatus)], cap: u16) -> std::vec::Vec<Member> {
        [(1, Up), (2, Up), (3, Up)]
            .iter()
            .chain(rest)
            .map(|(i, s)| member(*i, *s, cap))
            .collect()
    }

    #[test]
    fn a_node_holds_at_most_twice_its_records() {
        assert_eq!(Capacity::of(16, 12).holds(), 16);
        assert_eq!(Capacity::of(16, 4).holds(), 8);
        assert_eq!(Capacity::of(4096, 8192).holds(), 4096);
        assert_eq!(Capacity::of(100_000, 1).members, u16::MAX);
    }

    #[test]
    fn admission_needs_room_on_every_member_and_on_the_joiner() {
        let own = Capacity::of(8, 16);
        let three = [member(1, Up, 8), member(2, Up, 4), member(3, Up, 8)];
        assert_eq!(admits(&three, own, Capacity::of(8, 8)), Ok(()));
        // Member 2 holds four: a fifth member does not fit.
        let four = [three.as_slice(), &[member(4, Joining, 8)]].concat();
        assert_eq!(
            admits(&four, own, Capacity::of(8, 8)),
            Err(Incompatibility::Capacity {
                members: 4,
                holds: 4,
                joiner: Capacity::of(8, 8)
            })
        );
        // A joiner that cannot hold four members is refused by a cluster of three.
        assert!(admits(&three, own, Capacity::of(3, 8)).is_err());
    }

    #[test]
    fn concurrent_admissions_drop_joining_members_from_the_highest_address() {
        let own = Capacity::of(4, 8);
        let a = three_up_and(&[(7, Joining)], 4);
        let b = three_up_and(&[(5, Joining)], 4);
        let line = DropLine::compute(&a, &b, |_| true, own).unwrap().unwrap();
        assert!(line.drops(&n(7), Joining));
        assert!(!line.drops(&n(5), Joining));
        // The same line whichever side merges.
        assert_eq!(DropLine::compute(&b, &a, |_| true, own), Ok(Some(line)));
        // Within capacity: no line.
        assert_eq!(DropLine::compute(&a, &a, |_| true, own), Ok(None));
    }

    #[test]
    fn weakly_up_members_go_after_every_joining_one() {
        let own = Capacity::of(3, 8);
        let a = [
            member(1, Up, 3),
            member(2, WeaklyUp, 3),
            member(9, Joining, 3),
        ];
        let b = [
            member(1, Up, 3),
            member(3, WeaklyUp, 3),
            member(4, WeaklyUp, 3),
        ];
        let line = DropLine::compute(&a, &b, |_| true, own).unwrap().unwrap();
        // Five members, three fit: the joiner 9 goes, then the WeaklyUp member 4.
        assert!(line.drops(&n(9), Joining) && line.drops(&n(4), WeaklyUp));
        assert!(!line.drops(&n(3), WeaklyUp) && !line.drops(&n(2), WeaklyUp));
        assert!(!line.drops(&n(1), Up));
        // A joiner whose copy on one side is already WeaklyUp counts as WeaklyUp.
        let c = [member(1, Up, 3), member(9, WeaklyUp, 3)];
        let line = DropLine::compute(&a, &c, |_| true, own).unwrap();
        assert_eq!(line, None, "1, 2 and 9: three members fit");
    }

    #[test]
    fn dropping_a_small_joiner_raises_the_bound() {
        let own = Capacity::of(8, 16);
        let mut a = three_up_and(&[], 8);
        a.push(member(9, Joining, 3));
        let b = three_up_and(&[], 8);
        let line = DropLine::compute(&a, &b, |_| true, own).unwrap().unwrap();
        assert!(line.drops(&n(9), Joining));
    }

    #[test]
    fn the_union_walks_both_ways_alike() {
        let a = three_up_and(&[(5, Joining), (9, WeaklyUp)], 4);
        let b = [
            member(2, Leaving, 4),
            member(4, Joining, 4),
            member(9, Joining, 4),
        ];
        let alive = |a: &UniqueAddress| *a != n(3);
        let forward: std::vec::Vec<_> = Union::new(&a, &b, &alive).collect();
        let mut backward: std::vec::Vec<_> = Union::new(&a, &b, &alive).rev().collect();
        backward.reverse();
        assert_eq!(forward, backward);
        let got: std::vec::Vec<_> = forward.iter().map(|m| (m.address, m.status)).collect();
        let want = [
            (1, Up),
            (2, Leaving),
            (4, Joining),
            (5, Joining),
            (9, WeaklyUp),
        ];
        assert_eq!(got, want.map(|(i, s)| (n(i), s)));
    }

    #[test]
    fn members_that_are_up_are_never_dropped() {
        let own = Capacity::of(3, 8);
        let a = [member(1, Up, 3), member(2, Up, 3), member(3, Up, 3)];
        let b = [member(1, Up, 3), member(4, Up, 3)];
        assert_eq!(DropLine::compute(&a, &b, |_| true, own), Err(OverCapacity));
        // Tombstoned members do not count.
        assert_eq!(DropLine::compute(&a, &b, |x| *x != n(4), own), Ok(None));
    }
}
