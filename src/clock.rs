//! The media clock seam (RFC 7273, AES67-2018 §5): where the receiver learns
//! "what RTP timestamp is it now?".
//!
//! The pipeline asks its [`MediaClock`] for the current media clock position
//! (RTP timestamp units, modulo 2^32) at local monotonic time `now`; the
//! playout buffer releases every frame whose `ts + link offset` has been
//! reached. Implementations:
//! - [`MonotonicMediaClock`]: free-running on the local monotonic clock,
//!   anchored on the stream itself (no PTP);
//! - a PTP media clock (RTP ts = PTP time × rate + `mediaclk:direct` offset)
//!   plugs in here without reshaping the pipeline.
//!
//! Clock domains are listed in `docs/clocks.md`.

use crate::units::{MonoNs, Nanos};

/// State of a media clock, as shown in status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// No reference yet (no packet, or no PTP lock).
    Unsynced,
    /// Free-running on the local monotonic clock, anchored on arrivals.
    FreeRun,
    /// Locked to PTP: play times are absolute (synchronous playout).
    PtpLocked,
    /// PTP lost; running on the last known frequency.
    Holdover,
}

/// A source of the current media clock position.
pub trait MediaClock: Send {
    /// Media clock position at local time `now`, in RTP timestamp units
    /// (samples per channel) modulo 2^32; `None` when not yet available.
    fn rtp_now(&mut self, now: MonoNs) -> Option<u32>;
    /// Observes a packet's RTP timestamp and local arrival time. Free-running
    /// clocks anchor on these; PTP clocks may ignore them.
    fn observe(&mut self, _rtp_ts: u32, _arrival: MonoNs) {}
    /// Forgets the anchor (after an SSRC change or timestamp jump).
    fn reset(&mut self) {}
    /// Current state.
    fn state(&self) -> ClockState;
}

/// A media clock that free-runs on `CLOCK_MONOTONIC`, anchored so that the
/// earliest-arriving packets define "now" (minimum-delay tracking).
///
/// Each arrival gives `d = arrival − anchor − (ts − ts0)/rate`. A negative
/// `d` (a packet earlier than predicted) moves the anchor earlier at once;
/// once per second the minimum `d` of the last second, if positive, moves the
/// anchor later by half of it. So the media clock follows the sender's rate
/// (within the arrival jitter) and the link offset stays the headroom above
/// the fastest path.
#[derive(Debug, Clone)]
pub struct MonotonicMediaClock {
    rate: u32,
    anchor: Option<(u32, MonoNs)>,
    window_min: i64,
    window_start: MonoNs,
}

impl MonotonicMediaClock {
    /// A clock for a stream at `rate` Hz.
    pub fn new(rate: u32) -> MonotonicMediaClock {
        MonotonicMediaClock { rate, anchor: None, window_min: i64::MAX, window_start: MonoNs(0) }
    }

    fn elapsed_frames(&self, from: MonoNs, to: MonoNs) -> i64 {
        let ns = to.since(from).0 as i128;
        (ns * self.rate as i128 / 1_000_000_000) as i64
    }
}

impl MediaClock for MonotonicMediaClock {
    fn rtp_now(&mut self, now: MonoNs) -> Option<u32> {
        let (ts0, t0) = self.anchor?;
        Some(ts0.wrapping_add(self.elapsed_frames(t0, now) as u32))
    }

    fn observe(&mut self, rtp_ts: u32, arrival: MonoNs) {
        let Some((ts0, t0)) = self.anchor else {
            self.anchor = Some((rtp_ts, arrival));
            self.window_start = arrival;
            return;
        };
        let frames = rtp_ts.wrapping_sub(ts0) as i32 as i64;
        let predicted = t0.add(Nanos((frames as i128 * 1_000_000_000 / self.rate as i128) as i64));
        let d = arrival.since(predicted).0;
        if d < 0 {
            self.anchor = Some((ts0, t0.add(Nanos(d))));
        } else {
            self.window_min = self.window_min.min(d);
        }
        if arrival.since(self.window_start) >= Nanos::from_secs(1) {
            if self.window_min != i64::MAX && self.window_min > 0 {
                let (ts0, t0) = self.anchor.expect("anchored above");
                self.anchor = Some((ts0, t0.add(Nanos(self.window_min / 2))));
            }
            self.window_min = i64::MAX;
            self.window_start = arrival;
        }
    }

    fn reset(&mut self) {
        self.anchor = None;
        self.window_min = i64::MAX;
    }

    fn state(&self) -> ClockState {
        if self.anchor.is_some() {
            ClockState::FreeRun
        } else {
            ClockState::Unsynced
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_sender_that_is_100ppm_slow_within_jitter() {
        let rate = 48_000u32;
        let mut c = MonotonicMediaClock::new(rate);
        // Sender 100 ppm slow: 48-frame packets every 1.0001 ms, arrivals with up to 300 µs jitter.
        let mut seed = 12345u64;
        let mut max_err = 0i64;
        for i in 0..600_000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let jitter = (seed >> 33) % 300_000;
            let send = 1_000_000_000 + i * 1_000_100;
            let arrival = MonoNs(send + 50_000 + jitter);
            let ts = (i as u32).wrapping_mul(48);
            c.observe(ts, arrival);
            if i > 5000 {
                // At the earliest possible arrival, the clock should read about this packet's ts.
                let now = c.rtp_now(MonoNs(send + 50_000)).unwrap();
                let err = now.wrapping_sub(ts) as i32 as i64;
                max_err = max_err.max(err.abs());
            }
        }
        // Within 1 ms (48 frames) after 10 minutes of 100 ppm drift (which alone would be 60 ms).
        assert!(max_err <= 48, "max error {max_err} frames");
    }

    #[test]
    fn unsynced_until_first_packet_and_after_reset() {
        let mut c = MonotonicMediaClock::new(48_000);
        assert_eq!(c.rtp_now(MonoNs(5)), None);
        c.observe(1000, MonoNs(1_000_000_000));
        assert_eq!(c.state(), ClockState::FreeRun);
        assert_eq!(c.rtp_now(MonoNs(1_001_000_000)), Some(1048));
        c.reset();
        assert_eq!(c.state(), ClockState::Unsynced);
    }
}
