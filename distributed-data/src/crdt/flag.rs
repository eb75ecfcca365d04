//! [`Flag`]: a boolean that can only be switched on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Crdt, ReplicaId};

/// A boolean that starts off and, once switched on, stays on: merged by OR (Pekko's `Flag`).
/// One byte on the wire, so it has no deltas: the whole value is as small.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    enabled: bool,
}

impl Flag {
    /// Switches the flag on.
    pub fn switch_on(&mut self) {
        self.enabled = true;
    }

    /// True once switched on here or on any replica merged in.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

impl Crdt for Flag {
    fn merge(&mut self, other: &Flag) {
        self.enabled |= other.enabled;
    }

    fn take_delta(&mut self) -> Option<Flag> {
        None
    }

    const HAS_DELTAS: bool = false;

    fn modified_by(&self, _: &mut BTreeSet<ReplicaId>) {}

    fn prune(&mut self, _: ReplicaId, _: ReplicaId) {}

    fn pruning_cleanup(&mut self, _: ReplicaId) {}

    /// Always 1.
    fn size(&self) -> usize {
        1
    }
}
