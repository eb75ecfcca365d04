//! What replicas send each other, and its decoding with bounds: a message from the network
//! may be hostile, so decoding never panics, allocates at most in proportion to the
//! message's own bytes, and checks every collection against the limits before the
//! replicator sees it.

use serde::{Deserialize, Serialize};

use super::envelope::{Envelope, Pruning};
use crate::key::MAX_KEY_LEN;

/// A replicator's message to another replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Merge this entry and acknowledge (a quorum write); `envelope` may be a delta.
    Write {
        /// The writer's operation, echoed in the answer.
        op: u64,
        /// The key.
        key: String,
        /// The entry, or the write's delta with the entry's markers.
        envelope: Envelope,
    },
    /// The answer to a [`Message::Write`]: merged (`ok`), or refused (a value of another
    /// kind under that key).
    WriteAck {
        /// The writer's operation.
        op: u64,
        /// True if merged.
        ok: bool,
    },
    /// Send your entry for this key (a quorum read).
    Read {
        /// The reader's operation, echoed in the answer.
        op: u64,
        /// The key.
        key: String,
    },
    /// The answer to a [`Message::Read`]: the entry, if this replica has it.
    ReadResult {
        /// The reader's operation.
        op: u64,
        /// The entry.
        envelope: Option<Envelope>,
    },
    /// Deltas of recent updates, fire and forget; what is lost is repaired by gossip.
    Deltas {
        /// Per key, the joined deltas (with the entry's markers).
        entries: Vec<(String, Envelope)>,
    },
    /// The digests of one chunk of the sender's keys (anti-entropy, first step).
    Status {
        /// Which chunk: the keys whose hash modulo `chunks` is `chunk`.
        chunk: u32,
        /// How many chunks the sender's keys are split into.
        chunks: u32,
        /// The keys of the chunk this status covers: a chunk with more keys than one
        /// message holds goes in parts, each covering a range of keys, so the receiver
        /// does not take the keys of the other parts for missing.
        range: KeyRange,
        /// Digest per key; [`MISSING`] for a key the sender lacks and asks for.
        digests: Vec<(String, u64)>,
        /// True for the answer to a status: answered with entries, never with a status.
        reply: bool,
        /// The uid of the replica this is for; a restarted replica at the same address
        /// drops it.
        to_uid: u64,
    },
    /// Entries that differ (anti-entropy, second step).
    Gossip {
        /// The entries.
        entries: Vec<(String, Envelope)>,
        /// True if the receiver should send back its merged entries of these keys, because
        /// the sender saw that they differ on both sides.
        send_back: bool,
        /// The uid of the replica this is for.
        to_uid: u64,
    },
}

/// A range of keys in byte order: after `after` (all if `None`) up to and including
/// `through` (to the last if `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// The keys after this one.
    pub after: Option<String>,
    /// Up to and including this one.
    pub through: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub const ALL: KeyRange = KeyRange {
        after: None,
        through: None,
    };

    /// True if `key` is in the range.
    pub fn contains(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|a| key > a)
            && self.through.as_deref().is_none_or(|t| key <= t)
    }
}

/// The digest that stands for "I do not have this key" in a [`Message::Status`].
pub const MISSING: u64 = 0;

/// Bounds on decoded messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries (keys) in one message.
    pub max_entries: usize,
    /// Size ([`Crdt::size`](crate::crdt::Crdt::size): elements, dots, counters…) of one
    /// entry.
    pub max_entry_size: usize,
    /// Bytes of one message.
    pub max_message_bytes: usize,
}

impl Limits {
    /// Bytes of one entry (encoded, with its key): what fits in a message of
    /// `max_message_bytes` alone, with room for the message's other fields.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_message_bytes.saturating_sub(MESSAGE_OVERHEAD)
    }
}

/// Bytes of a message besides its entries' keys and envelopes, at most: the variant, an
/// operation id, a count, flags and a uid, each a varint of at most 10 bytes.
const MESSAGE_OVERHEAD: usize = 64;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`Limits::max_message_bytes`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not a message (postcard).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// More entries than [`Limits::max_entries`].
    #[error("{0} entries in one message is over the limit")]
    TooManyEntries(usize),
    /// An entry larger than [`Limits::max_entry_size`].
    #[error("entry {key:?} of size {size} is over the limit")]
    EntryTooLarge {
        /// The key.
        key: String,
        /// Its size.
        size: usize,
    },
    /// A key id empty, longer than [`MAX_KEY_LEN`], or ending in `*`.
    #[error("a key id must be 1 to {MAX_KEY_LEN} bytes, not ending in `*`")]
    BadKey,
    /// A pruning marker's list (`seen`, `renamed`) is not strictly ordered, as every
    /// replica keeps it, or renames dots that are not the removed member's.
    #[error("entry {key:?}: a pruning marker's list is out of order or renames the wrong dots")]
    BadMarker {
        /// The key.
        key: String,
    },
}

impl Message {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing owned, finite values into a growable buffer does not fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes and checks a message. postcard reads a collection's length first but
    /// allocates as it reads elements, each at least a byte, so allocation stays in
    /// proportion to `bytes`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
        if bytes.len() > limits.max_message_bytes {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let m: Message =
            postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        m.check(limits)?;
        Ok(m)
    }

