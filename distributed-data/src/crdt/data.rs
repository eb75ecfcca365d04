//! [`Data`]: a value of any kind, for the replicator, which stores and merges values
//! without knowing their Rust types; [`ReplicatedData`] converts between the two.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::dots::Dot;
use super::{
    Crdt, Element, Flag, GCounter, GSet, LWWMap, LWWRegister, ORMap, ORMultiMap, ORSet, PNCounter,
    PNCounterMap, ReplicaId,
};

/// The kind of a replicated value: which type it is.
///
/// Ordered as listed; [`Data::merge`](Crdt::merge) of two kinds keeps the greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// [`GCounter`].
    GCounter,
    /// [`PNCounter`].
    PNCounter,
    /// [`GSet`].
    GSet,
    /// [`ORSet`].
    ORSet,
    /// [`LWWRegister`].
    LWWRegister,
    /// [`Flag`].
    Flag,
    /// [`ORMap`] of [`Data`].
    ORMap,
    /// [`LWWMap`].
    LWWMap,
    /// [`PNCounterMap`].
    PNCounterMap,
    /// [`ORMultiMap`].
    ORMultiMap,
}

impl Kind {
    /// True if values of this kind record deltas ([`Crdt::HAS_DELTAS`] of the type).
    pub fn has_deltas(self) -> bool {
        !matches!(self, Kind::LWWRegister | Kind::Flag)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A merge of two values of different kinds: a key's type must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected a {expected}, found a {found}")]
pub struct WrongKind {
    /// The kind the caller asked for, or the kind already stored.
    pub expected: Kind,
    /// The kind found.
    pub found: Kind,
}

/// A replicated value of any [`Kind`].
///
/// The general [`ORMap`] holds `Data` values, so its values may be of different kinds
/// (and maps nest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Data {
    /// A [`GCounter`].
    GCounter(GCounter),
    /// A [`PNCounter`].
    PNCounter(PNCounter),
    /// A [`GSet`].
    GSet(GSet),
    /// An [`ORSet`].
    ORSet(ORSet),
    /// An [`LWWRegister`].
    LWWRegister(LWWRegister),
    /// A [`Flag`].
    Flag(Flag),
    /// An [`ORMap`] of values of any kind.
    ORMap(ORMap<Data>),
    /// An [`LWWMap`].
    LWWMap(LWWMap),
    /// A [`PNCounterMap`].
    PNCounterMap(PNCounterMap),
    /// An [`ORMultiMap`].
    ORMultiMap(ORMultiMap),
}

/// Runs `$f` on the value inside any variant.
macro_rules! each {
    ($data:expr, $v:ident => $f:expr) => {
        match $data {
            Data::GCounter($v) => $f,
            Data::PNCounter($v) => $f,
            Data::GSet($v) => $f,
            Data::ORSet($v) => $f,
            Data::LWWRegister($v) => $f,
            Data::Flag($v) => $f,
            Data::ORMap($v) => $f,
            Data::LWWMap($v) => $f,
            Data::PNCounterMap($v) => $f,
            Data::ORMultiMap($v) => $f,
        }
    };
}

impl Data {
    /// The kind of the value.
    pub fn kind(&self) -> Kind {
        match self {
            Data::GCounter(_) => Kind::GCounter,
            Data::PNCounter(_) => Kind::PNCounter,
            Data::GSet(_) => Kind::GSet,
            Data::ORSet(_) => Kind::ORSet,
            Data::LWWRegister(_) => Kind::LWWRegister,
            Data::Flag(_) => Kind::Flag,
            Data::ORMap(_) => Kind::ORMap,
            Data::LWWMap(_) => Kind::LWWMap,
            Data::PNCounterMap(_) => Kind::PNCounterMap,
            Data::ORMultiMap(_) => Kind::ORMultiMap,
        }
    }

    /// The empty value of `kind`.
    pub fn empty(kind: Kind) -> Data {
        match kind {
            Kind::GCounter => GCounter::default().into_data(),
            Kind::PNCounter => PNCounter::default().into_data(),
            Kind::GSet => GSet::default().into_data(),
            Kind::ORSet => ORSet::default().into_data(),
            Kind::LWWRegister => LWWRegister::default().into_data(),
            Kind::Flag => Flag::default().into_data(),
            Kind::ORMap => ORMap::<Data>::default().into_data(),
            Kind::LWWMap => LWWMap::default().into_data(),
            Kind::PNCounterMap => PNCounterMap::default().into_data(),
            Kind::ORMultiMap => ORMultiMap::default().into_data(),
        }
    }

    /// True if the value records deltas (see [`Crdt::take_delta`] for `Data`).
    pub fn has_deltas(&self) -> bool {
        self.kind().has_deltas()
    }

