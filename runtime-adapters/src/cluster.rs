//! The builder and the [`Cluster`] handle.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use fjell_core::{
    AppVersion, CommandError, Config, Downing, Event, Instant, Member, Role, RoleSet, Strategy,
    UniqueAddress,
};
use fjell_quic::{
    AddressMapping, AppMessage, Credentials, Fingerprint, PeerIdentity, RequestError, SendError,
    Transport, TransportConfig, TransportError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::credentials::{CredentialSource, Keeper, LoadCredentials};
use crate::driver::{new_node, Command, Driver, DriverSettings, Run, Shared, Termination};
use crate::error::{SettingsError, StartError};
use crate::event_log::EventLog;
use crate::lease::ClusterLease;
use crate::runtime::Runtime;
use crate::state::ClusterState;

/// The default time a graceful shutdown may take before the transport is closed anyway: a
/// leave takes a few gossip rounds and leader ticks (seconds), and at most five leader ticks
/// after the node is Exiting when the others cannot confirm; plus headroom.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// Default capacities of a node started by [`ClusterBuilder::build`] and
/// [`ClusterBuilder::start`]: fjell-core's [`ServerNode`](fjell_core::ServerNode) (4,096
/// members, 2,048 reachability records, 1,000 heartbeat intervals per monitored member). A
/// server process can afford it, and a cluster of servers then never runs into a member limit
/// it did not choose: fjell-runtime turns on fjell-core's `alloc` feature, so memory follows
/// the cluster, not the capacity (about 16 kB per node in a 10-member cluster, 400 kB in a
/// 1,000-member one, under 2 MB at 4,096; BENCHMARKS.md, "Memory by cluster size").
///
/// To pick another, use the `_sized` variants, for example `build_sized::<256, 128, 1000>`
/// to hold a cluster to 256 members by type; keep `R` at least `M / 2`
/// (`fjell_core::Capacity::holds`). To bound a cluster by policy, set `max-members`: the
/// cluster stays within its smallest member's bound.
pub type DefaultNode = fjell_core::ServerNode;

/// A change to the transport's settings (see [`ClusterBuilder::transport`]).
type TransportTweak = Box<dyn FnOnce(&mut TransportConfig) + Send>;

/// Builds a node: where it listens, who it is, whom it joins, and every core setting.
///
/// Defaults: fjell-core's [`Config::default`] (Pekko's defaults), bind on the advertised
/// address, no seed nodes (join by hand), membership changes logged at info, 20 s graceful
/// shutdown timeout.
pub struct ClusterBuilder {
    config: Config,
    bind: Option<SocketAddr>,
    socket: Option<UdpSocket>,
    advertised: Option<SocketAddr>,
    seed_nodes: Vec<SocketAddr>,
    credentials: Option<Credentials>,
    pem_files: Option<[PathBuf; 3]>,
    credential_source: Option<CredentialSource>,
    watch: Option<Duration>,
    deny: Vec<Fingerprint>,
    address_map: Vec<AddressMapping>,
    log_info: bool,
    log_verbose: bool,
    event_log: Option<PathBuf>,
    shutdown_timeout: Duration,
    lease: Option<Arc<dyn ClusterLease>>,
    transport: Option<TransportTweak>,
    invalid: Option<SettingsError>,
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("config", &self.config)
            .field("bind", &self.bind)
            .field("advertised", &self.advertised)
            .field("seed_nodes", &self.seed_nodes)
            .finish_non_exhaustive()
    }
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        ClusterBuilder {
            config: Config::default(),
            bind: None,
            socket: None,
            advertised: None,
            seed_nodes: Vec::new(),
            credentials: None,
            pem_files: None,
            credential_source: None,
            watch: None,
            deny: Vec::new(),
            address_map: Vec::new(),
            log_info: true,
            log_verbose: false,
            event_log: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            lease: None,
            transport: None,
            invalid: None,
        }
    }

    /// Replaces every core setting. Validated by fjell-core when the node is built.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes core settings in place: `.configure(|c| c.gossip_interval = ms(500))`.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// The core settings as they stand.
    pub fn core_config(&self) -> &Config {
        &self.config
    }

    /// The local address to bind (default: the advertised address). Use `0.0.0.0:port`
    /// behind NAT or in containers, with the reachable address as the advertised one.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// A UDP socket the caller bound (instead of [`ClusterBuilder::bind`]): for instance on
    /// port 0, to learn the port before issuing the node's certificate.
    pub fn socket(mut self, socket: UdpSocket) -> Self {
        self.socket = Some(socket);
        self
    }

    /// The address other nodes reach this node at. It must be the address the node's
    /// certificate certifies; when not given, the certificate's address is used.
    pub fn advertised_address(mut self, addr: SocketAddr) -> Self {
        self.advertised = Some(addr);
        self
    }

    /// Seed nodes, joined as soon as the node starts (Pekko's `seed-nodes`). The same list,
    /// in the same order, on every node: only its first entry may found a new cluster.
    pub fn seed_nodes(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seed_nodes = seeds.into_iter().collect();
        self
    }

    /// Roles of this node (at most 3, of at most 16 bytes each).
    pub fn roles<S: AsRef<str>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        match parse_roles(roles) {
            Ok(r) => self.config.roles = r,
            Err(e) => self.invalid = Some(e),
        }
        self
    }

    /// The application version, `major.minor.patch`.
    pub fn app_version(mut self, version: &str) -> Self {
        match AppVersion::parse(version) {
            Some(v) => self.config.app_version = v,
            None => {
                self.invalid = Some(SettingsError::new(
                    "app-version",
                    "must be numeric major.minor.patch",
                ))
            }
        }
        self
    }

    /// The cluster name: nodes only join clusters with the same name.
    pub fn cluster_name(mut self, name: &str) -> Self {
        self.config.cluster_name.clear();
        if self.config.cluster_name.push_str(name).is_err() {
            self.invalid = Some(SettingsError::new(
                "cluster-name",
                "must be at most 32 bytes",
            ));
        }
        self
    }

    /// Who downs unreachable members (default [`Downing::Manual`]).
    pub fn downing(mut self, downing: Downing) -> Self {
        self.config.downing.downing = downing;
        self
    }

    /// TLS credentials: the cluster CA, this node's certificate and key.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// TLS credentials from PEM files (loaded when the node is built).
    pub fn pem_files(
        mut self,
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.pem_files = Some([ca.into(), cert.into(), key.into()]);
        self
    }

    /// How often the PEM files given to [`ClusterBuilder::pem_files`] are checked for changes
    /// and reloaded without a restart (default `None`: only on
    /// [`Cluster::reload_credentials`]). See [`crate::credentials`].
    pub fn watch_credentials(mut self, every: Option<Duration>) -> Self {
        self.watch = every;
        self
    }

    /// Where [`Cluster::reload_credentials`] and file watching reload the credentials and
    /// the deny list from (overrides the default built from [`ClusterBuilder::pem_files`],
    /// which reloads the PEM files and keeps the deny list).
    pub fn credential_source(mut self, source: CredentialSource) -> Self {
        self.credential_source = Some(source);
        self
    }

    /// Certificates to refuse even though the cluster CA signed them (by fingerprint).
    pub fn deny(mut self, fingerprints: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.deny = fingerprints.into_iter().collect();
        self
    }

    /// Declared differences between nodes' certified addresses and the source addresses
    /// of their connections (NAT, containers); see [`fjell_quic::admission`].
    pub fn address_map(mut self, mappings: impl IntoIterator<Item = AddressMapping>) -> Self {
        self.address_map = mappings.into_iter().collect();
        self
    }

    /// Log membership changes at info level (default on; Pekko's `log-info`). Gossip is
    /// logged at debug level either way.
    pub fn log_info(mut self, on: bool) -> Self {
        self.log_info = on;
        self
    }

    /// Also log, at info level, the cluster state after each change, convergence reached and
    /// lost, and heartbeats started and stopped per monitored member (default off, when they
    /// are at debug level; Pekko's `log-info-verbose`; see [`crate::cluster_log`]).
    pub fn log_info_verbose(mut self, on: bool) -> Self {
        self.log_verbose = on;
        self
    }

    /// Append every membership event to `path`, one JSON line each
    /// ([`crate::event_log`]; the `event-log` setting). The file is opened when the node is
    /// built; a failure to open it fails the build.
    pub fn event_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.event_log = Some(path.into());
        self
    }

    /// How long a graceful shutdown (and the leave when every handle is dropped) may take
    /// before the transport is closed anyway (default [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The lease the lease-majority strategy asks.
    pub fn lease(mut self, lease: impl ClusterLease) -> Self {
        self.lease = Some(Arc::new(lease));
        self
    }

    /// Adjusts the transport's settings (queues, frame size, QUIC timers) after they are
    /// derived from the failure detector's; fjell-quic validates the result.
    pub fn transport(mut self, f: impl FnOnce(&mut TransportConfig) + Send + 'static) -> Self {
        self.transport = Some(Box::new(f));
        self
    }

    /// Builds a node with the [`DefaultNode`] capacities; see [`ClusterBuilder::build_sized`].
    pub fn build(self, runtime: impl Runtime) -> Result<(Cluster, Driver), StartError> {
        self.build_sized::<4096, 2048, 1000>(runtime)
    }

    /// Builds a node for at most `M` members, `R` reachability records and `H` heartbeat
    /// intervals per monitored member (see [`fjell_core::Node`]), binds its transport on
    /// `runtime` (its socket, timers and tasks), and returns its handle and its driver. The
    /// driver is a plain `Future`: nothing happens until some executor polls it (the seed
    /// nodes are joined when it first runs); it takes its timers from `runtime` and may be
    /// polled from any thread.
    pub fn build_sized<const M: usize, const R: usize, const H: usize>(
        self,
        runtime: impl Runtime,
    ) -> Result<(Cluster, Driver), StartError> {
        self.build_on::<M, R, H>(Arc::new(runtime))
    }

    fn build_on<const M: usize, const R: usize, const H: usize>(
        self,
        runtime: Arc<dyn Runtime>,
    ) -> Result<(Cluster, Driver), StartError> {
        if let Some(e) = self.invalid {
            return Err(e.into());
        }
        self.config.validate().map_err(StartError::Config)?;
        if matches!(
            self.config.downing.downing,
            Downing::SplitBrainResolver(Strategy::LeaseMajority { .. })
        ) && self.lease.is_none()
        {
            return Err(StartError::NoLease);
        }
        let credentials = match (self.credentials, &self.pem_files) {
            (Some(c), _) => c,
            (None, Some([ca, cert, key])) => Credentials::from_pem_files(ca, cert, key)?,
            (None, None) => return Err(StartError::NoCredentials),
        };
        let source = match (self.credential_source, self.pem_files) {
            (Some(s), _) => Some(s),
            (None, Some(files)) => {
                let deny = self.deny.clone();
                let [ca, cert, key] = files.clone();
                let load: LoadCredentials = Arc::new(move || {
                    let c =
                        Credentials::from_pem_files(&ca, &cert, &key).map_err(|e| e.to_string())?;
                    Ok((c, deny.clone()))
                });
                Some(CredentialSource {
                    paths: files.to_vec(),
                    load,
                    watch: self.watch,
                })
            }
            (None, None) => None,
        };
        let addr = match credentials.identity() {
            PeerIdentity::Node(a) => *a,
            other => return Err(TransportError::NotANode(other.to_string()).into()),
        };
        if let Some(adv) = self.advertised.filter(|a| *a != addr) {
            return Err(StartError::AddressMismatch {
                advertised: adv,
                certified: addr.to_string(),
            });
        }
        let event_log = match &self.event_log {
            Some(path) => Some(EventLog::open(path).map_err(|e| StartError::EventLog {
                path: path.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let keeper = Keeper::new(source, &credentials, Instant::ZERO);
        let mut tc = TransportConfig::for_detector(credentials, &self.config.failure_detector);
        tc.bind = self.bind;
        tc.deny = self.deny;
        tc.address_map = self.address_map;
        if let Some(f) = self.transport {
            f(&mut tc);
        }
        let node = new_node::<M, R, H>(self.config, addr, random_u64(), random_u64())
            .map_err(StartError::Config)?;
        let transport = match self.socket {
            Some(s) => Transport::with_socket(tc, s, runtime.clone())?,
            None => Transport::bind(tc, runtime.clone())?,
        };
        let me = node.address();
        let may_lead = node.config().leader_eligible;
        let shared = Arc::new(Shared {
            state: Mutex::new(ClusterState::initial(me, may_lead)),
            termination: Mutex::new(None),
            changed: event_listener::Event::new(),
            was_up: AtomicBool::new(false),
            transport: Mutex::new(Some(transport.clone())),
        });
        let (commands, commands_rx) = async_channel::unbounded();
        let (alive, alive_rx) = async_channel::bounded(1);
        let settings = DriverSettings {
            seed_nodes: self.seed_nodes,
            log_info: self.log_info,
            log_verbose: self.log_verbose,
            event_log,
            shutdown_timeout: self.shutdown_timeout,
            lease: self.lease,
            credentials: keeper,
        };
        let run = Run::new(
            node,
            transport.clone(),
            runtime.clone(),
            commands_rx,
            settings,
            shared.clone(),
            alive,
        );
        let cluster = Cluster {
            inner: Arc::new(Handle {
                commands,
                shared,
                ended: alive_rx,
                runtime,
                me,
                shutdown_timeout: self.shutdown_timeout,
            }),
        };
        Ok((cluster, run.into_driver()))
    }

    /// Builds a node with the [`DefaultNode`] capacities and runs it on a thread of its own
    /// ([`OwnThread`](crate::runtime::OwnThread)): the driver and the transport are isolated
    /// from the application's executor, whatever it is (smol, tokio, none), so application
    /// load does not delay heartbeats. The thread ends when the node has stopped.
    #[cfg(feature = "smol")]
    pub fn start(self) -> Result<Cluster, StartError> {
        self.start_sized::<4096, 2048, 1000>()
    }

    /// Builds a node of the given capacities ([`ClusterBuilder::build_sized`]) and runs it on
    /// a thread of its own, like [`ClusterBuilder::start`].
    #[cfg(feature = "smol")]
    pub fn start_sized<const M: usize, const R: usize, const H: usize>(
        self,
    ) -> Result<Cluster, StartError> {
        let (runtime, thread) = crate::runtime::OwnThread::new();
        let (cluster, driver) = self.build_on::<M, R, H>(Arc::new(runtime))?;
        let name = format!("fjell-node {}", cluster.self_address().socket_addr());
        thread
            .run(name, driver)
            .map_err(|e| StartError::Transport(TransportError::Io(e)))?;
        Ok(cluster)
    }

    /// Builds a node with the [`DefaultNode`] capacities and runs it on `runtime`, sharing
    /// the application's executor (prefer [`ClusterBuilder::start`] where the application
    /// may keep that executor busy: a delayed heartbeat looks like a failing node).
    pub fn start_on(self, runtime: impl Runtime + Clone) -> Result<Cluster, StartError> {
        self.start_sized_on::<4096, 2048, 1000>(runtime)
    }

    /// Builds a node of the given capacities ([`ClusterBuilder::build_sized`]) and runs its
    /// driver on `runtime`.
    pub fn start_sized_on<const M: usize, const R: usize, const H: usize>(
        self,
        runtime: impl Runtime + Clone,
    ) -> Result<Cluster, StartError> {
        let (cluster, driver) = self.build_sized::<M, R, H>(runtime.clone())?;
        runtime.spawn(Box::pin(driver));
        Ok(cluster)
    }
}

pub(crate) fn parse_roles<S: AsRef<str>>(
    roles: impl IntoIterator<Item = S>,
) -> Result<RoleSet, SettingsError> {
    let mut set = RoleSet::new();
    for r in roles {
        let role = Role::new(r.as_ref())
            .map_err(|_| SettingsError::new("roles", "a role is at most 16 bytes"))?;
        set.insert(role)
            .map_err(|_| SettingsError::new("roles", "at most 3 roles"))?;
    }
    Ok(set)
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("no system randomness");
    u64::from_le_bytes(b)
}

struct Handle {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    ended: Receiver<()>,
    runtime: Arc<dyn Runtime>,
    me: UniqueAddress,
    shutdown_timeout: Duration,
}

/// A handle to a running node (Pekko's `Cluster(system)`). Cheap to clone.
///
/// When the last handle is dropped the node leaves gracefully in the background, as
/// [`Cluster::shutdown`] does (the driver keeps running until it has left). Await
/// [`Cluster::shutdown`] to know it has.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("self_address", &self.inner.me)
            .finish_non_exhaustive()
    }
}

/// Events for one subscriber, after a snapshot of the state they start from.
#[derive(Debug)]
pub struct Subscription {
    /// The state when the subscription began; the events that follow are changes to it.
    /// (For [`Cluster::subscribe_as_events`] the first events describe this state.)
    pub initial: ClusterState,
    events: Receiver<Event>,
}

impl Subscription {
    /// The next event; `None` once the node has stopped (after [`Event::Stopped`], or when
    /// the driver ended another way).
    pub async fn next(&self) -> Option<Event> {
        self.events.recv().await.ok()
    }

    /// The next event if one is waiting.
    pub fn try_next(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The channel itself (it is also a `futures_lite::Stream`).
    pub fn into_receiver(self) -> Receiver<Event> {
        self.events
    }
}

impl Cluster {
    /// This node's identity: its advertised address and this incarnation's uid.
    pub fn self_address(&self) -> UniqueAddress {
        self.inner.me
    }

    /// The cluster as this node saw it after its latest input.
    pub fn state(&self) -> ClusterState {
        self.inner.shared.state.lock().unwrap().clone()
    }

    /// This node's member record, once it is a member.
    pub fn self_member(&self) -> Option<Member> {
        self.state().self_member().cloned()
    }

    /// The leader as this node sees it.
    pub fn leader(&self) -> Option<UniqueAddress> {
        self.inner.shared.state.lock().unwrap().leader
    }

    /// Waits until `cond` holds for the state (checked now and after every change of it) and
    /// returns that state. Changes without an event (convergence, seen marks) count too.
    /// Returns `None` if the node's driver ends first and the final state does not satisfy
    /// `cond`. Combine with [`Cluster::within`] for a deadline.
    pub async fn wait_for(&self, cond: impl Fn(&ClusterState) -> bool) -> Option<ClusterState> {
        loop {
            // Listen before checking, so a change between the check and the wait is not lost.
            let listener = self.inner.shared.changed.listen();
            let state = self.state();
            if cond(&state) {
                return Some(state);
            }
            if self.termination().is_some() {
                return None;
            }
            listener.await;
        }
    }

    /// Subscribes to events, starting from a snapshot ([`Subscription::initial`]): the
    /// events that follow are exactly the changes after it. An event is sent once
    /// [`Cluster::state`] shows it and the transport knows the members it names: a
    /// subscriber that sees `MemberUp(m)` can send to `m` at once.
    pub async fn subscribe(&self) -> Subscription {
        self.subscribe_with(false).await
    }

    /// Subscribes to events, starting with the events that build the current state from an
    /// empty one (members by status, unreachable members, leader), then the changes.
    pub async fn subscribe_as_events(&self) -> Subscription {
        self.subscribe_with(true).await
    }

    async fn subscribe_with(&self, replay: bool) -> Subscription {
        let (events, rx) = async_channel::unbounded();
        let (state, state_rx) = async_channel::bounded(1);
        let _ = self.inner.commands.try_send(Command::Subscribe {
            replay,
            events,
            state,
        });
        let initial = match state_rx.recv().await {
            Ok(s) => s,
            // The driver has ended: the final state, and a closed channel.
            Err(_) => self.state(),
        };
        Subscription {
            initial,
            events: rx,
        }
    }

    async fn ask(
        &self,
        make: impl FnOnce(crate::driver::Reply) -> Command,
    ) -> Result<(), CommandError> {
        let (tx, rx) = async_channel::bounded(1);
        if self.inner.commands.try_send(make(tx)).is_err() {
            return Err(CommandError::Stopped);
        }
        rx.recv().await.unwrap_or(Err(CommandError::Stopped))
    }

    /// What this node's failure detector says of each member it monitors, now: phi, the age
    /// of the last heartbeat from it, the round-trip time. Empty once the node has stopped.
    pub async fn monitored(&self) -> Vec<fjell_core::MonitorStats> {
        let (tx, rx) = async_channel::bounded(1);
        if self
            .inner
            .commands
            .try_send(Command::Monitored(tx))
            .is_err()
        {
            return Vec::new();
        }
        rx.recv().await.unwrap_or_default()
    }

    /// A snapshot of this node's measurements ([`crate::metrics`]): members by status,
    /// convergence, phi per monitored member, traffic, refusals, QUIC connection stats.
    /// `None` once the node has stopped.
    pub async fn metrics(&self) -> Option<crate::Metrics> {
        let (tx, rx) = async_channel::bounded(1);
        self.inner.commands.try_send(Command::Metrics(tx)).ok()?;
        rx.recv().await.ok()
    }

    /// Answers a management request in this process, exactly as the node answers an
    /// administrator tool over QUIC ([`crate::management`]); commands (join, leave, down)
    /// are carried out. `None` once the node has stopped.
    pub async fn manage(
        &self,
        request: crate::management::Request,
    ) -> Option<crate::management::Response> {
        let (tx, rx) = async_channel::bounded(1);
        self.inner
            .commands
            .try_send(Command::Manage(request, tx))
            .ok()?;
        rx.recv().await.ok()
    }

    /// Joins the cluster through the member at `addr`; joining one's own address founds a
    /// new cluster.
    pub async fn join(&self, addr: SocketAddr) -> Result<(), CommandError> {
        self.ask(|r| Command::Join(addr, r)).await
    }

    /// Reloads the TLS credentials and the deny list from where they came from (the PEM
    /// files, or the builder's [`ClusterBuilder::credential_source`]) without a restart: new
    /// connections use them, connections in use stay, peers now denied are disconnected.
    /// Returns the new certificate's fingerprint; on an error the credentials in use stay.
    pub async fn reload_credentials(&self) -> Result<Fingerprint, String> {
        let (tx, rx) = async_channel::bounded(1);
        if self
            .inner
            .commands
            .try_send(Command::ReloadCredentials(tx))
            .is_err()
        {
            return Err("the node has stopped".into());
        }
        rx.recv()
            .await
            .unwrap_or_else(|_| Err("the node has stopped".into()))
    }

    /// Joins through the seed-node process (the same list, in the same order, on every
    /// node).
    pub async fn join_seed_nodes(&self, seeds: &[SocketAddr]) -> Result<(), CommandError> {
        let seeds = seeds.to_vec();
        self.ask(|r| Command::JoinSeedNodes(seeds, r)).await
    }

    /// Asks the member at `addr` (this node or another) to leave gracefully. To stop this
    /// node, prefer [`Cluster::shutdown`], which also waits and closes the transport.
    pub async fn leave(&self, addr: SocketAddr) -> Result<(), CommandError> {
        self.ask(|r| Command::Leave(addr, r)).await
    }

    /// Marks the member at `addr` Down.
    pub async fn down(&self, addr: SocketAddr) -> Result<(), CommandError> {
        self.ask(|r| Command::Down(addr, r)).await
    }

    /// Starts a full-cluster shutdown (every Up member becomes PreparingForShutdown).
    pub async fn prepare_for_full_cluster_shutdown(&self) -> Result<(), CommandError> {
        self.ask(Command::PrepareForFullClusterShutdown).await
    }

    /// Runs `f` once this node is Up: at once (on the caller's thread) if it already has
    /// been, otherwise on the driver's task when the event arrives (with
    /// [`ClusterBuilder::start`], the node's own thread, outside any tokio runtime). Keep it
    /// short; do not capture a [`Cluster`] in it, or the node will not leave when the other
    /// handles drop.
    pub fn register_on_member_up(&self, f: impl FnOnce() + Send + 'static) {
        if self.inner.shared.was_up.load(Ordering::Acquire) {
            return f();
        }
        if let Err(e) = self
            .inner
            .commands
            .try_send(Command::OnMemberUp(Box::new(f)))
        {
            // The driver ended: the node will never be Up again.
            drop(e);
        }
    }

    /// Runs `f` once this node has stopped taking part (left, downed, removed, shut down or
    /// aborted): at once if it already has.
    pub fn register_on_member_removed(&self, f: impl FnOnce() + Send + 'static) {
        if self.termination().is_some() {
            return f();
        }
        if let Err(e) = self
            .inner
            .commands
            .try_send(Command::OnMemberRemoved(Box::new(f)))
        {
            if let Command::OnMemberRemoved(f) = e.into_inner() {
                f();
            }
        }
    }

    /// Leaves gracefully and stops: the node becomes Leaving, the leader moves it to
    /// Exiting and removes it, the node confirms and stops; then the transport is closed.
    /// The others see Left → Exited → Removed, never Unreachable. Gives up after the
    /// builder's shutdown timeout. Returns how the node ended (at once if it already has).
    pub async fn shutdown(&self) -> Termination {
        self.shutdown_within(self.inner.shutdown_timeout).await
    }

    /// [`Cluster::shutdown`] with its own timeout.
    pub async fn shutdown_within(&self, timeout: Duration) -> Termination {
        let _ = self.inner.commands.try_send(Command::Shutdown(timeout));
        self.terminated().await
    }

    /// Stops at once without leaving, as a crash would: the transport closes and the others
    /// find this node unreachable. For tests and failure demonstrations.
    pub async fn abort(&self) -> Termination {
        let _ = self.inner.commands.try_send(Command::Abort);
        self.terminated().await
    }

    /// Waits until the node's driver has ended (the node stopped for any reason and the
    /// transport is closed), and says how.
    pub async fn terminated(&self) -> Termination {
        let _ = self.inner.ended.recv().await;
        // The driver records how it ended before it ends; only a driver that panicked (in a
        // user's lease or callback) or was dropped unpolled did not.
        self.termination().unwrap_or(Termination::Aborted)
    }

    /// How the node ended, once its driver has.
    pub fn termination(&self) -> Option<Termination> {
        *self.inner.shared.termination.lock().unwrap()
    }

    /// Waits at most `timeout` for `f` (a convenience for callers' own deadlines, on the
    /// runtime's timer).
    pub async fn within<T>(
        &self,
        timeout: Duration,
        f: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        fjell_quic::rt::timeout(&*self.inner.runtime, timeout, f).await
    }

    /// The node's transport, for what this handle does not pass through (counters,
    /// connection state, batches); `None` once the node has stopped. A clone kept after the
    /// node stopped keeps its UDP port bound.
    pub fn transport(&self) -> Option<Transport> {
        self.inner.shared.transport.lock().unwrap().clone()
    }

    fn open_transport(&self) -> Result<Transport, SendError> {
        self.transport().ok_or(SendError::Closed)
    }

    /// Sends an application message to a member (see [`Transport::send`]).
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        to: SocketAddr,
        message: &T,
    ) -> Result<(), SendError> {
        self.open_transport()?.send(to, message).await
    }

    /// Sends a request to a member and waits at most `timeout` for its response (see
    /// [`Transport::request`]).
    pub async fn request<Q: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: SocketAddr,
        request: &Q,
        timeout: Duration,
    ) -> Result<R, RequestError> {
        self.open_transport()?.request(to, request, timeout).await
    }

    /// The next application message from any member; `None` once the node has stopped.
    pub async fn recv(&self) -> Option<AppMessage> {
        self.transport()?.recv().await
    }

    /// Answers a request received with [`Cluster::recv`].
    pub async fn respond<T: Serialize + ?Sized>(
        &self,
        request: &AppMessage,
        response: &T,
    ) -> Result<(), SendError> {
        self.open_transport()?.respond(request, response).await
    }
}
