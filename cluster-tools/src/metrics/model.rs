//! The sans-IO metrics model: readings, the moving average, one node's metrics, and the
//! gossiped table of every eligible member's latest metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use fjell_runtime::core::{Member, MemberStatus, UniqueAddress};
use serde::{Deserialize, Serialize};

/// The names of the metrics fjell's [`SystemCollector`](super::SystemCollector) reads, and the
/// capacity selectors ([`MetricsSelector`](super::MetricsSelector)) use. A custom
/// [`Collector`](super::Collector) may add metrics of its own under other names.
pub mod names {
    /// Share of CPU time spent busy (user, nice, system, irq, softirq) over the last sample
    /// interval, 0 to 1, all processors together. Smoothed.
    pub const CPU_COMBINED: &str = "cpu-combined";
    /// Share of CPU time stolen by the hypervisor over the last sample interval, 0 to 1.
    /// Smoothed.
    pub const CPU_STOLEN: &str = "cpu-stolen";
    /// The operating system's one-minute load average (runnable and waiting tasks). Not
    /// smoothed: the system smooths it already.
    pub const SYSTEM_LOAD_AVERAGE: &str = "system-load-average";
    /// Processors available to this process. Not smoothed.
    pub const PROCESSORS: &str = "processors";
    /// System memory in use, in bytes (total less what is available without swapping).
    /// Smoothed. (There is no JVM heap: this stands in for Pekko's `heap-memory-used`.)
    pub const MEMORY_USED: &str = "memory-used";
    /// System memory, in bytes. Not smoothed.
    pub const MEMORY_TOTAL: &str = "memory-total";
}

/// The most metrics one node's entry holds; further ones (from a peer or a collector) are
/// dropped. Bounds the memory and the gossip a node can cause.
pub const MAX_METRICS_PER_NODE: usize = 16;

/// The longest metric name accepted, in bytes.
pub const MAX_METRIC_NAME_LEN: usize = 32;

/// Whether `value` is acceptable for metric `name`: finite and not negative, and at most 1
/// for the CPU shares. The one place this rule lives: readings from the local collector and
/// metrics from peers are both checked with it.
pub fn valid_value(name: &str, value: f64) -> bool {
    let fraction = name == names::CPU_COMBINED || name == names::CPU_STOLEN;
    value.is_finite() && value >= 0.0 && (!fraction || value <= 1.0)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_METRIC_NAME_LEN
}

/// An exponentially weighted moving average: each new value `x` moves it to
/// `α·x + (1−α)·average`. Seeded by the first value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// The average now.
    pub value: f64,
    /// The weight of a new value, in (0, 1].
    pub alpha: f64,
}

impl Ewma {
    /// The weight α of a new value when values arrive every `interval` and an old value's
    /// weight should halve every `half_life`: `α = 1 − exp(−ln 2 · interval / half_life)`
    /// (Pekko's defaults, 3 s and 12 s, give α ≈ 0.159). `half_life` zero gives 1 (no
    /// smoothing).
    pub fn alpha(interval: Duration, half_life: Duration) -> f64 {
        if half_life.is_zero() {
            return 1.0;
        }
        let ratio = interval.as_secs_f64() / half_life.as_secs_f64();
        // `-expm1(-x)` is `1 - exp(-x)` without the cancellation for small `x`.
        let alpha = -(-std::f64::consts::LN_2 * ratio).exp_m1();
        alpha.clamp(f64::MIN_POSITIVE, 1.0)
    }

    /// An average seeded by `first`.
    pub fn new(first: f64, alpha: f64) -> Ewma {
        Ewma {
            value: first,
            alpha,
        }
    }

    /// The average after `x`.
    #[must_use]
    pub fn update(self, x: f64) -> Ewma {
        Ewma {
            value: self.alpha * x + (1.0 - self.alpha) * self.value,
            alpha: self.alpha,
        }
    }

    fn is_valid(&self, name: &str) -> bool {
        valid_value(name, self.value) && self.alpha > 0.0 && self.alpha <= 1.0
    }
}

/// One value a [`Collector`](super::Collector) read, before it joins the node's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The metric's name (see [`names`]).
    pub name: String,
    /// The value read.
    pub value: f64,
    /// Whether the metric keeps a moving average of its readings.
    pub smooth: bool,
}

impl Reading {
    /// A reading of a metric with a moving average.
    pub fn smoothed(name: &str, value: f64) -> Reading {
        Reading {
            name: name.to_string(),
            value,
            smooth: true,
        }
    }

    /// A reading of a metric without a moving average.
    pub fn raw(name: &str, value: f64) -> Reading {
        Reading {
            name: name.to_string(),
            value,
            smooth: false,
        }
    }
}

