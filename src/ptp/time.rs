//! PTP timescale types: [`PtpTimestamp`] (the wire `Timestamp` of IEEE
//! 1588-2019 §5.3.3) and [`LocalNs`] (readings of the local reference clock the
//! virtual PTP clock is laid over).

use crate::units::Nanos;

/// A point on the PTP timescale (TAI, or ARB when the grandmaster says so),
/// as nanoseconds since the PTP epoch (1970-01-01 00:00:00 TAI).
///
/// Wire form (IEEE 1588-2019 §5.3.3): 48-bit `secondsField` + 32-bit
/// `nanosecondsField` (< 10^9). Stored as one `i128` ns count so arithmetic
/// never overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PtpTimestamp(i128);

impl PtpTimestamp {
    /// From nanoseconds since the PTP epoch.
    pub const fn from_nanos(ns: i128) -> PtpTimestamp {
        PtpTimestamp(ns)
    }
    /// From the wire fields. `nanos` must be < 10^9 (checked by the parser).
    pub fn from_parts(secs: u64, nanos: u32) -> PtpTimestamp {
        PtpTimestamp(secs as i128 * 1_000_000_000 + nanos as i128)
    }
    /// The wire fields `(secondsField, nanosecondsField)`; negative times and
    /// times past 2^48 s are clamped to the representable range.
    pub fn to_parts(self) -> (u64, u32) {
        let t = self.0.clamp(0, (1i128 << 48) * 1_000_000_000 - 1);
        ((t / 1_000_000_000) as u64, (t % 1_000_000_000) as u32)
    }
    /// Nanoseconds since the PTP epoch.
    pub fn as_nanos(self) -> i128 {
        self.0
    }
    /// `self − other` in ns, saturating to the `i64` range (±292 years).
    pub fn diff(self, other: PtpTimestamp) -> Nanos {
        Nanos::from_ns((self.0 - other.0).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
    /// The RTP timestamp of this instant for a `mediaclk:direct=<offset>`
    /// stream at `rate` Hz (RFC 7273 §5.2, AES67-2018 §8.2):
    /// `(PTP seconds × rate + offset) mod 2^32`, computed exactly in integers
    /// (floor of the sample count since the PTP epoch).
    pub fn to_rtp(self, rate: u32, mediaclk_offset: u32) -> u32 {
        let samples = (self.0.max(0) * rate as i128) / 1_000_000_000;
        (samples as u64 as u32).wrapping_add(mediaclk_offset)
    }
    /// Media-clock position in samples since the PTP epoch at `rate` Hz
    /// (64-bit, not wrapped; add the mediaclk offset and wrap to 32 bits for
    /// RTP).
    pub fn to_samples(self, rate: u32) -> u64 {
        ((self.0.max(0) * rate as i128) / 1_000_000_000) as u64
    }
}

/// A reading of the local reference clock, in ns.
///
/// At run time this is `CLOCK_MONOTONIC_RAW` (never slewed by NTP); in the
/// simulation it is the simulated slave oscillator. The virtual PTP clock is
/// an affine map from this timescale ([`super::clock::ClockMap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LocalNs(i64);

impl LocalNs {
    /// From a reading of the local reference clock, ns.
    pub const fn from_ns(ns: i64) -> LocalNs {
        LocalNs(ns)
    }
    /// The reading, ns.
    pub const fn as_ns(self) -> i64 {
        self.0
    }
    /// `self − earlier` as a signed duration.
    pub fn since(self, earlier: LocalNs) -> Nanos {
        Nanos::from_ns(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Nanos> for LocalNs {
    type Output = LocalNs;
    /// `self + d`, saturating.
    fn add(self, d: Nanos) -> LocalNs {
        LocalNs(self.0.saturating_add(d.as_ns()))
    }
}

impl std::ops::Add<Nanos> for PtpTimestamp {
    type Output = PtpTimestamp;
    /// `self + d`.
    fn add(self, d: Nanos) -> PtpTimestamp {
        PtpTimestamp(self.0 + d.as_ns() as i128)
    }
}

/// A PTP message interval as a base-2 logarithm of seconds (log2 s), the
/// unit of logSyncInterval, logAnnounceInterval and logMinDelayReqInterval
/// (IEEE 1588-2019 §7.7.2.1, §13.3.2.14): `−3` is 125 ms, `1` is 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct LogInterval(i8);

impl LogInterval {
    /// From the log2-seconds value.
    pub const fn new(log2_s: i8) -> LogInterval {
        LogInterval(log2_s)
    }
    /// The log2-seconds value (the wire `logMessageInterval`).
    pub const fn as_i8(self) -> i8 {
        self.0
    }
    /// The interval, 2^log s, in ns (the exponent clamped to ±10).
    pub fn as_nanos(self) -> Nanos {
        let log = self.0.clamp(-10, 10) as i32;
        if log >= 0 {
            Nanos::from_ns(1_000_000_000i64 << log)
        } else {
            Nanos::from_ns(1_000_000_000i64 >> (-log))
        }
    }
    /// The value clamped to `lo..=hi` (log2 s).
    pub fn clamp(self, lo: i8, hi: i8) -> LogInterval {
        LogInterval(self.0.clamp(lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parts_and_rtp() {
        let t = PtpTimestamp::from_parts(1_700_000_000, 999_999_999);
        assert_eq!(t.to_parts(), (1_700_000_000, 999_999_999));
        assert_eq!((t + Nanos::from_ns(1)).to_parts(), (1_700_000_001, 0));
        // 1 s at 48 kHz = 48000 samples.
        let a = PtpTimestamp::from_parts(10, 0);
        assert_eq!(a.to_rtp(48_000, 0), 480_000);
        assert_eq!(a.to_rtp(48_000, 5), 480_005);
        assert_eq!(
            PtpTimestamp::from_parts(100_000, 0).to_rtp(48_000, 0),
            (4_800_000_000u64 as u32)
        );
        assert_eq!(PtpTimestamp(-5).to_parts(), (0, 0));
    }

    #[test]
    fn log_interval_in_ns() {
        assert_eq!(LogInterval::new(-3).as_nanos(), Nanos::from_ms(125));
        assert_eq!(LogInterval::new(1).as_nanos(), Nanos::from_secs(2));
        assert_eq!(LogInterval::new(0).as_nanos(), Nanos::from_secs(1));
        assert_eq!(LogInterval::new(127).as_nanos(), Nanos::from_secs(1024));
        assert_eq!(LogInterval::new(5).clamp(-3, 4).as_i8(), 4);
    }
}
