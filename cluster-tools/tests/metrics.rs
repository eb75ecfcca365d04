//! Cluster metrics over a real cluster (QUIC on loopback): every node sees every node's
//! metrics, an adaptive router prefers the freer node, and a node that leaves is purged from
//! every table.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_channel::Receiver;
use fjell_runtime::quic::DevCa;
use fjell_runtime::{Cluster, Smol, StopReason, Termination};
use fjell_tools::hub::Hub;
use fjell_tools::metrics::{
    names, ClusterMetrics, Collector, MetricsSelector, MetricsSettings, NodeMetrics, Reading,
    StartError, SystemCollector,
};
use fjell_tools::routing::{Router, RouterSettings, RoutingLogic, SettingsError};

use common::{all_up, sockets, until, within};

/// The operating system's metrics, but a fixed CPU load: the test decides which node is
/// free, whatever else runs on the machine.
fn fixed_cpu(cpu: f64) -> impl Collector {
    let mut system = SystemCollector::new();
    move || {
        let mut r = system.collect();
        r.retain(|x| x.name != names::CPU_COMBINED && x.name != names::CPU_STOLEN);
        r.push(Reading::smoothed(names::CPU_COMBINED, cpu));
        r
    }
}

/// Waits until a table from `rx` satisfies `cond`, and returns it.
async fn until_table(
    rx: &Receiver<Vec<NodeMetrics>>,
    secs: u64,
    what: &str,
    cond: impl Fn(&[NodeMetrics]) -> bool,
) -> Vec<NodeMetrics> {
    within(secs, what, async {
        loop {
            let table = rx.recv().await.expect("the metrics stopped");
            if cond(&table) {
                return table;
            }
        }
    })
    .await
}

fn addresses(table: &[NodeMetrics]) -> Vec<SocketAddr> {
    table.iter().map(|n| n.address.socket_addr()).collect()
}

#[test]
fn metrics_spread_purge_and_weigh_routers() {
    smol::block_on(async {
        let ca = DevCa::new().unwrap();
        let (sockets, addrs) = sockets(3);
        let nodes: Vec<Cluster> = sockets
            .into_iter()
            .map(|s| common::node(&ca, s, &addrs, common::config(), |b| b))
            .collect();
        for n in &nodes {
            until(30, "three members Up, converged", n, all_up(3)).await;
        }
        let hubs: Vec<Hub> = nodes.iter().map(|n| Hub::start(n, Smol)).collect();
        let mut sorted = addrs.clone();
        sorted.sort();

        // Settings are checked, naming the key, before anything starts.
        let zero = MetricsSettings {
            gossip_interval: Duration::ZERO,
            ..MetricsSettings::default()
        };
        assert!(matches!(
            ClusterMetrics::start(&hubs[0], zero),
            Err(StartError::Settings {
                key: "gossip-interval",
                ..
            })
        ));

        // Fast sampling and gossip. Node 1 is busy, node 2 nearly idle, node 3 half busy.
        let settings = MetricsSettings {
            sample_interval: Duration::from_millis(200),
            gossip_interval: Duration::from_millis(200),
            moving_average_half_life: Duration::from_secs(1),
        };
        let cpu = [0.9, 0.1, 0.5];
        let metrics: Vec<ClusterMetrics> = hubs
            .iter()
            .zip(cpu)
            .map(|(h, c)| ClusterMetrics::start_with(h, settings.clone(), fixed_cpu(c)).unwrap())
            .collect();
        assert!(matches!(
            ClusterMetrics::start(&hubs[0], settings.clone()),
            Err(StartError::AlreadyRunning(_))
        ));
        let subs: Vec<_> = metrics.iter().map(|m| m.subscribe()).collect();

        // Every node sees all three, with the operating system's metrics and the fixed CPU.
        for (i, rx) in subs.iter().enumerate() {
            let table = until_table(rx, 30, "metrics of all three nodes", |t| {
                addresses(t) == sorted
            })
            .await;
            for n in &table {
                let origin = addrs
                    .iter()
                    .position(|a| *a == n.address.socket_addr())
                    .unwrap();
                let c = n.get(names::CPU_COMBINED).unwrap();
                assert!((c - cpu[origin]).abs() < 1e-9, "node {i}: {n:?}");
                assert!(n.get(names::PROCESSORS).unwrap() >= 1.0);
                if cfg!(target_os = "linux") {
                    assert!(n.get(names::MEMORY_TOTAL).unwrap() > 0.0, "{n:?}");
                    assert!(n.get(names::SYSTEM_LOAD_AVERAGE).is_some(), "{n:?}");
                }
            }
            assert_eq!(addresses(&metrics[i].current()).len(), 3);
        }

        // An adaptive router needs the metrics.
        let cpu_logic = RoutingLogic::AdaptiveLoadBalancing {
            selector: MetricsSelector::Cpu,
            seed: 7,
        };
        assert!(matches!(
            Router::new(nodes[0].clone(), RouterSettings::new(cpu_logic)),
            Err(SettingsError::MetricsRequired)
        ));
        // On node 1, weighing by CPU: capacities 0.1, 0.9 and 0.5 give weights 1, 9 and 5.
        let router = Router::with_metrics(
            nodes[0].clone(),
            RouterSettings::new(cpu_logic),
            &metrics[0],
        )
        .unwrap();
        let weights: BTreeMap<SocketAddr, u64> = router.weights().unwrap().into_iter().collect();
        let expected: BTreeMap<SocketAddr, u64> = addrs.iter().copied().zip([1, 9, 5]).collect();
        assert_eq!(weights, expected);
        let mut picks: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for _ in 0..1500 {
            *picks.entry(router.next().unwrap()).or_default() += 1;
        }
        let count = |i: usize| picks.get(&addrs[i]).copied().unwrap_or(0);
        assert!(count(1) > count(2) && count(2) > count(0), "{picks:?}");
        assert!(count(1) > 700, "the freest node took {} of 1500", count(1));

        // Node 3 leaves and is removed: purged from both remaining tables, and the router
        // follows.
        let gone = addrs[2];
        let rest: Vec<SocketAddr> = sorted.iter().copied().filter(|a| *a != gone).collect();
        assert_eq!(
            within(40, "node 3 leaving", nodes[2].shutdown()).await,
            Termination::Stopped(StopReason::Left)
        );
        for (n, rx) in nodes[..2].iter().zip(&subs) {
            until(30, "node 3 removed", n, |s| s.member(gone).is_none()).await;
            until_table(rx, 30, "node 3's metrics purged", |t| addresses(t) == rest).await;
        }
        assert_eq!(addresses(&metrics[1].current()), rest);
        let weights: BTreeMap<SocketAddr, u64> = router.weights().unwrap().into_iter().collect();
        assert_eq!(weights, addrs[..2].iter().copied().zip([1, 9]).collect());
        // Node 3's own metrics stopped with it: its subscription closes.
        within(30, "node 3's subscription closing", async {
            while subs[2].recv().await.is_ok() {}
        })
        .await;
        assert!(!metrics[2].is_running());

        drop((router, metrics, subs, hubs));
        for n in &nodes[..2] {
            n.shutdown().await;
        }
    });
}
