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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// No reference yet (no packet, or no PTP lock).
    #[default]
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
///
/// The anchor moves forward by whole seconds (exact in ns) once the stream
/// is 2^29 samples past it, so the signed distance `ts − ts0` never wraps
/// (it would after 2^31 samples: 12.4 h at 48 kHz, 6.2 h at 96 kHz).
///
/// A packet more than [`MAX_EARLY`] earlier than predicted (e.g. one forged
/// or stray packet far ahead) moves the anchor only when
/// [`EARLY_CONFIRM`] consecutive packets agree; then by the smallest of
/// their advances.
///
/// With a settle time ([`MonotonicMediaClock::with_settle`]) the clock learns
/// from arrivals for that long after its first packet before it gives a
/// position: a stream's first packets often arrive late (a sender's start-up
/// burst, a receiver thread still starting), and the earlier ones that follow
/// would move the anchor, and so release a burst of frames, after playout has
/// begun. Settled first, the burst happens before anything is audible.
#[derive(Debug, Clone)]
pub struct MonotonicMediaClock {
    rate: u32,
    /// Learning time after the first packet before [`MediaClock::rtp_now`] answers.
    settle: Nanos,
    /// Arrival of the first packet since the last reset.
    first: Option<MonoNs>,
    anchor: Option<(u32, MonoNs)>,
    window_min: i64,
    window_start: MonoNs,
    /// Consecutive packets far earlier than predicted, and the least
    /// negative of their `d` (ns).
    early: (u32, i64),
}

/// Earliness (ns) applied at once; more needs [`EARLY_CONFIRM`] packets.
pub const MAX_EARLY: Nanos = Nanos::from_ms(20);
/// Consecutive far-early packets that move the anchor.
pub const EARLY_CONFIRM: u32 = 8;

/// Samples past the anchor at which it moves forward.
const REANCHOR_FRAMES: i64 = 1 << 29;

impl MonotonicMediaClock {
    /// A clock for a stream at `rate` Hz.
    pub fn new(rate: u32) -> MonotonicMediaClock {
        MonotonicMediaClock::with_settle(rate, Nanos::ZERO)
    }

    /// A clock for a stream at `rate` Hz that answers [`MediaClock::rtp_now`]
    /// only once `settle` (ns) has passed since the first packet (and again
    /// after each [`MediaClock::reset`]). The playout buffer must hold `settle`
    /// more than the link offset.
    pub fn with_settle(rate: u32, settle: Nanos) -> MonotonicMediaClock {
        MonotonicMediaClock {
            rate,
            settle,
            first: None,
            anchor: None,
            window_min: i64::MAX,
            window_start: MonoNs::from_ns(0),
            early: (0, i64::MIN),
        }
    }

    fn elapsed_frames(&self, from: MonoNs, to: MonoNs) -> i64 {
        let ns = to.since(from).as_ns() as i128;
        (ns * self.rate as i128 / 1_000_000_000) as i64
    }
}

impl MediaClock for MonotonicMediaClock {
    fn rtp_now(&mut self, now: MonoNs) -> Option<u32> {
        let (ts0, t0) = self.anchor?;
        if self.settle > Nanos::ZERO && now.since(self.first?) < self.settle {
            return None;
        }
        Some(ts0.wrapping_add(self.elapsed_frames(t0, now) as u32))
    }

