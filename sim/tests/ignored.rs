//! A member the cluster no longer gossips with learns it (`Node::ignored`).
//!
//! The case seen with real processes: another process holding a node's certificate took over
//! the connections the others used to reach it, so the node still had its heartbeats answered
//! (it dialed the others itself) but never again received gossip. The cluster downed and
//! removed it; it went on answering "Member Up" for as long as it ran. In the simulator the
//! same shape is gossip towards the node lost while every other message passes. Each test
//! failed before the rule: the node stayed Up in its own eyes until the end.

use std::time::Duration;

use fjell_core::{Config, DeliveryClass, NodeStatus, StopReason};
use fjell_sim::{NodeId, Sim};

fn formed(seed: u64) -> (Sim, Vec<NodeId>) {
    let mut sim: Sim = Sim::new(seed);
    let ids = sim.start_cluster(3, &Config::default(), 3);
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .expect("formed");
    (sim, ids)
}

/// Whether node `id` stopped as removed (the node reports `Event::Stopped(Removed)`).
fn removed_itself(sim: &Sim, id: NodeId) -> bool {
    sim.try_node(id)
        .is_some_and(|n| n.status() == NodeStatus::Stopped(StopReason::Removed))
}

#[test]
fn a_member_removed_without_being_told_learns_it() {
    for seed in 0..5 {
        let (mut sim, ids) = formed(seed);
        sim.record_events(true);
        let (a, b, x) = (ids[0], ids[1], ids[2]);
        // Gossip towards x is lost from now on; heartbeats and x's own messages pass.
        for from in [a, b] {
            sim.block_class(from, x, DeliveryClass::Gossip);
        }
        sim.down(a, x);
        let rest = [a, b];
        sim.run_until(Duration::from_secs(60), |s| {
            rest.iter().all(|r| s.node(*r).members().len() == 2)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: x not removed: {e}"));
        // Within the bound (30 gossip rounds) and a few reaper ticks, x says so itself.
        let waited = sim
            .run_until(Duration::from_secs(40), |s| removed_itself(s, x))
            .unwrap_or_else(|e| panic!("seed {seed}: x never learnt it was removed: {e}"));
        assert!(waited <= Duration::from_secs(35), "seed {seed}: {waited:?}");
    }
}

#[test]
fn a_member_that_gets_no_gossip_stops_and_a_new_incarnation_gets_in() {
    for seed in 0..5 {
        let (mut sim, ids) = formed(seed);
        let x = ids[2];
        let uid = sim.node(x).address();
        for from in [ids[0], ids[1]] {
            sim.block_class(from, x, DeliveryClass::Gossip);
        }
        sim.run_until(Duration::from_secs(60), |s| removed_itself(s, x))
            .unwrap_or_else(|e| panic!("seed {seed}: x never gave itself up: {e}"));
        // Its incarnation is over; a new one joins once gossip flows again, taking the
        // place of the old one.
        sim.heal();
        sim.restart(x);
        sim.join_seed_nodes(x, &ids);
        sim.run_until(Duration::from_secs(90), |s| {
            s.all_up(&ids) && s.converged(&ids)
        })
        .unwrap_or_else(|e| panic!("seed {seed}: not whole again: {e}"));
        assert_ne!(sim.node(x).address(), uid, "seed {seed}");
    }
}

#[test]
fn a_member_cut_off_from_everyone_is_left_to_the_downing_strategy() {
    // Manual downing: a member alone in a partition flags everyone and keeps its view, as in
    // Pekko; the rule is only for members the others still answer.
    let (mut sim, ids) = formed(7);
    sim.record_events(true);
    let x = ids[2];
    sim.partition(&[x], &ids[..2]);
    sim.run_for(Duration::from_secs(120));
    assert!(!removed_itself(&sim, x));
    assert_eq!(sim.node(x).status(), NodeStatus::Member);
}

/// The rule's false positive, and the straggler rule that prevents it: a member cut off with
/// all the members that monitor it is flagged by nobody on this side, so it stays reachable
/// here and is the one member that has not seen this side's state. Every node of this side
/// used to prefer it as a gossip target, so most rounds went where nothing arrives, and a
/// member of this side that heard no gossip for 30 rounds stopped itself as removed. With
/// 2 monitors per member the member's two ring neighbours are all it takes. Failed before
/// `crate::recent`'s straggler rule (`core/src/recent.rs`) at every seed tried.
#[test]
fn a_member_cut_off_with_its_monitors_does_not_starve_this_side() {
    for seed in 0..5 {
        let mut sim: Sim = Sim::new(seed);
        let mut config = Config::default();
        config.failure_detector.monitored_by_nr_of_members = 2;
        let ids = sim.start_cluster(12, &config, 3);
        sim.run_until(Duration::from_secs(60), |s| {
            s.all_up(&ids) && s.converged(&ids)
        })
        .expect("formed");
        // Every ring settled on the full membership.
        sim.run_for(Duration::from_secs(5));
        let x = ids[5];
        let now = sim.now();
        let watchers: Vec<_> = sim.node(x).monitored(now).map(|m| m.subject).collect();
        let mut cut = vec![x];
        cut.extend(
            ids.iter()
                .copied()
                .filter(|&i| watchers.contains(&sim.node(i).address())),
        );
        assert_eq!(cut.len(), 3, "seed {seed}: x and its two neighbours");
        let rest: Vec<NodeId> = ids.iter().copied().filter(|i| !cut.contains(i)).collect();
        let xa = sim.node(x).address();
        assert!(
            rest.iter()
                .all(|&r| sim.node(r).monitored(now).all(|m| m.subject != xa)),
            "seed {seed}: nobody on this side monitors x"
        );
        sim.partition(&rest, &cut);
        sim.run_for(Duration::from_secs(150));
        let gone: Vec<NodeId> = rest
            .iter()
            .copied()
            .filter(|&r| removed_itself(&sim, r))
            .collect();
        assert!(gone.is_empty(), "seed {seed}: {gone:?} stopped as removed");
        assert!(
            rest.iter()
                .all(|&r| sim.node(r).gossip().reachability().is_reachable(&xa)),
            "seed {seed}: the premise: x stays reachable on this side"
        );
    }
}
