//! Keep-majority partitions at the edge of the reachability capacity.
//!
//! A node holds at most `R` reachability records (observer → subject rows). With the device
//! capacities (`DeviceNode` = 16 members, R = 12) a partition of a full-sized cluster flags
//! more observer → subject pairs than that; the resolver must still keep the majority (or, on
//! equal halves, the side holding the lowest address) and down only the other side. These
//! tests define that outcome for every cluster size the device preset holds, for every
//! strict-majority split and every exact half, plus one half split at the server preset's
//! ratio (`ServerNode`: R = 2·M) at a size the simulator runs quickly. With R = 256 instead of
//! 12 every device case passes (checked when these tests were written, at 267347a, where many
//! of them fail: the side that must survive downs itself too).
//!
//! The simulator's nodes are `Node<M, R>` with the default H (64 heartbeat intervals per
//! monitored member, `DeviceNode` has 8): H only bounds the failure detector's history and does
//! not matter here.
//!
//! Every case is deterministic in its seed, which also picks the members of each side. A test
//! runs all its cases and then fails listing every failing one (seed, split, what each node
//! ended as); `FJELL_SIM_SEED=<seed>` runs only the case with that seed.
//!
//! Each split is tried in several arrangements: the smaller side as the highest node ids, as
//! the lowest (holding node 0, the lowest address), spread over the heartbeat ring (every other
//! ring position: about the most observer → subject pairs that cross the partition, so about
//! the most reachability records), and seeded random subsets.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use fjell_core::testing::random::Rng;
use fjell_core::{
    Config, Downing, Event, MemberStatus, NodeStatus, StopReason, Strategy, WhenUnstable,
};
use fjell_sim::{NodeId, Sim};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Keep-majority with every other downing setting at its default (stable-after scaled by size,
/// down-all-when-unstable on, removal margin = stable-after), as a user would configure it.
fn keep_majority() -> Config {
    let mut c = Config::default();
    c.downing.downing = Downing::SplitBrainResolver(Strategy::KeepMajority { role: None });
    assert_eq!(c.downing.down_all_when_unstable, WhenUnstable::On);
    c
}

/// `FJELL_SIM_SEED`, if set: run only the case with that seed.
fn only_seed() -> Option<u64> {
    std::env::var("FJELL_SIM_SEED")
        .ok()
        .map(|s| s.parse().expect("FJELL_SIM_SEED must be an integer"))
}

/// `k` distinct node ids out of `0..n`, picked by `seed` (a partial Fisher–Yates shuffle), in
/// increasing order.
fn pick(seed: u64, n: usize, k: usize) -> Vec<NodeId> {
    let mut rng = Rng::new(seed);
    let mut all: Vec<NodeId> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        all.swap(i, j);
    }
    let mut v = all[..k].to_vec();
    v.sort_unstable();
    v
}

fn complement(n: usize, of: &[NodeId]) -> Vec<NodeId> {
    (0..n).filter(|i| !of.contains(i)).collect()
}

/// The seed of case (`n`, minority size `k`, arrangement `arr`).
fn case_seed(n: usize, k: usize, arr: usize) -> u64 {
    ((n as u64) << 16) | ((k as u64) << 8) | arr as u64
}

/// How the smaller side of a split is chosen.
#[derive(Debug, Clone)]
enum Small {
    /// These node ids.
    Ids(Vec<NodeId>),
    /// This many nodes at every other position of the heartbeat ring (members ordered by
    /// `UniqueAddress::stable_hash`, as core/src/heartbeat.rs orders them), starting at the
    /// first: each of them has its ring successors on the other side, and so does nearly each
    /// node of the other side. Known only once the nodes exist (the hash includes the uid).
    RingSpread(usize),
}

/// One case: the simulation seed, the cluster size and the smaller side.
type Case = (u64, usize, Small);

