//! The driver: one task that owns one node's core and its transport.
//!
//! Every input — a message from the transport, a timer expiry, a user command, a lease
//! answer — is fed to the core in the order it was taken, and the core's outputs (messages,
//! lease requests, events) are flushed right after, as fjell-core's call order requires.
//! Nothing is shared with the [`Cluster`](crate::Cluster) handles but channels and a snapshot
//! behind a mutex that is never held across an await.

use std::future::{pending, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use fjell_core::{
    CommandError, ConfigError, DeliveryClass, Event, Instant, LeaseRequest, Node, NodeStatus, Sink,
    StopReason, Transmit, UniqueAddress,
};
use fjell_quic::{CoreMessage, Transport};

use crate::lease::ClusterLease;
use crate::runtime::{BoxFuture, Runtime};
use crate::state::ClusterState;

/// A user callback (on member up / removed).
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;
/// Where a command's outcome goes.
pub(crate) type Reply = Sender<Result<(), CommandError>>;

/// What a [`Cluster`](crate::Cluster) asks of its driver.
pub(crate) enum Command {
    Join(SocketAddr, Reply),
    JoinSeedNodes(Vec<SocketAddr>, Reply),
    Leave(SocketAddr, Reply),
    Down(SocketAddr, Reply),
    PrepareForFullClusterShutdown(Reply),
    Subscribe {
        replay: bool,
        events: Sender<Event>,
        state: Sender<ClusterState>,
    },
    OnMemberUp(Callback),
    OnMemberRemoved(Callback),
    Shutdown(Duration),
    Abort,
    /// What the failure detector says of each monitored member now.
    Monitored(Sender<Vec<fjell_core::MonitorStats>>),
    /// Reload the TLS credentials and deny list from their source.
    ReloadCredentials(Sender<Result<fjell_quic::Fingerprint, String>>),
    /// A snapshot of the node's measurements.
    Metrics(Sender<crate::metrics::Metrics>),
    /// A management request, answered as for an administrator tool.
    Manage(
        crate::management::Request,
        Sender<crate::management::Response>,
    ),
}

/// How a node's driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The core stopped: after leaving ([`StopReason::Left`], the graceful end), being downed
    /// or removed, or giving up joining.
    Stopped(StopReason),
    /// A graceful leave did not finish within the shutdown timeout; the transport was closed
    /// anyway. The others will find the node unreachable.
    LeaveTimedOut,
    /// Shut down before the node became a member: there was nothing to leave.
    NotAMember,
    /// Stopped at once by [`Cluster::abort`](crate::Cluster::abort), because the transport
    /// closed under the driver, or because the driver itself ended without finishing (it
    /// panicked in a lease or callback, or was dropped): the others will find the node
    /// unreachable.
    Aborted,
}

/// What the handles and the driver share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<ClusterState>,
    pub(crate) termination: Mutex<Option<Termination>>,
    /// Notified whenever `state` is replaced.
    pub(crate) changed: event_listener::Event,
    /// This node has been Up (set by the driver before it runs on-member-up callbacks).
    pub(crate) was_up: std::sync::atomic::AtomicBool,
    /// The transport, for the handles' application messages; taken when the node stops, so
    /// the UDP port is released once the driver's own clone is dropped too (a node may
    /// restart on the same port while old handles still exist).
    pub(crate) transport: Mutex<Option<Transport>>,
}

impl Shared {
    pub(crate) fn publish(&self, state: ClusterState) {
        *self.state.lock().unwrap() = state;
        self.changed.notify(usize::MAX);
    }
}

/// Settings of the driver that are not the core's.
pub(crate) struct DriverSettings {
    pub(crate) seed_nodes: Vec<SocketAddr>,
    pub(crate) log_info: bool,
    pub(crate) log_verbose: bool,
    pub(crate) event_log: Option<crate::event_log::EventLog>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) lease: Option<Arc<dyn ClusterLease>>,
    pub(crate) credentials: crate::credentials::Keeper,
}

/// A node's driver: a plain `Future` that runs the node until it stops. Poll it on any
/// executor (or let [`ClusterBuilder::start`](crate::ClusterBuilder::start) spawn it). It
/// completes after the node has stopped and the transport is closed.
#[must_use = "the node does nothing until its driver is polled"]
pub struct Driver {
    run: BoxFuture<()>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Future for Driver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.run.as_mut().poll(cx)
    }
}

