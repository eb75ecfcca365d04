//! The gossip state as it was before per-member data was keyed by member index (clock and
//! seen set keyed by address, reachability rows naming observer and subject by address),
//! kept verbatim as a test oracle: on random states the index-keyed [`crate::Gossip`] must
//! do exactly what this does.
#![allow(dead_code)]

pub mod gossip;
pub mod reachability;
pub mod vclock;

use crate::gossip::Gossip as New;
use crate::sorted::{union_into_mapped, Overflow};

/// The filtered union the reference was written with (now [`union_into_mapped`] without a
/// mapping).
pub fn union_into_where<T: Clone, K: Ord, const N: usize>(
    dst: &mut crate::buf::Buf<T, N>,
    src: &[T],
    take: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> K,
    both: impl Fn(&T, &T) -> T,
) -> Result<(), Overflow> {
    union_into_mapped(dst, src, take, T::clone, key, both)
}

/// The reference state holding exactly what `g` holds.
pub fn of<const M: usize, const R: usize>(g: &New<M, R>) -> gossip::Gossip<M, R> {
    let mut r = gossip::Gossip::<M, R>::new();
    r.members = g.members().iter().cloned().collect();
    for (a, v) in g.version().iter() {
        r.version.set(*a, v).expect("capacity");
    }
    r.seen = g.seen().iter().copied().collect();
    for (a, v) in g.reachability().versions() {
        r.reachability.push_version(*a, v).expect("in order");
    }
    for x in g.reachability().records() {
        r.reachability
            .push_record(reachability::Record {
                observer: x.observer,
                subject: x.subject,
                status: x.status,
                version: x.version,
            })
            .expect("in order");
    }
    // As is: `change` can leave the flag set on an empty table (both implementations).
    r.reachability
        .set_compacted_exactly(g.reachability().is_compacted());
    r.tombstones = g
        .tombstones()
        .iter()
        .map(|t| gossip::Tombstone {
            address: t.address,
            removed_at: t.removed_at,
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::of;
    use crate::capacity::Capacity;
    use crate::gossip::Gossip;
    use crate::member::{AppVersion, Member, MemberStatus, RoleSet};
    use crate::reachability::ReachabilityStatus;
    use crate::time::Instant;
    use crate::UniqueAddress;

    const M: usize = 8;
    const R: usize = 6;
    type New = Gossip<M, R>;
    type Old = super::gossip::Gossip<M, R>;

    /// Ten identities, so that two states can hold more than `M` members between them.
    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(
            ([10, 0, 0, i % 10 + 1], 7000).into(),
            100 + u64::from(i % 10),
        )
    }

    /// Small declarations make merges drop members and tables compact.
    fn capacity(c: u8) -> Capacity {
        match c % 20 {
            0..=15 => Capacity::UNBOUNDED,
            16 => Capacity {
                members: 5,
                records: 3,
            },
            17 => Capacity {
                members: 8,
                records: 2,
            },
            18 => Capacity {
                members: 6,
                records: 4,
            },
            _ => Capacity {
                members: 8,
                records: 1,
            },
        }
    }

    fn status(s: u8) -> ReachabilityStatus {
        [
            ReachabilityStatus::Unreachable,
            ReachabilityStatus::Unreachable,
            ReachabilityStatus::Reachable,
            ReachabilityStatus::Terminated,
        ][usize::from(s % 4)]
    }

    /// One change to a state, made to both implementations.
    #[derive(Debug, Clone)]
    enum Op {
        Add { who: u8, capacity: u8 },
        Status { who: u8, to: u8 },
        Bump { who: u8, seen: bool },
        Seen { who: u8 },
        Unsee { who: u8 },
        Observe { o: u8, s: u8, status: u8 },
        Remove { who: u8, at: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..10u8, any::<u8>()).prop_map(|(who, capacity)| Op::Add { who, capacity }),
            2 => (0..10u8, any::<u8>()).prop_map(|(who, to)| Op::Status { who, to }),
            3 => (0..10u8, any::<bool>()).prop_map(|(who, seen)| Op::Bump { who, seen }),
            2 => (0..10u8).prop_map(|who| Op::Seen { who }),
            1 => (0..10u8).prop_map(|who| Op::Unsee { who }),
            // Observers and subjects among the first seven, so that rows pile up.
            5 => (0..7u8, 0..7u8, any::<u8>()).prop_map(|(o, s, status)| Op::Observe { o, s, status }),
            1 => (0..10u8, any::<u16>()).prop_map(|(who, at)| Op::Remove { who, at }),
        ]
    }

    /// Applies `op` to both; they must agree on the outcome and the resulting state.
    fn apply(new: &mut New, old: &mut Old, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Add { who, capacity: c } => {
                let m = Member {
                    capacity: capacity(c),
                    ..Member::joining(n(who), RoleSet::new(), AppVersion::default())
                };
                let (a, b) = (new.add_member(m.clone()), old.add_member(m));
                prop_assert_eq!(a.is_ok(), b.is_ok());
                prop_assert_eq!(a.ok(), b.ok());
            }
            Op::Status { who, to } => {
                let to = MemberStatus::ALL[usize::from(to) % MemberStatus::ALL.len()];
                if to != MemberStatus::Removed {
                    let a = new.set_status(&n(who), to).is_ok();
                    let b = old.set_status(&n(who), to).is_ok();
                    prop_assert_eq!(a, b);
                }
            }
            Op::Bump { who, seen } => {
                // Only members bump (a node bumps its own entry while a member).
                if new.is_member(&n(who)) {
                    prop_assert_eq!(
                        new.bump(n(who), seen).is_ok(),
                        old.bump(n(who), seen).is_ok()
                    );
                }
            }
            Op::Seen { who } => {
                new.add_seen(n(who));
                old.add_seen(n(who));
            }
            Op::Unsee { who } => {
                new.unsee(&n(who));
                old.unsee(&n(who));
            }
            Op::Observe { o, s, status: st } => {
                // Observers are members that record what their detector says.
                if new.is_member(&n(o)) && new.is_member(&n(s)) {
                    let a = new.observe(n(o), n(s), status(st));
                    let b = old.observe(n(o), n(s), status(st));
                    prop_assert_eq!(a.is_ok(), b.is_ok());
                    prop_assert_eq!(a.ok(), b.ok());
                }
            }
            Op::Remove { who, at } => {
                let at = Instant::from_millis(u64::from(at));
                new.remove_member(&n(who), at);
                old.remove_member(&n(who), at);
            }
        }
        new.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(&of(new), &*old, "after {:?}", op);
        Ok(())
    }

    fn build(base: (&New, &Old), ops: &[Op]) -> Result<(New, Old), TestCaseError> {
        let (mut new, mut old) = (base.0.clone(), base.1.clone());
        for op in ops {
            apply(&mut new, &mut old, op)?;
        }
        Ok((new, old))
    }

    /// Both implementations merge `b` into `a` alike, and agree on everything read from the
    /// two sides before.
    fn same_merge(a: (&New, &Old), b: (&New, &Old), now: Instant) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.0.compare(b.0), a.1.compare(b.1));
        prop_assert_eq!(a.0.merge_prunes(b.0), a.1.merge_prunes(b.1));
        let drops: std::vec::Vec<_> = a.0.merge_drops(b.0).collect();
        let old_drops: std::vec::Vec<_> = a.1.merge_drops(b.1).collect();
        prop_assert_eq!(drops, old_drops);
        prop_assert_eq!(a.0.version_digest(), a.1.version_digest());
        prop_assert_eq!(a.0.seen_digest(), a.1.seen_digest());
        for me in 0..10 {
            prop_assert_eq!(
                a.0.is_converged(&n(me), &[n(3)]),
                a.1.is_converged(&n(me), &[n(3)])
            );
            prop_assert_eq!(a.0.reachability_of(&n(me)), a.1.reachability_of(&n(me)));
        }
        let (mut new, mut old) = (a.0.clone(), a.1.clone());
        let (x, y) = (new.merge_in_at(b.0, now), old.merge_in_at(b.1, now));
        prop_assert_eq!(x.is_ok(), y.is_ok(), "{:?} vs {:?}", x, y);
        if x.is_ok() {
            new.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(&of(&new), &old);
            prop_assert_eq!(new.version_digest(), old.version_digest());
            prop_assert_eq!(new.seen_digest(), old.seen_digest());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Two states descended from a common one, or unrelated ones (empty base): every
        /// operation and both merges match the address-keyed reference.
        #[test]
        fn index_keyed_gossip_matches_the_address_keyed_reference(
            first in any::<u16>(),
            caps in any::<[u8; 10]>(),
            base in prop::collection::vec(op(), 0..24),
            left in prop::collection::vec(op(), 0..14),
            right in prop::collection::vec(op(), 0..14),
            now in 0..70_000u64,
        ) {
            // A few members to start with, so that states are not mostly empty.
            let first = (0..10u8)
                .filter(|i| first & (1 << i) != 0)
                .map(|who| Op::Add { who, capacity: caps[usize::from(who)] });
            let base: std::vec::Vec<Op> = first.chain(base).collect();
            let (new, old) = build((&New::new(), &Old::new()), &base)?;
            let (a, a_old) = build((&new, &old), &left)?;
            let (b, b_old) = build((&new, &old), &right)?;
            let now = Instant::from_millis(now);
            same_merge((&a, &a_old), (&b, &b_old), now)?;
            same_merge((&b, &b_old), (&a, &a_old), now)?;
            same_merge((&a, &a_old), (&a, &a_old), now)?;
        }
    }
}