    fn observe(&mut self, rtp_ts: u32, arrival: MonoNs) {
        let Some((ts0, t0)) = self.anchor else {
            self.anchor = Some((rtp_ts, arrival));
            self.first = Some(arrival);
            self.window_start = arrival;
            return;
        };
        // Re-anchor by whole seconds (exact) long before `ts − ts0` wraps.
        let (mut ts0, mut t0) = (ts0, t0);
        let since = self.elapsed_frames(t0, arrival);
        if since >= REANCHOR_FRAMES && self.rate > 0 {
            let secs = since / self.rate as i64;
            ts0 = ts0.wrapping_add((secs * self.rate as i64) as u32);
            t0 = t0.add(Nanos::from_ns(secs * 1_000_000_000));
            self.anchor = Some((ts0, t0));
        }
        let frames = rtp_ts.wrapping_sub(ts0) as i32 as i64;
        let predicted = t0.add(Nanos::from_ns(
            (frames as i128 * 1_000_000_000 / self.rate.max(1) as i128) as i64,
        ));
        let d = arrival.as_ns() as i128 - predicted.as_ns() as i128;
        let d = d.clamp(i64::MIN as i128 / 2, i64::MAX as i128 / 2) as i64;
        if d < -MAX_EARLY.as_ns() {
            // Far earlier than predicted: believe it only when confirmed.
            self.early = (self.early.0 + 1, self.early.1.max(d));
            if self.early.0 >= EARLY_CONFIRM {
                self.anchor = Some((ts0, t0.add(Nanos::from_ns(self.early.1))));
                self.early = (0, i64::MIN);
            }
        } else if d < 0 {
            self.early = (0, i64::MIN);
            self.anchor = Some((ts0, t0.add(Nanos::from_ns(d))));
        } else {
            self.early = (0, i64::MIN);
            self.window_min = self.window_min.min(d);
        }
        if arrival.since(self.window_start) >= Nanos::from_secs(1) {
            if self.window_min != i64::MAX && self.window_min > 0 {
                let (ts0, t0) = self.anchor.expect("anchored above");
                self.anchor = Some((ts0, t0.add(Nanos::from_ns(self.window_min / 2))));
            }
            self.window_min = i64::MAX;
            self.window_start = arrival;
        }
    }

