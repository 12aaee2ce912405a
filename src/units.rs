//! Unit newtypes used across the engine.
//!
//! Every quantity that crosses a module boundary carries its unit in its type:
//! nanoseconds ([`Nanos`]), parts per billion ([`Ppb`]), and readings of the
//! local monotonic clock ([`MonoNs`]). See `docs/clocks.md` for the clock
//! domains these belong to.

use std::ops::{Add, Neg, Sub};

/// A signed duration or offset in nanoseconds (ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Nanos(i64);

impl Nanos {
    /// Zero nanoseconds.
    pub const ZERO: Nanos = Nanos(0);
    /// Builds from nanoseconds.
    pub const fn from_ns(ns: i64) -> Nanos {
        Nanos(ns)
    }
    /// The value in nanoseconds.
    pub const fn as_ns(self) -> i64 {
        self.0
    }
    /// Builds from seconds (saturating at ±292 years; NaN gives zero).
    pub fn from_secs_f64(s: f64) -> Nanos {
        Nanos((s * 1e9) as i64)
    }
    /// Builds from milliseconds.
    pub const fn from_ms(ms: i64) -> Nanos {
        Nanos(ms * 1_000_000)
    }
    /// Builds from microseconds.
    pub const fn from_us(us: i64) -> Nanos {
        Nanos(us * 1_000)
    }
    /// Builds from whole seconds.
    pub const fn from_secs(s: i64) -> Nanos {
        Nanos(s * 1_000_000_000)
    }
    /// The value in seconds, as f64.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }
    /// The value in milliseconds, as f64.
    pub fn as_ms_f64(self) -> f64 {
        self.0 as f64 * 1e-6
    }
    /// Absolute value.
    pub fn abs(self) -> Nanos {
        Nanos(self.0.saturating_abs())
    }
}

impl Add for Nanos {
    type Output = Nanos;
    fn add(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(o.0))
    }
}
impl Sub for Nanos {
    type Output = Nanos;
    fn sub(self, o: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(o.0))
    }
}
impl Neg for Nanos {
    type Output = Nanos;
    fn neg(self) -> Nanos {
        Nanos(self.0.saturating_neg())
    }
}

/// A frequency offset in parts per billion (ppb). 1 ppm = 1000 ppb.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, serde::Serialize)]
pub struct Ppb(f64);

impl Ppb {
    /// Zero frequency offset.
    pub const ZERO: Ppb = Ppb(0.0);
    /// Builds from parts per billion.
    pub const fn from_ppb(ppb: f64) -> Ppb {
        Ppb(ppb)
    }
    /// The value in parts per billion.
    pub const fn as_ppb(self) -> f64 {
        self.0
    }
    /// Builds from parts per million.
    pub fn from_ppm(ppm: f64) -> Ppb {
        Ppb(ppm * 1000.0)
    }
    /// The value in parts per million.
    pub fn as_ppm(self) -> f64 {
        self.0 / 1000.0
    }
    /// The rate ratio `1 + ppb·1e-9` this offset stands for.
    pub fn as_ratio(self) -> f64 {
        1.0 + self.0 * 1e-9
    }
}

/// A reading of the local `CLOCK_MONOTONIC`, in nanoseconds since boot.
///
/// This is the time base handed to every sans-IO core as `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct MonoNs(u64);

impl MonoNs {
    /// Builds from ns since boot.
    pub const fn from_ns(ns: u64) -> MonoNs {
        MonoNs(ns)
    }
    /// The reading in ns since boot.
    pub const fn as_ns(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating at 0.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, d: Nanos) -> MonoNs {
        MonoNs((self.0 as i64).saturating_add(d.0).max(0) as u64)
    }
    /// `self - earlier` as a signed duration.
    pub fn since(self, earlier: MonoNs) -> Nanos {
        Nanos(self.0 as i64 - earlier.0 as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ppb_ratio_and_ppm() {
        assert_eq!(Ppb::from_ppm(100.0).0, 100_000.0);
        assert!((Ppb(1000.0).as_ratio() - 1.000001).abs() < 1e-15);
        assert_eq!(Nanos::from_ms(5).0, 5_000_000);
        assert_eq!(MonoNs(10).since(MonoNs(15)), Nanos(-5));
    }
}
