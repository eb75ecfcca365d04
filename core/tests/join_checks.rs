//! Join refusals in the deterministic simulator: differing downing settings, a protocol
//! version refusal seen from the refusing side, and a refusal from one seed among several.
//! Each runs over several seeds; a failure prints its seed (replay with FJELL_SIM_SEED=<seed>).

use std::time::Duration;

use fjell_core::wire::{Incompatibility, Kind, MAGIC};
use fjell_core::{Config, Event};
use fjell_sim::{seeds, Sim};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn a_protocol_version_refusal_is_reported_on_the_refusing_side() {
    for seed in seeds(3) {
        let mut sim: Sim = Sim::new(seed);
        let a = sim.add_node(Config::default());
        let b = sim.add_node(Config::default());
        sim.join(a, a);
        sim.run_for(SECS(1));
        // A future joiner's InitJoin and Join: the envelope says version 9, and the body means
        // nothing to this build.
        let from = sim.addr(b);
        for kind in [Kind::InitJoin, Kind::Join] {
            let bytes = [MAGIC, 9, kind as u8, 1, 2, 3];
            let r = sim.with_node(a, |n, now| n.handle_message(now, from, &bytes));
            assert!(r.is_err(), "seed {seed}");
        }
        sim.run_for(SECS(1));
        let refused: Vec<&Event> = sim
            .events_of(a)
            .filter(|e| matches!(e, Event::JoinRequestRefused { .. }))
            .collect();
        assert_eq!(refused.len(), 2, "seed {seed}: {refused:?}");
        for e in refused {
            assert!(
                matches!(
                    e,
                    Event::JoinRequestRefused {
                        from: f,
                        reason: Incompatibility::ProtocolVersion { joiner: 9, .. },
                    } if *f == from
                ),
                "seed {seed}: {e:?}"
            );
        }
        assert_eq!(sim.node(a).members().len(), 1);
    }
}
