//! The metrics' async side: the collector task, its gossip, and the handle.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use fjell_runtime::core::{Member, UniqueAddress};
use fjell_runtime::quic::sleep;
use fjell_runtime::Runtime;
use futures_lite::future;
use serde::{Deserialize, Serialize};

use super::model::{splitmix, Ewma, MetricsGossip, NodeMetrics};
use super::system::{Collector, SystemCollector};
use crate::hub::{self, ChannelTaken, Hub, Incoming};

/// The hub channel the metrics travel on.
const CHANNEL: &str = "metrics";

/// The metrics' settings (Pekko's `pekko.cluster.metrics.collector`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// How often this node's metrics are read (`sample-interval`; Pekko: 3 s).
    pub sample_interval: Duration,
    /// How often this node sends its table to one other member (`gossip-interval`; Pekko:
    /// 3 s).
    pub gossip_interval: Duration,
    /// How long until an old sample weighs half as much in a moving average
    /// (`moving-average-half-life`; Pekko: 12 s).
    pub moving_average_half_life: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            sample_interval: Duration::from_secs(3),
            gossip_interval: Duration::from_secs(3),
            moving_average_half_life: Duration::from_secs(12),
        }
    }
}

impl MetricsSettings {
    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), StartError> {
        let bad = |key: &'static str| StartError::Settings {
            key,
            reason: "must be positive",
        };
        if self.sample_interval.is_zero() {
            return Err(bad("sample-interval"));
        }
        if self.gossip_interval.is_zero() {
            return Err(bad("gossip-interval"));
        }
        if self.moving_average_half_life.is_zero() {
            return Err(bad("moving-average-half-life"));
        }
        Ok(())
    }

    /// The weight of a new sample in the moving averages ([`Ewma::alpha`]).
    pub fn alpha(&self) -> f64 {
        Ewma::alpha(self.sample_interval, self.moving_average_half_life)
    }
}

/// The metrics could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error("metrics setting `{key}`: {reason}")]
    Settings {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The metrics run on this node already.
    #[error(transparent)]
    AlreadyRunning(#[from] ChannelTaken),
}

/// What travels between nodes: a node's whole table (Pekko's `MetricsGossipEnvelope`).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: UniqueAddress,
    /// True for the answer to a gossip (which is not answered again).
    reply: bool,
    nodes: Vec<NodeMetrics>,
}

/// What the handles share with the task.
#[derive(Debug)]
struct Shared {
    table: Mutex<Vec<NodeMetrics>>,
    version: AtomicU64,
    subscribers: Mutex<Vec<Sender<Vec<NodeMetrics>>>>,
    /// Set once the task has ended.
    ended: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn publish(&self, table: Vec<NodeMetrics>) {
        *self.table.lock().unwrap_or_else(|e| e.into_inner()) = table.clone();
        self.version.fetch_add(1, Ordering::AcqRel);
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // Capacity 1: a subscriber that has not taken the previous table gets this one in
        // its place; one that is gone is forgotten.
        subs.retain(|s| s.force_send(table.clone()).is_ok());
    }
}

