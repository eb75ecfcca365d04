//! Version vectors over member identities.
//!
//! Every local change to the gossip bumps the local node's counter. Pekko keys entries by a
//! 32-character MD5 string; fjell keeps one counter per member, in a column parallel to the
//! gossip's sorted member list (only members have entries), and sends them on the wire as
//! indices into that list, which is cheaper and cannot collide.

use core::cmp::Ordering;
use core::fmt;

use crate::address::{Digest, UniqueAddress};
use crate::member::Member;

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Identical.
    Same,
    /// `self` happened before `other`.
    Before,
    /// `self` happened after `other`.
    After,
    /// Neither dominates.
    Concurrent,
}

/// A gossip state's version vector, read through its member list: the counter of the member
/// at index `i` is the `i`-th counter, and zero means no entry.
///
/// Two clocks are equal when they hold the same nonzero entries, whatever members they are
/// read through.
#[derive(Clone, Copy)]
pub struct VectorClock<'a> {
    members: &'a [Member],
    counters: &'a [u64],
}

impl<'a> VectorClock<'a> {
    /// The clock whose entry for `members[i]` is `counters[i]` (the two are parallel).
    pub(crate) fn new(members: &'a [Member], counters: &'a [u64]) -> Self {
        debug_assert_eq!(members.len(), counters.len());
        VectorClock { members, counters }
    }

    /// The counter of `node` (zero if absent).
    pub fn get(&self, node: &UniqueAddress) -> u64 {
        match self.members.binary_search_by(|m| m.address.cmp(node)) {
            Ok(i) => self.counters[i],
            Err(_) => 0,
        }
    }

    /// Entries (nonzero counters) in node order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a UniqueAddress, u64)> + 'a {
        self.members
            .iter()
            .zip(self.counters)
            .filter(|(_, v)| **v != 0)
            .map(|(m, v)| (&m.address, *v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.counters.iter().filter(|v| **v != 0).count()
    }

    /// True if no node has changed anything yet.
    pub fn is_empty(&self) -> bool {
        self.counters.iter().all(|v| *v == 0)
    }

    /// Compares pointwise (a missing entry counts as zero).
    pub fn compare(&self, other: &VectorClock<'_>) -> Causality {
        let (mut less, mut greater) = (false, false);
        for (va, vb) in pairs(self.members, other.members).map(|(i, j)| {
            (
                i.map_or(0, |i| self.counters[i]),
                j.map_or(0, |j| other.counters[j]),
            )
        }) {
            less |= va < vb;
            greater |= va > vb;
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Same,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// A 64-bit digest of the whole vector, identical on every node for equal vectors.
    pub fn digest(&self) -> u64 {
        let mut h = Digest::new();
        for (a, v) in self.iter() {
            h.write_u64(a.stable_hash());
            h.write_u64(v);
        }
        h.finish()
    }
}

impl PartialEq<VectorClock<'_>> for VectorClock<'_> {
    fn eq(&self, other: &VectorClock<'_>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for VectorClock<'_> {}

impl fmt::Debug for VectorClock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The union of two sorted, unique member lists, in address order: for each address, its
/// index in `a` and in `b` (at least one of the two).
pub(crate) fn pairs<'a>(
    a: &'a [Member],
    b: &'a [Member],
) -> impl Iterator<Item = (Option<usize>, Option<usize>)> + 'a {
    let (mut i, mut j) = (0, 0);
    core::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.address.cmp(&y.address) {
                Ordering::Equal => (Some(i), Some(j)),
                Ordering::Less => (Some(i), None),
                Ordering::Greater => (None, Some(j)),
            },
            (Some(_), None) => (Some(i), None),
            (None, Some(_)) => (None, Some(j)),
            (None, None) => return None,
        };
        i += usize::from(next.0.is_some());
        j += usize::from(next.1.is_some());
        Some(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 1).into(), 1)
    }

    /// Members and counters for the entries `v`, plus a member without an entry (9), which
    /// must not matter.
    fn clock(v: &[(u8, u64)]) -> (std::vec::Vec<Member>, std::vec::Vec<u64>) {
        let mut e: std::vec::Vec<(u8, u64)> = v.to_vec();
        e.push((9, 0));
        e.sort();
        let members = e
            .iter()
            .map(|(i, _)| Member::joining(n(*i), Default::default(), Default::default()))
            .collect();
        (members, e.iter().map(|(_, x)| *x).collect())
    }

    fn cmp(a: &[(u8, u64)], b: &[(u8, u64)]) -> Causality {
        let ((am, ac), (bm, bc)) = (clock(a), clock(b));
        VectorClock::new(&am, &ac).compare(&VectorClock::new(&bm, &bc))
    }

    #[test]
    fn compare_covers_all_cases() {
        assert_eq!(cmp(&[], &[]), Causality::Same);
        assert_eq!(cmp(&[(1, 1)], &[(1, 1)]), Causality::Same);
        assert_eq!(cmp(&[(1, 1)], &[(1, 2)]), Causality::Before);
        assert_eq!(cmp(&[(1, 1)], &[(1, 1), (2, 1)]), Causality::Before);
        assert_eq!(cmp(&[(1, 2), (2, 1)], &[(1, 1)]), Causality::After);
        assert_eq!(cmp(&[(1, 2)], &[(2, 1)]), Causality::Concurrent);
        assert_eq!(cmp(&[(1, 2), (3, 1)], &[(1, 3)]), Causality::Concurrent);
        // A member without an entry on one side and absent on the other: equal.
        assert_eq!(cmp(&[(1, 1), (4, 0)], &[(1, 1)]), Causality::Same);
    }

    #[test]
    fn equality_and_digest_ignore_members_without_entries() {
        let (am, ac) = clock(&[(1, 2), (3, 0)]);
        let (bm, bc) = clock(&[(1, 2)]);
        let (a, b) = (VectorClock::new(&am, &ac), VectorClock::new(&bm, &bc));
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        assert_eq!((a.len(), a.get(&n(1)), a.get(&n(3))), (1, 2, 0));
        let (cm, cc) = clock(&[(1, 3)]);
        assert_ne!(a, VectorClock::new(&cm, &cc));
        let (em, ec) = clock(&[]);
        assert!(VectorClock::new(&em, &ec).is_empty());
    }

    #[test]
    fn pairs_walk_the_union_in_order() {
        let (a, _) = clock(&[(1, 1), (3, 1)]);
        let (b, _) = clock(&[(2, 1), (3, 1)]);
        let p: std::vec::Vec<_> = pairs(&a, &b).collect();
        assert_eq!(
            p,
            [
                (Some(0), None),
                (None, Some(0)),
                (Some(1), Some(1)),
                (Some(2), Some(2))
            ]
        );
    }
}