/// The side that must survive when `small` is the smaller side of `n` nodes: the other one,
/// or on equal halves the one holding node 0 (the lowest address).
fn survivors(n: usize, small: &[NodeId]) -> Vec<NodeId> {
    if 2 * small.len() == n && small.contains(&0) {
        small.to_vec()
    } else {
        complement(n, small)
    }
}

/// The arrangements of a split of `n` nodes with `k` on the smaller side (`2k <= n`): the
/// highest ids, the lowest ids, spread over the ring, then `random` seeded random subsets.
fn arrangements(n: usize, k: usize, random: usize) -> Vec<Case> {
    (0..3 + random)
        .map(|arr| {
            let seed = case_seed(n, k, arr);
            let small = match arr {
                0 => Small::Ids((n - k..n).collect()),
                1 => Small::Ids((0..k).collect()),
                2 => Small::RingSpread(k),
                _ => Small::Ids(pick(seed, n, k)),
            };
            (seed, n, small)
        })
        .collect()
}

fn downed<const M: usize, const R: usize>(sim: &Sim<M, R>, id: NodeId) -> bool {
    sim.try_node(id)
        .is_some_and(|n| n.status() == NodeStatus::Stopped(StopReason::Downed))
}

/// The outcome a keep-majority partition must reach: every node in `keep` serves and sees
/// exactly `keep` as members, all Up, converged; every node in `lose` stopped, downed.
fn resolved<const M: usize, const R: usize>(
    sim: &Sim<M, R>,
    keep: &[NodeId],
    lose: &[NodeId],
) -> bool {
    keep.iter().all(|&i| sim.serving(i))
        && sim.all_see(keep, keep, |m| m.status == MemberStatus::Up)
        && sim.converged(keep)
        && lose.iter().all(|&i| downed(sim, i))
}

/// A one-line classification of the end state, then what each node ended as, for a failure
/// message.
fn describe<const M: usize, const R: usize>(
    sim: &Sim<M, R>,
    keep: &[NodeId],
    lose: &[NodeId],
) -> String {
    let stopped = |ids: &[NodeId]| ids.iter().filter(|&&i| sim.is_stopped(i)).count();
    let serving = |ids: &[NodeId]| ids.iter().filter(|&&i| sim.serving(i)).count();
    let (ks, ls) = (stopped(keep), stopped(lose));
    let summary = if ks == keep.len() && ls == lose.len() {
        "ALL nodes stopped".to_string()
    } else if ks > 0 {
        format!(
            "{ks}/{} of the side that must survive stopped, {}/{} still serve; {ls}/{} of the \
             other side stopped",
            keep.len(),
            serving(keep),
            keep.len(),
            lose.len()
        )
    } else if ls < lose.len() {
        format!(
            "the side that must go: only {ls}/{} stopped, {} still serve",
            lose.len(),
            serving(lose)
        )
    } else {
        "the other side stopped, but the surviving side does not see exactly itself Up and \
         converged"
            .to_string()
    };
    let mut decided = Vec::new();
    let mut nodes = String::new();
    if std::env::var_os("FJELL_SIM_VIEWS").is_some() {
        for &k in keep.iter().take(3) {
            nodes += &format!("\n{}", sim.describe_view(k));
        }
    }
    for i in 0..sim.len() {
        let side = if keep.contains(&i) { "keep" } else { "lose" };
        let Some(n) = sim.try_node(i) else {
            nodes += &format!("\n      n{i} ({side}): crashed");
            continue;
        };
        let decisions: Vec<String> = sim
            .events_of(i)
            .filter_map(|e| match e {
                Event::Downing(d) => Some(format!(
                    "{:?}/{:?} ({} downed)",
                    d.decision, d.reason, d.downed
                )),
                _ => None,
            })
            .collect();
        for d in &decisions {
            decided.push(format!("n{i} ({side}) {d}"));
        }
        let up = n
            .members()
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        nodes += &format!(
            "\n      n{i} ({side}): {:?}, self {:?}, sees {} members ({up} Up, {} unreachable), \
             converged {}, over_capacity {}, decisions [{}]",
            n.status(),
            n.self_member().map(|m| m.status),
            n.members().len(),
            n.unreachable().count(),
            n.is_converged(),
            n.stats().over_capacity,
            decisions.join(", ")
        );
    }
    format!(
        "{summary}; decisions: {}; at t={:?}:{nodes}",
        decided.join(", "),
        sim.elapsed()
    )
}

