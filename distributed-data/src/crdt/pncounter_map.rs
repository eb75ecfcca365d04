//! [`PNCounterMap`]: a map of counters.

use serde::{Deserialize, Serialize};

use super::{Crdt, Element, ORMap, PNCounter, ReplicaId};

/// A map whose values are [`PNCounter`]s (Pekko's `PNCounterMap`). Keys are removed as in
/// an [`ORMap`]: an increment wins over a concurrent remove, and a removed key counts from
/// zero again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PNCounterMap(ORMap<PNCounter>);

impl PNCounterMap {
    /// Adds `n` to `key`'s counter, as `node` (this replica).
    pub fn increment(&mut self, node: ReplicaId, key: impl Into<Element>, n: u64) {
        self.0.update(node, key, |c| c.increment(node, n));
    }

    /// Subtracts `n` from `key`'s counter, as `node` (this replica).
    pub fn decrement(&mut self, node: ReplicaId, key: impl Into<Element>, n: u64) {
        self.0.update(node, key, |c| c.decrement(node, n));
    }

    /// The value of `key`'s counter.
    pub fn get(&self, key: &Element) -> Option<i128> {
        self.0.get(key).map(PNCounter::value)
    }

    /// Removes `key` (see [`ORMap::remove`]).
    pub fn remove(&mut self, key: impl Into<Element>) {
        self.0.remove(key);
    }

    /// The keys and counter values, in the keys' byte order.
    pub fn entries(&self) -> impl Iterator<Item = (&Element, i128)> + '_ {
        self.0.iter().map(|(k, c)| (k, c.value()))
    }
}

ormap_newtype!(PNCounterMap, PNCounter);
