//! Failure-detection benchmarks in the simulator.
//!
//! `cargo bench -p fjell-sim --bench failure_detection` — crash-detection distributions,
//! steady-state traffic and simulation speed.
//! `cargo bench -p fjell-sim --bench failure_detection -- steady` — only the steady-state
//! traffic and simulation-speed part.
//! `cargo bench -p fjell-sim --bench failure_detection -- campaign [hours]` — false-alarm
//! campaign: 100 nodes, 20 ms jitter, 1% loss, 24 simulated hours by default.
//!
//! Links have 1 ms latency unless stated. "Crash to unreachable at every survivor" runs from the
//! crash until every surviving node's reachability table flags the crashed node.

use std::time::{Duration, Instant as Wall};

use fjell_core::{Config, Event};
use fjell_sim::targets::Targets;
use fjell_sim::{LinkConfig, NodeId, Sim};

fn config(heartbeat: Duration) -> Config {
    let mut c = Config::default();
    c.failure_detector.heartbeat_interval = heartbeat;
    c
}

fn formed<const M: usize, const R: usize>(
    seed: u64,
    n: usize,
    c: &Config,
) -> (Sim<M, R>, Vec<NodeId>) {
    let mut sim: Sim<M, R> = Sim::new(seed);
    sim.record_events(false);
    sim.check_invariants(false);
    sim.set_check_interval(Duration::from_millis(10));
    let ids = sim.start_cluster(n, c, 3);
    sim.run_until(Duration::from_secs(120), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .expect("formed");
    // Let the detectors learn the steady heartbeat interval.
    sim.run_for(Duration::from_secs(20));
    (sim, ids)
}

fn detect<const M: usize, const R: usize>(
    sim: &mut Sim<M, R>,
    ids: &[NodeId],
    victim: NodeId,
) -> Duration {
    let who = sim.node(victim).address();
    sim.crash(victim);
    let rest: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&i| i != victim && !sim.is_stopped(i))
        .collect();
    sim.run_until(Duration::from_secs(60), |s| {
        rest.iter()
            .all(|&i| !s.node(i).gossip().reachability().is_reachable(&who))
    })
    .expect("crash detected everywhere")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

fn distribution(heartbeat: Duration) {
    let c = config(heartbeat);
    let wall = Wall::now();
    let mut times = Vec::new();
    for seed in 0..100u64 {
        let (mut sim, ids) = formed::<128, 256>(seed, 100, &c);
        let victim = ids[(seed as usize * 37) % 100];
        times.push(detect(&mut sim, &ids, victim).as_secs_f64());
    }
    let fd = c.failure_detector;
    // z at which −log10(P(Z > z)) = threshold.
    let mut z = 0.0;
    while fjell_core::testing::phi::phi_of(z, fjell_core::PhiFormula::Exact) < fd.threshold {
        z += 0.001;
    }
    let t_star = heartbeat.as_secs_f64()
        + fd.acceptable_heartbeat_pause.as_secs_f64()
        + z * fd.min_std_deviation.as_secs_f64();
    let (med, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));
    println!(
        "crash → unreachable at every survivor, 100 nodes, heartbeat {:?}, 100 seeded runs: \
         median {med:.2} s, p99 {p99:.2} s, min {:.2} s, max {:.2} s; bound t* = mean + pause + \
         z·σ = {:.3} s (z = {z:.2}) after the last heartbeat, plus up to one reaper interval \
         and the gossip spread; {:.0} s wall",
        heartbeat,
        times[0],
        times[times.len() - 1],
        t_star,
        wall.elapsed().as_secs_f64()
    );
}

fn large_cluster(targets: &mut Targets) {
    let wall = Wall::now();
    let (mut sim, ids) = formed::<1024, 2048>(11, 1000, &Config::default());
    let mut times = Vec::new();
    for k in 0..10 {
        let victim = ids[100 + k * 77];
        times.push(detect(&mut sim, &ids, victim).as_secs_f64());
        // Down it so the cluster converges again before the next crash.
        let by = ids[0];
        sim.down(by, victim);
        let rest: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|&i| !sim.is_stopped(i))
            .collect();
        sim.run_until(Duration::from_secs(60), |s| s.converged(&rest))
            .expect("converged after down");
    }
    let med = percentile(&mut times, 0.5);
    println!(
        "crash → unreachable at every survivor, 1,000 nodes, defaults, 10 crashes: median \
         {med:.2} s, min {:.2} s, max {:.2} s (target: median ≤ 8 s); {:.0} s wall",
        times[0],
        times[times.len() - 1],
        wall.elapsed().as_secs_f64()
    );
    targets.at_most("1,000-node detection median (s)", med, 8.0);
}

