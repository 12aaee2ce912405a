//! The virtual PTP clock: an affine overlay over the local reference clock
//! (`CLOCK_MONOTONIC_RAW`), in the manner of statime's overlay clock. It never
//! touches the system clock.
//!
//! The servo owns a [`ClockMap`]; after each update the port emits it and the
//! IO loop publishes it to a [`PtpClockHandle`](crate::engine::ptp_clock::PtpClockHandle), which any thread (including a
//! real-time audio thread: reads are lock-free and never allocate) can use to
//! read PTP time.
//!
//! ## Media clock (AES67 / RFC 7273 `mediaclk:direct`)
//! For a stream with `a=mediaclk:direct=<offset>` at `rate` Hz:
//! `rtp_ts = (ptp_time_seconds × rate + offset) mod 2^32`. With a handle:
//! ```no_run
//! # use aes67::engine::ptp_clock::PtpClockHandle;
//! # fn f(h: &PtpClockHandle) {
//! if let Some(t) = h.now_ptp() {            // None until the servo has an estimate
//!     let rtp_now: u32 = t.to_rtp(48_000, 0); // mediaclk:direct=0, 48 kHz
//! #   let _ = rtp_now;
//! }
//! # }
//! ```
//! [`PtpClockHandle::rtp_at_mono`](crate::engine::ptp_clock::PtpClockHandle::rtp_at_mono) does the same for a `CLOCK_MONOTONIC`
//! instant (e.g. an ALSA htstamp).

use std::ops::Add;

use super::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// The affine map local reference clock → PTP time:
/// `ptp(local) = ref_ptp + (local − ref_local) × (1 + freq·10⁻⁹)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockMap {
    /// Local reading of the reference point.
    pub ref_local: LocalNs,
    /// PTP time at the reference point.
    pub ref_ptp: PtpTimestamp,
    /// Rate of PTP time relative to the local clock, minus one, in ppb.
    pub freq: Ppb,
}

impl ClockMap {
    /// The identity-rate map putting `ptp` at `local`.
    pub fn new(local: LocalNs, ptp: PtpTimestamp) -> ClockMap {
        ClockMap {
            ref_local: local,
            ref_ptp: ptp,
            freq: Ppb::ZERO,
        }
    }
    /// PTP time at local instant `local`.
    pub fn to_ptp(&self, local: LocalNs) -> PtpTimestamp {
        let dl = local.as_ns() as i128 - self.ref_local.as_ns() as i128;
        let adj = (dl as f64 * self.freq.as_ppb() * 1e-9).round() as i128;
        PtpTimestamp::from_nanos(self.ref_ptp.as_nanos() + dl + adj)
    }
    /// Local instant at PTP time `t` (inverse of [`Self::to_ptp`]).
    pub fn to_local(&self, t: PtpTimestamp) -> LocalNs {
        let dp = (t.as_nanos() - self.ref_ptp.as_nanos()) as f64;
        let dl = dp / self.freq.as_ratio();
        LocalNs::from_ns(self.ref_local.as_ns().saturating_add(dl.round() as i64))
    }
    /// The same map re-anchored at `local` (numerically identical; keeps the
    /// reference point recent).
    pub fn rebased(&self, local: LocalNs) -> ClockMap {
        ClockMap {
            ref_local: local,
            ref_ptp: self.to_ptp(local),
            freq: self.freq,
        }
    }
    /// Shifts PTP time by `d` (a step).
    pub fn stepped(&self, d: Nanos) -> ClockMap {
        ClockMap {
            ref_local: self.ref_local,
            ref_ptp: self.ref_ptp.add(d),
            freq: self.freq,
        }
    }
}

/// Servo state (linuxptp's s0..s3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServoState {
    /// s0: no estimate yet.
    #[default]
    Unlocked,
    /// s1: the clock was just stepped.
    Jump,
    /// s2: locked.
    Locked,
    /// s3: locked and stable (window full, offsets small).
    LockedStable,
    /// Master lost: free-running on the last frequency estimate.
    Holdover,
}

impl ServoState {
    /// Whether the clock can be trusted (locked, stable or in holdover).
    pub fn usable(self) -> bool {
        matches!(
            self,
            ServoState::Locked | ServoState::LockedStable | ServoState::Holdover
        )
    }
    /// Lower-case name as printed in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            ServoState::Unlocked => "unlocked",
            ServoState::Jump => "jump",
            ServoState::Locked => "locked",
            ServoState::LockedStable => "locked_stable",
            ServoState::Holdover => "holdover",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip_and_freq() {
        let m = ClockMap {
            ref_local: LocalNs::from_ns(1_000),
            ref_ptp: PtpTimestamp::from_nanos(5_000_000_000),
            freq: Ppb::from_ppb(100_000.0),
        };
        // 1 s local later, +100 ppm → 1 s + 100 µs of PTP time.
        assert_eq!(
            m.to_ptp(LocalNs::from_ns(1_000_001_000)).as_nanos(),
            5_000_000_000 + 1_000_100_000
        );
        let back = m.to_local(m.to_ptp(LocalNs::from_ns(123_456_789)));
        assert!((back.as_ns() - 123_456_789).abs() <= 1);
        let r = m.rebased(LocalNs::from_ns(7_000_000_000));
        assert!(
            (r.to_ptp(LocalNs::from_ns(9_000_000_000)).as_nanos()
                - m.to_ptp(LocalNs::from_ns(9_000_000_000)).as_nanos())
            .abs()
                <= 1
        );
    }
}
