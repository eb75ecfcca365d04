//! One replicated entry as replicas exchange and store it: the value (or the tombstone of a
//! deleted key) and the pruning markers of removed members (Pekko's `DataEnvelope`).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crdt::{Crdt, Data, Dot, ReplicaId, WrongKind};

/// An entry's value: data, or the tombstone of a deleted key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// The replicated data.
    Data(Data),
    /// The key was deleted. A tombstone absorbs every later write: a deleted key cannot be
    /// used again (as in Pekko), since a replica that missed the delete would bring it back.
    Deleted,
}

/// Where pruning of one removed member stands in one entry (Pekko's `PruningState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pruning {
    /// `owner` will move the removed member's contribution to itself once every replica
    /// in `seen` has this marker: that is, once no replica can still send old data without
    /// having seen that pruning is coming.
    Initialized {
        /// The replica that prunes.
        owner: ReplicaId,
        /// Replicas that have merged this marker.
        seen: Vec<ReplicaId>,
        /// Raised each time a new owner takes over a marker whose owner is gone; the
        /// higher round wins, so a dead owner's marker cannot keep coming back.
        round: u32,
    },
    /// Pruned. Data from the removed member is stripped on every merge until
    /// `obsolete_at` (milliseconds on the replicas' clock), when the marker is dropped.
    Performed {
        /// When the marker may be forgotten.
        obsolete_at: u64,
        /// The dots the pruning gave new names, `(old, new)`, ordered by the old: what a
        /// replica had seen of an old dot it has seen of the new one (see
        /// [`Crdt::pruning_cleanup_renamed`]).
        renamed: Vec<(Dot, Dot)>,
    },
}

impl Pruning {
    /// Joins two markers for the same removed member: performed wins (the later expiry),
    /// then the higher round, then the lower owner; the same owner's `seen` sets are
    /// united. (Pekko has no round: a marker of a gone owner with a low address wins every
    /// merge and pruning stalls; the simulation found it.)
    fn merge(&mut self, other: &Pruning) {
        use Pruning::*;
        match (&mut *self, other) {
            (
                Performed {
                    obsolete_at: a,
                    renamed,
                },
                Performed {
                    obsolete_at: b,
                    renamed: theirs,
                },
            ) => {
                *a = (*a).max(*b);
                // One owner performs a member's pruning, so the lists agree; should two have
                // (an owner gone while its pruning spread), the union keeps both names of
                // a dot, and the merge a join.
                if renamed != theirs {
                    renamed.extend(theirs.iter().copied());
                    renamed.sort_unstable();
                    renamed.dedup();
                }
            }
            (Performed { .. }, Initialized { .. }) => {}
            (Initialized { .. }, Performed { .. }) => *self = other.clone(),
            (
                Initialized { owner, seen, round },
                Initialized {
                    owner: o,
                    seen: other_seen,
                    round: r,
                },
            ) => {
                if (Reverse(*r), o) < (Reverse(*round), owner) {
                    *self = other.clone();
                } else if o == owner && r == round {
                    for s in other_seen {
                        if let Err(at) = seen.binary_search(s) {
                            seen.insert(at, *s);
                        }
                    }
                }
            }
        }
    }
}

/// One entry: its value and its pruning markers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The value.
    pub value: Value,
    /// Pruning markers, by removed member.
    pub pruning: BTreeMap<ReplicaId, Pruning>,
}

impl Envelope {
    /// An entry holding `data`, with no markers.
    pub fn new(data: Data) -> Envelope {
        Envelope {
            value: Value::Data(data),
            pruning: BTreeMap::new(),
        }
    }

    /// A deleted entry.
    pub fn deleted() -> Envelope {
        Envelope {
            value: Value::Deleted,
            pruning: BTreeMap::new(),
        }
    }

    /// The data, unless the key was deleted.
    pub fn data(&self) -> Option<&Data> {
        match &self.value {
            Value::Data(d) => Some(d),
            Value::Deleted => None,
        }
    }

    /// True if the key was deleted.
    pub fn is_deleted(&self) -> bool {
        matches!(self.value, Value::Deleted)
    }

