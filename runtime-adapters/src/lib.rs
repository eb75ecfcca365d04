//! # fjell-runtime
//!
//! Runs a fjell node — the sans-IO [`fjell_core::Node`] over the QUIC transport
//! [`fjell_quic::Transport`] — on smol, on tokio, or on any executor, and offers the API most
//! users touch: a [`ClusterBuilder`] and a [`Cluster`] handle, in the spirit of Pekko's
//! `Cluster(system)`: join, subscribe, leave, down, ask for the state.
//!
//! - **One task per node**: the [`Driver`] owns the node's core. It feeds it transport
//!   input, timer expiries, user commands and lease answers in order and flushes the
//!   outputs after every input (fjell-core's call order). Handles talk to it over
//!   async-channel; the only lock is the state snapshot's, never held across an await.
//! - **Runtimes** ([`runtime`]): [`Smol`] (feature `smol`, default), `Tokio` (feature
//!   `tokio`), or your own: the driver is a plain `Future` that any executor can poll, given
//!   a [`Timer`].
//! - **Settings** ([`settings`]): every core setting on the builder, validated by the core
//!   when the node is built; or a TOML file with Pekko's key names and `FJELL_*` environment
//!   overrides, rejected at start with an error naming the key.
//! - **Graceful end**: [`Cluster::shutdown`] (and dropping the last handle) leaves: the
//!   others see the node Left → Exited → Removed, never Unreachable; the transport closes
//!   once the core has stopped, or after the shutdown timeout.
//! - **Logging** with `tracing`: membership changes at info (switch off with
//!   [`ClusterBuilder::log_info`], like Pekko's `log-info`), gossip at debug.
//! - **No executor at all**: `examples/blocking_udp.rs` drives fjell-core over a std
//!   `UdpSocket` in a blocking loop — the template for a device.
//!
//! ## Embedding with smol
//!
//! One node that founds a cluster (its own seed), waits until it is Up, and leaves. Nodes
//! authenticate each other with certificates from a cluster CA; [`fjell_quic::DevCa`] makes
//! a throwaway one for development.
//!
//! ```
//! # #[cfg(all(feature = "smol", not(feature = "tokio")))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fjell_runtime::{ClusterBuilder, Event, Smol, Termination};
//! use fjell_quic::DevCa;
//!
//! smol::block_on(async {
//!     let socket = std::net::UdpSocket::bind("127.0.0.1:0")?; // a free port
//!     let addr = socket.local_addr()?;
//!     let ca = DevCa::new()?; // development only: logs a warning
//!     let cluster = ClusterBuilder::new()
//!         .socket(socket)
//!         .credentials(ca.node(addr)?) // certifies `addr`: the advertised address
//!         .seed_nodes([addr])
//!         .roles(["backend"])
//!         .start(Smol)?;
//!
//!     // The state as events (race-free: what happened before subscribing is replayed).
//!     let events = cluster.subscribe_as_events().await;
//!     while let Some(event) = events.next().await {
//!         println!("{event:?}");
//!         if matches!(&event, Event::MemberUp(m) if m.address == cluster.self_address()) {
//!             break;
//!         }
//!     }
//!     assert_eq!(cluster.state().members.len(), 1);
//!     assert_eq!(cluster.shutdown().await, Termination::Stopped(fjell_core::StopReason::Left));
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(all(feature = "smol", not(feature = "tokio"))))]
//! # fn main() {}
//! ```
//!
//! ## Embedding with tokio (feature `tokio`)
//!
//! With the `tokio` feature fjell-quic runs its I/O on tokio, so nodes must be built inside
//! a tokio runtime (with time and I/O enabled).
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fjell_runtime::{ClusterBuilder, MemberStatus, Termination, Tokio};
//! use fjell_quic::DevCa;
//!
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//!     let addr = socket.local_addr()?;
//!     let ca = DevCa::new()?;
//!     let cluster = ClusterBuilder::new()
//!         .socket(socket)
//!         .credentials(ca.node(addr)?)
//!         .seed_nodes([addr])
//!         .start(Tokio::current())?;
//!     cluster.register_on_member_up(move || println!("{addr} is Up"));
//!     // Wait on the state itself (changes without an event, like convergence, count too).
//!     let state = cluster
//!         .wait_for(|s| s.self_member().is_some_and(|m| m.status == MemberStatus::Up))
//!         .await
//!         .expect("the node stopped before it was Up");
//!     assert!(state.is_leader());
//!     assert_eq!(cluster.shutdown().await, Termination::Stopped(fjell_core::StopReason::Left));
//!     Ok(())
//! })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! ## Bring your own executor
//!
//! [`ClusterBuilder::build`] returns the handle and the [`Driver`] without spawning
//! anything; poll the driver on your executor with any [`Timer`]. (fjell-quic still runs its
//! socket I/O on its compile-time runtime: smol's, which runs on its own threads, unless the
//! `tokio` feature is on.)
//!
//! ## Features
//!
//! - `smol` (default): the [`Smol`] adapter; fjell-quic on smol.
//! - `tokio`: the `Tokio` adapter, and fjell-quic on tokio **for the whole build** (it
//!   picks one runtime at compile time): with `tokio` on, every node must run inside a tokio
//!   runtime, even one whose driver is polled elsewhere.
//!
//! ## Not done yet
//!
//! - Management commands over QUIC with an administrator certificate (fjell-quic refuses
//!   administrator connections for now).
//! - Transport counters are not exported as metrics; read them with
//!   [`Cluster::transport`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
mod driver;
pub mod lease;
pub mod runtime;
pub mod settings;
mod state;

pub use cluster::{
    Cluster, ClusterBuilder, DefaultNode, StartError, Subscription, DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use driver::{Driver, Termination};
pub use fjell_core as core;
pub use fjell_core::{CommandError, Event, Member, MemberStatus, StopReason, UniqueAddress};
pub use fjell_quic as quic;
pub use lease::{ClusterLease, SharedMemoryLease};
#[cfg(feature = "smol")]
pub use runtime::Smol;
#[cfg(feature = "tokio")]
pub use runtime::Tokio;
pub use runtime::{BoxFuture, Runtime, Timer};
pub use settings::{Settings, SettingsError};
pub use state::{member_of, ClusterState};
