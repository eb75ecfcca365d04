//! The async side: one task per node drives the sans-IO [`Replicator`] with the cluster's
//! membership, the hub's messages, a timer and the durable store, and [`DistributedData`]
//! is the handle the application reads, updates and subscribes through.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use fjell_runtime::core::NodeStatus;
use fjell_runtime::quic::sleep;
use fjell_runtime::{ClusterState, Runtime};
use fjell_tools::hub::{ChannelTaken, Hub, Incoming};
use futures_lite::future;

use crate::crdt::{Data, ReplicatedData, WrongKind};
use crate::durable::{DurableError, DurableStore, DurableWriter};
use crate::key::Key;
use crate::replicator::{
    Envelope, MemberView, Message, OpError, OpId, OpResult, Output, ReadConsistency,
    ReplicationError, Replicator, Value, WriteConsistency,
};
use crate::settings::{ReplicatorSettings, SettingsError};

/// Why the replicator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A replicator with this name runs on this node already.
    #[error(transparent)]
    AlreadyRunning(#[from] ChannelTaken),
    /// The durable store could not be opened or read.
    #[error(transparent)]
    Durable(#[from] DurableError),
    /// An entry in the durable store does not decode.
    #[error("durable store {path}: entry {key:?} is unreadable: {reason}")]
    CorruptEntry {
        /// The store's file.
        path: String,
        /// The entry's key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Why a read, update or delete failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The operation could not start (a bad key or level, a value over the size limit).
    #[error(transparent)]
    Op(OpError),
    /// The consistency level was not reached. An update or delete was still applied to
    /// this node's replica and spreads from there.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// The key was deleted.
    #[error("the key was deleted")]
    Deleted,
    /// The entry holds another kind of data.
    #[error(transparent)]
    WrongKind(#[from] WrongKind),
    /// A durable key's write could not be stored. The change is in memory and spreads, but
    /// would not survive a restart of every node.
    #[error("the durable store failed: {0}")]
    Store(String),
    /// The replicator has stopped (the node left or shut down).
    #[error("the replicator has stopped")]
    Stopped,
}

impl From<OpError> for DataError {
    /// The same failure has one variant whichever operation meets it.
    fn from(e: OpError) -> DataError {
        match e {
            OpError::WrongKind(w) => DataError::WrongKind(w),
            OpError::Deleted => DataError::Deleted,
            other => DataError::Op(other),
        }
    }
}

/// A change of a subscribed key.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<D> {
    /// The key.
    pub key: String,
    /// Its value now; `None` once deleted.
    pub value: Option<D>,
}

/// Changes of one key (or of every key with a prefix), latest value per key: a subscriber
/// that reads slowly skips intermediate values but never misses the last one, and holds
/// at most one pending value per key. Dropping it unsubscribes.
pub struct Changes<D> {
    cell: Arc<Cell>,
    shared: Arc<Shared>,
    _data: std::marker::PhantomData<fn() -> D>,
}

impl<D> std::fmt::Debug for Changes<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("pattern", &self.cell.pattern)
            .finish()
    }
}

/// One subscription's pending changes.
struct Cell {
    id: u64,
    pattern: String,
    pending: Mutex<BTreeMap<String, Option<Data>>>,
    event: event_listener::Event,
}

impl Cell {
    fn matches(&self, key: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => self.pattern == key,
        }
    }
}

impl<D: ReplicatedData> Changes<D> {
    /// The next change: the latest value of a key that changed since it was last
    /// returned. `None` once the replicator has stopped. A value of another kind under the
    /// key is an error, never a panic.
    pub async fn next(&self) -> Option<Result<Change<D>, WrongKind>> {
        loop {
            if let Some(change) = self.try_next() {
                return Some(change);
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                return None;
            }
            let listener = self.cell.event.listen();
            if lock(&self.cell.pending).is_empty() && !self.shared.stopped.load(Ordering::Acquire) {
                listener.await;
            }
        }
    }

    /// The next change if one is waiting.
    pub fn try_next(&self) -> Option<Result<Change<D>, WrongKind>> {
        let (key, value) = lock(&self.cell.pending).pop_first()?;
        Some(match value {
            None => Ok(Change { key, value: None }),
            Some(d) => D::from_data(d).map(|v| Change {
                key,
                value: Some(v),
            }),
        })
    }
}