    /// Merges `other` in (Pekko's order): the markers first, then every pruned member's
    /// contribution stripped from both sides, then the values. A value of another kind is
    /// refused and leaves `self` unchanged.
    pub fn merge(&mut self, other: &Envelope) -> Result<(), WrongKind> {
        if let (Value::Data(mine), Value::Data(theirs)) = (&self.value, &other.value) {
            if mine.kind() != theirs.kind() {
                return Err(WrongKind {
                    expected: mine.kind(),
                    found: theirs.kind(),
                });
            }
        }
        for (removed, marker) in &other.pruning {
            match self.pruning.get_mut(removed) {
                Some(mine) => mine.merge(marker),
                None => {
                    self.pruning.insert(*removed, marker.clone());
                }
            }
        }
        let performed: Vec<(ReplicaId, &[(Dot, Dot)])> = self
            .pruning
            .iter()
            .filter_map(|(r, p)| match p {
                Pruning::Performed { renamed, .. } => Some((*r, renamed.as_slice())),
                Pruning::Initialized { .. } => None,
            })
            .collect();
        match (&mut self.value, &other.value) {
            (Value::Deleted, _) => {}
            (mine @ Value::Data(_), Value::Deleted) => *mine = Value::Deleted,
            (Value::Data(mine), Value::Data(theirs)) => {
                for (removed, renamed) in &performed {
                    mine.pruning_cleanup_renamed(*removed, renamed);
                }
                if performed.is_empty() {
                    mine.try_merge(theirs)?;
                } else {
                    let mut theirs = theirs.clone();
                    for (removed, renamed) in &performed {
                        theirs.pruning_cleanup_renamed(*removed, renamed);
                    }
                    mine.try_merge(&theirs)?;
                }
            }
        }
        Ok(())
    }

    /// Adds `me` to the `seen` of every marker being initialized; true if one changed.
    pub(crate) fn mark_seen(&mut self, me: ReplicaId) -> bool {
        let mut changed = false;
        for marker in self.pruning.values_mut() {
            if let Pruning::Initialized { seen, .. } = marker {
                if let Err(at) = seen.binary_search(&me) {
                    seen.insert(at, me);
                    changed = true;
                }
            }
        }
        changed
    }

    /// A 64-bit digest of the entry, equal on every replica holding the same entry: the
    /// serialization is canonical (ordered maps, compacted contexts). FNV-1a, which is
    /// stable across builds and platforms, unlike `std`'s hasher.
    pub fn digest(&self) -> u64 {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        fnv1a(&bytes)
    }

    /// Entries counted against the size limits (the value's, plus the markers').
    pub(crate) fn size(&self) -> usize {
        let markers: usize = self
            .pruning
            .values()
            .map(|p| match p {
                Pruning::Initialized { seen, .. } => 1 + seen.len(),
                Pruning::Performed { renamed, .. } => 1 + renamed.len(),
            })
            .sum();
        markers
            + match &self.value {
                Value::Data(d) => d.size(),
                Value::Deleted => 0,
            }
    }
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn id(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    #[test]
    fn markers_merge_performed_first_then_the_lower_owner() {
        let init = |owner, seen: Vec<ReplicaId>| Pruning::Initialized {
            owner,
            seen,
            round: 0,
        };
        let mut a = init(id(2), vec![id(2)]);
        a.merge(&init(id(1), vec![id(1)]));
        assert_eq!(a, init(id(1), vec![id(1)]));
        a.merge(&init(id(1), vec![id(3)]));
        assert_eq!(a, init(id(1), vec![id(1), id(3)]));
        let performed = Pruning::Performed {
            obsolete_at: 5,
            renamed: Vec::new(),
        };
        a.merge(&performed);
        assert_eq!(a, performed);
        a.merge(&init(id(0), vec![]));
        assert_eq!(a, performed);
    }

    #[test]
    fn a_later_round_beats_a_lower_owner() {
        let mut a = Pruning::Initialized {
            owner: id(1),
            seen: vec![id(1), id(2)],
            round: 0,
        };
        let taken_over = Pruning::Initialized {
            owner: id(3),
            seen: vec![id(3)],
            round: 1,
        };
        a.merge(&taken_over);
        assert_eq!(a, taken_over);
        let mut b = taken_over.clone();
        b.merge(&Pruning::Initialized {
            owner: id(1),
            seen: vec![id(1)],
            round: 0,
        });
        assert_eq!(b, taken_over);
    }

    #[test]
    fn a_tombstone_absorbs_later_writes() {
        let mut e = Envelope::deleted();
        e.merge(&Envelope::new(Data::Flag(Default::default())))
            .unwrap();
        assert!(e.is_deleted());
        let mut live = Envelope::new(Data::Flag(Default::default()));
        live.merge(&Envelope::deleted()).unwrap();
        assert!(live.is_deleted());
    }

    #[test]
    fn values_of_another_kind_are_refused() {
        let mut e = Envelope::new(Data::Flag(Default::default()));
        let before = e.clone();
        let other = Envelope::new(Data::GSet(Default::default()));
        assert!(e.merge(&other).is_err());
        assert_eq!(e, before);
    }
}
