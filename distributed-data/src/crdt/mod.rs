//! The replicated data types: conflict-free replicated data types (CRDTs) whose merge is
//! commutative, associative and idempotent, so replicas updated independently converge once
//! each has merged the others' states, in any order and any number of times.
//!
//! The collections and counters are *delta-state* CRDTs: a mutation records a delta that is
//! itself a value of the same type, smaller than the whole, and merging the delta into any
//! replica has the effect of the mutation. The replicator ships deltas
//! ([`Crdt::take_delta`]) and falls back to whole values when a replica missed some. Deltas
//! need no causal delivery: a delta merged twice, late or out of order is harmless.
//! [`Flag`] and [`LWWRegister`] are small and always travel whole.
//!
//! The maps differ from Pekko's in one rule: each write of a key carries the key's whole
//! value under its own dot, and a key's value is the join of the writes not yet superseded.
//! Pekko's maps merge values whenever the key survives, which is not associative (an
//! increment removed on one replica comes back in one merge order only; Pekko documents
//! it); fjell's law tests hold for every type.
//!
//! Types that record which node did what ([`GCounter`], [`ORSet`], the maps) implement
//! pruning: once a member is removed, its contribution is moved to a live node
//! ([`Crdt::prune`]) so the state does not grow with every node that ever wrote.
//!
//! Elements, map keys and register values are [`Element`]s: bytes, with typed encoding and
//! decoding (postcard), so the replicator merges any value without knowing its Rust type.

/// The common part of a map that is an [`ORMap`] of one value type underneath
/// (`LWWMap`, `PNCounterMap`, `ORMultiMap`): its size, the map itself, and [`Crdt`] by
/// forwarding, so the three cannot drift apart.
macro_rules! ormap_newtype {
    ($name:ident, $value:ty) => {
        impl $name {
            /// The number of keys.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True if the map has no keys.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// The underlying map.
            pub fn as_map(&self) -> &ORMap<$value> {
                &self.0
            }
        }

        impl Crdt for $name {
            fn merge(&mut self, other: &$name) {
                self.0.merge(&other.0);
            }

            fn take_delta(&mut self) -> Option<$name> {
                self.0.take_delta().map($name)
            }

            const HAS_DELTAS: bool = true;

            fn modified_by(&self, out: &mut std::collections::BTreeSet<ReplicaId>) {
                self.0.modified_by(out);
            }

            fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
                self.0.prune(removed, into);
            }

            fn pruning_cleanup(&mut self, removed: ReplicaId) {
                self.0.pruning_cleanup(removed);
            }

            fn size(&self) -> usize {
                self.0.size()
            }
        }
    };
}

mod data;
mod dots;
mod element;
mod flag;
mod gcounter;
mod gset;
mod lww_map;
mod lww_register;
mod ormap;
mod ormultimap;
mod orset;
mod pncounter;
mod pncounter_map;

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use data::{Data, Kind, ReplicatedData, WrongKind};
pub use dots::Dot;
pub use element::{Element, ElementError};
pub use flag::Flag;
pub use gcounter::GCounter;
pub use gset::GSet;
pub use lww_map::LWWMap;
pub use lww_register::LWWRegister;
pub use ormap::ORMap;
pub use ormultimap::ORMultiMap;
pub use orset::ORSet;
pub use pncounter::PNCounter;
pub use pncounter_map::PNCounterMap;

/// The identity a replica writes under: a node's address and incarnation. A restarted node
/// writes under a new identity, so its counters never collide with its previous life's.
pub type ReplicaId = fjell_core::UniqueAddress;

/// A conflict-free replicated data type (see the [module docs](self)).
///
/// Not `Default`: [`Data`], the value of any kind, has no natural empty value. The concrete
/// types are `Default` (the empty value), which [`ReplicatedData`] requires.
pub trait Crdt:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Joins `other` into `self`. Commutative, associative and idempotent, so replicas that
    /// merged the same values, in any order and any number of times, are equal.
    fn merge(&mut self, other: &Self);

    /// The delta of the mutations since the last call, and forgets it: `None` when nothing
    /// changed or the type has no deltas ([`Crdt::HAS_DELTAS`]). Merging the delta into a
    /// replica that had this value's state before those mutations gives this value's state.
    fn take_delta(&mut self) -> Option<Self>;

    /// True if mutations record deltas; a type without them is always shipped whole.
    const HAS_DELTAS: bool;

    /// Adds every replica this value holds a contribution of to `out`.
    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>);

    /// Moves `removed`'s contribution to `into` (a live replica): the value reads the same,
    /// and `removed` no longer appears in it.
    fn prune(&mut self, removed: ReplicaId, into: ReplicaId);

    /// Drops whatever `removed` contributed, after its contribution was pruned elsewhere: a
    /// late copy of its old contribution must not count twice.
    fn pruning_cleanup(&mut self, removed: ReplicaId);

    /// [`Crdt::prune`], returning the dots it gave new names, as `(old, new)`: a type whose
    /// elements are known by their dots (an [`ORSet`]) moves `removed`'s to dots of `into`,
    /// and a replica that removed an element by its old dot before it saw the pruning must
    /// still remove it (see [`Crdt::pruning_cleanup_renamed`]).
    fn prune_renaming(&mut self, removed: ReplicaId, into: ReplicaId) -> Vec<(Dot, Dot)> {
        self.prune(removed, into);
        Vec::new()
    }

    /// [`Crdt::pruning_cleanup`], first carrying what the value has seen of the `renamed`
    /// dots over to their new names: a removal of an element by its old dot then covers
    /// the element under its new one.
    fn pruning_cleanup_renamed(&mut self, removed: ReplicaId, renamed: &[(Dot, Dot)]) {
        let _ = renamed;
        self.pruning_cleanup(removed);
    }

    /// The number of entries in the value's collections (elements, dots, counters, keys),
    /// what size limits are checked against.
    fn size(&self) -> usize;
}

/// Collects [`Crdt::modified_by`] into a set.
pub fn modified_by<T: Crdt>(value: &T) -> BTreeSet<ReplicaId> {
    let mut out = BTreeSet::new();
    value.modified_by(&mut out);
    out
}
