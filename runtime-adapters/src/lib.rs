//! # fjell-runtime
//!
//! Runs a fjell node — the sans-IO [`fjell_core::Node`] over the QUIC transport
//! [`fjell_quic::Transport`] — on a thread of its own, on smol, on tokio, or on any
//! executor, and offers the API most users touch: a [`ClusterBuilder`] and a [`Cluster`]
//! handle, in the spirit of Pekko's `Cluster(system)`: join, subscribe, leave, down, ask for
//! the state.
//!
//! - **One task per node**: the [`Driver`] owns the node's core. It feeds it transport
//!   input, timer expiries, user commands and lease answers in order and flushes the
//!   outputs after every input (fjell-core's call order). Handles talk to it over
//!   async-channel; the only lock is the state snapshot's, never held across an await.
//! - **Runtimes are values** ([`runtime`]): one [`Runtime`] carries the driver, the
//!   transport's tasks and its socket. [`ClusterBuilder::start`] runs each node on a thread
//!   of its own ([`OwnThread`]), isolated from the application's executor, so application
//!   load never delays heartbeats (Pekko's cluster dispatcher);
//!   [`ClusterBuilder::start_on`] shares one: [`Smol`], `Tokio`, or your own executor.
//!   Nodes on different runtimes can share a process.
//! - **Settings** ([`settings`]): every core setting on the builder, validated by the core
//!   when the node is built; or a TOML file with Pekko's key names and `FJELL_*` environment
//!   overrides, rejected at start with an error naming the key.
//! - **Graceful end**: [`Cluster::shutdown`] (and dropping the last handle) leaves: the
//!   others see the node Left → Exited → Removed, never Unreachable; the transport closes
//!   once the core has stopped, or after the shutdown timeout.
//! - **Logging** with `tracing` ([`cluster_log`]): one line per membership change at info
//!   (switch off with [`ClusterBuilder::log_info`], like Pekko's `log-info`); the state,
//!   convergence and heartbeat starts and stops at debug, or at info with
//!   [`ClusterBuilder::log_info_verbose`] (Pekko's `log-info-verbose`); gossip at debug.
//! - **No executor at all**: fjell-core's `examples/blocking_udp.rs` drives the core over a
//!   std `UdpSocket` in a blocking loop — the template for a device.
//!
//! ## Starting a node
//!
//! One node that founds a cluster (its own seed), waits until it is Up, and leaves. Nodes
//! authenticate each other with certificates from a cluster CA; [`fjell_quic::DevCa`]
//! (feature `dev-certs`) makes a throwaway one for development. The node runs on a thread
//! of its own, so the handle works from any executor, here a plain `block_on`.
//!
//! ```
//! # #[cfg(feature = "dev-certs")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fjell_runtime::{ClusterBuilder, Event, Termination};
//! use fjell_quic::DevCa;
//!
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?; // a free port
//! let addr = socket.local_addr()?;
//! let ca = DevCa::new()?; // development only: logs a warning
//! let cluster = ClusterBuilder::new()
//!     .socket(socket)
//!     .credentials(ca.node(addr)?) // certifies `addr`: the advertised address
//!     .seed_nodes([addr])
//!     .roles(["backend"])
//!     .start()?;
//!
//! futures_lite::future::block_on(async {
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
//! });
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "dev-certs"))]
//! # fn main() {}
//! ```
//!
//! ## On the application's runtime: tokio
//!
//! [`ClusterBuilder::start_on`] runs the node on a runtime the application already has:
//! `Tokio` (feature `tokio`) by its handle, [`Smol`], or any [`Runtime`] (the
//! [`runtime`] module shows one for `async-executor`). Its tasks then compete with the
//! application's for that runtime's threads.
//!
//! ```
//! # #[cfg(all(feature = "tokio", feature = "dev-certs"))]
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
//!         .start_on(Tokio::current())?;
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
//! # #[cfg(not(all(feature = "tokio", feature = "dev-certs")))]
//! # fn main() {}
//! ```
//!
//! ## Bring your own executor
//!
//! [`ClusterBuilder::build`] returns the handle and the [`Driver`] without spawning the
//! driver; poll it on any executor. Its timers, and the transport's socket and tasks, come
//! from the [`Runtime`] given to `build`.
//!
//! ## A node's life
//!
//! - [`ClusterBuilder::start`] (or [`ClusterBuilder::build`]) validates the settings, builds
//!   the core (the default [`DefaultNode`], with its per-member state on the heap, grown
//!   with the cluster: about 16 kB in a 10-member cluster, 400 kB in a 1,000-member one), binds
//!   the transport and, once the driver runs, joins the seed nodes if any were given.
//! - Watch it with [`Cluster::state`], [`Cluster::wait_for`] (any condition on the state,
//!   including ones no event announces, such as convergence), [`Cluster::subscribe`] (a
//!   snapshot, then every change) or [`Cluster::subscribe_as_events`] (the current state as
//!   events, then every change), and the on-member-up / on-member-removed callbacks.
//! - The driver ends when the core stops for any reason — it left, it was downed (as Pekko's
//!   `run-coordinated-shutdown-when-down`), it was removed, it gave up joining — or on
//!   [`Cluster::abort`]. It then closes the transport, runs the on-member-removed callbacks
//!   and closes every subscription. [`Cluster::terminated`] says how it ended
//!   ([`Termination`]). To take part again, build a new node (a new incarnation).
//! - [`Cluster::shutdown`] leaves gracefully and waits; dropping the last handle starts the
//!   same leave in the background. Cancelling the driver (dropping a runtime with it) is a
//!   crash as far as the others can tell.
//!
//! ## Features
//!
//! - `smol` (default): [`OwnThread`] (and so [`ClusterBuilder::start`]) and [`Smol`].
//! - `tokio`: the `Tokio` adapter. Both can be on in one build; the runtime is a value.
//! - `dev-certs`: fjell-quic's [`DevCa`](fjell_quic::DevCa), a throwaway CA for development
//!   and tests; off by default so production builds do not link it.
//!
//! ## Management
//!
//! Every node answers operator tools that connect with an administrator certificate from
//! the cluster CA ([`management`]: members, status with phi per monitored member, leader,
//! unreachable, join, leave, down, is-available); the `fjell` binary is such a tool.
//!
//! ## Limits and what is not done
//!
//! - Subscriptions are unbounded channels, so a slow subscriber never stalls the node; one
//!   that never reads grows without bound. Drop a subscription you no longer read.
//! - Environment overrides cannot name role names or compat keys that contain `_`.
//! - Restarting a node on the same port in the same process: closing the transport returns
//!   before the QUIC endpoint has released its UDP socket, so binding the port again may
//!   briefly fail with `AddrInUse` (a new process is not affected).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cluster;
pub mod cluster_log;
pub mod credentials;
mod driver;
mod error;
pub mod event_log;
pub mod lease;
pub mod management;
pub mod metrics;
mod progress;
pub mod runtime;
pub mod settings;
mod state;

pub use cluster::{Cluster, ClusterBuilder, DefaultNode, Subscription, DEFAULT_SHUTDOWN_TIMEOUT};
pub use driver::{Driver, Termination};
pub use error::{SettingsError, StartError};
pub use fjell_core as core;
pub use fjell_core::{
    CommandError, Config, Downing, Event, Member, MemberStatus, StopReason, Strategy, UniqueAddress,
};
pub use fjell_quic as quic;
pub use fjell_quic::Credentials;
pub use lease::{ClusterLease, SharedMemoryLease};
pub use metrics::Metrics;
#[cfg(feature = "tokio")]
pub use runtime::Tokio;
pub use runtime::{BoxFuture, Runtime};
#[cfg(feature = "smol")]
pub use runtime::{OwnThread, Smol};
pub use settings::Settings;
pub use state::{member_of, ClusterState};

/// The README's Rust snippets, compiled as doctests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
