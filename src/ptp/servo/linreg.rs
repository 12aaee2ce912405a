//! The linear-regression servo ([`super::ServoKind::LinReg`], the default):
//! a least-squares line through the last [`ServoConfig::window`] of samples
//! gives frequency (ppb) and offset (ns) at once, with outlier rejection and
//! a fit restart on a sub-step shift. See the [`super`] module doc.

use std::collections::VecDeque;

use super::{SampleOutcome, Servo, ServoConfig, ServoCore, anchor};
use crate::ptp::clock::{ClockMap, ServoState};
use crate::ptp::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// Most samples in the window (and among the rejected): 8 s at 128 Sync/s
/// (logSyncInterval −7). Whatever the Sync rate, a window costs at most this
/// much memory and time per sample.
pub(crate) const MAX_WINDOW_SAMPLES: usize = 1024;

/// Windowed linear regression. See the [`super`] module doc.
#[derive(Debug)]
pub struct LinRegServo {
    core: ServoCore,
    /// (local ns, master ns) samples in the window.
    window: VecDeque<(i64, i128)>,
    /// The recent rejected samples (a restart refits on them).
    rejected: VecDeque<(i64, i128)>,
    /// rms residual of the fit, ns.
    sigma: f64,
    have_freq: bool,
    /// Long-term frequency (running mean, then EMA, of the fits; see `fit`), ppb,
    /// used for holdover.
    long_freq: Option<f64>,
    long_n: u32,
    /// Residuals for the median, reused: no allocation per sample.
    scratch: Vec<f64>,
}

impl LinRegServo {
    /// A new, unlocked servo.
    pub fn new(cfg: ServoConfig) -> LinRegServo {
        LinRegServo {
            core: ServoCore::new(cfg),
            window: VecDeque::with_capacity(MAX_WINDOW_SAMPLES + 1),
            rejected: VecDeque::with_capacity(MAX_WINDOW_SAMPLES + 1),
            sigma: 0.0,
            have_freq: false,
            long_freq: None,
            long_n: 0,
            scratch: Vec::with_capacity(MAX_WINDOW_SAMPLES + 1),
        }
    }

    /// Outlier threshold, ns: `max(outlier_sigmas·σ, outlier_floor)`.
    fn threshold(&self) -> f64 {
        (self.core.cfg.outlier_sigmas * self.sigma).max(self.core.cfg.outlier_floor.as_ns() as f64)
    }

    /// Least squares of (master − local) against local over the window;
    /// re-anchors the map at the newest point.
    fn fit(&mut self) {
        let Some(&(xl, yl)) = self.window.back() else {
            return;
        };
        let prior = self.core.map.map(|m| m.freq.as_ppb()).unwrap_or(0.0);
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
            let r = &mut self.scratch;
            r.clear();
            r.extend(pts.clone().map(|(dx, dy)| dy - b * dx));
            let mid = r.len() / 2;
            *r.select_nth_unstable_by(mid, |x, y| x.total_cmp(y)).1
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
        let freq = Ppb::from_ppb((b * 1e9).clamp(-1e6, 1e6));
        // Long-term frequency for holdover: EMA over ~256 fits (32 s at 8 Sync/s),
        // restarted when far off (new master, or still converging).
        // (a running mean for the first 256, so early fits do not linger).
        if span >= 1e9 {
            self.long_freq = Some(match self.long_freq {
                Some(lf) if (lf - freq.as_ppb()).abs() < 2_000.0 => {
                    self.long_n = (self.long_n + 1).min(256);
                    lf + (freq.as_ppb() - lf) / self.long_n as f64
                }
                _ => {
                    self.long_n = 1;
                    freq.as_ppb()
                }
            });
        }
        self.core.map = Some(ClockMap {
            ref_local: LocalNs::from_ns(xl),
            ref_ptp: PtpTimestamp::from_nanos(yl + a.round() as i128),
            freq,
        });
    }
}