    fn reset(&mut self) {
        self.anchor = None;
        self.first = None;
        self.window_min = i64::MAX;
        self.early = (0, i64::MIN);
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
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = (seed >> 33) % 300_000;
            let send = 1_000_000_000 + i * 1_000_100;
            let arrival = MonoNs::from_ns(send + 50_000 + jitter);
            let ts = (i as u32).wrapping_mul(48);
            c.observe(ts, arrival);
            if i > 5000 {
                // At the earliest possible arrival, the clock should read about this packet's ts.
                let now = c.rtp_now(MonoNs::from_ns(send + 50_000)).unwrap();
                let err = now.wrapping_sub(ts) as i32 as i64;
                max_err = max_err.max(err.abs());
            }
        }
        // Within 1 ms (48 frames) after 10 minutes of 100 ppm drift (which alone would be 60 ms).
        assert!(max_err <= 48, "max error {max_err} frames");
    }

    /// 40 h of a stream at 48 and 96 kHz (several 2^31-sample wraps of the
    /// signed distance to the anchor): the clock keeps reading the arriving
    /// packets' timestamps. Sparse packets (one per 10 s, exact timing).
    #[test]
    fn free_running_clock_survives_40_hours_of_wraps() {
        for rate in [48_000u32, 96_000] {
            let mut c = MonotonicMediaClock::new(rate);
            let step_s = 10u64;
            for i in 0..(40 * 3600 / step_s) {
                let t = MonoNs::from_ns(1_000_000_000 + i * step_s * 1_000_000_000);
                let ts = (i * step_s * rate as u64) as u32;
                c.observe(ts, t);
                let now = c.rtp_now(t).unwrap();
                let err = now.wrapping_sub(ts) as i32;
                assert!(
                    err.abs() <= 1,
                    "{rate} Hz at {} h: {err}",
                    i * step_s / 3600
                );
            }
        }
    }

    /// One same-SSRC packet 200 ms ahead does not move the anchor; eight in a
    /// row (a real timestamp shift) do.
    #[test]
    fn one_packet_far_ahead_does_not_move_the_anchor() {
        let mut c = MonotonicMediaClock::new(48_000);
        let at = |i: u64| MonoNs::from_ns(1_000_000_000 + i * 1_000_000);
        for i in 0..100u64 {
            c.observe((i * 48) as u32, at(i));
        }
        c.observe((100 * 48 + 9600) as u32, at(100));
        for i in 101..110u64 {
            c.observe((i * 48) as u32, at(i));
            assert_eq!(c.rtp_now(at(i)), Some((i * 48) as u32));
        }
        for i in 110..118u64 {
            c.observe((i * 48 + 9600) as u32, at(i));
        }
        assert_eq!(c.rtp_now(at(118)), Some((118 * 48 + 9600) as u32));
    }

    /// A stream whose first packet arrives 120 ms late and whose lateness then
    /// drains at 0.5 ms per packet (a sender's start-up queue): the anchor moves
    /// 120 ms earlier over the first 240 ms. Without a settle time the clock
    /// answers from 120 ms on and its position then runs 120 ms ahead of the
    /// elapsed time (what a playing output receives as a 120 ms burst); with a
    /// 500 ms settle time it first answers at 620 ms, already on the sender's
    /// timing, and never runs ahead.
    #[test]
    fn settling_clock_learns_a_late_first_packet_before_it_answers() {
        let at = |us: u64| MonoNs::from_ns(1_000_000_000 + us * 1000);
        // packet i (48 frames, 1 ms) is sent at i ms
        let arrival = |i: u64| at(if i < 240 { 120_000 + i * 500 } else { i * 1000 });
        for settle_ms in [0i64, 500] {
            let mut c = MonotonicMediaClock::with_settle(48_000, Nanos::from_ms(settle_ms));
            let mut first: Option<(u64, u32)> = None;
            let mut next = 0u64;
            let mut ahead_max = 0i64; // frames the position ran ahead of the elapsed time
            for ms in 0..2000u64 {
                while arrival(next) <= at(ms * 1000) {
                    c.observe((next * 48) as u32, arrival(next));
                    next += 1;
                }
                if let Some(p) = c.rtp_now(at(ms * 1000)) {
                    let (ms0, p0) = *first.get_or_insert((ms, p));
                    let ahead = p.wrapping_sub(p0) as i32 as i64 - (ms - ms0) as i64 * 48;
                    ahead_max = ahead_max.max(ahead);
                }
            }
            let first_ms = first.expect("answers").0;
            if settle_ms == 0 {
                assert_eq!(first_ms, 120);
                assert!(ahead_max >= 110 * 48, "runs ahead {ahead_max} frames");
            } else {
                assert_eq!(first_ms, 620);
                assert!(ahead_max <= 48, "runs ahead {ahead_max} frames");
                // on the sender's timing once settled
                assert_eq!(c.rtp_now(at(1_999_000)), Some(1999 * 48));
            }
        }
    }

    #[test]
    fn unsynced_until_first_packet_and_after_reset() {
        let mut c = MonotonicMediaClock::new(48_000);
        assert_eq!(c.rtp_now(MonoNs::from_ns(5)), None);
        c.observe(1000, MonoNs::from_ns(1_000_000_000));
        assert_eq!(c.state(), ClockState::FreeRun);
        assert_eq!(c.rtp_now(MonoNs::from_ns(1_001_000_000)), Some(1048));
        c.reset();
        assert_eq!(c.state(), ClockState::Unsynced);
    }
}

/// A reading of a PTP clock, for the media clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtpReading {
    /// PTP time, ns since the PTP epoch (TAI, or ARB on some grandmasters).
    pub ptp_ns: i128,
    /// The PTP servo is locked to a master.
    pub locked: bool,
}

/// Something that tells the PTP time at a local monotonic instant: the PTP
/// module's clock handle implements this.
pub trait PtpTimeSource: Send + Sync {
    /// PTP time at local monotonic time `mono`; `None` before any master
    /// was seen, or while in holdover beyond its limit.
    fn ptp_time_at(&self, mono: MonoNs) -> Option<PtpReading>;
}

