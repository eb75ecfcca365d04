//! Test scaffolding: nodes on loopback QUIC and waiting with deadlines.

#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use fjell_runtime::quic::DevCa;
use fjell_runtime::{
    Cluster, ClusterBuilder, ClusterState, Config, Downing, MemberStatus, Strategy,
};

/// Faster gossip and leader ticks than the defaults, so joining and leaving take seconds.
/// Failure detection keeps its defaults: tighter settings make healthy nodes look dead on a
/// busy machine, and a resolver would down them.
pub fn config() -> Config {
    Config {
        gossip_interval: Duration::from_millis(500),
        leader_actions_interval: Duration::from_millis(500),
        seed_node_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// [`config`] with keep-majority downing deciding after 2 s of stable membership (and
/// removing the downed 2 s later: the down-removal margin follows stable-after).
pub fn keep_majority() -> Config {
    let mut c = config();
    c.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    c.downing.stable_after = Some(Duration::from_secs(2));
    c
}

/// Sockets on free loopback ports, and their addresses (for the certificates).
pub fn sockets(n: usize) -> (Vec<UdpSocket>, Vec<SocketAddr>) {
    let s: Vec<_> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let a = s.iter().map(|s| s.local_addr().unwrap()).collect();
    (s, a)
}

/// A node on `socket` with `config`, joining `seeds`, with builder settings changed by `f`;
/// on a thread of its own.
pub fn node(
    ca: &DevCa,
    socket: UdpSocket,
    seeds: &[SocketAddr],
    config: Config,
    f: impl FnOnce(ClusterBuilder) -> ClusterBuilder,
) -> Cluster {
    let addr = socket.local_addr().unwrap();
    let b = ClusterBuilder::new()
        .config(config)
        .socket(socket)
        .credentials(ca.node(addr).unwrap())
        .seed_nodes(seeds.iter().copied())
        .shutdown_timeout(Duration::from_secs(30));
    f(b).start().unwrap()
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

/// `n` members, all Up, converged.
pub fn all_up(n: usize) -> impl Fn(&ClusterState) -> bool {
    move |s| {
        s.members.len() == n
            && s.members.iter().all(|m| m.status == MemberStatus::Up)
            && s.converged
    }
}

/// This node is Up.
pub fn self_up(s: &ClusterState) -> bool {
    s.self_member()
        .is_some_and(|m| m.status == MemberStatus::Up)
}

/// SplitMix64: every draw of a seeded run, from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A draw in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` / 1000.
    pub fn per_mille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }
}
