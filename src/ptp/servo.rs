//! Clock servos: they turn (local receive time, master time) samples into a
//! [`ClockMap`] for the virtual PTP clock.
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

use std::collections::VecDeque;

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
}

impl std::str::FromStr for ServoKind {
    type Err = String;
    /// Parses the command-line name (lin-reg, linreg, pi).
    fn from_str(s: &str) -> Result<ServoKind, String> {
        match s {
            "lin-reg" => Ok(ServoKind::LinReg),
            "linreg" => Ok(ServoKind::LinReg),
            "pi" => Ok(ServoKind::Pi),
            _ => Err(format!("servo {s:?}: expected one of lin-reg, linreg, pi")),
        }
    }
}

/// Servo tuning. All durations in ns.
#[derive(Debug, Clone, Copy)]
pub struct ServoConfig {
    /// Estimator.
    pub kind: ServoKind,
    /// Offsets beyond this (consistently) step the clock. Non-zero.
    pub step_threshold: Nanos,
    /// Consecutive beyond-threshold samples before a step.
    pub step_after: u32,
    /// Consecutive rejected (sub-threshold) samples before the fit restarts.
    pub restart_after: u32,
    /// Outlier threshold in residual sigmas.
    pub outlier_sigmas: f64,
    /// Outlier threshold floor.
    pub outlier_floor: Nanos,
    /// Regression window length (time span).
    pub window: Nanos,
    /// Samples (spanning ≥ 0.5 s) before `locked`.
    pub lock_points: usize,
    /// |offset| bound for `locked_stable` (with a full window).
    pub stable_bound: Nanos,
    /// Sync interval, s (PI gains).
    pub sync_interval_s: f64,
    /// Hardware timestamps (PI uses the hardware scales).
    pub hw_timestamps: bool,
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
        }
    }
}

/// What one sample did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOutcome {
    /// offsetFromMaster: our clock at the sample's local time minus the
    /// master time, before this update (ns).
    pub offset: Nanos,
    /// Whether the sample was used (false: rejected as an outlier).
    pub accepted: bool,
    /// Whether the clock was stepped (re-anchored) by this sample.
    pub stepped: bool,
    /// Servo state after the sample.
    pub state: ServoState,
}

/// The servo. See the module doc.
#[derive(Debug)]
pub struct Servo {
    cfg: ServoConfig,
    map: Option<ClockMap>,
    state: ServoState,
    window: VecDeque<(i64, i128)>,
    rejected: VecDeque<(i64, i128)>,
    consecutive_bad: u32,
    sigma: f64,
    have_freq: bool,
    outliers: u64,
    steps: u64,
    // PI state
    pi_count: u32,
    pi_first: Option<(i64, i64)>,
    pi_drift: f64,
    force_anchor: bool,
    /// Long-term frequency (running mean, then EMA, of the fits; see `fit`), ppb,
    /// used for holdover.
    long_freq: Option<f64>,
    long_n: u32,
}

impl Servo {
    /// A new, unlocked servo.
    pub fn new(cfg: ServoConfig) -> Servo {
        Servo {
            cfg,
            map: None,
            state: ServoState::Unlocked,
            window: VecDeque::new(),
            rejected: VecDeque::new(),
            consecutive_bad: 0,
            sigma: 0.0,
            have_freq: false,
            outliers: 0,
            steps: 0,
            pi_count: 0,
            pi_first: None,
            pi_drift: 0.0,
            force_anchor: false,
            long_freq: None,
            long_n: 0,
        }
    }

    /// The current map, `None` before the first sample (or seed).
    pub fn map(&self) -> Option<ClockMap> {
        self.map
    }
    /// State.
    pub fn state(&self) -> ServoState {
        self.state
    }
    /// Frequency estimate, ppb vs the local clock.
    pub fn freq(&self) -> Ppb {
        self.map.map(|m| m.freq).unwrap_or_default()
    }
    /// Samples rejected as outliers so far.
    pub fn outliers(&self) -> u64 {
        self.outliers
    }
    /// Steps (re-anchors) so far, the first included.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    /// rms residual of the current fit, ns.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
    /// Config.
    pub fn config(&self) -> &ServoConfig {
        &self.cfg
    }

    /// Seeds the map (e.g. from `CLOCK_REALTIME` for a master with no
    /// reference) without claiming lock.
    pub fn seed(&mut self, map: ClockMap) {
        if self.map.is_none() {
            self.map = Some(map);
        }
    }

    /// Master lost: keep the map and its frequency, report `holdover`.
    pub fn enter_holdover(&mut self) {
        if self.map.is_some()
            && self.state != ServoState::Unlocked
            && self.state != ServoState::Holdover
        {
            self.state = ServoState::Holdover;
            // Free-run on the long-term frequency (less noisy than the last
            // short-window fit); the map stays continuous at its reference point.
            if let (Some(m), Some(f)) = (self.map.as_mut(), self.long_freq) {
                m.freq = Ppb(f);
            }
        }
    }

