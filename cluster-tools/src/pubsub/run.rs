//! The publish-subscribe mediator of one node: its registry, its local subscribers, the
//! gossip task, and delivery.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use fjell_runtime::core::{Instant, MemberStatus, UniqueAddress};
use fjell_runtime::quic::sleep;
use fjell_runtime::{ClusterState, Runtime};
use futures_lite::future;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::registry::{Delta, Key, Registry, Status, MAX_KEY_LEN};
use crate::hub::{self, ChannelTaken, Hub, Incoming};

/// The mediator's settings (Pekko's `pekko.cluster.pub-sub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubSettings {
    /// The hub channel: mediators with the same name form one registry.
    pub name: String,
    /// How often a node sends its registry status to another member (Pekko: 1 s).
    pub gossip_interval: Duration,
    /// How long a removed subscription's tombstone is kept (Pekko: 120 s; at least ten gossip
    /// intervals). A node the removal has not reached by then keeps the subscription.
    pub removed_time_to_live: Duration,
    /// Entries a gossip message carries at most (Pekko: 3,000).
    pub max_delta_elements: usize,
    /// Messages a subscriber's queue holds; more are dropped and counted as dead letters.
    pub subscriber_buffer: usize,
}

impl Default for PubSubSettings {
    fn default() -> Self {
        PubSubSettings {
            name: "pubsub".into(),
            gossip_interval: Duration::from_secs(1),
            removed_time_to_live: Duration::from_secs(120),
            max_delta_elements: 3000,
            subscriber_buffer: 1000,
        }
    }
}

impl PubSubSettings {
    fn validate(&self) -> Result<(), PubSubError> {
        let bad = |key: &'static str, reason: &'static str| PubSubError::Settings { key, reason };
        if self.name.is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        if self.gossip_interval.is_zero() {
            return Err(bad("gossip-interval", "must be positive"));
        }
        // A removal must reach every node before its tombstone is forgotten, or a node it
        // never reached keeps the subscription (as in Pekko).
        if self.removed_time_to_live < self.gossip_interval * 10 {
            return Err(bad(
                "removed-time-to-live",
                "must be at least ten gossip intervals",
            ));
        }
        if !(1..=100_000).contains(&self.max_delta_elements) {
            return Err(bad("max-delta-elements", "must be between 1 and 100,000"));
        }
        if self.subscriber_buffer == 0 {
            return Err(bad("subscriber-buffer", "must be positive"));
        }
        Ok(())
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// A setting is out of range.
    #[error("pub-sub setting `{key}`: {reason}")]
    Settings {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A mediator of this name already runs on this node.
    #[error(transparent)]
    AlreadyRunning(#[from] ChannelTaken),
    /// A topic, group or path name is empty or longer than 1,024 bytes.
    #[error("a topic, group or path name must be 1 to 1,024 bytes")]
    BadName,
    /// No node has a receiver registered at this path.
    #[error("no receiver is registered at path {0:?}")]
    NoSuchPath(String),
    /// The message does not serialize.
    #[error("the message does not serialize: {0}")]
    Serialize(String),
}

/// A message as a subscriber receives it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The publisher's node.
    pub from: SocketAddr,
    /// The topic or path it was sent to.
    pub topic: String,
    payload: Arc<Vec<u8>>,
}

impl Published {
    /// The message as `T`; a message of another type is an error, never a panic.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, postcard::Error> {
        hub::decode(&self.payload)
    }
}

/// A subscription: a stream of the messages published to its topic (or sent to its path).
/// Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Published>,
    key: Key,
    id: u64,
    dropped: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// The next message; `None` once the node has stopped.
    pub async fn next(&self) -> Option<Published> {
        self.rx.recv().await.ok()
    }

    /// The next message if one is waiting.
    pub fn try_next(&self) -> Option<Published> {
        self.rx.try_recv().ok()
    }

    /// Messages this subscription missed because its queue was full
    /// ([`PubSubSettings::subscriber_buffer`]): read faster, or raise the buffer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let now = self.shared.now();
        let mut local = self.shared.local.lock().unwrap();
        if let Some(subs) = local.subscribers.get_mut(&self.key) {
            subs.retain(|s| s.id != self.id);
            if subs.is_empty() {
                local.subscribers.remove(&self.key);
                if local.registry.remove(now, &self.key) {
                    self.shared.changed.notify(usize::MAX);
                    let _ = self.shared.poke.0.try_send(());
                }
            }
        }
    }
}

