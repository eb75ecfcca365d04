//! The randomized split-brain campaign (issue 4).
//!
//! `cargo bench -p fjell-sim --bench split_brain -- [runs] [first-seed]` — `runs` seeded runs
//! (default 1,000) of 5 to 9 nodes under random partitions, one-way links, heals, crashes and
//! restarts, cycling through keep-majority, static-quorum, keep-oldest, lease-majority and
//! down-all. Every step checks that no two serving nodes have each downed the other, besides the
//! simulator's other invariants. Prints the failing seeds, if any, and how the runs ended.
//!
//! `cargo bench -p fjell-sim --bench split_brain -- resolution` — how long keep-majority takes
//! to resolve a clean partition (60% / 40%) at 5, 25 and 100 nodes, default settings.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant as Wall;

use fjell_core::{Config, Downing, Event, NodeStatus, StopReason, Strategy};
use fjell_sim::campaign::{self, Ending};
use fjell_sim::{NodeId, Sim};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("resolution") {
        resolution();
        return;
    }
    let runs: u64 = args.first().map_or(1000, |a| a.parse().expect("runs"));
    let first: u64 = args.get(1).map_or(0, |a| a.parse().expect("first seed"));
    let start = Wall::now();
    let mut failed = Vec::new();
    let mut endings: BTreeMap<(&'static str, &'static str, &'static str), u64> = BTreeMap::new();
    let mut faults = 0;
    let mut nodes = 0;
    let mut unstable = [0u64; 2];
    let mut unsettled = Vec::new();
    for seed in first..first + runs {
        match catch_unwind(AssertUnwindSafe(|| campaign::run(seed))) {
            Ok(o) => {
                faults += o.faults;
                unstable[usize::from(o.calm)] += u64::from(o.unstable);
                if o.ending == Ending::Unsettled {
                    unsettled.push(seed);
                }
                nodes += o.nodes;
                let ending = match o.ending {
                    Ending::OneCluster => "one cluster",
                    Ending::AllDowned => "all downed",
                    Ending::Unsettled => "unsettled",
                };
                let mode = if o.calm { "calm" } else { "stormy" };
                *endings
                    .entry((o.strategy.name(), mode, ending))
                    .or_default() += 1;
            }
            Err(_) => failed.push(seed),
        }
    }
    let wall = start.elapsed();
    println!(
        "split-brain campaign: {runs} runs (seeds {first}..{})",
        first + runs
    );
    println!(
        "  {} nodes in all, {faults} faults injected, {:.1} s wall",
        nodes,
        wall.as_secs_f64()
    );
    println!("  runs that broke an invariant: {}", failed.len());
    if !failed.is_empty() {
        println!("  failing seeds: {failed:?} (replay: FJELL_SIM_SEED=<seed>)");
    }
    println!(
        "  runs where down-all-when-unstable fired: {} stormy, {} calm",
        unstable[0], unstable[1]
    );
    println!("  unsettled runs: {unsettled:?}");
    println!("  endings after the network healed for good:");
    for ((strategy, mode, ending), count) in &endings {
        println!("    {strategy:<15} {mode:<7} {ending:<12} {count}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// Partition → decision on the majority side, → every minority node stopped, → majority
/// converged without the minority, in virtual seconds, per seed.
fn resolution() {
    println!("keep-majority, clean partition 60% / 40%, 1 ms links, default settings");
    println!("  nodes  stable-after  decided  minority stopped  majority converged  (median, max of 5 seeds)");
    for n in [5usize, 25, 100] {
        let mut rows = Vec::new();
        for seed in 1..=5u64 {
            rows.push(resolve_once(seed, n));
        }
        let col = |k: usize| {
            let mut v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[v.len() - 1])
        };
        let c = Config::default();
        let mut d = c.downing;
        d.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
        let (a, b, cc) = (col(0), col(1), col(2));
        println!(
            "  {n:>5}  {:>10.1} s  {:>5.1} s ({:.1})  {:>8.1} s ({:.1})  {:>10.1} s ({:.1})",
            d.stable_after_for(n).as_secs_f64(),
            a.0,
            a.1,
            b.0,
            b.1,
            cc.0,
            cc.1
        );
    }
}

fn resolve_once(seed: u64, n: usize) -> [f64; 3] {
    let mut c = Config::default();
    c.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    let mut sim: Sim<128, 512> = Sim::new(seed);
    sim.check_invariants(false);
    let ids = sim.start_cluster(n, &c, 3);
    sim.run_until(std::time::Duration::from_secs(120), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .expect("formed");
    sim.run_for(std::time::Duration::from_secs(20));
    let cut = n * 3 / 5;
    let (major, minor): (Vec<NodeId>, Vec<NodeId>) = (ids[..cut].to_vec(), ids[cut..].to_vec());
    sim.partition(&major, &minor);
    let start = sim.now();
    let limit = std::time::Duration::from_secs(300);
    let decided = sim
        .run_until(limit, |s| {
            s.events_of(major[0])
                .any(|e| matches!(e, Event::Downing(_)))
        })
        .expect("decided");
    sim.run_until(limit, |s| {
        minor.iter().all(|i| {
            s.try_node(*i)
                .is_some_and(|x| x.status() == NodeStatus::Stopped(StopReason::Downed))
        })
    })
    .expect("minority stopped");
    let stopped = sim.now() - start;
    sim.run_until(limit, |s| s.all_up(&major) && s.converged(&major))
        .expect("majority converged");
    let converged = sim.now() - start;
    [
        decided.as_secs_f64(),
        stopped.as_secs_f64(),
        converged.as_secs_f64(),
    ]
}
