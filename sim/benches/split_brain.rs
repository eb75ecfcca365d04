//! The split-brain campaigns.
//!
//! `cargo bench -p fjell-sim --bench split_brain -- [runs] [first-seed]` — the adversarial
//! campaign (`fjell_sim::campaign`): `runs` seeds (default 1,000) from `first-seed` (default 0),
//! on every core. Each seed draws its swarm parameters and fault schedule; every run is checked
//! by the simulator's invariants and split-brain check, the independent event-stream oracle,
//! the decision bound for held partitions, the pause, foreign-member, join and refusal checks.
//! Prints runs per minute, failures per check with the first failing seeds, and the first
//! failure of each check shrunk to a replayable test. Exits 1 if any run failed.
//!
//! `cargo bench -p fjell-sim --bench split_brain -- legacy [runs] [first-seed]` — the first
//! campaign (5 to 9 nodes, random partitions, heals, crashes and restarts 1–40 s apart).
//!
//! `cargo bench -p fjell-sim --bench split_brain -- resolution` — how long keep-majority takes
//! to resolve a clean partition (60% / 40%) at 5, 25 and 100 nodes, default settings.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant as Wall;

use fjell_core::{Config, Downing, Event, NodeStatus, StopReason, Strategy};
use fjell_sim::campaign::{self, Drawn, Ending, Failure, Kind};
use fjell_sim::{NodeId, Sim};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("resolution") => resolution(),
        Some("legacy") => legacy(&args[1..]),
        _ => adversarial(&args),
    }
}

#[derive(Default)]
struct Tally {
    runs: u64,
    virtual_secs: f64,
    faults: u64,
    unreachable: u64,
    decisions: u64,
    unstable: u64,
    holds: u64,
    follower_holds: u64,
    no_leader_stops: u64,
    /// Simulator split brains the event-stream oracle agreed with, and did not.
    agreed: (u64, u64),
    max_lag: Option<std::time::Duration>,
    /// Passing runs with a mutual down while one end was unsettled (see the oracle).
    unsettled: u64,
    /// Per label (check, refined): failing seeds (sorted at the end).
    failed: BTreeMap<String, Vec<u64>>,
    /// The lowest failing seed per label, with its run.
    first: BTreeMap<String, (u64, Drawn, Failure)>,
    /// Runs per enabled kind, and failures per enabled kind.
    kinds: BTreeMap<Kind, (u64, u64)>,
}

fn adversarial(args: &[String]) {
    let runs: u64 = args.first().map_or(1000, |a| a.parse().expect("runs"));
    let first: u64 = args.get(1).map_or(0, |a| a.parse().expect("first seed"));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(first);
    let tally = Mutex::new(Tally::default());
    let start = Wall::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + runs {
                    return;
                }
                let d = campaign::draw(seed);
                let r = campaign::replay(&d.schedule);
                let mut t = tally.lock().unwrap();
                t.runs += 1;
                for k in &d.kinds {
                    let e = t.kinds.entry(*k).or_default();
                    e.0 += 1;
                    e.1 += u64::from(r.is_err());
                }
                match r {
                    Ok(rep) => {
                        t.virtual_secs += rep.virtual_time.as_secs_f64();
                        t.faults += rep.faults as u64;
                        t.unreachable += rep.unreachable_events as u64;
                        t.decisions += rep.decisions as u64;
                        t.unstable += rep.unstable_decisions as u64;
                        t.holds += rep.holds_checked as u64;
                        t.follower_holds += rep.follower_holds as u64;
                        t.no_leader_stops += rep.no_leader_stops as u64;
                        t.max_lag = t.max_lag.max(rep.max_decision_lag);
                        if rep.unsettled_mutual_downs > 0 {
                            t.unsettled += 1;
                        }
                    }
                    Err(f) => {
                        if f.check == campaign::Check::SimSplitBrain {
                            if f.detail.contains("oracle agrees") {
                                t.agreed.0 += 1;
                            } else {
                                t.agreed.1 += 1;
                            }
                        }
                        let label = campaign::label(&d.schedule, &f);
                        t.failed.entry(label.clone()).or_default().push(seed);
                        let better = t.first.get(&label).is_none_or(|(s, ..)| seed < *s);
                        if better {
                            t.first.insert(label, (seed, d, f));
                        }
                    }
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let t = tally.into_inner().unwrap();
    let failures: usize = t.failed.values().map(Vec::len).sum();
    println!(
        "adversarial split-brain campaign: {runs} runs (seeds {first}..{}), {threads} threads",
        first + runs
    );
    println!(
        "  {wall:.1} s wall, {:.0} runs/minute, {:.0} virtual s per passing run",
        runs as f64 / wall * 60.0,
        t.virtual_secs / (t.runs as f64 - failures as f64).max(1.0)
    );
    println!(
        "  passing runs: {} faults, {} UnreachableMember events, {} decisions ({} as unstable), \
         {} held partitions checked",
        t.faults, t.unreachable, t.decisions, t.unstable, t.holds
    );
    println!(
        "  members that may not lead: {} held partitions with a side of only such members, {} \
         such members stopped cut off from every member that may",
        t.follower_holds, t.no_leader_stops
    );
    println!(
        "  decisions on held partitions came at most {:?} after stable-after (allowed: {:?}, \
         plus the confirmation wait when the decider had not flagged the whole other side, \
         plus the lease delay)",
        t.max_lag.unwrap_or_default(),
        campaign::exec::DECISION_SLACK
    );
    println!(
        "  passing runs in which two up nodes had downed each other while one was unsettled: {}",
        t.unsettled
    );
    println!("  runs that failed a check: {failures}");
    if t.agreed != (0, 0) {
        println!(
            "  simulator split brains the event-stream oracle also saw: {} of {}",
            t.agreed.0,
            t.agreed.0 + t.agreed.1
        );
    }
    for (label, seeds) in &t.failed {
        let mut seeds = seeds.clone();
        seeds.sort();
        let shown: Vec<u64> = seeds.iter().copied().take(12).collect();
        println!(
            "    {label}: {} runs, first found at run {} (seed {}); seeds {shown:?}{}",
            seeds.len(),
            seeds[0] - first + 1,
            seeds[0],
            if seeds.len() > shown.len() {
                " ..."
            } else {
                ""
            }
        );
    }
    println!("  runs (failing) per enabled fault kind:");
    for (k, (n, f)) in &t.kinds {
        println!("    {:<14} {n:>8} ({f})", format!("{k:?}"));
    }
    for (label, (seed, d, f)) in &t.first {
        println!();
        println!("first {label} failure (seed {seed}):");
        println!("{}", campaign::found(d, f, 400));
    }
    if failures > 0 {
        std::process::exit(1);
    }
}

fn legacy(args: &[String]) {
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
        "legacy split-brain campaign: {runs} runs (seeds {first}..{})",
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
