//! [`ORSet`]: the add-wins observed-remove set.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::dots::{Dot, DotContext};
use super::{Crdt, Element, ElementError, ReplicaId};

/// A set where an add wins over a concurrent remove: a remove takes away only the adds it
/// has seen (Pekko's `ORSet`, built as the delta-state AWORSet of Almeida et al.).
///
/// Each element carries the dots of the adds that put it there; the set's causal context
/// holds every dot it has seen. Merging keeps a dot both sides hold, and a dot one side holds
/// that the other has not seen; a dot one side has seen but no longer holds was removed
/// there, and is dropped.
///
/// ```
/// # use std::net::SocketAddr;
/// # use fjell_ddata::crdt::{Crdt, Element, ORSet, ReplicaId};
/// let (a, b) = (
///     ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], 1)), 1),
///     ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], 2)), 1),
/// );
/// let mut x = ORSet::default();
/// x.add(a, "milk");
/// let mut y = x.clone();
/// y.remove("milk"); // removes the add it saw...
/// x.add(a, "milk"); // ...not this concurrent one
/// y.merge(&x);
/// assert!(y.contains(&Element::from("milk")));
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "ORSetWire")]
pub struct ORSet {
    entries: BTreeMap<Element, BTreeSet<Dot>>,
    context: DotContext,
    /// The join of the deltas of the mutations since the last [`Crdt::take_delta`].
    #[serde(skip)]
    delta: Option<Box<ORSet>>,
}

/// The decoded form. A peer's set may hold an element without dots, or dots its context has
/// not seen; both are repaired so the merge rules hold.
#[derive(Deserialize)]
struct ORSetWire {
    entries: BTreeMap<Element, BTreeSet<Dot>>,
    context: DotContext,
}

impl From<ORSetWire> for ORSet {
    fn from(mut w: ORSetWire) -> ORSet {
        w.entries.retain(|_, dots| !dots.is_empty());
        for dot in w.entries.values().flatten() {
            w.context.insert(*dot);
        }
        ORSet {
            entries: w.entries,
            context: w.context,
            delta: None,
        }
    }
}

// The pending delta is local bookkeeping, not part of the value.
impl PartialEq for ORSet {
    fn eq(&self, other: &ORSet) -> bool {
        self.entries == other.entries && self.context == other.context
    }
}

impl ORSet {
    /// Adds `element`, written by `node` (this replica). Re-adding a present element renews
    /// its dot, so a concurrent remove of the older add no longer takes it away.
    pub fn add(&mut self, node: ReplicaId, element: impl Into<Element>) {
        let element = element.into();
        let dot = self.context.next_dot(node);
        let old = self.entries.insert(element.clone(), BTreeSet::from([dot]));
        // The delta's context holds the replaced dots so that a replica applying it drops
        // them too, as this one did.
        let mut delta = ORSet::default();
        for d in old.into_iter().flatten() {
            delta.context.insert(d);
        }
        delta.context.insert(dot);
        delta.entries.insert(element, BTreeSet::from([dot]));
        self.record(delta);
    }

    /// Removes `element`: the adds this replica has seen. An add elsewhere that this replica
    /// has not seen survives the merge.
    pub fn remove(&mut self, element: impl Into<Element>) {
        if let Some(dots) = self.entries.remove(&element.into()) {
            self.record(ORSet::removal(dots));
        }
    }

    /// Removes every element this replica has seen.
    pub fn clear(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.entries);
        self.record(ORSet::removal(entries.into_values().flatten()));
    }

    /// True if `element` is in the set.
    pub fn contains(&self, element: &Element) -> bool {
        self.entries.contains_key(element)
    }

    /// The elements, in byte order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> + '_ {
        self.entries.keys()
    }

    /// Every element decoded as a `T` (see [`Element::decode`]), in the elements' byte order.
    pub fn decoded<T: DeserializeOwned>(&self) -> Result<Vec<T>, ElementError> {
        self.elements().map(Element::decode).collect()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the set has no elements.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A delta that removes `dots`: no elements, a context of the removed dots.
    fn removal(dots: impl IntoIterator<Item = Dot>) -> ORSet {
        let mut delta = ORSet::default();
        for d in dots {
            delta.context.insert(d);
        }
        delta
    }

    fn record(&mut self, delta: ORSet) {
        match &mut self.delta {
            Some(pending) => pending.merge(&delta),
            None => self.delta = Some(Box::new(delta)),
        }
    }
}

