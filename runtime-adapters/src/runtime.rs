//! Where a node runs: one [`Runtime`] value (quinn's trait — spawn, timers, UDP sockets)
//! carries the driver, the transport's tasks and its socket. Nothing is chosen at compile
//! time; nodes on different runtimes can share a process.
//!
//! - [`OwnThread`] (feature `smol`, default): a thread of the node's own, with its own
//!   executor, so a saturated application executor never delays a heartbeat (Pekko's
//!   cluster dispatcher). [`ClusterBuilder::start`](crate::ClusterBuilder::start) uses it.
//! - [`Smol`] (feature `smol`): smol's global executor and `async-io`.
//! - `Tokio` (feature `tokio`): a tokio runtime, by its handle.
//! - Any other executor: implement [`Runtime`] — spawn on your executor, and take timers and
//!   sockets from a reactor (below: `async-executor` with `async-io`).
//!
//! ```
//! # #[cfg(feature = "smol")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use fjell_runtime::quic::rt::{AsyncTimer, AsyncUdpSocket};
//! use fjell_runtime::{ClusterBuilder, Runtime, Termination};
//!
//! /// An `async-executor` run by threads of the application; `async-io` for timers and
//! /// sockets (the same reactor quinn's smol runtime uses).
//! #[derive(Debug, Clone)]
//! struct MyExecutor(Arc<async_executor::Executor<'static>>);
//!
//! impl Runtime for MyExecutor {
//!     fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
//!         Box::pin(async_io::Timer::at(at))
//!     }
//!     fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
//!         self.0.spawn(task).detach();
//!     }
//!     fn wrap_udp_socket(
//!         &self,
//!         socket: std::net::UdpSocket,
//!     ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
//!         // quinn's async-io socket; it does not involve smol's executor.
//!         quinn::SmolRuntime.wrap_udp_socket(socket)
//!     }
//! }
//!
//! let executor = MyExecutor(Arc::new(async_executor::Executor::new()));
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let addr = socket.local_addr()?;
//! let ca = fjell_quic::DevCa::new()?;
//! let cluster = ClusterBuilder::new()
//!     .socket(socket)
//!     .credentials(ca.node(addr)?)
//!     .seed_nodes([addr])
//!     .start_on(executor.clone())?;
//! // The application's thread runs the executor while it waits for the node.
//! let ex = executor.0.clone();
//! let ended = async_io::block_on(ex.run(async {
//!     cluster
//!         .wait_for(|s| s.self_member().is_some_and(|m| m.status == fjell_core::MemberStatus::Up))
//!         .await;
//!     cluster.shutdown().await
//! }));
//! assert_eq!(ended, Termination::Stopped(fjell_core::StopReason::Left));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "smol"))]
//! # fn main() {}
//! ```

use std::future::Future;
use std::pin::Pin;
#[cfg(any(feature = "smol", feature = "tokio"))]
use std::sync::Arc;

pub use fjell_quic::rt::{AsyncTimer, AsyncUdpSocket, Runtime};

/// A boxed, sendable future: what the lease traits hand around.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The core's [`Instant`](fjell_core::Instant) for `at`: microseconds since `origin`.
pub(crate) fn instant_since(
    origin: std::time::Instant,
    at: std::time::Instant,
) -> fjell_core::Instant {
    fjell_core::Instant::from_micros(
        u64::try_from(at.duration_since(origin).as_micros()).unwrap_or(u64::MAX),
    )
}

/// The smol runtime: its global executor, and `async-io` for timers and sockets.
#[cfg(feature = "smol")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

#[cfg(feature = "smol")]
impl Runtime for Smol {
    fn new_timer(&self, at: std::time::Instant) -> Pin<Box<dyn AsyncTimer>> {
        quinn::SmolRuntime.new_timer(at)
    }

    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        smol::spawn(task).detach();
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        quinn::SmolRuntime.wrap_udp_socket(socket)
    }
}

