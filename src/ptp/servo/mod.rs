//! Clock servos: they turn (local receive time, master time) samples into a
//! [`ClockMap`] for the virtual PTP clock (the clock adjustment IEEE
//! 1588-2019 leaves to implementations, §11.1, Annex A; offsets in ns,
//! frequencies in ppb).
//!
//! The [`Servo`] trait holds the shared part; [`LinRegServo`]
//! (`servo/linreg.rs`) and [`PiServo`] (`servo/pi.rs`) are the estimators,
//! built by [`new_servo`] from [`ServoConfig::kind`].
//!
//! Two estimators share the generic step / outlier / holdover logic
//! (the split linuxptp's `servo.c` makes):
//! - [`ServoKind::LinReg`] (default): least-squares line through the last
//!   [`ServoConfig::window`] (4 s) of samples, giving offset and frequency at once.
//!   It has a usable frequency after two samples and locks after
//!   [`ServoConfig::lock_points`] samples spanning ≥ 0.5 s (≈ 1 s at 8 Sync/s).
//! - [`ServoKind::Pi`]: linuxptp's PI controller with its constants
//!   (`kp = min(kp_scale·s^-0.3, 0.7/s)`, `ki = min(ki_scale·s^0.4, 0.3/s)`,
//!   software scales 0.1 / 0.001, hardware 0.7 / 0.3), as the reference.
//!
//! Generic logic:
//! - **Outliers**: once ≥ 4 samples are in the window, a sample whose offset
//!   from the prediction exceeds `max(outlier_sigmas·σ, outlier_floor)` (σ =
//!   rms residual of the fit) is dropped and counted.
//! - **Steps** (non-zero [`ServoConfig::step_threshold`], default 100 µs): `step_after`
//!   (3) consecutive rejected samples beyond the threshold re-anchor the clock
//!   on the newest sample, keeping the frequency (state `jump`).
//!   `restart_after` (6) consecutive rejected samples below it restart the fit
//!   from those recent samples (a shift smaller than the step threshold).
//!   So after a master step or a grandmaster change, the servo is locked
//!   again within `step_after + lock_points` samples (≈ 1.2 s at 8 Sync/s).
//! - **Holdover**: [`Servo::enter_holdover`] keeps the map and its frequency;
//!   the next sample resumes (or steps, if the master moved).
//! - **Never stuck**: the only state without an estimate is before the first
//!   sample; every sample moves the servo toward lock, and no error counter
//!   latches.

use super::clock::{ClockMap, ServoState};
use super::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// Which estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServoKind {
    /// Windowed linear regression (default).
    #[default]
    LinReg,
    /// linuxptp's PI controller (reference).
    Pi,
    /// Adaptive two-state Kalman filter (`servo/kalman.rs`; `--servo kalman`).
    Kalman,
}

from_names!(ServoKind, "servo", {
    "lin-reg" => LinReg,
    "linreg" => LinReg,
    "pi" => Pi,
    "kalman" => Kalman,
});

/// Servo tuning. All durations in ns.
///
/// The servo is the clock-adjustment part IEEE 1588-2019 leaves to the
/// implementation (§11.1 and Annex A: it turns offsetFromMaster samples into a
/// frequency, ppb, and a phase, ns).
#[derive(Debug, Clone, Copy)]
pub struct ServoConfig {
    /// Estimator.
    pub kind: ServoKind,
    /// Offsets beyond this (consistently) step the clock, ns. Non-zero.
    pub step_threshold: Nanos,
    /// Consecutive beyond-threshold samples before a step.
    pub step_after: u32,
    /// Consecutive rejected (sub-threshold) samples before the fit restarts.
    pub restart_after: u32,
    /// Outlier threshold in residual sigmas (σ in ns).
    pub outlier_sigmas: f64,
    /// Outlier threshold floor, ns.
    pub outlier_floor: Nanos,
    /// Regression window length (time span), ns.
    pub window: Nanos,
    /// Samples (spanning ≥ 0.5 s) before `locked`.
    pub lock_points: usize,
    /// |offset| bound for `locked_stable` (with a full window), ns.
    pub stable_bound: Nanos,
    /// Sync interval, s (PI gains): 2^logSyncInterval.
    pub sync_interval_s: f64,
    /// Hardware timestamps (PI uses the hardware scales).
    pub hw_timestamps: bool,
    /// Frequency sanity limit, ppb (1 000 000 = 1000 ppm; linuxptp's
    /// `sanity_freq_limit`): a fit beyond it resets the servo (unlocked, the
    /// next sample re-anchors with frequency 0), counted in
    /// [`Servo::freq_resets`]. Zero disables the check.
    pub sanity_freq_limit: Ppb,
    /// Largest step (re-anchor) of a clock already anchored, ns; `None` = any
    /// (the default). Like linuxptp's `step_threshold` / `first_step_threshold`
    /// limits: a master whose time moves further is refused, not followed. The
    /// sample is rejected, the servo holds over on its last estimate, and the
    /// refusal is counted ([`Servo::steps_refused`]). The first anchor is never
    /// limited.
    pub max_step: Option<Nanos>,
}

