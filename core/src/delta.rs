//! Gossip deltas: sending a peer only the member records it lacks.
//!
//! Full gossip carries every member (about 28 bytes each), and Pekko sends it whole for every
//! change: at 1,000 members one leave cost the cluster 1.3 GB of gossip before deltas
//! (BENCHMARKS.md). A delta carries the member records that changed since a point the
//! receiver is believed to have reached, plus the parts that are small or not versioned (the
//! clock, the seen set as a bitmap, the reachability table and the tombstones); the receiver
//! rebuilds the sender's full state from its own and then handles it exactly like full
//! gossip. A delta is compression, never a different protocol.
//!
//! # How the sender knows what changed
//!
//! `History` gives every member record a *stamp*: a local counter value from the state in
//! which the record last changed (found by comparing record hashes with the previous state,
//! so no code that changes a record has to remember to stamp it). For the last [`VERSIONS`]
//! versions it keeps the version digest and the newest stamp in that state. A delta since a
//! version carries every record stamped after it.
//!
//! # Why a delta cannot corrupt a state
//!
//! The receiver checks the rebuilt member list against the sender's digest of its members.
//! If the receiver lacked a record the delta left out (it held another version than the
//! sender thought), the digests differ: a *miss*. The receiver then answers with its status,
//! as a reply, and a reply is always answered with full gossip, which always applies: a delta
//! could miss again, and the two would go on for good.
//!
//! # Which records a delta carries
//!
//! - A gossip round to a member that has not seen the current version: the records changed
//!   since the version before it (in a cluster that was converged, what the target holds).
//! - An answer to a status naming a version this node held: the records changed since it; for
//!   equal versions with different seen sets, none.
//! - Talkback after received gossip: after adopting the sender's version, none; otherwise the
//!   records of this node's state that differ from the sender's, found by comparing the two
//!   before merging (`History::since_state`).
//!
//! A status naming a version this node does not know is answered with its own status, as a
//! reply (Pekko's rule: the newer side sends, and a newer peer that held this node's version
//! sends a delta); a reply is answered with full gossip, so every exchange ends.

use crate::buf::Buf;
use crate::gossip::Gossip;

/// Versions remembered: a delta can be sent to a member at most this many versions behind.
pub const VERSIONS: usize = 8;

/// A stamp's top bit, set while [`History::record`] marks the unchanged records' entries
/// (stamps stay below it).
const KEPT: u32 = 1 << 31;

/// Changed records inserted one by one into the sorted table; more are sorted in together.
const INSERT_AT_MOST: usize = 16;

/// Stamps of the current members and the last [`VERSIONS`] versions (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct History<const M: usize> {
    /// The stamp the next changed record gets.
    next: u32,
    /// Each current member's stamp, by member index.
    stamps: Buf<u32, M>,
    /// (record hash, stamp) of each current member, sorted by hash: the previous state that
    /// the next state is compared with.
    by_hash: Buf<(u64, u32), M>,
    /// (version digest, newest stamp in that state), oldest first.
    versions: heapless::Deque<(u64, u32), VERSIONS>,
    /// Digest of the current member records, in member order.
    members_digest: u64,
    /// The state generation recorded last.
    generation: Option<u64>,
}

impl<const M: usize> History<M> {
    /// No history.
    pub const fn new() -> Self {
        History {
            next: 1,
            stamps: Buf::new(),
            by_hash: Buf::new(),
            versions: heapless::Deque::new(),
            members_digest: 0,
            generation: None,
        }
    }

    /// Forgets every version (the node starts over as a joiner).
    pub fn clear(&mut self) {
        self.stamps.clear();
        self.by_hash.clear();
        self.versions.clear();
        self.generation = None;
    }

