//! The wire format: a versioned envelope around messages in postcard's encoding (written by
//! hand, [`crate::codec`]).
//!
//! ```text
//! envelope := MAGIC:u8  VERSION:u8  KIND:u8  body
//! ```
//! Bodies are postcard's encoding. Gossip is written as a stream of bounded items (members in
//! address order, then clock, seen set, reachability and tombstones, which refer to members
//! by index) so a decoder checks every count against the compile-time capacity before
//! reading, and never builds anything larger than the node's own state. Decoding returns a
//! [`WireError`]; it never panics, and it writes only into the caller's scratch gossip.
//!
//! One type, [`Message`], describes every message for both directions:
//! [`Message::parse`] reads it and [`Message::emit`] writes it, so the two cannot drift apart.

use core::fmt;

use crate::address::UniqueAddress;
use crate::codec::{Reader, Writer};
pub use crate::compat::{Compat, Incompatibility};
use crate::gossip::{Gossip, Tombstone};
use crate::member::{AppVersion, Member, MemberStatus, RoleSet};
use crate::reachability::{ReachabilityStatus, Row};
use crate::time::Instant;

/// First byte of every fjell message.
pub const MAGIC: u8 = 0xF7;
/// The protocol version this build speaks. 2: the join handshake declares the downing
/// settings and enforce-on-join ([`Compat`]). 3: the handshake and member records carry each
/// node's capacity ([`crate::capacity`]). 4: gossip deltas ([`crate::delta`]) and status
/// replies. 5: one heartbeat each way between ring neighbours, carrying the echo of the
/// other's ([`Beat`]), instead of a request and a response. 6: the handshake and member
/// records say whether the member may lead ([`crate::Config::leader_eligible`]).
pub const PROTOCOL_VERSION: u8 = 6;

/// Which lane a transport should use for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryClass {
    /// Failure-detector traffic: small, loss-tolerant, must never wait behind other traffic
    /// (QUIC datagrams).
    Heartbeat,
    /// Gossip status and full gossip: reliable, its own stream.
    Gossip,
    /// Join handshake and other control messages: reliable, its own stream.
    Control,
}

/// Message kinds (the third envelope byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Seed probe.
    InitJoin = 1,
    /// Seed probe answer: this node is a member and can take joins.
    InitJoinAck = 2,
    /// Seed probe answer: this node is not (yet) a member.
    InitJoinNack = 3,
    /// Join request.
    Join = 4,
    /// Join accepted, with the current gossip.
    Welcome = 5,
    /// Version and seen digests.
    GossipStatus = 6,
    /// Full gossip.
    Gossip = 7,
    /// The sender has stopped taking part (after exiting or being downed).
    Departed = 8,
    /// Join refused: incompatible configuration.
    JoinRefused = 9,
    /// Heartbeat (see [`Beat`]). Kind 11, the heartbeat response of protocol
    /// versions before 5, is unused.
    Heartbeat = 10,
    /// Gossip as the member records the receiver lacks ([`crate::delta`]).
    GossipDelta = 12,
    /// Version and seen digests, answering a status whose version this node does not know or
    /// a delta that missed; answered with full gossip.
    GossipStatusReply = 13,
    /// Refused because the protocol version differs. Decodable at every version.
    VersionRefused = 0xFF,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::InitJoin,
            2 => Kind::InitJoinAck,
            3 => Kind::InitJoinNack,
            4 => Kind::Join,
            5 => Kind::Welcome,
            6 => Kind::GossipStatus,
            7 => Kind::Gossip,
            8 => Kind::Departed,
            9 => Kind::JoinRefused,
            10 => Kind::Heartbeat,
            12 => Kind::GossipDelta,
            13 => Kind::GossipStatusReply,
            0xFF => Kind::VersionRefused,
            _ => return None,
        })
    }

    /// The lane for this kind.
    pub fn class(self) -> DeliveryClass {
        match self {
            Kind::Heartbeat => DeliveryClass::Heartbeat,
            Kind::GossipStatus | Kind::GossipStatusReply | Kind::Gossip | Kind::GossipDelta => {
                DeliveryClass::Gossip
            }
            _ => DeliveryClass::Control,
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the message needs.
    Truncated,
    /// The first byte is not [`MAGIC`]: not a fjell message.
    BadMagic,
    /// A protocol version this build does not speak.
    UnsupportedVersion {
        /// The version in the envelope.
        version: u8,
        /// The kind byte, so join requests can be answered with a refusal.
        kind: u8,
    },
    /// An unknown kind byte.
    UnknownKind(u8),
    /// A count exceeds this node's compile-time capacity.
    OverCapacity,
    /// A field is invalid (out of order, out of range, inconsistent).
    Malformed(Malformed),
    /// Bytes left over after the message.
    TrailingBytes,
    /// A gossip delta that does not rebuild the sender's state from the receiver's: the
    /// receiver lacks records the delta left out (see [`crate::delta`]). Not an error of the
    /// sender: the receiver answers with its status, to the sender the delta names.
    /// (Naming the sender here made every decode error 40 bytes on a 32-bit device, and
    /// moving that through every `?` of the decoder cost about 2.7 kB of its code.)
    StaleBase,
    /// A join request at a receiver that takes no joiners (a member that may not lead, see
    /// [`crate::Config::leader_eligible`]), read no further than its sender: such a receiver
    /// answers a seed probe from the sender alone and ignores a join. Not an error of the
    /// sender; [`crate::Node::handle_message`] never returns it.
    JoinRequestUnread {
        /// A seed probe (InitJoin), not a Join.
        probe: bool,
    },
}

/// What is wrong with a malformed message ([`WireError::Malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// A field's bytes are not a value of its type.
    FieldDoesNotDecode,
    /// A role name that is empty, too long or holds a NUL.
    InvalidRole,
    /// An up-number of 0, which no leader hands out.
    UpNumberZero,
    /// Heartbeat flag bits this version does not define.
    UnknownHeartbeatFlags,
    /// A column or record names a member index beyond the member list.
    MemberIndexOutOfRange,
    /// Member records not in strictly increasing address order.
    MembersOutOfOrder,
    /// A node both tombstoned and a member.
    TombstonedMember,
    /// A member record with status Removed.
    RemovedMember,
    /// An up-number on a member not yet Up, or none on one that is.
    StatusAndUpNumber,
    /// A member declaring room for no member or no record.
    NoCapacity,
    /// Clock entries out of index order, zero, or beyond [`MAX_COUNTER`].
    ClockEntries,
    /// A seen mark for a member index beyond the member list.
    SeenBeyondMembers,
    /// A reachability version beyond [`MAX_COUNTER`].
    ReachabilityVersionOutOfRange,
    /// Reachability versions out of index order.
    ReachabilityVersionsOutOfOrder,
    /// A reachability record newer than its observer's version.
    RecordNewerThanObserver,
    /// Reachability records out of order, or two for one pair.
    RecordsOutOfOrder,
    /// An observer whose records all say Reachable (they are never kept).
    OnlyReachableRows,
    /// Tombstones not in strictly increasing address order.
    TombstonesOutOfOrder,
}

