//! Membership scenarios in the deterministic simulator. Each runs over several seeds; a
//! failure prints its seed (replay with FJELL_SIM_SEED=<seed>).

use std::time::Duration;

use fjell_core::event::StopReason;
use fjell_core::{Config, Event, MemberStatus, NodeStatus, Role};
use fjell_sim::{seeds, LinkConfig, NodeId, Sim};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn cluster(sim: &mut Sim, n: usize, config: &Config) -> Vec<NodeId> {
    (0..n).map(|_| sim.add_node(config.clone())).collect()
}

fn permutations(v: &[usize]) -> Vec<Vec<usize>> {
    if v.len() <= 1 {
        return vec![v.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..v.len() {
        let mut rest = v.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

/// Starts the nodes in `order`, 700 ms apart, all with the same seed list (first three nodes,
/// or fewer), and waits for everyone Up.
fn form_in_order(seed: u64, n: usize, order: &[usize]) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    let ids = cluster(&mut sim, n, &Config::default());
    let seed_nodes: Vec<NodeId> = ids.iter().copied().take(3).collect();
    for &i in order {
        sim.join_seed_nodes(ids[i], &seed_nodes);
        sim.run_for(Duration::from_millis(700));
    }
    sim.run_until(SECS(60), |s| s.all_up(&ids) && s.converged(&ids))
        .unwrap_or_else(|e| panic!("order {order:?}: {e}"));
    (sim, ids)
}

#[test]
fn formation_of_1_2_3_and_5_nodes_in_every_start_order() {
    for seed in seeds(2) {
        for n in [1, 2, 3, 5] {
            let all: Vec<usize> = (0..n).collect();
            for order in permutations(&all) {
                let (sim, ids) = form_in_order(seed, n, &order);
                // Exactly one cluster: every node sees all n members.
                for &i in &ids {
                    assert_eq!(sim.node(i).members().len(), n);
                }
                // Up-numbers are unique and the leader is the lowest address.
                let mut ups: Vec<_> = sim.node(0).members().iter().map(|m| m.up_number).collect();
                ups.sort();
                ups.dedup();
                assert_eq!(ups.len(), n);
                assert_eq!(sim.leader_of(ids[n - 1]), Some(ids[0]));
            }
        }
    }
}

#[test]
fn concurrent_start_of_all_seeds_forms_exactly_one_cluster() {
    for seed in seeds(20) {
        let mut sim: Sim = Sim::new(seed);
        sim.set_default_link(LinkConfig {
            latency: Duration::from_millis(2),
            jitter: Duration::from_millis(5),
            ..LinkConfig::default()
        });
        let ids = sim.start_cluster(5, &Config::default(), 5);
        sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
            .unwrap();
        // all_up + converged: one cluster (two clusters never merge: gossip from non-members
        // is dropped).
        // The oldest member is the first seed everywhere.
        for &i in &ids {
            let oldest = sim
                .node(i)
                .members()
                .iter()
                .reduce(|a, b| if a.is_older_than(b) { a } else { b })
                .unwrap();
            assert_eq!(oldest.address, sim.node(ids[0]).address());
        }
    }
}

#[test]
fn join_through_a_non_seed_member() {
    for seed in seeds(5) {
        let mut sim: Sim = Sim::new(seed);
        let ids = cluster(&mut sim, 4, &Config::default());
        sim.join_seed_nodes(ids[0], &ids[..1]);
        sim.join_seed_nodes(ids[1], &ids[..1]);
        sim.run_until(SECS(20), |s| s.all_up(&ids[..2])).unwrap();
        sim.join(ids[2], ids[1]);
        sim.run_until(SECS(20), |s| s.all_up(&ids[..3])).unwrap();
        sim.join(ids[3], ids[2]);
        sim.run_until(SECS(20), |s| s.all_up(&ids) && s.converged(&ids))
            .unwrap();
    }
}

#[test]
fn min_nr_of_members_holds_everyone_joining_until_reached() {
    for seed in seeds(5) {
        let mut sim: Sim = Sim::new(seed);
        let config = Config {
            min_nr_of_members: 3,
            ..Config::default()
        };
        let ids = cluster(&mut sim, 3, &config);
        sim.join_seed_nodes(ids[0], &ids);
        sim.join_seed_nodes(ids[1], &ids);
        sim.run_for(SECS(20));
        assert!(sim.all_see(&ids[..2], &ids[..2], |m| m.status == MemberStatus::Joining));
        sim.join_seed_nodes(ids[2], &ids);
        sim.run_until(SECS(20), |s| s.all_up(&ids)).unwrap();
    }
}

#[test]
fn per_role_minimum_holds_everyone_joining_until_reached() {
    for seed in seeds(5) {
        let mut sim: Sim = Sim::new(seed);
        let backend = Role::new("backend").unwrap();
        let mut config = Config::default();
        config.role_min_nr_of_members.push((backend, 2)).unwrap();
        let mut backend_config = config.clone();
        backend_config.roles.insert(backend).unwrap();
        let front = sim.add_node(config.clone());
        let b1 = sim.add_node(backend_config.clone());
        let b2 = sim.add_node(backend_config);
        let ids = [front, b1, b2];
        sim.join_seed_nodes(front, &ids);
        sim.join_seed_nodes(b1, &ids);
        sim.run_for(SECS(20));
        assert!(sim.all_see(&ids[..2], &ids[..2], |m| m.status == MemberStatus::Joining));
        sim.join_seed_nodes(b2, &ids);
        sim.run_until(SECS(20), |s| s.all_up(&ids)).unwrap();
        assert_eq!(
            sim.node(front).role_leader("backend"),
            Some(sim.node(b1).address())
        );
    }
}

fn up_cluster(seed: u64, n: usize, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim: Sim = Sim::new(seed);
    let ids = sim.start_cluster(n, config, 3);
    sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
        .unwrap();
    (sim, ids)
}

/// Statuses `who` went through as seen by `observer`'s events, in order.
fn statuses_seen(sim: &Sim, observer: NodeId, who: fjell_core::UniqueAddress) -> Vec<MemberStatus> {
    sim.events_of(observer)
        .filter_map(|e| match e {
            Event::MemberJoined(m) if m.address == who => Some(MemberStatus::Joining),
            Event::MemberUp(m) if m.address == who => Some(MemberStatus::Up),
            Event::MemberLeft(m) if m.address == who => Some(MemberStatus::Leaving),
            Event::MemberExited(m) if m.address == who => Some(MemberStatus::Exiting),
            Event::MemberDowned(m) if m.address == who => Some(MemberStatus::Down),
            Event::MemberRemoved { member, .. } if member.address == who => {
                Some(MemberStatus::Removed)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn leave_goes_through_exiting_to_removed() {
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 3, &Config::default());
        let leaver = ids[2];
        let who = sim.node(leaver).address();
        sim.leave(ids[1], leaver); // any member may ask any member to leave
        let rest = &ids[..2];
        sim.run_until(SECS(30), |s| {
            s.all_up(rest) && s.converged(rest) && s.is_stopped(leaver)
        })
        .unwrap();
        assert_eq!(
            sim.node(leaver).status(),
            NodeStatus::Stopped(StopReason::Left)
        );
        for &i in rest {
            let seen = statuses_seen(&sim, i, who);
            let tail: Vec<_> = seen
                .iter()
                .skip_while(|s| **s != MemberStatus::Leaving)
                .copied()
                .collect();
            assert_eq!(
                tail,
                [
                    MemberStatus::Leaving,
                    MemberStatus::Exiting,
                    MemberStatus::Removed
                ],
                "node {i} saw {seen:?}"
            );
            assert!(sim.node(i).gossip().is_tombstoned(&who));
        }
    }
}

/// Steps `sim` until `done`, checking after every step that the leader never holds a converged
/// state with a member it could move on (Joining to Up, Leaving to Exiting) for any time: it
/// acts at the instant the state converged (as an input of its own, so that the converged
/// state is reported first).
fn leader_never_idles_at_convergence(
    sim: &mut Sim,
    leader: NodeId,
    mut done: impl FnMut(&Sim) -> bool,
) {
    let end = sim.now() + SECS(30);
    let mut idle_since = None;
    while !done(sim) {
        assert!(sim.now() < end, "not done within 30 s");
        assert!(sim.step(), "nothing left to run");
        let n = sim.node(leader);
        let movable = n
            .members()
            .iter()
            .any(|m| matches!(m.status, MemberStatus::Joining | MemberStatus::Leaving));
        if !(n.is_converged() && movable) {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert(sim.now());
        assert_eq!(
            since,
            sim.now(),
            "the leader waits with a converged state to act on since {since:?}"
        );
    }
}

#[test]
fn the_leader_acts_as_soon_as_the_state_converges() {
    // It used to wait for its next tick, up to `leader-actions-interval` (1 s) at every step of
    // a join or a leave.
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 4, &Config::default());
        assert_eq!(sim.leader_of(ids[3]), Some(ids[0]));
        let newcomer = sim.add_node(Config::default());
        sim.join(newcomer, ids[2]);
        let all = [ids[0], ids[1], ids[2], ids[3], newcomer];
        leader_never_idles_at_convergence(&mut sim, ids[0], |s| {
            s.all_up(&all) && s.converged(&all)
        });
        sim.leave(ids[1], ids[3]);
        let rest = [ids[0], ids[1], ids[2], newcomer];
        leader_never_idles_at_convergence(&mut sim, ids[0], |s| {
            s.all_up(&rest) && s.converged(&rest) && s.is_stopped(ids[3])
        });
    }
}

#[test]
fn the_leader_leaves_and_a_new_leader_takes_over() {
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 4, &Config::default());
        assert_eq!(sim.leader_of(ids[3]), Some(ids[0]));
        sim.leave(ids[0], ids[0]);
        let rest = &ids[1..];
        sim.run_until(SECS(30), |s| s.all_up(rest) && s.converged(rest))
            .unwrap();
        for &i in rest {
            assert_eq!(sim.leader_of(i), Some(ids[1]));
        }
        // The new leader acts: a newcomer is moved Up.
        let newcomer = sim.add_node(Config::default());
        sim.join(newcomer, ids[2]);
        let all = [ids[1], ids[2], ids[3], newcomer];
        sim.run_until(SECS(30), |s| s.all_up(&all) && s.converged(&all))
            .unwrap();
    }
}

#[test]
fn manual_down_of_a_healthy_member_removes_it_and_it_stops() {
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 4, &Config::default());
        let victim = ids[3];
        let who = sim.node(victim).address();
        sim.down(ids[1], victim); // not the leader: any member may down
        let rest = &ids[..3];
        sim.run_until(SECS(30), |s| s.all_up(rest) && s.converged(rest))
            .unwrap();
        assert_eq!(
            sim.node(victim).status(),
            NodeStatus::Stopped(StopReason::Downed)
        );
        assert!(sim
            .events_of(victim)
            .any(|e| *e == Event::Stopped(StopReason::Downed)));
        for &i in rest {
            let seen = statuses_seen(&sim, i, who);
            assert_eq!(
                seen.last(),
                Some(&MemberStatus::Removed),
                "node {i}: {seen:?}"
            );
            assert!(seen.contains(&MemberStatus::Down));
        }
    }
}

