//! Split-brain campaigns.
//!
//! **The adversarial campaign.** Each campaign seed draws a run ([`draw()`]): swarm parameters —
//! which fault kinds are enabled (a random non-empty subset, often a single kind), cluster size
//! 3–16, strategy, down-all-when-unstable on or off, default or short `stable-after`, a link
//! profile, extra nodes (joiners with the cluster's settings or a different strategy, a node of
//! another cluster, a node speaking another protocol version) — and a [`Schedule`] of faults:
//! partitions into two or three sides that move one node across, re-form, heal; overlapping
//! cuts; one-way links; flapping links; loss bursts; pauses just under and just over the
//! acceptable pause; crashes; restarts with a new uid; graceful leaves; joins. Waits between
//! faults cluster around failure detection, `stable-after` expiry ± a leader tick, the first
//! `UnreachableMember` or `Downing` after the previous fault, with 0–1.5 s offsets.
//!
//! [`replay`] runs a schedule deterministically under these checks ([`Check`]): the
//! simulator's invariants and split-brain check; an independent split-brain oracle over the
//! events each node reported ([`oracle`]); a bound on deciding a clean partition injected into
//! a calm cluster and held still (every side stopped or downed the others within
//! detection + spread + `stable-after` + margin, on stability, not as unstable); no
//! `UnreachableMember` when the only faults were pauses well under the acceptable pause;
//! foreign nodes never become members; joiners with the cluster's settings get in; a refused
//! join is reported on both sides. A failing schedule is shrunk ([`shrink()`]) and printed as a
//! Rust test ([`found`]).
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
/// stuck joins with and without a stranger among the seed nodes.
pub fn label(s: &Schedule, f: &Failure) -> String {
    let stranger = s.params.extras.contains(&Extra::Stranger);
    match f.check {
        Check::SplitBrain | Check::SimSplitBrain if mixed_settings(s) => {
            format!("{:?} (mixed settings)", f.check)
        }
        Check::SplitBrain | Check::SimSplitBrain => format!("{:?} (one setting)", f.check),
        Check::JoinStuck if stranger => "JoinStuck (a stranger among the seeds)".into(),
        Check::JoinStuck => "JoinStuck (no stranger)".into(),
        c => format!("{c:?}"),
    }
}

/// The drawn parameters of a run, on one line.
pub fn describe(d: &Drawn) -> String {
    let p = &d.schedule.params;
    format!(
        "seed {}: {} nodes, {:?}, down-all-when-unstable {}, stable-after {}, {:?} links, \
         extras {:?}, kinds {:?}, pauses {:?}, {} steps",
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
    let name = format!("campaign_{:?}_seed_{seed}", failure.check).to_lowercase();
    format!(
        "FAILED {describe}\n  {failure}\n  replay: FJELL_CAMPAIGN_SEED={seed} cargo test -p \
         fjell-sim --test campaign -- --nocapture\n  shrunk in {} replays ({} → {} steps, {} → \
         {} nodes) to: {}\n{}",
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
