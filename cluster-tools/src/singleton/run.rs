//! The singleton's async side: the manager task that carries out [`decide::Manager`]'s
//! actions, the instance task, and the proxy.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use fjell_runtime::core::{Instant, Role};
use fjell_runtime::quic::{sleep, RequestError};
use fjell_runtime::{Cluster, Runtime};
use futures_lite::future;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::decide::{self, Action, Manager, Message, Phase};
use crate::hub::{self, ChannelTaken, Hub, Incoming};

/// A singleton's settings (Pekko's `pekko.cluster.singleton` and `singleton-proxy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingletonSettings {
    /// The singleton's name: the same on every node that runs its manager or a proxy.
    pub name: String,
    /// Host only on members with this role (`None`: any member).
    pub role: Option<String>,
    /// How often the would-be host asks a leaving host to hand over (Pekko: 1 s).
    pub hand_over_retry_interval: Duration,
    /// How long a stopping instance may take before it is dropped (its future is cancelled).
    pub stop_timeout: Duration,
    /// Messages a proxy holds at once while there is no host (Pekko: 1,000; at most 10,000).
    pub buffer_size: usize,
    /// How long a proxy's message may wait for a host before [`ProxyError::Timeout`].
    pub deliver_timeout: Duration,
    /// Messages the instance's inbox holds; the proxy waits while it is full.
    pub inbox_size: usize,
}

impl SingletonSettings {
    /// Pekko's defaults for a singleton called `name`.
    pub fn new(name: &str) -> Self {
        SingletonSettings {
            name: name.to_string(),
            role: None,
            hand_over_retry_interval: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(10),
            buffer_size: 1000,
            deliver_timeout: Duration::from_secs(30),
            inbox_size: 1000,
        }
    }

    fn validate(&self) -> Result<Option<Role>, StartError> {
        let bad = |key: &'static str, reason: &'static str| StartError::Settings { key, reason };
        if self.name.is_empty() {
            return Err(bad("singleton-name", "must not be empty"));
        }
        if self.hand_over_retry_interval.is_zero() {
            return Err(bad("hand-over-retry-interval", "must be positive"));
        }
        if self.stop_timeout.is_zero() {
            return Err(bad("stop-timeout", "must be positive"));
        }
        if self.buffer_size > 10_000 {
            return Err(bad("buffer-size", "must be at most 10,000"));
        }
        if self.deliver_timeout.is_zero() {
            return Err(bad("deliver-timeout", "must be positive"));
        }
        if self.inbox_size == 0 {
            return Err(bad("inbox-size", "must be positive"));
        }
        self.role
            .as_deref()
            .map(Role::new)
            .transpose()
            .map_err(|_| bad("role", "longer than a role may be"))
    }

    fn channel(&self) -> String {
        format!("singleton/{}", self.name)
    }
}

/// The singleton could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error("singleton setting `{key}`: {reason}")]
    Settings {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A singleton of this name already runs on this node.
    #[error(transparent)]
    AlreadyRunning(#[from] ChannelTaken),
}

/// A proxy's message did not reach the instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxy holds [`SingletonSettings::buffer_size`] messages already.
    #[error("the singleton proxy's buffer is full ({0} messages)")]
    BufferFull(usize),
    /// No host took the message within [`SingletonSettings::deliver_timeout`] (or the host
    /// did not answer: the message may have been delivered).
    #[error("no singleton instance took the message within the deliver timeout")]
    Timeout,
    /// The message does not serialize.
    #[error("the message does not serialize: {0}")]
    Serialize(String),
    /// The response does not deserialize as the expected type.
    #[error("the response does not deserialize: {0}")]
    Deserialize(String),
    /// The instance took the request and ended without answering it.
    #[error("the singleton instance ended without answering")]
    Unanswered,
    /// This node has stopped.
    #[error("this node has stopped")]
    Stopped,
}