#[test]
fn restart_on_the_same_address_with_a_new_uid_five_times() {
    for seed in seeds(3) {
        let (mut sim, ids) = up_cluster(seed, 3, &Config::default());
        let node = ids[2];
        let mut old = vec![sim.node(node).address()];
        for round in 0..5 {
            sim.crash(node);
            sim.restart(node);
            sim.join_seed_nodes(node, &ids);
            sim.run_until(SECS(120), |s| s.all_up(&ids) && s.converged(&ids))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let new = sim.node(node).address();
            assert!(!old.contains(&new));
            for &i in &ids {
                for o in &old {
                    assert!(
                        sim.node(i).gossip().member(o).is_none(),
                        "old incarnation lingers"
                    );
                }
            }
            old.push(new);
        }
    }
}

#[test]
fn weakly_up_during_a_partition_and_up_after_it_heals() {
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 4, &Config::default());
        let joiner = sim.add_node(Config::default());
        sim.partition(&[ids[0], ids[1], joiner], &[ids[2], ids[3]]);
        sim.join(joiner, ids[1]);
        sim.run_until(SECS(30), |s| {
            s.status_of(ids[0], joiner) == Some(MemberStatus::WeaklyUp)
        })
        .unwrap();
        assert_ne!(sim.status_of(ids[0], joiner), Some(MemberStatus::Up));
        sim.heal();
        let all = [ids[0], ids[1], ids[2], ids[3], joiner];
        sim.run_until(SECS(30), |s| s.all_up(&all) && s.converged(&all))
            .unwrap();
        assert!(sim
            .events_of(ids[0])
            .any(|e| matches!(e, Event::MemberWeaklyUp(_))));
    }
}