    /// Records `g`, the state at `generation`: stamps the records that differ from the
    /// previously recorded state, and remembers the version. A pass over the members, once per
    /// state change. Returns whether the version is new.
    pub fn record<const R: usize>(&mut self, g: &Gossip<M, R>, generation: u64) -> bool {
        if self.generation == Some(generation) {
            return false;
        }
        self.generation = Some(generation);
        let stamp = self.next;
        let mut fresh = 0;
        let mut digest = members_digest_start();
        self.stamps.clear();
        for m in g.members() {
            let h = m.record_hash();
            digest.write_u64(h);
            let s = match self.by_hash.binary_search_by_key(&h, |(h, _)| *h) {
                Ok(i) => {
                    // Marked as kept: the record is unchanged.
                    let entry = &mut self.by_hash[i].1;
                    *entry |= KEPT;
                    *entry & !KEPT
                }
                Err(_) => {
                    fresh += 1;
                    stamp
                }
            };
            // The columns have the members' capacity.
            let _ = self.stamps.push(s);
        }
        // The table for the next state, without sorting it whole: the unchanged records' entries
        // stay in order, and the changed ones (usually a few) go in by binary search.
        self.by_hash.retain_mut(|(_, s)| {
            let kept = *s & KEPT != 0;
            *s &= !KEPT;
            kept
        });
        if fresh > 0 {
            let changed = g.members().iter().zip(self.stamps.iter());
            let changed = changed
                .filter(|(_, s)| **s == stamp)
                .map(|(m, _)| m.record_hash());
            if fresh <= INSERT_AT_MOST {
                for h in changed {
                    let at = self.by_hash.partition_point(|(k, _)| *k < h);
                    // Cannot fail: one entry per member at most.
                    let _ = self.by_hash.insert(at, (h, stamp));
                }
            } else {
                for h in changed {
                    let _ = self.by_hash.push((h, stamp));
                }
                crate::sorted::sort_by_key(&mut self.by_hash, |(h, _)| *h);
            }
        }
        let used = fresh > 0;
        self.members_digest = digest.finish();
        // Records can change without the version changing only if removed members' records
        // are dropped; the version then stays, and a delta against it carries the change.
        let newest = if used { stamp } else { self.next - 1 };
        if used {
            // Wraps after 2^31 state changes: stamps then compare wrongly for a while, and a
            // delta may carry too many records or too few (a miss, answered with full gossip).
            self.next = (self.next + 1) & !KEPT;
            self.next = self.next.max(1);
        }
        let version = g.version_digest();
        match self.versions.back_mut() {
            Some((v, s)) if *v == version => {
                *s = (*s).min(newest);
                false
            }
            _ => {
                if self.versions.is_full() {
                    self.versions.pop_front();
                }
                let _ = self.versions.push_back((version, newest));
                true
            }
        }
    }

    /// Whether the history describes the state at `generation`.
    pub fn is_current(&self, generation: u64) -> bool {
        self.generation == Some(generation)
    }

    /// The stamp of the state at version `digest`, if it is remembered: a delta against it is
    /// every member stamped after it.
    pub fn since(&self, digest: u64) -> Option<u32> {
        self.versions
            .iter()
            .rev()
            .find(|(v, _)| *v == digest)
            .map(|(_, s)| *s)
    }

    /// The stamp of the version before the current one, if remembered: a delta since it
    /// reaches a receiver that has every change but the last.
    pub fn previous(&self) -> Option<u32> {
        let n = self.versions.len();
        n.checked_sub(2)
            .and_then(|i| self.versions.get(i))
            .map(|(_, s)| *s)
    }

    /// The stamp of the oldest version remembered: a delta since it reaches any receiver
    /// whose state is one of the remembered versions, or between them.
    pub fn oldest(&self) -> Option<u32> {
        self.versions.front().map(|(_, s)| *s)
    }

    /// The stamp a delta from `ours` (the recorded state) to a receiver holding `theirs`
    /// must start after: the records of ours that differ from theirs are stamped later. The
    /// records a merge of the two changes are stamped later still, so it holds for the merged
    /// state too. A pass over both member lists.
    pub fn since_state<const R: usize>(&self, ours: &Gossip<M, R>, theirs: &Gossip<M, R>) -> u32 {
        let mut since = self.next.wrapping_sub(1);
        let (a, b) = (ours.members(), theirs.members());
        let mut j = 0;
        for (i, m) in a.iter().enumerate() {
            while b.get(j).is_some_and(|t| t.address < m.address) {
                j += 1;
            }
            let same = b.get(j).is_some_and(|t| t == m);
            if !same {
                let s = self.stamps.get(i).copied().unwrap_or(0);
                since = since.min(s.saturating_sub(1));
            }
        }
        since
    }

    /// Each current member's stamp, by member index.
    pub fn stamps(&self) -> &[u32] {
        &self.stamps
    }

    /// Digest of the current member records, in member order: a rebuilt state must match it.
    pub fn members_digest(&self) -> u64 {
        self.members_digest
    }
}

fn members_digest_start() -> crate::address::Digest {
    crate::address::Digest::new()
}