/// One metric of a node: the latest value and, if the metric is smoothed, its moving average.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The name (see [`names`]).
    pub name: String,
    /// The latest value read.
    pub value: f64,
    /// The moving average, for smoothed metrics.
    pub average: Option<Ewma>,
}

impl Metric {
    /// The value selectors use: the moving average if there is one, else the latest value.
    pub fn smoothed(&self) -> f64 {
        self.average.map_or(self.value, |a| a.value)
    }

    fn is_valid(&self) -> bool {
        valid_name(&self.name)
            && valid_value(&self.name, self.value)
            && self.average.is_none_or(|a| a.is_valid(&self.name))
    }
}

/// A node's metrics at one moment (Pekko's `NodeMetrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// The node.
    pub address: UniqueAddress,
    /// When the node sampled them, in milliseconds of its own clock; only compared with other
    /// samples of the same node (a later sample has a larger timestamp).
    pub timestamp_ms: u64,
    /// The metrics, one per name.
    pub metrics: Vec<Metric>,
}

impl NodeMetrics {
    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The value selectors use for metric `name` ([`Metric::smoothed`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metric(name).map(Metric::smoothed)
    }

    /// The same metrics without the invalid ones: bad names or values (see [`valid_value`]),
    /// a moving average with a bad value or weight, a repeated name (the first is kept), and
    /// any beyond [`MAX_METRICS_PER_NODE`]. Returns how many were dropped.
    pub fn sanitize(&mut self) -> usize {
        let before = self.metrics.len();
        let mut kept: Vec<Metric> = Vec::with_capacity(before.min(MAX_METRICS_PER_NODE));
        for m in self.metrics.drain(..) {
            if kept.len() < MAX_METRICS_PER_NODE
                && m.is_valid()
                && !kept.iter().any(|k| k.name == m.name)
            {
                kept.push(m);
            }
        }
        self.metrics = kept;
        before - self.metrics.len()
    }
}

/// Every eligible member's latest metrics, as one node knows them (sans-IO; Pekko's
/// `MetricsGossip`).
///
/// - **Eligible** members are Up or WeaklyUp and not flagged unreachable
///   ([`MetricsGossip::update_members`]); entries of other nodes are purged, and gossip about
///   them is ignored.
/// - **This node's** entry comes from [`MetricsGossip::record`]: the readings fold into the
///   moving averages of the previous sample.
/// - **Other nodes'** entries come from gossip ([`MetricsGossip::merge`]): the newest by the
///   origin's timestamp is adopted as it is, moving averages included. Pekko instead advances
///   its own average of a peer by every copy it hears, so duplicate and stale copies smooth
///   it again; here every node holds the origin's own average.
#[derive(Debug, Clone)]
pub struct MetricsGossip {
    self_address: UniqueAddress,
    alpha: f64,
    /// Eligible members, sorted.
    eligible: Vec<UniqueAddress>,
    /// Other nodes' latest metrics (eligible ones only).
    nodes: BTreeMap<UniqueAddress, NodeMetrics>,
    /// This node's latest sample, kept while it is not eligible so its averages continue.
    own: Option<NodeMetrics>,
}

impl MetricsGossip {
    /// An empty table on node `self_address`, whose smoothed metrics take weight `alpha`
    /// ([`Ewma::alpha`]; clamped to (0, 1]).
    pub fn new(self_address: UniqueAddress, alpha: f64) -> MetricsGossip {
        let alpha = if alpha.is_nan() {
            1.0
        } else {
            alpha.clamp(f64::MIN_POSITIVE, 1.0)
        };
        MetricsGossip {
            self_address,
            alpha,
            eligible: Vec::new(),
            nodes: BTreeMap::new(),
            own: None,
        }
    }

    /// This node.
    pub fn self_address(&self) -> UniqueAddress {
        self.self_address
    }