/// Builds a node on the heap. fjell-runtime turns on fjell-core's `alloc` feature, so the
/// node value is a few kilobytes whatever its capacities (its per-member state is on the heap
/// and grows with the cluster): it is built like any value, on the caller's stack.
pub(crate) fn new_node<const M: usize, const R: usize, const H: usize>(
    config: fjell_core::Config,
    addr: SocketAddr,
    uid: u64,
    seed: u64,
) -> Result<Box<Node<M, R, H>>, ConfigError> {
    Node::new(config, UniqueAddress::new(addr, uid), seed).map(Box::new)
}

/// The driver's [`Sink`]: where [`Node::drain`] puts the core's outputs.
struct Outputs<'a> {
    me: UniqueAddress,
    transport: &'a Transport,
    runtime: &'a Arc<dyn Runtime>,
    lease: Option<&'a Arc<dyn ClusterLease>>,
    acquiring: &'a mut Option<BoxFuture<bool>>,
    releasing: &'a mut Option<BoxFuture<()>>,
    /// Published once the core is drained (publishing needs the whole driver).
    events: &'a mut Vec<Event>,
    traffic: &'a mut crate::metrics::Traffic,
}

impl Sink for Outputs<'_> {
    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        self.traffic.sent(t.class, bytes.len());
        if t.class == DeliveryClass::Gossip {
            tracing::debug!(node = %self.me, to = %t.destination, bytes = t.len, "fjell: gossip sent");
        }
        if let Err(e) = self.transport.send_transmit(t, bytes) {
            tracing::debug!(node = %self.me, to = %t.destination, "fjell: not sent: {e}");
        }
    }

    fn lease(&mut self, req: LeaseRequest, _: Instant) -> Option<bool> {
        match (req, self.lease) {
            (LeaseRequest::Acquire, Some(lease)) => {
                // A release still in flight goes first, so the backend never sees them out
                // of order; an acquire that does not answer in time counts as refused
                // (Pekko's lease-operation-timeout), so this side acts.
                let release = self.releasing.take();
                let acquire = lease.acquire(self.me);
                let runtime = self.runtime.clone();
                *self.acquiring = Some(Box::pin(async move {
                    if let Some(r) = release {
                        r.await;
                    }
                    fjell_quic::rt::timeout(&*runtime, LEASE_OPERATION_TIMEOUT, acquire)
                        .await
                        .unwrap_or(false)
                }));
                None
            }
            // The builder refuses lease-majority without a lease; be safe anyway.
            (LeaseRequest::Acquire, None) => Some(false),
            (LeaseRequest::Release, Some(lease)) => {
                *self.releasing = Some(lease.release(self.me));
                None
            }
            (LeaseRequest::Release, None) => None,
        }
    }

    fn event(&mut self, e: Event) {
        self.events.push(e);
    }
}

/// What woke the driver.
/// How long a lease acquire may take before it counts as refused.
const LEASE_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

enum Input {
    Command(Option<Command>),
    Message(Option<CoreMessage>),
    Admin(Option<fjell_quic::AdminRequest>),
    Timer,
    Lease(bool),
    Released,
}

pub(crate) struct Run<const M: usize, const R: usize, const H: usize> {
    node: Box<Node<M, R, H>>,
    me: UniqueAddress,
    transport: Transport,
    runtime: Arc<dyn Runtime>,
    origin: std::time::Instant,
    commands: Receiver<Command>,
    commands_open: bool,
    /// False once the transport's administrator queue has closed.
    admin_open: bool,
    subscribers: Vec<Sender<Event>>,
    on_up: Vec<Callback>,
    on_removed: Vec<Callback>,
    was_up: bool,
    acquiring: Option<BoxFuture<bool>>,
    releasing: Option<BoxFuture<()>>,
    /// Events drained from the core and not yet published (kept for its allocation).
    events: Vec<Event>,
    leave_deadline: Option<Instant>,
    published: Option<u64>,
    buf: Vec<u8>,
    /// What this node reports while it is not in a cluster yet.
    progress: crate::progress::JoinProgress,
    /// Counters for [`crate::metrics`].
    tally: crate::metrics::Tally,
    /// Verbose cluster logging's memory ([`crate::cluster_log`]).
    log: crate::cluster_log::ClusterLog,
    settings: DriverSettings,
    shared: Arc<Shared>,
    /// Dropped when the driver ends: handles waiting for the end see the channel close.
    _alive: Sender<()>,
}