impl Malformed {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::FieldDoesNotDecode => "field does not decode",
            Malformed::InvalidRole => "invalid role name",
            Malformed::UpNumberZero => "up-number 0",
            Malformed::UnknownHeartbeatFlags => "unknown heartbeat flags",
            Malformed::MemberIndexOutOfRange => "member index out of range",
            Malformed::MembersOutOfOrder => "members out of order",
            Malformed::TombstonedMember => "tombstoned node is a member",
            Malformed::RemovedMember => "removed member in gossip",
            Malformed::StatusAndUpNumber => "status and up-number disagree",
            Malformed::NoCapacity => "a member declares no capacity",
            Malformed::ClockEntries => "clock entries out of order or out of range",
            Malformed::SeenBeyondMembers => "seen mark beyond the members",
            Malformed::ReachabilityVersionOutOfRange => "reachability version out of range",
            Malformed::ReachabilityVersionsOutOfOrder => "reachability versions out of order",
            Malformed::RecordNewerThanObserver => "record newer than its observer",
            Malformed::RecordsOutOfOrder => "reachability records out of order",
            Malformed::OnlyReachableRows => "an observer with only Reachable rows",
            Malformed::TombstonesOutOfOrder => "tombstones out of order",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("message truncated"),
            WireError::BadMagic => f.write_str("not a fjell message (bad magic byte)"),
            WireError::UnsupportedVersion { version, .. } => {
                write!(f, "protocol version {version} not supported (this node speaks {PROTOCOL_VERSION})")
            }
            WireError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            WireError::OverCapacity => f.write_str("message exceeds this node's capacity"),
            WireError::Malformed(why) => write!(f, "malformed message: {}", why.as_str()),
            WireError::TrailingBytes => f.write_str("trailing bytes after message"),
            WireError::StaleBase => f.write_str("gossip delta for another state"),
            WireError::JoinRequestUnread { .. } => {
                f.write_str("join request at a member that takes no joiners")
            }
        }
    }
}

/// Where a parsed message's gossip is: in the scratch given to [`Message::parse`].
///
/// The gossip of a parsed message is never part of the value, so a large gossip is never
/// copied; a parsed message is re-emitted with [`Message::with_gossip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InScratch;

/// One wire message, for both directions: [`Message::parse`] reads one from bytes and
/// [`Message::emit`] writes one into a buffer.
///
/// `G` is what the gossip-carrying kinds ([`Message::Welcome`], [`Message::Gossip`]) hold: a
/// borrowed `&Gossip<M, R>` to emit, or [`InScratch`] once parsed. Only a message holding a
/// gossip can be emitted, so a gossip kind cannot go out without one.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<G = InScratch> {
    /// Seed probe.
    InitJoin {
        /// Sender.
        from: UniqueAddress,
        /// Sender's compatibility declaration.
        compat: Compat,
    },
    /// Seed probe answer: can take joins.
    InitJoinAck {
        /// Sender.
        from: UniqueAddress,
    },
    /// Seed probe answer: cannot take joins.
    InitJoinNack {
        /// Sender.
        from: UniqueAddress,
        /// The sender is a member all the same, one that may not lead and so takes no
        /// joiners: a cluster exists, and the first seed must not found another.
        member: bool,
    },
    /// Join request.
    Join {
        /// The joiner.
        from: UniqueAddress,
        /// Its roles.
        roles: RoleSet,
        /// Its application version.
        app_version: AppVersion,
        /// Its compatibility declaration.
        compat: Compat,
    },
    /// Join accepted, with the current gossip.
    Welcome {
        /// The welcoming member.
        from: UniqueAddress,
        /// The joiner.
        to: UniqueAddress,
        /// The gossip.
        gossip: G,
    },
    /// Digests only. The sender is the transport's peer; only the receiver's uid is named, so
    /// a status meant for an earlier incarnation is dropped. 29 bytes.
    GossipStatus {
        /// Uid of the intended receiver incarnation.
        to_uid: u64,
        /// The sender's index in its own member list: where the receiver finds the sender
        /// without a search when both hold the same list, as they do in a steady cluster (one
        /// status a second is every node's steady gossip, and a search over a member list
        /// that is not in cache was an eighth of its CPU). A hint: checked, never trusted.
        from_index: u16,
        /// Digest of the sender's version vector ([`Gossip::version_digest`]).
        version: u64,
        /// Digest of the sender's seen set ([`Gossip::seen_digest`]).
        seen: u64,
        /// An answer to a status naming a version the sender does not know, or to a delta that
        /// missed: answered with full gossip, never with another status or a delta (kind
        /// [`Kind::GossipStatusReply`]).
        reply: bool,
    },
    /// Gossip as the member records the receiver lacks, by the sender's estimate (see
    /// [`crate::delta`]). Parsed, the gossip is the sender's whole state, rebuilt from the
    /// receiver's and checked against the sender's digest of its members; emitted with
    /// [`Message::emit`], every record is sent.
    GossipDelta {
        /// Sender.
        from: UniqueAddress,
        /// Intended receiver incarnation.
        to: UniqueAddress,
        /// The gossip.
        gossip: G,
    },
    /// Full gossip.
    Gossip {
        /// Sender.
        from: UniqueAddress,
        /// Intended receiver incarnation.
        to: UniqueAddress,
        /// The gossip.
        gossip: G,
    },
    /// The sender stopped taking part.
    Departed {
        /// Sender.
        from: UniqueAddress,
    },
    /// Join refused.
    JoinRefused {
        /// The refusing member.
        from: UniqueAddress,
        /// Why.
        reason: Incompatibility,
    },
    /// Refused for a protocol version mismatch: the envelope's version byte is the refusing
    /// side's version (a sender writes [`PROTOCOL_VERSION`]), and there is no body.
    VersionRefused {
        /// The refusing side's version.
        version: u8,
    },
    /// Heartbeat (10 bytes, 14 with an echo): the sender is the transport's peer.
    Heartbeat(Beat),
}

/// One heartbeat between ring neighbours (the heartbeat ring): each neighbour's arrival
/// feeds the receiver's failure detector, and the echo of the receiver's last heartbeat
/// measures the round trip without a response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// The sender's heartbeat counter, one per heartbeat it sends to anyone, wrapping: a
    /// receiver ignores one not newer than the last it took from that sender.
    pub seq: u16,
    /// The sender's clock in milliseconds, wrapping; echoed back in [`Echo::sent`].
    pub sent: u16,
    /// Low 16 bits of the sender's uid: a new incarnation on the same address does not keep
    /// the old one alive.
    pub tag: u16,
    /// The sender has not heard from the receiver lately (or not yet): answer at once.
    pub reply: bool,
    /// The receiver's latest heartbeat as the sender saw it, if one arrived.
    pub echo: Option<Echo>,
}

