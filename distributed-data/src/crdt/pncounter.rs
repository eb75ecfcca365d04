//! [`PNCounter`]: the counter that goes up and down.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Crdt, GCounter, ReplicaId};

/// A counter with increments and decrements: two [`GCounter`]s, read as their difference
/// (Pekko's `PNCounter`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PNCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PNCounter {
    /// Adds `n`, written by `node` (this replica).
    pub fn increment(&mut self, node: ReplicaId, n: u64) {
        self.increments.increment(node, n);
    }

    /// Subtracts `n`, written by `node` (this replica).
    pub fn decrement(&mut self, node: ReplicaId, n: u64) {
        self.decrements.increment(node, n);
    }

    /// Increments minus decrements. Each half saturates at `i128::MAX`, which takes more
    /// than 2^63 replicas at the largest totals.
    pub fn value(&self) -> i128 {
        let up = i128::try_from(self.increments.value()).unwrap_or(i128::MAX);
        let down = i128::try_from(self.decrements.value()).unwrap_or(i128::MAX);
        up - down
    }

    /// The increments.
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// The decrements.
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }
}

impl Crdt for PNCounter {
    fn merge(&mut self, other: &PNCounter) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    fn take_delta(&mut self) -> Option<PNCounter> {
        let (up, down) = (self.increments.take_delta(), self.decrements.take_delta());
        if up.is_none() && down.is_none() {
            return None;
        }
        Some(PNCounter {
            increments: up.unwrap_or_default(),
            decrements: down.unwrap_or_default(),
        })
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>) {
        self.increments.modified_by(out);
        self.decrements.modified_by(out);
    }

    fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
        self.increments.prune(removed, into);
        self.decrements.prune(removed, into);
    }

    fn pruning_cleanup(&mut self, removed: ReplicaId) {
        self.increments.pruning_cleanup(removed);
        self.decrements.pruning_cleanup(removed);
    }

    fn size(&self) -> usize {
        self.increments.size() + self.decrements.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn value_is_the_difference() {
        let a = ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], 1)), 1);
        let mut x = PNCounter::default();
        x.increment(a, 2);
        x.decrement(a, 5);
        assert_eq!(x.value(), -3);
        let d = x.take_delta().unwrap();
        let mut y = PNCounter::default();
        y.merge(&d);
        assert_eq!(y, x);
    }
}
