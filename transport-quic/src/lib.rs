//! # fjell-quic
//!
//! The QUIC remoting layer for fjell: nodes talk over QUIC, encrypted and mutually
//! authenticated against a cluster CA, with independent lanes so a large application message
//! never delays a heartbeat.
//!
//! - **One endpoint per node** ([`Transport`]) that listens and dials; at most one connection
//!   per pair of nodes (simultaneous dials resolved the same way on both sides), redialed with
//!   backoff when lost. QUIC's idle timeout and keep-alive are derived from the failure
//!   detector's settings so QUIC never declares a peer gone first ([`config`] explains).
//! - **Lanes**: core heartbeats as QUIC datagrams (a stream of their own if the peer takes
//!   none); gossip and control on a membership stream; application messages on another
//!   stream; each application message above [`TransportConfig::large_message_threshold`] on a
//!   stream of its own. Streams are prioritised in that order and every lane has its own
//!   bounded per-peer queue, so heartbeats never queue behind application data.
//! - **Mutual TLS** ([`tls`]): every certificate must chain to the cluster CA, both ways. The
//!   node address a certificate certifies is passed to the core as the sender of everything
//!   on that connection, so the core's sender check stops a node speaking for another.
//!   Credentials load from PEM files; the `dev-certs` feature adds [`DevCa`], a throwaway
//!   in-memory CA for development (it logs a warning: not for production).
//! - **One certificate, one node** ([`admission`]): a node's connection must come from the
//!   address its certificate certifies (or one the operator mapped to it, for NAT), so a
//!   copy of a node's key used elsewhere is refused instead of evicting the node; a deny
//!   list of certificate fingerprints refuses what the CA signed but should no longer get
//!   in; [`Transport::reload`] swaps credentials and deny list without a restart.
//! - **Framing** ([`frame`]): length-prefixed postcard frames with a maximum size. Bad input
//!   (malformed, oversized, unknown kind, wrong version) closes that connection with an error
//!   code ([`close_code`]) and is counted per reason ([`Counters`]); every other connection
//!   keeps working. Refused handshakes and bad input are logged once per peer and then
//!   summarised per minute, so a flood cannot grow the log at its own rate.
//! - **Administrator connections** ([`admin`]): an operator tool with a certificate that
//!   certifies an administrator (`fjell-admin://NAME`) may send management requests, which
//!   the node's driver answers ([`Transport::recv_admin`], [`AdminClient`]).
//! - **Application messaging**: typed sends ([`Transport::send`]) to members only (sending to
//!   an unknown or removed member fails at once), receiving with the sender's certified
//!   address ([`Transport::recv`]), request/response with a timeout ([`Transport::request`]).
//!   Messages to one member (below the large-message threshold) arrive in the order sent,
//!   at most once: each connection's application stream is numbered
//!   ([`frame::Frame::AppStream`]), and what is left on an older connection's stream once a
//!   newer one has delivered is dropped, never delivered late. The framing version is 2:
//!   nodes of framing version 1 cannot share a cluster with these.
//!
//! ## The runtime is a value
//!
//! fjell-quic has no runtime of its own: [`Transport::bind`] and [`AdminClient::connect`]
//! take an `Arc<dyn` [`Runtime`]`>` (quinn's trait: spawn, timers, UDP sockets), and every
//! task, timer and socket of that transport lives on it. quinn implements it for smol
//! (`quinn::SmolRuntime`, quinn feature `runtime-smol`) and tokio (`quinn::TokioRuntime`,
//! `runtime-tokio`); fjell-runtime has adapters, including a dedicated thread and an example
//! for a third executor. Nodes on different runtimes can share a process.
//!
//! ## Features
//!
//! - `quic` (default): the transport.
//! - `dev-certs` (opt-in): [`DevCa`], a throwaway in-memory CA (rcgen) for development and
//!   tests. Production builds need not link it.
//! - With default features off only the sans-IO [`frame`] codec is built (the fuzz target
//!   uses that).
//!
//! ## Using it with fjell-core
//!
//! The transport does not own the core's [`Node`](fjell_core::Node); a driver does:
//! after every input `drain` the core into a [`Sink`](fjell_core::Sink) whose `transmit`
//! calls [`Transport::send_transmit`], feed each
//! [`CoreMessage`] from [`Transport::recv_core`] to `handle_message(now, msg.from,
//! &msg.bytes)`, and keep [`Transport::set_members`] in step with the core's members.
//!
//! - `msg.from` is the address certified by the peer's certificate, not the UDP source
//!   address, so the core's sender check is what stops one node speaking for another.
//! - [`Transport::send_transmit`] never waits; it fails only for a full membership queue
//!   (drop the message: the core resends gossip) or a closed transport.
//! - Read [`Transport::recv_core`] promptly: when the caller falls behind, stream readers
//!   pause (backpressure) and heartbeats are dropped and counted rather than delivered late.
//! - Call [`Transport::close`] to stop: background tasks hold the endpoint (and its port)
//!   until then.
//! - Connections are kept alive (QUIC keep-alive) while both nodes run. When the core
//!   removes a member, call [`Transport::disconnect`] to close its connection; the peer's
//!   small queues and tasks stay until the transport closes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fjell_core::{Config, DeviceNode, Event, Instant, LeaseRequest, Sink, UniqueAddress};
//! use fjell_quic::{DevCa, Transmit, Transport, TransportConfig};
//!
//! /// Where the core's outputs go: messages to the transport, events to the log.
//! struct Outputs<'a>(&'a Transport);
//!
//! impl Sink for Outputs<'_> {
//!     fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
//!         let _ = self.0.send_transmit(t, bytes); // a full queue drops it; gossip resends
//!     }
//!     fn lease(&mut self, _: LeaseRequest, _: Instant) -> Option<bool> {
//!         None // only lease-majority downing asks
//!     }
//!     fn event(&mut self, e: Event) {
//!         println!("{e:?}");
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let addr = "127.0.0.1:7355".parse()?;
//!     let ca = DevCa::new()?; // development only: logs a warning
//!     let transport = Transport::bind(
//!         TransportConfig::new(ca.node(addr)?),
//!         Arc::new(quinn::SmolRuntime), // or any `fjell_quic::Runtime`
//!     )?;
//!     let mut node = DeviceNode::new(Config::default(), UniqueAddress::new(addr, 1), 2)?;
//!     node.join_seed_nodes(Instant::ZERO, &[addr])?;
//!     let mut buf = vec![0; DeviceNode::MAX_MESSAGE_LEN];
//!     node.drain(Instant::ZERO, &mut buf, &mut Outputs(&transport));
//!     if let Some(m) = transport.recv_core().await {
//!         let _ = node.handle_message(Instant::ZERO, m.from, &m.bytes);
//!         node.drain(Instant::ZERO, &mut buf, &mut Outputs(&transport));
//!     }
//!     transport.set_members(node.members().iter().map(|m| m.address.socket_addr()));
//!     transport.close().await;
//!     Ok(())
//! })
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod frame;

