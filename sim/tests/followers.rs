//! Members that may not lead (`leader-eligible = false`): the leader and every downing
//! decision come from the members that may; the others never found a cluster, take no
//! joiners, and stop once cut off from every member that may.

use std::time::Duration;

use fjell_core::{CommandError, Config, Downing, Event, StopReason, Strategy};
use fjell_sim::{NodeId, Sim};

fn config(eligible: bool) -> Config {
    let mut c = Config::default();
    c.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    c.leader_eligible = eligible;
    c
}

/// One gateway that may lead (node 0) and `devices` members that may not, joined through the
/// gateway, all Up.
fn gateway_and_devices(sim: &mut Sim, devices: usize) -> Vec<NodeId> {
    let ids: Vec<NodeId> = std::iter::once(sim.add_node(config(true)))
        .chain((0..devices).map(|_| sim.add_node(config(false))))
        .collect();
    for &i in &ids {
        sim.join_seed_nodes(i, &ids[..1]);
    }
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
        .unwrap_or_else(|e| panic!("formation: {e}"));
    ids
}

fn stopped_for_no_leader(sim: &Sim, id: NodeId) -> bool {
    sim.events_of(id)
        .any(|e| *e == Event::Stopped(StopReason::NoLeader))
}

#[test]
fn the_member_that_may_lead_leads_even_with_the_highest_address() {
    for seed in 0..3 {
        let mut sim: Sim = Sim::new(seed);
        // Nodes 0..3 may not lead; node 3, the highest address, may. It founds.
        let ids: Vec<NodeId> = (0..4).map(|i| sim.add_node(config(i == 3))).collect();
        sim.join_seed_nodes(3, &ids[3..]);
        for &i in &ids[..3] {
            sim.join_seed_nodes(i, &[3, i]);
        }
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for &i in &ids {
            assert_eq!(
                sim.leader_of(i),
                Some(3),
                "seed {seed}: leader in the view of {i}"
            );
            let me = sim.node(i).address();
            let m = sim.node(3).gossip().member(&me).expect("member").clone();
            assert_eq!(m.leader_eligible, i == 3, "seed {seed}: the record of {i}");
        }
    }
}

#[test]
fn a_member_that_may_not_lead_cannot_found_a_cluster() {
    let mut sim: Sim = Sim::new(1);
    let d = sim.add_node(config(false));
    let other = sim.add_node(config(true));
    let (me, them) = (sim.addr(d), sim.addr(other));
    let r = sim.with_node(d, |n, now| n.join_seed_nodes(now, &[me]));
    assert_eq!(r, Err(CommandError::CannotFound));
    let r = sim.with_node(d, |n, now| n.join_seed_nodes(now, &[me, them]));
    assert_eq!(r, Err(CommandError::CannotFound), "first among the seeds");
    let r = sim.with_node(d, |n, now| n.join(now, me));
    assert_eq!(r, Err(CommandError::CannotFound));
    // Listed, but not first: it probes the first, which founds.
    sim.join_seed_nodes(other, &[other, d]);
    sim.join_seed_nodes(d, &[other, d]);
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&[d, other]))
        .expect("formed through the member that may lead");
}

#[test]
fn a_member_that_may_not_lead_takes_no_joiners() {
    let mut sim: Sim = Sim::new(2);
    let ids = gateway_and_devices(&mut sim, 2);
    // A joiner whose only seed is a device is never let in; through the gateway it is.
    let j = sim.add_node(config(false));
    sim.join_seed_nodes(j, &[ids[1]]);
    sim.run_for(Duration::from_secs(30));
    assert!(
        sim.node(ids[0]).gossip().member_at(sim.addr(j)).is_none(),
        "let in through a member that may not lead"
    );
    let k = sim.add_node(config(false));
    sim.join_seed_nodes(k, &[ids[1], ids[0]]);
    let all: Vec<NodeId> = ids.iter().copied().chain([k]).collect();
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&all))
        .expect("joined through the gateway");
}

#[test]
fn a_side_of_members_that_may_not_lead_stops_and_the_other_side_goes_on() {
    for seed in 0..3 {
        let mut sim: Sim = Sim::new(seed);
        sim.record_events(true);
        let ids = gateway_and_devices(&mut sim, 4);
        // The gateway and one device | three devices. The devices are the majority, but no
        // member of theirs may decide: they stop. The gateway's side decides (keep-majority
        // counts every member: 2 of 5 is a minority, so it downs itself too).
        let (a, b) = (&ids[..2], &ids[2..]);
        sim.partition(a, b);
        let took = sim
            .run_until(Duration::from_secs(120), |s| {
                b.iter().all(|&x| s.is_stopped(x))
            })
            .unwrap_or_else(|e| panic!("seed {seed}: the devices did not stop: {e}"));
        for &x in b {
            assert!(stopped_for_no_leader(&sim, x), "seed {seed}: node {x}");
            assert!(
                !sim.events_of(x).any(|e| matches!(e, Event::Downing(_))),
                "seed {seed}: node {x} may not decide"
            );
        }
        // Stable-after and the confirmation wait (7 + 3.5 s for 5 members) after the last
        // flag, which comes after detection.
        assert!(
            took >= Duration::from_millis(10_500),
            "seed {seed}: stopped after {took:?}"
        );
        assert!(
            sim.events_of(ids[0])
                .any(|e| matches!(e, Event::Downing(_))),
            "seed {seed}: the gateway decided"
        );
    }
}

