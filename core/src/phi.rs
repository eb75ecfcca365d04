//! Failure detectors: phi accrual (Hayashibara et al., 2004; the default, as in Akka) and a
//! plain deadline detector, behind one [`FailureDetector`] trait.
//!
//! A phi accrual detector keeps a bounded window of heartbeat inter-arrival times with a running
//! sum and sum of squares (O(1) per heartbeat, exact integer arithmetic, no drift), models the
//! next arrival as normally distributed, and reports how surprising the current silence is:
//!
//! ```text
//! phi(Δ) = −log10( P(X > Δ) ),   X ~ N(μ + pause, max(σ, min-std-deviation))
//! ```
//!
//! where μ and σ are the window's mean and standard deviation and `pause` is the
//! acceptable-heartbeat-pause. The node is suspected once phi reaches the threshold (8 by
//! default: P ≈ 10⁻⁸, z ≈ 5.61).
//!
//! [`PhiFormula::Exact`] (the default) computes the tail with `erfc` and, where it would
//! underflow, its asymptotic expansion joined continuously, so phi is finite, never NaN, and
//! non-decreasing in Δ for every input. [`PhiFormula::Logistic`] is Akka's approximation
//! `P ≈ 1 / (1 + e^{y(1.5976 + 0.070566 y²)})`, computed as `log10(1 + e^z)` so it too stays
//! finite; its tail probability is off by at most 1.4·10⁻⁴ absolute (near |y| ≈ 3.16), which
//! moves phi by up to 2·10⁻² around phi ≈ 3 and by more in the far tail, where the threshold
//! is crossed slightly later or earlier than with the exact formula.

use core::time::Duration;

#[cfg(feature = "phi")]
use crate::buf::Buf;
#[cfg(feature = "phi")]
use crate::time::micros;
use crate::time::Instant;

/// How phi turns a standardised silence `y` into a suspicion level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhiFormula {
    /// `−log10(½·erfc(y/√2))`, with a continuous asymptotic tail.
    #[default]
    Exact,
    /// Akka's logistic approximation of the normal CDF.
    Logistic,
}

/// Which detector a node uses for every monitored member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectorKind {
    /// Phi accrual (default).
    #[default]
    Phi,
    /// Available while `now < last heartbeat + acceptable pause + heartbeat interval`.
    Deadline,
}

/// Failure-detector settings: the `failure-detector.*` keys, as Pekko groups them (field docs
/// name each key without the prefix, with its default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Phi or deadline.
    pub kind: DetectorKind,
    /// Suspicion threshold (`threshold`, 8).
    pub threshold: f64,
    /// Lower bound of the standard deviation (`min-std-deviation`, 100 ms).
    pub min_std_deviation: Duration,
    /// Silence tolerated on top of the usual interval (`acceptable-heartbeat-pause`, 3 s).
    pub acceptable_heartbeat_pause: Duration,
    /// Expected interval, used to bootstrap the history (`heartbeat-interval`, 1 s).
    pub heartbeat_interval: Duration,
    /// Phi formula.
    pub formula: PhiFormula,
    /// How many members monitor each member (`monitored-by-nr-of-members`, 4): each node
    /// exchanges heartbeats with its half that many nearest neighbours on each side of the
    /// ring. Even, from 2 to 6 (below [`crate::config::MAX_MONITORED`]).
    pub monitored_by_nr_of_members: usize,
    /// When the first heartbeat is due (`expected-response-after`, 1 s); a member
    /// that never answers is judged from then on.
    pub expected_response_after: Duration,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            kind: DetectorKind::Phi,
            threshold: 8.0,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(1),
            formula: PhiFormula::Exact,
            monitored_by_nr_of_members: 4,
            expected_response_after: Duration::from_secs(1),
        }
    }
}

/// Something that judges, from heartbeat arrivals, whether a peer is alive.
pub trait FailureDetector {
    /// A heartbeat (response) arrived at `now`.
    fn heartbeat(&mut self, now: Instant, s: &DetectorSettings);
    /// Suspicion level at `now` (phi for phi accrual; 0 or `threshold` for the deadline
    /// detector). Finite and never NaN.
    fn suspicion(&self, now: Instant, s: &DetectorSettings) -> f64;
    /// True unless the detector suspects the peer. True before any heartbeat.
    fn is_available(&self, now: Instant, s: &DetectorSettings) -> bool;
    /// True once a heartbeat has arrived.
    fn is_monitoring(&self) -> bool;
    /// The last heartbeat, if any.
    fn last_heartbeat(&self) -> Option<Instant>;
    /// This node itself was not running for `gap` just before `now` (a stop-the-world pause
    /// or a starved executor): the silence it caused is not the peer's. Moves the last
    /// heartbeat forward by `gap` (at most to `now`).
    fn discount(&mut self, now: Instant, gap: Duration);
}

