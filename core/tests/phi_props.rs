//! Property tests for the failure detectors: phi is finite, never NaN, and never decreases
//! while silence grows, for any history, settings and times.

use std::time::Duration;

use fjell_core::testing::phi::{phi_of, Deadline, FailureDetector, PhiAccrual};
use fjell_core::{DetectorSettings, Instant, PhiFormula};
use proptest::prelude::*;

fn settings() -> impl Strategy<Value = DetectorSettings> {
    (
        0.1f64..50.0,
        1u64..2_000,
        0u64..20_000,
        1u64..5_000,
        prop_oneof![Just(PhiFormula::Exact), Just(PhiFormula::Logistic)],
    )
        .prop_map(
            |(threshold, min_std, pause, interval, formula)| DetectorSettings {
                threshold,
                min_std_deviation: Duration::from_millis(min_std),
                acceptable_heartbeat_pause: Duration::from_millis(pause),
                heartbeat_interval: Duration::from_millis(interval),
                formula,
                ..DetectorSettings::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn phi_is_finite_and_monotone_in_silence(
        s in settings(),
        // Intervals from zero (time not moving) to hours (clamped internally).
        gaps in proptest::collection::vec(prop_oneof![Just(0u64), 0u64..5_000_000, Just(u32::MAX as u64 * 4)], 0..40),
        probes in proptest::collection::vec(0u64..100_000_000_000, 1..20),
    ) {
        let mut d = PhiAccrual::<16>::new();
        let mut t = 0u64;
        for g in &gaps {
            t = t.saturating_add(*g);
            d.heartbeat(Instant::from_micros(t), &s);
        }
        let mut probes = probes;
        probes.sort();
        let mut last = 0.0f64;
        for p in probes {
            let phi = d.phi(Instant::from_micros(t.saturating_add(p)), &s);
            prop_assert!(phi.is_finite() && phi >= 0.0, "phi = {phi}");
            prop_assert!(phi >= last, "phi fell from {last} to {phi}");
            last = phi;
        }
        // Time before the last heartbeat never panics or produces NaN either.
        let early = d.phi(Instant::ZERO, &s);
        prop_assert!(early.is_finite());
    }

    #[test]
    fn phi_of_is_monotone_everywhere(a in -1e6f64..1e6, b in -1e6f64..1e6) {
        for f in [PhiFormula::Exact, PhiFormula::Logistic] {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (p, q) = (phi_of(lo, f), phi_of(hi, f));
            prop_assert!(p.is_finite() && q.is_finite());
            prop_assert!(p <= q, "{f:?}: phi({lo}) = {p} > phi({hi}) = {q}");
        }
    }

    #[test]
    fn deadline_availability_only_flips_once_per_silence(s in settings(), last in 0u64..1_000_000, probes in proptest::collection::vec(0u64..100_000_000, 1..20)) {
        let mut d = Deadline::default();
        d.heartbeat(Instant::from_micros(last), &s);
        let mut probes = probes;
        probes.sort();
        let mut was_available = true;
        for p in probes {
            let now = d.is_available(Instant::from_micros(last + p), &s);
            prop_assert!(was_available || !now, "came back without a heartbeat");
            was_available = now;
        }
    }
}
