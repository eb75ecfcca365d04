//! The steady-state traffic budget, as a deterministic simulator test (it was only printed by
//! `cargo bench -p fjell-sim --bench failure_detection`): a converged 100-node cluster with
//! default settings sends at most 100 payload bytes per node per second.

use std::time::Duration;

use fjell_core::Config;
use fjell_sim::Sim;

const BUDGET_BYTES_PER_NODE_PER_SECOND: f64 = 100.0;

#[test]
fn a_steady_cluster_stays_within_its_traffic_budget() {
    for seed in [3, 4] {
        let mut sim: Sim<128, 256> = Sim::new(seed);
        sim.record_events(false);
        sim.check_invariants(false);
        let ids = sim.start_cluster(100, &Config::default(), 3);
        sim.run_until(Duration::from_secs(120), |s| {
            s.all_up(&ids) && s.converged(&ids)
        })
        .expect("formed");
        // Let the detectors settle before measuring.
        sim.run_for(Duration::from_secs(20));
        let secs = 600;
        let before = sim.traffic();
        sim.run_for(Duration::from_secs(secs));
        let after = sim.traffic();
        let per = (after.bytes - before.bytes) as f64 / (ids.len() as u64 * secs) as f64;
        eprintln!("seed {seed}: {per:.1} payload bytes per node per second");
        assert!(
            per <= BUDGET_BYTES_PER_NODE_PER_SECOND,
            "seed {seed}: {per:.1} bytes per node per second"
        );
        assert!(sim.converged(&ids), "seed {seed}");
    }
}
