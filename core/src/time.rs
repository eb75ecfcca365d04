//! Caller-supplied monotonic time.
//!
//! The core never reads a clock. Every input that depends on time takes an [`Instant`] the
//! caller produced from its own monotonic clock (or a simulator's virtual clock). Durations are
//! plain [`core::time::Duration`].

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the caller's monotonic clock, in microseconds since an arbitrary origin.
///
/// Only differences between instants of the same node are meaningful; instants are never sent
/// to other nodes (fjell sends ages instead, so clocks need not agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    // Out of line, like `micros` and `add`: time arithmetic is everywhere, and each inlined
    // copy of its 64-bit and `Duration` work costs code size on a 32-bit device.
    #[inline(never)]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        duration_of_micros(self.0.saturating_sub(earlier.0))
    }

    /// Whole milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn millis_since(self, earlier: Instant) -> u64 {
        div_small(self.0.saturating_sub(earlier.0), 1000).0
    }

    /// `millis` milliseconds before `self`, clamped at the origin.
    pub(crate) fn millis_before(self, millis: u64) -> Instant {
        Instant(self.0.saturating_sub(millis.saturating_mul(1000)))
    }

    /// `self - d`, clamped at the origin.
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(micros(d)))
    }
}

/// Whole microseconds of `d`, saturating at `u64::MAX`.
#[inline(never)]
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `n / d` and `n % d` for a divisor below 2^16, in four 32-bit divisions. A 64-bit
/// division is a library routine on a 32-bit target (about a kilobyte of code on a Cortex-M,
/// and slow on one without a divider); the core divides 64-bit time only by small constants.
#[inline(never)]
pub(crate) fn div_small(n: u64, d: u16) -> (u64, u16) {
    let d = u32::from(d.max(1));
    let mut q = 0u64;
    let mut r = 0u32;
    for shift in [48, 32, 16, 0] {
        // `r < d <= 0xFFFF`, so this fits 32 bits.
        let part = (r << 16) | ((n >> shift) as u32 & 0xFFFF);
        q = (q << 16) | u64::from(part / d);
        r = part % d;
    }
    (q, r as u16)
}

/// `micros` microseconds as a [`Duration`], as `Duration::from_micros` but without a 64-bit
/// division (see [`div_small`]).
pub(crate) fn duration_of_micros(micros: u64) -> Duration {
    // 1,000,000 = 15,625 * 64.
    let (q, r) = div_small(micros, 15_625);
    let sub_second = (q & 63) as u32 * 15_625 + u32::from(r);
    Duration::new(q >> 6, sub_second * 1000)
}

/// `millis` milliseconds as a [`Duration`], as `Duration::from_millis` but without a 64-bit
/// division.
pub(crate) fn duration_of_millis(millis: u64) -> Duration {
    let (secs, ms) = div_small(millis, 1000);
    Duration::new(secs, u32::from(ms) * 1_000_000)
}

/// `d / n`, exactly as `Duration`'s own division, without a 64-bit one (`n` above 0).
pub(crate) fn fraction(d: Duration, n: u16) -> Duration {
    let (secs, rest) = div_small(d.as_secs(), n);
    let nanos = u64::from(rest) * 1_000_000_000 + u64::from(d.subsec_nanos());
    // Below `n` seconds of nanoseconds divided by `n`: under a second.
    Duration::new(secs, div_small(nanos, n).0 as u32)
}

/// `d * n`, exactly as `Duration::saturating_mul`, without a 64-bit division.
pub(crate) fn scaled(d: Duration, n: u32) -> Duration {
    let nanos = u64::from(d.subsec_nanos()) * u64::from(n);
    // 1,000,000,000 = 50,000 * 20,000: two divisions by a small divisor.
    let (q, low) = div_small(nanos, 50_000);
    let (secs, high) = div_small(q, 20_000);
    let sub_second = u32::from(high) * 50_000 + u32::from(low);
    Duration::from_secs(d.as_secs().saturating_mul(u64::from(n)))
        .saturating_add(Duration::new(secs, sub_second))
}

impl Add<Duration> for Instant {
    type Output = Instant;
    #[inline(never)]
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(micros(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_division_agrees_with_the_library_one() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut values = std::vec![0, 1, 999, 1000, 1001, u64::MAX, u64::MAX - 1, 1 << 63];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every magnitude, not only huge values.
            values.push(x >> (x % 64));
        }
        for n in values {
            for d in [1u16, 7, 1000, 15_625, u16::MAX] {
                assert_eq!(
                    div_small(n, d),
                    (n / u64::from(d), (n % u64::from(d)) as u16),
                    "{n} / {d}"
                );
            }
            assert_eq!(duration_of_micros(n), Duration::from_micros(n), "{n} us");
            assert_eq!(scaled(Duration::MAX, 2), Duration::MAX);
            assert_eq!(duration_of_millis(n >> 12), Duration::from_millis(n >> 12));
            let d = Duration::from_nanos(n >> 12);
            for k in [1u16, 2, 3, 5, 7, 1000, u16::MAX] {
                assert_eq!(fraction(d, k), d / u32::from(k), "{d:?} / {k}");
            }
            let d = Duration::new(n >> 30, (n % 1_000_000_000) as u32);
            for k in [0u32, 1, 2, 3, 10, 30, u32::MAX] {
                assert_eq!(scaled(d, k), d.saturating_mul(k), "{d:?} * {k}");
            }
        }
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_millis(5);
        assert_eq!(t + Duration::from_millis(1), Instant::from_millis(6));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_millis(5));
        assert_eq!(t.saturating_sub(Duration::from_secs(1)), Instant::ZERO);
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::MAX,
            Instant::from_micros(u64::MAX)
        );
    }
}
