//! Cluster metrics and an adaptive router: three nodes on loopback read this machine's CPU,
//! load and memory from `/proc`, gossip them, and a router on the first node weighs the
//! members by them (all three run on one machine, so they look alike: the weights come out
//! nearly equal). Then a node leaves and drops out of the tables.
//!
//! ```text
//! cargo run -p fjell-tools --example adaptive_metrics
//! ```

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use fjell_runtime::Smol;
use fjell_tools::hub::Hub;
use fjell_tools::metrics::{ClusterMetrics, MetricsSelector, MetricsSettings, NodeMetrics};
use fjell_tools::routing::{Router, RouterSettings, RoutingLogic};

fn show(table: &[NodeMetrics]) {
    for n in table {
        let metrics: Vec<String> = n
            .metrics
            .iter()
            .map(|m| format!("{}={:.3}", m.name, m.smoothed()))
            .collect();
        println!("  {}: {}", n.address.socket_addr(), metrics.join(" "));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let nodes = common::loopback_cluster(3).await?;
        let addrs: Vec<SocketAddr> = nodes
            .iter()
            .map(|n| n.self_address().socket_addr())
            .collect();
        // Faster than Pekko's 3 s, for a short demonstration.
        let settings = MetricsSettings {
            sample_interval: Duration::from_millis(500),
            gossip_interval: Duration::from_millis(500),
            ..MetricsSettings::default()
        };
        let metrics: Vec<ClusterMetrics> = nodes
            .iter()
            .map(|c| ClusterMetrics::start(&Hub::start(c, Smol), settings.clone()))
            .collect::<Result<_, _>>()?;

        // Wait (on changes, not a timer) until node 1 knows all three.
        let updates = metrics[0].subscribe();
        let mut table = updates.recv().await?;
        while table.len() < 3 {
            table = updates.recv().await?;
        }
        println!("node 1's table:");
        show(&table);

        let logic = RoutingLogic::adaptive(MetricsSelector::Mix);
        let router =
            Router::with_metrics(nodes[0].clone(), RouterSettings::new(logic), &metrics[0])?;
        println!("weights: {:?}", router.weights());
        let mut picks = std::collections::BTreeMap::<SocketAddr, u32>::new();
        for _ in 0..1000 {
            if let Some(a) = router.next() {
                *picks.entry(a).or_default() += 1;
            }
        }
        println!("1000 picks: {picks:?}");

        println!("node 3 leaves");
        nodes[2].shutdown().await;
        while table.iter().any(|n| n.address.socket_addr() == addrs[2]) {
            table = updates.recv().await?;
        }
        println!("node 1's table:");
        show(&table);
        println!("weights: {:?}", router.weights());

        drop(router);
        for n in &nodes[..2] {
            n.shutdown().await;
        }
        Ok(())
    })
}
