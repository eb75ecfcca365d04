//! Failure-detector micro-benchmarks: `cargo bench -p fjell-core --bench phi`.

use divan::Bencher;
use fjell_core::testing::phi::{FailureDetector, PhiAccrual, PhiFormula};
use fjell_core::{DetectorSettings, Instant};

/// One heartbeat arrival into a full 1,000-sample window (the server preset).
#[divan::bench]
fn heartbeat(bencher: Bencher) {
    let s = DetectorSettings::default();
    let mut d = Box::new(PhiAccrual::<1000>::new());
    let mut t = 0u64;
    for _ in 0..1000 {
        t += 1_000_000;
        d.heartbeat(Instant::from_micros(t), &s);
    }
    bencher.bench_local(|| {
        t += 1_000_000 + (t % 7_919);
        d.heartbeat(divan::black_box(Instant::from_micros(t)), &s);
    });
}

/// One phi evaluation, for each formula.
#[divan::bench(args = [PhiFormula::Exact, PhiFormula::Logistic])]
fn phi(bencher: Bencher, formula: PhiFormula) {
    let s = DetectorSettings {
        formula,
        ..DetectorSettings::default()
    };
    let mut d = Box::new(PhiAccrual::<1000>::new());
    for i in 0..1000u64 {
        d.heartbeat(Instant::from_micros(i * 1_000_000), &s);
    }
    let mut t = 999_000_000u64;
    bencher.bench_local(|| {
        t = 999_000_000 + (t + 123_457) % 5_000_000;
        d.phi(divan::black_box(Instant::from_micros(t)), &s)
    });
}

fn main() {
    divan::main();
}