/// The side that must survive and the other one.
type Sides = (Vec<NodeId>, Vec<NodeId>);

/// The virtual time a case took to resolve and the inputs its survivors refused over capacity,
/// or what went wrong.
type Outcome = Result<(Duration, u64), String>;

/// Forms a cluster of `n` nodes with keep-majority, partitions it into the side that must
/// survive (`keep`, see [`survivors`]) | the rest, and runs until the rest has been downed and
/// `keep` has removed it and converged on itself; then runs another stable-after and checks
/// the outcome held. Returns the sides, `(keep, lose)`, and the outcome: the virtual time from
/// the partition to the resolution and the inputs the survivors refused for lack of capacity
/// (`Stats::over_capacity`, summed), or what went wrong. A panic inside the simulator (an
/// invariant or the split-brain check) is caught and returned as an error too.
fn split_case<const M: usize, const R: usize>(
    seed: u64,
    n: usize,
    small: &Small,
) -> (Sides, Outcome) {
    let mut sides = match small {
        Small::Ids(ids) => {
            let keep = survivors(n, ids);
            let lose = complement(n, &keep);
            (keep, lose)
        }
        Small::RingSpread(_) => (Vec::new(), Vec::new()),
    };
    let run = |sides: &mut Sides| -> Outcome {
        let config = keep_majority();
        let mut sim: Sim<M, R> = Sim::new(seed);
        sim.quiet(true);
        sim.check_split_brain(true);
        sim.set_check_interval(Duration::from_millis(10));
        let ids = sim.start_cluster(n, &config, 3);
        sim.run_until(SECS(60), |s| s.all_up(&ids) && s.converged(&ids))
            .map_err(|e| format!("cluster did not form: {e}"))?;
        if let Small::RingSpread(k) = small {
            let mut ring = ids.clone();
            ring.sort_by_key(|&i| {
                let a = sim.node(i).address();
                (a.stable_hash(), a)
            });
            let spread: Vec<NodeId> = ring.iter().step_by(2).take(*k).copied().collect();
            sides.0 = survivors(n, &spread);
            sides.1 = complement(n, &sides.0);
        }
        let (keep, lose) = (&sides.0, &sides.1);
        sim.partition(keep, lose);
        let stable = config.downing.stable_after_for(n);
        // Detection (≈ 5 s), stable-after, the confirmation wait (stable-after / 2), the
        // removal margin (stable-after), leader ticks and convergence: well within this.
        let bound = SECS(20) + stable * 3;
        let took = sim
            .run_until(bound, |s| resolved(s, keep, lose))
            .map_err(|e| format!("{e}; {}", describe(&sim, keep, lose)))?;
        // Nothing may undo it later (a late down-all, say).
        sim.run_for(stable);
        if !resolved(&sim, keep, lose) {
            return Err(format!(
                "resolved after {took:?} but not {stable:?} later; {}",
                describe(&sim, keep, lose)
            ));
        }
        let refused = keep
            .iter()
            .map(|&i| sim.node(i).stats().over_capacity)
            .sum();
        Ok((took, refused))
    };
    let r = match catch_unwind(AssertUnwindSafe(|| run(&mut sides))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(format!("simulator panicked: {msg}"))
        }
    };
    (sides, r)
}

fn small_len(small: &Small) -> usize {
    match small {
        Small::Ids(ids) => ids.len(),
        Small::RingSpread(k) => *k,
    }
}

