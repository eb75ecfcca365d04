//! The version vector before the clock became a column (verbatim).

use crate::address::{Digest, UniqueAddress};
pub use crate::vclock::Causality;

/// A version vector with at most `N` entries, sorted by node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorClock<const N: usize> {
    entries: crate::buf::Buf<(UniqueAddress, u64), N>,
}

/// The vector clock would need more than `N` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockFull;

impl<const N: usize> VectorClock<N> {
    /// The empty clock.
    pub const fn new() -> Self {
        VectorClock {
            entries: crate::buf::Buf::new(),
        }
    }

    /// The counter of `node` (zero if absent).
    pub fn get(&self, node: &UniqueAddress) -> u64 {
        match self.entries.binary_search_by(|(a, _)| a.cmp(node)) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Sets the counter of `node`; zero removes the entry.
    pub fn set(&mut self, node: UniqueAddress, value: u64) -> Result<(), ClockFull> {
        match self.entries.binary_search_by(|(a, _)| a.cmp(&node)) {
            Ok(i) if value == 0 => {
                self.entries.remove(i);
            }
            Ok(i) => self.entries[i].1 = value,
            Err(_) if value == 0 => {}
            Err(i) => self
                .entries
                .insert(i, (node, value))
                .map_err(|_| ClockFull)?,
        }
        Ok(())
    }

    /// Advances `node`'s counter by one.
    pub fn increment(&mut self, node: UniqueAddress) -> Result<(), ClockFull> {
        let v = self.get(&node).saturating_add(1);
        self.set(node, v)
    }

    /// Drops `node`'s entry (used when a member is removed).
    pub fn prune(&mut self, node: &UniqueAddress) {
        if let Ok(i) = self.entries.binary_search_by(|(a, _)| a.cmp(node)) {
            self.entries.remove(i);
        }
    }

    /// Keeps only entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&UniqueAddress) -> bool) {
        self.entries.retain(|(a, _)| keep(a));
    }

    /// Entries in node order.
    pub fn iter(&self) -> impl Iterator<Item = (&UniqueAddress, u64)> {
        self.entries.iter().map(|(a, v)| (a, *v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no node has changed anything yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes all entries.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Compares pointwise (a missing entry counts as zero).
    pub fn compare(&self, other: &Self) -> Causality {
        let (mut less, mut greater) = (false, false);
        let (a, b) = (&self.entries, &other.entries);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let (va, vb) = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    i += 1;
                    j += 1;
                    (x.1, y.1)
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    i += 1;
                    (x.1, 0)
                }
                (Some(x), None) => {
                    i += 1;
                    (x.1, 0)
                }
                (_, Some(y)) => {
                    j += 1;
                    (0, y.1)
                }
                (None, None) => unreachable!("loop condition"),
            };
            less |= va < vb;
            greater |= va > vb;
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Same,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// `self := max(self, other)` pointwise.
    pub fn merge_in(&mut self, other: &Self) -> Result<(), ClockFull> {
        crate::sorted::union_into(
            &mut self.entries,
            &other.entries,
            |e| e.0,
            |x, y| (x.0, x.1.max(y.1)),
        )
        .map_err(|_| ClockFull)
    }

    /// `self := max(self, other)` pointwise, taking only `other`'s entries `keep` accepts.
    pub fn merge_in_where(
        &mut self,
        other: &Self,
        keep: impl Fn(&UniqueAddress) -> bool,
    ) -> Result<(), ClockFull> {
        super::union_into_where(
            &mut self.entries,
            &other.entries,
            |e| keep(&e.0),
            |e| e.0,
            |x, y| (x.0, x.1.max(y.1)),
        )
        .map_err(|_| ClockFull)
    }

    /// A 64-bit digest of the whole vector, identical on every node for equal vectors.
    pub fn digest(&self) -> u64 {
        let mut h = Digest::new();
        for (a, v) in &self.entries {
            h.write_u64(a.stable_hash());
            h.write_u64(*v);
        }
        h.finish()
    }
}