/// Above phi at a silence of exactly the mean plus the acceptable pause (log10 2 ≈ 0.30103):
/// thresholds above it let [`FailureDetector::is_available`] skip the tail while the silence
/// is shorter.
#[cfg(feature = "phi")]
const FAST_PATH_PHI: f64 = 0.302;

/// Inter-arrival intervals are kept in microseconds, clamped to this (about 71 minutes).
#[cfg(feature = "phi")]
const MAX_INTERVAL_MICROS: u64 = u32::MAX as u64;

/// Phi accrual detector with a window of at most `H` intervals (`max-sample-size`).
#[cfg(feature = "phi")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhiAccrual<const H: usize> {
    /// A ring once full; filled by pushes until then (so with `alloc` it grows as samples come).
    intervals: Buf<u32, H>,
    head: u16,
    sum: u64,
    sum_sq: u128,
    last: Option<Instant>,
}

#[cfg(feature = "phi")]
impl<const H: usize> Default for PhiAccrual<H> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "phi")]
impl<const H: usize> PhiAccrual<H> {
    /// No heartbeat yet.
    pub const fn new() -> Self {
        PhiAccrual {
            intervals: Buf::new(),
            head: 0,
            sum: 0,
            sum_sq: 0,
            last: None,
        }
    }

    fn push(&mut self, interval: u64) {
        if H == 0 {
            return;
        }
        let x = interval.min(MAX_INTERVAL_MICROS) as u32;
        if self.intervals.len() == H {
            // Full: `head` holds the oldest sample; replace it.
            let slot = self.head as usize;
            let old = u64::from(self.intervals[slot]);
            self.sum -= old;
            self.sum_sq -= u128::from(old) * u128::from(old);
            self.head = ((self.head as usize + 1) % H) as u16;
            self.intervals[slot] = x;
        } else if self.intervals.push(x).is_err() {
            // Not full yet, so only an allocation that failed (with `alloc`) gets here: the
            // sample is skipped, which leaves the window as it was.
            return;
        }
        self.sum += u64::from(x);
        self.sum_sq += u128::from(x) * u128::from(x);
    }

    /// Number of intervals in the window.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// Mean and standard deviation of the window, in microseconds.
    pub fn mean_and_std(&self) -> (f64, f64) {
        if self.intervals.is_empty() {
            return (0.0, 0.0);
        }
        let n = self.intervals.len() as f64;
        let mean = self.sum as f64 / n;
        let var = (self.sum_sq as f64 / n - mean * mean).max(0.0);
        (mean, libm::sqrt(var))
    }

    /// Phi at `now`.
    pub fn phi(&self, now: Instant, s: &DetectorSettings) -> f64 {
        let Some(last) = self.last else { return 0.0 };
        let elapsed = (now - last).as_micros() as f64;
        let (mean, std) = self.mean_and_std();
        phi_after(elapsed, mean, std, s)
    }
}

/// Phi after `elapsed` microseconds of silence, for a window whose inter-arrival mean and
/// standard deviation are `mean` and `std` microseconds (the rule the detector applies, for
/// charts and tuning: acceptable pause added to the mean, min-std-deviation as the floor).
#[cfg(feature = "phi")]
pub fn phi_after(elapsed: f64, mean: f64, std: f64, s: &DetectorSettings) -> f64 {
    let mean = mean + micros(s.acceptable_heartbeat_pause) as f64;
    let std = std.max(micros(s.min_std_deviation) as f64).max(1.0);
    phi_of((elapsed - mean) / std, s.formula)
}

#[cfg(feature = "phi")]
impl<const H: usize> FailureDetector for PhiAccrual<H> {
    fn heartbeat(&mut self, now: Instant, s: &DetectorSettings) {
        match self.last {
            None => {
                // Bootstrap as Akka does: two samples around the expected interval, so the
                // first silence is judged against something sensible.
                let e = micros(s.heartbeat_interval);
                self.push(e - e / 4);
                self.push(e + e / 4);
            }
            Some(last) => {
                // An interval that spans an outage would distort the statistics: only
                // intervals that ended while the peer looked alive are recorded.
                if self.is_available(now, s) {
                    self.push(micros(now - last));
                }
            }
        }
        self.last = Some(now.max(self.last.unwrap_or(now)));
    }

