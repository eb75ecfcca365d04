//! How long leaving takes: a lone node stops within a second of being asked to leave (it has
//! nobody to confirm its exit to), and a member of a cluster within its gossip rounds.

use std::time::Duration;

use fjell_core::{Config, NodeStatus, StopReason};
use fjell_sim::Sim;

#[test]
fn a_lone_node_leaves_within_a_second() {
    for seed in 0..5 {
        let mut sim: Sim = Sim::new(seed);
        let ids = sim.start_cluster(1, &Config::default(), 1);
        sim.run_until(Duration::from_secs(30), |s| s.all_up(&ids))
            .expect("up");
        let x = ids[0];
        sim.leave(x, x);
        let took = sim
            .run_until(Duration::from_secs(30), |s| {
                s.node(x).status() == NodeStatus::Stopped(StopReason::Left)
            })
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprintln!("seed {seed}: a lone node left in {took:?}");
        assert!(took <= Duration::from_secs(1), "seed {seed}: {took:?}");
    }
}
