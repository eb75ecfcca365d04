//! Join refusals in the deterministic simulator: differing downing settings, a protocol
//! version refusal seen from the refusing side, and a refusal from one seed among several.
//! Each runs over several seeds; a failure prints its seed (replay with FJELL_SIM_SEED=<seed>).

use std::time::Duration;

use fjell_core::compat::DowningSetting;
use fjell_core::testing::wire::{Incompatibility, Kind, MAGIC};
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
        let other = another_schema();
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
        let other = another_schema();
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

/// The default configuration with an application compatibility setting the default lacks.
fn another_schema() -> Config {
    let mut c = Config::default();
    c.compat_settings
        .push(("schema".try_into().unwrap(), "v2".try_into().unwrap()))
        .unwrap();
    c
}

fn sbr(strategy: fjell_core::Strategy) -> Config {
    let mut c = Config::default();
    c.downing.downing = fjell_core::Downing::SplitBrainResolver(strategy);
    c
}

const KEEP_MAJORITY: fjell_core::Strategy = fjell_core::Strategy::KeepMajority { role: None };

/// A keep-majority cluster of three, and a node with `config` that tries to join it; returns
/// the simulation, the cluster and the joiner after the joiner had 20 s to get in.
fn join_keep_majority_cluster(seed: u64, config: Config) -> (Sim, Vec<usize>, usize) {
    let mut sim: Sim = Sim::new(seed);
    let ids = sim.start_cluster(3, &sbr(KEEP_MAJORITY), 3);
    sim.run_until(SECS(30), |s| s.all_up(&ids)).unwrap();
    let joiner = sim.add_node(config);
    sim.join_seed_nodes(joiner, &ids);
    sim.run_for(SECS(20));
    (sim, ids, joiner)
}

/// The joiner was refused for `key`, both sides said so, and it never became a member.
fn assert_refused_for(sim: &Sim, ids: &[usize], joiner: usize, key: &str, seed: u64) {
    let quoted = format!("`{key}`");
    assert_eq!(sim.node(joiner).status(), NodeStatus::Idle, "seed {seed}");
    for &i in ids {
        assert_eq!(sim.node(i).members().len(), ids.len(), "seed {seed}");
    }
    assert!(
        sim.events_of(joiner)
            .all(|e| !matches!(e, Event::MemberJoined(_))),
        "seed {seed}: never a member"
    );
    assert!(
        sim.events_of(joiner).any(
            |e| matches!(e, Event::JoinRefused { reason, .. } if reason.to_string().contains(&quoted))
        ),
        "seed {seed}: the joiner reports the key"
    );
    let joiner_addr = sim.addr(joiner);
    assert!(
        ids.iter().any(|&i| sim.events_of(i).any(|e| matches!(
            e,
            Event::JoinRequestRefused { from, reason }
                if *from == joiner_addr && reason.to_string().contains(&quoted)
        ))),
        "seed {seed}: the member reports the key"
    );
}

#[test]
fn a_node_with_another_downing_strategy_is_refused() {
    for seed in seeds(3) {
        let keep_oldest = sbr(fjell_core::Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        });
        let (sim, ids, joiner) = join_keep_majority_cluster(seed, keep_oldest);
        assert_refused_for(&sim, &ids, joiner, "downing", seed);
    }
}

#[test]
fn a_node_with_another_stable_after_is_refused() {
    for seed in seeds(3) {
        // The cluster's stable-after scales with its size; a fixed 7 s is another setting,
        // even though it is what the scaling yields at this size.
        let mut fixed = sbr(KEEP_MAJORITY);
        fixed.downing.stable_after = Some(SECS(7));
        let (sim, ids, joiner) = join_keep_majority_cluster(seed, fixed);
        assert_refused_for(
            &sim,
            &ids,
            joiner,
            "split-brain-resolver.stable-after",
            seed,
        );
    }
}

#[test]
fn the_refusal_names_the_downing_setting() {
    let keep_oldest = sbr(fjell_core::Strategy::KeepOldest {
        down_if_alone: true,
        role: None,
    });
    let (sim, _, joiner) = join_keep_majority_cluster(0, keep_oldest);
    assert!(sim.events_of(joiner).any(|e| matches!(
        e,
        Event::JoinRefused {
            reason: Incompatibility::DowningDiffers {
                setting: DowningSetting::Downing
            },
            ..
        }
    )));
}

#[test]
fn with_enforce_on_join_off_on_both_sides_another_strategy_joins() {
    for seed in seeds(3) {
        let mut sim: Sim = Sim::new(seed);
        let mut majority = sbr(KEEP_MAJORITY);
        majority.enforce_on_join = false;
        let ids = sim.start_cluster(3, &majority, 3);
        sim.run_until(SECS(30), |s| s.all_up(&ids)).unwrap();
        let mut keep_oldest = sbr(fjell_core::Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        });
        keep_oldest.enforce_on_join = false;
        let joiner = sim.add_node(keep_oldest);
        sim.join_seed_nodes(joiner, &ids);
        let all = [ids[0], ids[1], ids[2], joiner];
        sim.run_until(SECS(30), |s| s.all_up(&all))
            .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        assert!(
            sim.events_of(joiner)
                .all(|e| !matches!(e, Event::JoinRefused { .. })),
            "seed {seed}"
        );
    }
}
