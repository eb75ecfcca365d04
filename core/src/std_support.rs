//! Conversions between [`Instant`] and `std::time::Instant` (the `std` feature).
//!
//! The core's instants count microseconds from an arbitrary origin. Under `std` that origin is
//! one per process: the moment of the first conversion in either direction, fixed from then
//! on, so instants converted anywhere in the process are comparable.

extern crate std;

use core::time::Duration;
use std::sync::OnceLock;

use crate::time::Instant;

/// The process-wide origin, fixed on first use. A `std::time::Instant` cannot be built from a
/// number, so the origin has to be a real reading of the clock.
fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Instant {
    /// The current time of the process's monotonic clock: `std::time::Instant::now()`,
    /// converted as by the `From<std::time::Instant>` impl.
    pub fn now() -> Instant {
        Instant::from(std::time::Instant::now())
    }

    /// The `std::time::Instant` this instant stands for, under the process-wide origin (the
    /// inverse of the conversion from `std::time::Instant`). An instant beyond what the
    /// platform's clock can represent becomes 100 years after the origin.
    pub fn to_std(self) -> std::time::Instant {
        let o = origin();
        o.checked_add(Duration::from_micros(self.as_micros()))
            .unwrap_or_else(|| o + Duration::from_secs(100 * 365 * 24 * 3600))
    }
}

impl From<std::time::Instant> for Instant {
    /// Microseconds from the process-wide origin (the moment of the first conversion in this
    /// process) to `at`, rounded down. An `at` before the origin saturates to [`Instant::ZERO`]:
    /// take readings with [`Instant::now`] or after the first conversion to avoid that.
    fn from(at: std::time::Instant) -> Instant {
        let since = at.saturating_duration_since(origin());
        Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<Instant> for std::time::Instant {
    /// See [`Instant::to_std`].
    fn from(at: Instant) -> std::time::Instant {
        at.to_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_share_one_origin_and_round_trip() {
        let first = Instant::now();
        let later = std::time::Instant::now() + Duration::from_millis(1500);
        let converted = Instant::from(later);
        assert!(converted > first);
        let d = converted.saturating_duration_since(first);
        assert!(d >= Duration::from_millis(1500), "{d:?}");
        // Round trip, exact to the microsecond.
        let back: std::time::Instant = converted.into();
        assert_eq!(Instant::from(back), converted);
        let gap = if back > later {
            back - later
        } else {
            later - back
        };
        assert!(gap < Duration::from_micros(1), "{gap:?}");
    }

    #[test]
    fn instants_before_the_origin_saturate_to_zero() {
        let before = std::time::Instant::now();
        // Either the origin was fixed earlier (by another test: then `before` maps to a
        // positive value) or just now, after `before`.
        let o = origin();
        if o > before {
            assert_eq!(Instant::from(before), Instant::ZERO);
        }
        assert_eq!(Instant::from(o), Instant::ZERO);
        assert_eq!(Instant::ZERO.to_std(), o);
    }
}