/// What travels on the mediator's channel.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// A registry status; `reply` for the answer to one (never answered with a status).
    Status {
        status: Status,
        reply: bool,
    },
    Delta(Delta),
    /// For the plain subscribers of a topic, or for one subscriber of a group.
    Publish {
        topic: String,
        group: Option<String>,
        payload: Vec<u8>,
    },
    /// For the receiver at a path.
    Send {
        path: String,
        payload: Vec<u8>,
    },
}

/// One subscription on this node, as the mediator hands it messages.
struct LocalSubscriber {
    id: u64,
    tx: Sender<Published>,
    dropped: Arc<AtomicU64>,
}

struct Local {
    registry: Registry,
    subscribers: BTreeMap<Key, Vec<LocalSubscriber>>,
    /// The members buckets are kept for.
    members: Vec<UniqueAddress>,
    /// Round-robin turns, per key, among local receivers and among nodes.
    turn: u64,
}

#[derive(Debug)]
struct Shared {
    local: Mutex<Local>,
    origin: std::time::Instant,
    runtime: Arc<dyn Runtime>,
    next_id: AtomicU64,
    dead_letters: AtomicU64,
    /// Notified whenever the registry changes.
    changed: event_listener::Event,
    /// Wakes the mediator when this node's own subscriptions change, to tell others at once.
    poke: (Sender<()>, Receiver<()>),
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

impl Shared {
    /// Counts a message nobody will get and says so in the log: the first, second, fourth,
    /// eighth… of them, so a flood is visible without flooding the log.
    fn dead_letter(&self, why: &str) {
        let n = self.dead_letters.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                dead_letters = n,
                "fjell-tools: a published message was dropped: {why}"
            );
        }
    }

    fn now(&self) -> Instant {
        let d = self.runtime.now().saturating_duration_since(self.origin);
        Instant::from_micros(d.as_micros() as u64)
    }
}

/// Distributed publish-subscribe on one node (Pekko's `DistributedPubSubMediator`). Start
/// it on every node that publishes or subscribes, with the same settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DistributedPubSub {
    hub: Hub,
    settings: PubSubSettings,
    shared: Arc<Shared>,
}

impl DistributedPubSub {
    /// Starts this node's mediator.
    pub fn start(hub: &Hub, settings: PubSubSettings) -> Result<Self, PubSubError> {
        settings.validate()?;
        let inbox = hub.listen(&settings.name)?;
        let runtime = hub.runtime();
        let shared = Arc::new(Shared {
            local: Mutex::new(Local {
                registry: Registry::new(hub.cluster().self_address()),
                subscribers: BTreeMap::new(),
                members: Vec::new(),
                turn: 0,
            }),
            origin: runtime.now(),
            runtime: runtime.clone(),
            next_id: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            changed: event_listener::Event::new(),
            poke: async_channel::bounded(1),
        });
        let ps = DistributedPubSub {
            hub: hub.clone(),
            settings,
            shared,
        };
        let task = ps.clone();
        runtime.spawn(Box::pin(async move { task.run(inbox).await }));
        Ok(ps)
    }

    /// Subscribes to `topic`: every message published to it reaches the subscription.
    pub fn subscribe(&self, topic: &str) -> Result<Subscription, PubSubError> {
        self.add(Key::Topic(name(topic)?))
    }

    /// Subscribes to `topic` in `group`: each message published to the topic's groups reaches
    /// one subscriber of each group, wherever it is.
    pub fn subscribe_group(&self, topic: &str, group: &str) -> Result<Subscription, PubSubError> {
        self.add(Key::Group {
            topic: name(topic)?,
            group: name(group)?,
        })
    }

    /// Registers a receiver at `path`: a message sent to the path reaches one receiver.
    pub fn register(&self, path: &str) -> Result<Subscription, PubSubError> {
        self.add(Key::Path(name(path)?))
    }

    /// Publishes `message` to every subscriber of `topic`, one network message per node that
    /// has any. Returns the number of nodes it went to (0: no subscriber anywhere, counted as
    /// a dead letter).
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<usize, PubSubError> {
        let payload = encode(message)?;
        let nodes = self.lock().registry.nodes_with(&Key::Topic(name(topic)?));
        if nodes.is_empty() {
            self.shared.dead_letter("no node subscribes to the topic");
        }
        let wire = Wire::Publish {
            topic: topic.into(),
            group: None,
            payload,
        };
        self.to_nodes(&nodes, &wire).await;
        Ok(nodes.len())
    }