    fn suspicion(&self, now: Instant, s: &DetectorSettings) -> f64 {
        self.phi(now, s)
    }

    fn is_available(&self, now: Instant, s: &DetectorSettings) -> bool {
        // Until the silence reaches the mean plus the acceptable pause, phi is at most
        // log10(2) ≈ 0.301 under either formula: no tail to compute (this runs on every
        // heartbeat and every reaper tick, and the tail is most of a heartbeat's cost).
        if let Some(last) = self.last {
            let n = self.intervals.len() as u64;
            if s.threshold > FAST_PATH_PHI && n > 0 {
                let mean = self.sum / n + micros(s.acceptable_heartbeat_pause);
                if micros(now - last) <= mean {
                    return true;
                }
            }
        }
        self.phi(now, s) < s.threshold
    }

    fn is_monitoring(&self) -> bool {
        self.last.is_some()
    }

    fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    fn discount(&mut self, now: Instant, gap: Duration) {
        self.last = self.last.map(|t| (t + gap).min(now));
    }
}

/// Deadline detector: suspects once `acceptable pause + heartbeat interval` passes silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline {
    last: Option<Instant>,
}

impl FailureDetector for Deadline {
    fn heartbeat(&mut self, now: Instant, _s: &DetectorSettings) {
        self.last = Some(now.max(self.last.unwrap_or(now)));
    }

    fn suspicion(&self, now: Instant, s: &DetectorSettings) -> f64 {
        if self.is_available(now, s) {
            0.0
        } else {
            s.threshold
        }
    }

    fn is_available(&self, now: Instant, s: &DetectorSettings) -> bool {
        match self.last {
            None => true,
            Some(last) => now < last + s.acceptable_heartbeat_pause + s.heartbeat_interval,
        }
    }

    fn is_monitoring(&self) -> bool {
        self.last.is_some()
    }

    fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    fn discount(&mut self, now: Instant, gap: Duration) {
        self.last = self.last.map(|t| (t + gap).min(now));
    }
}

/// The detector a node keeps per monitored member, chosen by [`DetectorSettings::kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detector<const H: usize> {
    /// Phi accrual.
    #[cfg(feature = "phi")]
    Phi(PhiAccrual<H>),
    /// Deadline.
    Deadline(Deadline),
}

impl<const H: usize> Detector<H> {
    /// A fresh detector of the configured kind.
    pub fn new(kind: DetectorKind) -> Self {
        match kind {
            #[cfg(feature = "phi")]
            DetectorKind::Phi => Detector::Phi(PhiAccrual::new()),
            // Without the feature `Config::validate` refuses phi, so a node never asks for it.
            #[cfg(not(feature = "phi"))]
            DetectorKind::Phi => Detector::Deadline(Deadline::default()),
            DetectorKind::Deadline => Detector::Deadline(Deadline::default()),
        }
    }

    /// The mean and standard deviation of the inter-arrival times the detector has seen, in
    /// microseconds; `None` for the deadline detector, which keeps none.
    pub fn intervals(&self) -> Option<(f64, f64)> {
        match self {
            #[cfg(feature = "phi")]
            Detector::Phi(d) if d.samples() > 0 => Some(d.mean_and_std()),
            _ => None,
        }
    }

    fn inner(&self) -> &dyn FailureDetector {
        match self {
            #[cfg(feature = "phi")]
            Detector::Phi(d) => d,
            Detector::Deadline(d) => d,
        }
    }
}

impl<const H: usize> FailureDetector for Detector<H> {
    fn heartbeat(&mut self, now: Instant, s: &DetectorSettings) {
        match self {
            #[cfg(feature = "phi")]
            Detector::Phi(d) => d.heartbeat(now, s),
            Detector::Deadline(d) => d.heartbeat(now, s),
        }
    }
    fn suspicion(&self, now: Instant, s: &DetectorSettings) -> f64 {
        self.inner().suspicion(now, s)
    }
    fn is_available(&self, now: Instant, s: &DetectorSettings) -> bool {
        self.inner().is_available(now, s)
    }
    fn is_monitoring(&self) -> bool {
        self.inner().is_monitoring()
    }
    fn last_heartbeat(&self) -> Option<Instant> {
        self.inner().last_heartbeat()
    }
    fn discount(&mut self, now: Instant, gap: Duration) {
        match self {
            #[cfg(feature = "phi")]
            Detector::Phi(d) => d.discount(now, gap),
            Detector::Deadline(d) => d.discount(now, gap),
        }
    }
}

