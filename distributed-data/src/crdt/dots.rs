//! Dots and the causal context of the observed-remove types ([`ORSet`](super::ORSet),
//! [`ORMap`](super::ORMap)), after Almeida, Shoker and Baquero, "Delta state replicated data
//! types" (the `DotContext` of their AWORSet).
//!
//! A dot names one write: the replica that made it and that replica's write counter. A
//! value's causal context is the set of dots it has seen. A dot that a context has seen but
//! whose element is gone was removed; a dot a context has not seen is news. That difference
//! is what lets a merge tell "removed over there" from "added over here".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReplicaId;

/// One write: the replica and its write counter, counting from 1.
pub type Dot = (ReplicaId, u64);

/// A set of dots, kept compact: per replica the contiguous run `1..=n` as a version vector,
/// and the dots past a gap in a cloud.
///
/// Always compact (every constructor, merge and decode compacts), so equal sets of dots are
/// equal values and the derived `PartialEq` is set equality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DotContextWire")]
pub(crate) struct DotContext {
    vv: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

/// The decoded form, compacted into a [`DotContext`]: a peer's context need not be compact.
#[derive(Deserialize)]
struct DotContextWire {
    vv: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

impl From<DotContextWire> for DotContext {
    fn from(w: DotContextWire) -> DotContext {
        let mut c = DotContext {
            vv: w.vv,
            cloud: w.cloud,
        };
        c.compact();
        c
    }
}

impl DotContext {
    /// True if the context has seen `dot`. Counter 0 is never written, so it counts as seen.
    pub(crate) fn contains(&self, dot: &Dot) -> bool {
        self.vv.get(&dot.0).copied().unwrap_or(0) >= dot.1 || self.cloud.contains(dot)
    }

    /// A dot of `node` this context has not seen, now recorded as seen.
    ///
    /// Past any dot of `node` in the cloud too, so a dot is never reused even if a decoded
    /// context holds `node`'s dots past a gap. A counter at `u64::MAX` stays there (the dot is
    /// then not new; no honest replica writes 2^64 times).
    pub(crate) fn next_dot(&mut self, node: ReplicaId) -> Dot {
        let seen = self.vv.get(&node).copied().unwrap_or(0);
        let clouded = self
            .cloud
            .range((node, 0)..=(node, u64::MAX))
            .next_back()
            .map_or(0, |d| d.1);
        let dot = (node, seen.max(clouded).saturating_add(1));
        self.insert(dot);
        dot
    }

    /// Records `dot` as seen.
    pub(crate) fn insert(&mut self, dot: Dot) {
        if self.contains(&dot) {
            return;
        }
        let seen = self.vv.entry(dot.0).or_insert(0);
        if dot.1 == *seen + 1 {
            *seen = dot.1;
            // The new dot may close the gap before cloud dots of the same replica.
            while *seen < u64::MAX && self.cloud.remove(&(dot.0, *seen + 1)) {
                *seen += 1;
            }
        } else {
            if *seen == 0 {
                self.vv.remove(&dot.0);
            }
            self.cloud.insert(dot);
        }
    }

    /// Adds every dot of `other`.
    pub(crate) fn merge(&mut self, other: &DotContext) {
        for (node, &n) in &other.vv {
            let seen = self.vv.entry(*node).or_insert(0);
            *seen = (*seen).max(n);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Forgets every dot of `node`.
    pub(crate) fn remove_node(&mut self, node: ReplicaId) {
        self.vv.remove(&node);
        self.cloud.retain(|d| d.0 != node);
    }

    /// Adds every replica with a dot here to `out`.
    pub(crate) fn nodes(&self, out: &mut BTreeSet<ReplicaId>) {
        out.extend(self.vv.keys().copied());
        out.extend(self.cloud.iter().map(|d| d.0));
    }

    /// Version vector entries plus cloud dots.
    pub(crate) fn size(&self) -> usize {
        self.vv.len() + self.cloud.len()
    }

    /// Moves cloud dots that continue a replica's run into its vector entry and drops cloud
    /// dots the vector already covers. The cloud is ordered by replica then counter, so one
    /// pass sees each run in order.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for (node, c) in cloud {
            let seen = self.vv.entry(node).or_insert(0);
            if c <= *seen {
                continue;
            }
            if c == *seen + 1 {
                *seen = c;
            } else {
                self.cloud.insert((node, c));
            }
        }
        self.vv.retain(|_, n| *n > 0);
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
    fn gaps_go_to_the_cloud_and_close() {
        let a = node(1);
        let mut c = DotContext::default();
        c.insert((a, 2));
        c.insert((a, 4));
        assert!(c.contains(&(a, 2)) && !c.contains(&(a, 1)) && !c.contains(&(a, 3)));
        c.insert((a, 1));
        c.insert((a, 3));
        let mut run = DotContext::default();
        for i in 1..=4 {
            assert_eq!(run.next_dot(a), (a, i));
        }
        assert_eq!(c, run);
    }

    #[test]
    fn merge_compacts() {
        let a = node(1);
        let mut x = DotContext::default();
        x.insert((a, 1));
        let mut y = DotContext::default();
        y.insert((a, 2));
        x.merge(&y);
        assert_eq!(x.size(), 1);
        assert!(x.contains(&(a, 2)));
    }

    #[test]
    fn next_dot_skips_clouded_dots() {
        let a = node(1);
        let mut c = DotContext::default();
        c.insert((a, 5));
        assert_eq!(c.next_dot(a), (a, 6));
    }

    #[test]
    fn decoding_compacts() {
        let a = node(1);
        let wire = DotContextWire {
            vv: [(a, 1), (node(2), 0)].into_iter().collect(),
            cloud: [(a, 1), (a, 2), (a, 4)].into_iter().collect(),
        };
        let c = DotContext::from(wire);
        assert_eq!(c.vv, [(a, 2)].into_iter().collect());
        assert_eq!(c.cloud, [(a, 4)].into_iter().collect());
    }
}