impl Default for ServoConfig {
    fn default() -> Self {
        ServoConfig {
            kind: ServoKind::LinReg,
            step_threshold: Nanos::from_us(100),
            step_after: 3,
            restart_after: 6,
            outlier_sigmas: 6.0,
            outlier_floor: Nanos::from_us(3),
            window: Nanos::from_secs(4),
            lock_points: 6,
            stable_bound: Nanos::from_us(5),
            sync_interval_s: 0.125,
            hw_timestamps: false,
            sanity_freq_limit: Ppb::from_ppb(1_000_000.0),
            max_step: None,
        }
    }
}

mod kalman;
mod linreg;
mod pi;

pub use kalman::KalmanServo;
pub use linreg::LinRegServo;
pub use pi::PiServo;

/// What one sample did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOutcome {
    /// offsetFromMaster (IEEE 1588-2019 §11.2): our clock at the sample's
    /// local time minus the master time, before this update (ns).
    pub offset: Nanos,
    /// Whether the sample was used (false: rejected as an outlier).
    pub accepted: bool,
    /// Whether the clock was stepped (re-anchored) by this sample.
    pub stepped: bool,
    /// Servo state after the sample.
    pub state: ServoState,
}

impl SampleOutcome {
    /// A sample that stepped (re-anchored) the clock.
    fn stepped(offset: Nanos, state: ServoState) -> SampleOutcome {
        SampleOutcome {
            offset,
            accepted: true,
            stepped: true,
            state,
        }
    }
    /// A sample used by the estimator, without a step.
    fn accepted(offset: Nanos, state: ServoState) -> SampleOutcome {
        SampleOutcome {
            offset,
            accepted: true,
            stepped: false,
            state,
        }
    }
    /// A sample rejected (outlier, or a step candidate not yet confirmed).
    fn rejected(offset: Nanos, state: ServoState) -> SampleOutcome {
        SampleOutcome {
            offset,
            accepted: false,
            stepped: false,
            state,
        }
    }
}

/// The state every servo shares: the clock map, the state, step and outlier
/// bookkeeping. See the module doc.
#[derive(Debug)]
pub struct ServoCore {
    cfg: ServoConfig,
    map: Option<ClockMap>,
    state: ServoState,
    consecutive_bad: u32,
    outliers: u64,
    steps: u64,
    force_anchor: bool,
    freq_resets: u64,
    steps_refused: u64,
}

impl ServoCore {
    /// A new, unlocked core.
    pub fn new(cfg: ServoConfig) -> ServoCore {
        ServoCore {
            cfg,
            map: None,
            state: ServoState::Unlocked,
            consecutive_bad: 0,
            outliers: 0,
            steps: 0,
            force_anchor: false,
            freq_resets: 0,
            steps_refused: 0,
        }
    }
}

