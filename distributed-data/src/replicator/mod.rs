//! The replicator of one node, sans-IO: it holds this node's replica of every key, applies
//! local reads and writes at the chosen consistency, and keeps replicas converging by deltas,
//! gossip and pruning. It never touches a socket, a clock or a file: the caller feeds it
//! membership ([`Replicator::handle_members`]), messages ([`Replicator::handle_message`]) and
//! time ([`Replicator::handle_timeout`], with milliseconds on a clock shared by the
//! cluster's nodes, such as the wall clock), and carries out its [`Output`]s in order:
//! messages to send, finished operations, changed keys, and entries to store durably (a
//! `Store` comes before the acknowledgement that depends on it, so a caller that stores
//! before going on never acknowledges an unstored write).
//!
//! Rules live in small modules: [`consistency`] (how many replicas), `quorum` (waiting for
//! them), `deltas` (delta propagation), `gossip` (anti-entropy), `pruning` (removed
//! members' data), [`envelope`] (merging one entry), [`message`] (the wire, with bounds).

pub mod consistency;
mod deltas;
pub mod envelope;
mod gossip;
pub mod message;
mod pruning;
mod quorum;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;

use fjell_core::MemberStatus;

pub use consistency::{ReadConsistency, WriteConsistency};
pub use envelope::{Envelope, Pruning, Value};
pub use message::{DecodeError, KeyRange, Limits, Message, MISSING};

use crate::crdt::{ReplicaId, ReplicatedData, WrongKind};
use crate::key::{self, Key};
use crate::settings::ReplicatorSettings;
use consistency::Level;
use deltas::DeltaLog;
use quorum::{Kind, Outcome, Quorum, MAX_SECONDARIES};

/// Identifies a read, update or delete until its [`Output::Done`].
pub type OpId = u64;

/// A member as the replicator sees it: the caller passes the members holding replicas
/// (those with the replicator's role), this node included or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberView {
    /// The member.
    pub id: ReplicaId,
    /// Its status.
    pub status: MemberStatus,
    /// False if some member flags it unreachable.
    pub reachable: bool,
}

/// What the caller does next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `message` to replica `to`.
    Send {
        /// The replica.
        to: ReplicaId,
        /// The message.
        message: Message,
    },
    /// An operation is decided.
    Done {
        /// The operation.
        op: OpId,
        /// Its result.
        result: OpResult,
    },
    /// The entry of `key` changed (only for keys [watched](Replicator::watch)).
    Changed {
        /// The key.
        key: String,
    },
    /// Store the entry of a durable key before carrying out the outputs after this one.
    Store {
        /// The key.
        key: String,
        /// The entry.
        envelope: Envelope,
    },
}

/// The result of an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// A read: the entry (a deleted key's tombstone included), or `None` if no replica
    /// asked has the key.
    Get(Result<Option<Envelope>, ReplicationError>),
    /// An update or delete. It was applied to the local replica whatever the result.
    Write(Result<(), ReplicationError>),
}

/// Why an operation did not reach its consistency level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// The timeout passed first.
    #[error("timed out with {replies} of {required} replicas (this one included)")]
    Timeout {
        /// Replicas that answered, this one included.
        replies: usize,
        /// Replicas required.
        required: usize,
    },
    /// Fewer replicas exist than the level asks for.
    #[error("{required} replicas required but only {available} exist")]
    NotEnoughReplicas {
        /// Replicas that exist, this one included.
        available: usize,
        /// Replicas required.
        required: usize,
    },
    /// Too many replicas refused (they hold another kind of value under the key).
    #[error("{refused} replicas refused the write")]
    Refused {
        /// Replicas that refused.
        refused: usize,
    },
}