#[test]
fn incompatible_join_is_refused_and_both_sides_report_why() {
    let mut sim: Sim = Sim::new(1);
    let a = sim.add_node(Config::default());
    let other = Config {
        cluster_name: "other".try_into().unwrap(),
        ..Config::default()
    };
    let b = sim.add_node(other);
    sim.join_seed_nodes(a, &[a]);
    sim.run_for(SECS(2));
    sim.join_seed_nodes(b, &[a]);
    sim.run_for(SECS(5));
    assert!(sim
        .events_of(a)
        .any(|e| matches!(e, Event::JoinRequestRefused { .. })));
    assert!(sim
        .events_of(b)
        .any(|e| matches!(e, Event::JoinRefused { reason, .. } if reason.to_string().contains("cluster name"))));
    assert_eq!(sim.node(b).status(), NodeStatus::Idle);
    assert_eq!(sim.node(a).members().len(), 1);
}

#[test]
fn joining_gives_up_at_its_deadline() {
    let mut sim: Sim = Sim::new(1);
    let config = Config {
        shutdown_after_unsuccessful_join_seed_nodes: Some(SECS(20)),
        ..Config::default()
    };
    let ids = cluster(&mut sim, 2, &config);
    // Node 1 waits for seed 0, which never starts.
    sim.join_seed_nodes(ids[1], &ids);
    sim.run_for(SECS(25));
    assert_eq!(
        sim.node(ids[1]).status(),
        NodeStatus::Stopped(StopReason::JoinGaveUp)
    );
}