    /// New master (grandmaster change): forget the fit, keep the frequency;
    /// the next sample re-anchors the clock.
    pub fn reset_keep_freq(&mut self) {
        self.window.clear();
        self.rejected.clear();
        self.consecutive_bad = 0;
        self.pi_count = 0;
        self.pi_first = None;
        self.pi_drift = self.freq().0;
        if self.map.is_some() {
            self.state = ServoState::Jump;
        }
        self.force_anchor = true;
    }

    /// Feeds one sample: at local time `local` the master's time was
    /// `master` (t1 + correction + meanPathDelay).
    pub fn sample(&mut self, local: LocalNs, master: PtpTimestamp) -> SampleOutcome {
        let Some(map) = self.map else {
            return self.anchor(local, master, Nanos::ZERO);
        };
        let offset_i = map.to_ptp(local).0 - master.0;
        let offset = Nanos(offset_i.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
        if std::mem::take(&mut self.force_anchor) || self.state == ServoState::Unlocked {
            return self.anchor(local, master, offset);
        }
        match self.cfg.kind {
            ServoKind::LinReg => self.sample_linreg(local, master, offset),
            ServoKind::Pi => self.sample_pi(local, master, offset),
        }
    }

    fn anchor(&mut self, local: LocalNs, master: PtpTimestamp, offset: Nanos) -> SampleOutcome {
        let freq = self.map.map(|m| m.freq).unwrap_or_default();
        self.map = Some(ClockMap {
            ref_local: local,
            ref_ptp: master,
            freq,
        });
        self.window.clear();
        self.rejected.clear();
        self.window.push_back((local.0, master.0));
        self.consecutive_bad = 0;
        self.state = ServoState::Jump;
        self.steps += 1;
        self.pi_count = 1;
        self.pi_first = Some((local.0, 0));
        SampleOutcome {
            offset,
            accepted: true,
            stepped: true,
            state: self.state,
        }
    }

    fn threshold(&self) -> f64 {
        (self.cfg.outlier_sigmas * self.sigma).max(self.cfg.outlier_floor.0 as f64)
    }

    fn sample_linreg(
        &mut self,
        local: LocalNs,
        master: PtpTimestamp,
        offset: Nanos,
    ) -> SampleOutcome {
        let resumed = self.state == ServoState::Holdover;
        // Evict points older than the window.
        while let Some(&(x, _)) = self.window.front() {
            if local.0 - x > self.cfg.window.0 {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let judged = self.window.len() >= 4 || resumed || self.have_freq;
        let bad = judged && (offset.0.abs() as f64) > self.threshold();
        if bad {
            self.outliers += 1;
            self.consecutive_bad += 1;
            self.rejected.push_back((local.0, master.0));
            while self.rejected.len() > self.cfg.restart_after as usize {
                self.rejected.pop_front();
            }
            // Consistent large offsets: a step of the master (or our holdover
            // drifted too far): re-anchor, keep the frequency.
            if offset.abs() > self.cfg.step_threshold && self.consecutive_bad >= self.cfg.step_after
            {
                return self.anchor(local, master, offset);
            }
            if self.consecutive_bad >= self.cfg.restart_after {
                // A smaller shift: restart the fit on the recent samples.
                self.window = std::mem::take(&mut self.rejected);
                self.consecutive_bad = 0;
                self.steps += 1;
                self.fit();
                self.state = ServoState::Jump;
                return SampleOutcome {
                    offset,
                    accepted: true,
                    stepped: true,
                    state: self.state,
                };
            }
            if resumed {
                self.state = ServoState::Holdover;
            }
            return SampleOutcome {
                offset,
                accepted: false,
                stepped: false,
                state: self.state,
            };
        }
        self.consecutive_bad = 0;
        self.rejected.clear();
        self.window.push_back((local.0, master.0));
        self.fit();
        let n = self.window.len();
        let span = self.window.back().map(|b| b.0).unwrap_or(0)
            - self.window.front().map(|f| f.0).unwrap_or(0);
        self.state = if resumed {
            ServoState::Locked
        } else if n >= self.cfg.lock_points && span >= 500_000_000 {
            if span as f64 >= 0.9 * self.cfg.window.0 as f64 && offset.abs() < self.cfg.stable_bound
            {
                ServoState::LockedStable
            } else {
                ServoState::Locked
            }
        } else if self.state.usable() {
            ServoState::Locked
        } else {
            ServoState::Jump
        };
        SampleOutcome {
            offset,
            accepted: true,
            stepped: false,
            state: self.state,
        }
    }

    /// Least squares of (master − local) against local over the window;
    /// re-anchors the map at the newest point.
    fn fit(&mut self) {
        let Some(&(xl, yl)) = self.window.back() else {
            return;
        };
        let prior = self.map.map(|m| m.freq.0).unwrap_or(0.0);
        let n = self.window.len() as f64;
        let span = (xl - self.window.front().map(|f| f.0).unwrap_or(xl)) as f64;
        // Residuals relative to the newest point: dx (ns), dy = (y−x) − (yl−xl) (ns).
        let pts = self.window.iter().map(|&(x, y)| {
            let dx = (x - xl) as f64;
            let dy = ((y - x as i128) - (yl - xl as i128)) as f64;
            (dx, dy)
        });
        let (b, a) = if n >= 2.0 && (span >= 1e9 || !self.have_freq) && span > 0.0 {
            let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
            for (dx, dy) in pts.clone() {
                sx += dx;
                sy += dy;
                sxx += dx * dx;
                sxy += dx * dy;
            }
            let den = n * sxx - sx * sx;
            if den.abs() < 1e-9 {
                (prior * 1e-9, sy / n - prior * 1e-9 * sx / n)
            } else {
                let b = (n * sxy - sx * sy) / den;
                (b, (sy - b * sx) / n)
            }
        } else {
            // Too short for a good frequency: keep the prior one, fit the offset.
            let b = prior * 1e-9;
            let a = pts.clone().map(|(dx, dy)| dy - b * dx).sum::<f64>() / n;
            (b, a)
        };
        if n >= 2.0 && span > 0.0 {
            self.have_freq = true;
        }
        // Intercept as the median residual, not the mean: software-timestamp
        // delays are skewed (queueing only ever adds), and the median keeps
        // the offset consistent with the median-filtered meanPathDelay.
        let a = if n >= 5.0 {
            let mut r: Vec<f64> = pts.clone().map(|(dx, dy)| dy - b * dx).collect();
            r.sort_by(|x, y| x.total_cmp(y));
            r[r.len() / 2]
        } else {
            a
        };
        let mut ss = 0.0;
        for (dx, dy) in pts {
            let r = dy - (a + b * dx);
            ss += r * r;
        }
        self.sigma = if n > 2.0 {
            (ss / (n - 2.0)).sqrt()
        } else {
            self.sigma
        };
        let freq = Ppb((b * 1e9).clamp(-1e6, 1e6));
        // Long-term frequency for holdover: EMA over ~256 fits (32 s at 8 Sync/s),
        // restarted when far off (new master, or still converging).
        // (a running mean for the first 256, so early fits do not linger).
        if span >= 1e9 {
            self.long_freq = Some(match self.long_freq {
                Some(lf) if (lf - freq.0).abs() < 2_000.0 => {
                    self.long_n = (self.long_n + 1).min(256);
                    lf + (freq.0 - lf) / self.long_n as f64
                }
                _ => {
                    self.long_n = 1;
                    freq.0
                }
            });
        }
        self.map = Some(ClockMap {
            ref_local: LocalNs(xl),
            ref_ptp: PtpTimestamp(yl + a.round() as i128),
            freq,
        });
    }

    fn pi_gains(&self) -> (f64, f64) {
        let s = self.cfg.sync_interval_s.max(1e-3);
        let (kps, kis) = if self.cfg.hw_timestamps {
            (0.7, 0.3)
        } else {
            (0.1, 0.001)
        };
        (
            (kps * s.powf(-0.3)).min(0.7 / s),
            (kis * s.powf(0.4)).min(0.3 / s),
        )
    }

    fn sample_pi(&mut self, local: LocalNs, master: PtpTimestamp, offset: Nanos) -> SampleOutcome {
        let map = self.map.expect("anchored");
        // Steps: same rule as linreg, without outlier rejection (linuxptp has none).
        if offset.abs() > self.cfg.step_threshold {
            self.consecutive_bad += 1;
            if self.consecutive_bad >= self.cfg.step_after {
                return self.anchor(local, master, offset);
            }
            return SampleOutcome {
                offset,
                accepted: false,
                stepped: false,
                state: self.state,
            };
        }
        self.consecutive_bad = 0;
        let resumed = self.state == ServoState::Holdover;
        self.pi_count += 1;
        if self.pi_count == 2 && !resumed {
            // linuxptp pi.c case 1: frequency from the first two samples, then step.
            let (x0, _) = self.pi_first.unwrap_or((local.0, 0));
            let dt = (local.0 - x0) as f64;
            if dt > 0.0 {
                let f = map.freq.0 - offset.0 as f64 / dt * 1e9;
                self.pi_drift = f;
                self.map = Some(ClockMap {
                    ref_local: local,
                    ref_ptp: master,
                    freq: Ppb(f.clamp(-1e6, 1e6)),
                });
            }
            self.state = ServoState::Jump;
            return SampleOutcome {
                offset,
                accepted: true,
                stepped: true,
                state: self.state,
            };
        }
        let (kp, ki) = self.pi_gains();
        // offset > 0 means we are ahead: slow down (integral, then proportional).
        self.pi_drift -= ki * offset.0 as f64;
        let freq = (self.pi_drift - kp * offset.0 as f64).clamp(-1e6, 1e6);
        self.map = Some(ClockMap {
            freq: Ppb(freq),
            ..map.rebased(local)
        });
        self.state = if offset.abs() < self.cfg.stable_bound && self.pi_count > 20 {
            ServoState::LockedStable
        } else {
            ServoState::Locked
        };
        SampleOutcome {
            offset,
            accepted: true,
            stepped: false,
            state: self.state,
        }
    }
}
