//! [`GCounter`]: the grow-only counter.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Crdt, ReplicaId};

/// A counter that only grows: one total per replica, merged by taking the larger, read as
/// the sum (Pekko's `GCounter`).
///
/// Each replica only ever raises its own total, so the larger of two totals has seen the
/// other's increments, and taking it never counts an increment twice.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "GCounterWire")]
pub struct GCounter {
    totals: BTreeMap<ReplicaId, u64>,
    /// The new totals of the replicas incremented since the last [`Crdt::take_delta`].
    #[serde(skip)]
    delta: Option<Box<GCounter>>,
}

/// The decoded form: zero totals are dropped, as a local counter never holds them.
#[derive(Deserialize)]
struct GCounterWire {
    totals: BTreeMap<ReplicaId, u64>,
}

impl From<GCounterWire> for GCounter {
    fn from(mut w: GCounterWire) -> GCounter {
        w.totals.retain(|_, n| *n > 0);
        GCounter {
            totals: w.totals,
            delta: None,
        }
    }
}

// The pending delta is local bookkeeping, not part of the value.
impl PartialEq for GCounter {
    fn eq(&self, other: &GCounter) -> bool {
        self.totals == other.totals
    }
}

impl GCounter {
    /// Adds `n` to `node`'s total (`node` is this replica). A total saturates at `u64::MAX`;
    /// an increment of 0 records nothing.
    pub fn increment(&mut self, node: ReplicaId, n: u64) {
        if n == 0 {
            return;
        }
        let total = self.totals.entry(node).or_insert(0);
        *total = total.saturating_add(n);
        let total = *total;
        // The delta holds the new total, not the increment, so applying it twice is harmless.
        self.delta
            .get_or_insert_with(Default::default)
            .totals
            .insert(node, total);
    }

    /// The sum of every replica's total.
    pub fn value(&self) -> u128 {
        self.totals.values().map(|&n| u128::from(n)).sum()
    }

    /// `node`'s total.
    pub fn total_of(&self, node: &ReplicaId) -> u64 {
        self.totals.get(node).copied().unwrap_or(0)
    }
}

impl Crdt for GCounter {
    fn merge(&mut self, other: &GCounter) {
        for (node, &n) in &other.totals {
            let total = self.totals.entry(*node).or_insert(0);
            *total = (*total).max(n);
        }
    }

    fn take_delta(&mut self) -> Option<GCounter> {
        self.delta.take().map(|d| *d)
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>) {
        out.extend(self.totals.keys().copied());
    }

    /// Adds `removed`'s total to `into`'s (saturating), so the sum stays the same.
    fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
        if removed == into {
            return;
        }
        if let Some(n) = self.totals.remove(&removed) {
            let total = self.totals.entry(into).or_insert(0);
            *total = total.saturating_add(n);
        }
    }

    fn pruning_cleanup(&mut self, removed: ReplicaId) {
        self.totals.remove(&removed);
    }

    /// The number of replicas with a total.
    fn size(&self) -> usize {
        self.totals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    #[test]
    fn merge_takes_the_larger_total() {
        let (a, b) = (node(1), node(2));
        let mut x = GCounter::default();
        x.increment(a, 3);
        let mut y = x.clone();
        y.increment(a, 2);
        y.increment(b, 1);
        x.merge(&y);
        x.merge(&y);
        assert_eq!(x.value(), 6);
    }

    #[test]
    fn the_delta_holds_new_totals() {
        let a = node(1);
        let mut x = GCounter::default();
        x.increment(a, 3);
        x.take_delta();
        x.increment(a, 0);
        assert!(x.take_delta().is_none());
        x.increment(a, 2);
        let d = x.take_delta().unwrap();
        assert_eq!(d.total_of(&a), 5);
    }

    #[test]
    fn pruning_keeps_the_sum() {
        let (a, b) = (node(1), node(2));
        let mut x = GCounter::default();
        x.increment(a, u64::MAX);
        x.increment(b, 2);
        x.prune(b, a);
        assert_eq!(x.total_of(&a), u64::MAX);
        let mut y = GCounter::default();
        y.increment(a, 1);
        y.increment(b, 2);
        y.prune(b, a);
        assert_eq!((y.value(), y.size()), (3, 1));
    }
}
