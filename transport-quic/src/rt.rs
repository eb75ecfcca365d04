//! The async runtime: smol by default, tokio with the `tokio` feature. Everything runtime
//! specific the crate needs is here: spawning a task, sleeping, and quinn's runtime.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(not(any(feature = "smol", feature = "tokio")))]
compile_error!("fjell-quic needs a runtime: enable the `smol` (default) or `tokio` feature");

/// Runs `f` in the background.
#[cfg(feature = "tokio")]
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(f: F) {
    tokio::spawn(f);
}

/// Runs `f` in the background.
#[cfg(all(feature = "smol", not(feature = "tokio")))]
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(f: F) {
    smol::spawn(f).detach();
}

/// Completes after `d`.
#[cfg(feature = "tokio")]
pub(crate) async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Completes after `d`.
#[cfg(all(feature = "smol", not(feature = "tokio")))]
pub(crate) async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

/// quinn's glue for the runtime.
#[cfg(feature = "tokio")]
pub(crate) fn quinn_runtime() -> Arc<dyn quinn::Runtime> {
    Arc::new(quinn::TokioRuntime)
}

/// quinn's glue for the runtime.
#[cfg(all(feature = "smol", not(feature = "tokio")))]
pub(crate) fn quinn_runtime() -> Arc<dyn quinn::Runtime> {
    Arc::new(quinn::SmolRuntime)
}

/// `f`, or `None` if it takes longer than `d`.
pub(crate) async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        sleep(d).await;
        None
    })
    .await
}