impl<const M: usize, const R: usize, const H: usize> Run<M, R, H> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node: Box<Node<M, R, H>>,
        transport: Transport,
        runtime: Arc<dyn Runtime>,
        commands: Receiver<Command>,
        settings: DriverSettings,
        shared: Arc<Shared>,
        alive: Sender<()>,
    ) -> Self {
        let progress = crate::progress::JoinProgress::new(node.config().seed_node_timeout);
        Run {
            me: node.address(),
            origin: runtime.now(),
            node,
            transport,
            runtime,
            commands,
            commands_open: true,
            admin_open: true,
            subscribers: Vec::new(),
            on_up: Vec::new(),
            on_removed: Vec::new(),
            was_up: false,
            acquiring: None,
            releasing: None,
            events: Vec::new(),
            leave_deadline: None,
            published: None,
            buf: Vec::new(),
            progress,
            tally: Default::default(),
            log: crate::cluster_log::ClusterLog::new(settings.log_verbose),
            settings,
            shared,
            _alive: alive,
        }
    }

    pub(crate) fn into_driver(self) -> Driver {
        Driver {
            run: Box::pin(self.run()),
        }
    }

    fn now(&self) -> Instant {
        crate::runtime::instant_since(self.origin, self.runtime.now())
    }

    async fn run(mut self) {
        let now = self.now();
        let seeds = self.settings.seed_nodes.clone();
        if seeds.is_empty() {
            tracing::info!(node = %self.me, "fjell: no seed nodes configured: waiting to be joined by hand");
        } else {
            tracing::info!(node = %self.me, seeds = ?seeds, "fjell: joining through the seed nodes");
            if let Err(e) = self.node.join_seed_nodes(now, &seeds) {
                tracing::warn!(node = %self.me, "fjell: cannot join the seed nodes: {e}");
            }
        }
        self.progress.attempt(now, &seeds);
        let end = loop {
            let now = self.now();
            // The last input's outputs first (the core's call order: drain after every
            // input): a timer due at once, such as the leader's actions on a state that just
            // converged, must not change that state before its events are published.
            self.flush();
            // Then timers, whatever woke us: a busy transport must not starve them.
            if self.node.poll_timeout().is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
                self.flush();
            }
            if let NodeStatus::Stopped(reason) = self.node.status() {
                break Termination::Stopped(reason);
            }
            if self.leave_deadline.is_some_and(|d| d <= now) {
                tracing::warn!(node = %self.me, "fjell: leaving did not finish in time");
                break Termination::LeaveTimedOut;
            }
            self.housekeeping(now);
            let deadlines = [
                self.node.poll_timeout(),
                self.leave_deadline,
                self.progress.deadline(),
                Some(self.settings.credentials.deadline()),
            ];
            let wake = deadlines.into_iter().flatten().min();
            let input = self.next_input(wake.map(|w| w - now)).await;
            let now = self.now();
            let ended = match input {
                Input::Command(Some(c)) => self.command(c),
                Input::Command(None) => {
                    // Every handle was dropped: leave gracefully, as the docs promise.
                    self.commands_open = false;
                    self.begin_leave(now, self.settings.shutdown_timeout)
                }
                Input::Message(Some(m)) => {
                    self.message(now, m);
                    None
                }
                Input::Message(None) => Some(Termination::Aborted),
                Input::Admin(Some(req)) => {
                    let answer = crate::management::answer(&mut *self.node, now, &req.payload);
                    if self.settings.log_info {
                        tracing::info!(node = %self.me, admin = %req.from, "fjell: management request answered");
                    }
                    req.answer(crate::management::encode(&answer));
                    None
                }
                Input::Admin(None) => {
                    self.admin_open = false;
                    None
                }
                Input::Timer => None,
                Input::Lease(granted) => {
                    self.acquiring = None;
                    if self.settings.log_info {
                        tracing::info!(node = %self.me, granted, "fjell: lease answered");
                    }
                    self.node.handle_lease(now, granted);
                    None
                }
                Input::Released => {
                    self.releasing = None;
                    None
                }
            };
            if let Some(end) = ended {
                break end;
            }
        };
        self.finish(end).await;
    }

    /// What is not the core's: the join progress report and the credentials.
    fn housekeeping(&mut self, now: Instant) {
        match self.node.status() {
            NodeStatus::Member | NodeStatus::Exiting | NodeStatus::Stopped(_) => {
                self.progress.done()
            }
            // The core started over as a joiner by itself (it found itself removed).
            NodeStatus::Joining if self.progress.deadline().is_none() => {
                self.progress.attempt(now, &self.settings.seed_nodes)
            }
            _ => {}
        }
        let transport = &self.transport;
        if let Some(w) = self.progress.warning(now, |a| transport.dial_outcome(a)) {
            tracing::warn!(node = %self.me, "fjell: {w}");
        }
        self.settings.credentials.poll(now, &self.transport);
    }

    /// Waits for the next input, or `wait` (the next deadline).
    async fn next_input(&mut self, wait: Option<Duration>) -> Input {
        let Run {
            commands,
            commands_open,
            admin_open,
            transport,
            acquiring,
            releasing,
            runtime,
            ..
        } = self;
        let sleep = wait.map(|w| fjell_quic::sleep(&**runtime, w));
        let timer = async move {
            match sleep {
                Some(s) => s.await,
                None => pending().await,
            }
            Input::Timer
        };
        let commands = async {
            if *commands_open {
                Input::Command(commands.recv().await.ok())
            } else {
                pending().await
            }
        };
        let lease = async {
            match acquiring.as_mut() {
                Some(f) => Input::Lease(f.await),
                None => pending().await,
            }
        };
        let released = async {
            match releasing.as_mut() {
                Some(f) => {
                    f.await;
                    Input::Released
                }
                None => pending().await,
            }
        };
        let message = async { Input::Message(transport.recv_core().await) };
        let admin = async {
            if *admin_open {
                Input::Admin(transport.recv_admin().await)
            } else {
                pending().await
            }
        };
        // Commands and lease answers are rare and first; timers are also checked before
        // every wait, so the order here cannot starve anything.
        use futures_lite::future::or;
        or(
            or(commands, lease),
            or(or(timer, released), or(message, admin)),
        )
        .await
    }

    fn message(&mut self, now: Instant, m: CoreMessage) {
        self.tally.traffic.received(m.class, m.bytes.len());
        if m.class == DeliveryClass::Gossip {
            tracing::debug!(node = %self.me, from = %m.from, bytes = m.bytes.len(), "fjell: gossip received");
        }
        if let Err(e) = self.node.handle_message(now, m.from, &m.bytes) {
            tracing::debug!(node = %self.me, from = %m.from, "fjell: message refused: {e}");
        }
    }

    /// Drains the core's outputs ([`Node::drain`]): messages to the transport, events to
    /// subscribers, lease requests to the lease.
    fn flush(&mut self) {
        let now = self.now();
        let mut events = std::mem::take(&mut self.events);
        {
            let Run {
                node,
                buf,
                me,
                transport,
                runtime,
                acquiring,
                releasing,
                settings,
                tally,
                ..
            } = self;
            let mut outputs = Outputs {
                me: *me,
                transport,
                runtime,
                lease: settings.lease.as_ref(),
                acquiring,
                releasing,
                events: &mut events,
                traffic: &mut tally.traffic,
            };
            node.drain_vec(now, buf, &mut outputs);
        }
        let generation = self.node.generation();
        let changed = self.published != Some(generation);
        self.published = Some(generation);
        if changed || !events.is_empty() {
            // The state, the transport's members, `was_up` and the subscribers' events change
            // in one step, under the state's lock: a reader of `Cluster::state` finds the
            // events that led there already queued (death watch relies on it), and a
            // subscriber handed an event finds the state showing it and can send to the
            // member it names. Unbounded channels: a slow subscriber never stalls the node; a
            // closed one is forgotten.
            let next = changed.then(|| ClusterState::of(&self.node));
            let me = self.me;
            let up = events
                .iter()
                .any(|e| matches!(e, Event::MemberUp(m) if m.address == me));
            let mut state = self.shared.state.lock().unwrap();
            if let Some(next) = next {
                *state = next;
                self.transport
                    .set_members(self.node.members().iter().map(|m| m.address.socket_addr()));
            }
            if up {
                // An on-member-up callback registered by whoever sees this node Up runs at
                // once; those registered before run below.
                self.shared
                    .was_up
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            self.subscribers
                .retain(|s| events.iter().all(|e| s.try_send(e.clone()).is_ok()));
        }
        if changed {
            self.shared.changed.notify(usize::MAX);
        }
        // What else the events do, with the lock released: callbacks may read the state.
        for e in events.drain(..) {
            self.act_on(e);
        }
        self.events = events;
        self.log.flushed(&self.node, now, changed);
    }

    /// What an event does in the driver beyond reaching subscribers: counters, logs,
    /// callbacks, closing a removed member's connection.
    fn act_on(&mut self, e: Event) {
        self.tally.event(&e);
        if self.settings.log_info {
            crate::cluster_log::log_event(&self.me, &e);
        }
        if let Some(log) = &mut self.settings.event_log {
            log.write(&self.me, &e);
        }
        if let Event::JoinRefused { by, reason } = &e {
            self.progress.refused(*by, reason.to_string());
        }
        if let Event::MemberUp(m) = &e {
            if m.address == self.me && !self.was_up {
                self.was_up = true;
                for cb in self.on_up.drain(..) {
                    cb();
                }
            }
        }
        if let Event::MemberRemoved { member, .. } = &e {
            // Keep-alives would hold the connection to a removed member open for as long as
            // both run. Not when a new incarnation already took the address: that
            // connection is the new member's.
            let addr = member.address.socket_addr();
            if !self
                .node
                .members()
                .iter()
                .any(|m| m.address.same_address(addr))
            {
                self.transport.disconnect(addr);
            }
        }
    }

    /// Carries out a command; `Some` when the driver should end.
    fn command(&mut self, c: Command) -> Option<Termination> {
        let now = self.now();
        let reply = |r: Reply, result| {
            let _ = r.try_send(result);
        };
        match c {
            Command::Join(a, r) => {
                self.progress.attempt(now, &[a]);
                reply(r, self.node.join(now, a))
            }
            Command::JoinSeedNodes(s, r) => {
                self.progress.attempt(now, &s);
                reply(r, self.node.join_seed_nodes(now, &s))
            }
            Command::Leave(a, r) => reply(r, self.node.leave(now, a)),
            Command::Down(a, r) => reply(r, self.node.down(now, a)),
            Command::PrepareForFullClusterShutdown(r) => {
                reply(r, self.node.prepare_for_full_cluster_shutdown(now))
            }
            Command::Subscribe {
                replay,
                events,
                state,
            } => {
                // Flushed events are already reported, so the snapshot and the replay both
                // describe exactly what precedes the subscriber's first live event.
                self.flush();
                if replay {
                    for e in self.node.replay() {
                        let _ = events.try_send(e);
                    }
                }
                let _ = state.try_send(ClusterState::of(&self.node));
                self.subscribers.push(events);
            }
            Command::OnMemberUp(cb) => {
                if self.was_up {
                    cb();
                } else {
                    self.on_up.push(cb);
                }
            }
            Command::OnMemberRemoved(cb) => self.on_removed.push(cb),
            Command::Shutdown(timeout) => return self.begin_leave(now, timeout),
            Command::Abort => return Some(Termination::Aborted),
            Command::ReloadCredentials(tx) => {
                let _ = tx.try_send(self.settings.credentials.reload(&self.transport));
            }
            Command::Monitored(tx) => {
                let _ = tx.try_send(self.node.monitored(now).collect());
            }
            Command::Metrics(tx) => {
                let m =
                    crate::metrics::Metrics::take(&self.node, now, &self.tally, &self.transport);
                let _ = tx.try_send(m);
            }
            Command::Manage(request, tx) => {
                let _ = tx.try_send(crate::management::answer_request(
                    &mut *self.node,
                    now,
                    request,
                ));
            }
        }
        None
    }

    /// Starts leaving gracefully; the driver ends when the core reports it stopped, or at
    /// the deadline.
    fn begin_leave(&mut self, now: Instant, timeout: Duration) -> Option<Termination> {
        match self.node.status() {
            NodeStatus::Idle | NodeStatus::Joining => Some(Termination::NotAMember),
            NodeStatus::Stopped(r) => Some(Termination::Stopped(r)),
            NodeStatus::Member | NodeStatus::Exiting => {
                if self.leave_deadline.is_none() {
                    // Refused when already Leaving or Exiting: the leave is under way then.
                    let _ = self.node.leave(now, self.me.socket_addr());
                    self.leave_deadline = Some(now + timeout);
                }
                None
            }
        }
    }

    async fn finish(mut self, end: Termination) {
        self.flush();
        *self.shared.termination.lock().unwrap() = Some(end);
        self.shared.publish(ClusterState::of(&self.node));
        if self.settings.log_info {
            tracing::info!(node = %self.me, "fjell: node stopped ({end:?})");
        }
        self.transport.close().await;
        self.shared.transport.lock().unwrap().take();
        for cb in self.on_removed.drain(..) {
            cb();
        }
        // Dropping `self` closes the subscribers' channels and tells waiting handles.
    }
}
