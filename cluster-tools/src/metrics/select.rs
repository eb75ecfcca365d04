//! Adaptive load balancing's arithmetic (sans-IO): how free a node is by its metrics
//! (capacity), the routees' integer weights, and a weighted pick.

use std::collections::BTreeMap;

use fjell_runtime::core::UniqueAddress;

use super::model::{names, scale, NodeMetrics};

/// How much stolen CPU time counts beyond itself in [`MetricsSelector::Cpu`]'s load:
/// `combined + stolen × (1 + CPU_STEAL_FACTOR)` (Pekko's hard-coded factor, 0.3: a node whose
/// hypervisor steals time is rated busier than the time alone says).
pub const CPU_STEAL_FACTOR: f64 = 0.3;

/// The smallest capacity weights are relative to: a node with less counts as this much free,
/// so the weights stay at most 100 and a full node never divides by zero.
pub const MIN_CAPACITY: f64 = 0.01;

/// Which metrics rate how free a node is (Pekko's `metrics-selector`). Every capacity is 0
/// (busy) to 1 (idle), from the smoothed values ([`NodeMetrics::get`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricsSelector {
    /// The mean of the [`Memory`](Self::Memory), [`Load`](Self::Load) and [`Cpu`](Self::Cpu)
    /// capacities a node has metrics for (the default).
    #[default]
    Mix,
    /// CPU: `1 − (cpu-combined + cpu-stolen × 1.3)`, 0 if that is negative; a node without
    /// cpu-stolen counts none stolen.
    Cpu,
    /// Load: `1 − min(1, system-load-average / processors)`.
    Load,
    /// System memory (Pekko's `heap`): `(memory-total − memory-used) / memory-total`.
    Memory,
}

impl MetricsSelector {
    /// How free `node` is by this selector, 0 to 1; `None` if it lacks the metrics.
    pub fn capacity(self, node: &NodeMetrics) -> Option<f64> {
        match self {
            MetricsSelector::Cpu => {
                let combined = node.get(names::CPU_COMBINED)?;
                let stolen = node.get(names::CPU_STOLEN).unwrap_or(0.0);
                let load = combined + stolen * (1.0 + CPU_STEAL_FACTOR);
                Some(if load >= 1.0 { 0.0 } else { 1.0 - load })
            }
            MetricsSelector::Load => {
                let load = node.get(names::SYSTEM_LOAD_AVERAGE)?;
                let processors = node.get(names::PROCESSORS).filter(|p| *p >= 1.0)?;
                Some(1.0 - (load / processors).min(1.0))
            }
            MetricsSelector::Memory => {
                let used = node.get(names::MEMORY_USED)?;
                let total = node.get(names::MEMORY_TOTAL).filter(|t| *t > 0.0)?;
                Some(((total - used) / total).clamp(0.0, 1.0))
            }
            MetricsSelector::Mix => {
                let parts: Vec<f64> = [
                    MetricsSelector::Memory,
                    MetricsSelector::Load,
                    MetricsSelector::Cpu,
                ]
                .into_iter()
                .filter_map(|s| s.capacity(node))
                .collect();
                (!parts.is_empty()).then(|| parts.iter().sum::<f64>() / parts.len() as f64)
            }
        }
        // Values are validated on the way in; a NaN here would still poison the weights.
        .filter(|c| c.is_finite())
        .map(|c| c.clamp(0.0, 1.0))
    }

    /// The capacity of every node in `nodes` that has the metrics, by address.
    pub fn capacities<'a>(
        self,
        nodes: impl IntoIterator<Item = &'a NodeMetrics>,
    ) -> BTreeMap<UniqueAddress, f64> {
        nodes
            .into_iter()
            .filter_map(|n| self.capacity(n).map(|c| (n.address, c)))
            .collect()
    }
}

/// Integer weights from capacities (Pekko's rule): `round(capacity / max(0.01, least
/// capacity))`, so the least free node weighs 1 (or 0 if it is under half the 1 % floor) and
/// a node twice as free about twice as much. Empty for no capacities.
pub fn weights(capacities: &BTreeMap<UniqueAddress, f64>) -> BTreeMap<UniqueAddress, u32> {
    let Some(least) = capacities.values().copied().reduce(f64::min) else {
        return BTreeMap::new();
    };
    let divisor = least.max(MIN_CAPACITY);
    capacities
        .iter()
        // At most 1 / 0.01 = 100 (capacities are 0 to 1): the cast cannot truncate.
        .map(|(a, c)| (*a, (c / divisor).round().clamp(0.0, 1e6) as u32))
        .collect()
}

/// Routees with weights, for a weighted random pick (sans-IO; Pekko's `WeightedRoutees`).
///
/// A routee weighs its node's weight ([`weights`]); one without metrics weighs the mean
/// weight of the nodes with metrics (1 if there are none, so without any metrics the pick is
/// uniform). If every routee weighs 0 (every node under 0.5 % free) all weigh 1: a pick is
/// always possible while there are routees (Pekko's table would be empty and drop the
/// message).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeightedRoutees {
    routees: Vec<UniqueAddress>,
    /// Running totals of the weights, one per routee.
    cumulative: Vec<u64>,
}

impl WeightedRoutees {
    /// `routees` (kept in the order given) weighted by `weights`.
    pub fn new(routees: &[UniqueAddress], weights: &BTreeMap<UniqueAddress, u32>) -> Self {
        let mean = if weights.is_empty() {
            1
        } else {
            let sum: u64 = weights.values().map(|w| u64::from(*w)).sum();
            sum / weights.len() as u64
        };
        let mut each: Vec<u64> = routees
            .iter()
            .map(|r| weights.get(r).map_or(mean, |w| u64::from(*w)))
            .collect();
        if each.iter().all(|w| *w == 0) {
            each.iter_mut().for_each(|w| *w = 1);
        }
        let cumulative = each
            .iter()
            .scan(0u64, |total, w| {
                *total += w;
                Some(*total)
            })
            .collect();
        WeightedRoutees {
            routees: routees.to_vec(),
            cumulative,
        }
    }

    /// The routees, in the order given.
    pub fn routees(&self) -> &[UniqueAddress] {
        &self.routees
    }

    /// The weight of each routee, in order.
    pub fn weights(&self) -> Vec<u64> {
        let mut previous = 0;
        self.cumulative
            .iter()
            .map(|c| {
                let w = c - previous;
                previous = *c;
                w
            })
            .collect()
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// True if there are no routees.
    pub fn is_empty(&self) -> bool {
        self.routees.is_empty()
    }

    /// The routee for `draw` (a uniformly random number): each routee with a probability of
    /// its weight over the total. `None` if there are no routees.
    pub fn pick(&self, draw: u64) -> Option<UniqueAddress> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let x = scale(draw, total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.routees.get(i).copied()
    }
}