impl<D> Drop for Changes<D> {
    fn drop(&mut self) {
        let mut local = self.shared.lock();
        local.cells.retain(|c| c.id != self.cell.id);
        if !local.cells.iter().any(|c| c.pattern == self.cell.pattern) {
            local.replicator.unwatch(&self.cell.pattern);
        }
    }
}

/// Where an operation's result goes.
type Reply = Sender<Result<Option<Envelope>, DataError>>;

struct Local {
    replicator: Replicator,
    /// Callers waiting for an operation, and its key.
    waiting: HashMap<OpId, (String, Reply)>,
    cells: Vec<Arc<Cell>>,
    next_cell: u64,
}

struct Shared {
    local: Mutex<Local>,
    runtime: Arc<dyn Runtime>,
    origin: std::time::Instant,
    origin_ms: u64,
    poke: (Sender<()>, Receiver<()>),
    stopped: AtomicBool,
    refused: AtomicU64,
    /// Notified when the replicator has taken a new membership (or stopped).
    members_changed: event_listener::Event,
}

/// Locks `m`, recovering it if a thread panicked while holding it: the replicator's
/// state is valid between any two of its calls, and a panicking `modify` closure (the
/// one piece of caller code run under the lock) must not stop the node's data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Local> {
        lock(&self.local)
    }

    /// Milliseconds on the wall clock at start, advanced by the runtime's monotonic clock:
    /// comparable between nodes (pruning markers expire by it), and never going back.
    fn now(&self) -> u64 {
        let since = self.runtime.now().saturating_duration_since(self.origin);
        self.origin_ms + since.as_millis() as u64
    }

    fn poke(&self) {
        let _ = self.poke.0.try_send(());
    }
}

/// Distributed data on one node (Pekko's `Replicator`): typed keys, reads and writes at a
/// chosen consistency, subscriptions. Start it on every node holding replicas, with the same
/// settings. Cheap to clone.
#[derive(Clone)]
pub struct DistributedData {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DistributedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedData")
            .field("replica", &self.shared.lock().replicator.id())
            .finish_non_exhaustive()
    }
}

impl DistributedData {
    /// Starts this node's replicator on `hub`: checks the settings, loads the durable
    /// store (refusing an unreadable one, naming its file), and starts replicating.
    pub fn start(hub: &Hub, settings: ReplicatorSettings) -> Result<DistributedData, StartError> {
        settings.validate()?;
        let me = hub.cluster().self_address();
        let runtime = hub.runtime();
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let mut replicator = Replicator::new(me, settings.clone(), me.uid() ^ origin_ms, origin_ms);
        let writer = match &settings.durable_path {
            Some(path) if !settings.durable_keys.is_empty() => {
                let store = DurableStore::open(path)?;
                for (key, bytes) in store.load_all()? {
                    let corrupt = |reason: String| StartError::CorruptEntry {
                        path: path.display().to_string(),
                        key: key.clone(),
                        reason,
                    };
                    let envelope: Envelope =
                        postcard::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
                    replicator
                        .load(&key, envelope)
                        .map_err(|e| corrupt(e.to_string()))?;
                }
                // Loading re-stores only what it changed; nothing has changed yet.
                while replicator.poll_output().is_some() {}
                Some(DurableWriter::spawn(store, settings.durable_write_mode))
            }
            _ => None,
        };
        let inbox = hub.listen(&settings.name)?;
        let shared = Arc::new(Shared {
            local: Mutex::new(Local {
                replicator,
                waiting: HashMap::new(),
                cells: Vec::new(),
                next_cell: 0,
            }),
            origin: runtime.now(),
            origin_ms,
            runtime: runtime.clone(),
            poke: async_channel::bounded(1),
            stopped: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            members_changed: event_listener::Event::new(),
        });
        let driver = Driver {
            hub: hub.clone(),
            shared: shared.clone(),
            writer,
            name: settings.name.clone(),
            role: settings.role.clone(),
            unstored: HashMap::new(),
            links: HashMap::new(),
            dropped: 0,
        };
        runtime.spawn(Box::pin(driver.run(inbox)));
        Ok(DistributedData { shared })
    }