/// A clock servo: turns (local receive time, master time) samples into a
/// [`ClockMap`] (frequency in ppb, phase in ns) for the virtual PTP clock.
///
/// Implementations supply the estimator ([`Servo::estimate`]) and a few
/// hooks; anchoring, steps on the first sample, holdover and the
/// grandmaster-change reset are shared (the provided methods).
pub trait Servo: std::fmt::Debug + Send {
    /// The shared state.
    fn core(&self) -> &ServoCore;
    /// The shared state, mutable.
    fn core_mut(&mut self) -> &mut ServoCore;
    /// One sample of an anchored, not-unlocked servo; `offset` is
    /// offsetFromMaster (ns) under the current map.
    fn estimate(&mut self, local: LocalNs, master: PtpTimestamp, offset: Nanos) -> SampleOutcome;
    /// Hook: the clock was (re-)anchored on this sample; restart the
    /// estimator from it.
    fn restart_at(&mut self, local: LocalNs, master: PtpTimestamp);
    /// Hook: forget the fit but keep the frequency (new grandmaster).
    fn forget(&mut self);
    /// The frequency to free-run on in holdover (ppb), if the estimator has a
    /// better one than the current map's.
    fn holdover_freq(&self) -> Option<Ppb> {
        None
    }
    /// rms residual of the current fit, ns (0 for servos without a fit).
    fn sigma(&self) -> f64 {
        0.0
    }
    /// Hook: add `delta` to the master time of every sample the estimator
    /// holds (see [`Servo::shift_master`]). Servos that keep their estimate
    /// in the map alone need nothing.
    fn shift_samples(&mut self, _delta: Nanos) {}

    /// Feeds one sample: at local time `local` the master's time was
    /// `master` (t1 + correction + meanPathDelay, IEEE 1588-2019 §11.3).
    fn sample(&mut self, local: LocalNs, master: PtpTimestamp) -> SampleOutcome {
        let Some(map) = self.core().map else {
            return anchor(self, local, master, Nanos::ZERO);
        };
        let offset_i = map.to_ptp(local).as_nanos() - master.as_nanos();
        // Symmetric clamp: `abs` of the result can never overflow.
        let offset = Nanos::from_ns(offset_i.clamp(-(i64::MAX as i128), i64::MAX as i128) as i64);
        if std::mem::take(&mut self.core_mut().force_anchor)
            || self.core().state == ServoState::Unlocked
        {
            return anchor(self, local, master, offset);
        }
        let r = self.estimate(local, master, offset);
        let limit = self.core().cfg.sanity_freq_limit.as_ppb();
        if limit > 0.0
            && let Some(m) = self.core().map
            && m.freq.as_ppb().abs() >= limit
        {
            // linuxptp's sanity_freq_limit: a frequency this far off is a
            // broken estimate (or a hostile master); start over.
            self.forget();
            let c = self.core_mut();
            c.freq_resets += 1;
            c.consecutive_bad = 0;
            c.state = ServoState::Unlocked;
            c.map = Some(ClockMap {
                freq: Ppb::from_ppb(0.0),
                ..m
            });
            return SampleOutcome::rejected(r.offset, ServoState::Unlocked);
        }
        r
    }
    /// Resets caused by a frequency beyond
    /// [`ServoConfig::sanity_freq_limit`] so far.
    fn freq_resets(&self) -> u64 {
        self.core().freq_resets
    }
    /// The current map, `None` before the first sample (or seed).
    fn map(&self) -> Option<ClockMap> {
        self.core().map
    }
    /// State.
    fn state(&self) -> ServoState {
        self.core().state
    }
    /// Frequency estimate, ppb vs the local clock.
    fn freq(&self) -> Ppb {
        self.core().map.map(|m| m.freq).unwrap_or_default()
    }
    /// Samples rejected as outliers so far.
    fn outliers(&self) -> u64 {
        self.core().outliers
    }
    /// Steps (re-anchors) so far, the first included.
    fn steps(&self) -> u64 {
        self.core().steps
    }
    /// Steps refused so far: beyond [`ServoConfig::max_step`].
    fn steps_refused(&self) -> u64 {
        self.core().steps_refused
    }
    /// Config.
    fn config(&self) -> &ServoConfig {
        &self.core().cfg
    }
    /// Seeds the map (e.g. from `CLOCK_REALTIME` for a master with no
    /// reference) without claiming lock.
    fn seed(&mut self, map: ClockMap) {
        let c = self.core_mut();
        if c.map.is_none() {
            c.map = Some(map);
        }
    }
    /// Master lost (announceReceiptTimeout, IEEE 1588-2019 §9.2.6.12): keep
    /// the map and its frequency, report `holdover`.
    fn enter_holdover(&mut self) {
        let long = self.holdover_freq();
        let c = self.core_mut();
        if c.map.is_some() && c.state != ServoState::Unlocked && c.state != ServoState::Holdover {
            c.state = ServoState::Holdover;
            // Free-run on the long-term frequency (less noisy than the last
            // short-window fit); the map stays continuous at its reference point.
            if let (Some(m), Some(f)) = (c.map.as_mut(), long) {
                m.freq = f;
            }
        }
    }
    /// meanPathDelay was refined by `delta` (new − old, ns): every sample
    /// taken so far used the old value, so its master time (t1, plus
    /// correctionField and meanPathDelay, IEEE 1588-2019 §11.3) moves by
    /// `delta`, and so does the clock. Nothing happens before the first
    /// sample (a seeded map is no estimate).
    fn shift_master(&mut self, delta: Nanos) {
        if self.core().state == ServoState::Unlocked || delta == Nanos::ZERO {
            return;
        }
        self.shift_samples(delta);
        if let Some(m) = self.core_mut().map.as_mut() {
            m.ref_ptp = PtpTimestamp::from_nanos(m.ref_ptp.as_nanos() + delta.as_ns() as i128);
        }
    }
    /// New master (grandmaster change): forget the fit, keep the frequency;
    /// the next sample re-anchors the clock.
    fn reset_keep_freq(&mut self) {
        self.forget();
        let c = self.core_mut();
        c.consecutive_bad = 0;
        if c.map.is_some() {
            c.state = ServoState::Jump;
        }
        c.force_anchor = true;
    }
}

