//! [`ORMap`]: the observed-remove map of replicated values.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::dots::{Dot, DotContext};
use super::{Crdt, Element, ReplicaId};

/// A map from [`Element`] keys to replicated values, where an update wins over a concurrent
/// remove of the key (Pekko's `ORMap`).
///
/// Each write of a key (a [`put`](ORMap::put) or [`update`](ORMap::update)) gets a dot and
/// carries the key's whole new value; the key's value is the join of the writes this replica
/// has not seen superseded, usually one. A write supersedes the writes of the key its replica
/// had seen, and a [`remove`](ORMap::remove) takes them away, exactly as an [`ORSet`] add and
/// remove treat dots.
///
/// Unlike Pekko's, the merge is a lawful join (commutative, associative, idempotent) also
/// across removes: values belong to writes, so a removed value cannot come back through
/// some merge orders and not others, and a key removed and written again starts from the
/// written value. The price: a delta carries the key's whole value, not the value's own
/// delta (Pekko's public `updated` does the same), and a key written concurrently on several
/// replicas holds one value per write until one replica writes it again.
///
/// [`ORSet`]: super::ORSet
pub struct ORMap<V> {
    entries: BTreeMap<Element, Entry<V>>,
    context: DotContext,
    /// The join of the deltas of the mutations since the last [`Crdt::take_delta`].
    delta: Option<Box<ORMap<V>>>,
}

/// One key: its writes, and their join when there are several.
#[derive(Clone, Debug)]
struct Entry<V> {
    /// Never empty: an entry without writes is removed.
    writes: BTreeMap<Dot, V>,
    /// The join of `writes` when there are several, `None` when there is one (the value is
    /// that write's), so the common case stores the value once.
    joined: Option<V>,
}

impl<V: Crdt> Entry<V> {
    fn single(dot: Dot, value: V) -> Entry<V> {
        Entry {
            writes: BTreeMap::from([(dot, value)]),
            joined: None,
        }
    }

    fn value(&self) -> Option<&V> {
        self.joined.as_ref().or_else(|| self.writes.values().next())
    }

    /// Recomputes the join after the writes changed.
    fn rejoin(&mut self) {
        self.joined = None;
        if self.writes.len() < 2 {
            return;
        }
        let mut values = self.writes.values();
        if let Some(first) = values.next() {
            let mut joined = first.clone();
            for v in values {
                joined.merge(v);
            }
            self.joined = Some(joined);
        }
    }

    /// The dots, and the value, moved out.
    fn into_parts(self) -> (Vec<Dot>, Option<V>) {
        let dots = self.writes.keys().copied().collect();
        let value = match self.joined {
            Some(joined) => Some(joined),
            None => self.writes.into_values().next(),
        };
        (dots, value)
    }
}

impl<V: Crdt> ORMap<V> {
    /// How deep maps may nest inside a decoded value ([`Data`](super::Data) values can be
    /// maps of maps). Decoding refuses deeper values: each level costs stack to decode,
    /// merge and drop, so a hostile peer could otherwise overflow it.
    pub const MAX_DEPTH: u32 = 32;

    /// Sets `key` to `value`, written by `node` (this replica).
    ///
    /// Replaces the value this replica sees, history included: a counter put over another
    /// starts from the put value, and a set's removes are forgotten, so a concurrent write
    /// elsewhere brings its elements back. Prefer [`update`](ORMap::update) to change a value.
    /// Writes on other replicas this one has not seen are kept and joined with `value`.
    pub fn put(&mut self, node: ReplicaId, key: impl Into<Element>, value: V) {
        let key = key.into();
        let old = self.entries.remove(&key).map(|e| e.into_parts().0);
        self.write(node, key, old.unwrap_or_default(), value);
    }

    /// Changes `key`'s value with `f`, starting from the empty value if the key is absent,
    /// as `node` (this replica). The key is written again even if `f` changes nothing, so
    /// it survives a concurrent remove.
    pub fn update(&mut self, node: ReplicaId, key: impl Into<Element>, f: impl FnOnce(&mut V))
    where
        V: Default,
    {
        self.modify(node, key.into(), |value| {
            let mut value = value.unwrap_or_default();
            f(&mut value);
            value
        });
    }

