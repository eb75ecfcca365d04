//! A read or write that waits for other replicas: whom it asks, what they answered, and
//! when it is decided (Pekko's `ReadAggregator` / `WriteAggregator`, as a plain struct with
//! deadlines).

use std::collections::BTreeSet;

use super::envelope::Envelope;
use crate::crdt::ReplicaId;

/// Secondaries asked at most, when the primaries are slow (Pekko: 10).
pub(crate) const MAX_SECONDARIES: usize = 10;

/// What a quorum operation does.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A read: the entries received, joined with the local one.
    Read { merged: Option<Envelope> },
    /// A write or delete.
    Write,
}

/// A quorum operation in flight.
#[derive(Debug)]
pub(crate) struct Quorum {
    pub(crate) kind: Kind,
    pub(crate) key: String,
    /// Replicas needed, this one included.
    pub(crate) required: usize,
    /// Asked after the primaries, at `secondary_at`.
    pub(crate) secondaries: Vec<ReplicaId>,
    /// Every replica asked so far.
    pub(crate) asked: BTreeSet<ReplicaId>,
    /// Replicas that answered yes (a write merged; a read's entry arrived).
    pub(crate) replied: BTreeSet<ReplicaId>,
    /// Replicas that refused.
    pub(crate) refused: BTreeSet<ReplicaId>,
    /// Candidates at the start (primaries and every other peer).
    pub(crate) candidates: usize,
    /// When the secondaries are asked (`None` once done).
    pub(crate) secondary_at: Option<u64>,
    /// When the operation fails.
    pub(crate) deadline: u64,
}

/// How an operation stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not decided.
    Waiting,
    /// Enough replicas answered.
    Done,
    /// Too many refused for the rest to make it.
    Refused,
}

impl Quorum {
    /// Counts `from`'s answer; ignored if it was never asked or answered already.
    pub(crate) fn answer(&mut self, from: ReplicaId, ok: bool) -> bool {
        if !self.asked.contains(&from) || self.replied.contains(&from) {
            return false;
        }
        if ok {
            self.refused.remove(&from);
            self.replied.insert(from);
        } else {
            self.refused.insert(from);
        }
        true
    }

    pub(crate) fn outcome(&self) -> Outcome {
        if self.replied.len() + 1 >= self.required {
            Outcome::Done
        } else if self.candidates + 1 - self.refused.len() < self.required {
            Outcome::Refused
        } else {
            Outcome::Waiting
        }
    }
}

/// Orders `peers` for asking: reachable ones first, each group shuffled by `shuffle`.
pub(crate) fn order(
    mut reachable: Vec<ReplicaId>,
    mut unreachable: Vec<ReplicaId>,
    shuffle: &mut impl FnMut(&mut Vec<ReplicaId>),
) -> Vec<ReplicaId> {
    shuffle(&mut reachable);
    shuffle(&mut unreachable);
    reachable.extend(unreachable);
    reachable
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn id(port: u16) -> ReplicaId {
        ReplicaId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn quorum(required: usize, candidates: usize) -> Quorum {
        Quorum {
            kind: Kind::Write,
            key: "k".into(),
            required,
            secondaries: Vec::new(),
            asked: (1..=candidates as u16).map(id).collect(),
            replied: BTreeSet::new(),
            refused: BTreeSet::new(),
            candidates,
            secondary_at: None,
            deadline: 0,
        }
    }

    #[test]
    fn done_when_enough_answer_and_refused_when_too_many_refuse() {
        let mut q = quorum(3, 4);
        assert!(q.answer(id(1), true));
        assert_eq!(q.outcome(), Outcome::Waiting);
        assert!(!q.answer(id(1), true), "a second answer counts once");
        assert!(
            !q.answer(id(9), true),
            "a replica never asked does not count"
        );
        q.answer(id(2), true);
        assert_eq!(q.outcome(), Outcome::Done);

        let mut q = quorum(4, 4);
        q.answer(id(1), false);
        assert_eq!(q.outcome(), Outcome::Waiting);
        q.answer(id(2), false);
        assert_eq!(q.outcome(), Outcome::Refused);
    }
}