/// The servo of `cfg.kind`.
pub fn new_servo(cfg: ServoConfig) -> Box<dyn Servo> {
    match cfg.kind {
        ServoKind::LinReg => Box::new(LinRegServo::new(cfg)),
        ServoKind::Pi => Box::new(PiServo::new(cfg)),
        ServoKind::Kalman => Box::new(KalmanServo::new(cfg)),
    }
}

/// Re-anchors the clock on this sample, keeping the frequency (a step).
fn anchor<S: Servo + ?Sized>(
    s: &mut S,
    local: LocalNs,
    master: PtpTimestamp,
    offset: Nanos,
) -> SampleOutcome {
    let c = s.core_mut();
    if c.map.is_some() && c.cfg.max_step.is_some_and(|m| offset.abs() > m) {
        // Beyond the step limit: never followed. Hold over on the last estimate.
        c.steps_refused += 1;
        if c.state.usable() {
            c.state = ServoState::Holdover;
        }
        return SampleOutcome::rejected(offset, c.state);
    }
    // The frequency is kept only from a servo that had converged (locked or in
    // holdover): a master step then costs no relearning. One that re-anchors
    // before it ever locked again has no frequency worth keeping: an estimate
    // from its first few samples can be off by ~170 ppm when one software
    // stamp is 20 µs late, and keeping it re-anchors forever (seen on a bridge:
    // 46 steps in 40 s, `freq_ppb` −168755, never locked).
    let freq = if c.state.usable() {
        c.map.map(|m| m.freq).unwrap_or_default()
    } else {
        Ppb::ZERO
    };
    c.map = Some(ClockMap {
        ref_local: local,
        ref_ptp: master,
        freq,
    });
    c.consecutive_bad = 0;
    c.state = ServoState::Jump;
    c.steps += 1;
    s.restart_at(local, master);
    SampleOutcome::stepped(offset, ServoState::Jump)
}

/// Test helpers shared by the servo tests: a master at `ppb` vs our local
/// clock, sampled every 125 ms.
#[cfg(test)]
mod test_util {
    use super::*;