    /// Merges `other` if it is of the same kind; a value of another kind is refused and
    /// `self` is unchanged. What the replicator uses: a key's kind never changes, so a value
    /// of another kind is a bug or a hostile peer.
    pub fn try_merge(&mut self, other: &Data) -> Result<(), WrongKind> {
        if self.kind() != other.kind() {
            return Err(WrongKind {
                expected: self.kind(),
                found: other.kind(),
            });
        }
        self.merge(other);
        Ok(())
    }
}

impl Crdt for Data {
    /// Merges values of the same kind; of two kinds, keeps the value of the greater
    /// [`Kind`]. That keeps the merge lawful for any input (a lexicographic join), but
    /// throws a value away: check kinds first, or use [`Data::try_merge`].
    fn merge(&mut self, other: &Data) {
        match (&mut *self, other) {
            (Data::GCounter(a), Data::GCounter(b)) => a.merge(b),
            (Data::PNCounter(a), Data::PNCounter(b)) => a.merge(b),
            (Data::GSet(a), Data::GSet(b)) => a.merge(b),
            (Data::ORSet(a), Data::ORSet(b)) => a.merge(b),
            (Data::LWWRegister(a), Data::LWWRegister(b)) => a.merge(b),
            (Data::Flag(a), Data::Flag(b)) => a.merge(b),
            (Data::ORMap(a), Data::ORMap(b)) => a.merge(b),
            (Data::LWWMap(a), Data::LWWMap(b)) => a.merge(b),
            (Data::PNCounterMap(a), Data::PNCounterMap(b)) => a.merge(b),
            (Data::ORMultiMap(a), Data::ORMultiMap(b)) => a.merge(b),
            _ => {
                if other.kind() > self.kind() {
                    *self = other.clone();
                }
            }
        }
    }

    /// The value's delta; for the kinds without deltas ([`Kind::has_deltas`]) the whole
    /// value, always (a whole value is a correct delta, and those are small), so `None`
    /// always means "nothing changed".
    fn take_delta(&mut self) -> Option<Data> {
        match self {
            Data::LWWRegister(_) | Data::Flag(_) => Some(self.clone()),
            Data::GCounter(v) => v.take_delta().map(Data::GCounter),
            Data::PNCounter(v) => v.take_delta().map(Data::PNCounter),
            Data::GSet(v) => v.take_delta().map(Data::GSet),
            Data::ORSet(v) => v.take_delta().map(Data::ORSet),
            Data::ORMap(v) => v.take_delta().map(Data::ORMap),
            Data::LWWMap(v) => v.take_delta().map(Data::LWWMap),
            Data::PNCounterMap(v) => v.take_delta().map(Data::PNCounterMap),
            Data::ORMultiMap(v) => v.take_delta().map(Data::ORMultiMap),
        }
    }

    const HAS_DELTAS: bool = true;

    fn modified_by(&self, out: &mut BTreeSet<ReplicaId>) {
        each!(self, v => v.modified_by(out))
    }

    fn prune(&mut self, removed: ReplicaId, into: ReplicaId) {
        each!(self, v => v.prune(removed, into))
    }

    fn pruning_cleanup(&mut self, removed: ReplicaId) {
        each!(self, v => v.pruning_cleanup(removed))
    }

    fn prune_renaming(&mut self, removed: ReplicaId, into: ReplicaId) -> Vec<(Dot, Dot)> {
        each!(self, v => v.prune_renaming(removed, into))
    }

    fn pruning_cleanup_renamed(&mut self, removed: ReplicaId, renamed: &[(Dot, Dot)]) {
        each!(self, v => v.pruning_cleanup_renamed(removed, renamed))
    }

    fn size(&self) -> usize {
        each!(self, v => v.size())
    }
}

/// A concrete replicated type: one [`Kind`] of [`Data`], with its empty value as `Default`.
pub trait ReplicatedData: Crdt + Default {
    /// The kind of this type's values.
    const KIND: Kind;

    /// Wraps the value.
    fn into_data(self) -> Data;

    /// Unwraps a value of this kind.
    fn from_data(data: Data) -> Result<Self, WrongKind>;

    /// Borrows a value of this kind.
    fn from_data_ref(data: &Data) -> Result<&Self, WrongKind>;