    /// Reads `key` at `level`: `Ok(None)` if no replica consulted has it.
    pub async fn get<D: ReplicatedData>(
        &self,
        key: &Key<D>,
        level: ReadConsistency,
    ) -> Result<Option<D>, DataError> {
        let result = self
            .run(key.id(), |r, now| r.get(now, key.id(), level))
            .await?;
        match result {
            None => Ok(None),
            Some(e) => match e.value {
                Value::Deleted => Err(DataError::Deleted),
                Value::Data(d) => Ok(Some(D::from_data(d)?)),
            },
        }
    }

    /// The local replica's value of `key`, at once.
    pub fn local<D: ReplicatedData>(&self, key: &Key<D>) -> Result<Option<D>, DataError> {
        let local = self.shared.lock();
        match local.replicator.entry(key.id()) {
            None => Ok(None),
            Some(e) => match &e.value {
                Value::Deleted => Err(DataError::Deleted),
                Value::Data(d) => Ok(Some(D::from_data_ref(d)?.clone())),
            },
        }
    }

    /// Updates `key` with `modify` (run once, on this node's replica, from `D`'s empty
    /// value if the key is new) and replicates the change at `level`. The change is
    /// applied locally whatever the result; for a durable key in write-through mode it
    /// succeeds only once stored.
    ///
    /// `modify` runs under this node's replicator lock: it must be quick and must not
    /// call this handle (that would deadlock). If it panics, what it changed so far stays
    /// and spreads with the key's next update.
    pub async fn update<D: ReplicatedData>(
        &self,
        key: &Key<D>,
        level: WriteConsistency,
        modify: impl FnOnce(&mut D),
    ) -> Result<(), DataError> {
        self.run(key.id(), |r, now| r.update(now, key, level, modify))
            .await
            .map(|_| ())
    }

    /// Deletes `key` at `level`. A deleted key cannot be written again.
    pub async fn delete<D: ReplicatedData>(
        &self,
        key: &Key<D>,
        level: WriteConsistency,
    ) -> Result<(), DataError> {
        if let Some(Value::Data(d)) = self
            .shared
            .lock()
            .replicator
            .entry(key.id())
            .map(|e| &e.value)
        {
            D::from_data_ref(d)?;
        }
        self.run(key.id(), |r, now| r.delete(now, key.id(), level))
            .await
            .map(|_| ())
    }

    /// Starts an operation with `start` and waits for its result. A result decided at once
    /// (a local read or write of a key that is not durable) is taken without a round trip
    /// through the driver task; the rest of the outputs are left to it.
    async fn run(
        &self,
        key: &str,
        start: impl FnOnce(&mut Replicator, u64) -> Result<OpId, OpError>,
    ) -> Result<Option<Envelope>, DataError> {
        let rx = {
            let mut local = self.shared.lock();
            if self.shared.stopped.load(Ordering::Acquire) {
                return Err(DataError::Stopped);
            }
            let now = self.shared.now();
            let due = local.replicator.poll_timeout();
            let started = start(&mut local.replicator, now);
            // The driver sleeps until the timeout it last saw: an operation that brings
            // it forward (a first delta to send) wakes it, as do outputs, even from an
            // operation that failed (a value over the limits is still stored and reported).
            let pending = local.replicator.has_output() || local.replicator.poll_timeout() < due;
            let op = match started {
                Ok(op) => op,
                Err(e) => {
                    drop(local);
                    if pending {
                        self.shared.poke();
                    }
                    return Err(e.into());
                }
            };
            let done = if local.replicator.settings().is_durable(key) {
                None
            } else {
                local.replicator.take_done(op)
            };
            let pending = pending || local.replicator.has_output();
            match done {
                Some(result) => {
                    drop(local);
                    if pending {
                        self.shared.poke();
                    }
                    return match result {
                        OpResult::Get(r) => r.map_err(DataError::from),
                        OpResult::Write(r) => r.map(|()| None).map_err(DataError::from),
                    };
                }
                None => self.wait(&mut local, op, key),
            }
        };
        self.shared.poke();
        rx.recv().await.map_err(|_| DataError::Stopped)?
    }