/// The echo of a heartbeat: the round trip is the time since [`Echo::sent`] less
/// [`Echo::held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// The echoed heartbeat's [`Beat::sent`], in its sender's clock.
    pub sent: u16,
    /// Milliseconds between its arrival and this heartbeat, saturating.
    pub held: u16,
}

/// [`Beat`]'s flag bits.
const BEAT_REPLY: u8 = 1;
const BEAT_ECHO: u8 = 2;

impl<G> Message<G> {
    /// The kind byte.
    pub fn kind(&self) -> Kind {
        match self {
            Message::InitJoin { .. } => Kind::InitJoin,
            Message::InitJoinAck { .. } => Kind::InitJoinAck,
            Message::InitJoinNack { .. } => Kind::InitJoinNack,
            Message::Join { .. } => Kind::Join,
            Message::Welcome { .. } => Kind::Welcome,
            Message::GossipStatus { reply: false, .. } => Kind::GossipStatus,
            Message::GossipStatus { reply: true, .. } => Kind::GossipStatusReply,
            Message::Gossip { .. } => Kind::Gossip,
            Message::GossipDelta { .. } => Kind::GossipDelta,
            Message::Departed { .. } => Kind::Departed,
            Message::JoinRefused { .. } => Kind::JoinRefused,
            Message::VersionRefused { .. } => Kind::VersionRefused,
            Message::Heartbeat { .. } => Kind::Heartbeat,
        }
    }

    /// The same message holding `gossip` if its kind carries one (`gossip` is dropped
    /// otherwise): `msg.with_gossip(&scratch)` re-emits a parsed message, and
    /// `msg.with_gossip(InScratch)` compares an emitted one with a parsed one.
    pub fn with_gossip<H>(self, gossip: H) -> Message<H> {
        match self {
            Message::Welcome { from, to, .. } => Message::Welcome { from, to, gossip },
            Message::Gossip { from, to, .. } => Message::Gossip { from, to, gossip },
            Message::GossipDelta { from, to, .. } => Message::GossipDelta { from, to, gossip },
            Message::InitJoin { from, compat } => Message::InitJoin { from, compat },
            Message::InitJoinAck { from } => Message::InitJoinAck { from },
            Message::InitJoinNack { from, member } => Message::InitJoinNack { from, member },
            Message::Join {
                from,
                roles,
                app_version,
                compat,
            } => Message::Join {
                from,
                roles,
                app_version,
                compat,
            },
            Message::GossipStatus {
                to_uid,
                from_index,
                version,
                seen,
                reply,
            } => Message::GossipStatus {
                to_uid,
                from_index,
                version,
                seen,
                reply,
            },
            Message::Departed { from } => Message::Departed { from },
            Message::JoinRefused { from, reason } => Message::JoinRefused { from, reason },
            Message::VersionRefused { version } => Message::VersionRefused { version },
            Message::Heartbeat(b) => Message::Heartbeat(b),
        }
    }
}

impl Message {
    /// Parses one message from `bytes`, which must hold exactly one. A gossip-carrying kind's
    /// gossip is decoded into `scratch` (tombstone ages turned into instants on `now`); a
    /// delta applies to the empty state (see [`Message::parse_against`]). On an error, or for
    /// other kinds, `scratch` is left in an unspecified but valid state.
    pub fn parse<const M: usize, const R: usize>(
        bytes: &[u8],
        scratch: &mut Gossip<M, R>,
        now: Instant,
    ) -> Result<Message, WireError> {
        Self::parse_inner(bytes, &[], scratch, now, true)
    }

    /// [`Message::parse`] for a receiver whose state is `base`: a delta is applied to it to
    /// rebuild the sender's state in `scratch` ([`WireError::StaleBase`] if the result is not
    /// the sender's state: the delta lacked records that differ).
    pub fn parse_against<const M: usize, const R: usize>(
        bytes: &[u8],
        base: &Gossip<M, R>,
        scratch: &mut Gossip<M, R>,
        now: Instant,
    ) -> Result<Message, WireError> {
        Self::parse_inner(bytes, base.members(), scratch, now, true)
    }

    /// [`Message::parse_against`] at a receiver that takes joiners only if `takes_joiners`:
    /// one that does not reads a join request no further than its sender
    /// ([`WireError::JoinRequestUnread`]). A member that may not lead never reads a joiner's
    /// declaration, so a build without the `lead` feature links no reader for one (2.5 kB of
    /// a device's flash at opt-level "s").
    pub(crate) fn parse_received<const M: usize, const R: usize>(
        bytes: &[u8],
        base: &Gossip<M, R>,
        scratch: &mut Gossip<M, R>,
        now: Instant,
        takes_joiners: bool,
    ) -> Result<Message, WireError> {
        Self::parse_inner(bytes, base.members(), scratch, now, takes_joiners)
    }

