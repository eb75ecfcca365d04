//! The frame codec: what fjell-quic writes on QUIC streams and datagrams. Sans-IO: no sockets,
//! no runtime, so the fuzz target and the tests drive it directly.
//!
//! ```text
//! stream   := "FJ" VERSION:u8 LANE:u8  frame*     (an application stream opens with AppStream)
//! frame    := LEN:u32-le  body                  (LEN = body length, at most the maximum)
//! datagram := VERSION:u8  body
//! body     := KIND:u8  postcard(fields of that kind)
//! ```
//!
//! The stream header is written once per stream, so a peer speaking another protocol version
//! is refused on its first bytes. The length is a fixed four bytes, not a varint, so an
//! oversized frame is refused before any of it is buffered. The kind is a plain byte rather
//! than a postcard enum tag, so an unknown kind is told apart from a malformed body.

use bytes::{Buf, Bytes, BytesMut};
use fjell_core::DeliveryClass;
use serde::Deserialize;

/// Two bytes that open every fjell stream.
pub const STREAM_MAGIC: [u8; 2] = *b"FJ";
/// The framing version this build speaks (2: application streams open with
/// [`Frame::AppStream`]).
pub const FRAME_VERSION: u8 = 2;
/// Bytes of the stream header (magic, version, lane).
pub const STREAM_HEADER_LEN: usize = 4;
/// Bytes of a frame's length prefix.
pub const LEN_PREFIX: usize = 4;
/// Default maximum frame body (16 MiB): room for a 4 MiB application message several times
/// over, small enough that one hostile length cannot exhaust memory.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Which traffic a stream carries. Each lane is its own QUIC stream, so one never waits
/// behind another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Lane {
    /// Membership: the hello, gossip and control messages of the core.
    Membership = 0,
    /// Application messages below the large-message threshold, in order.
    App = 1,
    /// One large application message (a stream of its own, finished after it).
    LargeApp = 2,
    /// Heartbeats, when the peer cannot take QUIC datagrams.
    Heartbeat = 3,
}

impl Lane {
    /// The lane for a header byte.
    pub fn from_u8(b: u8) -> Option<Lane> {
        Some(match b {
            0 => Lane::Membership,
            1 => Lane::App,
            2 => Lane::LargeApp,
            3 => Lane::Heartbeat,
            _ => return None,
        })
    }
}

/// The byte a core message's [`DeliveryClass`] travels as.
fn class_byte(c: DeliveryClass) -> u8 {
    match c {
        DeliveryClass::Heartbeat => 0,
        DeliveryClass::Gossip => 1,
        DeliveryClass::Control => 2,
    }
}

/// The [`DeliveryClass`] a byte names, if any.
fn class_from_byte(b: u8) -> Option<DeliveryClass> {
    Some(match b {
        0 => DeliveryClass::Heartbeat,
        1 => DeliveryClass::Gossip,
        2 => DeliveryClass::Control,
        _ => return None,
    })
}

/// Frame kinds (the first body byte).
mod kind {
    pub const HELLO: u8 = 1;
    pub const CORE: u8 = 2;
    pub const APP: u8 = 3;
    pub const REQUEST: u8 = 4;
    pub const RESPONSE: u8 = 5;
    pub const APP_STREAM: u8 = 6;
}