/// Digest of `g`'s member records, in member order, as [`History::members_digest`] computes it.
pub(crate) fn members_digest<const M: usize, const R: usize>(g: &Gossip<M, R>) -> u64 {
    let mut d = members_digest_start();
    for m in g.members() {
        d.write_u64(m.record_hash());
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::UniqueAddress;
    use crate::member::{AppVersion, Member, MemberStatus, RoleSet};
    use crate::time::Instant;
    use crate::wire::{Changes, Message, WireError};

    type G = Gossip<16, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 7000).into(), 0x5EED_0000 + u64::from(i))
    }

    /// Ten Up members, converged, `n(1)`'s clock at 1.
    fn cluster() -> G {
        let mut g = G::new();
        for i in 1..=10 {
            let mut m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            m.status = MemberStatus::Up;
            m.up_number = core::num::NonZeroU32::new(u32::from(i));
            g.add_member(m).unwrap();
        }
        g.bump(n(1), true).unwrap();
        for i in 2..=10 {
            g.add_seen(n(i));
        }
        g
    }

    /// The delta of `history`'s state `g` since `since`, from `n(1)` to `n(2)`, as bytes.
    fn delta<const M: usize, const R: usize>(
        g: &Gossip<M, R>,
        history: &History<M>,
        since: u32,
    ) -> std::vec::Vec<u8> {
        let msg = Message::GossipDelta {
            from: n(1),
            to: n(2),
            gossip: g,
        };
        let mut buf = std::vec![0u8; 8192];
        let changes = Changes {
            stamps: history.stamps(),
            since,
            digest: history.members_digest(),
        };
        let len = msg
            .emit_changes(Instant::ZERO, &mut buf, Some(changes))
            .unwrap();
        buf.truncate(len);
        buf
    }

    /// The table `record` keeps, rebuilt from scratch: every current member's (record hash,
    /// stamp), sorted.
    fn rebuilt<const M: usize, const R: usize>(
        g: &Gossip<M, R>,
        h: &History<M>,
    ) -> std::vec::Vec<(u64, u32)> {
        let mut v: std::vec::Vec<_> = g
            .members()
            .iter()
            .zip(h.stamps())
            .map(|(m, s)| (m.record_hash(), *s))
            .collect();
        v.sort_unstable();
        v
    }

    proptest::proptest! {
        /// Over random runs of joins, status changes and removals, the table `record` updates
        /// in place (few changes inserted, many sorted in) equals the table rebuilt from
        /// scratch, and a record keeps its stamp exactly while it is unchanged.
        #[test]
        fn the_table_updated_in_place_equals_the_table_rebuilt(
            steps in proptest::collection::vec((0u8..4, 1u8..=16, 0u8..=16), 1..60),
        ) {
            let mut g = G::new();
            let mut h = History::<16>::new();
            let mut generation = 0;
            for (op, who, many) in steps {
                let before: std::vec::Vec<(u64, u32)> = g
                    .members()
                    .iter()
                    .zip(h.stamps())
                    .map(|(m, s)| (m.record_hash(), *s))
                    .collect();
                match op {
                    // Joins: one, or many at once (the sorted path).
                    0 => {
                        for i in who..=who.saturating_add(many).min(16) {
                            let m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
                            let _ = g.add_member(m);
                        }
                    }
                    1 => {
                        let _ = g.set_status(&n(who), MemberStatus::Up);
                    }
                    2 => {
                        let _ = g.set_status(&n(who), MemberStatus::Leaving);
                    }
                    _ => {
                        g.remove_member(&n(who), Instant::ZERO);
                    }
                }
                generation += 1;
                h.record(&g, generation);
                let table: std::vec::Vec<_> = h.by_hash.iter().copied().collect();
                proptest::prop_assert_eq!(&table, &rebuilt(&g, &h));
                let newest = h.next.wrapping_sub(1);
                for (m, s) in g.members().iter().zip(h.stamps()) {
                    let hash = m.record_hash();
                    match before.iter().find(|(k, _)| *k == hash) {
                        Some((_, old)) => proptest::prop_assert_eq!(s, old),
                        None => proptest::prop_assert_eq!(*s, newest),
                    }
                }
            }
        }
    }

    fn full_len(g: &G) -> usize {
        let msg = Message::Gossip {
            from: n(1),
            to: n(2),
            gossip: g,
        };
        msg.buffer_len(Instant::ZERO)
    }

    /// One member leaves, one joins, one is removed: the delta against the version before
    /// carries those records only and rebuilds exactly the sender's state.
    #[test]
    fn a_delta_rebuilds_the_senders_state_from_the_receivers() {
        let before = cluster();
        let mut h = History::<16>::new();
        h.record(&before, 1);
        let base = before.version_digest();
        let mut after = before.clone();
        after.set_status(&n(4), MemberStatus::Leaving).unwrap();
        after.remove_member(&n(7), Instant::ZERO);
        let joiner = Member::joining(n(12), RoleSet::new(), AppVersion::default());
        after.add_member(joiner).unwrap();
        after.bump(n(1), true).unwrap();
        h.record(&after, 2);

        let since = h.since(base).unwrap();
        let changed = h.stamps().iter().filter(|s| **s > since).count();
        assert_eq!(changed, 2, "n(4) and n(12)");
        let bytes = delta(&after, &h, since);
        assert!(
            bytes.len() * 2 < full_len(&after),
            "{} bytes against {} for full gossip",
            bytes.len(),
            full_len(&after)
        );
        let mut rebuilt = G::new();
        let msg = Message::parse_against(&bytes, &before, &mut rebuilt, Instant::ZERO).unwrap();
        assert!(matches!(msg, Message::GossipDelta { .. }));
        rebuilt.check_invariants().unwrap();
        assert_eq!(rebuilt, after);
    }

    /// Equal versions with different seen sets: a delta without records carries the seen set.
    #[test]
    fn a_delta_against_the_same_version_carries_the_seen_set() {
        let mut g = cluster();
        let mut h = History::<16>::new();
        h.record(&g, 1);
        let mut receiver = g.clone();
        receiver.unsee(&n(5));
        g.add_seen(n(5));
        h.record(&g, 2);
        let base = g.version_digest();
        let since = h.since(base).unwrap();
        assert_eq!(h.stamps().iter().filter(|s| **s > since).count(), 0);
        let mut rebuilt = G::new();
        Message::parse_against(
            &delta(&g, &h, since),
            &receiver,
            &mut rebuilt,
            Instant::ZERO,
        )
        .unwrap();
        assert_eq!(rebuilt, g);
    }

    /// A receiver at another version, or a sender whose history missed a change, gets a
    /// miss: never a state other than the sender's.
    #[test]
    fn a_delta_for_another_state_is_a_miss() {
        let before = cluster();
        let mut h = History::<16>::new();
        h.record(&before, 1);
        let base = before.version_digest();
        let mut after = before.clone();
        after.set_status(&n(4), MemberStatus::Leaving).unwrap();
        after.bump(n(1), true).unwrap();
        h.record(&after, 2);
        let since = h.since(base).unwrap();
        let mut scratch = G::new();

        // The receiver moved on concurrently.
        let mut elsewhere = before.clone();
        elsewhere.set_status(&n(5), MemberStatus::Leaving).unwrap();
        elsewhere.bump(n(2), true).unwrap();
        let bytes = delta(&after, &h, since);
        assert_eq!(
            Message::parse_against(&bytes, &elsewhere, &mut scratch, Instant::ZERO),
            Err(WireError::StaleBase)
        );

        // The right version, but the sender left out a changed record (as a history that
        // missed a change would): the rebuilt members do not match the sender's digest.
        let stale = delta(&after, &h, u32::MAX);
        assert_eq!(
            Message::parse_against(&stale, &before, &mut scratch, Instant::ZERO),
            Err(WireError::StaleBase)
        );
    }

    /// Two members let in concurrently at the member limit: rebuilt on the other side, the
    /// state would hold both, one more than fits. That is a miss (answered with a status and
    /// then full gossip, whose merge drops one), not a decode error that nobody answers.
    #[test]
    fn a_delta_that_would_overflow_the_receiver_is_a_miss() {
        type S = Gossip<4, 8>;
        let mut base = S::new();
        for i in 1..=3 {
            let m = Member::joining(n(i), RoleSet::new(), AppVersion::default());
            base.add_member(m).unwrap();
        }
        let mut sender = base.clone();
        let mut h = History::<4>::new();
        h.record(&sender, 1);
        let since = h.since(sender.version_digest()).unwrap();
        let b = Member::joining(n(5), RoleSet::new(), AppVersion::default());
        sender.add_member(b).unwrap();
        sender.bump(n(2), true).unwrap();
        h.record(&sender, 2);
        let mut receiver = base.clone();
        let a = Member::joining(n(4), RoleSet::new(), AppVersion::default());
        receiver.add_member(a).unwrap();
        receiver.bump(n(1), true).unwrap();

        let mut scratch = S::new();
        assert_eq!(
            Message::parse_against(
                &delta(&sender, &h, since),
                &receiver,
                &mut scratch,
                Instant::ZERO
            ),
            Err(WireError::StaleBase)
        );
    }

    /// The history remembers the last [`VERSIONS`] versions, and a record's stamp stays
    /// until the record changes.
    #[test]
    fn the_history_keeps_recent_versions_and_stamps() {
        let mut g = cluster();
        let mut h = History::<16>::new();
        h.record(&g, 0);
        let first = g.version_digest();
        let stamp_of_9 = h.stamps()[8];
        for k in 1..=VERSIONS as u64 {
            g.bump(n(1), true).unwrap();
            h.record(&g, k);
            assert!(h.oldest().is_some());
        }
        assert_eq!(h.since(first), None, "pushed out");
        assert!(h.since(g.version_digest()).is_some());
        assert_eq!(h.stamps()[8], stamp_of_9, "n(9) never changed");
        // Recording the same generation again is free and changes nothing.
        let stamps: std::vec::Vec<u32> = h.stamps().to_vec();
        h.record(&g, VERSIONS as u64);
        assert_eq!(h.stamps(), &stamps[..]);
    }
}