#[test]
fn churn_of_transient_nodes_does_not_grow_the_gossip() {
    let config = Config {
        prune_gossip_tombstones_after: SECS(30),
        ..Config::default()
    };
    for seed in seeds(2) {
        let (mut sim, ids) = up_cluster(seed, 3, &config);
        let mut sizes = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        for round in 0..12 {
            let t = sim.add_node(config.clone());
            sim.join(t, ids[round % 3]);
            let all = [ids[0], ids[1], ids[2], t];
            sim.run_until(SECS(30), |s| s.all_up(&all)).unwrap();
            sim.leave(t, t);
            sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
                .unwrap();
            sim.run_for(SECS(10));
            let g = sim.node(ids[0]).gossip();
            let len = fjell_core::testing::wire::Message::Gossip {
                from: sim.node(ids[0]).address(),
                to: sim.node(ids[1]).address(),
                gossip: g,
            }
            .emit(sim.now(), &mut buf)
            .unwrap();
            sizes.push((len, g.tombstones().len(), g.version().len()));
        }
        // Tombstones expire after 30 s, so the size settles instead of growing with churn.
        let late = &sizes[6..];
        let max_late = late.iter().map(|s| s.0).max().unwrap();
        let first = sizes[2].0;
        assert!(max_late <= first + 200, "gossip grew: {sizes:?}");
        assert!(
            late.iter().all(|s| s.1 <= 2),
            "tombstones pile up: {sizes:?}"
        );
        assert!(
            late.iter().all(|s| s.2 <= 3),
            "clock entries pile up: {sizes:?}"
        );
    }
}