/// One decoded frame. Payloads share the decoder's buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// First frame on a connection's membership stream: the sender's endpoint instance, a
    /// random number drawn at bind. A new instance from the same address means the peer
    /// restarted; the same one on two connections means both sides dialed at once.
    Hello {
        /// The sender's endpoint instance.
        instance: u64,
    },
    /// A fjell-core message.
    Core {
        /// Its delivery class.
        class: DeliveryClass,
        /// The core's bytes.
        bytes: Bytes,
    },
    /// A one-way application message (postcard of the user's type).
    App {
        /// The serialized message.
        payload: Bytes,
    },
    /// An application request, answered by a [`Frame::Response`] with the same id.
    Request {
        /// Chosen by the requester, unique among its open requests.
        id: u64,
        /// The serialized request.
        payload: Bytes,
    },
    /// An application response.
    Response {
        /// The request's id.
        id: u64,
        /// The serialized response.
        payload: Bytes,
    },
    /// First frame of every stream on the application lane: which sender endpoint instance
    /// wrote it, and its number among that instance's application streams to this peer
    /// (one per connection). The receiver delivers a stream's frames only while no stream
    /// with a higher number has delivered, so messages never go back in order when a
    /// connection is replaced; frames left on an older stream are dropped, like those lost
    /// with a broken connection.
    AppStream {
        /// The sender's endpoint instance (as in its hello).
        instance: u64,
        /// 0, 1, 2, ... per instance and peer.
        number: u64,
    },
}

#[derive(Deserialize)]
struct HelloBody {
    instance: u64,
}

#[derive(Deserialize)]
struct AppStreamBody {
    instance: u64,
    number: u64,
}

#[derive(Deserialize)]
struct CoreBody<'a> {
    class: u8,
    #[serde(borrow)]
    bytes: &'a [u8],
}

// The bodies of application frames, decoded by hand (see `Frame::decode_body`); serde's
// versions remain as the reference the tests compare with.
#[cfg(test)]
#[derive(Deserialize)]
struct AppBody<'a> {
    #[serde(borrow)]
    payload: &'a [u8],
}

#[cfg(test)]
#[derive(Deserialize)]
struct CorrelatedBody<'a> {
    id: u64,
    #[serde(borrow)]
    payload: &'a [u8],
}

/// Why bytes from a peer were refused. Each variant is one reason counted by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The stream does not start with the fjell magic: not a fjell peer.
    #[error("stream does not start with the fjell magic bytes")]
    BadMagic,
    /// The peer speaks a framing version this build does not.
    #[error("framing version {0} not supported (this node speaks {FRAME_VERSION})")]
    UnsupportedVersion(u8),
    /// The stream header names a lane this build does not know.
    #[error("unknown lane {0}")]
    UnknownLane(u8),
    /// A frame's length prefix exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The frame's fields do not decode, or bytes are left over after them.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The stream ended in the middle of a frame or header.
    #[error("stream ended in the middle of a frame")]
    Truncated,
}

impl Frame {
    /// Bytes of the body (kind byte and fields), without the length prefix.
    pub fn body_len(&self) -> usize {
        // postcard varints: at most 10 bytes per u64 or length.
        match self {
            Frame::Hello { .. } => 1 + 10,
            Frame::AppStream { .. } => 1 + 20,
            Frame::Core { bytes, .. } => 2 + 10 + bytes.len(),
            Frame::App { payload } => 1 + 10 + payload.len(),
            Frame::Request { payload, .. } | Frame::Response { payload, .. } => {
                1 + 20 + payload.len()
            }
        }
    }

