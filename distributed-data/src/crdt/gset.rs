//! [`GSet`]: the grow-only set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Crdt, Element, ReplicaId};

/// A set that only grows: merged by union (Pekko's `GSet`). It records no replica, so it
/// needs no pruning.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GSet {
    elements: BTreeSet<Element>,
    /// The elements added since the last [`Crdt::take_delta`].
    #[serde(skip)]
    delta: Option<Box<GSet>>,
}

// The pending delta is local bookkeeping, not part of the value.
impl PartialEq for GSet {
    fn eq(&self, other: &GSet) -> bool {
        self.elements == other.elements
    }
}

impl GSet {
    /// Adds `element`.
    pub fn add(&mut self, element: impl Into<Element>) {
        let element = element.into();
        if self.elements.insert(element.clone()) {
            self.delta
                .get_or_insert_with(Default::default)
                .elements
                .insert(element);
        }
    }

    /// True if `element` is in the set.
    pub fn contains(&self, element: &Element) -> bool {
        self.elements.contains(element)
    }

    /// The elements, in byte order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> + '_ {
        self.elements.iter()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True if the set has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

impl Crdt for GSet {
    fn merge(&mut self, other: &GSet) {
        self.elements.extend(other.elements.iter().cloned());
    }

    fn take_delta(&mut self) -> Option<GSet> {
        self.delta.take().map(|d| *d)
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, _: &mut BTreeSet<ReplicaId>) {}

    fn prune(&mut self, _: ReplicaId, _: ReplicaId) {}

    fn pruning_cleanup(&mut self, _: ReplicaId) {}

    /// The number of elements.
    fn size(&self) -> usize {
        self.elements.len()
    }
}
