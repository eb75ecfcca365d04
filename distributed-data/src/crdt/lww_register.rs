//! [`LWWRegister`]: the last-writer-wins register.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Crdt, Element, ReplicaId};

/// A value where the write with the highest timestamp wins (Pekko's `LWWRegister`).
///
/// On equal timestamps the write of the lower [`ReplicaId`] wins, as in Pekko; on equal
/// timestamps and replicas (only a confused or hostile writer does that) the greater value
/// bytes win. The order is total, so merging is taking the larger write, which is
/// commutative and deterministic whatever the input.
///
/// Concurrent writes lose data by design: only one survives. Timestamps come from the
/// caller, usually through [`LWWRegister::clock`]; wall clocks of different nodes disagree,
/// so "last" is only as good as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LWWRegister {
    value: Option<Element>,
    timestamp: i64,
    node: Option<ReplicaId>,
}

/// No value, at the lowest timestamp: any write wins over it.
impl Default for LWWRegister {
    fn default() -> LWWRegister {
        LWWRegister {
            value: None,
            timestamp: i64::MIN,
            node: None,
        }
    }
}

impl LWWRegister {
    /// Pekko's default clock: the current time in milliseconds, or one past the register's
    /// timestamp if that is later. A single writer then always wins over its own earlier
    /// writes, even when its clock went backwards.
    pub fn clock(current: i64, now_ms: i64) -> i64 {
        now_ms.max(current.saturating_add(1))
    }

    /// Pekko's reverse clock, where the *first* write wins: minus the current time, or one
    /// below the register's timestamp if that is lower. The empty register's timestamp
    /// (`i64::MIN`) counts as no earlier write.
    pub fn reverse_clock(current: i64, now_ms: i64) -> i64 {
        let now = now_ms.saturating_neg();
        if current == i64::MIN {
            now
        } else {
            now.min(current.saturating_sub(1))
        }
    }

    /// Writes `value` at `timestamp` as `node` (this replica), if that write wins over the
    /// current one by the merge rule; returns whether it did.
    ///
    /// A write that loses is dropped here too, not only at the next merge: the register
    /// only ever moves to a winning write, so a replica never shows a value that its own
    /// earlier state would overwrite. Timestamps from [`LWWRegister::clock`] always win.
    pub fn set(&mut self, node: ReplicaId, value: impl Into<Element>, timestamp: i64) -> bool {
        let write = LWWRegister {
            value: Some(value.into()),
            timestamp,
            node: Some(node),
        };
        if write.beats(self) {
            *self = write;
            true
        } else {
            false
        }
    }

    /// The value, `None` until the first write.
    pub fn value(&self) -> Option<&Element> {
        self.value.as_ref()
    }

    /// The timestamp of the current write (`i64::MIN` before the first).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The replica that made the current write.
    pub fn node(&self) -> Option<ReplicaId> {
        self.node
    }

    /// True if this write wins over `other`: the total order merge keeps the larger of.
    fn beats(&self, other: &LWWRegister) -> bool {
        let by_node = match (self.node, other.node) {
            // The lower replica wins, as Pekko.
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        };
        self.timestamp
            .cmp(&other.timestamp)
            .then(by_node)
            .then_with(|| self.value.cmp(&other.value))
            == Ordering::Greater
    }
}

impl Crdt for LWWRegister {
    fn merge(&mut self, other: &LWWRegister) {
        if other.beats(self) {
            *self = other.clone();
        }
    }

    /// Always `None`: the whole register is as small as a delta would be.
    fn take_delta(&mut self) -> Option<LWWRegister> {
        None
    }

    const HAS_DELTAS: bool = false;

    /// Adds nothing. The replica id only breaks timestamp ties; the register does not grow
    /// with writers, so there is nothing to prune, and a removed node's write stays valid
    /// (as Pekko, whose register is not pruned).
    fn modified_by(&self, _: &mut BTreeSet<ReplicaId>) {}

    fn prune(&mut self, _: ReplicaId, _: ReplicaId) {}

    fn pruning_cleanup(&mut self, _: ReplicaId) {}

    /// Always 1.
    fn size(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn merged(x: &LWWRegister, y: &LWWRegister) -> LWWRegister {
        let mut m = x.clone();
        m.merge(y);
        m
    }

    #[test]
    fn the_later_write_wins() {
        let (a, b) = (node(1), node(2));
        let mut x = LWWRegister::default();
        x.set(b, "old", 10);
        let mut y = LWWRegister::default();
        y.set(a, "new", 11);
        assert_eq!(merged(&x, &y).value(), Some(&Element::from("new")));
        assert_eq!(merged(&y, &x), merged(&x, &y));
    }

    #[test]
    fn ties_go_to_the_lower_node_then_the_greater_value() {
        let (a, b) = (node(1), node(2));
        let mut x = LWWRegister::default();
        x.set(b, "b", 10);
        let mut y = LWWRegister::default();
        y.set(a, "a", 10);
        assert_eq!(merged(&x, &y).node(), Some(a));
        assert_eq!(merged(&y, &x).node(), Some(a));
        let mut z = LWWRegister::default();
        z.set(a, "z", 10);
        assert_eq!(merged(&y, &z).value(), Some(&Element::from("z")));
        assert_eq!(merged(&z, &y).value(), Some(&Element::from("z")));
        // A write without a node loses a tie.
        let anonymous = LWWRegister {
            value: Some(Element::from("zz")),
            timestamp: 10,
            node: None,
        };
        assert_eq!(merged(&anonymous, &y), y);
    }

    #[test]
    fn losing_writes_are_dropped() {
        let a = node(1);
        let mut x = LWWRegister::default();
        assert!(x.set(a, "1", 10));
        assert!(!x.set(a, "0", 9));
        assert_eq!(x.value(), Some(&Element::from("1")));
        assert!(x.set(a, "2", LWWRegister::clock(x.timestamp(), 5)));
        assert_eq!(x.timestamp(), 11);
    }

    #[test]
    fn the_reverse_clock_keeps_the_first_write() {
        let (a, b) = (node(1), node(2));
        let mut x = LWWRegister::default();
        x.set(b, "first", LWWRegister::reverse_clock(x.timestamp(), 1000));
        let mut y = LWWRegister::default();
        y.set(a, "second", LWWRegister::reverse_clock(y.timestamp(), 2000));
        assert_eq!(merged(&x, &y).value(), Some(&Element::from("first")));
        assert!(!x.set(a, "later", LWWRegister::reverse_clock(x.timestamp(), 3000)));
    }
}
