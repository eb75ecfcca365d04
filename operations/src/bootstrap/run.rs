//! The bootstrap's I/O: lookups, probes over HTTP, the decision carried out on the node.

use std::future::Future;
use std::mem::discriminant;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Async;
use fjell_runtime::core::NodeStatus;
use fjell_runtime::settings::Bootstrap;
use fjell_runtime::Cluster;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use smol_hyper::rt::FuturesIo;

use super::rules::{Decision, Rules, Waiting};
use super::SeedNodes;
use crate::discovery::Discovery;

/// The largest probe answer read.
const MAX_ANSWER: usize = 64 << 10;
/// The longest wait between lookups after repeated failures (Pekko's).
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// How a bootstrap ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This node founded the cluster.
    Founded,
    /// This node joined through these seed nodes.
    Joined(Vec<SocketAddr>),
    /// The node was already joining or a member (joined by hand).
    AlreadyJoining,
    /// The node stopped.
    Stopped,
}

/// This node's contact point: its endpoints' address, with the node's own IP when the
/// endpoints listen on every interface (`0.0.0.0`, `::`).
pub fn contact_point(endpoints: SocketAddr, node: SocketAddr) -> SocketAddr {
    if endpoints.ip().is_unspecified() {
        SocketAddr::new(node.ip(), endpoints.port())
    } else {
        endpoints
    }
}

/// Bootstraps `cluster`'s node, whose contact point is `me` (see [`contact_point`]): looks
/// contact points up, probes them, and joins as the [rules](super::rules) decide. Logs why it
/// waits whenever the reason changes. Returns once the node is a member (after a join it
/// asked for, the node's seed-node process doing the rest), when something else made it
/// join, or when it stops; a join that fails leaves the node idle, and the bootstrap goes
/// on.
pub async fn run(cluster: &Cluster, settings: Bootstrap, me: SocketAddr) -> Outcome {
    let discovery = Discovery::new(
        settings.method.clone(),
        settings.dns_server,
        me.port(),
        settings.resolve_timeout,
    );
    let node = cluster.self_address().socket_addr();
    let mut rules = Rules::new(settings.clone(), me, node);
    let mut next_lookup = Instant::now();
    let mut failures: u32 = 0;
    let mut reported: Option<Waiting> = None;
    loop {
        if cluster.termination().is_some() {
            return Outcome::Stopped;
        }
        if cluster.state().status != NodeStatus::Idle {
            return Outcome::AlreadyJoining;
        }
        if Instant::now() >= next_lookup {
            match discovery.lookup().await {
                Ok(mut found) => {
                    failures = 0;
                    // A dual-stack name lists each node under both families; probes and the
                    // lowest-address rule use this node's own family only, so every node
                    // compares the same set and finds itself in it.
                    found.retain(|a| a.is_ipv4() == me.is_ipv4());
                    rules.handle_lookup(Instant::now(), found);
                    next_lookup = Instant::now() + settings.interval;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures.is_power_of_two() {
                        tracing::warn!(
                            failures,
                            "fjell-ops: bootstrap: contact point discovery failed: {e}"
                        );
                    }
                    rules.handle_lookup_failed();
                    let backoff = settings
                        .interval
                        .saturating_mul(1 << failures.min(16))
                        .min(MAX_BACKOFF);
                    next_lookup = Instant::now() + backoff;
                }
            }
        }
        let targets: Vec<SocketAddr> = rules.discovered().iter().copied().collect();
        let probes = targets
            .iter()
            .map(|&a| {
                Box::pin(probe(a, settings.probing_failure_timeout))
                    as Pin<Box<dyn Future<Output = _> + Send>>
            })
            .collect();
        for (a, answer) in targets.iter().zip(join_all(probes).await) {
            if let Some((seeds, may_lead)) = answer {
                rules.handle_answer(Instant::now(), *a, seeds, may_lead);
            }
        }
        let (asked, outcome) = match rules.decide(Instant::now()) {
            Decision::JoinSelf => {
                tracing::info!(contact_points = ?rules.discovered(), "fjell-ops: bootstrap: this node is the lowest contact point and no cluster exists: forming one");
                (cluster.join(node).await, Some(Outcome::Founded))
            }
            Decision::JoinSeedNodes(seeds) => {
                tracing::info!(
                    ?seeds,
                    "fjell-ops: bootstrap: joining the cluster through its members"
                );
                (
                    cluster.join_seed_nodes(&seeds).await,
                    Some(Outcome::Joined(seeds)),
                )
            }
            Decision::Wait(why) => {
                if reported.as_ref().map(discriminant) != Some(discriminant(&why)) {
                    tracing::info!("fjell-ops: bootstrap: waiting: {why}");
                }
                reported = Some(why);
                (Ok(()), None)
            }
        };
        if let (Err(e), Some(_)) = (&asked, &outcome) {
            tracing::warn!("fjell-ops: bootstrap: the node did not take the join: {e}");
        } else if let Some(outcome) = outcome {
            // Done once the node is a member, or stopped. A refused join leaves it idle again
            // (seen idle twice, a probe interval apart: the state is published after the
            // command's answer), and the bootstrap goes on.
            let mut idle = 0;
            loop {
                async_io::Timer::after(settings.probe_interval).await;
                if cluster.termination().is_some() {
                    return Outcome::Stopped;
                }
                match cluster.state().status {
                    NodeStatus::Member | NodeStatus::Exiting => return outcome,
                    NodeStatus::Idle => idle += 1,
                    _ => idle = 0,
                }
                if idle >= 2 {
                    tracing::warn!("fjell-ops: bootstrap: the join did not succeed; looking again");
                    break;
                }
            }
            continue;
        }
        // Pekko's probe jitter (up to 20%), so a fleet started at once does not probe in step.
        let jitter = settings.probe_interval.mul_f64(0.2 * unit_random());
        async_io::Timer::after(settings.probe_interval + jitter).await;
    }
}

/// One probe of `contact`'s `/bootstrap/seed-nodes`: the seed nodes it lists, or `None`
/// if it did not answer usably within `timeout`.
/// The seed nodes a contact point lists, and whether it may lead.
async fn probe(contact: SocketAddr, timeout: Duration) -> Option<(Vec<SocketAddr>, bool)> {
    let ask = async {
        let stream = Async::<TcpStream>::connect(contact).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(FuturesIo::new(stream))
            .await
            .ok()?;
        let request = hyper::Request::get("/bootstrap/seed-nodes")
            .header("host", contact.to_string())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let exchange = async {
            let resp = sender.send_request(request).await.ok()?;
            if resp.status() != hyper::StatusCode::OK {
                return None;
            }
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .ok()?;
            serde_json::from_slice::<SeedNodes>(&body.to_bytes()).ok()
        };
        // The connection is driven beside the exchange and dropped with it.
        let answer = futures_lite::future::or(exchange, async {
            let _ = conn.await;
            None
        })
        .await?;
        Some((answer.seed_nodes, answer.may_lead))
    };
    futures_lite::future::or(ask, async {
        async_io::Timer::after(timeout).await;
        None
    })
    .await
}

/// Every future's output, in order, the futures polled together.
async fn join_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// A number in [0, 1) that differs between nodes and calls.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
