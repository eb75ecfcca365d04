//! Delta propagation: each local update's delta goes to every peer, a slice of peers per
//! tick (Pekko's `DeltaPropagationSelector`). Nothing is acknowledged or resent: a peer that
//! misses a delta is repaired by gossip, and a delta merged twice is harmless.

use std::collections::{BTreeMap, VecDeque};

use super::envelope::Envelope;
use crate::crdt::ReplicaId;

/// Deltas kept for peers that have not been sent them yet; beyond this the oldest are
/// dropped and the peers behind are repaired by gossip.
const MAX_LOG: usize = 100_000;

/// One key's deltas for one peer, joined; `None` if there were too many (send it whole).
pub(crate) type Group = (String, Option<Envelope>);

/// The log of recent deltas and, per peer, how far it has been sent.
#[derive(Debug, Default)]
pub(crate) struct DeltaLog {
    /// `(sequence number, key, delta)`, oldest first.
    log: VecDeque<(u64, String, Envelope)>,
    /// The last sequence number given out.
    seq: u64,
    /// Per peer, the last sequence number sent to it.
    sent: BTreeMap<ReplicaId, u64>,
    /// Where the next slice of peers starts.
    turn: usize,
    /// Deltas dropped because the log was full.
    dropped: u64,
}

impl DeltaLog {
    /// Files a delta of `key`.
    pub(crate) fn push(&mut self, key: &str, delta: Envelope) {
        self.seq += 1;
        self.log.push_back((self.seq, key.to_string(), delta));
        if self.log.len() > MAX_LOG {
            self.log.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "fjell-ddata: the delta log is full; the oldest deltas were dropped and \
                     the peers behind will be repaired by gossip"
                );
            }
        }
    }

    /// Makes the peers those given: a new peer starts at the current sequence number (what
    /// came before reaches it by gossip); a gone one is forgotten.
    pub(crate) fn set_peers(&mut self, peers: impl Iterator<Item = ReplicaId>) {
        let seq = self.seq;
        let mut sent = BTreeMap::new();
        for p in peers {
            sent.insert(p, self.sent.get(&p).copied().unwrap_or(seq));
        }
        self.sent = sent;
        self.collect();
    }

    /// The latest delta of `key` still held.
    pub(crate) fn last_of(&self, key: &str) -> Option<&Envelope> {
        self.log
            .iter()
            .rev()
            .find(|(_, k, _)| k == key)
            .map(|(_, _, d)| d)
    }

    /// True if some peer has deltas to be sent.
    pub(crate) fn pending(&self) -> bool {
        self.sent.values().any(|&s| s < self.seq)
    }

    /// The next slice of peers, at most `fanout` of them, and for each its deltas joined
    /// per key. A key with more than `max_group` deltas pending for that peer is marked
    /// `None`: it goes out whole instead.
    ///
    /// Pekko's slice is `min(max(N/5 + 1, 2), min(N, 10))`, so a delta takes up to five
    /// ticks (2 s by default) to reach every peer even in a small cluster. Every delta goes
    /// to every peer once either way; a larger slice only sends it sooner, in smaller
    /// batches.
    pub(crate) fn next_slice(
        &mut self,
        max_group: usize,
        fanout: usize,
    ) -> Vec<(ReplicaId, Vec<Group>)> {
        let n = self.sent.len();
        if n == 0 || !self.pending() {
            return Vec::new();
        }
        let size = n.min(fanout.max(1));
        let peers: Vec<ReplicaId> = self.sent.keys().copied().collect();
        let mut out = Vec::with_capacity(size);
        for i in 0..size {
            let peer = peers[(self.turn + i) % n];
            let from = self.sent[&peer];
            if from >= self.seq {
                continue;
            }
            let mut groups: BTreeMap<&str, (usize, Option<Envelope>)> = BTreeMap::new();
            let start = self.log.partition_point(|(s, _, _)| *s <= from);
            for (_, key, delta) in self.log.range(start..) {
                let (count, group) = groups.entry(key).or_insert((0, None));
                *count += 1;
                if *count > max_group {
                    *group = None;
                    continue;
                }
                match group {
                    Some(g) => {
                        // Deltas of one key on one replica are of one kind.
                        let _ = g.merge(delta);
                    }
                    None if *count == 1 => *group = Some(delta.clone()),
                    None => {}
                }
            }
            let entries = groups
                .into_iter()
                .map(|(k, (count, g))| (k.to_string(), if count > max_group { None } else { g }))
                .collect();
            out.push((peer, entries));
            self.sent.insert(peer, self.seq);
        }
        self.turn = (self.turn + size) % n;
        self.collect();
        out
    }

    /// Drops deltas every peer has been sent.
    fn collect(&mut self) {
        let done = self.sent.values().copied().min().unwrap_or(self.seq);
        while self.log.front().is_some_and(|(s, _, _)| *s <= done) {
            self.log.pop_front();
        }
    }

    /// Deltas held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.log.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Data, GCounter};
    use std::net::SocketAddr;

    fn id(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn delta(by: u16, n: u64) -> Envelope {
        let mut c = GCounter::default();
        c.increment(id(by), n);
        Envelope::new(Data::GCounter(c))
    }

    #[test]
    fn every_peer_is_sent_each_delta_once_and_the_log_empties() {
        let mut log = DeltaLog::default();
        let peers: Vec<_> = (1..=12).map(id).collect();
        log.set_peers(peers.iter().copied());
        log.push("a", delta(100, 1));
        log.push("a", delta(100, 2));
        let mut seen = BTreeMap::new();
        while log.pending() {
            for (peer, entries) in log.next_slice(50, 3) {
                assert_eq!(entries.len(), 1);
                *seen.entry(peer).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), 12);
        assert!(seen.values().all(|&n| n == 1));
        assert_eq!(log.len(), 0);
    }

    #[test]
    fn too_many_deltas_of_a_key_go_whole() {
        let mut log = DeltaLog::default();
        log.set_peers([id(1)].into_iter());
        for i in 0..3 {
            log.push("a", delta(100, i));
        }
        log.push("b", delta(100, 1));
        let slice = log.next_slice(2, 3);
        let entries = &slice[0].1;
        assert_eq!(entries[0], ("a".to_string(), None));
        assert!(entries[1].1.is_some());
    }

    #[test]
    fn a_new_peer_starts_at_the_present() {
        let mut log = DeltaLog::default();
        log.set_peers([id(1)].into_iter());
        log.push("a", delta(100, 1));
        log.set_peers([id(1), id(2)].into_iter());
        let slice = log.next_slice(50, 3);
        assert_eq!(slice.len(), 1);
        assert_eq!(slice[0].0, id(1));
    }
}