/// A message to the instance, from a [`SingletonProxy`].
#[derive(Debug)]
pub struct SingletonMessage {
    /// The sender's address.
    pub from: SocketAddr,
    payload: Vec<u8>,
    reply: Option<Sender<Vec<u8>>>,
}

impl SingletonMessage {
    /// The message as `T`; a message of another type is an error, never a panic.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, postcard::Error> {
        hub::decode(&self.payload)
    }

    /// True if the sender waits for [`SingletonMessage::respond`].
    pub fn is_request(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers a request (a one-way message ignores it).
    pub fn respond<T: Serialize + ?Sized>(self, response: &T) -> Result<(), postcard::Error> {
        if let Some(reply) = self.reply {
            let _ = reply.try_send(postcard::to_allocvec(response)?);
        }
        Ok(())
    }
}

/// What the instance is given.
#[derive(Debug)]
pub struct SingletonContext {
    inbox: Receiver<SingletonMessage>,
    stop: Receiver<()>,
    cluster: Cluster,
}

impl SingletonContext {
    /// The next message; `None` once the instance is told to stop.
    pub async fn recv(&self) -> Option<SingletonMessage> {
        future::or(async { self.inbox.recv().await.ok() }, async {
            self.stopping().await;
            None
        })
        .await
    }

    /// Completes when the instance is told to stop (hand-over, this node leaving or downed).
    /// Finish what must be finished and return; after [`SingletonSettings::stop_timeout`]
    /// the instance is dropped.
    pub async fn stopping(&self) {
        let _ = self.stop.recv().await;
    }

    /// True once the instance is told to stop.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_closed()
    }

    /// The node's cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// What travels on a singleton's channel.
#[derive(Debug, Serialize, Deserialize)]
enum Wire {
    /// Between managers.
    Manager(Message),
    /// A proxy's one-way message (sent as a request, answered with a [`Reply`]).
    Deliver(Vec<u8>),
    /// A proxy's request.
    Request(Vec<u8>),
}

/// A host's answer to [`Wire::Deliver`] and [`Wire::Request`].
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Delivered,
    Response(Vec<u8>),
    /// No instance runs here (it is starting, stopping, or elsewhere).
    NotHere,
    /// The instance's inbox is full.
    Full,
    Unanswered,
}

type Factory =
    Arc<dyn Fn(SingletonContext) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A singleton's manager on this node (see the module docs). Dropping the handle does not
/// stop it; it stops with the node.
#[derive(Debug, Clone)]
pub struct ClusterSingleton {
    phase: Arc<Mutex<Phase>>,
    proxy: SingletonProxy,
}

impl ClusterSingleton {
    /// Starts the manager of singleton `settings.name` on this node; the instance is
    /// `factory(context)`, started here whenever this node becomes the host.
    pub fn start<F, Fut>(
        hub: &Hub,
        settings: SingletonSettings,
        factory: F,
    ) -> Result<Self, StartError>
    where
        F: Fn(SingletonContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let role = settings.validate()?;
        let inbox = hub.listen(&settings.channel())?;
        let factory: Factory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        let phase = Arc::new(Mutex::new(Phase::Younger));
        let proxy = SingletonProxy::new(hub, settings.clone())?;
        let task = ManagerTask {
            hub: hub.clone(),
            runtime: hub.runtime(),
            origin: hub.runtime().now(),
            manager: Manager::new(
                hub.cluster().self_address(),
                role,
                settings.hand_over_retry_interval,
                settings.stop_timeout,
            ),
            settings,
            factory,
            phase: phase.clone(),
            instance: None,
        };
        hub.runtime().spawn(Box::pin(task.run(inbox)));
        Ok(ClusterSingleton { phase, proxy })
    }

    /// Where this node's manager is.
    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap()
    }

    /// A proxy to the instance, wherever it runs.
    pub fn proxy(&self) -> SingletonProxy {
        self.proxy.clone()
    }
}

