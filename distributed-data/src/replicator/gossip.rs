//! Anti-entropy: every gossip interval a replica sends one peer the digests of its keys
//! (in chunks of at most `max-delta-elements` keys, by key hash); the peer answers with the
//! entries that differ, asks for the keys it lacks, and sets `send_back` when both sides
//! hold changes, so the sender answers with its merged entries. Replicas that missed
//! deltas, were partitioned or restarted converge this way.

use std::collections::BTreeMap;

use super::envelope::{fnv1a, Envelope};
use super::message::{KeyRange, Message, MISSING};
use super::Replicator;
use crate::crdt::ReplicaId;

/// Status chunks sent per gossip tick at most (Pekko: 10).
const CHUNKS_PER_TICK: u32 = 10;

fn chunk_of(key: &str, chunks: u32) -> u32 {
    (fnv1a(key.as_bytes()) % u64::from(chunks.max(1))) as u32
}

/// `digests` cut into runs of at most `max_keys` keys and about `max_bytes` bytes.
fn parts(digests: &[(String, u64)], max_keys: usize, max_bytes: usize) -> Vec<&[(String, u64)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, _)) in digests.iter().enumerate() {
        // A key's bytes, its length's and the digest's varints at most.
        let size = key.len() + 12;
        if i > start && (i - start >= max_keys.max(1) || bytes + size > max_bytes) {
            out.push(&digests[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < digests.len() {
        out.push(&digests[start..]);
    }
    out
}

impl Replicator {
    /// Sends one peer the digests of the next chunks of keys. Reachable peers are
    /// preferred; an unreachable one is tried only when no other is left.
    pub(super) fn gossip_tick(&mut self) {
        let targets = self.gossip_targets();
        let reachable: Vec<ReplicaId> = targets
            .iter()
            .filter(|p| self.peers[*p].reachable)
            .copied()
            .collect();
        let pool = if reachable.is_empty() {
            targets
        } else {
            reachable
        };
        if pool.is_empty() {
            return;
        }
        let to = pool[(self.random() % pool.len() as u64) as usize];
        let per = self.settings.max_delta_elements.max(1);
        let chunks = self.entries.len().div_ceil(per).max(1) as u32;
        let mut by_chunk: BTreeMap<u32, Vec<(String, u64)>> = BTreeMap::new();
        let first = self.chunk % chunks;
        let count = chunks.min(CHUNKS_PER_TICK);
        let wanted = |c: u32| (c + chunks - first) % chunks < count;
        for (key, entry) in self.entries.iter_mut() {
            let c = chunk_of(key, chunks);
            if wanted(c) {
                by_chunk
                    .entry(c)
                    .or_default()
                    .push((key.clone(), entry.digest()));
            }
        }
        if by_chunk.is_empty() {
            // No keys: an empty status still lets the peer push what it has.
            by_chunk.insert(first, Vec::new());
        }
        self.chunk = (first + count) % chunks;
        for (chunk, digests) in by_chunk {
            // Hash chunks are uneven: a chunk over the message's bounds (keys, bytes) goes
            // in parts, each naming the range of keys (in order) it covers.
            let parts = parts(
                &digests,
                self.settings.limits.max_entries,
                self.settings.limits.max_message_bytes / 2,
            );
            let mut after = None;
            for (i, part) in parts.iter().enumerate() {
                let through = (i + 1 < parts.len())
                    .then(|| part.last().map(|(k, _)| k.clone()))
                    .flatten();
                let range = KeyRange {
                    after: after.take(),
                    through: through.clone(),
                };
                after = through;
                self.send(
                    to,
                    Message::Status {
                        chunk,
                        chunks,
                        range,
                        digests: part.to_vec(),
                        reply: false,
                        to_uid: to.uid(),
                    },
                );
            }
            if parts.is_empty() {
                self.send(
                    to,
                    Message::Status {
                        chunk,
                        chunks,
                        range: KeyRange::ALL,
                        digests: Vec::new(),
                        reply: false,
                        to_uid: to.uid(),
                    },
                );
            }
        }
    }

    /// Answers a status: the entries that differ or the sender lacks, and — unless this is
    /// already an answer — a status asking for the keys this replica lacks.
    pub(super) fn receive_status(
        &mut self,
        from: ReplicaId,
        (chunk, chunks, range): (u32, u32, KeyRange),
        digests: Vec<(String, u64)>,
        reply: bool,
    ) {
        let theirs: BTreeMap<String, u64> = digests.into_iter().collect();
        let mut send = Vec::new();
        let mut send_back = false;
        if reply {
            // An answer lists only what the peer asks for.
            for key in theirs.keys() {
                if let Some(e) = self.entries.get(key) {
                    send.push((key.clone(), e.envelope.clone()));
                }
            }
        } else {
            for (key, entry) in self.entries.iter_mut() {
                if chunk_of(key, chunks) != chunk || !range.contains(key) {
                    continue;
                }
                let mine = entry.digest();
                match theirs.get(key) {
                    Some(d) if *d == mine => {}
                    found => {
                        send_back |= found.is_some_and(|d| *d != MISSING);
                        send.push((key.clone(), entry.envelope.clone()));
                    }
                }
            }
        }
        send.truncate(self.settings.max_delta_elements);
        let to_uid = from.uid();
        for entries in self.split(send) {
            self.send(
                from,
                Message::Gossip {
                    entries,
                    send_back,
                    to_uid,
                },
            );
        }
        if !reply {
            let missing: Vec<(String, u64)> = theirs
                .iter()
                .filter(|(k, d)| **d != MISSING && !self.entries.contains_key(*k))
                .map(|(k, _)| (k.clone(), MISSING))
                .collect();
            if !missing.is_empty() {
                self.send(
                    from,
                    Message::Status {
                        chunk,
                        chunks,
                        range,
                        digests: missing,
                        reply: true,
                        to_uid,
                    },
                );
            }
        }
    }

    /// Merges gossiped entries; answers with the merged ones it already had if asked to.
    pub(super) fn receive_gossip(
        &mut self,
        from: ReplicaId,
        entries: Vec<(String, Envelope)>,
        send_back: bool,
    ) {
        let mut back = Vec::new();
        for (key, envelope) in entries {
            let had = self.entries.contains_key(&key);
            match self.merge_in(&key, &envelope, true) {
                Ok(_) if send_back && had => {
                    if let Some(e) = self.entry(&key) {
                        back.push((key, e.clone()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(key, %e, from = %from.socket_addr(), "fjell-ddata: a gossiped entry was refused");
                }
            }
        }
        let to_uid = from.uid();
        for entries in self.split(back) {
            self.send(
                from,
                Message::Gossip {
                    entries,
                    send_back: false,
                    to_uid,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parts;

    #[test]
    fn parts_hold_every_key_once_within_both_bounds() {
        let digests: Vec<(String, u64)> = (0..100).map(|i| ("k".repeat(i % 30 + 1), 1)).collect();
        let cut = parts(&digests, 7, 200);
        assert_eq!(cut.iter().map(|p| p.len()).sum::<usize>(), digests.len());
        for p in &cut {
            assert!(p.len() <= 7);
            let bytes: usize = p.iter().map(|(k, _)| k.len() + 12).sum();
            assert!(bytes <= 200 || p.len() == 1, "{bytes}");
        }
        assert!(parts(&[], 7, 200).is_empty());
    }
}