    /// Removes `key`: the writes of it this replica has seen. A write elsewhere that this
    /// replica has not seen survives the merge.
    pub fn remove(&mut self, key: impl Into<Element>) {
        if let Some(entry) = self.entries.remove(&key.into()) {
            let mut delta = ORMap::default();
            for dot in entry.writes.keys() {
                delta.context.insert(*dot);
            }
            self.record(delta);
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &Element) -> Option<&V> {
        self.entries.get(key).and_then(Entry::value)
    }

    /// True if the map has `key`.
    pub fn contains_key(&self, key: &Element) -> bool {
        self.entries.contains_key(key)
    }

    /// The keys, in byte order.
    pub fn keys(&self) -> impl Iterator<Item = &Element> + '_ {
        self.entries.keys()
    }

    /// The keys and values, in the keys' byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&Element, &V)> + '_ {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value().map(|v| (k, v)))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes `f(current value)` under `key`: [`ORMap::update`] without the `Default`.
    pub(crate) fn modify(&mut self, node: ReplicaId, key: Element, f: impl FnOnce(Option<V>) -> V) {
        let (old, value) = match self.entries.remove(&key) {
            Some(entry) => entry.into_parts(),
            None => (Vec::new(), None),
        };
        let value = f(value);
        self.write(node, key, old, value);
    }

    /// Writes `value` under a new dot of `node`, superseding the writes `old`.
    fn write(&mut self, node: ReplicaId, key: Element, old: Vec<Dot>, mut value: V) {
        // The value's own pending delta is not shipped (the whole value is) and would only
        // grow here.
        let _ = value.take_delta();
        let dot = self.context.next_dot(node);
        self.entries
            .insert(key.clone(), Entry::single(dot, value.clone()));
        // The delta's context holds the superseded dots, so a replica applying it drops
        // their values, as this one did.
        let mut delta = ORMap::default();
        for d in old {
            delta.context.insert(d);
        }
        delta.context.insert(dot);
        delta.entries.insert(key, Entry::single(dot, value));
        self.record(delta);
    }

    fn record(&mut self, delta: ORMap<V>) {
        match &mut self.delta {
            Some(pending) => pending.merge(&delta),
            None => self.delta = Some(Box::new(delta)),
        }
    }
}

impl<V: Crdt> Crdt for ORMap<V> {
    fn merge(&mut self, other: &ORMap<V>) {
        // As the ORSet merge, per write: keep a write both sides hold (joining the two
        // copies, equal unless a peer lied), and a write one side holds that the other has
        // not seen. Both decisions need each side's context from before the merge.
        let (mine, theirs) = (&self.context, &other.context);
        self.entries.retain(|key, entry| {
            let before = entry.writes.len();
            let mut changed = false;
            match other.entries.get(key) {
                Some(o) => {
                    entry
                        .writes
                        .retain(|d, _| o.writes.contains_key(d) || !theirs.contains(d));
                    for (d, v) in &o.writes {
                        if let Some(held) = entry.writes.get_mut(d) {
                            if held != v {
                                held.merge(v);
                                changed = true;
                            }
                        } else if !mine.contains(d) {
                            entry.writes.insert(*d, v.clone());
                            changed = true;
                        }
                    }
                }
                None => entry.writes.retain(|d, _| !theirs.contains(d)),
            }
            if changed || entry.writes.len() != before {
                entry.rejoin();
            }
            !entry.writes.is_empty()
        });
        for (key, o) in &other.entries {
            if self.entries.contains_key(key) {
                continue;
            }
            let writes: BTreeMap<Dot, V> = o
                .writes
                .iter()
                .filter(|(d, _)| !mine.contains(d))
                .map(|(d, v)| (*d, v.clone()))
                .collect();
            if !writes.is_empty() {
                let mut entry = Entry {
                    writes,
                    joined: None,
                };
                entry.rejoin();
                self.entries.insert(key.clone(), entry);
            }
        }
        self.context.merge(&other.context);
    }

    fn take_delta(&mut self) -> Option<ORMap<V>> {
        self.delta.take().map(|d| *d)
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>) {
        self.context.nodes(out);
        for entry in self.entries.values() {
            for (dot, value) in &entry.writes {
                out.insert(dot.0);
                value.modified_by(out);
            }
        }
    }