    /// Follows membership: the eligible members become those of `members` that are Up or
    /// WeaklyUp and not in `unreachable` ([`ClusterState`](fjell_runtime::ClusterState)'s
    /// lists fit as they are); other nodes' entries are purged. Returns true if an entry was
    /// purged or this node's own entry appeared or disappeared.
    pub fn update_members(&mut self, members: &[Member], unreachable: &[Member]) -> bool {
        let was_self = self.self_eligible();
        let mut eligible: Vec<UniqueAddress> = members
            .iter()
            .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::WeaklyUp))
            .filter(|m| !unreachable.iter().any(|u| u.address == m.address))
            .map(|m| m.address)
            .collect();
        eligible.sort_unstable();
        eligible.dedup();
        self.eligible = eligible;
        let before = self.nodes.len();
        let eligible = &self.eligible;
        self.nodes.retain(|a, _| eligible.binary_search(a).is_ok());
        let self_changed = was_self != self.self_eligible() && self.own.is_some();
        before != self.nodes.len() || self_changed
    }

    /// The eligible members, in address order, this node included if it is one.
    pub fn eligible(&self) -> &[UniqueAddress] {
        &self.eligible
    }

    fn self_eligible(&self) -> bool {
        self.eligible.binary_search(&self.self_address).is_ok()
    }

    /// Records this node's sample taken at `now_ms` (milliseconds of this node's clock).
    /// Invalid readings are dropped; smoothed ones advance the moving average of the previous
    /// sample's metric of that name, or seed one. Metrics missing from `readings` are gone
    /// from the entry (a value that can no longer be read is not repeated forever). The
    /// timestamp is kept increasing even if the clock steps back, so peers always take the
    /// newer sample. Returns true if the entry is in the table (this node is eligible).
    pub fn record(&mut self, now_ms: u64, readings: &[Reading]) -> bool {
        let previous = self.own.take();
        let timestamp_ms = match &previous {
            Some(p) => now_ms.max(p.timestamp_ms.saturating_add(1)),
            None => now_ms,
        };
        let mut metrics = Vec::with_capacity(readings.len());
        for r in readings {
            let average = r.smooth.then(|| {
                match previous
                    .as_ref()
                    .and_then(|p| p.metric(&r.name))
                    .and_then(|m| m.average)
                {
                    Some(old) => Ewma {
                        alpha: self.alpha,
                        ..old
                    }
                    .update(r.value),
                    None => Ewma::new(r.value, self.alpha),
                }
            });
            metrics.push(Metric {
                name: r.name.clone(),
                value: r.value,
                average,
            });
        }
        let mut own = NodeMetrics {
            address: self.self_address,
            timestamp_ms,
            metrics,
        };
        own.sanitize();
        self.own = Some(own);
        self.self_eligible()
    }

    /// Merges gossip: for each entry about an eligible member other than this node, newer
    /// (by the origin's timestamp) than the one held, the entry replaces it as it is, after
    /// invalid metrics are dropped ([`NodeMetrics::sanitize`]). Returns how many were adopted.
    pub fn merge(&mut self, gossip: impl IntoIterator<Item = NodeMetrics>) -> usize {
        let mut adopted = 0;
        for mut n in gossip {
            if n.address == self.self_address || self.eligible.binary_search(&n.address).is_err() {
                continue;
            }
            if self
                .nodes
                .get(&n.address)
                .is_some_and(|held| held.timestamp_ms >= n.timestamp_ms)
            {
                continue;
            }
            let dropped = n.sanitize();
            if dropped > 0 {
                tracing::debug!(node = %n.address, dropped, "fjell-tools: invalid metrics dropped");
            }
            self.nodes.insert(n.address, n);
            adopted += 1;
        }
        adopted
    }

    /// The metrics of `address`, if it is eligible and they are known.
    pub fn get(&self, address: UniqueAddress) -> Option<&NodeMetrics> {
        if address == self.self_address {
            self.own.as_ref().filter(|_| self.self_eligible())
        } else {
            self.nodes.get(&address)
        }
    }

    /// Every eligible member's latest metrics, in address order: what a node gossips and
    /// publishes.
    pub fn nodes(&self) -> Vec<NodeMetrics> {
        let own = self.own.as_ref().filter(|_| self.self_eligible());
        let mut all: Vec<NodeMetrics> = self.nodes.values().chain(own).cloned().collect();
        all.sort_unstable_by_key(|n| n.address);
        all
    }

    /// How many entries [`MetricsGossip::nodes`] holds.
    pub fn len(&self) -> usize {
        self.nodes.len() + usize::from(self.own.is_some() && self.self_eligible())
    }

    /// True if [`MetricsGossip::nodes`] is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The member to gossip to next: one of the eligible members other than this node, chosen
    /// by `draw` (a uniformly random number); `None` if there is none.
    pub fn gossip_target(&self, draw: u64) -> Option<UniqueAddress> {
        let others: Vec<UniqueAddress> = self
            .eligible
            .iter()
            .copied()
            .filter(|a| *a != self.self_address)
            .collect();
        if others.is_empty() {
            return None;
        }
        others
            .get(scale(draw, others.len() as u64) as usize)
            .copied()
    }
}

/// `draw` (uniform over `u64`) scaled to `0..n` by multiply-shift: no modulo bias.
pub(crate) fn scale(draw: u64, n: u64) -> u64 {
    ((u128::from(draw) * u128::from(n)) >> 64) as u64
}

/// splitmix64: advances `state` and returns the next output (the random router's generator
/// too).
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    crate::routing::mix(*state)
}
