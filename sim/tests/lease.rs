//! The simulator hands lease requests to its lease through `Node::drain`'s sink: a
//! lease-majority cluster that partitions decides with the lease.

use std::time::Duration;

use fjell_core::{Config, Downing, Event, Strategy};
use fjell_sim::Sim;

#[test]
fn a_lease_majority_side_takes_the_lease_through_the_sink() {
    for seed in 0..3 {
        let mut config = Config::default();
        config.downing.downing =
            Downing::SplitBrainResolver(Strategy::LeaseMajority { role: None });
        let mut sim: Sim = Sim::new(seed);
        sim.record_events(true);
        let ids = sim.start_cluster(5, &config, 1);
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
            .expect("up");
        sim.partition(&ids[..3], &ids[3..]);
        sim.run_until(Duration::from_secs(120), |s| {
            ids[3..].iter().all(|&x| s.is_stopped(x))
        })
        .unwrap_or_else(|e| panic!("seed {seed}: the minority did not stop: {e}"));
        let holder = sim.lease().holder(sim.now()).expect("the lease is held");
        assert!(
            ids[..3].iter().any(|&x| sim.node(x).address() == holder),
            "seed {seed}: the majority holds the lease"
        );
        assert!(ids[..3]
            .iter()
            .any(|&x| sim.events_of(x).any(|e| matches!(e, Event::Downing(_)))));
    }
}
