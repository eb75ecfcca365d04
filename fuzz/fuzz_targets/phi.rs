//! The phi detector with arbitrary settings, intervals and probe times: phi is finite, never
//! NaN, and never decreases as silence grows.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use fjell_core::testing::phi::{FailureDetector, PhiAccrual};
use fjell_core::{DetectorSettings, Instant, PhiFormula};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    threshold: u16,
    min_std_ms: u16,
    pause_ms: u32,
    interval_ms: u16,
    logistic: bool,
    gaps_us: Vec<u64>,
    probes_us: Vec<u64>,
}

fuzz_target!(|inp: Input| {
    let s = DetectorSettings {
        threshold: f64::from(inp.threshold.max(1)) / 100.0,
        min_std_deviation: Duration::from_millis(u64::from(inp.min_std_ms.max(1))),
        acceptable_heartbeat_pause: Duration::from_millis(u64::from(inp.pause_ms)),
        heartbeat_interval: Duration::from_millis(u64::from(inp.interval_ms.max(1))),
        formula: if inp.logistic {
            PhiFormula::Logistic
        } else {
            PhiFormula::Exact
        },
        ..DetectorSettings::default()
    };
    let mut d = PhiAccrual::<32>::new();
    let mut t = 0u64;
    for g in inp.gaps_us.iter().take(200) {
        t = t.saturating_add(*g);
        d.heartbeat(Instant::from_micros(t), &s);
        let p = d.phi(Instant::from_micros(t), &s);
        assert!(p.is_finite() && p >= 0.0);
    }
    let mut probes: Vec<u64> = inp.probes_us.iter().take(64).copied().collect();
    probes.sort();
    let mut last = 0.0f64;
    for p in probes {
        let phi = d.phi(Instant::from_micros(t.saturating_add(p)), &s);
        assert!(phi.is_finite() && phi >= 0.0, "phi = {phi}");
        assert!(phi >= last, "phi fell from {last} to {phi}");
        last = phi;
    }
});