    /// `base` is the receiver's members.
    fn parse_inner<const M: usize, const R: usize>(
        bytes: &[u8],
        base: &[Member],
        scratch: &mut Gossip<M, R>,
        now: Instant,
        takes_joiners: bool,
    ) -> Result<Message, WireError> {
        let (version, kind_byte) = peek_header(bytes)?;
        // Decodable at every version, body or not, so a refused joiner always learns why.
        if kind_byte == Kind::VersionRefused as u8 {
            return Ok(Message::VersionRefused { version });
        }
        if version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion {
                version,
                kind: kind_byte,
            });
        }
        let kind = Kind::from_u8(kind_byte).ok_or(WireError::UnknownKind(kind_byte))?;
        let mut r = Reader { rest: &bytes[3..] };
        let msg = match kind {
            Kind::GossipStatus | Kind::GossipStatusReply => Message::GossipStatus {
                to_uid: u64::from_le_bytes(r.array()?),
                from_index: u16::from_le_bytes(r.array()?),
                version: u64::from_le_bytes(r.array()?),
                seen: u64::from_le_bytes(r.array()?),
                reply: kind == Kind::GossipStatusReply,
            },
            Kind::Heartbeat => Message::Heartbeat(r.beat()?),
            // Returned above, before the version check.
            Kind::VersionRefused => return Ok(Message::VersionRefused { version }),
            // Every other kind begins with its sender: read once, not once per kind (each
            // read moves an address; the eight reads were 0.9 kB of a device's flash).
            Kind::InitJoin
            | Kind::InitJoinAck
            | Kind::InitJoinNack
            | Kind::Departed
            | Kind::Join
            | Kind::Welcome
            | Kind::Gossip
            | Kind::GossipDelta
            | Kind::JoinRefused => {
                let from = r.take()?;
                Self::parse_from(kind, from, &mut r, base, scratch, now, takes_joiners)?
            }
        };
        r.finish()?;
        Ok(msg)
    }

    /// The rest of a message of `kind` sent by `from`.
    fn parse_from<const M: usize, const R: usize>(
        kind: Kind,
        from: UniqueAddress,
        r: &mut Reader<'_>,
        base: &[Member],
        scratch: &mut Gossip<M, R>,
        now: Instant,
        takes_joiners: bool,
    ) -> Result<Message, WireError> {
        Ok(match kind {
            // Checked here, where the kind is matched, rather than before: a build without
            // `lead` then leaves the arms below out.
            Kind::InitJoin | Kind::Join if !takes_joiners => {
                return Err(WireError::JoinRequestUnread {
                    probe: kind == Kind::InitJoin,
                })
            }
            Kind::InitJoin => Message::InitJoin {
                from,
                compat: r.take()?,
            },
            Kind::InitJoinAck => Message::InitJoinAck { from },
            Kind::InitJoinNack => Message::InitJoinNack {
                from,
                member: r.bool()?,
            },
            Kind::Departed => Message::Departed { from },
            Kind::Join => Message::Join {
                from,
                roles: r.take()?,
                app_version: r.take()?,
                compat: r.take()?,
            },
            Kind::Welcome | Kind::Gossip => {
                let to = r.take()?;
                decode_gossip(r, scratch, now)?;
                let gossip = InScratch;
                if kind == Kind::Welcome {
                    Message::Welcome { from, to, gossip }
                } else {
                    Message::Gossip { from, to, gossip }
                }
            }
            Kind::GossipDelta => {
                let to = r.take()?;
                if !decode_delta(r, base, scratch, now)? {
                    return Err(WireError::StaleBase);
                }
                Message::GossipDelta {
                    from,
                    to,
                    gossip: InScratch,
                }
            }
            Kind::JoinRefused => Message::JoinRefused {
                from,
                reason: r.take()?,
            },
            // Read by `parse_inner`: they do not begin with a sender.
            Kind::GossipStatus
            | Kind::GossipStatusReply
            | Kind::Heartbeat
            | Kind::VersionRefused => return Err(WireError::UnknownKind(kind as u8)),
        })
    }
}

impl<const M: usize, const R: usize> Message<&Gossip<M, R>> {
    /// Writes the message into `buf` and returns its length ([`Message::buffer_len`]).
    /// Tombstones travel as ages on `now`. A delta carries every member record.
    pub fn emit(&self, now: Instant, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        self.emit_changes(now, buf, None)
    }

    /// [`Message::emit`], where a delta carries only the member records `changed` selects.
    pub(crate) fn emit_changes(
        &self,
        now: Instant,
        buf: &mut [u8],
        changed: Option<Changes<'_>>,
    ) -> Result<usize, BufferTooSmall> {
        let mut w = Writer {
            buf: Some(buf),
            pos: 0,
        };
        self.write(&mut w, now, changed)?;
        Ok(w.pos)
    }

    /// The length [`Message::emit`] writes on `now` (which sets the tombstones' ages).
    pub fn buffer_len(&self, now: Instant) -> usize {
        self.changes_len(now, None)
    }

    /// The length [`Message::emit_changes`] writes.
    pub(crate) fn changes_len(&self, now: Instant, changed: Option<Changes<'_>>) -> usize {
        let mut w = Writer { buf: None, pos: 0 };
        // Counting never runs out of room, and no field fails to serialize.
        let _ = self.write(&mut w, now, changed);
        w.pos
    }

    fn write(
        &self,
        w: &mut Writer<'_>,
        now: Instant,
        changed: Option<Changes<'_>>,
    ) -> Result<(), BufferTooSmall> {
        let version = match self {
            Message::VersionRefused { version } => *version,
            _ => PROTOCOL_VERSION,
        };
        w.byte(MAGIC)?;
        w.byte(version)?;
        w.byte(self.kind() as u8)?;
        match self {
            Message::InitJoin { from, compat } => {
                w.put(from)?;
                w.put(compat)?;
            }
            Message::InitJoinAck { from } | Message::Departed { from } => w.put(from)?,
            Message::InitJoinNack { from, member } => {
                w.put(from)?;
                w.bool(*member)?;
            }
            Message::Join {
                from,
                roles,
                app_version,
                compat,
            } => {
                w.put(from)?;
                w.put(roles)?;
                w.put(app_version)?;
                w.put(compat)?;
            }
            Message::Welcome { from, to, gossip } | Message::Gossip { from, to, gossip } => {
                w.put(from)?;
                w.put(to)?;
                encode_gossip(w, gossip, now)?;
            }
            Message::GossipDelta { from, to, gossip } => {
                w.put(from)?;
                w.put(to)?;
                encode_delta(w, gossip, changed, now)?;
            }
            Message::GossipStatus {
                to_uid,
                from_index,
                version,
                seen,
                ..
            } => {
                w.bytes(&to_uid.to_le_bytes())?;
                w.bytes(&from_index.to_le_bytes())?;
                w.bytes(&version.to_le_bytes())?;
                w.bytes(&seen.to_le_bytes())?;
            }
            Message::Heartbeat(b) => w.beat(b)?,
            Message::JoinRefused { from, reason } => {
                w.put(from)?;
                w.put(reason)?;
            }
            Message::VersionRefused { .. } => {}
        }
        Ok(())
    }
}

/// The member records a delta carries (see [`crate::delta`]): those whose stamp, by member
/// index, is after `since`; `digest` is the digest of all of the sender's records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Changes<'a> {
    pub stamps: &'a [u32],
    pub since: u32,
    pub digest: u64,
}

/// The caller's buffer is too small for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

/// [`Beat`]'s fields, written by hand: the most frequent message stays a few instructions to
/// write and read.
impl Writer<'_> {
    fn count(&mut self, n: usize) -> Result<(), BufferTooSmall> {
        self.varint(n as u64)
    }

    fn beat(&mut self, b: &Beat) -> Result<(), BufferTooSmall> {
        self.le16(b.seq)?;
        self.le16(b.sent)?;
        self.le16(b.tag)?;
        let flag = |set: bool, bit: u8| if set { bit } else { 0 };
        let flags = flag(b.reply, BEAT_REPLY) | flag(b.echo.is_some(), BEAT_ECHO);
        self.byte(flags)?;
        if let Some(e) = b.echo {
            self.le16(e.sent)?;
            self.le16(e.held)?;
        }
        Ok(())
    }
}