impl Servo for LinRegServo {
    fn core(&self) -> &ServoCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut ServoCore {
        &mut self.core
    }
    fn restart_at(&mut self, local: LocalNs, master: PtpTimestamp) {
        self.window.clear();
        self.rejected.clear();
        self.window.push_back((local.as_ns(), master.as_nanos()));
    }
    fn forget(&mut self) {
        self.window.clear();
        self.rejected.clear();
    }
    fn holdover_freq(&self) -> Option<Ppb> {
        self.long_freq.map(Ppb::from_ppb)
    }
    fn shift_samples(&mut self, delta: Nanos) {
        let d = delta.as_ns() as i128;
        for s in self.window.iter_mut().chain(self.rejected.iter_mut()) {
            s.1 += d;
        }
    }
    fn sigma(&self) -> f64 {
        self.sigma
    }

    fn estimate(&mut self, local: LocalNs, master: PtpTimestamp, offset: Nanos) -> SampleOutcome {
        let cfg = self.core.cfg;
        let resumed = self.core.state == ServoState::Holdover;
        // Evict points older than the window, and beyond its sample bound.
        while let Some(&(x, _)) = self.window.front() {
            if local.as_ns() - x > cfg.window.as_ns() || self.window.len() >= MAX_WINDOW_SAMPLES {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let judged = self.window.len() >= 4 || resumed || self.have_freq;
        let bad = judged && (offset.as_ns().unsigned_abs() as f64) > self.threshold();
        if bad {
            self.core.outliers += 1;
            self.core.consecutive_bad += 1;
            self.rejected.push_back((local.as_ns(), master.as_nanos()));
            while self.rejected.len() > (cfg.restart_after as usize).min(MAX_WINDOW_SAMPLES) {
                self.rejected.pop_front();
            }
            // Consistent large offsets: a step of the master (or our holdover
            // drifted too far): re-anchor, keep the frequency.
            if offset.abs() > cfg.step_threshold && self.core.consecutive_bad >= cfg.step_after {
                return anchor(self, local, master, offset);
            }
            if self.core.consecutive_bad >= cfg.restart_after {
                // A smaller shift: restart the fit on the recent samples.
                // Swap the buffers (both keep their capacity: no allocation).
                std::mem::swap(&mut self.window, &mut self.rejected);
                self.rejected.clear();
                self.core.consecutive_bad = 0;
                self.core.steps += 1;
                self.fit();
                self.core.state = ServoState::Jump;
                return SampleOutcome::stepped(offset, self.core.state);
            }
            if resumed {
                self.core.state = ServoState::Holdover;
            }
            return SampleOutcome::rejected(offset, self.core.state);
        }
        self.core.consecutive_bad = 0;
        self.rejected.clear();
        self.window.push_back((local.as_ns(), master.as_nanos()));
        self.fit();
        let n = self.window.len();
        let span = self.window.back().map(|b| b.0).unwrap_or(0)
            - self.window.front().map(|f| f.0).unwrap_or(0);
        self.core.state = if resumed {
            ServoState::Locked
        } else if n >= cfg.lock_points && span >= 500_000_000 {
            if span as f64 >= 0.9 * cfg.window.as_ns() as f64 && offset.abs() < cfg.stable_bound {
                ServoState::LockedStable
            } else {
                ServoState::Locked
            }
        } else if self.core.state.usable() {
            ServoState::Locked
        } else {
            ServoState::Jump
        };
        SampleOutcome::accepted(offset, self.core.state)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{feed, sample_at};
    use super::*;

    fn servo() -> LinRegServo {
        LinRegServo::new(ServoConfig::default())
    }

    #[test]
    fn locks_on_plus_100_ppm_within_lock_points() {
        let mut s = servo();
        // lock_points (6) samples spanning ≥ 0.5 s (the anchor included).
        let r = feed(&mut s, 0, 5, 100_000.0, 0);
        assert_eq!(r.state, ServoState::Jump, "{r:?}");
        let r = feed(&mut s, 5, 1, 100_000.0, 0);
        assert_eq!(r.state, ServoState::Locked, "{r:?}");
        assert!(
            (s.freq().as_ppb() - 100_000.0).abs() < 1.0,
            "{:?}",
            s.freq()
        );
        // A full window with small offsets: locked_stable.
        let r = feed(&mut s, 6, 40, 100_000.0, 0);
        assert_eq!(r.state, ServoState::LockedStable);
        assert!(r.offset.abs() < Nanos::from_ns(5), "{r:?}");
        assert_eq!(s.steps(), 1);
    }

    /// A flood of samples (10 000 within 1 s, far above any Sync rate) keeps
    /// the window at [`MAX_WINDOW_SAMPLES`] (then 0.1 s long, too short to
    /// call the fit locked) and the servo on the line.
    #[test]
    fn window_is_bounded_in_samples_not_only_in_time() {
        let mut s = servo();
        let mut last = None;
        for i in 0..10_000i64 {
            let local = 1_000_000_000 + i * 100_000;
            let master = 5_000_000_000_000i128 + (local as f64 * (1.0 + 50e-9)).round() as i128;
            last = Some(s.sample(LocalNs::from_ns(local), PtpTimestamp::from_nanos(master)));
            assert!(s.window.len() <= MAX_WINDOW_SAMPLES);
        }
        assert_eq!(s.window.len(), MAX_WINDOW_SAMPLES);
        assert!(s.window.capacity() <= 2 * (MAX_WINDOW_SAMPLES + 1));
        let r = last.unwrap();
        assert!(r.accepted && r.offset.abs() < Nanos::from_ns(100), "{r:?}");
    }

    #[test]
    fn converges_the_offset_of_a_noisy_line() {
        let mut s = servo();
        for i in 0..80 {
            let (l, m) = sample_at(i, -20_000.0, ((i * 7919) % 801) - 400);
            s.sample(l, m);
        }
        let (l, m) = sample_at(80, -20_000.0, 0);
        let r = s.sample(l, m);
        assert!(r.offset.abs() < Nanos::from_ns(500), "{r:?}");
        assert!(
            (s.freq().as_ppb() + 20_000.0).abs() < 100.0,
            "{:?}",
            s.freq()
        );
        assert!(s.sigma() > 0.0 && s.sigma() < 500.0);
    }

    #[test]
    fn rejects_an_outlier_then_steps_on_a_persistent_offset() {
        let mut s = servo();
        feed(&mut s, 0, 40, 0.0, 0);
        let (l, m) = sample_at(40, 0.0, 50_000);
        let r = s.sample(l, m);
        assert!(!r.accepted && !r.stepped, "{r:?}");
        assert_eq!(s.outliers(), 1);
        feed(&mut s, 41, 5, 0.0, 0);
        // +1 ms for step_after (3) samples: the third re-anchors.
        let r = feed(&mut s, 46, 2, 0.0, 1_000_000);
        assert!(!r.stepped);
        let r = feed(&mut s, 48, 1, 0.0, 1_000_000);
        assert!(r.stepped && r.state == ServoState::Jump, "{r:?}");
        assert_eq!(s.steps(), 2);
        let r = feed(&mut s, 49, 1, 0.0, 1_000_000);
        assert!(r.offset.abs() < Nanos::from_ns(10), "{r:?}");
    }

    #[test]
    fn restarts_the_fit_on_a_sub_threshold_shift() {
        let mut s = servo();
        feed(&mut s, 0, 40, 0.0, 0);
        // 20 µs: above the outlier floor, below the 100 µs step threshold.
        let r = feed(&mut s, 40, 5, 0.0, 20_000);
        assert!(!r.accepted);
        let r = feed(&mut s, 45, 1, 0.0, 20_000);
        assert!(r.stepped && r.accepted, "{r:?}");
        assert_eq!(s.steps(), 2);
        let r = feed(&mut s, 46, 1, 0.0, 20_000);
        assert!(r.offset.abs() < Nanos::from_ns(10), "{r:?}");
    }

    #[test]
    fn holdover_keeps_the_long_term_frequency_and_resumes() {
        let mut s = servo();
        feed(&mut s, 0, 100, 50_000.0, 0);
        s.enter_holdover();
        assert_eq!(s.state(), ServoState::Holdover);
        assert!((s.freq().as_ppb() - 50_000.0).abs() < 1.0);
        // 10 s later, the master still on the same line: resumes locked.
        let r = feed(&mut s, 180, 1, 50_000.0, 0);
        assert!(r.accepted && !r.stepped, "{r:?}");
        assert_eq!(r.state, ServoState::Locked);
    }
}