/// The AES67 media clock from PTP (RFC 7273 §5.2, AES67-2018 §8.4):
/// `rtp = (ptp_time × rate / 1e9 + mediaclk_offset) mod 2^32`.
///
/// When PTP is locked the output converges to that (synchronous playout:
/// every receiver plays each sample at the same PTP instant). When PTP is
/// absent it free-runs on the stream ([`MonotonicMediaClock`]). Moving
/// between the two is slewed at most `slew_ppm` (so frames are released a
/// little faster or slower, never skipped or repeated); a difference above
/// `max_slew_gap` frames is stepped, as a resynchronisation.
pub struct PtpMediaClock<S: PtpTimeSource> {
    src: std::sync::Arc<S>,
    rate: u32,
    offset: u32,
    free: MonotonicMediaClock,
    /// Current output: media clock position (frames, f64 for sub-sample
    /// slewing) at a monotonic time.
    out: Option<(MonoNs, f64)>,
    state: ClockState,
    /// Largest correction rate, parts per million of elapsed time.
    pub slew_ppm: f64,
    /// Largest difference (frames) that is slewed rather than stepped.
    pub max_slew_gap: f64,
}

impl<S: PtpTimeSource> PtpMediaClock<S> {
    /// A media clock at `rate` Hz with `mediaclk:direct=<offset>` (0 if the
    /// SDP gave none), reading PTP time from `src`.
    pub fn new(src: std::sync::Arc<S>, rate: u32, mediaclk_offset: u32) -> Self {
        PtpMediaClock {
            src,
            rate,
            offset: mediaclk_offset,
            free: MonotonicMediaClock::new(rate),
            out: None,
            state: ClockState::Unsynced,
            slew_ppm: 1000.0,
            max_slew_gap: rate as f64 * 0.05,
        }
    }

    fn ptp_rtp(&self, r: &PtpReading) -> f64 {
        let ticks = r.ptp_ns * self.rate as i128 / 1_000_000_000;
        let frac = (r.ptp_ns * self.rate as i128 % 1_000_000_000) as f64 / 1e9;
        ((ticks + self.offset as i128).rem_euclid(1 << 32)) as f64 + frac
    }
}

/// `a − b` on the 2^32 RTP circle, in (−2^31, 2^31].
fn circ_diff(a: f64, b: f64) -> f64 {
    let m = 4_294_967_296.0;
    let d = (a - b).rem_euclid(m);
    if d > m / 2.0 { d - m } else { d }
}

impl<S: PtpTimeSource> MediaClock for PtpMediaClock<S> {
    fn rtp_now(&mut self, now: MonoNs) -> Option<u32> {
        let was_ptp = matches!(self.state, ClockState::PtpLocked | ClockState::Holdover);
        let (target, state) = match self.src.ptp_time_at(now) {
            Some(r) if r.locked => (Some(self.ptp_rtp(&r)), ClockState::PtpLocked),
            // Holdover: the PTP clock runs on its last frequency.
            Some(r) if was_ptp => (Some(self.ptp_rtp(&r)), ClockState::Holdover),
            _ => {
                let f = self.free.rtp_now(now).map(|v| v as f64);
                (
                    f,
                    if f.is_some() {
                        ClockState::FreeRun
                    } else {
                        ClockState::Unsynced
                    },
                )
            }
        };
        let Some(target) = target else {
            self.state = ClockState::Unsynced;
            return self.out.map(|(_, v)| v as u32);
        };
        let next = match self.out {
            None => target,
            Some((t, v)) => {
                let dt = now.since(t).as_ns().max(0) as f64;
                let nominal = v + dt * self.rate as f64 / 1e9;
                let err = circ_diff(target, nominal);
                if err.abs() > self.max_slew_gap {
                    target
                } else {
                    let lim = dt * self.rate as f64 / 1e9 * self.slew_ppm * 1e-6;
                    nominal + err.clamp(-lim, lim)
                }
            }
        };
        let next = next.rem_euclid(4_294_967_296.0);
        self.out = Some((now, next));
        self.state = state;
        Some(next as u32)
    }