#[test]
fn lossy_reordering_network_still_converges_after_faults_heal() {
    for seed in seeds(10) {
        let mut sim: Sim = Sim::new(seed);
        sim.set_default_link(LinkConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(40),
            loss: 0.05,
            duplicate: 0.05,
        });
        let ids = sim.start_cluster(6, &Config::default(), 3);
        sim.run_until(SECS(60), |s| s.all_up(&ids) && s.converged(&ids))
            .unwrap();
        // A one-way partition while a node leaves; then heal.
        sim.block(ids[4], ids[0]);
        sim.block(ids[0], ids[5]);
        sim.leave(ids[3], ids[3]);
        sim.run_for(SECS(5));
        sim.heal();
        let rest = [ids[0], ids[1], ids[2], ids[4], ids[5]];
        // Bound: after faults heal the cluster converges within 30 gossip intervals.
        sim.run_until(SECS(30), |s| s.all_up(&rest) && s.converged(&rest))
            .unwrap();
        sim.check_agreement(&rest).unwrap();
    }
}

#[test]
fn a_thousand_node_cluster_forms_and_converges() {
    let mut sim: Sim<1024, 1024> = Sim::new(42);
    sim.record_events(false);
    sim.set_check_interval(Duration::from_millis(100));
    let ids = sim.start_cluster(1000, &Config::default(), 3);
    let took = sim
        .run_until(SECS(60), |s| s.all_up(&ids) && s.converged(&ids))
        .unwrap();
    eprintln!("1000 nodes Up and converged after {took:?} virtual");
}

#[test]
fn full_cluster_shutdown_makes_everyone_ready_and_lets_no_one_in() {
    for seed in seeds(5) {
        let (mut sim, ids) = up_cluster(seed, 3, &Config::default());
        sim.with_node(ids[1], |n, now| n.prepare_for_full_cluster_shutdown(now))
            .unwrap();
        sim.run_until(SECS(30), |s| {
            s.all_see(&ids, &ids, |m| m.status == MemberStatus::ReadyForShutdown)
        })
        .unwrap();
        let late = sim.add_node(Config::default());
        sim.join(late, ids[0]);
        sim.run_for(SECS(20));
        assert!(
            ids.iter()
                .all(|&i| sim.status_of(i, late).is_none_or(|s| s != MemberStatus::Up)),
            "a node was let in during a full-cluster shutdown"
        );
        // Members can still leave.
        sim.leave(ids[2], ids[2]);
        let rest = &ids[..2];
        sim.run_until(SECS(30), |s| {
            s.all_see(rest, rest, |m| m.status == MemberStatus::ReadyForShutdown)
                && s.is_stopped(ids[2])
        })
        .unwrap();
    }
}

/// A member downed and removed while cut off never saw its Down: when the network heals, the
/// first gossip it sends is answered with the state whose tombstone stops it (Akka relies on
/// Artery's quarantine for this). Manual downing, so its own resolver plays no part.
#[test]
fn a_removed_member_that_missed_its_down_is_told_when_it_gossips() {
    for seed in seeds(5) {
        let mut sim: Sim = Sim::new(seed);
        let ids = cluster(&mut sim, 3, &Config::default());
        for &i in &ids {
            sim.join_seed_nodes(i, &ids[..1]);
        }
        sim.run_until(SECS(30), |s| s.all_up(&ids) && s.converged(&ids))
            .unwrap();
        sim.partition(&ids[..2], &ids[2..]);
        sim.run_for(SECS(10));
        sim.down(ids[0], ids[2]);
        sim.run_until(SECS(30), |s| {
            ids[..2]
                .iter()
                .all(|&o| s.node(o).gossip().is_tombstoned(&s.node(ids[2]).address()))
        })
        .expect("the majority removed node 2");
        // Nobody watches node 2 any more; it still thinks it is Up.
        sim.run_for(SECS(5));
        assert!(!sim.is_stopped(ids[2]));
        sim.heal();
        sim.run_until(SECS(30), |s| s.is_stopped(ids[2]))
            .expect("node 2 learned it was removed");
        assert!(sim
            .events_of(ids[2])
            .any(|e| matches!(e, Event::Stopped(StopReason::Removed))));
    }
}
