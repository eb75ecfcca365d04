//! Typed keys: a key names one replicated entry and fixes its data type.

use std::fmt;
use std::marker::PhantomData;

use crate::crdt::ReplicatedData;

/// Longest key id, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The key of one replicated entry, typed by the entry's data type `D`: a `Key<ORSet>` can
/// only read and update an [`ORSet`](crate::crdt::ORSet). An entry that holds another type
/// (written under the same id as another type, on this node or another) is refused with
/// [`WrongKind`](crate::crdt::WrongKind), never reinterpreted.
pub struct Key<D> {
    id: String,
    _data: PhantomData<fn() -> D>,
}

impl<D: ReplicatedData> Key<D> {
    /// The key `id` (1 to [`MAX_KEY_LEN`] bytes, not ending in `*`; checked when it is
    /// used).
    pub fn new(id: impl Into<String>) -> Self {
        Key {
            id: id.into(),
            _data: PhantomData,
        }
    }
}

impl<D> Key<D> {
    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<D> Clone for Key<D> {
    fn clone(&self) -> Self {
        Key {
            id: self.id.clone(),
            _data: PhantomData,
        }
    }
}

impl<D> fmt::Debug for Key<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.id)
    }
}

impl<D> PartialEq for Key<D> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<D> Eq for Key<D> {}

/// True if `id` is a usable key id: 1 to [`MAX_KEY_LEN`] bytes, not ending in `*`, which
/// marks a prefix where keys are matched (subscriptions, `durable-keys`).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_LEN && !id.ends_with('*')
}