    /// Sample `i` (125 ms apart): local time and the master's time for a
    /// master running `ppb` fast vs our clock, plus `extra` ns of offset.
    pub(super) fn sample_at(i: i64, ppb: f64, extra: i64) -> (LocalNs, PtpTimestamp) {
        let local = 1_000_000_000 + i * 125_000_000;
        let master = 5_000_000_000_000i128
            + (local as f64 * (1.0 + ppb * 1e-9)).round() as i128
            + extra as i128;
        (LocalNs::from_ns(local), PtpTimestamp::from_nanos(master))
    }

    /// A new servo of `kind` with the default tuning.
    pub(super) fn servo(kind: ServoKind) -> Box<dyn Servo> {
        new_servo(ServoConfig {
            kind,
            ..ServoConfig::default()
        })
    }

    /// Feeds `n` samples from `from`; returns the last outcome.
    pub(super) fn feed(
        s: &mut dyn Servo,
        from: i64,
        n: i64,
        ppb: f64,
        extra: i64,
    ) -> SampleOutcome {
        let mut last = None;
        for i in from..from + n {
            let (l, m) = sample_at(i, ppb, extra);
            last = Some(s.sample(l, m));
        }
        last.expect("n > 0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_servo_picks_the_kind_and_parses_names() {
        let pi = ServoConfig {
            kind: ServoKind::Pi,
            ..ServoConfig::default()
        };
        assert_eq!(new_servo(pi).config().kind, ServoKind::Pi);
        assert_eq!(
            new_servo(ServoConfig::default()).config().kind,
            ServoKind::LinReg
        );
        assert_eq!("lin-reg".parse::<ServoKind>(), Ok(ServoKind::LinReg));
        assert_eq!("pi".parse::<ServoKind>(), Ok(ServoKind::Pi));
        assert!("x".parse::<ServoKind>().is_err());
    }

    /// `shift_master(Δ)` after 8 samples is the same as having had every
    /// sample Δ later (a refined meanPathDelay): the map agrees to 1 ns with
    /// a servo fed the shifted samples throughout, for all three servos.
    /// Without the shift the two differ (the servo takes Δ for the master's).
    #[test]
    fn a_shift_of_the_master_times_moves_the_held_samples_too() {
        let delta = 3_000i64;
        let noise = |i: i64| (i * 7919) % 2001 - 1000;
        for kind in [ServoKind::LinReg, ServoKind::Pi, ServoKind::Kalman] {
            let cfg = ServoConfig {
                kind,
                ..ServoConfig::default()
            };
            let mut a = new_servo(cfg);
            let mut b = new_servo(cfg);
            let mut c = new_servo(cfg);
            for i in 0..40 {
                let (l, m) = test_util::sample_at(i, 20.0, delta + noise(i));
                a.sample(l, m);
                if i == 8 {
                    b.shift_master(Nanos::from_ns(delta));
                }
                let (l0, m0) = test_util::sample_at(i, 20.0, noise(i));
                let (lb, mb) = if i < 8 { (l0, m0) } else { (l, m) };
                b.sample(lb, mb);
                c.sample(lb, mb);
            }
            let at = test_util::sample_at(40, 0.0, 0).0;
            let t = |s: &dyn Servo| s.map().expect("map").to_ptp(at).as_nanos();
            let (ta, tb, tc) = (t(a.as_ref()), t(b.as_ref()), t(c.as_ref()));
            assert!(
                (ta - tb).abs() <= 1,
                "{kind:?}: shifted {tb} vs fed shifted {ta}"
            );
            assert_eq!(a.state(), b.state(), "{kind:?}");
            assert!(
                (ta - tc).abs() >= 100,
                "{kind:?}: without the shift {tc} vs {ta}"
            );
        }
    }

    /// A servo that re-anchors before it ever locked does not keep the
    /// frequency of its first samples: here the master starts 169 ppm fast for
    /// half a second (what one late software stamp does to a two-sample
    /// estimate), then runs at our rate. Every servo locks on the true rate.
    #[test]
    fn a_frequency_from_before_any_lock_is_not_kept() {
        for kind in [ServoKind::LinReg, ServoKind::Pi, ServoKind::Kalman] {
            let mut s = test_util::servo(kind);
            test_util::feed(s.as_mut(), 0, 3, -169_000.0, 0);
            let r = test_util::feed(s.as_mut(), 3, 160, 0.0, 0);
            assert!(
                r.state.usable() && s.freq().as_ppb().abs() < 1_000.0,
                "{kind:?}: {r:?}, freq {:?}, steps {}",
                s.freq(),
                s.steps()
            );
        }
    }

    /// A master whose time jumps 10 ms: followed (a step) by default; with
    /// `max_step` 1 ms refused, counted, held over, never stepped, for both
    /// servos. The first anchor is never limited.
    #[test]
    fn max_step_refuses_a_larger_jump() {
        for kind in [ServoKind::LinReg, ServoKind::Pi, ServoKind::Kalman] {
            for max_step in [None, Some(Nanos::from_ms(1))] {
                let mut s = new_servo(ServoConfig {
                    kind,
                    max_step,
                    ..ServoConfig::default()
                });
                test_util::feed(s.as_mut(), 0, 40, 20.0, 0);
                assert_eq!(s.steps(), 1, "{kind:?}: the first anchor");
                assert!(s.state().usable(), "{kind:?}");
                let r = test_util::feed(s.as_mut(), 40, 20, 20.0, 10_000_000);
                match max_step {
                    None => {
                        assert_eq!((s.steps(), s.steps_refused()), (2, 0), "{kind:?}");
                        assert!(r.offset.abs() < Nanos::from_us(10), "{kind:?} {r:?}");
                    }
                    Some(_) => {
                        assert_eq!(s.steps(), 1, "{kind:?}: stepped");
                        assert!(s.steps_refused() >= 5, "{kind:?}: {}", s.steps_refused());
                        assert_eq!(s.state(), ServoState::Holdover, "{kind:?}");
                        assert!(!r.accepted, "{kind:?} {r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn seed_and_first_sample_anchor() {
        for kind in [ServoKind::LinReg, ServoKind::Pi, ServoKind::Kalman] {
            let mut s = test_util::servo(kind);
            assert_eq!(s.state(), ServoState::Unlocked);
            s.seed(ClockMap::new(
                LocalNs::from_ns(0),
                PtpTimestamp::from_nanos(0),
            ));
            assert_eq!(s.state(), ServoState::Unlocked);
            let (l, m) = test_util::sample_at(0, 0.0, 0);
            let r = s.sample(l, m);
            assert!(r.stepped && r.accepted);
            assert_eq!(r.state, ServoState::Jump);
            assert_eq!(s.steps(), 1);
            assert_eq!(s.map().unwrap().to_ptp(l), m);
            // Holdover needs a non-unlocked state; reset re-anchors next time.
            s.enter_holdover();
            assert_eq!(s.state(), ServoState::Holdover);
            s.reset_keep_freq();
            assert_eq!(s.state(), ServoState::Jump);
            let (l, m) = test_util::sample_at(1, 0.0, 1_000_000);
            assert!(s.sample(l, m).stepped);
            assert_eq!(s.steps(), 2);
        }
    }

    /// A master 2000 ppm off (beyond the 1000 ppm sanity limit) resets the
    /// servo instead of being followed; the frequency never exceeds the limit.
    #[test]
    fn frequency_beyond_sanity_limit_resets_the_servo() {
        for kind in [ServoKind::LinReg, ServoKind::Pi, ServoKind::Kalman] {
            let mut s = test_util::servo(kind);
            for i in 0..40 {
                let (l, m) = test_util::sample_at(i, 2_000_000.0, 0);
                let _ = s.sample(l, m);
                assert!(
                    s.freq().as_ppb().abs() < 1_000_000.0,
                    "{kind:?} {:?}",
                    s.freq()
                );
                assert!(!s.state().usable(), "{kind:?} {:?}", s.state());
            }
            // (PI steps on the 250 µs/sample offsets before its frequency
            // gets there; the linear fit sees the 2000 ppm at once.)
            if kind == ServoKind::LinReg {
                assert!(s.freq_resets() > 0);
            }
            // A sane master still locks.
            let mut s = test_util::servo(kind);
            test_util::feed(&mut *s, 0, 40, 500_000.0, 0);
            assert_eq!(s.freq_resets(), 0);
        }
    }
}
