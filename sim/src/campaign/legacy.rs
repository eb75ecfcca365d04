//! The first randomized split-brain campaign (kept for `core/tests/split_brain.rs`): seeded runs of 5 to 9 nodes under random partitions
//! (two or three sides, or one-way links), heals, crashes and restarts, with every downing
//! strategy, checking after every step that the cluster never splits in two (see
//! [`Sim::check_split_brain`]) besides the usual invariants. A violation panics with the seed.
//!
//! `cargo bench -p fjell-sim --bench split_brain -- legacy <runs>` runs it at scale; the core's
//! test suite runs a slice of it. The adversarial campaign ([`super::draw`], [`super::replay`])
//! supersedes it.

use std::time::Duration;

use fjell_core::testing::random::Rng;
use fjell_core::{Config, Downing, Event, Reason, Strategy};

use crate::{NodeId, Sim};

/// How a run ended, after the network healed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The nodes still serving form one converged cluster, all Up.
    OneCluster,
    /// No node serves any more.
    AllDowned,
    /// Neither: the serving nodes are in more than one cluster — a restarted first seed node
    /// that reached no other seed founds a new cluster, as in Pekko — or still joining.
    Unsettled,
}

/// The result of one run.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The run's seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The strategy.
    pub strategy: Strategy,
    /// Nodes serving at the end.
    pub serving: usize,
    /// How it ended.
    pub ending: Ending,
    /// Faults injected.
    pub faults: usize,
    /// Whether some node downed everyone because reachability never settled.
    pub unstable: bool,
    /// Calm runs space faults 10–40 s apart, so the strategies get to decide; stormy runs
    /// 1–15 s apart, which mostly ends in down-all-when-unstable.
    pub calm: bool,
}

/// The strategy a seed runs with: every strategy in turn.
pub fn strategy_for(seed: u64, nodes: usize) -> Strategy {
    match seed % 5 {
        0 => Strategy::KeepMajority { role: None },
        1 => Strategy::StaticQuorum {
            size: (nodes / 2 + 1) as u32,
            role: None,
        },
        2 => Strategy::KeepOldest {
            down_if_alone: true,
            role: None,
        },
        3 => Strategy::LeaseMajority { role: None },
        _ => Strategy::DownAll,
    }
}

/// One seeded run: form, 90 s of random faults (calm or stormy), heal, 150 s to settle. Panics (printing the
/// seed) if any invariant breaks.
pub fn run(seed: u64) -> Outcome {
    let mut rng = Rng::new(seed ^ 0x5B12_0C0F_FEE5);
    let nodes = 5 + rng.below(5);
    let strategy = strategy_for(seed, nodes);
    let calm = (seed / 5) % 2 == 1;
    let mut config = Config::default();
    config.downing.downing = Downing::SplitBrainResolver(strategy);
    let mut sim: Sim = Sim::new(seed);
    let trace = std::env::var("FJELL_CAMPAIGN_TRACE").is_ok();
    sim.record_events(true);
    sim.check_split_brain(true);
    let ids = sim.start_cluster(nodes, &config, 3);
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_up(&ids) && s.converged(&ids)
    })
    .unwrap_or_else(|e| panic!("formation: {e}"));
    let seeds: Vec<NodeId> = ids[..3].to_vec();
    let mut crashed: Vec<NodeId> = Vec::new();
    let mut faults = 0;
    let end = sim.now() + Duration::from_secs(90);
    while sim.now() < end {
        match rng.below(10) {
            0..=3 => {
                let (a, b) = split(&mut rng, &ids, 2);
                sim.partition(&a, &b);
            }
            4 => {
                let (a, rest) = split(&mut rng, &ids, 3);
                let (b, c) = split(&mut rng, &rest, 2);
                sim.partition(&a, &rest);
                sim.partition(&b, &c);
            }
            5 => {
                let from = ids[rng.below(nodes)];
                let to = ids[rng.below(nodes)];
                sim.block(from, to);
            }
            6 | 7 => sim.heal(),
            8 => {
                let up: Vec<NodeId> = sim.running().collect();
                if up.len() > 1 {
                    let victim = up[rng.below(up.len())];
                    sim.crash(victim);
                    crashed.push(victim);
                }
            }
            _ => {
                if let Some(i) = (!crashed.is_empty()).then(|| rng.below(crashed.len())) {
                    let back = crashed.swap_remove(i);
                    sim.restart(back);
                    sim.join_seed_nodes(back, &seeds);
                }
            }
        }
        faults += 1;
        if trace {
            eprintln!(
                "{:?} fault {faults}: blocked {:?}",
                sim.elapsed(),
                sim.blocked_links()
            );
        }
        let pause = if calm {
            10_000 + rng.below(30_000)
        } else {
            1000 + rng.below(14_000)
        };
        sim.run_for(Duration::from_millis(pause as u64));
    }
    sim.heal();
    sim.run_for(Duration::from_secs(150));
    let serving: Vec<NodeId> = ids.iter().copied().filter(|i| sim.serving(*i)).collect();
    let ending = if serving.is_empty() {
        Ending::AllDowned
    } else if sim.all_up(&serving) && sim.converged(&serving) {
        Ending::OneCluster
    } else {
        Ending::Unsettled
    };
    if trace {
        for &i in &ids {
            match sim.try_node(i) {
                None => eprintln!("node {i}: crashed"),
                Some(n) => eprintln!(
                    "node {i}: {:?} {:?} members {:?}",
                    n.status(),
                    n.address().uid(),
                    n.members()
                        .iter()
                        .map(|m| (m.address.socket_addr().ip(), m.address.uid(), m.status))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }
    let unstable = sim
        .events()
        .iter()
        .any(|l| matches!(&l.event, Event::Downing(d) if d.reason == Reason::Unstable));
    Outcome {
        unstable,
        calm,
        seed,
        nodes,
        strategy,
        serving: serving.len(),
        ending,
        faults,
    }
}

/// Splits `ids` into a random non-empty part of at most `len - (parts - 1)` nodes and the rest.
fn split(rng: &mut Rng, ids: &[NodeId], parts: usize) -> (Vec<NodeId>, Vec<NodeId>) {
    let take = 1 + rng.below(ids.len() - (parts - 1));
    let mut shuffled = ids.to_vec();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i + 1));
    }
    let rest = shuffled.split_off(take);
    (shuffled, rest)
}
