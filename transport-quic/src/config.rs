//! Transport settings, and how the QUIC timers relate to the failure detector.
//!
//! # QUIC idle timeout versus the failure detector
//!
//! Deciding that a peer is gone is the failure detector's job (fjell-core's phi accrual
//! detector, fed by heartbeats). QUIC must never decide it first: a connection closed by the
//! idle timer drops whatever was queued and costs a new handshake, and if it happened before
//! the detector's verdict, a merely slow peer would flap between connected and reconnecting
//! while the detector still considers it healthy.
//!
//! With heartbeat interval `i`, acceptable pause `p` and minimum standard deviation `σ`, phi
//! passes a threshold of 8 after about `i + p + 5.6σ` of silence (4.6 s with the defaults
//! 1 s, 3 s, 100 ms), and the reaper writes the verdict within one more reaper interval. So:
//!
//! - **idle timeout** = `3 · (i + p)`, at least 10 s: 12 s by default, more than twice the
//!   detection time. QUIC uses the smaller of the two sides' values; every node derives it
//!   the same way.
//! - **keep-alive** = `i` (1 s): a QUIC PING whenever the connection has been quiet that
//!   long, so an idle but healthy connection (no gossip, no application traffic) is never
//!   timed out, and NAT bindings stay open. Twelve keep-alives fit in one idle timeout.
//!
//! [`TransportConfig::validate`] refuses settings where the idle timeout does not exceed the
//! detection bound or the keep-alive is not well under the idle timeout.

use std::net::SocketAddr;
use std::time::Duration;

use fjell_core::DetectorSettings;

use crate::frame::DEFAULT_MAX_FRAME;
use crate::tls::Credentials;

/// Settings of a [`Transport`](crate::Transport).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// TLS credentials; the certified node address is this node's identity.
    pub credentials: Credentials,
    /// Local address to bind (default: the certified address).
    pub bind: Option<SocketAddr>,
    /// Largest frame body accepted or sent (default 16 MiB). A peer announcing a larger
    /// frame is disconnected.
    pub max_frame: usize,
    /// Application messages larger than this travel on a stream of their own (default
    /// 64 KiB), so a big message never holds up small ones on the application stream.
    pub large_message_threshold: usize,
    /// Membership (gossip and control) frames queued per peer before sends fail with
    /// [`SendError::QueueFull`](crate::SendError::QueueFull) (default 256). The core resends
    /// gossip every round, so dropping under pressure is safe; blocking the driver is not.
    pub membership_queue: usize,
    /// Application messages queued per peer before [`Transport::send`](crate::Transport::send)
    /// waits (default 1,024).
    pub app_queue: usize,
    /// Large application messages queued per peer before sending waits (default 4).
    pub large_queue: usize,
    /// Received messages held for the caller per kind (core, application) before reading
    /// from the network pauses (default 4,096). Heartbeats that find it full are dropped and
    /// counted rather than waited for.
    pub inbound_queue: usize,
    /// QUIC idle timeout (see the [module docs](self)).
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval (see the [module docs](self)).
    pub keep_alive: Duration,
    /// The failure detector's detection bound `i + p + 6σ`, kept to check the idle timeout.
    pub detection_bound: Duration,
    /// First reconnect delay after a failed dial (default 100 ms); doubles per failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay (default 5 s).
    pub reconnect_max: Duration,
    /// Per-stream QUIC receive window (default 1 MiB).
    pub stream_receive_window: u32,
    /// Connection-wide QUIC receive window, all streams together (default 1 MiB). It bounds
    /// the data in flight towards this node, and so how long a heartbeat datagram can wait
    /// behind stream packets the node has received but not yet processed: without a bound, a
    /// receiver whose CPU falls behind (a debug build, an overloaded host) lets the sender's
    /// congestion window grow and queues seconds of data ahead of every heartbeat.
    pub receive_window: u32,
    /// Accept QUIC datagrams (default true). Peers send heartbeats as datagrams to a node
    /// that accepts them and on a heartbeat stream of their own otherwise.
    pub datagrams: bool,
    /// Declared differences between a node's certified address and the source address of
    /// its connections (default none: a node must connect from the address it certifies;
    /// see [`crate::admission`]).
    pub address_map: Vec<AddressMapping>,
    /// Certificates refused even though the CA signed them (default none). Replace the list
    /// while running with [`Transport::reload`](crate::Transport::reload).
    pub deny: Vec<crate::tls::Fingerprint>,
}

/// A setting with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport setting {key}: {reason}")]
pub struct TransportConfigError {
    /// The field name.
    pub key: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

impl TransportConfig {
    /// Defaults for fjell-core's default failure detector.
    pub fn new(credentials: Credentials) -> Self {
        Self::for_detector(credentials, &DetectorSettings::default())
    }