    /// Appends the body (kind byte and postcard fields) to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        // Written by hand in postcard's format (LEB128 varints, byte strings as length and
        // bytes): serde would emit a byte slice one element at a time.
        match self {
            Frame::Hello { instance } => {
                out.push(kind::HELLO);
                put_varint(out, *instance);
            }
            Frame::Core { class, bytes } => {
                out.push(kind::CORE);
                out.push(class_byte(*class));
                put_bytes(out, bytes);
            }
            Frame::App { payload } => {
                out.push(kind::APP);
                put_bytes(out, payload);
            }
            Frame::Request { id, payload } => {
                out.push(kind::REQUEST);
                put_varint(out, *id);
                put_bytes(out, payload);
            }
            Frame::Response { id, payload } => {
                out.push(kind::RESPONSE);
                put_varint(out, *id);
                put_bytes(out, payload);
            }
            Frame::AppStream { instance, number } => {
                out.push(kind::APP_STREAM);
                put_varint(out, *instance);
                put_varint(out, *number);
            }
        }
    }

    /// Appends the frame with its length prefix to `out` (for a stream).
    pub fn encode_framed(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; LEN_PREFIX]);
        self.encode_body(out);
        let len = (out.len() - start - LEN_PREFIX) as u32;
        out[start..start + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
    }

    /// The frame as a datagram (version byte and body).
    pub fn encode_datagram(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.body_len());
        out.push(FRAME_VERSION);
        self.encode_body(&mut out);
        out
    }

    /// Decodes a body (kind byte and fields) that fills `body` exactly.
    pub fn decode_body(body: Bytes) -> Result<Frame, FrameError> {
        let Some(&k) = body.first() else {
            return Err(FrameError::Malformed("empty frame"));
        };
        // Application frames, the many, by hand: their payload is the end of the body, so
        // it becomes `body` itself rather than another view of it (each view of shared
        // bytes costs an atomic count up and one down).
        match k {
            kind::APP => {
                return Ok(Frame::App {
                    payload: payload_at(body, 1)?,
                })
            }
            kind::REQUEST | kind::RESPONSE => {
                let (id, at) = varint(&body, 1).ok_or(UNDECODABLE)?;
                let payload = payload_at(body, at)?;
                return Ok(if k == kind::REQUEST {
                    Frame::Request { id, payload }
                } else {
                    Frame::Response { id, payload }
                });
            }
            _ => {}
        }
        let fields = &body[1..];
        // Payload slices borrow from `fields`; turn them back into shared views of `body`.
        let share = |s: &[u8]| body.slice_ref(s);
        Ok(match k {
            kind::HELLO => {
                let b: HelloBody = exact(fields)?;
                Frame::Hello {
                    instance: b.instance,
                }
            }
            kind::CORE => {
                let b: CoreBody<'_> = exact(fields)?;
                let class = class_from_byte(b.class)
                    .ok_or(FrameError::Malformed("unknown core delivery class"))?;
                Frame::Core {
                    class,
                    bytes: share(b.bytes),
                }
            }
            kind::APP_STREAM => {
                let b: AppStreamBody = exact(fields)?;
                Frame::AppStream {
                    instance: b.instance,
                    number: b.number,
                }
            }
            other => return Err(FrameError::UnknownKind(other)),
        })
    }

    /// Decodes a datagram (version byte and body).
    pub fn decode_datagram(datagram: Bytes) -> Result<Frame, FrameError> {
        match datagram.first() {
            None => Err(FrameError::Truncated),
            Some(&FRAME_VERSION) => Frame::decode_body(datagram.slice(1..)),
            Some(&v) => Err(FrameError::UnsupportedVersion(v)),
        }
    }
}

/// Which application frame [`encode_app_framed`] writes.
#[cfg(feature = "quic")]
#[derive(Debug, Clone, Copy)]
pub(crate) enum AppKind {
    /// [`Frame::App`].
    App,
    /// [`Frame::Request`] with this id.
    Request(u64),
    /// [`Frame::Response`] with this id.
    Response(u64),
}

/// Appends an application frame with its length prefix whose payload is `message` in
/// postcard: the bytes [`Frame::encode_framed`] writes for the payload
/// `postcard::to_allocvec(message)`, serialized straight into `out` instead of through a
/// buffer of its own (a sender's allocations and copies were most of its cost).
#[cfg(feature = "quic")]
pub(crate) fn encode_app_framed<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    kind: AppKind,
    message: &T,
) -> Result<(), postcard::Error> {
    let len = postcard::serialize_with_flavor(message, postcard::ser_flavors::Size::default())?;
    let start = out.len();
    out.reserve(LEN_PREFIX + 1 + 10 + 10 + len);
    out.extend_from_slice(&[0; LEN_PREFIX]);
    match kind {
        AppKind::App => out.push(kind::APP),
        AppKind::Request(id) => {
            out.push(kind::REQUEST);
            put_varint(out, id);
        }
        AppKind::Response(id) => {
            out.push(kind::RESPONSE);
            put_varint(out, id);
        }
    }
    put_varint(out, len as u64);
    let payload = out.len();
    let written = postcard::serialize_with_flavor(message, Tail(out)).map(|o| o.len() - payload);
    if written != Ok(len) {
        // An error, or a value that serialized to another size than it measured: the
        // length written before it would be wrong, so the frame is taken back.
        out.truncate(start);
        return Err(written
            .err()
            .unwrap_or(postcard::Error::SerializeBufferFull));
    }
    let body = (out.len() - start - LEN_PREFIX) as u32;
    out[start..start + LEN_PREFIX].copy_from_slice(&body.to_le_bytes());
    Ok(())
}

