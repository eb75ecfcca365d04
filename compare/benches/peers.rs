//! fjell-core against foca 1.0, through one network model and one set of definitions (see
//! the `fjell_compare` crate docs and `fjell_compare::measure`).
//!
//! ```text
//! cargo bench -p fjell-compare --bench peers            # 10, 100 and 1,000 nodes
//! cargo bench -p fjell-compare --bench peers -- 4096    # any list of sizes
//! cargo bench -p fjell-compare --bench peers -- --fjell-only 4096   # foca's runs skipped
//! FJELL_COMPARE_SEED=7 cargo bench -p fjell-compare --bench peers
//! ```
//!
//! Prints one table per size, a summary in the issue's columns and an extrapolation to 10,000
//! members, then checks fjell's targets and exits with 1 if any is missed, naming each.

mod common;

use std::time::Instant;

use fjell_compare::heap::CountingAlloc;
use fjell_compare::measure::{self, bytes, extrapolate, Cpu, Plan, Report};

use common::fjell::{Fjell, H, SEEDS};
use common::foca::FocaNode;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Sizes run without arguments.
const DEFAULT_SIZES: [usize; 3] = [10, 100, 1_000];

/// Seed without `FJELL_COMPARE_SEED`.
const DEFAULT_SEED: u64 = 1;

/// Where the extrapolation goes.
const EXTRAPOLATE_TO: usize = 10_000;

// ----- targets ---------------------------------------------------------------------------

/// fjell: every node sees all members Up, at most (seconds), by cluster size.
const ALL_UP_SECS: [(usize, f64); 3] = [(10, 1.0), (100, 1.5), (1_000, 3.0)];

/// fjell: detection spread (every survivor − the first) at 1,000 nodes, at most (seconds).
const SPREAD_SECS_1000: f64 = 1.0;

/// fjell: steady traffic at every size, at most (payload bytes per node per second).
const STEADY_BYTES_PER_NODE_S: f64 = 100.0;

/// fjell's CPU per node-second must not exceed foca's at these sizes.
const CPU_SIZES: [usize; 2] = [100, 1_000];

/// The full-state reference: the bytes per change this bench reported for fjell at 1,000
/// nodes on commit 77b60ef with the default seed (1), when fjell spread every change by
/// gossiping the whole state (about 28 kB at 1,000 members) and a leave cost 2.06 GB across
/// the cluster. Measured with `cargo bench -p fjell-compare --bench peers` ("bytes/change
/// exactly" in the N = 1000 section). Another `FJELL_COMPARE_SEED` is still compared with it.
const FULL_STATE_BYTES_PER_CHANGE_1000: f64 = 2_063_910_797.0;

/// fjell: bytes per change at 1,000 nodes, at most this share of the full-state reference.
const CHANGE_SHARE_OF_FULL_STATE: f64 = 0.10;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            a.replace([',', '_'], "")
                .parse()
                .unwrap_or_else(|_| panic!("not a cluster size: {a}"))
        })
        .collect();
    let sizes = if sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        sizes
    };
    let seed = match std::env::var("FJELL_COMPARE_SEED") {
        Ok(s) => s.parse().expect("FJELL_COMPARE_SEED must be an integer"),
        Err(_) => DEFAULT_SEED,
    };
    // fjell's nodes keep their per-member state on the heap (fjell-core's `alloc`), so they
    // are small values built on this thread's stack.
    // foca's formation does not finish at 4,096 nodes in this harness.
    let fjell_only = std::env::args().any(|a| a == "--fjell-only");
    if !run(&sizes, seed, fjell_only) {
        std::process::exit(1);
    }
}

fn fjell(plan: &Plan, log: &mut dyn FnMut(&str)) -> Report {
    let name = "fjell";
    match plan.n {
        0..=16 => measure::measure::<Fjell<16, 12>>(name, plan, log),
        17..=128 => measure::measure::<Fjell<128, 64>>(name, plan, log),
        129..=1024 => measure::measure::<Fjell<1024, 512>>(name, plan, log),
        1025..=4096 => measure::measure::<Fjell<4096, 2048>>(name, plan, log),
        n => panic!("no fjell node type holds {n} members here (at most 4,096)"),
    }
}

fn fjell_type(n: usize) -> String {
    let (m, r) = match n {
        0..=16 => (16, 12),
        17..=128 => (128, 64),
        129..=1024 => (1024, 512),
        _ => (4096, 2048),
    };
    format!("Node<{m}, {r}, {H}>")
}