    /// Publishes `message` to one subscriber of each group of `topic` (a random node among
    /// those with the group, then one of its subscribers in turn). Returns the number of
    /// groups reached.
    pub async fn publish_to_groups<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<usize, PubSubError> {
        let payload = encode(message)?;
        let topic = name(topic)?;
        let picks: Vec<(String, UniqueAddress)> = {
            let mut local = self.lock();
            let groups = local.registry.groups_of(&topic);
            let mut picks = Vec::new();
            for (group, nodes) in groups {
                local.turn = local.turn.wrapping_add(1);
                let pick = nodes[(mix(local.turn) % nodes.len() as u64) as usize];
                picks.push((group, pick));
            }
            picks
        };
        if picks.is_empty() {
            self.shared.dead_letter("no group subscribes to the topic");
        }
        for (group, node) in &picks {
            let wire = Wire::Publish {
                topic: topic.clone(),
                group: Some(group.clone()),
                payload: payload.clone(),
            };
            self.to_nodes(&[*node], &wire).await;
        }
        Ok(picks.len())
    }

    /// Sends `message` to one receiver registered at `path`: this node's if it has one and
    /// `local_affinity` is set, else one of the nodes with one, in turn.
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        path: &str,
        message: &T,
        local_affinity: bool,
    ) -> Result<(), PubSubError> {
        let payload = encode(message)?;
        let key = Key::Path(name(path)?);
        let target = {
            let mut local = self.lock();
            let nodes = local.registry.nodes_with(&key);
            let me = self.hub.cluster().self_address();
            if local_affinity && nodes.contains(&me) {
                Some(me)
            } else if nodes.is_empty() {
                None
            } else {
                local.turn = local.turn.wrapping_add(1);
                Some(nodes[(local.turn % nodes.len() as u64) as usize])
            }
        };
        let Some(target) = target else {
            self.shared.dead_letter("nobody registered the path");
            return Err(PubSubError::NoSuchPath(path.into()));
        };
        let wire = Wire::Send {
            path: path.into(),
            payload,
        };
        self.to_nodes(&[target], &wire).await;
        Ok(())
    }

    /// The topics with a subscriber somewhere, as this node knows them.
    pub fn topics(&self) -> Vec<String> {
        self.lock().registry.topics()
    }

    /// The nodes this node knows to have a subscriber of `topic`.
    pub fn subscribed_nodes(&self, topic: &str) -> Vec<SocketAddr> {
        self.lock()
            .registry
            .nodes_with(&Key::Topic(topic.into()))
            .iter()
            .map(|a| a.socket_addr())
            .collect()
    }

    /// The groups of `topic` this node knows, each with the nodes that have a subscriber in it.
    pub fn groups(&self, topic: &str) -> BTreeMap<String, Vec<SocketAddr>> {
        self.lock()
            .registry
            .groups_of(topic)
            .into_iter()
            .map(|(g, nodes)| (g, nodes.iter().map(|a| a.socket_addr()).collect()))
            .collect()
    }

    /// The nodes this node knows to have a receiver at `path`.
    pub fn registered_nodes(&self, path: &str) -> Vec<SocketAddr> {
        self.lock()
            .registry
            .nodes_with(&Key::Path(path.into()))
            .iter()
            .map(|a| a.socket_addr())
            .collect()
    }

    /// Waits until `cond` holds for this node's view of the registry (checked on every
    /// change): for example, that a subscription made elsewhere has become visible here.
    /// False if this node stopped first.
    pub async fn wait_until(&self, cond: impl Fn(&DistributedPubSub) -> bool) -> bool {
        loop {
            let listener = self.shared.changed.listen();
            if cond(self) {
                return true;
            }
            if self.hub.cluster().termination().is_some() {
                return false;
            }
            listener.await;
        }
    }

    /// [`DistributedPubSub::wait_until`] `cond` holds for the nodes with a subscriber of
    /// `topic`.
    pub async fn wait_for_subscribers(
        &self,
        topic: &str,
        cond: impl Fn(&[SocketAddr]) -> bool,
    ) -> bool {
        self.wait_until(|p| cond(&p.subscribed_nodes(topic))).await
    }

    /// Messages that reached no subscriber: published to a topic nobody subscribes to, sent
    /// to a path nobody registered, or dropped because a subscriber's queue was full.
    pub fn dead_letters(&self) -> u64 {
        self.shared.dead_letters.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.shared.local.lock().unwrap()
    }

    fn add(&self, key: Key) -> Result<Subscription, PubSubError> {
        let (tx, rx) = async_channel::bounded(self.settings.subscriber_buffer);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut local = self.lock();
        if local.registry.add(key.clone()) {
            self.shared.changed.notify(usize::MAX);
            let _ = self.shared.poke.0.try_send(());
        }
        local
            .subscribers
            .entry(key.clone())
            .or_default()
            .push(LocalSubscriber {
                id,
                tx,
                dropped: dropped.clone(),
            });
        Ok(Subscription {
            rx,
            key,
            id,
            dropped,
            shared: self.shared.clone(),
        })
    }

    /// Sends `wire` to `nodes`; this node's own share is delivered here at once.
    async fn to_nodes(&self, nodes: &[UniqueAddress], wire: &Wire) {
        let me = self.hub.cluster().self_address();
        let bytes = match postcard::to_allocvec(wire) {
            Ok(b) => b,
            Err(_) => return,
        };
        for n in nodes {
            if *n == me {
                self.deliver(me.socket_addr(), wire);
            } else if let Err(e) = self
                .hub
                .send_on(n.socket_addr(), &self.settings.name, &bytes)
                .await
            {
                self.shared
                    .dead_letter(&format!("the send to {} failed: {e}", n.socket_addr()));
            }
        }
    }

    /// Hands a published or sent message to the local receivers.
    fn deliver(&self, from: SocketAddr, wire: &Wire) {
        let (key, payload, one) = match wire {
            Wire::Publish {
                topic,
                group: None,
                payload,
            } => (Key::Topic(topic.clone()), payload, false),
            Wire::Publish {
                topic,
                group: Some(g),
                payload,
            } => (
                Key::Group {
                    topic: topic.clone(),
                    group: g.clone(),
                },
                payload,
                true,
            ),
            Wire::Send { path, payload } => (Key::Path(path.clone()), payload, true),
            Wire::Status { .. } | Wire::Delta(_) => return,
        };
        let topic = match &key {
            Key::Topic(t) | Key::Path(t) | Key::Group { topic: t, .. } => t.clone(),
        };
        let published = Published {
            from,
            topic,
            payload: Arc::new(payload.clone()),
        };
        let mut local = self.lock();
        local.turn = local.turn.wrapping_add(1);
        let turn = local.turn;
        let Some(subs) = local.subscribers.get(&key) else {
            // Unsubscribed since the sender looked: nobody here takes it.
            self.shared.dead_letter("nobody here subscribes any more");
            return;
        };
        let targets: &[LocalSubscriber] = if one {
            let i = (turn % subs.len() as u64) as usize;
            &subs[i..=i]
        } else {
            subs
        };
        for s in targets {
            if let Err(TrySendError::Full(_) | TrySendError::Closed(_)) =
                s.tx.try_send(published.clone())
            {
                self.shared.dead_letters.fetch_add(1, Ordering::Relaxed);
                // The subscriber learns it from `Subscription::dropped`; the log says so
                // once per subscription.
                if s.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        topic = %published.topic,
                        "fjell-tools: a subscriber's queue is full; messages to it are dropped"
                    );
                }
            }
        }
    }

    /// The mediator task: gossip on a timer, answers, delivery, membership.
    async fn run(self, inbox: Receiver<Incoming>) {
        let cluster = self.hub.cluster().clone();
        let runtime = self.hub.runtime();
        let mut seen = cluster.state();
        self.on_members(&seen);
        let mut next_gossip = runtime.now() + self.settings.gossip_interval;
        loop {
            enum Wake {
                Members(Option<ClusterState>),
                Message(Option<Incoming>),
                Gossip,
                Changed,
            }
            let wake = {
                let watched = &seen;
                let until = next_gossip.saturating_duration_since(runtime.now());
                future::or(
                    future::or(
                        async {
                            Wake::Members(cluster.wait_for(|s| s.members != watched.members).await)
                        },
                        async { Wake::Message(inbox.recv().await.ok()) },
                    ),
                    future::or(
                        async {
                            sleep(&*runtime, until).await;
                            Wake::Gossip
                        },
                        async {
                            let _ = self.shared.poke.1.recv().await;
                            Wake::Changed
                        },
                    ),
                )
                .await
            };
            match wake {
                Wake::Members(Some(state)) => {
                    self.on_members(&state);
                    seen = state;
                }
                Wake::Members(None) | Wake::Message(None) => {
                    // The node stopped: subscriptions end, and waiters are woken.
                    self.lock().subscribers.clear();
                    self.shared.changed.notify(usize::MAX);
                    return;
                }
                Wake::Message(Some(m)) => self.on_message(m).await,
                Wake::Gossip => {
                    next_gossip = runtime.now() + self.settings.gossip_interval;
                    self.gossip(1).await;
                }
                // A subscription here changed: tell several members now rather than one
                // per interval, so it is visible everywhere within about a round trip in
                // small clusters and spreads from there in large ones.
                Wake::Changed => self.gossip(PUSH_FANOUT).await,
            }
        }
    }

    fn on_members(&self, state: &ClusterState) {
        let members: Vec<UniqueAddress> = state
            .members
            .iter()
            .filter(|m| m.status != MemberStatus::Down)
            .map(|m| m.address)
            .collect();
        let mut local = self.lock();
        if local.registry.retain_members(&members) {
            self.shared.changed.notify(usize::MAX);
        }
        local.members = members;
    }

    /// Sends this node's status to `k` random other members (fewer if there are fewer).
    async fn gossip(&self, k: usize) {
        let now = self.shared.now();
        let (targets, status) = {
            let mut local = self.lock();
            local
                .registry
                .prune(now, self.settings.removed_time_to_live);
            let me = self.hub.cluster().self_address();
            let mut others: Vec<UniqueAddress> =
                local.members.iter().copied().filter(|a| *a != me).collect();
            // A partial shuffle: the first `k` are a random choice.
            let k = k.min(others.len());
            for i in 0..k {
                local.turn = local.turn.wrapping_add(1);
                let j = i + (mix(local.turn) % (others.len() - i) as u64) as usize;
                others.swap(i, j);
            }
            others.truncate(k);
            (others, local.registry.status())
        };
        let wire = Wire::Status {
            status,
            reply: false,
        };
        for t in targets {
            self.send_wire(t.socket_addr(), &wire).await;
        }
    }

    async fn on_message(&self, m: Incoming) {
        let wire: Wire = match hub::decode(&m.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(from = %m.from, error = %e, "fjell-tools: bad pub-sub message");
                return;
            }
        };
        match wire {
            Wire::Status { status, reply } => {
                let (delta, behind, mine) = {
                    let local = self.lock();
                    let delta = local
                        .registry
                        .delta_for(&status, self.settings.max_delta_elements);
                    let behind = local.registry.behind(&status, &local.members);
                    (delta, behind, local.registry.status())
                };
                if !delta.buckets.is_empty() {
                    self.send_wire(m.from, &Wire::Delta(delta)).await;
                }
                if behind && !reply {
                    self.send_wire(
                        m.from,
                        &Wire::Status {
                            status: mine,
                            reply: true,
                        },
                    )
                    .await;
                }
            }
            Wire::Delta(delta) => {
                let now = self.shared.now();
                let mut local = self.lock();
                let members = local.members.clone();
                if local.registry.merge(now, delta, &members) {
                    self.shared.changed.notify(usize::MAX);
                }
            }
            w @ (Wire::Publish { .. } | Wire::Send { .. }) => self.deliver(m.from, &w),
        }
    }

    async fn send_wire(&self, to: SocketAddr, wire: &Wire) {
        if let Ok(bytes) = postcard::to_allocvec(wire) {
            // Best effort: gossip repeats.
            let _ = self.hub.send_on(to, &self.settings.name, &bytes).await;
        }
    }
}

fn name(s: &str) -> Result<String, PubSubError> {
    if s.is_empty() || s.len() > MAX_KEY_LEN {
        return Err(PubSubError::BadName);
    }
    Ok(s.to_string())
}

fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, PubSubError> {
    postcard::to_allocvec(message).map_err(|e| PubSubError::Serialize(e.to_string()))
}

/// Members told at once when a subscription here changes.
const PUSH_FANOUT: usize = 8;

/// SplitMix64's finaliser: spreads the turn counter into a pick.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