/// A postcard flavor that appends to a vector.
#[cfg(feature = "quic")]
struct Tail<'a>(&'a mut Vec<u8>);

#[cfg(feature = "quic")]
impl<'a> postcard::ser_flavors::Flavor for Tail<'a> {
    type Output = &'a mut Vec<u8>;

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    fn try_extend(&mut self, b: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Self::Output> {
        Ok(self.0)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

const UNDECODABLE: FrameError = FrameError::Malformed("fields do not decode");

/// A postcard varint (LEB128, at most 10 bytes, the last at most 1) at `at` in `b`, and
/// where it ends: what postcard's `u64` and (64-bit) `usize` accept, non-minimal encodings
/// included.
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(at + i)?;
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (i < 9 || byte <= 1).then_some((v, at + i + 1));
        }
    }
    None
}

/// The byte string (postcard: varint length, bytes) at `at` that must end `body` exactly.
fn payload_at(mut body: Bytes, at: usize) -> Result<Bytes, FrameError> {
    let (len, start) = varint(&body, at).ok_or(UNDECODABLE)?;
    let len = usize::try_from(len).map_err(|_| UNDECODABLE)?;
    match (body.len() - start).cmp(&len) {
        std::cmp::Ordering::Less => Err(UNDECODABLE),
        std::cmp::Ordering::Greater => {
            Err(FrameError::Malformed("bytes left over after the fields"))
        }
        std::cmp::Ordering::Equal => {
            body.advance(start);
            Ok(body)
        }
    }
}

fn exact<'a, T: Deserialize<'a>>(fields: &'a [u8]) -> Result<T, FrameError> {
    let (v, rest) = postcard::take_from_bytes(fields)
        .map_err(|_| FrameError::Malformed("fields do not decode"))?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(FrameError::Malformed("bytes left over after the fields"))
    }
}

/// The header that opens a stream of `lane`.
pub fn stream_header(lane: Lane) -> [u8; STREAM_HEADER_LEN] {
    [STREAM_MAGIC[0], STREAM_MAGIC[1], FRAME_VERSION, lane as u8]
}

/// Splits a stream into frames. Feed it bytes as they arrive, then take frames until it
/// returns `Ok(None)`. After an error the stream is unusable: the transport closes it.
///
/// It buffers at most one frame (the maximum plus its prefix) beyond the bytes of the last
/// [`FrameDecoder::feed`], and checks a length against the maximum before buffering the body.
/// Frames that lie whole within bytes given with [`FrameDecoder::feed_bytes`] are views of
/// them (no copy); only a frame split across feeds is copied, into the decoder's buffer.
#[derive(Debug)]
pub struct FrameDecoder {
    /// The start of a header or frame whose end has not arrived yet, in an allocation of
    /// exactly its size once that is known: complete, it becomes the frame's bytes as it is
    /// (a `BytesMut` split off its buffer cost two allocations per frame instead).
    buf: Vec<u8>,
    /// Fed bytes not yet looked at (they follow `buf`).
    fed: Bytes,
    max_frame: usize,
    lane: Option<Lane>,
}