/// The instance running here.
struct Instance {
    inbox: Sender<SingletonMessage>,
    /// Dropped to tell the instance to stop.
    stop: Option<Sender<()>>,
    /// Dropped to cancel it.
    kill: Option<Sender<()>>,
    /// Closed when it has ended.
    ended: Receiver<()>,
    stop_deadline: Option<std::time::Instant>,
}

struct ManagerTask {
    hub: Hub,
    runtime: Arc<dyn Runtime>,
    origin: std::time::Instant,
    manager: Manager,
    settings: SingletonSettings,
    factory: Factory,
    phase: Arc<Mutex<Phase>>,
    instance: Option<Instance>,
}

/// What woke the manager task.
enum Wake {
    /// The members changed (`None`: the node stopped).
    Membership(Option<fjell_runtime::ClusterState>),
    Message(Option<Incoming>),
    Ended,
    Timer,
}

impl ManagerTask {
    fn now(&self) -> Instant {
        let d = self.runtime.now().saturating_duration_since(self.origin);
        Instant::from_micros(d.as_micros() as u64)
    }

    async fn run(mut self, inbox: Receiver<Incoming>) {
        let cluster = self.hub.cluster().clone();
        let mut members = cluster.state().members;
        let now = self.now();
        self.manager.handle_members(now, &members);
        self.apply();
        loop {
            let wake = {
                let timer = self.next_wake();
                let ended = self.instance.as_ref().map(|i| i.ended.clone());
                let runtime = self.runtime.clone();
                let seen = &members;
                future::or(
                    future::or(
                        // The published state, not events: the driver publishes the state after
                        // the events of a change, so a snapshot read on an event can miss it.
                        async { Wake::Membership(cluster.wait_for(|s| s.members != *seen).await) },
                        async { Wake::Message(inbox.recv().await.ok()) },
                    ),
                    future::or(
                        async {
                            match ended {
                                Some(e) => {
                                    let _ = e.recv().await;
                                    Wake::Ended
                                }
                                None => future::pending().await,
                            }
                        },
                        async {
                            match timer {
                                Some(at) => {
                                    let d = at.saturating_duration_since(runtime.now());
                                    sleep(&*runtime, d).await;
                                    Wake::Timer
                                }
                                None => future::pending().await,
                            }
                        },
                    ),
                )
                .await
            };
            let now = self.now();
            match wake {
                Wake::Membership(Some(state)) => {
                    members = state.members;
                    self.manager.handle_members(now, &members);
                }
                Wake::Membership(None) | Wake::Message(None) => {
                    // The node stopped: whatever runs here ends now.
                    self.cancel();
                    *self.phase.lock().unwrap() = Phase::Ended;
                    return;
                }
                Wake::Message(Some(m)) => self.on_incoming(now, m),
                Wake::Ended => {
                    self.instance = None;
                    self.manager.handle_stopped(now);
                }
                Wake::Timer => {
                    if let Some(i) = &self.instance {
                        if i.stop_deadline.is_some_and(|d| d <= self.runtime.now()) {
                            tracing::warn!(
                                singleton = %self.settings.name,
                                "fjell-tools: the singleton instance did not stop within the stop timeout; dropped"
                            );
                            self.cancel();
                            self.manager.handle_stopped(now);
                        }
                    }
                    self.manager.handle_timeout(now);
                }
            }
            self.apply();
        }
    }

