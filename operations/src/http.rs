//! The HTTP endpoints (hyper, HTTP/1.1), for load balancers, orchestrators and scrapers:
//!
//! | path | 200 | 503 |
//! |---|---|---|
//! | `/alive` | the node's driver runs | it ended (restart the process) |
//! | `/ready` | the node is Up or WeaklyUp and no member flags it unreachable | otherwise, with the reason |
//! | `/cluster/members` | the members as JSON, as `fjell members --json` prints them | the node stopped |
//! | `/metrics` | [`crate::prometheus`]'s text | the node stopped |
//! | `/bootstrap/seed-nodes` | [`SeedNodes`](crate::bootstrap::SeedNodes) as JSON, for other nodes' bootstrap probes | |
//!
//! [`crate::readiness`] has the exact rules. Other paths answer 404, other methods than
//! `GET` and `HEAD` 405.
//!
//! The endpoints have no authentication and no TLS: bind them to an address only probes
//! and scrapers reach (loopback, a pod's address). Nothing is served unless the application
//! (or `fjell run`'s `management.http` setting) asks for it.
//!
//! Clients are bounded: at most [`MAX_CONNECTIONS`] at once (more are closed at accept, with
//! a warning), request heads of at most [`MAX_HEAD_BYTES`], [`HEADER_TIMEOUT`] to send one,
//! and every connection closed after [`MAX_CONNECTION_AGE`] whatever it does (a client that
//! pipelines requests and never reads the answers holds a slot that long, no longer);
//! request bodies are never read. A flood of connections can still crowd out probes while
//! it lasts: bind the endpoints where only probes, scrapers and other nodes reach them.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use fjell_runtime::management::{Request as Manage, Response as Managed};
use fjell_runtime::{Cluster, Runtime};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::readiness;

/// Connections served at once; more are closed when accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// The largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request head, also between requests on a kept-alive
/// connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may live; a scraper that keeps its connection opens a new one.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// The endpoints of one node, bound and not yet serving. [`Endpoints::run`] serves them.
#[derive(Debug)]
pub struct Endpoints {
    listener: Async<TcpListener>,
    cluster: Cluster,
}

impl Endpoints {
    /// Binds the endpoints of `cluster`'s node to `addr` (port 0: any free port). They
    /// keep a handle of the node: while they run, dropping the application's own handles
    /// does not start the node's leave (call [`Cluster::shutdown`]).
    pub fn bind(addr: SocketAddr, cluster: Cluster) -> io::Result<Endpoints> {
        Ok(Endpoints {
            listener: Async::<TcpListener>::bind(addr)?,
            cluster,
        })
    }

    /// The address the endpoints listen on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// Serves requests until the future is dropped, each connection in a task spawned on
    /// `runtime` (the socket is async-io's, so any executor will do). Keeps serving after
    /// the node stops: `/alive` then answers 503.
    pub async fn run(self, runtime: impl Runtime) {
        let active = Arc::new(AtomicUsize::new(0));
        let refused = AtomicU64::new(0);
        loop {
            let (stream, from) = match self.listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait for some to be released.
                    tracing::warn!("fjell-ops: accepting an HTTP connection failed: {e}");
                    async_io::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                // A warning at the first, second, fourth... refusal: a flood does not flood
                // the log.
                if n.is_power_of_two() {
                    tracing::warn!(%from, refused = n, "fjell-ops: {MAX_CONNECTIONS} HTTP connections open: closed a new one");
                }
                continue;
            }
            let guard = Active::enter(&active);
            let cluster = self.cluster.clone();
            runtime.spawn(Box::pin(async move {
                let _guard = guard;
                let service = hyper::service::service_fn(move |req| {
                    let cluster = cluster.clone();
                    async move { Ok::<_, Infallible>(respond(&cluster, &req).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(SmolTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .serve_connection(FuturesIo::new(stream), service);
                let aged = async {
                    async_io::Timer::after(MAX_CONNECTION_AGE).await;
                    Ok(())
                };
                if let Err(e) = futures_lite::future::or(served, aged).await {
                    tracing::debug!(%from, "fjell-ops: HTTP connection ended: {e}");
                }
            }));
        }
    }
}

/// One connection counted in `active` while it lives.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn enter(active: &Arc<AtomicUsize>) -> Active {
        active.fetch_add(1, Ordering::AcqRel);
        Active(active.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer to one request.
async fn respond<B>(cluster: &Cluster, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let stopped = || text(StatusCode::SERVICE_UNAVAILABLE, "the node stopped\n".into());
    match req.uri().path() {
        "/alive" => match readiness::alive(cluster.termination()) {
            Ok(()) => text(StatusCode::OK, "alive\n".into()),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not alive: {e}\n")),
        },
        "/ready" => match readiness::ready(&cluster.state(), cluster.termination()) {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        },
        "/cluster/members" => match cluster.manage(Manage::Members).await {
            Some(Managed::Members(m)) => match serde_json::to_string_pretty(&m) {
                Ok(json) => with_type(StatusCode::OK, "application/json", json),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            },
            _ => stopped(),
        },
        "/bootstrap/seed-nodes" => {
            match serde_json::to_string(&crate::bootstrap::SeedNodes::of(&cluster.state())) {
                Ok(json) => with_type(StatusCode::OK, "application/json", json),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        "/metrics" => match cluster.metrics().await {
            Some(m) => with_type(
                StatusCode::OK,
                crate::prometheus::CONTENT_TYPE,
                crate::prometheus::encode(&m),
            ),
            None => stopped(),
        },
        _ => text(StatusCode::NOT_FOUND, "no such endpoint\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