    /// Changes of `key`, starting with its current value if it has one.
    pub fn subscribe<D: ReplicatedData>(&self, key: &Key<D>) -> Changes<D> {
        self.subscribe_pattern(key.id().to_string())
    }

    /// Changes of every key starting with `prefix` (keys created later included), each
    /// key's current value first. Values must all be of kind `D`.
    pub fn subscribe_prefix<D: ReplicatedData>(&self, prefix: &str) -> Changes<D> {
        self.subscribe_pattern(format!("{prefix}*"))
    }

    fn subscribe_pattern<D: ReplicatedData>(&self, pattern: String) -> Changes<D> {
        let mut local = self.shared.lock();
        local.next_cell += 1;
        let cell = Arc::new(Cell {
            id: local.next_cell,
            pattern: pattern.clone(),
            pending: Mutex::new(BTreeMap::new()),
            event: event_listener::Event::new(),
        });
        {
            let mut pending = lock(&cell.pending);
            let keys: Vec<String> = local
                .replicator
                .keys()
                .filter(|k| cell.matches(k))
                .map(str::to_string)
                .collect();
            for key in keys {
                let value = local.replicator.entry(&key).and_then(|e| e.data().cloned());
                pending.insert(key, value);
            }
        }
        local.replicator.watch(&pattern);
        local.cells.push(cell.clone());
        Changes {
            cell,
            shared: self.shared.clone(),
            _data: std::marker::PhantomData,
        }
    }

    /// Replicas of the data: the members holding one, this node included.
    pub fn replica_count(&self) -> usize {
        self.shared.lock().replicator.replica_count()
    }

    /// Waits until the replicator counts at least `n` replicas (this node included): the
    /// cluster's state shows members Up before this node's replicator has taken them in.
    /// Returns the count, or `None` if the replicator stopped first.
    pub async fn wait_for_replicas(&self, n: usize) -> Option<usize> {
        loop {
            let listener = self.shared.members_changed.listen();
            if self.is_stopped() {
                return None;
            }
            let count = self.replica_count();
            if count >= n {
                return Some(count);
            }
            listener.await;
        }
    }

    /// Messages from peers refused since start (malformed, oversized, or over a limit).
    pub fn refused_messages(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// True once the replicator has stopped (the node stopped).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    fn wait(
        &self,
        local: &mut Local,
        op: OpId,
        key: &str,
    ) -> Receiver<Result<Option<Envelope>, DataError>> {
        let (tx, rx) = async_channel::bounded(1);
        if self.shared.stopped.load(Ordering::Acquire) {
            let _ = tx.try_send(Err(DataError::Stopped));
        } else {
            local.waiting.insert(op, (key.to_string(), tx));
        }
        rx
    }
}

/// Messages waiting for one peer, at most: beyond, new ones are dropped (with a warning)
/// and repaired by gossip, so a slow peer holds a bounded amount of this node's memory.
const PEER_QUEUE: usize = 256;

/// Bytes waiting for one peer, at most (or one message, if larger): with the count above,
/// what a slow peer can hold of this node's memory.
const PEER_QUEUE_BYTES: usize = 8 << 20;