/// Why an operation could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The key id is empty, too long, or ends in `*`.
    #[error("a key id must be 1 to {} bytes, not ending in `*`", key::MAX_KEY_LEN)]
    BadKey,
    /// The consistency level is unusable.
    #[error("consistency level: {0}")]
    BadLevel(&'static str),
    /// The key holds another kind of data.
    #[error(transparent)]
    WrongKind(#[from] WrongKind),
    /// The key was deleted; it cannot be written again.
    #[error("the key was deleted")]
    Deleted,
    /// The value grew beyond `limits.max-entry-size` (elements, dots, counters): peers
    /// would refuse it. The change stays on this replica only.
    #[error("the value's size {size} is over limits.max-entry-size ({limit})")]
    TooLarge {
        /// The value's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoded value grew beyond what one message of `limits.max-message-bytes`
    /// holds: it cannot be sent. The change stays on this replica only.
    #[error("the encoded value's {bytes} bytes do not fit in one message (at most {limit})")]
    TooManyBytes {
        /// The encoded value's bytes, its key included.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// One key's entry on this replica.
#[derive(Debug)]
struct Entry {
    envelope: Envelope,
    /// The envelope's digest, computed when first needed after a change.
    digest: Option<u64>,
    /// At least the envelope's size and encoded bytes (its key's included): raised by what
    /// each change merges in, and computed exactly only when one passes its limit, since
    /// an exact count is a pass over the value and updates must not cost in proportion to
    /// it.
    size: usize,
    bytes: usize,
}

impl Entry {
    fn new(key: &str, envelope: Envelope) -> Entry {
        Entry {
            size: envelope.size(),
            bytes: encoded_len(key, &envelope),
            envelope,
            digest: None,
        }
    }

    fn digest(&mut self) -> u64 {
        *self.digest.get_or_insert_with(|| self.envelope.digest())
    }

    /// Counts the entry's size and bytes again, exactly: after a change that is not a
    /// merge (pruning).
    fn recount(&mut self, key: &str) {
        self.size = self.envelope.size();
        self.bytes = encoded_len(key, &self.envelope);
        self.digest = None;
    }

    /// Counts what a change merged in (`added`: its size and encoded bytes); the exact
    /// counts when a bound passes its limit. An error if the entry is over a limit.
    fn grew(&mut self, key: &str, added: (usize, usize), limits: &Limits) -> Result<(), OpError> {
        self.size = self.size.saturating_add(added.0);
        self.bytes = self.bytes.saturating_add(added.1);
        if self.size > limits.max_entry_size {
            self.size = self.envelope.size();
        }
        if self.bytes > limits.max_entry_bytes() {
            self.bytes = encoded_len(key, &self.envelope);
        }
        check_limits(self.size, self.bytes, limits)
    }
}

/// The bytes of `key` and `envelope` in a message.
pub(crate) fn encoded_len(key: &str, envelope: &Envelope) -> usize {
    key.len() + postcard::experimental::serialized_size(envelope).unwrap_or(usize::MAX - key.len())
}

/// What an entry of `size` and `bytes` breaks of the limits peers decode with.
pub(crate) fn check_limits(size: usize, bytes: usize, limits: &Limits) -> Result<(), OpError> {
    if size > limits.max_entry_size {
        return Err(OpError::TooLarge {
            size,
            limit: limits.max_entry_size,
        });
    }
    if bytes > limits.max_entry_bytes() {
        return Err(OpError::TooManyBytes {
            bytes,
            limit: limits.max_entry_bytes(),
        });
    }
    Ok(())
}

/// Milliseconds of `d`, saturating: settings and timeouts come from configuration and
/// callers, and time arithmetic must not overflow.
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Another member holding replicas.
#[derive(Debug, Clone, Copy)]
struct Peer {
    status: MemberStatus,
    reachable: bool,
}

/// The replicator of one node (see the [module docs](self)).
#[derive(Debug)]
pub struct Replicator {
    me: ReplicaId,
    settings: ReplicatorSettings,
    entries: BTreeMap<String, Entry>,
    peers: BTreeMap<ReplicaId, Peer>,
    by_addr: HashMap<SocketAddr, ReplicaId>,
    /// Removed members, with the all-reachable clock when they were removed.
    removed: BTreeMap<ReplicaId, u64>,
    /// True while this node is Up in its own view: only then may it lead pruning, since a
    /// node still joining (or leaving) may not know every member yet.
    self_up: bool,
    /// Milliseconds of gossip ticks during which every member was reachable.
    all_reachable_ms: u64,
    watched: BTreeSet<String>,
    watched_prefixes: BTreeSet<String>,
    ops: BTreeMap<OpId, Quorum>,
    next_op: OpId,
    deltas: DeltaLog,
    out: VecDeque<Output>,
    next_gossip: u64,
    next_delta: u64,
    next_pruning: u64,
    /// The next status chunk to send.
    chunk: u32,
    /// Entries not sent because they are over the limits peers decode with.
    oversized: u64,
    rng: u64,
    now: u64,
}

impl Replicator {
    /// A replicator for replica `me`, with checked `settings`, drawing its random choices
    /// from `seed`, at time `now` (milliseconds).
    pub fn new(me: ReplicaId, settings: ReplicatorSettings, seed: u64, now: u64) -> Replicator {
        Replicator {
            me,
            next_gossip: now.saturating_add(millis(settings.gossip_interval)),
            next_delta: now.saturating_add(millis(settings.delta_interval)),
            next_pruning: now.saturating_add(millis(settings.pruning_interval)),
            settings,
            entries: BTreeMap::new(),
            peers: BTreeMap::new(),
            by_addr: HashMap::new(),
            removed: BTreeMap::new(),
            self_up: false,
            all_reachable_ms: 0,
            watched: BTreeSet::new(),
            watched_prefixes: BTreeSet::new(),
            ops: BTreeMap::new(),
            next_op: 1,
            deltas: DeltaLog::default(),
            out: VecDeque::new(),
            chunk: 0,
            oversized: 0,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            now,
        }
    }

    /// This replica's identity.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// The settings.
    pub fn settings(&self) -> &ReplicatorSettings {
        &self.settings
    }

    /// Merges an entry loaded from the durable store at start. An entry that changed by
    /// the merge is stored again.
    pub fn load(&mut self, key: &str, envelope: Envelope) -> Result<(), WrongKind> {
        self.merge_in(key, &envelope, false).map(|_| ())
    }

    /// The local entry of `key`.
    pub fn entry(&self, key: &str) -> Option<&Envelope> {
        self.entries.get(key).map(|e| &e.envelope)
    }

    /// The local value of `key` as `D`: `Ok(None)` if absent or deleted.
    pub fn local<D: ReplicatedData>(&self, key: &Key<D>) -> Result<Option<&D>, WrongKind> {
        match self.entry(key.id()).and_then(|e| e.data()) {
            Some(d) => D::from_data_ref(d).map(Some),
            None => Ok(None),
        }
    }

    /// The keys held, deleted ones included.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Replicas of the data: the members holding one, this node included.
    pub fn replica_count(&self) -> usize {
        self.quorum_peers(false).len() + 1
    }

    /// Reports [`Output::Changed`] for `key`, or for every key starting with the prefix if
    /// `key` ends in `*`.
    pub fn watch(&mut self, key: &str) {
        match key.strip_suffix('*') {
            Some(prefix) => self.watched_prefixes.insert(prefix.to_string()),
            None => self.watched.insert(key.to_string()),
        };
    }

    /// Stops reporting changes of `key` (as given to [`Replicator::watch`]).
    pub fn unwatch(&mut self, key: &str) {
        match key.strip_suffix('*') {
            Some(prefix) => self.watched_prefixes.remove(prefix),
            None => self.watched.remove(key),
        };
    }

    fn is_watched(&self, key: &str) -> bool {
        self.watched.contains(key) || self.watched_prefixes.iter().any(|p| key.starts_with(p))
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Takes the result of `op` out of the outputs if it is decided already (a local read
    /// or write), leaving the other outputs in order. Outputs before it that it depends on
    /// (a `Store`) must have been carried out first: callers use this only for keys that
    /// are not durable.
    pub fn take_done(&mut self, op: OpId) -> Option<OpResult> {
        let at = self
            .out
            .iter()
            .rposition(|o| matches!(o, Output::Done { op: o, .. } if *o == op))?;
        match self.out.remove(at) {
            Some(Output::Done { result, .. }) => Some(result),
            _ => None,
        }
    }

    /// True if outputs are waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// When [`Replicator::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> u64 {
        let mut at = self.next_gossip.min(self.next_pruning);
        if self.deltas.pending() {
            at = at.min(self.next_delta);
        }
        for q in self.ops.values() {
            at = at.min(q.deadline);
            if let Some(s) = q.secondary_at {
                at = at.min(s);
            }
        }
        at
    }

    /// Takes the members holding replicas. Members gone from the list (or Removed) are
    /// removed: their data will be pruned.
    pub fn handle_members(&mut self, now: u64, members: &[MemberView]) {
        self.now = self.now.max(now);
        let mut peers = BTreeMap::new();
        self.self_up = false;
        for m in members {
            if m.id == self.me {
                self.self_up = m.status == MemberStatus::Up;
                continue;
            }
            if m.status == MemberStatus::Removed {
                continue;
            }
            peers.insert(
                m.id,
                Peer {
                    status: m.status,
                    reachable: m.reachable,
                },
            );
        }
        for gone in self.peers.keys().filter(|p| !peers.contains_key(p)) {
            self.removed.entry(*gone).or_insert(self.all_reachable_ms);
        }
        // A writer taken for removed because its data arrived before its membership did
        // (this view lagged) is a member after all.
        self.removed.retain(|r, _| !peers.contains_key(r));
        self.by_addr = peers.keys().map(|p| (p.socket_addr(), *p)).collect();
        self.peers = peers;
        let targets = self.gossip_targets();
        self.deltas.set_peers(targets.into_iter());
    }

    /// Members whose replicas count for quorums: those that have been Up, until removed
    /// (Pekko's `nodes`), without Exiting ones if `no_exiting`.
    fn quorum_peers(&self, no_exiting: bool) -> Vec<(ReplicaId, bool)> {
        use MemberStatus::*;
        self.peers
            .iter()
            .filter(|(_, p)| match p.status {
                Up | Leaving | PreparingForShutdown | ReadyForShutdown => true,
                Exiting => !no_exiting,
                Joining | WeaklyUp | Down | Removed => false,
            })
            .map(|(id, p)| (*id, p.reachable))
            .collect()
    }

    /// Members deltas and gossip go to: the quorum's, plus WeaklyUp ones.
    fn gossip_targets(&self) -> Vec<ReplicaId> {
        use MemberStatus::*;
        self.peers
            .iter()
            .filter(|(_, p)| !matches!(p.status, Joining | Down | Removed))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Reads `key` at `level`; the entry comes with [`Output::Done`].
    pub fn get(&mut self, now: u64, key: &str, level: ReadConsistency) -> Result<OpId, OpError> {
        let level = self.check(now, key, level)?;
        let op = self.take_op();
        let local = self.entry(key).cloned();
        self.start(op, key, level, Kind::Read { merged: local });
        Ok(op)
    }

    /// Updates `key` with `modify` on the local replica (from `D`'s empty value if absent),
    /// then replicates the change at `level`. Fails at once, with nothing changed, if the
    /// key holds another kind of data or was deleted.
    pub fn update<D: ReplicatedData>(
        &mut self,
        now: u64,
        key: &Key<D>,
        level: WriteConsistency,
        modify: impl FnOnce(&mut D),
    ) -> Result<OpId, OpError> {
        let id = key.id();
        let level = self.check(now, id, level)?;
        let limits = self.settings.limits;
        let entry = self
            .entries
            .entry(id.to_string())
            .or_insert_with(|| Entry::new(id, Envelope::new(D::default().into_data())));
        let data = match &mut entry.envelope.value {
            Value::Deleted => return Err(OpError::Deleted),
            Value::Data(d) => D::from_data_mut(d)?,
        };
        // Before `modify`: if it panics, what it changed must not hide behind the old
        // digest.
        entry.digest = None;
        modify(data);
        let delta = if D::HAS_DELTAS {
            data.take_delta().map(D::into_data)
        } else {
            Some(data.clone().into_data())
        };
        entry.digest = None;
        let delta = delta.map(|d| Envelope {
            value: Value::Data(d),
            pruning: entry.envelope.pruning.clone(),
        });
        let added = delta
            .as_ref()
            .map_or((0, 0), |d| (d.size(), encoded_len("", d)));
        if let Err(e) = entry.grew(id, added, &limits) {
            // Applied locally already (a CRDT change cannot be taken back cheaply), so it
            // is stored and reported like any change; peers would refuse it, so it is not
            // sent, and the caller hears now.
            tracing::warn!(key = id, error = %e, "fjell-ddata: an entry is over a limit");
            self.changed(id);
            return Err(e);
        }
        self.changed(id);
        if let Some(delta) = delta {
            self.deltas.push(id, delta);
        }
        let op = self.take_op();
        self.start(op, id, level, Kind::Write);
        Ok(op)
    }

    /// Deletes `key` at `level`: its entry becomes a tombstone on every replica, and the
    /// key cannot be used again.
    pub fn delete(
        &mut self,
        now: u64,
        key: &str,
        level: WriteConsistency,
    ) -> Result<OpId, OpError> {
        let level = self.check(now, key, level)?;
        let entry = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| Entry::new(key, Envelope::deleted()));
        entry.envelope.value = Value::Deleted;
        entry.digest = None;
        let tombstone = entry.envelope.clone();
        self.changed(key);
        self.deltas.push(key, tombstone);
        let op = self.take_op();
        self.start(op, key, level, Kind::Write);
        Ok(op)
    }

    /// Advances the clock to `now` and checks an operation's key and level.
    fn check(&mut self, now: u64, key: &str, level: impl Into<Level>) -> Result<Level, OpError> {
        self.now = self.now.max(now);
        if !key::valid_id(key) {
            return Err(OpError::BadKey);
        }
        let level = level.into();
        match level.invalid() {
            Some(why) => Err(OpError::BadLevel(why)),
            None => Ok(level),
        }
    }

    fn take_op(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        op
    }

    /// Starts a quorum operation: asks the primaries now, the secondaries later.
    fn start(&mut self, op: OpId, key: &str, level: Level, kind: Kind) {
        let peers = self.quorum_peers(level.excludes_exiting());
        let n = peers.len() + 1;
        let required = match level.required(n) {
            Some(r) => r,
            None => {
                let required = match level.required(usize::MAX) {
                    Some(r) => r,
                    None => n + 1,
                };
                let error = ReplicationError::NotEnoughReplicas {
                    available: n,
                    required,
                };
                return self.finish(op, kind, Err(error));
            }
        };
        if level.is_local() || required <= 1 {
            return self.finish(op, kind, Ok(()));
        }
        let (reachable, unreachable): (Vec<_>, Vec<_>) = peers.iter().partition(|(_, r)| *r);
        let mut rng = self.rng;
        let ordered = quorum::order(
            reachable.into_iter().map(|(p, _)| p).collect(),
            unreachable.into_iter().map(|(p, _)| p).collect(),
            &mut |v| shuffle(&mut rng, v),
        );
        self.rng = rng;
        let primaries: Vec<ReplicaId> = ordered.iter().take(required - 1).copied().collect();
        let secondaries: Vec<ReplicaId> = ordered
            .iter()
            .skip(required - 1)
            .take(MAX_SECONDARIES)
            .copied()
            .collect();
        // Rounded up, and a millisecond more: the clock is read in whole milliseconds, and
        // an operation must never time out before its timeout.
        let timeout = u64::try_from(level.timeout.as_micros().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut q = Quorum {
            kind,
            key: key.to_string(),
            required,
            secondaries,
            asked: BTreeSet::new(),
            replied: BTreeSet::new(),
            refused: BTreeSet::new(),
            candidates: peers.len(),
            secondary_at: Some(self.now.saturating_add(timeout / 5)),
            deadline: self.now.saturating_add(timeout),
        };
        for p in primaries {
            self.ask(op, &mut q, p, true);
        }
        self.ops.insert(op, q);
    }

    /// Sends `to` the operation's request: a read, or a write of the entry (its latest
    /// delta to a primary when there is one, which is all the write needs).
    fn ask(&mut self, op: OpId, q: &mut Quorum, to: ReplicaId, primary: bool) {
        q.asked.insert(to);
        let message = match q.kind {
            Kind::Read { .. } => Message::Read {
                op,
                key: q.key.clone(),
            },
            Kind::Write => {
                let envelope = match (primary, self.deltas.last_of(&q.key)) {
                    (true, Some(delta)) => delta.clone(),
                    _ => match self.entry(&q.key) {
                        Some(e) => e.clone(),
                        None => return,
                    },
                };
                if !self.sendable(&q.key, &envelope) {
                    return;
                }
                Message::Write {
                    op,
                    key: q.key.clone(),
                    envelope,
                }
            }
        };
        self.send(to, message);
    }

    fn send(&mut self, to: ReplicaId, message: Message) {
        self.out.push_back(Output::Send { to, message });
    }

    /// Ends an operation: a read's merged entry is written to the local replica first (a
    /// local read repair), so a later local read sees it.
    fn finish(&mut self, op: OpId, kind: Kind, result: Result<(), ReplicationError>) {
        let result = match kind {
            Kind::Write => OpResult::Write(result),
            Kind::Read { merged } => OpResult::Get(result.map(|()| merged)),
        };
        self.out.push_back(Output::Done { op, result });
    }

    fn finish_quorum(&mut self, op: OpId, result: Result<(), ReplicationError>) {
        let Some(q) = self.ops.remove(&op) else {
            return;
        };
        let kind = match q.kind {
            Kind::Read { merged: Some(m) } if result.is_ok() => {
                // Read repair: the local replica gets what the quorum had.
                let _ = self.merge_in(&q.key, &m, false);
                Kind::Read {
                    merged: self.entry(&q.key).cloned(),
                }
            }
            k => k,
        };
        self.finish(op, kind, result);
    }

    /// Handles a message from the member at `from`. Messages from non-members (a removed
    /// node, or a previous incarnation at the same address) are dropped.
    pub fn handle_message(&mut self, now: u64, from: SocketAddr, message: Message) {
        self.now = self.now.max(now);
        let Some(&from) = self.by_addr.get(&from) else {
            return;
        };
        match message {
            Message::Write { op, key, envelope } => {
                let ok = self.merge_in(&key, &envelope, true).is_ok();
                self.send(from, Message::WriteAck { op, ok });
            }
            Message::WriteAck { op, ok } => self.answer(op, from, ok, None),
            Message::Read { op, key } => {
                let envelope = self.entry(&key).cloned();
                // An entry the reader would refuse is not sent: it hears from other
                // replicas, or times out.
                if envelope.as_ref().is_none_or(|e| self.sendable(&key, e)) {
                    self.send(from, Message::ReadResult { op, envelope });
                }
            }
            Message::ReadResult { op, envelope } => self.answer(op, from, true, envelope),
            Message::Deltas { entries } => {
                for (key, envelope) in entries {
                    if let Err(e) = self.merge_in(&key, &envelope, true) {
                        tracing::warn!(key, %e, from = %from.socket_addr(), "fjell-ddata: a delta was refused");
                    }
                }
            }
            Message::Status {
                chunk,
                chunks,
                range,
                digests,
                reply,
                to_uid,
            } => {
                if to_uid == self.me.uid() {
                    self.receive_status(from, (chunk, chunks, range), digests, reply);
                }
            }
            Message::Gossip {
                entries,
                send_back,
                to_uid,
            } => {
                if to_uid == self.me.uid() {
                    self.receive_gossip(from, entries, send_back);
                }
            }
        }
    }

    /// Counts an answer to operation `op`.
    fn answer(&mut self, op: OpId, from: ReplicaId, ok: bool, entry: Option<Envelope>) {
        let mut entry = entry;
        if let Some(e) = &mut entry {
            // As in `without_own_marker`.
            if e.pruning.remove(&self.me).is_some() {
                tracing::warn!("fjell-ddata: a pruning marker for this live replica was dropped");
            }
        }
        let Some(q) = self.ops.get_mut(&op) else {
            return;
        };
        let mut ok = ok;
        if let (Kind::Read { merged }, Some(e)) = (&mut q.kind, &entry) {
            match merged {
                Some(m) => ok = m.merge(e).is_ok(),
                None => *merged = Some(e.clone()),
            }
        }
        if !q.answer(from, ok) {
            return;
        }
        match q.outcome() {
            Outcome::Waiting => {}
            Outcome::Done => self.finish_quorum(op, Ok(())),
            Outcome::Refused => {
                let refused = q.refused.len();
                self.finish_quorum(op, Err(ReplicationError::Refused { refused }));
            }
        }
    }

    /// Runs what is due at `now`: secondaries and timeouts of operations, delta
    /// propagation, gossip and pruning.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = self.now.max(now);
        let now = self.now;
        let due: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, q)| q.deadline <= now || q.secondary_at.is_some_and(|s| s <= now))
            .map(|(op, _)| *op)
            .collect();
        for op in due {
            let Some(mut q) = self.ops.remove(&op) else {
                continue;
            };
            if q.deadline <= now {
                let replies = q.replied.len() + 1;
                let required = q.required;
                self.ops.insert(op, q);
                self.finish_quorum(op, Err(ReplicationError::Timeout { replies, required }));
                continue;
            }
            q.secondary_at = None;
            // The primaries are slow: ask the secondaries, and send un-acknowledged
            // primaries the whole entry in case a delta was not enough.
            let again: Vec<ReplicaId> = q
                .asked
                .iter()
                .filter(|p| !q.replied.contains(p))
                .copied()
                .collect();
            let write = matches!(q.kind, Kind::Write);
            let mut targets = std::mem::take(&mut q.secondaries);
            if write {
                targets.extend(again);
            }
            for p in targets {
                self.ask(op, &mut q, p, false);
            }
            self.ops.insert(op, q);
        }
        // The clock of deltas runs only while deltas wait: the first update after a quiet
        // interval goes out at once, later ones within the interval go together.
        if now >= self.next_delta && self.deltas.pending() {
            self.next_delta = now.saturating_add(millis(self.settings.delta_interval));
            self.propagate_deltas();
        }
        if now >= self.next_gossip {
            let interval = millis(self.settings.gossip_interval);
            self.next_gossip = now.saturating_add(interval);
            if self.peers.values().all(|p| p.reachable) {
                self.all_reachable_ms = self.all_reachable_ms.saturating_add(interval);
            }
            self.gossip_tick();
        }
        if now >= self.next_pruning {
            self.next_pruning = now.saturating_add(millis(self.settings.pruning_interval));
            self.pruning_tick();
        }
    }

    /// Sends the next slice of peers their deltas.
    fn propagate_deltas(&mut self) {
        let (group, fanout) = (self.settings.max_delta_size, self.settings.delta_fanout);
        for (peer, groups) in self.deltas.next_slice(group, fanout) {
            let mut entries = Vec::with_capacity(groups.len());
            for (key, group) in groups {
                // A key with too many deltas goes whole.
                let envelope = match group {
                    Some(g) => g,
                    None => match self.entry(&key) {
                        Some(e) => e.clone(),
                        None => continue,
                    },
                };
                entries.push((key, envelope));
            }
            for chunk in self.split(entries) {
                self.send(peer, Message::Deltas { entries: chunk });
            }
        }
    }

    /// Merges an entry from elsewhere into the local replica (creating it if absent).
    /// Reports the change, and stores durable keys, if it changed anything. `remote`
    /// entries mark pruning markers as seen by this replica.
    fn merge_in(
        &mut self,
        key: &str,
        envelope: &Envelope,
        remote: bool,
    ) -> Result<bool, WrongKind> {
        let envelope = &*self.without_own_marker(key, envelope);
        let durable = self.settings.is_durable(key);
        let watched = self.is_watched(key);
        let me = self.me;
        let limits = self.settings.limits;
        let (changed, stored) = match self.entries.get_mut(key) {
            Some(entry) => {
                let before = (durable || watched).then(|| entry.digest());
                entry.envelope.merge(envelope)?;
                if remote {
                    entry.envelope.mark_seen(me);
                }
                entry.digest = None;
                // Over a limit by merging: it is not sent on (see `sendable`), and the
                // update that made it so was refused where it was made.
                let _ = entry.grew(key, (envelope.size(), encoded_len("", envelope)), &limits);
                let changed = match before {
                    Some(b) => b != entry.digest(),
                    None => true,
                };
                (
                    changed,
                    (changed && durable).then(|| entry.envelope.clone()),
                )
            }
            None => {
                let mut envelope = envelope.clone();
                if remote {
                    envelope.mark_seen(me);
                }
                let stored = durable.then(|| envelope.clone());
                self.entries
                    .insert(key.to_string(), Entry::new(key, envelope));
                (true, stored)
            }
        };
        if changed {
            if let Some(envelope) = stored {
                self.out.push_back(Output::Store {
                    key: key.to_string(),
                    envelope,
                });
            }
            if watched {
                self.out.push_back(Output::Changed {
                    key: key.to_string(),
                });
            }
        }
        Ok(changed)
    }

    /// `envelope` without a pruning marker for this replica. One cannot be right (this
    /// replica is alive, and a restart is a new identity): only bad data carries one, and
    /// it would strip this node's own writes from every merge.
    fn without_own_marker<'e>(&self, key: &str, envelope: &'e Envelope) -> Cow<'e, Envelope> {
        if !envelope.pruning.contains_key(&self.me) {
            return Cow::Borrowed(envelope);
        }
        tracing::warn!(
            key,
            "fjell-ddata: a pruning marker for this live replica was dropped"
        );
        let mut e = envelope.clone();
        e.pruning.remove(&self.me);
        Cow::Owned(e)
    }

    /// Reports a local change of `key` (to watchers, and to the store if durable).
    fn changed(&mut self, key: &str) {
        if self.settings.is_durable(key) {
            if let Some(e) = self.entry(key) {
                let envelope = e.clone();
                self.out.push_back(Output::Store {
                    key: key.to_string(),
                    envelope,
                });
            }
        }
        if self.is_watched(key) {
            self.out.push_back(Output::Changed {
                key: key.to_string(),
            });
        }
    }

    /// True if peers would take `envelope` under `key` (within the limits they decode
    /// with). An entry over them is not sent, with a warning: the update that made it so
    /// was refused with [`OpError::TooLarge`] or [`OpError::TooManyBytes`] where it was
    /// made, and one oversized entry must not get a whole message refused.
    fn sendable(&mut self, key: &str, envelope: &Envelope) -> bool {
        let bytes = encoded_len(key, envelope);
        match check_limits(envelope.size(), bytes, &self.settings.limits) {
            Ok(()) => true,
            Err(e) => {
                self.oversized += 1;
                if self.oversized.is_power_of_two() {
                    tracing::warn!(key, error = %e, skipped = self.oversized, "fjell-ddata: an entry over the limits is not sent");
                }
                false
            }
        }
    }

    /// Entries not sent since start because peers would refuse them (see
    /// [`OpError::TooLarge`]).
    pub fn oversized_entries_skipped(&self) -> u64 {
        self.oversized
    }

    /// Splits entries into messages of at most `max-delta-elements` entries and about half
    /// the message size limit, leaving out entries peers would refuse.
    fn split(&mut self, entries: Vec<(String, Envelope)>) -> Vec<Vec<(String, Envelope)>> {
        let max_bytes = self.settings.limits.max_message_bytes / 2;
        let mut out = Vec::new();
        let mut current = Vec::new();
        let mut bytes = 0;
        for (key, envelope) in entries {
            if !self.sendable(&key, &envelope) {
                continue;
            }
            let size = encoded_len(&key, &envelope);
            if !current.is_empty()
                && (current.len() >= self.settings.max_delta_elements || bytes + size > max_bytes)
            {
                out.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push((key, envelope));
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    fn random(&mut self) -> u64 {
        splitmix(&mut self.rng)
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn shuffle<T>(state: &mut u64, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (splitmix(state) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