/// A tokio runtime, by its handle: tasks are spawned on it, and timers and sockets are made
/// inside it, so the node's futures may be polled from any thread. Needs tokio's time and
/// I/O drivers (`enable_all` on the runtime builder).
#[cfg(feature = "tokio")]
#[derive(Debug, Clone)]
pub struct Tokio(pub tokio::runtime::Handle);

#[cfg(feature = "tokio")]
impl Tokio {
    /// The runtime the caller runs in. Panics outside a tokio runtime, like
    /// `tokio::runtime::Handle::current`.
    pub fn current() -> Self {
        Tokio(tokio::runtime::Handle::current())
    }
}

#[cfg(feature = "tokio")]
impl Runtime for Tokio {
    fn new_timer(&self, at: std::time::Instant) -> Pin<Box<dyn AsyncTimer>> {
        // tokio's timers register with the time driver when created.
        let _inside = self.0.enter();
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.spawn(task);
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        let _inside = self.0.enter();
        quinn::TokioRuntime.wrap_udp_socket(socket)
    }

    fn now(&self) -> std::time::Instant {
        // tokio's clock, which tests may pause.
        tokio::time::Instant::now().into_std()
    }
}

/// A thread of the node's own with an executor of its own (`async-executor`, `async-io`
/// timers and sockets): the driver and the transport run there, so an application that
/// saturates its executor — or every core — does not delay heartbeats beyond what the
/// operating system's scheduler does (Pekko's cluster dispatcher).
/// [`ClusterBuilder::start`](crate::ClusterBuilder::start) runs each node on one; the thread
/// ends when the node has stopped and its transport has closed.
#[cfg(feature = "smol")]
#[derive(Clone)]
pub struct OwnThread {
    /// Weak: the transport holds its runtime and the executor holds the transport's tasks,
    /// so a strong reference here would keep both alive forever. The thread owns the
    /// executor; once it ends, what is still spawned is dropped.
    executor: std::sync::Weak<smol::Executor<'static>>,
}

#[cfg(feature = "smol")]
impl std::fmt::Debug for OwnThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnThread").finish_non_exhaustive()
    }
}

/// How long a node's thread keeps running the transport's remaining tasks after the driver
/// has ended (they end on their own once the transport has closed; this bounds a stuck one).
#[cfg(feature = "smol")]
const WIND_DOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// The executor behind an [`OwnThread`], until its thread takes it.
#[cfg(feature = "smol")]
pub(crate) struct Unstarted(Arc<smol::Executor<'static>>);

#[cfg(feature = "smol")]
impl OwnThread {
    /// A runtime whose tasks wait for the thread that [`Unstarted::run`] starts.
    pub(crate) fn new() -> (Self, Unstarted) {
        let executor = Arc::new(smol::Executor::new());
        let runtime = OwnThread {
            executor: Arc::downgrade(&executor),
        };
        (runtime, Unstarted(executor))
    }
}

#[cfg(feature = "smol")]
impl Unstarted {
    /// Starts the thread, named `name`: it runs the executor until `until` completes and
    /// the other tasks have finished (at most [`WIND_DOWN`] more), then drops the executor
    /// with whatever is left.
    pub(crate) fn run(
        self,
        name: String,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let executor = self.0;
        std::thread::Builder::new().name(name).spawn(move || {
            smol::block_on(executor.run(until));
            let deadline = std::time::Instant::now() + WIND_DOWN;
            while !executor.is_empty() && std::time::Instant::now() < deadline {
                smol::block_on(
                    executor.run(smol::Timer::after(std::time::Duration::from_millis(20))),
                );
            }
            if !executor.is_empty() {
                tracing::warn!(
                    "fjell: a stopped node's tasks still ran {WIND_DOWN:?} after it stopped; dropping them"
                );
            }
        })?;
        Ok(())
    }
}

#[cfg(feature = "smol")]
impl Runtime for OwnThread {
    fn new_timer(&self, at: std::time::Instant) -> Pin<Box<dyn AsyncTimer>> {
        quinn::SmolRuntime.new_timer(at)
    }

    fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // After the thread has ended nothing runs: the task is dropped.
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn AsyncUdpSocket>> {
        quinn::SmolRuntime.wrap_udp_socket(socket)
    }
}
