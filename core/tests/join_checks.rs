//! Join refusals in the deterministic simulator: differing downing settings, a protocol
//! version refusal seen from the refusing side, and a refusal from one seed among several.
//! Each runs over several seeds; a failure prints its seed (replay with FJELL_SIM_SEED=<seed>).

use std::time::Duration;

use fjell_core::wire::{Incompatibility, Kind, MAGIC};
use fjell_core::{Config, Event, MemberStatus, NodeStatus};
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

#[test]
fn a_refusal_from_one_seed_does_not_end_the_join() {
    for seed in seeds(5) {
        let mut sim: Sim = Sim::new(seed);
        let mut other = Config::default();
        other
            .compat_settings
            .push(("schema".try_into().unwrap(), "v2".try_into().unwrap()))
            .unwrap();
        // The first seed runs another configuration and is not initialised: it refuses
        // everyone compatible with the other two, which formed a cluster on their own.
        let s1 = sim.add_node(other);
        let s2 = sim.add_node(Config::default());
        let s3 = sim.add_node(Config::default());
        let joiner = sim.add_node(Config::default());
        sim.join(s2, s2);
        sim.join(s3, s2);
        sim.run_until(SECS(30), |s| s.all_up(&[s2, s3])).unwrap();
        sim.join_seed_nodes(joiner, &[s1, s2, s3]);
        sim.run_until(SECS(30), |s| s.all_up(&[s2, s3, joiner]))
            .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        assert!(
            sim.events_of(s1)
                .any(|e| matches!(e, Event::JoinRequestRefused { .. })),
            "seed {seed}: the first seed refused"
        );
        assert!(
            !sim.events_of(joiner)
                .any(|e| matches!(e, Event::JoinRefused { .. })),
            "seed {seed}: the join did not end"
        );
        assert_eq!(sim.node(joiner).status(), NodeStatus::Member);
        assert_eq!(sim.status_of(s2, joiner), Some(MemberStatus::Up));
    }
}

#[test]
fn a_join_refused_by_every_seed_ends() {
    for seed in seeds(3) {
        let mut sim: Sim = Sim::new(seed);
        let mut other = Config::default();
        other
            .compat_settings
            .push(("schema".try_into().unwrap(), "v2".try_into().unwrap()))
            .unwrap();
        let s1 = sim.add_node(Config::default());
        let s2 = sim.add_node(Config::default());
        let joiner = sim.add_node(other);
        sim.join(s1, s1);
        sim.join(s2, s1);
        sim.run_until(SECS(30), |s| s.all_up(&[s1, s2])).unwrap();
        sim.join_seed_nodes(joiner, &[s1, s2]);
        sim.run_for(SECS(10));
        assert_eq!(sim.node(joiner).status(), NodeStatus::Idle, "seed {seed}");
        let refused = sim
            .events_of(joiner)
            .filter(|e| matches!(e, Event::JoinRefused { .. }))
            .count();
        assert_eq!(refused, 1, "seed {seed}: reported once, when the join ends");
        assert_eq!(sim.node(s1).members().len(), 2);
    }
}
