//! Membership benchmarks in the simulator (issue: fjell-core). Run with
//! `cargo bench -p fjell-sim --bench membership` and record the output in BENCHMARKS.md.
//!
//! Every link has 1 ms latency; the gossip interval is the default 1 s. A "round" is one gossip
//! tick on every node, speed-up ticks included (total rounds run across nodes / node count).

use std::time::{Duration, Instant as WallInstant};

use fjell_core::{Config, DeviceNode, MemberStatus, ServerNode};
use fjell_sim::targets::Targets;
use fjell_sim::{NodeId, Sim};

type Big = Sim<1024, 1024>;

fn rounds(sim: &Big, ids: &[NodeId]) -> u64 {
    ids.iter().map(|&i| sim.node(i).stats().gossip_rounds).sum()
}

fn cold_start(seed: u64, n: usize, targets: &mut Targets) -> (Big, Vec<NodeId>) {
    let mut sim = Big::new(seed);
    sim.record_events(false);
    sim.check_invariants(false);
    sim.set_check_interval(Duration::from_millis(10));
    let ids = sim.start_cluster(n, &Config::default(), 3);
    let wall = WallInstant::now();
    let know = sim
        .run_until(Duration::from_secs(120), |s| {
            ids.iter().all(|&i| s.node(i).members().len() == n)
        })
        .expect("every node knows every member");
    let up = sim
        .run_until(Duration::from_secs(120), |s| s.all_up(&ids))
        .expect("every node sees every member up")
        + know;
    let conv = sim
        .run_until(Duration::from_secs(120), |s| s.converged(&ids))
        .expect("converged")
        + up;
    println!(
        "cold start, {n} nodes at once (seed {seed}): every node knows all members after {:.2} s, \
         sees all Up after {:.2} s, converged after {:.2} s (virtual); {:.1} s wall",
        know.as_secs_f64(),
        up.as_secs_f64(),
        conv.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    targets.at_most("every node knows all members (s)", know.as_secs_f64(), 5.0);
    targets.at_most("every node sees all Up (s)", up.as_secs_f64(), 15.0);
    (sim, ids)
}

fn change_propagation(sim: &mut Big, ids: &[NodeId], leaver: NodeId, targets: &mut Targets) {
    // Nodes that left in earlier rounds are stopped and no longer count.
    let ids: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&i| !sim.is_stopped(i))
        .collect();
    let ids = &ids[..];
    let leader = sim.leader_of(ids[0]).expect("leader");
    let who = sim.node(leaver).address();
    let r0 = rounds(sim, ids);
    sim.leave(leaver, leaver);
    let everyone = sim
        .run_until(Duration::from_secs(60), |s| {
            ids.iter().all(|&i| {
                s.node(i)
                    .gossip()
                    .member(&who)
                    .is_none_or(|m| m.status != MemberStatus::Up)
            })
        })
        .expect("change reached every node");
    let r1 = rounds(sim, ids);
    let converged = sim
        .run_until(Duration::from_secs(60), |s| s.node(leader).is_converged())
        .expect("leader sees convergence")
        + everyone;
    let r2 = rounds(sim, ids);
    let n = ids.len() as f64;
    println!(
        "one change in a {}-node cluster: every node has it after {:.2} s / {:.1} rounds; \
         the leader sees convergence after {:.2} s / {:.1} rounds",
        ids.len(),
        everyone.as_secs_f64(),
        (r1 - r0) as f64 / n,
        converged.as_secs_f64(),
        (r2 - r0) as f64 / n
    );
    targets.at_most(
        "rounds until one change reaches every node",
        (r1 - r0) as f64 / n,
        12.0,
    );
}

fn gossip_size(sim: &Big, id: NodeId) {
    let node = sim.node(id);
    let g = node.gossip();
    let mut buf = vec![0u8; Big::max_message_len()];
    let len = fjell_core::testing::wire::encode(
        &fjell_core::testing::wire::Outgoing::Gossip {
            from: node.address(),
            to: node.address(),
        },
        g,
        sim.now(),
        &mut buf,
    )
    .unwrap();
    println!(
        "encoded full gossip with {} members: {len} bytes, {:.1} bytes per member",
        g.members().len(),
        len as f64 / g.members().len() as f64
    );
}

fn main() {
    println!(
        "size_of::<DeviceNode>() = {} bytes (16 members); size_of::<ServerNode>() = {} bytes \
         (4,096 members)",
        std::mem::size_of::<DeviceNode>(),
        std::mem::size_of::<ServerNode>()
    );
    let mut targets = Targets::new();
    for seed in [1, 2, 3] {
        let (mut sim, ids) = cold_start(seed, 1000, &mut targets);
        if seed == 1 {
            gossip_size(&sim, ids[0]);
        }
        for k in 0..3 {
            sim.run_for(Duration::from_secs(5));
            change_propagation(
                &mut sim,
                &ids,
                ids[500 + k * 100 + seed as usize],
                &mut targets,
            );
            // Let the leave complete before the next change.
            sim.run_for(Duration::from_secs(10));
        }
    }
    targets.finish();
}
