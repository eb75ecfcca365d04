//! Test scaffolding: nodes on loopback QUIC, each with a hub and a replicator, and waiting
//! with deadlines (copied in part from fjell-tools' tests).

#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjell_ddata::crdt::ReplicatedData;
use fjell_ddata::{Change, Changes, DistributedData, ReplicatorSettings};
use fjell_quic::DevCa;
use fjell_runtime::core::UniqueAddress;
use fjell_runtime::{Cluster, ClusterBuilder, ClusterState, Config, MemberStatus, Smol};
use fjell_tools::hub::Hub;

/// Faster gossip and leader ticks than the defaults, so joining and leaving take seconds.
/// Failure detection keeps its defaults: tighter settings make healthy nodes look dead on a
/// busy machine.
pub fn config() -> Config {
    Config {
        gossip_interval: Duration::from_millis(500),
        leader_actions_interval: Duration::from_millis(500),
        seed_node_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Replicator settings with fast intervals: gossip every 200 ms, deltas every 50 ms.
pub fn fast() -> ReplicatorSettings {
    ReplicatorSettings {
        gossip_interval: Duration::from_millis(200),
        delta_interval: Duration::from_millis(50),
        ..ReplicatorSettings::default()
    }
}

/// Replicator settings where neither deltas nor gossip go out during a test (an hour
/// apart): a value reaches another replica only through a quorum read or write.
pub fn no_background() -> ReplicatorSettings {
    ReplicatorSettings {
        gossip_interval: Duration::from_secs(3600),
        delta_interval: Duration::from_secs(3600),
        ..ReplicatorSettings::default()
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

/// A cluster node on `socket` with `config`, joining `seeds`; on a thread of its own.
pub fn node(ca: &DevCa, socket: UdpSocket, seeds: &[SocketAddr], config: Config) -> Cluster {
    let addr = socket.local_addr().unwrap();
    ClusterBuilder::new()
        .config(config)
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes(seeds.iter().copied())
        .shutdown_timeout(Duration::from_secs(30))
        .start()
        .unwrap()
}

/// One node: its cluster handle, hub and replicator.
pub struct Node {
    pub cluster: Cluster,
    pub hub: Hub,
    pub dd: DistributedData,
}

impl Node {
    /// Starts a node on `socket` joining `seeds`, its hub, and a replicator with `settings`.
    pub fn start(
        ca: &DevCa,
        socket: UdpSocket,
        seeds: &[SocketAddr],
        config: Config,
        settings: ReplicatorSettings,
    ) -> Node {
        let cluster = node(ca, socket, seeds, config);
        let hub = Hub::start(&cluster, Smol);
        let dd = DistributedData::start(&hub, settings).unwrap();
        Node { cluster, hub, dd }
    }

    /// This node's identity: the replica id it updates counters and sets under.
    pub fn id(&self) -> UniqueAddress {
        self.cluster.self_address()
    }

    /// This node's address.
    pub fn addr(&self) -> SocketAddr {
        self.id().socket_addr()
    }
}

/// `n` nodes joined through the first, with `config` and the replicator settings
/// `settings(i)` for node `i`, every one Up in every node's view and every replicator
/// counting `n` replicas.
pub async fn cluster(
    ca: &DevCa,
    n: usize,
    config: Config,
    settings: impl Fn(usize) -> ReplicatorSettings,
) -> Vec<Node> {
    let (sockets, addrs) = sockets(n);
    let nodes: Vec<Node> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| Node::start(ca, s, &addrs[..1], config.clone(), settings(i)))
        .collect();
    for node in &nodes {
        until(30, "every member Up", &node.cluster, all_up(n)).await;
    }
    for node in &nodes {
        replicas(10, &node.dd, n).await;
    }
    nodes
}

/// `f`, or a panic naming `what` after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    futures_lite::future::or(f, async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out after {secs} s waiting for {what}");
    })
    .await
}

/// Waits until `cond` holds for `c`'s state.
pub async fn until(secs: u64, what: &str, c: &Cluster, cond: impl Fn(&ClusterState) -> bool) {
    let s = within(secs, what, c.wait_for(cond)).await;
    assert!(s.is_some(), "the node stopped before {what}");
}

/// Waits until `cond` is true, checking every 20 ms, for what has no event to wait on (the
/// replicator's view of the members, its refused-message counter).
pub async fn eventually(secs: u64, what: &str, cond: impl Fn() -> bool) {
    within(secs, what, async {
        while !cond() {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Waits until `dd` counts `n` replicas (its view follows the cluster's a moment later).
pub async fn replicas(secs: u64, dd: &DistributedData, n: usize) {
    let what = format!("{n} replicas in the replicator's view");
    eventually(secs, &what, || dd.replica_count() == n).await;
}

/// `n` members, all Up, converged.
pub fn all_up(n: usize) -> impl Fn(&ClusterState) -> bool {
    move |s| {
        s.members.len() == n
            && s.members.iter().all(|m| m.status == MemberStatus::Up)
            && s.converged
    }
}

/// The status of the member at `addr` in `s`, if it is one.
pub fn status_of(s: &ClusterState, addr: SocketAddr) -> Option<MemberStatus> {
    s.members
        .iter()
        .find(|m| m.address.socket_addr() == addr)
        .map(|m| m.status)
}

/// Reads `changes` until a change satisfies `cond`, and returns it; a stopped replicator or
/// a value of another kind is a panic naming `what`.
pub async fn change_until<D: ReplicatedData>(
    secs: u64,
    what: &str,
    changes: &Changes<D>,
    cond: impl Fn(&Change<D>) -> bool,
) -> Change<D> {
    within(secs, what, async {
        loop {
            let change = changes
                .next()
                .await
                .unwrap_or_else(|| panic!("the replicator stopped before {what}"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            if cond(&change) {
                return change;
            }
        }
    })
    .await
}

/// Waits until `dd`'s replicator has stopped: a subscription ends (`next` is `None`) only
/// then.
pub async fn stopped(secs: u64, what: &str, dd: &DistributedData) {
    let probe = dd.subscribe::<fjell_ddata::crdt::Flag>(&fjell_ddata::Key::new("stop-probe"));
    within(secs, what, async {
        while let Some(change) = probe.next().await {
            let _ = change;
        }
    })
    .await;
    assert!(
        dd.is_stopped(),
        "{what}: a subscription ended before the stop"
    );
}

/// A directory under the system temp dir, unique to one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("fjell-ddata-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
