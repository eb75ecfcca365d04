//! Consistency levels: how many replicas a read must hear from, or a write must reach,
//! before it succeeds (Pekko's `ReadConsistency` / `WriteConsistency`).

use std::time::Duration;

/// How many replicas a read consults. Every level counts this node as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// This node's replica only, answered at once.
    Local,
    /// `n` replicas (at least 2, counting this one).
    From {
        /// Replicas to hear from, this one included.
        n: usize,
        /// How long to wait.
        timeout: Duration,
    },
    /// A majority of the replicas (`N/2 + 1`), and at least `min_cap` of them.
    Majority {
        /// How long to wait.
        timeout: Duration,
        /// The least number of replicas, so that a write and a read quorum overlap even in
        /// a small cluster that changes (0: no minimum).
        min_cap: usize,
    },
    /// A majority plus `additional` replicas, at least `min_cap`; Exiting members do not
    /// count.
    MajorityPlus {
        /// How long to wait.
        timeout: Duration,
        /// Replicas beyond the majority.
        additional: usize,
        /// The least number of replicas.
        min_cap: usize,
    },
    /// Every replica; Exiting members do not count.
    All {
        /// How long to wait.
        timeout: Duration,
    },
}

/// How many replicas a write (or delete) reaches. Every level counts this node as one; the
/// local replica is always written first, whatever the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConsistency {
    /// This node's replica only, answered at once; the write spreads by deltas and gossip.
    Local,
    /// `n` replicas (at least 2, counting this one).
    To {
        /// Replicas to reach, this one included.
        n: usize,
        /// How long to wait.
        timeout: Duration,
    },
    /// A majority of the replicas (`N/2 + 1`), and at least `min_cap` of them.
    Majority {
        /// How long to wait.
        timeout: Duration,
        /// The least number of replicas (0: no minimum).
        min_cap: usize,
    },
    /// A majority plus `additional` replicas, at least `min_cap`; Exiting members do not
    /// count.
    MajorityPlus {
        /// How long to wait.
        timeout: Duration,
        /// Replicas beyond the majority.
        additional: usize,
        /// The least number of replicas.
        min_cap: usize,
    },
    /// Every replica; Exiting members do not count.
    All {
        /// How long to wait.
        timeout: Duration,
    },
}

/// A level as the quorum rules see it, read or write alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level {
    kind: LevelKind,
    /// Zero for `Local`.
    pub(crate) timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LevelKind {
    Local,
    Exactly(usize),
    Majority { additional: usize, min_cap: usize },
    All,
}

impl From<ReadConsistency> for Level {
    fn from(c: ReadConsistency) -> Level {
        use LevelKind::*;
        let (kind, timeout) = match c {
            ReadConsistency::Local => (Local, Duration::ZERO),
            ReadConsistency::From { n, timeout } => (Exactly(n), timeout),
            ReadConsistency::Majority { timeout, min_cap } => (
                Majority {
                    additional: 0,
                    min_cap,
                },
                timeout,
            ),
            ReadConsistency::MajorityPlus {
                timeout,
                additional,
                min_cap,
            } => (
                Majority {
                    additional,
                    min_cap,
                },
                timeout,
            ),
            ReadConsistency::All { timeout } => (All, timeout),
        };
        Level { kind, timeout }
    }
}

impl From<WriteConsistency> for Level {
    fn from(c: WriteConsistency) -> Level {
        let read = match c {
            WriteConsistency::Local => ReadConsistency::Local,
            WriteConsistency::To { n, timeout } => ReadConsistency::From { n, timeout },
            WriteConsistency::Majority { timeout, min_cap } => {
                ReadConsistency::Majority { timeout, min_cap }
            }
            WriteConsistency::MajorityPlus {
                timeout,
                additional,
                min_cap,
            } => ReadConsistency::MajorityPlus {
                timeout,
                additional,
                min_cap,
            },
            WriteConsistency::All { timeout } => ReadConsistency::All { timeout },
        };
        read.into()
    }
}

impl Level {
    /// True for the levels that leave Exiting members out (Pekko: `*MajorityPlus` and
    /// `*All`), since an Exiting member is about to go and must not hold the only copy.
    pub(crate) fn excludes_exiting(&self) -> bool {
        match self.kind {
            LevelKind::All => true,
            LevelKind::Majority { additional, .. } => additional > 0,
            _ => false,
        }
    }

    /// Replicas required, this one included, out of `n` (peers + 1): Pekko's
    /// `min(N, max(majority + additional, min_cap))` for the majorities. `None` if the level
    /// asks for more replicas than exist (`From`/`To` beyond `n`), which fails at once.
    pub(crate) fn required(&self, n: usize) -> Option<usize> {
        match self.kind {
            LevelKind::Local => Some(1),
            LevelKind::Exactly(k) => (k <= n).then_some(k.max(1)),
            LevelKind::Majority {
                additional,
                min_cap,
            } => {
                let majority = n / 2 + 1;
                Some(n.min((majority + additional).max(min_cap)))
            }
            LevelKind::All => Some(n),
        }
    }

    /// True for `Local`.
    pub(crate) fn is_local(&self) -> bool {
        self.kind == LevelKind::Local
    }

    /// Why the level is unusable, if it is: `From`/`To` below 2, or a zero timeout on a
    /// level that waits.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        match self.kind {
            LevelKind::Local => None,
            LevelKind::Exactly(n) if n < 2 => Some("n must be at least 2 (use Local for 1)"),
            _ if self.timeout.is_zero() => Some("the timeout must be positive"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    fn majority(additional: usize, min_cap: usize) -> Level {
        ReadConsistency::MajorityPlus {
            timeout: T,
            additional,
            min_cap,
        }
        .into()
    }

    #[test]
    fn majority_counts_as_pekko() {
        // The notes' examples: N=3 with min-cap 5 needs all 3; N=10 with +3, cap 5 needs 9.
        assert_eq!(majority(0, 5).required(3), Some(3));
        assert_eq!(majority(3, 5).required(10), Some(9));
        assert_eq!(majority(0, 0).required(1), Some(1));
        assert_eq!(majority(0, 0).required(4), Some(3));
        assert_eq!(majority(0, 0).required(5), Some(3));
    }

    #[test]
    fn exact_counts_beyond_the_cluster_fail_at_once() {
        let l: Level = WriteConsistency::To { n: 4, timeout: T }.into();
        assert_eq!(l.required(3), None);
        assert_eq!(l.required(4), Some(4));
        let bad: Level = WriteConsistency::To { n: 1, timeout: T }.into();
        assert!(bad.invalid().is_some());
    }

    #[test]
    fn all_and_plus_leave_exiting_members_out() {
        assert!(Level::from(ReadConsistency::All { timeout: T }).excludes_exiting());
        assert!(majority(1, 0).excludes_exiting());
        assert!(!majority(0, 0).excludes_exiting());
    }
}
