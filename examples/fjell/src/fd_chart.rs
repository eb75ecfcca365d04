//! `fjell fd-chart`: phi against the time since the last heartbeat, for failure-detector
//! settings and inter-arrival statistics (given, or observed by a running node), as an SVG
//! chart like the ones in the Akka documentation; and per curve the time to suspicion and
//! the expected false suspicions per hour. Operators tune the detector with it.
//!
//! Phi comes from fjell-core's own rule ([`fjell_core::phi_after`]), so the chart is what the
//! detector computes. The false-positive rate assumes the inter-arrival times are normal with
//! the curve's mean and standard deviation: the expected number of gaps per hour longer than
//! the time to suspicion, `3600 s / mean × P(gap > t)`.

use std::path::Path;
use std::time::Duration;

use fjell_core::{phi_after, phi_of, DetectorSettings, PhiFormula};
use plotters::prelude::*;

/// One curve: heartbeats arriving every `mean` on average, spread by `std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// What the curve is (a member's address, or the standard deviation).
    pub label: String,
    /// Mean inter-arrival time.
    pub mean: Duration,
    /// Standard deviation of the inter-arrival times.
    pub std: Duration,
}

/// A curve with what it means for detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The curve.
    pub curve: Curve,
    /// Silence after which phi reaches the threshold.
    pub suspicion_after: Duration,
    /// Expected false suspicions per hour of a healthy member with these statistics.
    pub false_positives_per_hour: f64,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Phi after `elapsed` of silence for `curve` under `s`.
pub fn phi(s: &DetectorSettings, curve: &Curve, elapsed: Duration) -> f64 {
    phi_after(micros(elapsed), micros(curve.mean), micros(curve.std), s)
}

/// The time to suspicion and false-positive rate of each curve.
pub fn analyse(s: &DetectorSettings, curves: &[Curve]) -> Vec<Analysis> {
    curves
        .iter()
        .map(|c| {
            let t = suspicion_after(s, c);
            let mean = c.mean.as_secs_f64().max(1e-6);
            let tail = if c.std.is_zero() {
                if t > c.mean {
                    0.0
                } else {
                    1.0
                }
            } else {
                let y = (t.as_secs_f64() - mean) / c.std.as_secs_f64();
                10f64.powf(-phi_of(y, PhiFormula::Exact))
            };
            Analysis {
                curve: c.clone(),
                suspicion_after: t,
                false_positives_per_hour: 3600.0 / mean * tail,
            }
        })
        .collect()
}

/// The least silence (to the microsecond) after which phi reaches the threshold; phi never
/// decreases with the silence, so a bisection finds it.
fn suspicion_after(s: &DetectorSettings, c: &Curve) -> Duration {
    let reached = |us: u64| phi(s, c, Duration::from_micros(us)) >= s.threshold;
    let (mut lo, mut hi) = (0u64, 1_000_000u64);
    while !reached(hi) {
        if hi > 86_400_000_000 {
            return Duration::from_secs(86_400); // a day: never, for practical purposes
        }
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Duration::from_micros(hi)
}

/// The table printed beside the chart.
pub fn report(s: &DetectorSettings, analyses: &[Analysis]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = format!(
        "threshold {}, heartbeat-interval {} ms, acceptable-heartbeat-pause {} ms, min-std-deviation {} ms\n\
         {:<24} {:>10} {:>10} {:>18} {:>22}\n",
        s.threshold,
        ms(s.heartbeat_interval),
        ms(s.acceptable_heartbeat_pause),
        ms(s.min_std_deviation),
        "curve",
        "mean ms",
        "std ms",
        "suspected after ms",
        "false positives / hour"
    );
    for a in analyses {
        out += &format!(
            "{:<24} {:>10.1} {:>10.1} {:>18.0} {:>22.3e}\n",
            a.curve.label,
            ms(a.curve.mean),
            ms(a.curve.std),
            ms(a.suspicion_after),
            a.false_positives_per_hour
        );
    }
    out
}

/// Draws the curves (phi against the silence, up to a quarter past the latest suspicion)
/// and the threshold as an SVG file of `width` × `height` pixels.
pub fn render(
    s: &DetectorSettings,
    analyses: &[Analysis],
    path: &Path,
    (width, height): (u32, u32),
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let x_max = analyses
        .iter()
        .map(|a| a.suspicion_after.as_secs_f64())
        .fold(s.heartbeat_interval.as_secs_f64(), f64::max)
        * 1.25;
    let y_max = s.threshold * 1.5;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "phi accrual: threshold {}, acceptable pause {} ms, min std {} ms",
                s.threshold,
                s.acceptable_heartbeat_pause.as_millis(),
                s.min_std_deviation.as_millis()
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("time since the last heartbeat (s)")
        .y_desc("phi")
        .draw()
        .map_err(|e| err(&e))?;
    const POINTS: usize = 400;
    for (i, a) in analyses.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = (0..=POINTS).map(|k| {
            let x = x_max * k as f64 / POINTS as f64;
            let y = phi(s, &a.curve, Duration::from_secs_f64(x)).min(y_max);
            (x, y)
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!(
                "{} (suspected after {} ms)",
                a.curve.label,
                a.suspicion_after.as_millis()
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, s.threshold), (x_max, s.threshold)],
            RED.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label(format!("threshold {}", s.threshold))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_suspect_a_steady_member_after_pause_plus_interval_plus_tail() {
        let s = DetectorSettings::default();
        let c = Curve {
            label: "100 ms".into(),
            mean: Duration::from_secs(1),
            std: Duration::from_millis(100),
        };
        let a = &analyse(&s, &[c])[0];
        // Phi 8 is z ≈ 5.61 above mean + pause: 1 s + 3 s + 0.561 s.
        let t = a.suspicion_after.as_secs_f64();
        assert!((t - 4.561).abs() < 0.01, "{t}");
        // A member whose gaps are N(1 s, 100 ms) never gets near 4.5 s.
        assert!(
            a.false_positives_per_hour < 1e-100,
            "{}",
            a.false_positives_per_hour
        );
        // No pause and threshold 1: suspected when P(gap > t) = 10^-1, so a tenth of the
        // heartbeats (3,600 an hour at 1 s) raise a false suspicion.
        let eager = DetectorSettings {
            threshold: 1.0,
            acceptable_heartbeat_pause: Duration::ZERO,
            ..s
        };
        let j = Curve {
            label: "1500 ms".into(),
            mean: Duration::from_secs(1),
            std: Duration::from_millis(1500),
        };
        let b = &analyse(&eager, &[j])[0];
        assert!((b.suspicion_after.as_secs_f64() - (1.0 + 1.2816 * 1.5)).abs() < 0.01);
        assert!(
            (b.false_positives_per_hour - 360.0).abs() < 1.0,
            "{}",
            b.false_positives_per_hour
        );
    }
}
