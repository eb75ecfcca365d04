//! The little a driver needs from an async runtime: a timer, a clock, and (to start the
//! driver in the background) a way to spawn.
//!
//! [`Smol`] (feature `smol`, default) and `Tokio` (feature `tokio`) are ready-made. For any
//! other executor implement [`Timer`] (and [`Runtime`] if you want
//! [`ClusterBuilder::start`](crate::ClusterBuilder::start) to spawn the driver for you), or
//! take the driver from [`ClusterBuilder::build`](crate::ClusterBuilder::build) and poll it
//! yourself: it is a plain `Future`.
//!
//! ```no_run
//! use std::time::Duration;
//! use fjell_runtime::{BoxFuture, ClusterBuilder, Timer};
//!
//! /// A timer for an executor that has none: a thread per sleep (a real one keeps one
//! /// thread and a heap of deadlines).
//! struct ThreadTimer;
//!
//! impl Timer for ThreadTimer {
//!     fn sleep(&self, d: Duration) -> BoxFuture<()> {
//!         let (tx, rx) = async_channel::bounded::<()>(1);
//!         std::thread::spawn(move || {
//!             std::thread::sleep(d);
//!             let _ = tx.try_send(());
//!         });
//!         Box::pin(async move {
//!             let _ = rx.recv().await;
//!         })
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let credentials = fjell_quic::DevCa::new()?.node("127.0.0.1:7355".parse()?)?;
//! let (cluster, driver) = ClusterBuilder::new()
//!     .credentials(credentials)
//!     .seed_nodes(["127.0.0.1:7355".parse()?])
//!     .build(ThreadTimer)?;
//! // Any executor will do; here, a thread that does nothing but poll the driver.
//! std::thread::spawn(move || futures_lite::future::block_on(driver));
//! # drop(cluster);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed, sendable future: what the runtime traits hand around.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Sleeping and reading the monotonic clock.
pub trait Timer: Send + Sync + 'static {
    /// Completes after `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<()>;

    /// The current time on a monotonic clock. The driver maps it to the core's
    /// [`Instant`](fjell_core::Instant) (microseconds since the driver started).
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// A [`Timer`] that can also run a future in the background.
pub trait Runtime: Timer {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<()>);
}

/// The smol runtime (its global executor and `async-io` timers).
#[cfg(feature = "smol")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

#[cfg(feature = "smol")]
impl Timer for Smol {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::after(d).await;
        })
    }
}

#[cfg(feature = "smol")]
impl Runtime for Smol {
    fn spawn(&self, task: BoxFuture<()>) {
        smol::spawn(task).detach();
    }
}

/// The tokio runtime the handle belongs to. Needs tokio's time driver (`enable_time` or
/// `enable_all` on the runtime builder).
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
impl Timer for Tokio {
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        // Created inside the runtime's context: tokio's sleep needs its time driver at
        // creation, and the driver may be polled from any thread.
        let _guard = self.0.enter();
        Box::pin(tokio::time::sleep(d))
    }
}

#[cfg(feature = "tokio")]
impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<()>) {
        self.0.spawn(task);
    }
}

/// `f`, or `None` if `timer` fires first.
pub(crate) async fn timeout<T>(
    timer: &dyn Timer,
    d: Duration,
    f: impl Future<Output = T>,
) -> Option<T> {
    let sleep = timer.sleep(d);
    futures_lite::future::or(async { Some(f.await) }, async {
        sleep.await;
        None
    })
    .await
}