impl FrameDecoder {
    /// A decoder for a stream whose frames are at most `max_frame` bytes (body, without the
    /// length prefix).
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            fed: Bytes::new(),
            max_frame,
            lane: None,
        }
    }

    /// The stream's lane, once its header has been read.
    pub fn lane(&self) -> Option<Lane> {
        self.lane
    }

    /// Bytes held, waiting for the rest of a frame (or to be decoded).
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.fed.len()
    }

    /// Appends bytes read from the stream (copied).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.feed_bytes(Bytes::copy_from_slice(bytes));
    }

    /// Appends bytes read from the stream; frames within them share their memory.
    pub fn feed_bytes(&mut self, bytes: Bytes) {
        if self.fed.is_empty() {
            self.fed = bytes;
        } else {
            // Fed twice without decoding in between: rare, so simply joined.
            let mut joined = BytesMut::with_capacity(self.fed.len() + bytes.len());
            joined.extend_from_slice(&self.fed);
            joined.extend_from_slice(&bytes);
            self.fed = joined.freeze();
        }
    }

    /// Bytes of the next unit (the stream header, or a frame with its prefix), as far as
    /// `start` (its first bytes) tells: for a frame, its prefix until the prefix is there.
    fn unit_len(&self, start: &[u8]) -> Result<usize, FrameError> {
        if self.lane.is_none() {
            return Ok(STREAM_HEADER_LEN);
        }
        if start.len() < LEN_PREFIX {
            return Ok(LEN_PREFIX);
        }
        let mut prefix = [0; LEN_PREFIX];
        prefix.copy_from_slice(&start[..LEN_PREFIX]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len > self.max_frame {
            return Err(FrameError::Oversized {
                len,
                max: self.max_frame,
            });
        }
        Ok(LEN_PREFIX + len)
    }

    /// The next whole unit, `None` if more bytes are needed.
    fn next_unit(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            let need = self.unit_len(if self.buf.is_empty() {
                &self.fed
            } else {
                &self.buf
            })?;
            if self.buf.is_empty() && self.fed.len() >= need {
                return Ok(Some(self.fed.split_to(need)));
            }
            if self.buf.len() >= need {
                // Topped up to `need` only, so the buffer is exactly the unit.
                return Ok(Some(Bytes::from(std::mem::take(&mut self.buf))));
            }
            if self.fed.is_empty() {
                return Ok(None);
            }
            // Reserve once for the whole unit rather than growing feed by feed.
            self.buf.reserve_exact(need - self.buf.len());
            let take = (need - self.buf.len()).min(self.fed.len());
            self.buf.extend_from_slice(&self.fed[..take]);
            self.fed.advance(take);
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // The common case first, in few steps: a whole frame at the start of what was fed.
        if self.lane.is_some() && self.buf.is_empty() && self.fed.len() >= LEN_PREFIX {
            let mut prefix = [0; LEN_PREFIX];
            prefix.copy_from_slice(&self.fed[..LEN_PREFIX]);
            let len = u32::from_le_bytes(prefix) as usize;
            if len <= self.max_frame && self.fed.len() - LEN_PREFIX >= len {
                let mut body = self.fed.split_to(LEN_PREFIX + len);
                body.advance(LEN_PREFIX);
                return Frame::decode_body(body).map(Some);
            }
        }
        if self.lane.is_none() {
            let Some(h) = self.next_unit()? else {
                return Ok(None);
            };
            if h[..2] != STREAM_MAGIC {
                return Err(FrameError::BadMagic);
            }
            if h[2] != FRAME_VERSION {
                return Err(FrameError::UnsupportedVersion(h[2]));
            }
            self.lane = Some(Lane::from_u8(h[3]).ok_or(FrameError::UnknownLane(h[3]))?);
        }
        let Some(mut body) = self.next_unit()? else {
            return Ok(None);
        };
        body.advance(LEN_PREFIX);
        Frame::decode_body(body).map(Some)
    }

    /// Call when the stream has ended: an error if it ended inside a header or frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffered() == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::Hello { instance: u64::MAX },
            Frame::Core {
                class: DeliveryClass::Gossip,
                bytes: Bytes::from_static(&[0xF7, 1, 7, 9]),
            },
            Frame::App {
                payload: Bytes::from(vec![5; 300]),
            },
            Frame::Request {
                id: 42,
                payload: Bytes::from_static(b"ping"),
            },
            Frame::Response {
                id: 42,
                payload: Bytes::new(),
            },
            Frame::AppStream {
                instance: u64::MAX - 1,
                number: 300,
            },
        ]
    }

    fn stream_of(frames: &[Frame]) -> Vec<u8> {
        let mut out = stream_header(Lane::Membership).to_vec();
        for f in frames {
            f.encode_framed(&mut out);
        }
        out
    }

    #[test]
    fn frames_survive_a_stream_split_at_every_byte() {
        let frames = all_kinds();
        let bytes = stream_of(&frames);
        for split in 0..bytes.len() {
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                d.feed(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split at {split}");
            assert_eq!(d.lane(), Some(Lane::Membership));
            d.finish().unwrap();
        }
    }

    #[test]
    #[cfg(feature = "quic")] // postcard's allocating serializer
    fn the_hand_written_encoder_writes_postcard() {
        #[derive(serde::Serialize)]
        struct Correlated<'a> {
            id: u64,
            payload: &'a [u8],
        }
        let payload = vec![9u8; 200];
        let mut ours = Vec::new();
        Frame::Request {
            id: 300_000,
            payload: Bytes::from(payload.clone()),
        }
        .encode_body(&mut ours);
        let theirs = postcard::to_allocvec(&Correlated {
            id: 300_000,
            payload: &payload,
        })
        .unwrap();
        assert_eq!(ours[0], kind::REQUEST);
        assert_eq!(&ours[1..], &theirs[..]);
    }

    #[test]
    #[cfg(feature = "quic")]
    fn application_frames_serialized_in_place_are_the_frames_encode_writes() {
        let message = (vec![7u8; 300], "text", 1_000_000u64);
        let payload = Bytes::from(postcard::to_allocvec(&message).unwrap());
        for (kind, frame) in [
            (
                AppKind::App,
                Frame::App {
                    payload: payload.clone(),
                },
            ),
            (
                AppKind::Request(300_000),
                Frame::Request {
                    id: 300_000,
                    payload: payload.clone(),
                },
            ),
            (
                AppKind::Response(1),
                Frame::Response {
                    id: 1,
                    payload: payload.clone(),
                },
            ),
        ] {
            let (mut ours, mut theirs) = (vec![0xAA], vec![0xAA]);
            encode_app_framed(&mut ours, kind, &message).unwrap();
            frame.encode_framed(&mut theirs);
            assert_eq!(ours, theirs, "{kind:?}");
        }
    }

    #[test]
    fn frames_fed_as_bytes_are_views_of_them_unless_split() {
        let frames = all_kinds();
        let bytes = Bytes::from(stream_of(&frames));
        let range = bytes.as_ptr_range();
        let mut d = FrameDecoder::new(1024);
        d.feed_bytes(bytes.clone());
        while let Some(f) = d.next_frame().unwrap() {
            let shared = match &f {
                Frame::Core { bytes, .. } => bytes,
                Frame::App { payload }
                | Frame::Request { payload, .. }
                | Frame::Response { payload, .. } => payload,
                _ => continue,
            };
            assert!(
                shared.is_empty() || range.contains(&shared.as_ptr()),
                "{f:?} copied"
            );
        }
        // Three pieces, every split: the same frames.
        for split in 1..bytes.len() - 1 {
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for part in [
                bytes.slice(..split),
                bytes.slice(split..split + 1),
                bytes.slice(split + 1..),
            ] {
                d.feed_bytes(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split at {split}");
            d.finish().unwrap();
        }
    }

    /// The hand-written decoding of application frames accepts and refuses what serde's
    /// (postcard) does, with the same errors.
    #[test]
    fn application_frames_decode_as_postcard_decodes_them() {
        fn reference(body: &[u8]) -> Result<Frame, FrameError> {
            let b = Bytes::copy_from_slice(body);
            let share = |s: &[u8]| b.slice_ref(s);
            Ok(match body[0] {
                kind::APP => {
                    let f: AppBody<'_> = exact(&b[1..])?;
                    Frame::App {
                        payload: share(f.payload),
                    }
                }
                k => {
                    let f: CorrelatedBody<'_> = exact(&b[1..])?;
                    let (id, payload) = (f.id, share(f.payload));
                    if k == kind::REQUEST {
                        Frame::Request { id, payload }
                    } else {
                        Frame::Response { id, payload }
                    }
                }
            })
        }
        // Varints of every length, minimal or not, in range or not; lengths that fit the
        // rest exactly, fall short, or leave bytes over.
        let mut varints: Vec<Vec<u8>> = vec![vec![]];
        for n in 1..=11 {
            for last in [0u8, 1, 2, 0x7F] {
                let mut v = vec![0x80; n - 1];
                v.push(last);
                varints.push(v);
            }
            varints.push(vec![0xFF; n]);
        }
        for v in [0u64, 1, 3, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            varints.push(b);
        }
        let mut n = 0;
        for k in [kind::APP, kind::REQUEST, kind::RESPONSE] {
            for id in &varints {
                if k == kind::APP && !id.is_empty() {
                    continue;
                }
                for len in &varints {
                    for rest in 0..5 {
                        let mut body = vec![k];
                        body.extend_from_slice(id);
                        body.extend_from_slice(len);
                        body.extend(std::iter::repeat_n(7u8, rest));
                        assert_eq!(
                            Frame::decode_body(Bytes::copy_from_slice(&body)),
                            reference(&body),
                            "{body:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000);
    }

    #[test]
    fn datagrams_round_trip() {
        for f in all_kinds() {
            let d = f.encode_datagram();
            assert!(d.len() <= 1 + f.body_len());
            assert_eq!(Frame::decode_datagram(Bytes::from(d)).unwrap(), f);
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_body_arrives() {
        let mut d = FrameDecoder::new(100);
        d.feed(&stream_header(Lane::App));
        d.feed(&101u32.to_le_bytes());
        assert_eq!(
            d.next_frame(),
            Err(FrameError::Oversized { len: 101, max: 100 })
        );
        assert!(d.buffered() <= LEN_PREFIX);
    }

    #[test]
    fn each_kind_of_bad_input_has_its_own_error() {
        let cases: [(&[u8], FrameError); 6] = [
            (b"XX\x01\x00", FrameError::BadMagic),
            (b"FJ\x01\x00", FrameError::UnsupportedVersion(1)),
            (b"FJ\x02\x09", FrameError::UnknownLane(9)),
            (
                b"FJ\x02\x00\x01\x00\x00\x00\x63",
                FrameError::UnknownKind(0x63),
            ),
            (
                b"FJ\x02\x00\x00\x00\x00\x00",
                FrameError::Malformed("empty frame"),
            ),
            // A hello with a trailing byte.
            (
                b"FJ\x02\x00\x03\x00\x00\x00\x01\x05\x00",
                FrameError::Malformed("bytes left over after the fields"),
            ),
        ];
        for (bytes, want) in cases {
            let mut d = FrameDecoder::new(64);
            d.feed(bytes);
            assert_eq!(d.next_frame(), Err(want), "{bytes:?}");
        }
        let mut d = FrameDecoder::new(64);
        d.feed(b"FJ\x02\x00\x05\x00");
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
        assert_eq!(
            Frame::decode_datagram(Bytes::from_static(&[7, 1, 0])),
            Err(FrameError::UnsupportedVersion(7))
        );
    }
}