#[cfg(feature = "phi")]
const LN_10: f64 = core::f64::consts::LN_10;
/// Beyond this `y`, `erfc(y/√2)` approaches the subnormal range; use the asymptotic tail.
#[cfg(feature = "phi")]
const TAIL_FROM: f64 = 30.0;

/// `−log10 P(Z > y)` for a standard normal Z, by `formula`. Finite, never NaN (a NaN input
/// counts as "no suspicion"), non-decreasing in `y`.
#[cfg(feature = "phi")]
pub fn phi_of(y: f64, formula: PhiFormula) -> f64 {
    if y.is_nan() {
        return 0.0;
    }
    let y = y.clamp(-1e6, 1e6);
    match formula {
        PhiFormula::Exact => {
            if y < TAIL_FROM {
                // Far below the mean the tail is 1 (or a rounding error above it): phi is 0,
                // never -0 or a tiny negative number.
                (-libm::log10(0.5 * libm::erfc(y / core::f64::consts::SQRT_2))).max(0.0) + 0.0
            } else {
                // Joined at TAIL_FROM so the curve is continuous and keeps rising.
                exact_at_tail_start() + (tail_log10(y) - tail_log10(TAIL_FROM))
            }
        }
        PhiFormula::Logistic => {
            let z = y * (1.5976 + 0.070566 * y * y);
            // log10(1 + e^z), computed without overflow.
            let softplus = if z > 0.0 {
                z + libm::log1p(libm::exp(-z))
            } else {
                libm::log1p(libm::exp(z))
            };
            softplus / LN_10
        }
    }
}

#[cfg(feature = "phi")]
fn exact_at_tail_start() -> f64 {
    -libm::log10(0.5 * libm::erfc(TAIL_FROM / core::f64::consts::SQRT_2))
}

/// `−log10` of the normal tail's asymptotic expansion `φ(y)/y · (1 − 1/y² + 3/y⁴)`.
#[cfg(feature = "phi")]
fn tail_log10(y: f64) -> f64 {
    let y2 = y * y;
    let ln_tail = -y2 / 2.0 - libm::log(y * libm::sqrt(2.0 * core::f64::consts::PI))
        + libm::log(1.0 - 1.0 / y2 + 3.0 / (y2 * y2));
    -ln_tail / LN_10
}

#[cfg(all(test, feature = "phi"))]
mod tests {
    use super::*;