/// Cluster metrics on this node (Pekko's `ClusterMetricsExtension`): a task that reads this
/// node's metrics every [`MetricsSettings::sample_interval`], gossips the table of every
/// eligible member's latest metrics to a random other member every
/// [`MetricsSettings::gossip_interval`], and publishes the table on every change. Start it on
/// every node whose metrics should count (a node without it is simply absent from the
/// tables; adaptive routers give it the mean weight).
///
/// Cheap to clone. Dropping the handles does not stop the task; it stops with the node.
#[derive(Clone)]
pub struct ClusterMetrics {
    shared: Arc<Shared>,
    settings: MetricsSettings,
    self_address: UniqueAddress,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics")
            .field("node", &self.self_address)
            .field("settings", &self.settings)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl ClusterMetrics {
    /// Starts the metrics on this node, reading the operating system's metrics with a
    /// [`SystemCollector`].
    pub fn start(hub: &Hub, settings: MetricsSettings) -> Result<ClusterMetrics, StartError> {
        ClusterMetrics::start_with(hub, settings, SystemCollector::new())
    }

    /// Starts the metrics on this node with a collector of the application's (Pekko's
    /// `collector.provider`).
    pub fn start_with(
        hub: &Hub,
        settings: MetricsSettings,
        collector: impl Collector,
    ) -> Result<ClusterMetrics, StartError> {
        settings.validate()?;
        let inbox = hub.listen(CHANNEL)?;
        let self_address = hub.cluster().self_address();
        let shared = Arc::new(Shared {
            table: Mutex::new(Vec::new()),
            version: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            ended: std::sync::atomic::AtomicBool::new(false),
        });
        let task = Task {
            hub: hub.clone(),
            runtime: hub.runtime(),
            gossip: MetricsGossip::new(self_address, settings.alpha()),
            collector: Box::new(collector),
            settings: settings.clone(),
            shared: shared.clone(),
            rng: RandomState::new().hash_one(self_address),
        };
        hub.runtime().spawn(Box::pin(task.run(inbox)));
        Ok(ClusterMetrics {
            shared,
            settings,
            self_address,
        })
    }

    /// Every eligible member's latest metrics, in address order (this node's among them once
    /// it is Up).
    pub fn current(&self) -> Vec<NodeMetrics> {
        self.shared
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The table now and after every change (a sample, gossip bringing newer metrics, a
    /// member purged), as [`ClusterMetrics::current`] gives it. The channel holds one table: a
    /// subscriber that falls behind gets the latest, never a backlog, and never slows the
    /// task. The channel closes when the node stops. (The receiver is also a
    /// `futures_lite::Stream`.)
    pub fn subscribe(&self) -> Receiver<Vec<NodeMetrics>> {
        let (tx, rx) = async_channel::bounded(1);
        let mut subs = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Under the lock: a publish cannot slip in between the snapshot and the registration.
        let _ = tx.try_send(self.current());
        if !self.shared.ended.load(Ordering::Acquire) {
            subs.push(tx);
        }
        rx
    }

    /// A number that changes whenever the table does (for callers that poll
    /// [`ClusterMetrics::current`] only on change).
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The settings.
    pub fn settings(&self) -> &MetricsSettings {
        &self.settings
    }

    /// This node.
    pub fn self_address(&self) -> UniqueAddress {
        self.self_address
    }

    /// True while the task runs (until the node stops).
    pub fn is_running(&self) -> bool {
        !self.shared.ended.load(Ordering::Acquire)
    }
}

struct Task {
    hub: Hub,
    runtime: Arc<dyn Runtime>,
    gossip: MetricsGossip,
    collector: Box<dyn Collector>,
    settings: MetricsSettings,
    shared: Arc<Shared>,
    rng: u64,
}

/// What woke the task.
enum Wake {
    /// The members or the unreachable ones changed (`None`: the node stopped).
    Membership(Option<(Vec<Member>, Vec<Member>)>),
    Message(Option<Incoming>),
    Timer,
}

/// Milliseconds of the wall clock: the metrics' timestamps. Only one node's own timestamps
/// are compared with each other, and [`MetricsGossip::record`] keeps them increasing.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Task {
    async fn run(mut self, inbox: Receiver<Incoming>) {
        let cluster = self.hub.cluster().clone();
        let state = cluster.state();
        let (mut members, mut unreachable) = (state.members, state.unreachable);
        self.gossip.update_members(&members, &unreachable);
        self.sample();
        let start = self.runtime.now();
        let mut next_sample = start + self.settings.sample_interval;
        let mut next_gossip = start + self.settings.gossip_interval;
        loop {
            let wake = {
                let (seen, seen_u) = (&members, &unreachable);
                let runtime = self.runtime.clone();
                let at = next_sample.min(next_gossip);
                future::or(
                    future::or(
                        // The published state, not events: every change of it counts here,
                        // also those that come with no event.
                        async {
                            Wake::Membership(
                                cluster
                                    .wait_for(|s| s.members != *seen || s.unreachable != *seen_u)
                                    .await
                                    .map(|s| (s.members, s.unreachable)),
                            )
                        },
                        async { Wake::Message(inbox.recv().await.ok()) },
                    ),
                    async {
                        sleep(&*runtime, at.saturating_duration_since(runtime.now())).await;
                        Wake::Timer
                    },
                )
                .await
            };
            match wake {
                Wake::Membership(Some((m, u))) => {
                    (members, unreachable) = (m, u);
                    if self.gossip.update_members(&members, &unreachable) {
                        self.publish();
                    }
                }
                Wake::Membership(None) | Wake::Message(None) => break,
                Wake::Message(Some(m)) => self.on_gossip(m),
                Wake::Timer => {
                    let now = self.runtime.now();
                    if next_sample <= now {
                        self.sample();
                        next_sample = next_after(next_sample, self.settings.sample_interval, now);
                    }
                    if next_gossip <= now {
                        self.gossip_to_random();
                        next_gossip = next_after(next_gossip, self.settings.gossip_interval, now);
                    }
                }
            }
        }
        // The node stopped: close the subscriptions.
        self.shared.ended.store(true, Ordering::Release);
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn sample(&mut self) {
        let readings = self.collector.collect();
        self.gossip.record(now_ms(), &readings);
        self.publish();
    }

    fn publish(&self) {
        self.shared.publish(self.gossip.nodes());
    }

    fn gossip_to_random(&mut self) {
        let draw = splitmix(&mut self.rng);
        if let Some(to) = self.gossip.gossip_target(draw) {
            self.send(to, false);
        }
    }

    fn send(&self, to: UniqueAddress, reply: bool) {
        let envelope = Envelope {
            from: self.gossip.self_address(),
            reply,
            nodes: self.gossip.nodes(),
        };
        let bytes = match postcard::to_allocvec(&envelope) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "fjell-tools: metrics gossip does not serialize");
                return;
            }
        };
        let hub = self.hub.clone();
        self.runtime.spawn(Box::pin(async move {
            // Best effort: the next round sends newer metrics anyway.
            if let Err(e) = hub.send_on(to.socket_addr(), CHANNEL, &bytes).await {
                tracing::debug!(%to, error = %e, "fjell-tools: metrics gossip not sent");
            }
        }));
    }

    fn on_gossip(&mut self, m: Incoming) {
        let envelope: Envelope = match hub::decode(&m.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(from = %m.from, error = %e, "fjell-tools: bad metrics gossip");
                return;
            }
        };
        // The transport certifies the sender's socket address; the envelope adds the
        // incarnation. Another address is not the sender's to claim.
        if !envelope.from.same_address(m.from) {
            tracing::debug!(from = %m.from, claimed = %envelope.from, "fjell-tools: metrics gossip from a mismatched address");
            return;
        }
        if self.gossip.merge(envelope.nodes) > 0 {
            self.publish();
        }
        if !envelope.reply {
            self.send(envelope.from, true);
        }
    }
}

/// The next time of a periodic task due at `due`: one `interval` later, or, if the task fell
/// that far behind, one interval from `now` (no burst of catch-up runs).
fn next_after(
    due: std::time::Instant,
    interval: Duration,
    now: std::time::Instant,
) -> std::time::Instant {
    let next = due + interval;
    if next <= now {
        now + interval
    } else {
        next
    }
}