#[test]
fn devices_of_a_rebooted_gateway_stop_and_join_its_new_incarnation() {
    for seed in 0..3 {
        let mut sim: Sim = Sim::new(seed);
        sim.record_events(true);
        let ids = gateway_and_devices(&mut sim, 3);
        let (g, devices) = (ids[0], &ids[1..]);
        sim.crash(g);
        sim.restart(g);
        sim.join_seed_nodes(g, &ids);
        // The devices take no joiners, so the gateway founds anew; cut off from it, the
        // devices stop, and an application restarts each with a new incarnation.
        sim.run_until(Duration::from_secs(120), |s| {
            devices.iter().all(|&x| s.is_stopped(x))
        })
        .unwrap_or_else(|e| panic!("seed {seed}: the devices did not stop: {e}"));
        for &x in devices {
            assert!(stopped_for_no_leader(&sim, x), "seed {seed}: node {x}");
            sim.restart(x);
            sim.join_seed_nodes(x, &ids);
        }
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
            .unwrap_or_else(|e| panic!("seed {seed}: the devices did not join again: {e}"));
        assert!(ids.iter().all(|&i| sim.leader_of(i) == Some(g)));
    }
}

#[test]
fn a_device_stays_while_a_member_that_may_lead_is_in_contact() {
    let mut sim: Sim = Sim::new(4);
    sim.record_events(true);
    // Two gateways; one crashes. The other decides, and no device stops.
    let ids: Vec<NodeId> = (0..5).map(|i| sim.add_node(config(i < 2))).collect();
    for &i in &ids {
        sim.join_seed_nodes(i, &ids[..2]);
    }
    sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
        .expect("formed");
    sim.crash(ids[1]);
    let rest: Vec<NodeId> = ids.iter().copied().filter(|&i| i != ids[1]).collect();
    sim.run_until(Duration::from_secs(120), |s| s.all_up(&rest))
        .expect("the crashed gateway removed");
    sim.run_for(Duration::from_secs(60));
    assert!(sim.all_up(&rest));
    assert!(rest.iter().all(|&x| !stopped_for_no_leader(&sim, x)));
}

#[test]
fn churn_while_a_member_is_flagged_stops_no_device() {
    // One gateway, forty devices; two devices crash (flagged, then downed and removed by the
    // gateway) while a device joins and another leaves every half second, so every device's
    // state keeps changing and the gateway has not always seen the latest one. None of the
    // others may stop.
    for seed in 0..3 {
        let mut sim: Sim = Sim::new(seed);
        sim.record_events(true);
        let ids = gateway_and_devices(&mut sim, 40);
        sim.crash(ids[5]);
        sim.crash(ids[17]);
        let mut leaving = 20;
        for _ in 0..22 {
            let j = sim.add_node(config(false));
            sim.join_seed_nodes(j, &ids[..1]);
            if leaving < ids.len() {
                sim.leave(ids[leaving], ids[leaving]);
                leaving += 1;
            }
            sim.run_for(Duration::from_millis(500));
        }
        sim.run_for(Duration::from_secs(60));
        for i in 0..sim.len() {
            assert!(
                !stopped_for_no_leader(&sim, i),
                "seed {seed}: node {i} stopped cut off while the gateway was up"
            );
        }
    }
}

#[test]
fn a_restarted_first_seed_does_not_found_beside_members_that_take_no_joiners() {
    use fjell_core::NodeStatus;
    for seed in 0..3 {
        let mut sim: Sim = Sim::new(seed);
        // Two gateways and two devices; the first gateway restarts listing only itself and
        // the devices as seeds. The devices are members (of the cluster the second gateway
        // keeps): they answer that they are, so it must not found a second cluster.
        let ids: Vec<NodeId> = (0..4).map(|i| sim.add_node(config(i < 2))).collect();
        for &i in &ids {
            sim.join_seed_nodes(i, &ids[..2]);
        }
        sim.run_until(Duration::from_secs(60), |s| s.all_up(&ids))
            .expect("formed");
        sim.crash(ids[0]);
        sim.restart(ids[0]);
        sim.join_seed_nodes(ids[0], &[ids[0], ids[2], ids[3]]);
        sim.run_for(Duration::from_secs(60));
        assert_eq!(
            sim.node(ids[0]).status(),
            NodeStatus::Joining,
            "seed {seed}: the restarted first seed founded a second cluster"
        );
        assert!(
            sim.all_up(&ids[1..]),
            "seed {seed}: the cluster goes on without the old incarnation"
        );
    }
}