    fn settings() -> DetectorSettings {
        DetectorSettings::default()
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn phi_is_never_negative_or_negative_zero() {
        for y in [-1e6, -100.0, -40.0, -8.0, -1.0] {
            for f in [PhiFormula::Exact, PhiFormula::Logistic] {
                let p = phi_of(y, f);
                assert!(p >= 0.0 && p.is_sign_positive(), "phi_of({y}, {f:?}) = {p}");
            }
        }
    }

    /// Normal upper tail by direct numerical integration (Simpson's rule on the density), an
    /// independent check of erfc: P(Z > y) = ∫_y^∞ e^{−t²/2} / √(2π) dt.
    fn tail_by_integration(y: f64) -> f64 {
        let (a, b, n) = (y, y + 40.0, 200_000);
        let h = (b - a) / n as f64;
        let f = |t: f64| libm::exp(-t * t / 2.0) / libm::sqrt(2.0 * core::f64::consts::PI);
        let mut s = f(a) + f(b);
        for i in 1..n {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    }

    #[test]
    fn exact_phi_matches_numerical_integration() {
        for y in [-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 5.61, 8.0, 12.0] {
            let expected = -libm::log10(tail_by_integration(y));
            let got = phi_of(y, PhiFormula::Exact);
            assert!((got - expected).abs() < 1e-6, "y={y}: {got} vs {expected}");
        }
        // Threshold 8 is crossed at z ≈ 5.61 standard deviations.
        assert!(phi_of(5.60, PhiFormula::Exact) < 8.0);
        assert!(phi_of(5.62, PhiFormula::Exact) > 8.0);
    }

    #[test]
    fn logistic_phi_matches_akkas_formula() {
        for y in [-2.0, 0.0, 1.0, 3.16, 5.0] {
            // Akka's two-branch form, written out.
            let e = libm::exp(-y * (1.5976 + 0.070566 * y * y));
            let akka = if y > 0.0 {
                -libm::log10(e / (1.0 + e))
            } else {
                -libm::log10(1.0 - 1.0 / (1.0 + e))
            };
            assert!(
                (phi_of(y, PhiFormula::Logistic) - akka).abs() < 1e-9,
                "y={y}"
            );
            // And the approximation error against the exact tail stays as documented.
            let p_exact = tail_by_integration(y);
            let p_logistic = 1.0 / (1.0 + 1.0 / e);
            assert!((p_exact - p_logistic).abs() < 1.5e-4, "y={y}");
        }
    }

    #[test]
    fn tail_is_continuous_and_finite() {
        let below = phi_of(TAIL_FROM - 1e-9, PhiFormula::Exact);
        let at = phi_of(TAIL_FROM, PhiFormula::Exact);
        assert!((at - below).abs() < 1e-6);
        for f in [PhiFormula::Exact, PhiFormula::Logistic] {
            for y in [
                f64::MAX,
                1e300,
                1e6,
                40.0,
                f64::NEG_INFINITY,
                f64::INFINITY,
                -1e300,
            ] {
                let p = phi_of(y, f);
                assert!(p.is_finite() && p >= 0.0, "{f:?} y={y}: {p}");
            }
            assert_eq!(phi_of(f64::NAN, f), 0.0);
        }
    }

    #[test]
    fn phi_with_defaults_against_hand_computed_values() {
        // After the bootstrap (750 ms, 1250 ms): mean 1000 ms, std 250 ms; plus the 3 s pause:
        // μ = 4000 ms, σ = 250 ms. At Δ = 4000 ms, y = 0: phi = −log10(0.5) = 0.30103.
        let s = settings();
        let mut d = PhiAccrual::<16>::new();
        d.heartbeat(at(0), &s);
        assert!((d.phi(at(4000), &s) - core::f64::consts::LOG10_2).abs() < 1e-9);
        // y = 2 at Δ = 4500 ms: P(Z > 2) = 0.0227501 → phi = 1.64302.
        assert!((d.phi(at(4500), &s) - 1.64302).abs() < 1e-4);
        // Threshold 8 at y ≈ 5.612 → Δ ≈ 5403 ms (notes §10.1 quote ≈ 5.31 s for the
        // logistic formula).
        assert!(d.is_available(at(5390), &s));
        assert!(!d.is_available(at(5420), &s));
    }

    #[test]
    fn steady_heartbeats_tighten_the_estimate_and_outages_are_not_recorded() {
        let s = settings();
        let mut d = PhiAccrual::<8>::new();
        for i in 0..20 {
            d.heartbeat(at(i * 1000), &s);
        }
        let (mean, std) = d.mean_and_std();
        assert_eq!(d.samples(), 8);
        assert!((mean - 1_000_000.0).abs() < 1.0 && std < 1.0);
        // σ is clamped at 100 ms: suspected 3 s + 1 s + 5.61 × 0.1 s ≈ 4.56 s after the last.
        assert!(d.is_available(at(19_000 + 4_500), &s));
        assert!(!d.is_available(at(19_000 + 4_600), &s));
        // A heartbeat after a 60 s outage does not enter the window.
        d.heartbeat(at(79_000), &s);
        assert!((d.mean_and_std().0 - 1_000_000.0).abs() < 1.0);
    }

    /// The shortcut of `is_available` says what phi says, around the mean, for both formulas,
    /// thresholds near the shortcut's bound and windows with and without spread.
    #[test]
    fn availability_shortcut_agrees_with_phi() {
        for formula in [PhiFormula::Exact, PhiFormula::Logistic] {
            for threshold in [0.31, 0.5, 1.0, 8.0, 16.0] {
                for jitter in [0u64, 7, 150, 900] {
                    let s = DetectorSettings {
                        formula,
                        threshold,
                        min_std_deviation: Duration::from_millis(1),
                        ..settings()
                    };
                    let mut d = PhiAccrual::<16>::new();
                    let mut t = 0;
                    for i in 0..40u64 {
                        t += 1_000 + (i * 7919 % 13) * jitter;
                        d.heartbeat(at(t), &s);
                    }
                    for silence in (0..12_000).step_by(3) {
                        let now = at(t + silence);
                        assert_eq!(
                            d.is_available(now, &s),
                            d.phi(now, &s) < threshold,
                            "{formula:?} threshold {threshold} jitter {jitter} silence {silence}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn deadline_detector() {
        let s = DetectorSettings {
            kind: DetectorKind::Deadline,
            ..settings()
        };
        let mut d = Detector::<4>::new(s.kind);
        assert!(d.is_available(at(100_000), &s) && !d.is_monitoring());
        d.heartbeat(at(0), &s);
        assert!(d.is_available(at(3_999), &s));
        assert!(!d.is_available(at(4_000), &s));
        assert_eq!(d.suspicion(at(4_000), &s), s.threshold);
    }
}