    fn next_wake(&self) -> Option<std::time::Instant> {
        let manager = self
            .manager
            .poll_timeout()
            .map(|t| self.origin + Duration::from_micros(t.as_micros()));
        let stop = self.instance.as_ref().and_then(|i| i.stop_deadline);
        match (manager, stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_incoming(&mut self, now: Instant, m: Incoming) {
        let wire: Wire = match hub::decode(&m.payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(from = %m.from, error = %e, "fjell-tools: bad singleton message");
                return;
            }
        };
        match wire {
            Wire::Manager(message) => self.manager.handle_message(now, m.from, message),
            Wire::Deliver(payload) => {
                let reply = self.deliver(m.from, payload, None);
                self.respond(m, reply);
            }
            Wire::Request(payload) => {
                let (tx, rx) = async_channel::bounded(1);
                match self.deliver(m.from, payload, Some(tx)) {
                    Reply::Delivered => {
                        let hub = self.hub.clone();
                        self.runtime.spawn(Box::pin(async move {
                            let reply = match rx.recv().await {
                                Ok(bytes) => Reply::Response(bytes),
                                Err(_) => Reply::Unanswered,
                            };
                            respond(&hub, &m, &reply).await;
                        }));
                    }
                    other => self.respond(m, other),
                }
            }
        }
    }

    fn deliver(&self, from: SocketAddr, payload: Vec<u8>, reply: Option<Sender<Vec<u8>>>) -> Reply {
        let running = self.manager.phase() == Phase::Running;
        match &self.instance {
            Some(i) if running => match i.inbox.try_send(SingletonMessage {
                from,
                payload,
                reply,
            }) {
                Ok(()) => Reply::Delivered,
                Err(async_channel::TrySendError::Full(_)) => Reply::Full,
                Err(async_channel::TrySendError::Closed(_)) => Reply::NotHere,
            },
            _ => Reply::NotHere,
        }
    }

    fn respond(&self, m: Incoming, reply: Reply) {
        let hub = self.hub.clone();
        self.runtime
            .spawn(Box::pin(async move { respond(&hub, &m, &reply).await }));
    }

    /// Carries out the manager's actions.
    fn apply(&mut self) {
        while let Some(action) = self.manager.poll_action() {
            match action {
                Action::Start => self.start_instance(),
                Action::Stop => {
                    if let Some(i) = &mut self.instance {
                        i.stop = None;
                        i.stop_deadline = Some(self.runtime.now() + self.settings.stop_timeout);
                    }
                    tracing::info!(singleton = %self.settings.name, "fjell-tools: singleton instance stopping here");
                }
                Action::Send { to, message } => {
                    let hub = self.hub.clone();
                    let channel = self.settings.channel();
                    let bytes = postcard::to_allocvec(&Wire::Manager(message))
                        .expect("manager messages serialize");
                    self.runtime.spawn(Box::pin(async move {
                        // Best effort: the manager resends what matters.
                        let _ = hub.send_on(to, &channel, &bytes).await;
                    }));
                }
            }
        }
        *self.phase.lock().unwrap() = self.manager.phase();
    }

    fn start_instance(&mut self) {
        let (inbox_tx, inbox_rx) = async_channel::bounded(self.settings.inbox_size);
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let (kill_tx, kill_rx) = async_channel::bounded::<()>(1);
        let (ended_tx, ended_rx) = async_channel::bounded::<()>(1);
        let ctx = SingletonContext {
            inbox: inbox_rx,
            stop: stop_rx,
            cluster: self.hub.cluster().clone(),
        };
        let instance = (self.factory)(ctx);
        self.runtime.spawn(Box::pin(async move {
            // The kill first: once it fires the instance is not polled again.
            future::or(
                async {
                    let _ = kill_rx.recv().await;
                },
                instance,
            )
            .await;
            drop(ended_tx);
        }));
        self.instance = Some(Instance {
            inbox: inbox_tx,
            stop: Some(stop_tx),
            kill: Some(kill_tx),
            ended: ended_rx,
            stop_deadline: None,
        });
        tracing::info!(singleton = %self.settings.name, "fjell-tools: singleton instance started here");
    }

    /// Drops the instance's future (cancelling it) and forgets it.
    fn cancel(&mut self) {
        if let Some(mut i) = self.instance.take() {
            i.stop = None;
            i.kill = None;
        }
    }
}

async fn respond(hub: &Hub, m: &Incoming, reply: &Reply) {
    let bytes = postcard::to_allocvec(reply).expect("replies serialize");
    let _ = hub.respond(m, &bytes).await;
}

/// Sends typed messages and requests to a singleton's instance, wherever it runs (see the
/// module docs). Works on any node with a [`Hub`], with or without the singleton's manager.
/// Cheap to clone; clones share the buffer bound.
#[derive(Debug, Clone)]
pub struct SingletonProxy {
    hub: Hub,
    settings: SingletonSettings,
    role: Option<Role>,
    pending: Arc<AtomicUsize>,
}

impl SingletonProxy {
    /// A proxy to singleton `settings.name` (hosted on members with `settings.role`).
    pub fn new(hub: &Hub, settings: SingletonSettings) -> Result<Self, StartError> {
        let role = settings.validate()?;
        Ok(SingletonProxy {
            hub: hub.clone(),
            settings,
            role,
            pending: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Sends `message` to the instance. Returns once the instance's inbox has it.
    pub async fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), ProxyError> {
        let payload =
            postcard::to_allocvec(message).map_err(|e| ProxyError::Serialize(e.to_string()))?;
        self.deliver(Wire::Deliver(payload)).await.map(|_| ())
    }

    /// Sends `request` to the instance and waits for its answer.
    pub async fn request<Q: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        request: &Q,
    ) -> Result<R, ProxyError> {
        let payload =
            postcard::to_allocvec(request).map_err(|e| ProxyError::Serialize(e.to_string()))?;
        match self.deliver(Wire::Request(payload)).await? {
            Some(bytes) => hub::decode(&bytes).map_err(|e| ProxyError::Deserialize(e.to_string())),
            None => Err(ProxyError::Unanswered),
        }
    }

    /// The member the instance runs on (or is about to), as this node sees it.
    pub fn host(&self) -> Option<SocketAddr> {
        let state = self.hub.cluster().state();
        decide::host_of(&state.members, self.role.as_ref()).map(|m| m.address.socket_addr())
    }

    async fn deliver(&self, wire: Wire) -> Result<Option<Vec<u8>>, ProxyError> {
        let bound = self.settings.buffer_size;
        if self.pending.fetch_add(1, Ordering::AcqRel) >= bound {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(ProxyError::BufferFull(bound));
        }
        let result = self.deliver_now(wire).await;
        self.pending.fetch_sub(1, Ordering::AcqRel);
        result
    }

    async fn deliver_now(&self, wire: Wire) -> Result<Option<Vec<u8>>, ProxyError> {
        let runtime = self.hub.runtime();
        let bytes =
            postcard::to_allocvec(&wire).map_err(|e| ProxyError::Serialize(e.to_string()))?;
        let deadline = runtime.now() + self.settings.deliver_timeout;
        let channel = self.settings.channel();
        loop {
            if self.hub.cluster().termination().is_some() {
                return Err(ProxyError::Stopped);
            }
            let left = deadline.saturating_duration_since(runtime.now());
            if left.is_zero() {
                return Err(ProxyError::Timeout);
            }
            if let Some(host) = self.host() {
                match self.hub.request_on(host, &channel, &bytes, left).await {
                    Ok(answer) => match hub::decode::<Reply>(&answer) {
                        Ok(Reply::Delivered) => return Ok(None),
                        Ok(Reply::Response(r)) => return Ok(Some(r)),
                        Ok(Reply::Unanswered) => return Err(ProxyError::Unanswered),
                        // Not (yet) there, or busy: wait for the next host below.
                        Ok(Reply::NotHere | Reply::Full) | Err(_) => {}
                    },
                    // The host did not answer: the message may have arrived, so it is not
                    // sent again (at most once).
                    Err(RequestError::Timeout(_)) => return Err(ProxyError::Timeout),
                    // Not sent (the host is no member any more, or unreachable): try again.
                    Err(_) => {}
                }
            }
            // No host in sight, or it has no instance yet: look again shortly (membership
            // changes arrive by gossip, in about a second).
            let pause = RETRY.min(deadline.saturating_duration_since(runtime.now()));
            sleep(&*runtime, pause).await;
        }
    }
}

/// How often a waiting proxy looks for a host again.
const RETRY: Duration = Duration::from_millis(100);