    /// Borrows a value of this kind mutably.
    fn from_data_mut(data: &mut Data) -> Result<&mut Self, WrongKind>;
}

macro_rules! replicated_data {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl ReplicatedData for $ty {
            const KIND: Kind = Kind::$variant;

            fn into_data(self) -> Data {
                Data::$variant(self)
            }

            fn from_data(data: Data) -> Result<Self, WrongKind> {
                match data {
                    Data::$variant(v) => Ok(v),
                    other => Err(wrong::<Self>(&other)),
                }
            }

            fn from_data_ref(data: &Data) -> Result<&Self, WrongKind> {
                match data {
                    Data::$variant(v) => Ok(v),
                    other => Err(wrong::<Self>(other)),
                }
            }

            fn from_data_mut(data: &mut Data) -> Result<&mut Self, WrongKind> {
                match data {
                    Data::$variant(v) => Ok(v),
                    other => Err(wrong::<Self>(other)),
                }
            }
        }

        impl From<$ty> for Data {
            fn from(v: $ty) -> Data {
                Data::$variant(v)
            }
        }
    )*};
}

replicated_data!(
    GCounter => GCounter,
    PNCounter => PNCounter,
    GSet => GSet,
    ORSet => ORSet,
    LWWRegister => LWWRegister,
    Flag => Flag,
    ORMap<Data> => ORMap,
    LWWMap => LWWMap,
    PNCounterMap => PNCounterMap,
    ORMultiMap => ORMultiMap,
);

fn wrong<T: ReplicatedData>(found: &Data) -> WrongKind {
    WrongKind {
        expected: T::KIND,
        found: found.kind(),
    }
}

/// Typed access to the values of a map of [`Data`].
impl ORMap<Data> {
    /// Changes `key`'s value, a `V`, with `f`, starting from `V`'s empty value if the key is
    /// absent, as `node` (this replica). Refuses, changing nothing, if the key holds another
    /// kind.
    pub fn update_as<V: ReplicatedData>(
        &mut self,
        node: ReplicaId,
        key: impl Into<Element>,
        f: impl FnOnce(&mut V),
    ) -> Result<(), WrongKind> {
        let key = key.into();
        if let Some(current) = self.get(&key) {
            V::from_data_ref(current)?;
        }
        self.modify(node, key, |current| {
            // The kind was checked above; `unwrap_or_default` only covers an absent key.
            let mut value = current
                .and_then(|d| V::from_data(d).ok())
                .unwrap_or_default();
            f(&mut value);
            value.into_data()
        });
        Ok(())
    }

    /// `key`'s value as a `V`: `None` if the key is absent, an error if it holds another
    /// kind.
    pub fn get_as<V: ReplicatedData>(&self, key: &Element) -> Option<Result<&V, WrongKind>> {
        self.get(key).map(V::from_data_ref)
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
    fn kinds_must_match() {
        let a = node(1);
        let mut counter = Data::empty(Kind::GCounter);
        let flag = Data::empty(Kind::Flag);
        let err = counter.try_merge(&flag).unwrap_err();
        assert_eq!(err.to_string(), "expected a GCounter, found a Flag");
        assert_eq!(counter.kind(), Kind::GCounter);
        // The plain merge keeps the greater kind, from either side.
        let mut f = flag.clone();
        f.merge(&counter);
        counter.merge(&flag);
        assert_eq!((f.kind(), counter.kind()), (Kind::Flag, Kind::Flag));
        let _ = a;
    }

    #[test]
    fn typed_access_to_a_map_of_data() {
        let a = node(1);
        let mut m = ORMap::<Data>::default();
        m.update_as::<GCounter>(a, "c", |c| c.increment(a, 2))
            .unwrap();
        m.update_as::<ORMap<Data>>(a, "m", |inner| {
            inner.update_as::<Flag>(a, "f", Flag::switch_on).unwrap();
        })
        .unwrap();
        let c = Element::from("c");
        assert_eq!(m.get_as::<GCounter>(&c).unwrap().unwrap().value(), 2);
        assert_eq!(
            m.update_as::<Flag>(a, "c", Flag::switch_on),
            Err(WrongKind {
                expected: Kind::Flag,
                found: Kind::GCounter
            })
        );
        assert!(m.get_as::<Flag>(&c).unwrap().is_err());
        let inner = m
            .get_as::<ORMap<Data>>(&Element::from("m"))
            .unwrap()
            .unwrap();
        assert!(inner
            .get_as::<Flag>(&Element::from("f"))
            .unwrap()
            .unwrap()
            .enabled());
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<ORMap<Data>>(&bytes).unwrap(), m);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let a = node(1);
        let mut value = Data::empty(Kind::Flag);
        for _ in 0..ORMap::<Data>::MAX_DEPTH + 1 {
            let mut m = ORMap::<Data>::default();
            m.put(a, "k", value);
            value = m.into_data();
        }
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert!(postcard::from_bytes::<Data>(&bytes).is_err());
    }
}
