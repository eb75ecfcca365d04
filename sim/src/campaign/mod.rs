//! Split-brain campaigns.
//!
//! **The adversarial campaign.** Each campaign seed draws a run ([`draw()`]): swarm parameters —
//! which fault kinds are enabled ([`Kind`]: a random non-empty subset, a single kind in a quarter
//! of the runs), cluster size 3–16, strategy (keep-majority, static-quorum, keep-oldest,
//! lease-majority, down-all), down-all-when-unstable on or off, default or short (3–6 s)
//! `stable-after`, a link profile ([`Profile`]), extra nodes ([`Extra`]: joiners with the
//! cluster's strategy or another one, a node of another cluster, a node speaking another
//! protocol version) — and a [`Schedule`] of faults ([`Fault`]): partitions into two or three
//! sides (side sizes biased to 1, 2 and halves) in episodes that re-form or move one node across
//! around detection time; overlapping cuts; one-way links; flapping links; loss bursts; pauses
//! 0.5–1.5 s under or up to 2 s over the acceptable pause; crashes; restarts with a new uid;
//! rolling configuration changes (a member restarts with another strategy) followed by a
//! partition along the configuration boundary; graceful leaves, also while a partition is held;
//! joins, with a stranger first among the seed nodes.
//!
//! Waits ([`Wait`]) cluster around the instants that matter: failure detection (acceptable
//! pause + 1–3 s), `stable-after` expiry ± a leader tick, the first `UnreachableMember` or
//! `Downing` any node reports after the previous fault — each with a 0–1.5 s offset and zero to
//! three gossip rounds — besides immediate follow-ups, long holds (detection + spread +
//! `stable-after` + margin) and uniform 1–40 s.
//!
//! [`replay`] runs a schedule deterministically under these checks ([`Check`]):
//! * the simulator's invariants and split-brain check ([`crate::Sim::check_split_brain`]);
//! * an independent split-brain oracle over the events each node reported ([`oracle`]),
//!   evaluated after every step's events, so transient splits count;
//! * for a clean partition injected into a calm cluster (every member Up and reachable in
//!   every view, nothing else cut, lossy or paused) and held still: every side decided (its
//!   nodes stopped or every other member downed) within 6 s detection + 3 s spread +
//!   `stable-after` + 10 s margin (+ the lease delay), never as unstable, and each decision at
//!   most `stable-after` + [`exec::DECISION_SLACK`] (lease-majority: + its delay + a tick) after the
//!   decider's last reachability change
//!   (graceful leaves may happen during the hold);
//! * no `UnreachableMember` in a run whose only faults were pauses that, merged with any pause
//!   within a heartbeat interval of them, stay 0.5 s under the acceptable pause;
//! * nodes of another cluster or protocol version never become members;
//! * a joiner with the cluster's settings does not give up while a seed node serves (checked
//!   60 s after the final heal);
//! * a refused join is reported on both sides (`JoinRefused` and `JoinRequestRefused`).
//!
//! A failing schedule is shrunk ([`shrink()`]: drop steps, fewer nodes, a clean network, shorter
//! waits and holds) and printed as a Rust test ([`found`]).
//!
//! `cargo bench -p fjell-sim --bench split_brain -- <runs> [first-seed]` runs it at scale;
//! `sim/tests/campaign.rs` runs a slice; `FJELL_CAMPAIGN_SEED=<seed> cargo test -p fjell-sim
//! --test campaign` replays one seed.
//!
//! **The first campaign** ([`run`]) is kept for `core/tests/split_brain.rs`.

pub mod draw;
pub mod exec;
mod legacy;
pub mod oracle;
pub mod schedule;
pub mod shrink;

pub use draw::{draw, Drawn, Kind, PauseMode};
pub use exec::{replay, Check, Failure, Report};
pub use legacy::{run, strategy_for, Ending, Outcome};
pub use schedule::{Extra, Fault, Params, Profile, Sbr, Schedule, Step, Wait};
pub use shrink::{shrink, Shrunk};

/// Draws and replays campaign seed `seed`.
pub fn run_seed(seed: u64) -> Result<Report, Box<(Drawn, Failure)>> {
    let d = draw(seed);
    replay(&d.schedule).map_err(|f| Box::new((d, f)))
}

/// Whether any member of the run may run another strategy than the cluster's: a
/// reconfigured node, or a joiner with another strategy that was told to join.
pub fn mixed_settings(s: &Schedule) -> bool {
    s.steps.iter().any(|st| match &st.fault {
        Fault::Reconfigure(_, sbr, _) => *sbr != s.params.sbr,
        Fault::Join(n, _) => {
            matches!(s.params.extra(*n), Some(Extra::Joiner(sbr)) if sbr != s.params.sbr)
        }
        _ => false,
    })
}

/// A finer label for a failure, for tallies: split brains with and without mixed settings,
/// stuck joins with and without a stranger among the seed nodes, late decisions with and
/// without a graceful leave during the partition.
pub fn label(s: &Schedule, f: &Failure) -> String {
    let stranger = s.params.extras.contains(&Extra::Stranger);
    match f.check {
        Check::SplitBrain | Check::SimSplitBrain if mixed_settings(s) => {
            format!("{:?} (mixed settings)", f.check)
        }
        Check::SplitBrain | Check::SimSplitBrain => format!("{:?} (one setting)", f.check),
        Check::JoinStuck if stranger => "JoinStuck (a stranger among the seeds)".into(),
        Check::JoinStuck => "JoinStuck (no stranger)".into(),
        Check::LateDecision if f.detail.contains("graceful leave") => {
            "LateDecision (a leave during the partition)".into()
        }
        Check::LateDecision => "LateDecision (no leave)".into(),
        c => format!("{c:?}"),
    }
}

/// The drawn parameters of a run, on one line.
pub fn describe(d: &Drawn) -> String {
    let p = &d.schedule.params;
    format!(
        "seed {}: {} nodes, {:?}, down-all-when-unstable {}, stable-after {}, {:?} links, \
         extras {:?}, followers {:?}, kinds {:?}, pauses {:?}, {} steps",
        d.schedule.seed,
        p.nodes,
        p.sbr,
        if p.down_all_when_unstable {
            "on"
        } else {
            "off"
        },
        p.stable_after_ms
            .map_or("default".to_string(), |m| format!("{m} ms")),
        p.profile,
        p.extras,
        p.followers,
        d.kinds,
        d.pauses,
        d.schedule.steps.len()
    )
}

/// A failing run, shrunk and printed: its drawn parameters, the failure, the one-line replay,
/// and the shrunk schedule as a test to paste into `sim/tests/`.
pub fn found(d: &Drawn, failure: &Failure, budget: usize) -> String {
    let s = shrink(&d.schedule, failure, budget);
    let seed = d.schedule.seed;
    let shrunk_label = label(&s.schedule, &s.failure);
    let name = format!("campaign_{:?}_seed_{seed}", failure.check).to_lowercase();
    format!(
        "FAILED {describe}\n  {failure}\n  replay: FJELL_CAMPAIGN_SEED={seed} cargo test -p \
         fjell-sim --test campaign -- --nocapture\n  shrunk in {} replays ({} → {} steps, {} → \
         {} nodes; {shrunk_label}) to: {}\n{}",
        s.replays,
        d.schedule.steps.len(),
        s.schedule.steps.len(),
        d.schedule.params.all().len(),
        s.schedule.params.all().len(),
        s.failure,
        s.schedule.to_rust_test(&name),
        describe = describe(d),
    )
}