/// One peer's sending task's queue, and the bytes in it.
struct Link {
    tx: Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// The task that drives one node's replicator.
struct Driver {
    hub: Hub,
    shared: Arc<Shared>,
    writer: Option<DurableWriter>,
    name: String,
    role: Option<String>,
    /// Durable keys whose last store failed, with the error: an update of one is
    /// reported failed until a later store of the key succeeds.
    unstored: HashMap<String, String>,
    /// Per peer, the queue its sending task takes messages from.
    links: HashMap<SocketAddr, Link>,
    /// Messages dropped because a peer's queue was full.
    dropped: u64,
}

impl Driver {
    async fn run(mut self, inbox: Receiver<Incoming>) {
        let cluster = self.hub.cluster().clone();
        let runtime = self.shared.runtime.clone();
        let mut seen = cluster.state();
        self.on_members(&seen);
        loop {
            self.drain().await;
            enum Wake {
                Members(Option<ClusterState>),
                Message(Option<Incoming>),
                Timer,
                Poke,
            }
            let due = self.shared.lock().replicator.poll_timeout();
            let until = Duration::from_millis(due.saturating_sub(self.shared.now()));
            let wake = {
                let watched = &seen;
                future::or(
                    future::or(
                        async {
                            Wake::Members(
                                cluster
                                    .wait_for(|s| {
                                        s.members != watched.members
                                            || s.unreachable != watched.unreachable
                                    })
                                    .await,
                            )
                        },
                        async { Wake::Message(inbox.recv().await.ok()) },
                    ),
                    future::or(
                        async {
                            sleep(&*runtime, until).await;
                            Wake::Timer
                        },
                        async {
                            let _ = self.shared.poke.1.recv().await;
                            Wake::Poke
                        },
                    ),
                )
                .await
            };
            match wake {
                Wake::Members(Some(state)) => {
                    // Pekko's replicator stops when its node is removed.
                    let removed = matches!(state.status, NodeStatus::Stopped(_));
                    self.on_members(&state);
                    seen = state;
                    if removed {
                        break;
                    }
                }
                Wake::Members(None) | Wake::Message(None) => break,
                Wake::Message(Some(m)) => self.on_message(m),
                Wake::Timer => {
                    let now = self.shared.now();
                    self.shared.lock().replicator.handle_timeout(now);
                }
                Wake::Poke => {}
            }
        }
        self.drain().await;
        self.stop().await;
    }

    fn on_members(&mut self, state: &ClusterState) {
        let unreachable: Vec<_> = state.unreachable.iter().map(|m| m.address).collect();
        let members: Vec<MemberView> = state
            .members
            .iter()
            .filter(|m| self.role.as_deref().is_none_or(|r| m.roles.contains(r)))
            .map(|m| MemberView {
                id: m.address,
                status: m.status,
                reachable: !unreachable.contains(&m.address),
            })
            .collect();
        // A member gone: dropping its queue ends its sending task.
        self.links
            .retain(|addr, _| members.iter().any(|m| m.id.socket_addr() == *addr));
        let now = self.shared.now();
        self.shared.lock().replicator.handle_members(now, &members);
        self.shared.members_changed.notify(usize::MAX);
    }

    fn on_message(&self, m: Incoming) {
        let limits = self.shared.lock().replicator.settings().limits;
        match Message::decode(&m.payload, &limits) {
            Ok(message) => {
                let now = self.shared.now();
                self.shared
                    .lock()
                    .replicator
                    .handle_message(now, m.from, message);
            }
            Err(e) => {
                // Only this message is dropped; the peer's other exchanges carry on.
                let n = self.shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(from = %m.from, error = %e, refused = n, "fjell-ddata: a message was refused");
                }
            }
        }
    }

    /// Carries out the replicator's outputs in order. A durable entry is stored before
    /// anything after it: the acknowledgement of a peer's write that could not be stored
    /// becomes a refusal, and an update of a key whose last store failed (whenever its
    /// result comes) a store error.
    async fn drain(&mut self) {
        // The replicator puts a write's acknowledgement right after the write's store.
        let mut last_store_failed = false;
        loop {
            let Some(output) = self.shared.lock().replicator.poll_output() else {
                break;
            };
            match output {
                Output::Store { key, envelope } => {
                    let Some(writer) = &self.writer else { continue };
                    let bytes = postcard::to_allocvec(&envelope).unwrap_or_default();
                    match writer.write(key.clone(), bytes).await {
                        Ok(()) => {
                            last_store_failed = false;
                            self.unstored.remove(&key);
                        }
                        Err(e) => {
                            tracing::error!(key, error = %e, "fjell-ddata: a durable write failed");
                            last_store_failed = true;
                            self.unstored.insert(key, e.to_string());
                        }
                    }
                }
                Output::Send { to, mut message } => {
                    if let Message::WriteAck { ok, .. } = &mut message {
                        *ok &= !std::mem::take(&mut last_store_failed);
                    }
                    self.send(to.socket_addr(), message.encode());
                }
                Output::Done { op, result } => {
                    let Some((key, tx)) = self.shared.lock().waiting.remove(&op) else {
                        continue;
                    };
                    let result = match result {
                        OpResult::Get(r) => r.map_err(DataError::from),
                        OpResult::Write(r) => match self.unstored.get(&key) {
                            Some(e) => Err(DataError::Store(e.clone())),
                            None => r.map(|()| None).map_err(DataError::from),
                        },
                    };
                    let _ = tx.try_send(result);
                }
                Output::Changed { key } => self.notify(&key),
            }
        }
    }

