//! Membership benchmarks in the simulator (issue: fjell-core). Run with
//! `cargo bench -p fjell-sim --bench membership` and record the output in BENCHMARKS.md;
//! `-- bytes` measures what one change costs in gossip bytes at 100, 1,000 and 4,096 members
//! instead.
//!
//! The measurements and their targets are in `fjell_sim::membership`; `tests/rounds.rs` checks
//! the same targets on every `cargo test`.

use std::time::{Duration, Instant as WallInstant};

use fjell_core::{DeviceNode, ServerNode};
use fjell_sim::membership::{change_propagation, cold_start};
use fjell_sim::targets::Targets;
use fjell_sim::{NodeId, Sim};

type Big = Sim<1024, 1024>;

fn start(seed: u64, n: usize, targets: &mut Targets) -> (Big, Vec<NodeId>) {
    let wall = WallInstant::now();
    let (sim, ids, c) = cold_start(seed, n);
    println!(
        "cold start, {n} nodes at once (seed {seed}): every node knows all members after {:.2} s, \
         sees all Up after {:.2} s, converged after {:.2} s (virtual); {:.1} s wall",
        c.know.as_secs_f64(),
        c.up.as_secs_f64(),
        c.converged.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    c.check(targets);
    (sim, ids)
}

fn change(sim: &mut Big, ids: &[NodeId], leaver: NodeId, targets: &mut Targets) {
    let c = change_propagation(sim, ids, leaver);
    println!(
        "one change in a {}-node cluster: every node has it after {:.2} s / {:.1} rounds; \
         the leader sees convergence after {:.2} s / {:.1} rounds; the member is removed \
         everywhere after {:.2} s; it cost {:.0} gossip bytes",
        c.nodes,
        c.everyone.as_secs_f64(),
        c.everyone_rounds,
        c.converged.as_secs_f64(),
        c.converged_rounds,
        c.removed.as_secs_f64(),
        c.gossip_bytes
    );
    c.check(targets);
}

fn gossip_size<const M: usize, const R: usize>(sim: &Sim<M, R>, id: NodeId) -> usize {
    let node = sim.node(id);
    let g = node.gossip();
    let mut buf = vec![0u8; Sim::<M, R>::max_message_len()];
    let len = fjell_core::testing::wire::Message::Gossip {
        from: node.address(),
        to: node.address(),
        gossip: g,
    }
    .emit(sim.now(), &mut buf)
    .unwrap();
    println!(
        "encoded full gossip with {} members: {len} bytes, {:.1} bytes per member",
        g.members().len(),
        len as f64 / g.members().len() as f64
    );
    len
}

/// Full-state gossip's cost of one change at 1,000 members, in gossip bytes (the `bytes` mode
/// at commit 77b60ef, before deltas: 1,000 nodes, seed 1). A change must now cost at most a
/// tenth of it.
const FULL_STATE_CHANGE_BYTES_1000: f64 = 1_292_453_263.0;

/// One change (a member leaves) in an `n`-node cluster formed from a cold start: the gossip
/// bytes it cost the cluster, next to the size of one full gossip.
fn bytes_per_change<const M: usize, const R: usize>(n: usize, targets: &mut Targets) {
    let wall = WallInstant::now();
    let (mut sim, ids, _) = cold_start::<M, R>(1, n);
    sim.run_for(Duration::from_secs(20));
    let full = gossip_size(&sim, ids[0]);
    let c = change_propagation(&mut sim, &ids, ids[n / 2 + 1]);
    println!(
        "bytes per change, {n} members: {:.0} gossip bytes ({:.0} per node, {:.1} full gossips \
         of {full} bytes); removed everywhere after {:.2} s; {:.0} s wall",
        c.gossip_bytes,
        c.gossip_bytes / n as f64,
        c.gossip_bytes / full as f64,
        c.removed.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    if n == 1000 && FULL_STATE_CHANGE_BYTES_1000 > 0.0 {
        targets.at_most(
            "bytes per change at 1,000 members, against full-state gossip (77b60ef)",
            c.gossip_bytes / FULL_STATE_CHANGE_BYTES_1000,
            0.10,
        );
    }
}

fn main() {
    println!(
        "size_of::<DeviceNode>() = {} bytes (16 members); size_of::<ServerNode>() = {} bytes \
         (4,096 members)",
        std::mem::size_of::<DeviceNode>(),
        std::mem::size_of::<ServerNode>()
    );
    let mut targets = Targets::new();
    if std::env::args().any(|a| a == "bytes") {
        bytes_per_change::<128, 64>(100, &mut targets);
        bytes_per_change::<1024, 512>(1000, &mut targets);
        bytes_per_change::<4096, 2048>(4096, &mut targets);
        targets.finish();
        return;
    }
    for seed in [1, 2, 3] {
        let (mut sim, ids) = start(seed, 1000, &mut targets);
        if seed == 1 {
            gossip_size(&sim, ids[0]);
        }
        for k in 0..3 {
            sim.run_for(Duration::from_secs(5));
            change(
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
