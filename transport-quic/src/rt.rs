//! The async runtime, taken as a value: quinn's [`Runtime`] trait (spawn, timers, UDP
//! sockets). fjell-quic has no runtime of its own and no runtime feature: the caller passes
//! one to [`Transport::bind`](crate::Transport::bind) and
//! [`AdminClient::connect`](crate::AdminClient::connect), and every task, timer and socket of
//! that transport lives on it.
//!
//! quinn ships implementations behind its own features (`quinn::SmolRuntime` with
//! `runtime-smol`, `quinn::TokioRuntime` with `runtime-tokio`); fjell-runtime has ready-made
//! adapters (`Smol`, `Tokio`, a dedicated thread) and shows one for a third executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, UdpPoller};

/// The runtime a transport was bound with, and the two things the crate does with it beyond
/// quinn's endpoint: spawn a task and sleep.
#[derive(Debug, Clone)]
pub(crate) struct Rt(pub(crate) Arc<dyn Runtime>);

impl Rt {
    /// Runs `f` in the background.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.0.spawn(Box::pin(f));
    }

    /// Completes after `d`.
    pub(crate) fn sleep(&self, d: Duration) -> Sleep {
        sleep(&*self.0, d)
    }

    /// `f`, or `None` if it takes longer than `d`.
    pub(crate) async fn timeout<T>(&self, d: Duration, f: impl Future<Output = T>) -> Option<T> {
        timeout(&*self.0, d, f).await
    }
}

/// A future that completes after a duration, on a runtime's timer ([`sleep`]).
#[derive(Debug)]
#[must_use = "a sleep does nothing unless awaited"]
pub struct Sleep(Pin<Box<dyn AsyncTimer>>);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// Completes `d` after now on `runtime`'s clock and timer. Durations too long to represent
/// sleep for as long as the clock can (in practice: forever).
pub fn sleep(runtime: &dyn Runtime, d: Duration) -> Sleep {
    let now = runtime.now();
    // `Instant + Duration` panics on overflow; a century is forever for a timer.
    let at = now
        .checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now);
    Sleep(runtime.new_timer(at))
}

/// `f`, or `None` if `runtime`'s timer fires `d` from now first.
pub async fn timeout<T>(
    runtime: &dyn Runtime,
    d: Duration,
    f: impl Future<Output = T>,
) -> Option<T> {
    let sleep = sleep(runtime, d);
    futures_lite::future::or(async { Some(f.await) }, async {
        sleep.await;
        None
    })
    .await
}