    /// Queues `bytes` for the peer at `to`, starting its sending task if it has none (or
    /// its task ended). A full queue drops the message: gossip repairs what it carried.
    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        let len = bytes.len();
        let bytes = match self.links.get(&to) {
            Some(link) => {
                let queued = link.queued.load(Ordering::Acquire);
                let full = queued > 0 && queued + len > PEER_QUEUE_BYTES;
                match (full, link.tx.is_closed()) {
                    (_, true) => bytes,
                    (true, false) => return self.dropped(to),
                    (false, false) => {
                        link.queued.fetch_add(len, Ordering::AcqRel);
                        match link.tx.try_send(bytes) {
                            Ok(()) => return,
                            Err(e) => {
                                link.queued.fetch_sub(len, Ordering::AcqRel);
                                match e {
                                    async_channel::TrySendError::Full(_) => {
                                        return self.dropped(to)
                                    }
                                    async_channel::TrySendError::Closed(bytes) => bytes,
                                }
                            }
                        }
                    }
                }
            }
            None => bytes,
        };
        let (tx, rx) = async_channel::bounded::<Vec<u8>>(PEER_QUEUE);
        let queued = Arc::new(AtomicUsize::new(len));
        let _ = tx.try_send(bytes);
        let (hub, name, left) = (self.hub.clone(), self.name.clone(), queued.clone());
        self.shared.runtime.spawn(Box::pin(async move {
            while let Ok(bytes) = rx.recv().await {
                // A failed send is repaired by gossip or the operation's retry.
                let _ = hub.send_on(to, &name, &bytes).await;
                left.fetch_sub(bytes.len(), Ordering::AcqRel);
            }
        }));
        self.links.insert(to, Link { tx, queued });
    }

    fn dropped(&mut self, to: SocketAddr) {
        self.dropped += 1;
        if self.dropped.is_power_of_two() {
            tracing::warn!(peer = %to, dropped = self.dropped, "fjell-ddata: a peer's send queue is full; messages are dropped and repaired by gossip");
        }
    }

    /// Hands subscribers of `key` its value now.
    fn notify(&self, key: &str) {
        let local = self.shared.lock();
        let value = local.replicator.entry(key).and_then(|e| e.data().cloned());
        for cell in local.cells.iter().filter(|c| c.matches(key)) {
            lock(&cell.pending).insert(key.to_string(), value.clone());
            cell.event.notify(usize::MAX);
        }
    }

    /// Stops: the durable store is flushed and closed first, so that once the replicator
    /// reports it has stopped, the file holds every write and can be opened again.
    async fn stop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.close().await {
                tracing::error!(error = %e, "fjell-ddata: the durable store's last flush failed");
            }
        }
        self.mark_stopped();
    }

    /// Reports the replicator stopped: waiting operations fail, subscribers end.
    fn mark_stopped(&self) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.members_changed.notify(usize::MAX);
        let (waiting, cells) = {
            let mut local = self.shared.lock();
            (std::mem::take(&mut local.waiting), local.cells.clone())
        };
        for (_, (_, tx)) in waiting {
            let _ = tx.try_send(Err(DataError::Stopped));
        }
        for c in cells {
            c.event.notify(usize::MAX);
        }
    }
}

impl Drop for Driver {
    /// A driver task that ends any other way (a panic) still reports the replicator
    /// stopped, so that no caller waits on it for ever.
    fn drop(&mut self) {
        if !self.shared.stopped.load(Ordering::Acquire) {
            tracing::warn!("fjell-ddata: the replicator's task ended before it stopped");
            self.mark_stopped();
        }
    }
}
