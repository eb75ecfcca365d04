//! # fjell-quic
//!
//! The QUIC remoting layer for fjell: mutual TLS against a cluster CA, heartbeats on
//! unreliable datagrams, gossip and application messages on their own streams.
//!
//! **Status: not implemented yet.** This crate currently only re-exports the pieces of
//! [`fjell_core`] a transport builds on: the delivery class a core [`Transmit`] carries tells
//! the transport which lane to use.
//!
//! ```
//! use fjell_quic::{DeliveryClass, Transmit};
//! fn lane(t: &Transmit) -> &'static str {
//!     match t.class {
//!         DeliveryClass::Heartbeat => "datagram",
//!         DeliveryClass::Gossip => "gossip stream",
//!         DeliveryClass::Control => "control stream",
//!     }
//! }
//! # let _ = lane;
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use fjell_core::{DeliveryClass, Transmit};