impl Reader<'_> {
    /// A count, refused before any item is read if it exceeds `cap`.
    fn count(&mut self, cap: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n > cap {
            return Err(WireError::OverCapacity);
        }
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }

    fn beat(&mut self) -> Result<Beat, WireError> {
        let (seq, sent, tag) = (self.le16()?, self.le16()?, self.le16()?);
        let flags = self.byte()?;
        if flags & !(BEAT_REPLY | BEAT_ECHO) != 0 {
            return Err(WireError::Malformed(Malformed::UnknownHeartbeatFlags));
        }
        let echo = if flags & BEAT_ECHO != 0 {
            Some(Echo {
                sent: self.le16()?,
                held: self.le16()?,
            })
        } else {
            None
        };
        Ok(Beat {
            seq,
            sent,
            tag,
            reply: flags & BEAT_REPLY != 0,
            echo,
        })
    }
}

/// Largest clock counter or reachability version accepted from a peer. Honest counters grow by
/// one per change and never get near it; the margin keeps a hostile value from saturating
/// ours, which would freeze our state.
pub const MAX_COUNTER: u64 = 1 << 48;

/// Upper bound of an encoded message for a node with capacities `m` and `r` (a transport's
/// buffer of this size always suffices).
pub const fn max_message_len(m: usize, r: usize) -> usize {
    // member ≤ 120 B, clock entry ≤ 15, seen ≤ 5, version ≤ 15, tombstone ≤ 40; record ≤ 21.
    256 + m * (120 + 15 + 5 + 15 + 40) + r * 21
}

fn encode_gossip<const M: usize, const R: usize>(
    w: &mut Writer<'_>,
    g: &Gossip<M, R>,
    now: Instant,
) -> Result<(), BufferTooSmall> {
    w.count(g.members.len())?;
    for m in &g.members {
        w.put(m)?;
    }
    encode_columns(w, g)?;
    encode_tombstones(w, g, now)
}

/// A delta ([`crate::delta`]): the digest of the sender's members, its tombstones (so the
/// receiver can drop the members they remove before rebuilding), whether every record
/// follows (then the receiver's own are not used), the records `changed` selects, and the
/// columns, by index into the rebuilt members.
fn encode_delta<const M: usize, const R: usize>(
    w: &mut Writer<'_>,
    g: &Gossip<M, R>,
    changed: Option<Changes<'_>>,
    now: Instant,
) -> Result<(), BufferTooSmall> {
    let digest = changed.map_or_else(|| crate::delta::members_digest(g), |c| c.digest);
    w.bytes(&digest.to_le_bytes())?;
    encode_tombstones(w, g, now)?;
    w.bool(changed.is_none())?;
    let sent = |i: usize| changed.is_none_or(|c| c.stamps.get(i).is_none_or(|s| *s > c.since));
    w.count((0..g.members.len()).filter(|i| sent(*i)).count())?;
    for (i, m) in g.members.iter().enumerate() {
        if sent(i) {
            w.put(m)?;
        }
    }
    encode_columns(w, g)
}

fn encode_columns<const M: usize, const R: usize>(
    w: &mut Writer<'_>,
    g: &Gossip<M, R>,
) -> Result<(), BufferTooSmall> {
    // Clock entries and the seen set are columns by member index: written as indices.
    let clock = g
        .clock_column()
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0);
    w.count(clock.clone().count())?;
    for (i, v) in clock {
        w.varint(i as u64)?;
        w.varint(*v)?;
    }
    // The seen set as a bitmap by member index: an eighth of a byte per member, where a list
    // of indices takes two bytes per member that has seen the state (most, most of the time).
    for chunk in g.seen_column().chunks(8) {
        let byte = chunk
            .iter()
            .enumerate()
            .fold(0u8, |b, (k, s)| b | (u8::from(*s) << k));
        w.byte(byte)?;
    }
    // Versions are a column by member index, rows name members by index: written as is.
    let versions = g.reachability.versions.iter().enumerate();
    let versions = versions.filter(|(_, v)| **v != 0);
    w.count(versions.clone().count())?;
    for (i, v) in versions {
        w.varint(i as u64)?;
        w.varint(*v)?;
    }
    w.count(g.reachability.rows().len())?;
    for r in g.reachability.rows() {
        w.varint(r.observer.into())?;
        w.varint(r.subject.into())?;
        w.put(&r.status)?;
        w.varint(r.version)?;
    }
    w.bool(g.reachability.is_compacted())
}

fn encode_tombstones<const M: usize, const R: usize>(
    w: &mut Writer<'_>,
    g: &Gossip<M, R>,
    now: Instant,
) -> Result<(), BufferTooSmall> {
    w.count(g.tombstones.len())?;
    for t in &g.tombstones {
        let age_ms = now.millis_since(t.removed_at);
        w.put(&t.address)?;
        w.varint(age_ms)?;
    }
    Ok(())
}

fn member_at<const M: usize, const R: usize>(
    g: &Gossip<M, R>,
    i: u32,
) -> Result<UniqueAddress, WireError> {
    g.members
        .get(i as usize)
        .map(|m| m.address)
        .ok_or(WireError::Malformed(Malformed::MemberIndexOutOfRange))
}

fn decode_gossip<const M: usize, const R: usize>(
    r: &mut Reader<'_>,
    g: &mut Gossip<M, R>,
    now: Instant,
) -> Result<(), WireError> {
    g.clear();
    let n = r.count(M)?;
    for _ in 0..n {
        let m = read_member(r)?;
        if g.members.last().is_some_and(|l| l.address >= m.address) {
            return Err(WireError::Malformed(Malformed::MembersOutOfOrder));
        }
        g.push_member(m).map_err(|_| WireError::OverCapacity)?;
    }
    decode_columns(r, g)?;
    decode_tombstones(r, g, now)?;
    if g.tombstones.iter().any(|t| g.is_member(&t.address)) {
        return Err(WireError::Malformed(Malformed::TombstonedMember));
    }
    Ok(())
}