    fn check(&self, limits: &Limits) -> Result<(), DecodeError> {
        let key_ok = |k: &str| crate::key::valid_id(k);
        let entries = |list: &[(String, Envelope)]| -> Result<(), DecodeError> {
            if list.len() > limits.max_entries {
                return Err(DecodeError::TooManyEntries(list.len()));
            }
            for (k, e) in list {
                check_entry(k, e, limits)?;
            }
            Ok(())
        };
        match self {
            Message::Write { key, envelope, .. } => check_entry(key, envelope, limits),
            Message::Read { key, .. } if !key_ok(key) => Err(DecodeError::BadKey),
            Message::ReadResult {
                envelope: Some(e), ..
            } => check_entry("-", e, limits),
            Message::Deltas { entries: list } | Message::Gossip { entries: list, .. } => {
                entries(list)
            }
            Message::Status { digests, range, .. } => {
                if digests.len() > limits.max_entries {
                    return Err(DecodeError::TooManyEntries(digests.len()));
                }
                let bounds = [&range.after, &range.through];
                if digests.iter().all(|(k, _)| key_ok(k))
                    && bounds.iter().all(|b| b.as_deref().is_none_or(key_ok))
                {
                    Ok(())
                } else {
                    Err(DecodeError::BadKey)
                }
            }
            _ => Ok(()),
        }
    }
}

fn check_entry(key: &str, e: &Envelope, limits: &Limits) -> Result<(), DecodeError> {
    if !crate::key::valid_id(key) {
        return Err(DecodeError::BadKey);
    }
    let size = e.size();
    if size > limits.max_entry_size {
        return Err(DecodeError::EntryTooLarge {
            key: key.to_string(),
            size,
        });
    }
    // Merging keeps `seen` ordered by binary search; a list out of order would be merged
    // wrong, never repaired.
    for (removed, marker) in &e.pruning {
        let ordered = match marker {
            Pruning::Initialized { seen, .. } => seen.windows(2).all(|w| w[0] < w[1]),
            // Strictly ordered pairs, each renaming a dot of the removed member to another
            // replica's.
            Pruning::Performed { renamed, .. } => {
                renamed.windows(2).all(|w| w[0] < w[1])
                    && renamed
                        .iter()
                        .all(|(old, new)| old.0 == *removed && new.0 != *removed)
            }
        };
        if !ordered {
            return Err(DecodeError::BadMarker {
                key: key.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Data, GSet};

    const LIMITS: Limits = Limits {
        max_entries: 4,
        max_entry_size: 3,
        max_message_bytes: 1 << 16,
    };

    #[test]
    fn round_trip() {
        let mut set = GSet::default();
        set.add("a");
        let m = Message::Deltas {
            entries: vec![("k".into(), Envelope::new(Data::GSet(set)))],
        };
        assert_eq!(Message::decode(&m.encode(), &LIMITS), Ok(m));
    }

    #[test]
    fn a_key_range_holds_the_keys_between_its_bounds() {
        let r = KeyRange {
            after: Some("b".into()),
            through: Some("d".into()),
        };
        assert!(!r.contains("b") && r.contains("c") && r.contains("d") && !r.contains("e"));
        assert!(KeyRange::ALL.contains("anything"));
    }

    #[test]
    fn oversized_entries_and_bad_keys_are_refused() {
        let mut set = GSet::default();
        for e in ["a", "b", "c", "d"] {
            set.add(e);
        }
        let big = Message::Gossip {
            entries: vec![("k".into(), Envelope::new(Data::GSet(set)))],
            send_back: false,
            to_uid: 1,
        };
        assert!(matches!(
            Message::decode(&big.encode(), &LIMITS),
            Err(DecodeError::EntryTooLarge { .. })
        ));
        let bad = Message::Read {
            op: 1,
            key: String::new(),
        };
        assert_eq!(
            Message::decode(&bad.encode(), &LIMITS),
            Err(DecodeError::BadKey)
        );
        let many = Message::Status {
            chunk: 0,
            chunks: 1,
            range: KeyRange::ALL,
            digests: (0..5).map(|i| (i.to_string(), 1)).collect(),
            reply: false,
            to_uid: 1,
        };
        assert_eq!(
            Message::decode(&many.encode(), &LIMITS),
            Err(DecodeError::TooManyEntries(5))
        );
        let mut marked = Envelope::new(Data::GSet(GSet::default()));
        let r = |n: u8| crate::crdt::ReplicaId::new(([10, 0, 0, n], 1).into(), 1);
        marked.pruning.insert(
            r(9),
            Pruning::Initialized {
                owner: r(1),
                seen: vec![r(2), r(1)],
                round: 0,
            },
        );
        let unordered = Message::Write {
            op: 1,
            key: "k".into(),
            envelope: marked,
        };
        assert!(matches!(
            Message::decode(&unordered.encode(), &LIMITS),
            Err(DecodeError::BadMarker { .. })
        ));
        // A rename of a dot that is not the removed member's.
        let mut renaming = Envelope::new(Data::GSet(GSet::default()));
        renaming.pruning.insert(
            r(9),
            Pruning::Performed {
                obsolete_at: 1,
                renamed: vec![((r(2), 1), (r(1), 1))],
            },
        );
        let wrong = Message::Write {
            op: 1,
            key: "k".into(),
            envelope: renaming,
        };
        assert!(matches!(
            Message::decode(&wrong.encode(), &LIMITS),
            Err(DecodeError::BadMarker { .. })
        ));
        assert!(matches!(
            Message::decode(&[0xff, 0xff, 0xff], &LIMITS),
            Err(DecodeError::Malformed(_))
        ));
    }
}