#[cfg(feature = "quic")]
pub mod admin;
#[cfg(feature = "quic")]
pub mod admission;
#[cfg(feature = "quic")]
pub mod config;
#[cfg(feature = "quic")]
mod counters;
#[cfg(feature = "dev-certs")]
mod dev_ca;
#[cfg(feature = "quic")]
mod error;
#[cfg(feature = "quic")]
mod inbox;
#[cfg(feature = "quic")]
mod peer;
#[cfg(feature = "quic")]
mod refusals;
#[cfg(feature = "quic")]
pub mod rt;
#[cfg(feature = "quic")]
pub mod tls;
#[cfg(feature = "quic")]
mod transport;

#[cfg(feature = "quic")]
pub use admin::{AdminClient, AdminError, AdminRequest};
#[cfg(feature = "quic")]
pub use config::{AddressMapping, TransportConfig, TransportConfigError};
#[cfg(feature = "quic")]
pub use counters::{BadInput, ConnectionStats, Counters};
#[cfg(feature = "dev-certs")]
pub use dev_ca::DevCa;
#[cfg(feature = "quic")]
pub use error::{RequestError, SendError, TransportError};
pub use fjell_core::DeliveryClass;
#[cfg(feature = "quic")]
pub use fjell_core::Transmit;
#[cfg(feature = "quic")]
pub use rt::{sleep, Runtime, Sleep};
#[cfg(feature = "quic")]
pub use tls::{Credentials, Fingerprint, PeerIdentity, TlsError};
#[cfg(feature = "quic")]
pub use transport::{AppMessage, CoreMessage, DialOutcome, Transport};

/// QUIC application error codes fjell-quic closes connections with.
pub mod close_code {
    /// The node is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// A second connection between the same two nodes (see [`Transport`](crate)'s docs).
    pub const DUPLICATE: u32 = 1;
    /// The certificate does not certify the address that was dialed.
    pub const IDENTITY_MISMATCH: u32 = 2;
    /// The certificate is not a node's (nor an administrator's).
    pub const NOT_A_NODE: u32 = 3;
    /// The peer is no longer a member ([`Transport::disconnect`](crate::Transport::disconnect)).
    pub const DISCONNECTED: u32 = 4;
    /// A node's connection came from another address than the one its certificate
    /// certifies (see [`admission`](crate::admission)).
    pub const WRONG_PATH: u32 = 5;
    /// The certificate is on the deny list.
    pub const DENIED: u32 = 6;
    /// A malformed frame or stream header.
    pub const MALFORMED: u32 = 0x10;
    /// A frame above the maximum size.
    pub const OVERSIZED: u32 = 0x11;
    /// An unknown frame kind or lane.
    pub const UNKNOWN_KIND: u32 = 0x12;
    /// A framing version this node does not speak.
    pub const WRONG_VERSION: u32 = 0x13;
}
