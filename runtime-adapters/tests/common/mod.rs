//! Test scaffolding: nodes on loopback QUIC, waiting on events with deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use fjell_core::{Config, Event, MemberStatus};
use fjell_quic::DevCa;
use fjell_runtime::{
    member_of, Cluster, ClusterBuilder, ClusterState, Runtime, Smol, StartError, Subscription,
    Tokio,
};

/// Where a test's nodes run, and the runtime the test itself waits with.
pub trait Place: Runtime + Clone {
    /// Starts the node `b` describes here.
    fn start(&self, b: ClusterBuilder) -> Result<Cluster, StartError> {
        b.start_on(self.clone())
    }
}

impl Place for Smol {}
impl Place for Tokio {}

/// Each node on a thread of its own ([`ClusterBuilder::start`]); the test waits on smol's
/// timers.
#[derive(Debug, Clone)]
pub struct OwnThreads;

impl Runtime for OwnThreads {
    fn new_timer(
        &self,
        at: std::time::Instant,
    ) -> std::pin::Pin<Box<dyn fjell_runtime::runtime::AsyncTimer>> {
        Smol.new_timer(at)
    }
    fn spawn(&self, task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) {
        Smol.spawn(task)
    }
    fn wrap_udp_socket(
        &self,
        socket: UdpSocket,
    ) -> std::io::Result<std::sync::Arc<dyn fjell_runtime::runtime::AsyncUdpSocket>> {
        Smol.wrap_udp_socket(socket)
    }
}

impl Place for OwnThreads {
    fn start(&self, b: ClusterBuilder) -> Result<Cluster, StartError> {
        b.start()
    }
}

/// Completes after `d` on `rt`'s timer.
pub async fn sleep(rt: &dyn Runtime, d: Duration) {
    fjell_quic::sleep(rt, d).await
}

/// Shows the runtime's log lines in failing tests (`RUST_LOG`-free: info and above).
pub fn log() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

/// Faster ticks than the defaults so leaving (a few gossip rounds and leader ticks) and
/// joining take a few seconds; failure detection keeps its defaults.
pub fn config() -> Config {
    Config {
        gossip_interval: Duration::from_millis(500),
        leader_actions_interval: Duration::from_millis(500),
        seed_node_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Sockets on free loopback ports, and their addresses (for the certificates).
pub fn sockets(n: usize) -> (Vec<UdpSocket>, Vec<SocketAddr>) {
    let s: Vec<_> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let a = s.iter().map(|s| s.local_addr().unwrap()).collect();
    (s, a)
}

/// A node on `socket` joining `seeds`.
pub fn node(rt: impl Place, ca: &DevCa, socket: UdpSocket, seeds: &[SocketAddr]) -> Cluster {
    node_with(rt, ca, socket, seeds, |b| b)
}

/// A node on `socket` joining `seeds`, with builder settings changed by `f`.
pub fn node_with(
    rt: impl Place,
    ca: &DevCa,
    socket: UdpSocket,
    seeds: &[SocketAddr],
    f: impl FnOnce(ClusterBuilder) -> ClusterBuilder,
) -> Cluster {
    log();
    let addr = socket.local_addr().unwrap();
    let b = ClusterBuilder::new()
        .config(config())
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes(seeds.iter().copied())
        .shutdown_timeout(Duration::from_secs(30));
    rt.start(f(b)).unwrap()
}

/// `f`, or a panic naming `what` after `secs` seconds.
pub async fn within<T>(
    timer: &dyn Runtime,
    secs: u64,
    what: &str,
    f: impl Future<Output = T>,
) -> T {
    let deadline = sleep(timer, Duration::from_secs(secs));
    futures_lite::future::or(f, async {
        deadline.await;
        panic!("timed out after {secs} s waiting for {what}");
    })
    .await
}

/// Waits until `cond` holds for `cluster`'s state.
pub async fn until(
    timer: &dyn Runtime,
    secs: u64,
    what: &str,
    cluster: &Cluster,
    cond: impl Fn(&ClusterState) -> bool,
) {
    let s = within(timer, secs, what, cluster.wait_for(cond)).await;
    assert!(s.is_some(), "the node stopped before {what}");
}

/// Collects `sub`'s events until one matches `last` (included).
pub async fn events_until(
    timer: &dyn Runtime,
    secs: u64,
    what: &str,
    sub: &Subscription,
    last: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    within(timer, secs, what, async {
        while let Some(e) = sub.next().await {
            let done = last(&e);
            seen.push(e);
            if done {
                return;
            }
        }
        panic!("events ended before {what}: {seen:?}");
    })
    .await;
    seen
}

/// `n` members, all Up, converged.
pub fn all_up(n: usize) -> impl Fn(&ClusterState) -> bool {
    move |s| {
        s.members.len() == n
            && s.members.iter().all(|m| m.status == MemberStatus::Up)
            && s.converged
    }
}

/// The member statuses `events` report for `addr`, in order (Removed for removal,
/// `None` for unreachability).
pub fn statuses_of(events: &[Event], addr: SocketAddr) -> Vec<Option<MemberStatus>> {
    events
        .iter()
        .filter(|e| member_of(e).is_some_and(|m| m.address.same_address(addr)))
        .filter_map(|e| match e {
            Event::UnreachableMember(_) => Some(None),
            Event::ReachableMember(_) => None,
            e => member_of(e).map(|m| Some(m.status)),
        })
        .collect()
}

/// A node that founds its own cluster comes up within 20 s, then leaves gracefully.
pub async fn comes_up_and_leaves(cluster: &Cluster) {
    let up = cluster
        .within(
            Duration::from_secs(20),
            cluster.wait_for(|s| {
                s.self_member()
                    .is_some_and(|m| m.status == MemberStatus::Up)
            }),
        )
        .await;
    assert!(up.is_some(), "the node came up");
    assert_eq!(
        cluster.shutdown().await,
        fjell_runtime::Termination::Stopped(fjell_core::StopReason::Left)
    );
}

/// Binds `addr` again once the stopped node that had it has released it. Closing a
/// transport returns before the QUIC endpoint's background task has dropped the socket
/// (tokio in particular), and the OS gives no notice, so this retries for up to 10 s.
pub async fn bind_again(timer: &dyn Runtime, addr: SocketAddr) -> UdpSocket {
    within(timer, 10, "the port released", async {
        loop {
            match UdpSocket::bind(addr) {
                Ok(s) => return s,
                Err(_) => sleep(timer, Duration::from_millis(50)).await,
            }
        }
    })
    .await
}
