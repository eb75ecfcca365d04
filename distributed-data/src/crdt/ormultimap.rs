//! [`ORMultiMap`]: a map of sets.

use serde::{Deserialize, Serialize};

use super::{Crdt, Element, ORMap, ORSet, ReplicaId};

/// A map whose values are [`ORSet`]s: a key bound to several values (Pekko's
/// `ORMultiMap`). Bindings follow the set's add-wins rule, keys the map's.
///
/// Removing a key's last binding removes the key, as Pekko. A binding that replica saw
/// removed can then come back with a concurrent write of the key elsewhere, whose set still
/// holds it: the key's removal does not carry the set's history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ORMultiMap(ORMap<ORSet>);

impl ORMultiMap {
    /// Binds `value` to `key`, as `node` (this replica).
    pub fn add_binding(
        &mut self,
        node: ReplicaId,
        key: impl Into<Element>,
        value: impl Into<Element>,
    ) {
        self.0.update(node, key, |s| s.add(node, value));
    }

    /// Unbinds `value` from `key`, as `node` (this replica); removes the key if that was its
    /// last binding. Does nothing if the key is absent.
    pub fn remove_binding(
        &mut self,
        node: ReplicaId,
        key: impl Into<Element>,
        value: impl Into<Element>,
    ) {
        let (key, value) = (key.into(), value.into());
        let Some(set) = self.0.get(&key) else {
            return;
        };
        if !set.contains(&value) {
            return;
        }
        if set.len() == 1 {
            self.0.remove(key);
        } else {
            self.0.update(node, key, |s| s.remove(value));
        }
    }

    /// Binds exactly `values` to `key`, as `node` (this replica): bindings it had and
    /// `values` lacks are removed as by [`remove_binding`](ORMultiMap::remove_binding).
    pub fn put<E: Into<Element>>(
        &mut self,
        node: ReplicaId,
        key: impl Into<Element>,
        values: impl IntoIterator<Item = E>,
    ) {
        // Through the set's own clear, not a fresh set, so its removes carry to replicas
        // that wrote the key concurrently.
        self.0.update(node, key, |s| {
            s.clear();
            for v in values {
                s.add(node, v);
            }
        });
    }

    /// The values bound to `key`.
    pub fn get(&self, key: &Element) -> Option<&ORSet> {
        self.0.get(key)
    }

    /// Removes `key` with all its bindings (see [`ORMap::remove`]).
    pub fn remove(&mut self, key: impl Into<Element>) {
        self.0.remove(key);
    }

    /// The keys and their values, in the keys' byte order.
    pub fn entries(&self) -> impl Iterator<Item = (&Element, &ORSet)> + '_ {
        self.0.iter()
    }
}

ormap_newtype!(ORMultiMap, ORSet);