    /// Every key written by `removed`, or whose value holds a contribution of it, gets one
    /// write of `into` instead of its writes, holding their join pruned; `removed`'s dots
    /// leave the context. Joining first keeps the value: pruning each write alone would
    /// not (two counter writes each moving `removed`'s count into `into`'s would then be
    /// joined by taking the larger, losing one).
    fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
        self.context.remove_node(removed);
        for entry in self.entries.values_mut() {
            let touched = entry.writes.iter().any(|(dot, value)| {
                dot.0 == removed || super::modified_by(value).contains(&removed)
            });
            if !touched {
                continue;
            }
            let Some(mut value) = entry.value().cloned() else {
                continue;
            };
            value.prune(removed, into);
            *entry = Entry::single(self.context.next_dot(into), value);
        }
    }

    fn pruning_cleanup(&mut self, removed: ReplicaId) {
        self.context.remove_node(removed);
        self.entries.retain(|_, entry| {
            entry.writes.retain(|d, _| d.0 != removed);
            for value in entry.writes.values_mut() {
                value.pruning_cleanup(removed);
            }
            entry.rejoin();
            !entry.writes.is_empty()
        });
    }

    /// Keys, writes, the sizes of the written values, and the context's entries.
    fn size(&self) -> usize {
        let entries: usize = self
            .entries
            .values()
            .map(|e| 1 + e.writes.values().map(|v| 1 + v.size()).sum::<usize>())
            .sum();
        entries + self.context.size()
    }
}

// Not derived: no `V: Default` bound (a map of `Data` is empty without one).
impl<V> Default for ORMap<V> {
    fn default() -> ORMap<V> {
        ORMap {
            entries: BTreeMap::new(),
            context: DotContext::default(),
            delta: None,
        }
    }
}

impl<V: Clone> Clone for ORMap<V> {
    fn clone(&self) -> ORMap<V> {
        ORMap {
            entries: self.entries.clone(),
            context: self.context.clone(),
            delta: self.delta.clone(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for ORMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ORMap")
            .field("entries", &self.entries)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

// The pending delta and the cached joins are local bookkeeping, not part of the value.
impl<V: PartialEq> PartialEq for ORMap<V> {
    fn eq(&self, other: &ORMap<V>) -> bool {
        self.context == other.context
            && self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((k, a), (l, b))| k == l && a.writes == b.writes)
    }
}

// On the wire: each key's writes, and the context. Joins are recomputed on decode.
impl<V: Serialize> Serialize for ORMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Writes<'a, V>(&'a BTreeMap<Element, Entry<V>>);
        impl<V: Serialize> Serialize for Writes<'_, V> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, e)| (k, &e.writes)))
            }
        }
        let mut st = s.serialize_struct("ORMap", 2)?;
        st.serialize_field("entries", &Writes(&self.entries))?;
        st.serialize_field("context", &self.context)?;
        st.end()
    }
}

#[derive(Deserialize)]
#[serde(rename = "ORMap")]
struct ORMapWire<V> {
    entries: BTreeMap<Element, BTreeMap<Dot, V>>,
    context: DotContext,
}

impl<'de, V: Crdt> Deserialize<'de> for ORMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _depth = Nesting::enter().ok_or_else(|| {
            D::Error::custom(format_args!(
                "maps nested more than {} deep",
                ORMap::<V>::MAX_DEPTH
            ))
        })?;
        let wire = ORMapWire::<V>::deserialize(d)?;
        // A peer's map may hold a key without writes, or dots its context has not seen;
        // both are repaired so the merge rules hold.
        let mut context = wire.context;
        let mut entries = BTreeMap::new();
        for (key, writes) in wire.entries {
            if writes.is_empty() {
                continue;
            }
            for dot in writes.keys() {
                context.insert(*dot);
            }
            let mut entry = Entry {
                writes,
                joined: None,
            };
            entry.rejoin();
            entries.insert(key, entry);
        }
        Ok(ORMap {
            entries,
            context,
            delta: None,
        })
    }
}