fn run(sizes: &[usize], seed: u64, fjell_only: bool) -> bool {
    let wall = Instant::now();
    let base = Plan::new(0, seed);
    println!("# fjell-core vs foca 1.0\n");
    println!(
        "seed {seed} (set FJELL_COMPARE_SEED to change it); network: {} µs one-way latency on \
         every link, FIFO, loss {}; one discrete-event queue for messages and timers",
        base.link.latency.as_micros(),
        base.link.loss
    );
    println!(
        "fjell: Config::default(), every node join_seed_nodes(first {SEEDS} nodes), the smallest \
         node type holding N (heartbeat window {H})"
    );
    println!(
        "foca: Config::new_lan(N) (foca's recommended LAN config), postcard codec, identity = \
         address + bump (foca's example agent), every node but node 0 announces to node 0; a \
         leave is leave_cluster, then the node stops"
    );
    println!(
        "windows after formation + {} s warm-up: steady traffic {} s; CPU from {} s for \
         max(90 s, {} node-s / N) (getrusage user+sys, one thread); bytes/change over {} s; \
         detection limit {} s; the crashing/leaving node is N/2\n",
        base.warmup.as_secs(),
        base.steady.as_secs(),
        base.cpu_short.as_secs(),
        measure::CPU_NODE_SECONDS,
        base.change_window.as_secs(),
        base.detect_limit.as_secs()
    );

    let mut results: Vec<(Report, Report)> = Vec::new();
    let mut alone: Vec<Report> = Vec::new();
    let mut log = |line: &str| {
        eprintln!("[{:7.1} s] {line}", wall.elapsed().as_secs_f64());
    };
    for &n in sizes {
        let plan = Plan::new(n, seed);
        let a = fjell(&plan, &mut log);
        // fjell's rows at once: at 4,096 members foca's runs take much longer than fjell's.
        if fjell_only {
            println!("## N = {n}, fjell alone\n");
        } else {
            println!("## N = {n}, fjell alone (foca's runs follow)\n");
        }
        print!("{}", measure::size_table(&plan, &[&a]));
        println!(
            "\nnode value: fjell {}; bytes/change exactly: fjell {} B; wall {:.1} s\n",
            bytes(a.value_bytes as f64),
            a.bytes_per_change,
            a.wall.as_secs_f64(),
        );
        if fjell_only {
            alone.push(a);
            continue;
        }
        let b = measure::measure::<FocaNode>("foca", &plan, &mut log);
        println!("## N = {n} (fjell {})\n", fjell_type(n));
        print!("{}", measure::size_table(&plan, &[&a, &b]));
        println!(
            "\nnode value: fjell {} (size_of Node), foca {} (size_of Foca) + {} heap; \
             foca's first suspicion {}; bytes/change exactly: fjell {} B, foca {} B; \
             wall {:.1} s + {:.1} s\n",
            bytes(a.value_bytes as f64),
            bytes(b.value_bytes as f64),
            bytes(b.heap_per_node),
            b.suspect_first
                .map_or("—".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
            a.bytes_per_change,
            b.bytes_per_change,
            a.wall.as_secs_f64(),
            b.wall.as_secs_f64(),
        );
        results.push((a, b));
    }

    if fjell_only {
        println!("wall time: {:.1} s\n", wall.elapsed().as_secs_f64());
        return targets(&alone.iter().collect::<Vec<_>>(), &[]);
    }
    println!("## Summary\n");
    let pairs: Vec<(&Report, &Report)> = results.iter().map(|(a, b)| (a, b)).collect();
    print!("{}", measure::summary_table(&base, &pairs));
    println!();
    extrapolation(&results);
    let duels = cpu_duels(sizes, seed, &mut log);
    println!("wall time: {:.1} s\n", wall.elapsed().as_secs_f64());
    let fjell: Vec<&Report> = results.iter().map(|(a, _)| a).collect();
    targets(&fjell, &duels)
}

/// The CPU target's measurement: at each size of [`CPU_SIZES`] measured, both protocols in
/// alternating slices of one process ([`measure::cpu_duel`]).
fn cpu_duels(sizes: &[usize], seed: u64, log: &mut dyn FnMut(&str)) -> Vec<(usize, Cpu, Cpu)> {
    let mut duels = Vec::new();
    for &n in sizes.iter().filter(|n| CPU_SIZES.contains(n)) {
        let plan = Plan::new(n, seed);
        let (a, b) = match n {
            17..=128 => measure::cpu_duel::<Fjell<128, 64>, FocaNode>(&plan),
            129..=1024 => measure::cpu_duel::<Fjell<1024, 512>, FocaNode>(&plan),
            _ => continue,
        };
        log(&format!("cpu duel n={n} done"));
        duels.push((n, a, b));
    }
    if !duels.is_empty() {
        println!(
            "## CPU, interleaved\n\nBoth formed clusters in one process, {} alternating slices \
             each over the CPU window (the target's measurement; the tables' CPU is one \
             protocol's run at a time).\n",
            measure::DUEL_SLICES
        );
        println!("| N | fjell CPU µs/node-s | foca CPU µs/node-s | fjell / foca | fjell CPU µs/msg | foca CPU µs/msg |");
        println!("|---|---|---|---|---|---|");
        for (n, a, b) in &duels {
            println!(
                "| {n} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |",
                a.us_per_node_s,
                b.us_per_node_s,
                a.us_per_node_s / b.us_per_node_s,
                a.us_per_msg,
                b.us_per_msg
            );
        }
        println!();
    }
    duels
}

fn extrapolation(results: &[(Report, Report)]) {
    println!("## Extrapolation to {EXTRAPOLATE_TO} members\n");
    println!(
        "q({EXTRAPOLATE_TO}) = q(N2) * ({EXTRAPOLATE_TO} / N2)^a, a = ln(q(N2) / q(N1)) / ln(N2 / N1) \
         through the two largest sizes measured (N1 < N2); with one size, a = 1 for bytes/change \
         and mem/node (linear per member) and a = 0 for the per-node rates. The per-member cost \
         q/N then grows as N^(a-1).\n"
    );
    println!("| quantity | protocol | at largest N | per member there | a | at {EXTRAPOLATE_TO} |");
    println!("|---|---|---|---|---|---|");
    type Get = fn(&Report) -> f64;
    let quantities: [(&str, Get, f64); 4] = [
        ("bytes/change", |r| r.bytes_per_change as f64, 1.0),
        ("mem/node", |r| r.mem_per_node(), 1.0),
        ("B/node/s", |r| r.bytes_per_node_s, 0.0),
        ("CPU µs/node-s", |r| r.cpu_us_per_node_s, 0.0),
    ];
    for (what, get, default) in quantities {
        for side in 0..2 {
            let points: Vec<(usize, f64)> = results
                .iter()
                .map(|(a, b)| if side == 0 { a } else { b })
                .map(|r| (r.n, get(r)))
                .collect();
            let name = if side == 0 { "fjell" } else { "foca" };
            let Some(&(n2, q2)) = points.iter().max_by_key(|p| p.0) else {
                continue;
            };
            let fmt = |q: f64| {
                if what.starts_with("bytes") || what.starts_with("mem") {
                    bytes(q)
                } else {
                    format!("{q:.1}")
                }
            };
            match extrapolate(&points, EXTRAPOLATE_TO, default) {
                Some((q, a)) => println!(
                    "| {what} | {name} | {} | {} | {a:.2} | {} |",
                    fmt(q2),
                    fmt(q2 / n2 as f64),
                    fmt(q)
                ),
                None => println!(
                    "| {what} | {name} | {} | — | — | not positive: no extrapolation |",
                    fmt(q2)
                ),
            }
        }
    }
    println!();
}

/// Checks every target on fjell's reports and the CPU duels; prints each verdict. True if
/// none is missed.
fn targets(fjell: &[&Report], duels: &[(usize, Cpu, Cpu)]) -> bool {
    println!("## Targets\n");
    let mut missed = Vec::new();
    let mut check = |name: String, ok: bool, got: String| {
        println!("- {} {name}: {got}", if ok { "met   " } else { "MISSED" });
        if !ok {
            missed.push(name);
        }
    };
    let at = |n: usize| fjell.iter().find(|a| a.n == n);
    for (n, limit) in ALL_UP_SECS {
        if let Some(a) = at(n) {
            let got = a.all_up.map(|d| d.as_secs_f64());
            check(
                format!("fjell all Up ≤ {limit} s at {n}"),
                got.is_some_and(|s| s <= limit),
                got.map_or("not formed".into(), |s| format!("{s:.2} s")),
            );
        }
    }
    if let Some(a) = at(1_000) {
        let got = a.detect_spread().map(|d| d.as_secs_f64());
        check(
            format!("fjell detection spread ≤ {SPREAD_SECS_1000} s at 1000"),
            got.is_some_and(|s| s <= SPREAD_SECS_1000),
            got.map_or("not every survivor detected".into(), |s| {
                format!("{s:.2} s")
            }),
        );
    }
    for a in fjell {
        check(
            format!(
                "fjell steady traffic ≤ {STEADY_BYTES_PER_NODE_S} B/node/s at {}",
                a.n
            ),
            a.bytes_per_node_s <= STEADY_BYTES_PER_NODE_S,
            format!("{:.1} B/node/s", a.bytes_per_node_s),
        );
    }
    for (n, a, b) in duels {
        check(
            format!("fjell CPU per node-second ≤ foca's at {n} (interleaved)"),
            a.us_per_node_s <= b.us_per_node_s,
            format!("{:.2} vs {:.2} µs/node-s", a.us_per_node_s, b.us_per_node_s),
        );
    }
    if let Some(a) = at(1_000) {
        let limit = CHANGE_SHARE_OF_FULL_STATE * FULL_STATE_BYTES_PER_CHANGE_1000;
        check(
            format!(
                "fjell bytes per change at 1000 ≤ {:.0}% of the full-state reference ({})",
                CHANGE_SHARE_OF_FULL_STATE * 100.0,
                bytes(FULL_STATE_BYTES_PER_CHANGE_1000)
            ),
            (a.bytes_per_change as f64) <= limit,
            format!(
                "{} ({:.1}%)",
                bytes(a.bytes_per_change as f64),
                100.0 * a.bytes_per_change as f64 / FULL_STATE_BYTES_PER_CHANGE_1000
            ),
        );
    }
    println!();
    if missed.is_empty() {
        println!("every target met");
        true
    } else {
        println!("{} target(s) missed: {}", missed.len(), missed.join("; "));
        false
    }
}