    fn observe(&mut self, rtp_ts: u32, arrival: MonoNs) {
        self.free.observe(rtp_ts, arrival);
    }

    fn reset(&mut self) {
        self.free.reset();
        self.out = None;
    }

    fn state(&self) -> ClockState {
        self.state
    }
}

#[cfg(test)]
mod ptp_tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// PTP time = monotonic + 1000 s, switchable lock.
    struct FakePtp(AtomicBool);
    impl PtpTimeSource for FakePtp {
        fn ptp_time_at(&self, mono: MonoNs) -> Option<PtpReading> {
            Some(PtpReading {
                ptp_ns: mono.as_ns() as i128 + 1_000_000_000_000,
                locked: self.0.load(Ordering::SeqCst),
            })
        }
    }

    #[test]
    fn locked_clock_follows_mediaclk_direct_exactly() {
        let src = Arc::new(FakePtp(AtomicBool::new(true)));
        let mut c = PtpMediaClock::new(src, 48_000, 142_410_716);
        let now = MonoNs::from_ns(5_000_000_000);
        let expect = (((now.as_ns() as i128 + 1_000_000_000_000) * 48_000 / 1_000_000_000
            + 142_410_716)
            % (1 << 32)) as u32;
        assert_eq!(c.rtp_now(now), Some(expect));
        assert_eq!(c.state(), ClockState::PtpLocked);
    }

    #[test]
    fn lock_and_unlock_are_slewed_never_stepped_and_frames_stay_monotone() {
        let src = Arc::new(FakePtp(AtomicBool::new(false)));
        let mut c = PtpMediaClock::new(src.clone(), 48_000, 0);
        // Free-run anchored on a stream whose RTP time is 20 ms (960 frames) behind PTP.
        let t0 = MonoNs::from_ns(1_000_000_000);
        let ptp0 = ((t0.as_ns() as i128 + 1_000_000_000_000) * 48 / 1_000_000) as u32;
        c.observe(ptp0.wrapping_sub(960), t0);
        let mut last = c.rtp_now(t0).unwrap();
        assert_eq!(c.state(), ClockState::FreeRun);
        src.0.store(true, Ordering::SeqCst);
        let mut max_step = 0i64;
        let mut locked_at = None;
        for ms in 1..=40_000u64 {
            let now = MonoNs::from_ns(t0.as_ns() + ms * 1_000_000);
            let v = c.rtp_now(now).unwrap();
            let step = v.wrapping_sub(last) as i32 as i64;
            assert!(step > 0, "media clock went backwards at {ms} ms");
            max_step = max_step.max(step);
            last = v;
            let ptp = ((now.as_ns() as i128 + 1_000_000_000_000) * 48 / 1_000_000) as u32;
            if locked_at.is_none() && v == ptp {
                locked_at = Some(ms);
            }
        }
        // 960 frames at 1000 ppm of slew take 20 s; no step above nominal + slew.
        assert!(max_step <= 49, "max step {max_step} frames per ms");
        let at = locked_at.expect("converged to PTP time");
        assert!((19_000..=21_000).contains(&at), "converged after {at} ms");
        // Unlock: holdover keeps following the PTP clock exactly.
        src.0.store(false, Ordering::SeqCst);
        let now = MonoNs::from_ns(t0.as_ns() + 40_001_000_000);
        let v = c.rtp_now(now).unwrap();
        assert_eq!(c.state(), ClockState::Holdover);
        assert_eq!(
            v,
            ((now.as_ns() as i128 + 1_000_000_000_000) * 48 / 1_000_000) as u32
        );
        assert_eq!(v.wrapping_sub(last), 48);
    }
}