impl Crdt for ORSet {
    fn merge(&mut self, other: &ORSet) {
        // Both decisions need each side's context from before the merge.
        let (mine, theirs) = (&self.context, &other.context);
        self.entries.retain(|element, dots| {
            match other.entries.get(element) {
                Some(other_dots) => {
                    dots.retain(|d| other_dots.contains(d) || !theirs.contains(d));
                    dots.extend(other_dots.iter().filter(|d| !mine.contains(d)));
                }
                None => dots.retain(|d| !theirs.contains(d)),
            }
            !dots.is_empty()
        });
        for (element, other_dots) in &other.entries {
            if self.entries.contains_key(element) {
                continue;
            }
            let new: BTreeSet<Dot> = other_dots
                .iter()
                .filter(|d| !mine.contains(d))
                .copied()
                .collect();
            if !new.is_empty() {
                self.entries.insert(element.clone(), new);
            }
        }
        self.context.merge(&other.context);
    }

    fn take_delta(&mut self) -> Option<ORSet> {
        self.delta.take().map(|d| *d)
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>) {
        self.context.nodes(out);
        out.extend(self.entries.values().flatten().map(|d| d.0));
    }

    /// Every element holding a dot of `removed` gets a fresh dot of `into` instead, so it
    /// stays in the set; `removed`'s dots leave the context.
    fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
        self.prune_renaming(removed, into);
    }

    fn pruning_cleanup(&mut self, removed: ReplicaId) {
        self.pruning_cleanup_renamed(removed, &[]);
    }

    /// Each element `removed` added gets one new dot of `into` for its dots of `removed`.
    fn prune_renaming(&mut self, removed: ReplicaId, into: ReplicaId) -> Vec<(Dot, Dot)> {
        self.context.remove_node(removed);
        let mut renamed = Vec::new();
        for dots in self.entries.values_mut() {
            let old: Vec<Dot> = dots.iter().filter(|d| d.0 == removed).copied().collect();
            if old.is_empty() {
                continue;
            }
            dots.retain(|d| d.0 != removed);
            let new = self.context.next_dot(into);
            dots.insert(new);
            renamed.extend(old.into_iter().map(|o| (o, new)));
        }
        renamed.sort_unstable();
        // A dot in two elements (only a peer's bad data holds one) is renamed twice.
        renamed.dedup();
        renamed
    }

    /// An element added under a renamed dot keeps its new one; what this replica has seen
    /// of an old dot (an add, or a removal of it) it has seen of the new one. Without that,
    /// a removal made before the pruning reached its replica would lose to the new dot.
    fn pruning_cleanup_renamed(&mut self, removed: ReplicaId, renamed: &[(Dot, Dot)]) {
        // `renamed` is ordered; an old dot may have several new names (two owners pruned,
        // or a peer's bad data), and each counts.
        let names = |d: Dot| {
            let from = renamed.partition_point(|(old, _)| *old < d);
            renamed[from..]
                .iter()
                .take_while(move |(old, _)| *old == d)
                .map(|(_, new)| *new)
        };
        let seen: Vec<Dot> = renamed
            .iter()
            .filter(|(old, new)| old.0 == removed && new.0 != removed && self.context.contains(old))
            .map(|(_, new)| *new)
            .collect();
        for dot in seen {
            self.context.insert(dot);
        }
        self.context.remove_node(removed);
        self.entries.retain(|_, dots| {
            let old: Vec<Dot> = dots.iter().filter(|d| d.0 == removed).copied().collect();
            for d in old {
                dots.remove(&d);
                dots.extend(names(d).filter(|new| new.0 != removed));
            }
            !dots.is_empty()
        });
    }

    /// Elements, their dots, and the context's entries.
    fn size(&self) -> usize {
        self.entries.values().map(|d| 1 + d.len()).sum::<usize>() + self.context.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::modified_by;
    use std::net::SocketAddr;

    fn node(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn e(s: &str) -> Element {
        Element::from(s)
    }

    #[test]
    fn add_wins_over_a_concurrent_remove() {
        let (a, b) = (node(1), node(2));
        let mut x = ORSet::default();
        x.add(a, "a");
        let mut y = x.clone();
        y.remove("a");
        x.add(a, "a");
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        assert!(xy.contains(&e("a")));
        assert_eq!(xy, yx);
        // Concurrent adds of the same element by two replicas: one remove that saw both
        // takes it away.
        y.add(b, "a");
        xy.merge(&y);
        xy.remove("a");
        x.merge(&xy);
        y.merge(&xy);
        assert!(!x.contains(&e("a")) && !y.contains(&e("a")));
    }

    #[test]
    fn a_remove_takes_away_the_observed_add() {
        let a = node(1);
        let mut x = ORSet::default();
        x.add(a, "a");
        let mut y = x.clone();
        y.remove("a");
        x.merge(&y);
        assert!(x.is_empty());
        // An old copy of the add, arriving late, does not resurrect it.
        let mut late = ORSet::default();
        late.add(a, "a");
        x.merge(&late);
        assert!(x.is_empty());
    }

    #[test]
    fn deltas_replay_mutations() {
        let a = node(1);
        let mut x = ORSet::default();
        x.add(a, "a");
        x.add(a, "b");
        x.take_delta();
        let mut y = x.clone();
        y.add(a, "c");
        y.remove("a");
        y.add(a, "b");
        let d = y.take_delta().unwrap();
        assert!(y.take_delta().is_none());
        x.merge(&d);
        assert_eq!(x, y);
    }

    #[test]
    fn clear_removes_only_what_was_seen() {
        let (a, b) = (node(1), node(2));
        let mut x = ORSet::default();
        x.add(a, "a");
        let mut y = ORSet::default();
        y.add(b, "b");
        x.clear();
        x.merge(&y);
        assert_eq!(x.decoded::<String>().unwrap(), vec!["b".to_string()]);
    }

    #[test]
    fn pruning_keeps_the_elements() {
        let (a, b) = (node(1), node(2));
        let mut x = ORSet::default();
        x.add(a, "a");
        x.add(b, "b");
        x.add(a, "c");
        x.remove("c");
        x.prune(a, b);
        assert_eq!(x.decoded::<String>().unwrap(), vec!["a", "b"]);
        assert_eq!(modified_by(&x), BTreeSet::from([b]));
        // A replica that cleaned up `a` and merges the pruned set keeps both.
        let mut old = ORSet::default();
        old.add(a, "a");
        old.pruning_cleanup(a);
        assert!(old.is_empty());
        old.merge(&x);
        assert_eq!(old.len(), 2);
    }

    #[test]
    fn a_removal_made_before_the_pruning_arrived_still_removes() {
        // `a` added "x" and was removed from the cluster; a replica removed "x" before it
        // saw `b` prune `a`.
        let (a, b) = (node(1), node(2));
        let mut added = ORSet::default();
        added.add(a, "x");
        added.add(b, "kept");
        let mut pruned = added.clone();
        let mut removed = added.clone();
        removed.remove("x");
        let renamed = pruned.prune_renaming(a, b);
        assert_eq!(renamed.len(), 1);
        // Each side, as an envelope merge does: both cleaned with the renames, then merged.
        for (mut mine, theirs) in [
            (pruned.clone(), removed.clone()),
            (removed.clone(), pruned.clone()),
        ] {
            let mut theirs = theirs;
            mine.pruning_cleanup_renamed(a, &renamed);
            theirs.pruning_cleanup_renamed(a, &renamed);
            mine.merge(&theirs);
            assert_eq!(mine.decoded::<String>().unwrap(), vec!["kept"]);
            assert!(!modified_by(&mine).contains(&a));
        }
        // Without the renames (Pekko's rule) the removal is lost: the check can fail.
        let mut lost = pruned.clone();
        let mut theirs = removed.clone();
        theirs.pruning_cleanup(a);
        lost.merge(&theirs);
        assert!(lost.contains(&e("x")));
    }

    #[test]
    fn decoding_repairs_dots_outside_the_context() {
        let a = node(1);
        let wire = ORSetWire {
            entries: [
                (e("a"), BTreeSet::from([(a, 3)])),
                (e("b"), BTreeSet::new()),
            ]
            .into_iter()
            .collect(),
            context: DotContext::default(),
        };
        let set = ORSet::from(wire);
        assert_eq!(set.len(), 1);
        assert!(set.context.contains(&(a, 3)));
    }
}