thread_local! {
    /// How many maps the decoder on this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// One level of map nesting being decoded; leaving it (also on error) steps back out.
struct Nesting;

impl Nesting {
    fn enter() -> Option<Nesting> {
        DEPTH.with(|depth| {
            if depth.get() >= ORMap::<super::Flag>::MAX_DEPTH {
                return None;
            }
            depth.set(depth.get() + 1);
            Some(Nesting)
        })
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{modified_by, GCounter, ORSet};
    use std::net::SocketAddr;

    fn node(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn k(s: &str) -> Element {
        Element::from(s)
    }

    fn merged<V: Crdt>(x: &ORMap<V>, y: &ORMap<V>) -> ORMap<V> {
        let mut m = x.clone();
        m.merge(y);
        m
    }

    #[test]
    fn concurrent_updates_merge_their_values() {
        let (a, b) = (node(1), node(2));
        let mut x = ORMap::<GCounter>::default();
        x.update(a, "k", |c| c.increment(a, 1));
        let mut y = x.clone();
        x.update(a, "k", |c| c.increment(a, 2));
        y.update(b, "k", |c| c.increment(b, 5));
        let m = merged(&x, &y);
        assert_eq!(m, merged(&y, &x));
        assert_eq!(m.get(&k("k")).map(GCounter::value), Some(8));
        // A later update supersedes both writes.
        let mut later = m.clone();
        later.update(a, "k", |c| c.increment(a, 1));
        assert_eq!(later.entries[&k("k")].writes.len(), 1);
        assert_eq!(
            merged(&m, &later).get(&k("k")).map(GCounter::value),
            Some(9)
        );
    }

    #[test]
    fn an_update_wins_over_a_concurrent_remove() {
        let (a, b) = (node(1), node(2));
        let mut x = ORMap::<ORSet>::default();
        x.update(a, "k", |s| s.add(a, "1"));
        let mut y = x.clone();
        y.remove("k");
        x.update(a, "k", |s| s.add(a, "2"));
        let m = merged(&y, &x);
        assert_eq!(m.get(&k("k")).map(ORSet::len), Some(2));
        // A remove that saw the update takes the key away everywhere.
        let mut z = m.clone();
        z.remove("k");
        assert!(merged(&m, &z).is_empty() && merged(&z, &x).is_empty());
        let _ = b;
    }

    #[test]
    fn a_removed_value_does_not_come_back() {
        // Pekko's ORMap shows the removed increment again after some merge orders: a has
        // it, b removed the key after seeing it, c wrote the key concurrently.
        let (a, b, c) = (node(1), node(2), node(3));
        let mut ra = ORMap::<GCounter>::default();
        ra.update(a, "k", |g| g.increment(a, 1));
        let mut rb = ra.clone();
        rb.remove("k");
        let mut rc = ORMap::<GCounter>::default();
        rc.update(c, "k", |g| g.increment(c, 1));
        let left = merged(&merged(&ra, &rb), &rc);
        let right = merged(&ra, &merged(&rb, &rc));
        assert_eq!(left, right);
        assert_eq!(left.get(&k("k")).map(GCounter::value), Some(1));
        let _ = b;
    }

    #[test]
    fn deltas_replay_mutations() {
        let a = node(1);
        let mut x = ORMap::<GCounter>::default();
        x.update(a, "k", |c| c.increment(a, 1));
        x.update(a, "gone", |c| c.increment(a, 1));
        x.take_delta();
        let mut y = x.clone();
        y.update(a, "k", |c| c.increment(a, 1));
        y.remove("gone");
        y.put(a, "new", GCounter::default());
        let d = y.take_delta().unwrap();
        assert_eq!(merged(&x, &d), y);
        assert_eq!(merged(&y, &d), y);
    }

    #[test]
    fn pruning_keeps_the_values() {
        let (a, b, c) = (node(1), node(2), node(3));
        let mut x = ORMap::<GCounter>::default();
        x.update(a, "k", |g| g.increment(a, 5));
        let mut y = x.clone();
        x.update(a, "k", |g| g.increment(a, 1));
        y.update(b, "k", |g| g.increment(b, 3));
        y.update(b, "only-b", |g| g.increment(c, 2));
        x.merge(&y);
        let before: Vec<(Element, u128)> = x.iter().map(|(k, v)| (k.clone(), v.value())).collect();
        x.prune(a, c);
        let after: Vec<(Element, u128)> = x.iter().map(|(k, v)| (k.clone(), v.value())).collect();
        assert_eq!(before, after);
        assert!(!modified_by(&x).contains(&a));
        x.pruning_cleanup(a);
        assert_eq!(
            x.iter()
                .map(|(k, v)| (k.clone(), v.value()))
                .collect::<Vec<_>>(),
            after
        );
    }

    #[test]
    fn serde_round_trips_and_limits_nesting() {
        let a = node(1);
        let mut x = ORMap::<GCounter>::default();
        x.update(a, "k", |g| g.increment(a, 5));
        let bytes = postcard::to_allocvec(&x).unwrap();
        assert_eq!(postcard::from_bytes::<ORMap<GCounter>>(&bytes).unwrap(), x);

        type Deep = ORMap<ORMap<ORMap<GCounter>>>;
        let mut deep = Deep::default();
        deep.update(a, "1", |m| {
            m.update(a, "2", |m| m.update(a, "3", |g| g.increment(a, 1)))
        });
        let bytes = postcard::to_allocvec(&deep).unwrap();
        assert_eq!(postcard::from_bytes::<Deep>(&bytes).unwrap(), deep);
        DEPTH.with(|d| d.set(ORMap::<GCounter>::MAX_DEPTH - 2));
        assert!(postcard::from_bytes::<Deep>(&bytes).is_err());
        DEPTH.with(|d| d.set(0));
        assert_eq!(postcard::from_bytes::<Deep>(&bytes).unwrap(), deep);
    }
}
