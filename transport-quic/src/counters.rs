//! Counters of refused input and dropped traffic, for metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::frame::FrameError;

/// Why bytes from a peer were refused; each reason closes the connection with its own QUIC
/// application error code and is counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// A frame or stream header that does not decode (bad magic, bad fields, truncated,
    /// a frame kind that does not belong on its lane).
    Malformed,
    /// A length prefix above the maximum frame size.
    Oversized,
    /// An unknown frame kind or lane.
    UnknownKind,
    /// A framing version this build does not speak.
    WrongVersion,
}

impl BadInput {
    /// The reason for a codec error.
    pub fn of(e: &FrameError) -> BadInput {
        match e {
            FrameError::Oversized { .. } => BadInput::Oversized,
            FrameError::UnknownKind(_) | FrameError::UnknownLane(_) => BadInput::UnknownKind,
            FrameError::UnsupportedVersion(_) => BadInput::WrongVersion,
            FrameError::BadMagic | FrameError::Malformed(_) | FrameError::Truncated => {
                BadInput::Malformed
            }
        }
    }

    /// The QUIC application error code the connection is closed with.
    pub fn close_code(self) -> u32 {
        match self {
            BadInput::Malformed => crate::close_code::MALFORMED,
            BadInput::Oversized => crate::close_code::OVERSIZED,
            BadInput::UnknownKind => crate::close_code::UNKNOWN_KIND,
            BadInput::WrongVersion => crate::close_code::WRONG_VERSION,
        }
    }
}

/// A snapshot of the transport's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections closed for malformed input.
    pub malformed: u64,
    /// Connections closed for an oversized frame.
    pub oversized: u64,
    /// Connections closed for an unknown frame kind or lane.
    pub unknown_kind: u64,
    /// Connections closed for a framing version this build does not speak.
    pub wrong_version: u64,
    /// Handshakes that failed (no certificate, another CA, wrong protocol) or peers whose
    /// certificate is not a node's or not the dialed address's.
    pub refused_handshakes: u64,
    /// Duplicate connections closed (simultaneous dials) and connections superseded by a
    /// restarted peer's.
    pub duplicates_closed: u64,
    /// Heartbeats dropped (no connection yet and the small heartbeat queue full, or the
    /// caller not reading fast enough).
    pub heartbeats_dropped: u64,
    /// Membership messages refused because the peer's queue was full.
    pub membership_queue_full: u64,
    /// Connections established (dialed or accepted).
    pub connections: u64,
    /// Application streams left unread because a later connection's stream from the same
    /// peer had delivered: their remaining messages were dropped, as with a broken
    /// connection, rather than delivered out of order.
    pub stale_app_streams: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    malformed: AtomicU64,
    oversized: AtomicU64,
    unknown_kind: AtomicU64,
    wrong_version: AtomicU64,
    pub(crate) refused_handshakes: AtomicU64,
    pub(crate) duplicates_closed: AtomicU64,
    pub(crate) heartbeats_dropped: AtomicU64,
    pub(crate) membership_queue_full: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) stale_app_streams: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn bad_input(&self, why: BadInput) {
        let c = match why {
            BadInput::Malformed => &self.malformed,
            BadInput::Oversized => &self.oversized,
            BadInput::UnknownKind => &self.unknown_kind,
            BadInput::WrongVersion => &self.wrong_version,
        };
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            malformed: self.malformed.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            unknown_kind: self.unknown_kind.load(Relaxed),
            wrong_version: self.wrong_version.load(Relaxed),
            refused_handshakes: self.refused_handshakes.load(Relaxed),
            duplicates_closed: self.duplicates_closed.load(Relaxed),
            heartbeats_dropped: self.heartbeats_dropped.load(Relaxed),
            membership_queue_full: self.membership_queue_full.load(Relaxed),
            connections: self.connections.load(Relaxed),
            stale_app_streams: self.stale_app_streams.load(Relaxed),
        }
    }
}

/// One peer's connection in use, as QUIC measures it (for metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionStats {
    /// The peer's advertised address.
    pub peer: std::net::SocketAddr,
    /// The current smoothed round-trip estimate.
    pub rtt: std::time::Duration,
    /// Packets sent and declared lost.
    pub lost_packets: u64,
    /// Times the congestion controller reduced the window.
    pub congestion_events: u64,
    /// The congestion window, in bytes.
    pub congestion_window: u64,
    /// UDP datagrams sent on this connection.
    pub datagrams_sent: u64,
    /// UDP bytes sent on this connection.
    pub bytes_sent: u64,
    /// UDP bytes received on this connection.
    pub bytes_received: u64,
}

impl ConnectionStats {
    pub(crate) fn of(peer: std::net::SocketAddr, conn: &quinn::Connection) -> Self {
        let s = conn.stats();
        ConnectionStats {
            peer,
            rtt: conn.rtt(),
            lost_packets: s.path.lost_packets,
            congestion_events: s.path.congestion_events,
            congestion_window: s.path.cwnd,
            datagrams_sent: s.udp_tx.datagrams,
            bytes_sent: s.udp_tx.bytes,
            bytes_received: s.udp_rx.bytes,
        }
    }
}

/// Bumps a counter by one.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}