    /// Defaults whose QUIC timers suit the failure detector `fd` (see the
    /// [module docs](self)).
    pub fn for_detector(credentials: Credentials, fd: &DetectorSettings) -> Self {
        let base = fd.heartbeat_interval + fd.acceptable_heartbeat_pause;
        TransportConfig {
            credentials,
            bind: None,
            max_frame: DEFAULT_MAX_FRAME,
            large_message_threshold: 64 * 1024,
            membership_queue: 256,
            app_queue: 1024,
            large_queue: 4,
            inbound_queue: 4096,
            idle_timeout: (base * 3).max(Duration::from_secs(10)),
            keep_alive: fd.heartbeat_interval,
            detection_bound: base + fd.min_std_deviation * 6,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            stream_receive_window: 1024 * 1024,
            receive_window: 1024 * 1024,
            datagrams: true,
            address_map: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TransportConfigError> {
        let err = |key, reason| Err(TransportConfigError { key, reason });
        if self.idle_timeout <= self.detection_bound {
            return err(
                "idle_timeout",
                "must exceed the failure detector's detection time, or QUIC would declare peers gone first",
            );
        }
        if self.keep_alive.is_zero() || self.keep_alive * 3 > self.idle_timeout {
            return err(
                "keep_alive",
                "must be non-zero and at most a third of the idle timeout",
            );
        }
        if self.max_frame < 1024 || self.max_frame > u32::MAX as usize {
            return err("max_frame", "must be between 1 KiB and 4 GiB");
        }
        if self.large_message_threshold > self.max_frame {
            return err("large_message_threshold", "must not exceed max_frame");
        }
        if self.membership_queue == 0
            || self.app_queue == 0
            || self.large_queue == 0
            || self.inbound_queue == 0
        {
            return err("queues", "every queue needs room for at least one message");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return err(
                "reconnect_min",
                "must be non-zero and at most reconnect_max",
            );
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "dev-certs"))]
mod tests {
    use super::*;

    #[test]
    fn quic_timers_follow_the_failure_detector() {
        let creds = crate::DevCa::new()
            .unwrap()
            .node("127.0.0.1:7355".parse().unwrap())
            .unwrap();
        let cfg = TransportConfig::new(creds.clone());
        cfg.validate().unwrap();
        assert_eq!(cfg.idle_timeout, Duration::from_secs(12));
        assert_eq!(cfg.keep_alive, Duration::from_secs(1));
        assert!(cfg.idle_timeout > cfg.detection_bound * 2);

        // A slower detector gets a longer idle timeout.
        let fd = DetectorSettings {
            heartbeat_interval: Duration::from_secs(2),
            acceptable_heartbeat_pause: Duration::from_secs(10),
            ..DetectorSettings::default()
        };
        let slow = TransportConfig::for_detector(creds.clone(), &fd);
        slow.validate().unwrap();
        assert_eq!(slow.idle_timeout, Duration::from_secs(36));

        // QUIC must not give up on a peer before the detector would.
        let mut early = cfg.clone();
        early.idle_timeout = Duration::from_secs(4);
        assert_eq!(early.validate().unwrap_err().key, "idle_timeout");
        let mut lazy = cfg;
        lazy.keep_alive = Duration::from_secs(6);
        assert_eq!(lazy.validate().unwrap_err().key, "keep_alive");
    }
}

/// A declared difference between the address a node's certificate certifies and the source
/// address its connections arrive from (NAT, containers, a proxy). Without one, an inbound
/// connection whose source differs from its certified address is refused.
///
/// Written `CERTIFIED=OBSERVED`: `10.0.0.2:7355=192.168.1.5:40000` (that port only) or
/// `10.0.0.2:7355=192.168.1.5` (any port of that IP, for NATs that rewrite ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressMapping {
    /// The address the certificate certifies.
    pub certified: SocketAddr,
    /// The source IP connections from that node arrive from.
    pub observed_ip: std::net::IpAddr,
    /// The source port, if it is fixed.
    pub observed_port: Option<u16>,
}

impl AddressMapping {
    /// True if a connection certified as `certified` may arrive from `source`.
    pub fn allows(&self, certified: SocketAddr, source: SocketAddr) -> bool {
        self.certified == certified
            && self.observed_ip.to_canonical() == source.ip().to_canonical()
            && self.observed_port.is_none_or(|p| p == source.port())
    }
}

/// An address mapping that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an address mapping is CERTIFIED=OBSERVED: IP:PORT=IP:PORT or IP:PORT=IP")]
pub struct BadAddressMapping;

impl std::str::FromStr for AddressMapping {
    type Err = BadAddressMapping;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (certified, observed) = s.split_once('=').ok_or(BadAddressMapping)?;
        let certified = certified.trim().parse().map_err(|_| BadAddressMapping)?;
        let observed = observed.trim();
        let (observed_ip, observed_port) = match observed.parse::<SocketAddr>() {
            Ok(a) => (a.ip(), Some(a.port())),
            Err(_) => (observed.parse().map_err(|_| BadAddressMapping)?, None),
        };
        Ok(AddressMapping {
            certified,
            observed_ip,
            observed_port,
        })
    }
}

impl std::fmt::Display for AddressMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.observed_port {
            Some(p) => write!(
                f,
                "{}={}",
                self.certified,
                SocketAddr::new(self.observed_ip, p)
            ),
            None => write!(f, "{}={}", self.certified, self.observed_ip),
        }
    }
}