/// Runs `cases` and fails listing every failing one.
fn run_cases<const M: usize, const R: usize>(what: &str, cases: &[Case]) {
    let only = only_seed();
    let wall = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (seed, n, small) in cases {
        if only.is_some_and(|s| s != *seed) {
            continue;
        }
        ran += 1;
        let t = std::time::Instant::now();
        let ((keep, lose), r) = split_case::<M, R>(*seed, *n, small);
        let ring = if matches!(small, Small::RingSpread(_)) {
            " (spread over the ring)"
        } else {
            ""
        };
        let split = format!(
            "seed {seed}: n = {n}, {} | {}{ring}, keep {keep:?}, lose {lose:?}",
            n - small_len(small),
            small_len(small)
        );
        eprintln!(
            "{what}: {split}: {} in {:.2?} wall",
            match &r {
                Ok((took, refused)) => format!(
                    "ok after {took:?} virtual, survivors refused {refused} inputs over capacity"
                ),
                Err(e) => format!("FAILED: {}", e.lines().next().unwrap_or("")),
            },
            t.elapsed()
        );
        if let Err(e) = r {
            failures.push(format!("{split}: {e}"));
        }
    }
    eprintln!(
        "{what}: {ran} cases, {} failed, {:.2?} wall",
        failures.len(),
        wall.elapsed()
    );
    assert!(ran > 0, "no case has seed {only:?}");
    assert!(
        failures.is_empty(),
        "{what}: {} of {ran} cases failed (replay one with FJELL_SIM_SEED=<seed>):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Every cluster size the device preset holds, every strict-majority split: the majority
/// survives and converges on itself, the minority is downed. Each split in seven arrangements
/// (see [`arrangements`]), so the lowest address is on either side. All 378 cases take a few
/// seconds (opt-level 2), so none is left out.
#[test]
fn device_capacities_keep_the_majority_of_every_strict_split() {
    let mut cases = Vec::new();
    for n in 5..=16 {
        for k in 1..=(n - 1) / 2 {
            cases.extend(arrangements(n, k, 4));
        }
    }
    run_cases::<16, 12>("device strict majority", &cases);
}

/// Exact halves for every even size the device preset holds (3 | 3 of 6 up to 8 | 8 of 16):
/// keep-majority keeps the half holding the lowest address (node 0: `lowest_is_here` in
/// core/src/downing.rs) and downs the other, so exactly that side survives. Nine arrangements
/// per size.
#[test]
fn device_capacities_keep_the_half_with_the_lowest_address() {
    let mut cases = Vec::new();
    for n in (6..=16).step_by(2) {
        cases.extend(arrangements(n, n / 2, 6));
    }
    run_cases::<16, 12>("device equal halves", &cases);
}

/// R = 2·M (the server preset's ratio before compaction) at a size the simulator runs
/// quickly: 64 nodes in `Sim<64, 128>`, split 32 | 32 (the half with node 0 survives) and
/// 33 | 31, five arrangements each (a few seconds in all). Spread over the ring, a node has
/// about 3 of its 5 ring successors on the other side: about 3·M/2 records per side, under
/// R = 2·M without compaction.
#[test]
fn server_ratio_keeps_one_side_of_a_half_split_of_64() {
    let mut cases = arrangements(64, 32, 2);
    cases.extend(arrangements(64, 31, 2));
    run_cases::<64, 128>("server ratio", &cases);
}

/// The server preset's ratio (`ServerNode`: R = M/2, the least a node may have to hold `M`
/// members, `fjell_core::Capacity::holds`) at 64 nodes: the side that survives flags at most
/// half of the members, one compacted record each, so a half split fits exactly.
#[test]
fn half_the_records_still_resolve_a_half_split_of_64() {
    let mut cases = arrangements(64, 32, 2);
    cases.extend(arrangements(64, 31, 2));
    run_cases::<64, 32>("R = M/2", &cases);
}
