//! A slice of the adversarial split-brain campaign (`fjell_sim::campaign`), and replays of
//! single seeds: `FJELL_CAMPAIGN_SEED=<seed> cargo test -p fjell-sim --test campaign --
//! --nocapture` runs only that seed and prints its drawn parameters and, if it fails, the
//! shrunk schedule as a test.

use fjell_sim::campaign;

fn replay_env() -> Option<u64> {
    std::env::var("FJELL_CAMPAIGN_SEED")
        .ok()
        .map(|s| s.parse().expect("FJELL_CAMPAIGN_SEED must be an integer"))
}

#[test]
fn adversarial_campaign_slice() {
    let seeds: Vec<u64> = match replay_env() {
        Some(s) => vec![s],
        None => (0..SLICE).collect(),
    };
    let mut failures = Vec::new();
    let mut shown = std::collections::BTreeSet::new();
    for seed in seeds {
        let d = campaign::draw(seed);
        if replay_env().is_some() {
            println!("{}", campaign::describe(&d));
            println!("{}", d.schedule.to_rust());
        }
        match campaign::replay(&d.schedule) {
            Ok(r) => {
                if replay_env().is_some() {
                    println!("passed: {r:?}");
                }
            }
            Err(f) => {
                // Shrink and print the first failure of each kind.
                if shown.insert(campaign::label(&d.schedule, &f)) {
                    println!("{}", campaign::found(&d, &f, 200));
                }
                failures.push(format!("seed {seed}: {f}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs in the slice (the bench runs the rest).
const SLICE: u64 = 1000;

#[test]
fn runs_are_deterministic() {
    for seed in [3, 145, 253] {
        let a = campaign::draw(seed);
        let b = campaign::draw(seed);
        assert_eq!(a.schedule, b.schedule);
        let ra = campaign::replay(&a.schedule).map(|r| format!("{r:?}"));
        let rb = campaign::replay(&b.schedule).map(|r| format!("{r:?}"));
        assert_eq!(
            ra.map_err(|f| f.to_string()),
            rb.map_err(|f| f.to_string()),
            "seed {seed}"
        );
    }
}
