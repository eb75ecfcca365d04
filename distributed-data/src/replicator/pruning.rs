//! Pruning (Pekko's rules, §1.8 of the notes): a removed member's contribution to the data
//! (its counter entries, its dots) is moved to a live replica so that state does not grow
//! with every node that ever wrote.
//!
//! 1. When a member is removed it is recorded with the *all-reachable clock*, which
//!    advances by the gossip interval only while every member is reachable.
//! 2. The leader of the replicas (the lowest address among the Up ones) also records
//!    writers found in the data that are neither members nor known removed (removed while
//!    this node was away), and, once a removed member's data has had
//!    `max-pruning-dissemination` of all-reachable time to spread, marks each entry
//!    holding it `Initialized { owner: leader }`.
//! 3. Every replica that merges a marked entry adds itself to the marker's `seen`.
//! 4. When every current peer has seen it, the owner prunes and marks the entry
//!    `Performed` until `pruning-marker-time-to-live`; every merge strips the removed
//!    member's data until then. The marker lists the dots the pruning renamed (an ORSet's
//!    elements added by the removed member get dots of the owner), so that a removal made
//!    by an old dot, before the pruning reached its replica, still removes the element.
//!    (Pekko re-adds such elements under new dots and loses that removal; the simulation
//!    found it.)
//!
//! Nothing is pruned while a member is unreachable: it may hold data not yet seen. Only a
//! node Up in its own view leads, and a removed member that shows up in the membership
//! again (the view had lagged behind its data) is a member: it is neither marked nor
//! pruned.

use std::collections::BTreeSet;

use fjell_core::MemberStatus;

use super::envelope::{Pruning, Value};
use super::Replicator;
use crate::crdt::{modified_by, Crdt, ReplicaId};

impl Replicator {
    pub(super) fn pruning_tick(&mut self) {
        if !self.peers.values().all(|p| p.reachable) {
            return;
        }
        if self.is_replica_leader() {
            self.collect_removed();
            self.initialize_pruning();
        }
        self.perform_pruning();
        self.expire_markers();
    }

    /// True if this node is Up and the lowest-addressed Up replica.
    fn is_replica_leader(&self) -> bool {
        self.self_up
            && !self
                .peers
                .iter()
                .any(|(id, p)| p.status == MemberStatus::Up && *id < self.me)
    }

    /// Writers in the data that are neither members nor known removed.
    fn collect_removed(&mut self) {
        let mut writers = BTreeSet::new();
        for entry in self.entries.values() {
            if let Value::Data(d) = &entry.envelope.value {
                d.modified_by(&mut writers);
            }
        }
        for w in writers {
            if w != self.me && !self.peers.contains_key(&w) {
                self.removed.entry(w).or_insert(self.all_reachable_ms);
            }
        }
    }

    fn initialize_pruning(&mut self) {
        let wait = self.settings.max_pruning_dissemination.as_millis() as u64;
        let ready: Vec<ReplicaId> = self
            .removed
            .iter()
            .filter(|(r, at)| {
                !self.peers.contains_key(r) && self.all_reachable_ms.saturating_sub(**at) >= wait
            })
            .map(|(r, _)| *r)
            .collect();
        if ready.is_empty() {
            return;
        }
        let me = self.me;
        let mut changed = Vec::new();
        for (key, entry) in self.entries.iter_mut() {
            let Value::Data(d) = &entry.envelope.value else {
                continue;
            };
            let writers = modified_by(d);
            for r in &ready {
                if !writers.contains(r) {
                    continue;
                }
                // A marker whose owner is gone is taken over in a higher round; one whose
                // owner lives is left to it, so two nodes that both think they lead do not
                // take it from each other in turn.
                let round = match entry.envelope.pruning.get(r) {
                    None => Some(0),
                    Some(Pruning::Initialized { owner, round, .. }) => (*owner != me
                        && !self.peers.contains_key(owner))
                    .then_some(round.saturating_add(1)),
                    Some(Pruning::Performed { .. }) => None,
                };
                if let Some(round) = round {
                    entry.envelope.pruning.insert(
                        *r,
                        Pruning::Initialized {
                            owner: me,
                            seen: vec![me],
                            round,
                        },
                    );
                    entry.recount(key);
                    changed.push(key.clone());
                }
            }
        }
        for key in changed {
            self.changed(&key);
        }
    }

    /// Prunes the entries this node owns the marker of, once every peer has seen it.
    fn perform_pruning(&mut self) {
        let me = self.me;
        let peers: Vec<ReplicaId> = self.gossip_targets();
        let now = self.now;
        let limits = self.settings.limits;
        let mut changed = Vec::new();
        for (key, entry) in self.entries.iter_mut() {
            let ttl = if self.settings.is_durable(key) {
                self.settings.durable_pruning_marker_time_to_live
            } else {
                self.settings.pruning_marker_time_to_live
            };
            let ready: Vec<ReplicaId> = entry
                .envelope
                .pruning
                .iter()
                .filter(|(_, p)| match p {
                    Pruning::Initialized { owner, seen, .. } => {
                        *owner == me && peers.iter().all(|p| seen.binary_search(p).is_ok())
                    }
                    Pruning::Performed { .. } => false,
                })
                .map(|(r, _)| *r)
                // A marker for a member (set by a node whose view lagged) is never
                // performed; `expire_markers` drops it.
                .filter(|r| !self.peers.contains_key(r))
                .collect();
            for r in ready {
                // Pruned on a copy first: the renames the marker lists grow the entry, and
                // an entry past the limits peers decode with could no longer be sent. Such
                // an entry stays unpruned (the marker waits) rather than stuck.
                let mut pruned = entry.envelope.clone();
                let renamed = match &mut pruned.value {
                    Value::Data(d) => d.prune_renaming(r, me),
                    Value::Deleted => Vec::new(),
                };
                pruned.pruning.insert(
                    r,
                    Pruning::Performed {
                        obsolete_at: now.saturating_add(super::millis(ttl)),
                        renamed,
                    },
                );
                let (size, bytes) = (pruned.size(), super::encoded_len(key, &pruned));
                if let Err(e) = super::check_limits(size, bytes, &limits) {
                    tracing::warn!(key, error = %e, "fjell-ddata: pruning would take an entry over the limits; not pruned");
                    continue;
                }
                entry.envelope = pruned;
                entry.recount(key);
                changed.push(key.clone());
            }
        }
        for key in changed {
            self.changed(&key);
        }
    }

    /// Drops performed markers past their time to live and markers started for a member
    /// (by a node whose view lagged), and forgets removed members no entry holds anything
    /// of.
    fn expire_markers(&mut self) {
        let now = self.now;
        let peers = &self.peers;
        let mut referenced = BTreeSet::new();
        for entry in self.entries.values_mut() {
            let before = entry.envelope.pruning.len();
            entry.envelope.pruning.retain(|r, p| match p {
                Pruning::Performed { obsolete_at, .. } => *obsolete_at > now,
                Pruning::Initialized { .. } => !peers.contains_key(r),
            });
            if entry.envelope.pruning.len() != before {
                entry.digest = None;
            }
            referenced.extend(entry.envelope.pruning.keys().copied());
            if let Value::Data(d) = &entry.envelope.value {
                d.modified_by(&mut referenced);
            }
        }
        self.removed.retain(|r, _| referenced.contains(r));
    }

    /// Removed members not yet forgotten.
    pub fn removed_members(&self) -> impl Iterator<Item = &ReplicaId> {
        self.removed.keys()
    }
}