/// Rebuilds the sender's state from a delta (see [`encode_delta`]) and `base`, the
/// receiver's state, into `g`. False if the result is not the sender's state.
fn decode_delta<const M: usize, const R: usize>(
    r: &mut Reader<'_>,
    members: &[Member],
    g: &mut Gossip<M, R>,
    now: Instant,
) -> Result<bool, WireError> {
    let digest = u64::from_le_bytes(r.array()?);
    g.clear();
    decode_tombstones(r, g, now)?;
    let complete = r.bool()?;
    let ours = if complete { &[][..] } else { members };
    let mut next = 0;
    // Ours before `until` (all of them for `None`), less those the sender's tombstones
    // remove: the records the sender did not send. More than fit is not the sender's state
    // (ours has members the sender never heard of): a miss, not an error.
    let mut take_ours = |g: &mut Gossip<M, R>, until: Option<&UniqueAddress>| {
        while let Some(m) = ours
            .get(next)
            .filter(|m| until.is_none_or(|u| m.address <= *u))
        {
            next += 1;
            if until == Some(&m.address) || g.is_tombstoned(&m.address) {
                continue;
            }
            if g.push_member(m.clone()).is_err() {
                return false;
            }
        }
        true
    };
    let n = r.count(M)?;
    let mut last: Option<UniqueAddress> = None;
    for _ in 0..n {
        let m = read_member(r)?;
        if last.is_some_and(|l| l >= m.address) {
            return Err(WireError::Malformed(Malformed::MembersOutOfOrder));
        }
        last = Some(m.address);
        if !take_ours(g, Some(&m.address)) || g.push_member(m).is_err() {
            return Ok(false);
        }
    }
    if !take_ours(g, None) {
        return Ok(false);
    }
    if g.tombstones.iter().any(|t| g.is_member(&t.address)) {
        return Err(WireError::Malformed(Malformed::TombstonedMember));
    }
    if crate::delta::members_digest(g) != digest {
        return Ok(false);
    }
    decode_columns(r, g)?;
    Ok(true)
}

/// One member record, checked on its own (order is the caller's to check).
fn read_member(r: &mut Reader<'_>) -> Result<Member, WireError> {
    let m: Member = r.take()?;
    if m.status == MemberStatus::Removed {
        return Err(WireError::Malformed(Malformed::RemovedMember));
    }
    // Only the leader hands out up-numbers, when moving a member Up.
    let numbered = m.up_number.is_some();
    let consistent = match m.status {
        MemberStatus::Joining | MemberStatus::WeaklyUp => !numbered,
        MemberStatus::Up | MemberStatus::PreparingForShutdown | MemberStatus::ReadyForShutdown => {
            numbered
        }
        _ => true,
    };
    if !consistent {
        return Err(WireError::Malformed(Malformed::StatusAndUpNumber));
    }
    // No node holds fewer than one member or record (`Node::new` refuses it): such a
    // declaration could only make every merge refuse the state.
    if m.capacity.members == 0 || m.capacity.records == 0 {
        return Err(WireError::Malformed(Malformed::NoCapacity));
    }
    Ok(m)
}

fn decode_columns<const M: usize, const R: usize>(
    r: &mut Reader<'_>,
    g: &mut Gossip<M, R>,
) -> Result<(), WireError> {
    let n = r.count(M)?;
    let mut last = None;
    for _ in 0..n {
        let (i, v) = (r.u32()?, r.u64()?);
        if last.is_some_and(|l| l >= i) || v == 0 || v > MAX_COUNTER {
            return Err(WireError::Malformed(Malformed::ClockEntries));
        }
        last = Some(i);
        member_at(g, i)?;
        g.set_clock_at(i as usize, v);
    }
    let members = g.members.len();
    for first in (0..members).step_by(8) {
        let byte = r.byte()?;
        let bits = (members - first).min(8);
        if bits < 8 && byte >> bits != 0 {
            return Err(WireError::Malformed(Malformed::SeenBeyondMembers));
        }
        for k in (0..bits).filter(|k| byte & (1 << k) != 0) {
            g.set_seen_at(first + k);
        }
    }
    let n = r.count(M)?;
    let mut last = None;
    for _ in 0..n {
        let (i, v) = (r.u32()?, r.u64()?);
        if v > MAX_COUNTER {
            return Err(WireError::Malformed(
                Malformed::ReachabilityVersionOutOfRange,
            ));
        }
        member_at(g, i)?;
        if last.is_some_and(|l| l >= i) {
            return Err(WireError::Malformed(
                Malformed::ReachabilityVersionsOutOfOrder,
            ));
        }
        last = Some(i);
        // A zero version is no version: accepted as before, and not kept.
        g.reachability.versions[i as usize] = v;
    }
    let n = r.count(R)?;
    for _ in 0..n {
        let (o, s) = (r.u32()?, r.u32()?);
        let (status, version): (ReachabilityStatus, u64) = (r.take()?, r.u64()?);
        member_at(g, o)?;
        member_at(g, s)?;
        if version > g.reachability.version_of(o as u16) {
            return Err(WireError::Malformed(Malformed::RecordNewerThanObserver));
        }
        // In range, so below `M`: the indices fit a `u16` (see `reachability::Table`).
        let row = Row {
            observer: o as u16,
            subject: s as u16,
            status,
            version,
        };
        g.reachability
            .push_record(row)
            .map_err(|_| WireError::Malformed(Malformed::RecordsOutOfOrder))?;
    }
    if g.reachability.has_only_reachable_rows() {
        return Err(WireError::Malformed(Malformed::OnlyReachableRows));
    }
    let compacted = r.bool()?;
    g.reachability.set_compacted(compacted);
    Ok(())
}

/// Tombstones into `g`, which the caller checks against the members.
fn decode_tombstones<const M: usize, const R: usize>(
    r: &mut Reader<'_>,
    g: &mut Gossip<M, R>,
    now: Instant,
) -> Result<(), WireError> {
    let n = r.count(M)?;
    for _ in 0..n {
        let (address, age_ms): (UniqueAddress, u64) = (r.take()?, r.u64()?);
        if g.tombstones.last().is_some_and(|l| l.address >= address) {
            return Err(WireError::Malformed(Malformed::TombstonesOutOfOrder));
        }
        let removed_at = now.millis_before(age_ms);
        g.tombstones
            .push(Tombstone {
                address,
                removed_at,
            })
            .map_err(|_| WireError::OverCapacity)?;
    }
    Ok(())
}

/// The sender a message of `kind` (one that begins with its sender) names, read again where
/// the parser stopped before it: a gossip delta for [`WireError::StaleBase`] (the miss is
/// answered to it, once the transport's peer is checked to be it), a join request for
/// [`WireError::JoinRequestUnread`].
pub(crate) fn sender_of(bytes: &[u8], kind: Kind) -> Option<UniqueAddress> {
    match bytes {
        [MAGIC, PROTOCOL_VERSION, k, rest @ ..] if *k == kind as u8 => Reader { rest }.take().ok(),
        _ => None,
    }
}

