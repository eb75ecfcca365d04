//! [`LWWMap`]: a map of last-writer-wins registers.

use serde::{Deserialize, Serialize};

use super::{Crdt, Element, LWWRegister, ORMap, ReplicaId};

/// A map whose values are [`LWWRegister`]s: per key, the write with the highest timestamp
/// wins (Pekko's `LWWMap`). Keys are removed as in an [`ORMap`]: a write wins over a
/// concurrent remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LWWMap(ORMap<LWWRegister>);

impl LWWMap {
    /// Writes `value` under `key` at `timestamp`, as `node` (this replica). The write loses
    /// to a write of the key with a higher timestamp (see [`LWWRegister::set`]); use
    /// [`LWWRegister::clock`] over [`LWWMap::register`]'s timestamp to always win.
    pub fn put(
        &mut self,
        node: ReplicaId,
        key: impl Into<Element>,
        value: impl Into<Element>,
        timestamp: i64,
    ) {
        let value = value.into();
        self.0.update(node, key, |r| {
            r.set(node, value, timestamp);
        });
    }

    /// The value of `key`.
    pub fn get(&self, key: &Element) -> Option<&Element> {
        self.0.get(key).and_then(LWWRegister::value)
    }

    /// The register of `key`, with its timestamp and writer.
    pub fn register(&self, key: &Element) -> Option<&LWWRegister> {
        self.0.get(key)
    }

    /// Removes `key` (see [`ORMap::remove`]).
    pub fn remove(&mut self, key: impl Into<Element>) {
        self.0.remove(key);
    }

    /// The keys and values, in the keys' byte order. A register without a value (only a
    /// peer can send one) is left out.
    pub fn entries(&self) -> impl Iterator<Item = (&Element, &Element)> + '_ {
        self.0.iter().filter_map(|(k, r)| r.value().map(|v| (k, v)))
    }
}

ormap_newtype!(LWWMap, LWWRegister);