fn steady<const M: usize, const R: usize>(n: usize, targets: &mut Targets) {
    let (mut sim, ids) = formed::<M, R>(3, n, &Config::default());
    // Long enough that the wall-clock measurement is not noise (100 nodes run 600 s in < 1 s).
    let secs = if n <= 100 { 1800 } else { 60 };
    let before = sim.traffic();
    let wall = Wall::now();
    sim.run_for(Duration::from_secs(secs));
    let wall_fast = wall.elapsed().as_secs_f64();
    let after = sim.traffic();
    let per = (n as u64 * secs) as f64;
    println!(
        "steady state, {n} nodes, defaults: {:.1} payload bytes and {:.1} messages per node per \
         second (heartbeat {:.1} B, gossip {:.1} B); simulation {:.0}× real time without \
         invariant checks",
        (after.bytes - before.bytes) as f64 / per,
        (after.messages - before.messages) as f64 / per,
        (after.heartbeat_bytes - before.heartbeat_bytes) as f64 / per,
        (after.gossip_bytes - before.gossip_bytes) as f64 / per,
        secs as f64 / wall_fast
    );
    targets.at_most(
        &format!("steady-state payload, {n} nodes (bytes/node/s)"),
        (after.bytes - before.bytes) as f64 / per,
        100.0,
    );
    sim.check_invariants(true);
    let wall = Wall::now();
    sim.run_for(Duration::from_secs(secs));
    println!(
        "  with invariant checks after every step: {:.0}× real time",
        secs as f64 / wall.elapsed().as_secs_f64()
    );
    assert!(sim.converged(&ids));
}

fn campaign(hours: u64, targets: &mut Targets) {
    let wall = Wall::now();
    let mut sim: Sim<128, 256> = Sim::new(2026);
    sim.check_invariants(false);
    sim.set_check_interval(Duration::from_millis(100));
    let ids = sim.start_cluster(100, &Config::default(), 3);
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .expect("formed");
    let start = sim.events().len();
    sim.set_default_link(LinkConfig::jittery_lossy());
    let before = sim.traffic();
    for h in 0..hours {
        sim.run_for(Duration::from_secs(3600));
        let false_alarms = sim.events()[start..]
            .iter()
            .filter(|l| matches!(l.event, Event::UnreachableMember(_)))
            .count();
        eprintln!(
            "hour {}: {false_alarms} UnreachableMember events so far",
            h + 1
        );
    }
    let false_alarms = sim.events()[start..]
        .iter()
        .filter(|l| matches!(l.event, Event::UnreachableMember(_)))
        .count();
    let t = sim.traffic();
    println!(
        "false-alarm campaign: 100 nodes, 20 ms jitter, 1% loss, {hours} simulated hours (seed \
         2026): {false_alarms} UnreachableMember events; {} messages sent, {} lost; converged at \
         the end: {}; {:.0} s wall",
        t.messages - before.messages,
        t.dropped - before.dropped,
        sim.converged(&ids),
        wall.elapsed().as_secs_f64()
    );
    targets.at_most(
        "false alarms (UnreachableMember events)",
        false_alarms as f64,
        0.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut targets = Targets::new();
    if let Some(i) = args.iter().position(|a| a == "campaign") {
        let hours = args.get(i + 1).and_then(|h| h.parse().ok()).unwrap_or(24);
        campaign(hours, &mut targets);
    } else if args.iter().any(|a| a == "steady") {
        steady::<128, 256>(100, &mut targets);
        steady::<1024, 2048>(1000, &mut targets);
    } else {
        distribution(Duration::from_secs(1));
        distribution(Duration::from_millis(100));
        steady::<128, 256>(100, &mut targets);
        steady::<1024, 2048>(1000, &mut targets);
        large_cluster(&mut targets);
    }
    targets.finish();
}