/// Reads the envelope header: (version, kind byte).
pub fn peek_header(bytes: &[u8]) -> Result<(u8, u8), WireError> {
    match bytes {
        [MAGIC, v, k, ..] => Ok((*v, *k)),
        [m, ..] if *m != MAGIC => Err(WireError::BadMagic),
        _ => Err(WireError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Role;
    use crate::reachability::Table;

    type G = Gossip<8, 16>;

    fn n(i: u8) -> UniqueAddress {
        UniqueAddress::new(([10, 0, 0, i], 7000).into(), 0xABCD_0000 + u64::from(i))
    }

    fn sample() -> G {
        let mut g = G::new();
        for i in 1..=4 {
            let mut roles = RoleSet::new();
            roles.insert(Role::new("web").unwrap()).unwrap();
            let mut m = Member::joining(n(i), roles, AppVersion::new(1, 2, 3));
            m.status = MemberStatus::Up;
            m.up_number = core::num::NonZeroU32::new(u32::from(i));
            g.add_member(m).unwrap();
        }
        g.bump(n(1), true).unwrap();
        g.bump(n(3), true).unwrap();
        g.add_seen(n(2));
        g.change_reachability_for_tests(n(2), n(4), ReachabilityStatus::Unreachable)
            .unwrap();
        g.remove_member(&n(4), Instant::from_millis(1_000));
        g.change_reachability_for_tests(n(1), n(3), ReachabilityStatus::Unreachable)
            .unwrap();
        g.check_invariants().unwrap();
        g
    }

    #[test]
    fn gossip_round_trips_with_ages() {
        let g = sample();
        let mut buf = [0u8; 2048];
        let now = Instant::from_millis(5_000);
        let len = Message::Gossip {
            from: n(1),
            to: n(2),
            gossip: &g,
        }
        .emit(now, &mut buf)
        .unwrap();
        let mut scratch = G::new();
        // Decoded on a node whose clock reads 100 s: the tombstone keeps its 4 s age.
        let later = Instant::from_millis(100_000);
        let msg = Message::parse(&buf[..len], &mut scratch, later).unwrap();
        assert_eq!(
            msg,
            Message::Gossip {
                from: n(1),
                to: n(2),
                gossip: InScratch,
            }
        );
        assert_eq!(scratch.members, g.members);
        assert_eq!(scratch.version(), g.version());
        assert_eq!(scratch.seen(), g.seen());
        assert_eq!(scratch.reachability(), g.reachability());
        assert_eq!(
            scratch.tombstones[0].removed_at,
            Instant::from_millis(96_000)
        );
        scratch.check_invariants().unwrap();
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let g = sample();
        let mut buf = [0u8; 2048];
        let len = Message::Welcome {
            from: n(1),
            to: n(2),
            gossip: &g,
        }
        .emit(Instant::ZERO, &mut buf)
        .unwrap();
        let mut scratch = G::new();
        for cut in 0..len {
            assert!(
                Message::parse(&buf[..cut], &mut scratch, Instant::ZERO).is_err(),
                "cut at {cut}"
            );
        }
        buf[len] = 0;
        assert_eq!(
            Message::parse(&buf[..=len], &mut scratch, Instant::ZERO),
            Err(WireError::TrailingBytes)
        );
    }

    /// The largest declaration a valid configuration makes: every string at its longest,
    /// every duration at its bound.
    fn largest_compat() -> Compat {
        use crate::config::{
            Config, Downing, Name, Value, WhenUnstable, MAX_NAME_LEN, MAX_VALUE_LEN,
        };
        use crate::downing::Strategy;
        let long = |c: char| -> Name { (0..MAX_NAME_LEN).map(|_| c).collect() };
        let mut c = Config {
            cluster_name: long('c'),
            ..Config::default()
        };
        for k in ['a', 'b', 'd', 'e'] {
            let v: Value = (0..MAX_VALUE_LEN).map(|_| 'v').collect();
            c.compat_settings.push((long(k), v)).unwrap();
        }
        let week = core::time::Duration::from_secs(7 * 24 * 3600);
        c.downing.downing = Downing::SplitBrainResolver(Strategy::LeaseMajority {
            role: Some(Role::new("sixteen-byte-rol").unwrap()),
        });
        c.downing.stable_after = Some(week);
        c.downing.down_all_when_unstable = WhenUnstable::After(week);
        c.downing.down_removal_margin = Some(week);
        c.downing.acquire_lease_delay_for_minority = week;
        c.downing.lease_release_after = week;
        c.validate().unwrap();
        Compat::of(&c)
    }

    #[test]
    fn the_largest_join_handshake_round_trips_and_fits_the_smallest_node() {
        let compat = largest_compat();
        let mut roles = RoleSet::new();
        for r in ["sixteen-byte-ro1", "sixteen-byte-ro2", "sixteen-byte-ro3"] {
            roles.insert(Role::new(r).unwrap()).unwrap();
        }
        let (init, join) = (
            Message::<&Gossip<1, 1>>::InitJoin {
                from: n(1),
                compat: compat.clone(),
            },
            Message::Join {
                from: n(1),
                roles,
                app_version: AppVersion::new(u16::MAX, u16::MAX, u16::MAX),
                compat: compat.clone(),
            },
        );
        let mut scratch = Gossip::<1, 1>::new();
        for msg in [init, join] {
            let mut buf = [0u8; max_message_len(1, 1)];
            let len = msg.emit(Instant::ZERO, &mut buf).unwrap();
            match Message::parse(&buf[..len], &mut scratch, Instant::ZERO).unwrap() {
                Message::InitJoin { compat: c, .. } | Message::Join { compat: c, .. } => {
                    assert_eq!(c, compat)
                }
                other => panic!("{other:?}"),
            }
            for cut in 0..len {
                assert!(Message::parse(&buf[..cut], &mut scratch, Instant::ZERO).is_err());
            }
        }
    }

    #[test]
    fn oversized_counts_are_refused_before_reading() {
        let mut bytes = [0u8; 32];
        bytes[..3].copy_from_slice(&[MAGIC, PROTOCOL_VERSION, Kind::Gossip as u8]);
        let mut buf = [0u8; 64];
        let mut w = Writer {
            buf: Some(&mut buf),
            pos: 0,
        };
        w.put(&n(1)).unwrap();
        w.put(&n(2)).unwrap();
        w.count(1_000_000).unwrap();
        let used = w.pos;
        let mut msg = heapless::Vec::<u8, 128>::new();
        msg.extend_from_slice(&bytes[..3]).unwrap();
        msg.extend_from_slice(&buf[..used]).unwrap();
        let mut scratch = G::new();
        assert_eq!(
            Message::parse(&msg, &mut scratch, Instant::ZERO),
            Err(WireError::OverCapacity)
        );
    }

    #[test]
    fn steady_state_messages_are_tiny() {
        let g = sample();
        let mut buf = [0u8; 64];
        let mut beat = Beat {
            seq: 60_000,
            sent: 65_000,
            tag: 7,
            reply: true,
            echo: None,
        };
        let hb = Message::<&G>::Heartbeat(beat)
            .emit(Instant::ZERO, &mut buf)
            .unwrap();
        assert_eq!(hb, 10);
        assert_eq!(
            Message::parse(&buf[..hb], &mut G::new(), Instant::ZERO),
            Ok(Message::Heartbeat(beat))
        );
        beat.echo = Some(Echo { sent: 1, held: 900 });
        let hb = Message::<&G>::Heartbeat(beat)
            .emit(Instant::ZERO, &mut buf)
            .unwrap();
        assert_eq!(hb, 14);
        assert_eq!(
            Message::parse(&buf[..hb], &mut G::new(), Instant::ZERO),
            Ok(Message::Heartbeat(beat))
        );
        buf[9] |= 8;
        assert_eq!(
            Message::parse(&buf[..hb], &mut G::new(), Instant::ZERO),
            Err(WireError::Malformed(Malformed::UnknownHeartbeatFlags))
        );
        buf[9] &= !8;
        assert_eq!(
            Message::parse(&buf[..hb - 1], &mut G::new(), Instant::ZERO),
            Err(WireError::Truncated)
        );
        let st = Message::<&G>::GossipStatus {
            to_uid: n(2).uid(),
            from_index: 7,
            version: g.version_digest(),
            seen: g.seen_digest(),
            reply: false,
        }
        .emit(Instant::ZERO, &mut buf)
        .unwrap();
        assert_eq!(st, 29);
        assert_eq!(
            Message::parse(&buf[..st], &mut G::new(), Instant::ZERO),
            Ok(Message::GossipStatus {
                to_uid: n(2).uid(),
                from_index: 7,
                version: g.version_digest(),
                seen: g.seen_digest(),
                reply: false,
            })
        );
    }

    /// Encodes `g` after `tamper` has changed it behind the invariants' back.
    fn tampered(tamper: impl FnOnce(&mut G)) -> Result<Message, WireError> {
        let mut g = sample();
        tamper(&mut g);
        let mut buf = [0u8; 2048];
        let len = Message::Gossip {
            from: n(1),
            to: n(2),
            gossip: &g,
        }
        .emit(Instant::ZERO, &mut buf)
        .unwrap();
        Message::parse(&buf[..len], &mut G::new(), Instant::ZERO)
    }

    #[test]
    fn hostile_gossip_content_is_refused() {
        assert!(tampered(|_| {}).is_ok());
        // A member declaring that it holds nothing.
        assert_eq!(
            tampered(|g| g.members[1].capacity.records = 0),
            Err(WireError::Malformed(Malformed::NoCapacity))
        );
        // An Up member without an up-number.
        assert_eq!(
            tampered(|g| g.members[0].up_number = None),
            Err(WireError::Malformed(Malformed::StatusAndUpNumber))
        );
        // A counter that would freeze ours if adopted.
        assert!(matches!(
            tampered(|g| g.set_clock_at(0, MAX_COUNTER + 1)),
            Err(WireError::Malformed(_))
        ));
        // Rows that only say Reachable are never stored by an honest observer.
        assert_eq!(
            tampered(|g| {
                let mut r = Table::<8, 16>::new();
                r.versions.extend([1, 0, 0]);
                r.push_record(Row {
                    observer: 0,
                    subject: 1,
                    status: ReachabilityStatus::Reachable,
                    version: 1,
                })
                .unwrap();
                g.reachability = r;
            }),
            Err(WireError::Malformed(Malformed::OnlyReachableRows))
        );
    }

    /// A gossip message from `n(1)` to `n(2)` holding members `n(1)` and `n(2)`, no clock
    /// entries, the reachability versions `versions` and no rows.
    fn with_versions(versions: &[(u32, u64)]) -> heapless::Vec<u8, 512> {
        let mut buf = [0u8; 512];
        let mut w = Writer {
            buf: Some(&mut buf),
            pos: 0,
        };
        for b in [MAGIC, PROTOCOL_VERSION, Kind::Gossip as u8] {
            w.byte(b).unwrap();
        }
        w.put(&n(1)).unwrap();
        w.put(&n(2)).unwrap();
        w.count(2).unwrap();
        for i in 1..=2 {
            w.put(&Member::joining(
                n(i),
                RoleSet::new(),
                AppVersion::default(),
            ))
            .unwrap();
        }
        w.count(0).unwrap(); // clock
        w.count(0).unwrap(); // seen
        w.count(versions.len()).unwrap();
        for (i, v) in versions {
            w.varint((*i).into()).unwrap();
            w.varint(*v).unwrap();
        }
        w.count(0).unwrap(); // rows
        w.bool(false).unwrap(); // compacted
        w.count(0).unwrap(); // tombstones
        let len = w.pos;
        buf[..len].iter().copied().collect()
    }

    #[test]
    fn a_zero_reachability_version_is_accepted_as_no_version() {
        // Never sent by an honest node, accepted as before; it is not kept, so the state
        // re-encodes without it.
        let mut g = G::new();
        Message::parse(&with_versions(&[(0, 0), (1, 3)]), &mut g, Instant::ZERO).unwrap();
        let versions: std::vec::Vec<_> = g.reachability().versions().collect();
        assert_eq!(versions, [(&n(2), 3)]);
        let mut buf = [0u8; 512];
        let out = Message::Gossip {
            from: n(1),
            to: n(2),
            gossip: &g,
        };
        let len = out.emit(Instant::ZERO, &mut buf).unwrap();
        assert_eq!(&buf[..len], &with_versions(&[(1, 3)])[..]);
        // Order is still checked across it.
        assert_eq!(
            Message::parse(&with_versions(&[(1, 0), (0, 3)]), &mut g, Instant::ZERO),
            Err(WireError::Malformed(
                Malformed::ReachabilityVersionsOutOfOrder
            ))
        );
        assert_eq!(
            Message::parse(&with_versions(&[(0, 0), (0, 0)]), &mut g, Instant::ZERO),
            Err(WireError::Malformed(
                Malformed::ReachabilityVersionsOutOfOrder
            ))
        );
    }

    #[test]
    fn headers_are_checked() {
        let mut s = G::new();
        assert_eq!(
            Message::parse(&[], &mut s, Instant::ZERO),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Message::parse(&[1, 2, 3], &mut s, Instant::ZERO),
            Err(WireError::BadMagic)
        );
        assert_eq!(
            Message::parse(&[MAGIC, 9, 1], &mut s, Instant::ZERO),
            Err(WireError::UnsupportedVersion {
                version: 9,
                kind: 1
            })
        );
        assert_eq!(
            Message::parse(&[MAGIC, PROTOCOL_VERSION, 77], &mut s, Instant::ZERO),
            Err(WireError::UnknownKind(77))
        );
        assert_eq!(
            Message::parse(&[MAGIC, 9, 0xFF], &mut s, Instant::ZERO),
            Ok(Message::VersionRefused { version: 9 })
        );
    }
}
