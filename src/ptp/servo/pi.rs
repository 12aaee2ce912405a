//! The PI servo ([`super::ServoKind::Pi`]), as a reference: linuxptp's
//! controller constants (`kp = min(kp_scale·s^-0.3, 0.7/s)`,
//! `ki = min(ki_scale·s^0.4, 0.3/s)`, s = sync interval in seconds; software
//! scales 0.1 / 0.001, hardware 0.7 / 0.3). Frequency in ppb, offsets in ns.

use super::{SampleOutcome, Servo, ServoConfig, ServoCore, anchor};
use crate::ptp::clock::{ClockMap, ServoState};
use crate::ptp::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// Proportional-integral controller. See the [`super`] module doc.
#[derive(Debug)]
pub struct PiServo {
    core: ServoCore,
    /// Samples since the last anchor (1 = the anchor).
    count: u32,
    /// Local time (ns) of the anchor sample.
    first: Option<i64>,
    /// Integral term: the frequency, ppb.
    drift: f64,
}

impl PiServo {
    /// A new, unlocked servo.
    pub fn new(cfg: ServoConfig) -> PiServo {
        PiServo {
            core: ServoCore::new(cfg),
            count: 0,
            first: None,
            drift: 0.0,
        }
    }

    /// (kp, ki) for the configured sync interval and timestamping.
    fn gains(&self) -> (f64, f64) {
        let s = self.core.cfg.sync_interval_s.max(1e-3);
        let (kps, kis) = if self.core.cfg.hw_timestamps {
            (0.7, 0.3)
        } else {
            (0.1, 0.001)
        };
        (
            (kps * s.powf(-0.3)).min(0.7 / s),
            (kis * s.powf(0.4)).min(0.3 / s),
        )
    }
}

impl Servo for PiServo {
    fn core(&self) -> &ServoCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut ServoCore {
        &mut self.core
    }
    fn restart_at(&mut self, local: LocalNs, _master: PtpTimestamp) {
        self.count = 1;
        self.first = Some(local.as_ns());
    }
    fn forget(&mut self) {
        self.count = 0;
        self.first = None;
        self.drift = self.freq().as_ppb();
    }

    fn estimate(&mut self, local: LocalNs, master: PtpTimestamp, offset: Nanos) -> SampleOutcome {
        let cfg = self.core.cfg;
        let map = self.core.map.expect("anchored");
        // Steps: same rule as linreg, without outlier rejection (linuxptp has none).
        if offset.abs() > cfg.step_threshold {
            self.core.consecutive_bad += 1;
            if self.core.consecutive_bad >= cfg.step_after {
                return anchor(self, local, master, offset);
            }
            return SampleOutcome::rejected(offset, self.core.state);
        }
        self.core.consecutive_bad = 0;
        let resumed = self.core.state == ServoState::Holdover;
        self.count += 1;
        if self.count == 2 && !resumed {
            // linuxptp pi.c case 1: frequency from the first two samples, then step.
            let x0 = self.first.unwrap_or(local.as_ns());
            let dt = (local.as_ns() - x0) as f64;
            if dt > 0.0 {
                let f = map.freq.as_ppb() - offset.as_ns() as f64 / dt * 1e9;
                self.drift = f;
                self.core.map = Some(ClockMap {
                    ref_local: local,
                    ref_ptp: master,
                    freq: Ppb::from_ppb(f.clamp(-1e6, 1e6)),
                });
            }
            self.core.state = ServoState::Jump;
            return SampleOutcome::stepped(offset, self.core.state);
        }
        let (kp, ki) = self.gains();
        // offset > 0 means we are ahead: slow down (integral, then proportional).
        self.drift -= ki * offset.as_ns() as f64;
        let freq = (self.drift - kp * offset.as_ns() as f64).clamp(-1e6, 1e6);
        self.core.map = Some(ClockMap {
            freq: Ppb::from_ppb(freq),
            ..map.rebased(local)
        });
        self.core.state = if offset.abs() < cfg.stable_bound && self.count > 20 {
            ServoState::LockedStable
        } else {
            ServoState::Locked
        };
        SampleOutcome::accepted(offset, self.core.state)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::feed;
    use super::*;

    fn servo() -> PiServo {
        PiServo::new(ServoConfig {
            kind: super::super::ServoKind::Pi,
            ..ServoConfig::default()
        })
    }

    #[test]
    fn gains_follow_linuxptp_for_8_sync_per_s() {
        let (kp, ki) = servo().gains();
        assert!((kp - 0.1 * 0.125f64.powf(-0.3)).abs() < 1e-12);
        assert!((ki - 0.001 * 0.125f64.powf(0.4)).abs() < 1e-12);
    }

    #[test]
    fn second_sample_measures_plus_100_ppm_and_locks() {
        let mut s = servo();
        let r = feed(&mut s, 0, 1, 100_000.0, 0);
        assert!(r.stepped);
        let r = feed(&mut s, 1, 1, 100_000.0, 0);
        assert!(r.stepped && r.state == ServoState::Jump, "{r:?}");
        assert!(
            (s.freq().as_ppb() - 100_000.0).abs() < 1.0,
            "{:?}",
            s.freq()
        );
        let r = feed(&mut s, 2, 1, 100_000.0, 0);
        assert_eq!(r.state, ServoState::Locked);
        let r = feed(&mut s, 3, 30, 100_000.0, 0);
        assert_eq!(r.state, ServoState::LockedStable);
        assert!(r.offset.abs() < Nanos::from_ns(5), "{r:?}");
    }

    #[test]
    fn converges_a_small_offset() {
        let mut s = servo();
        feed(&mut s, 0, 40, 0.0, 0);
        // A 10 µs shift (below the step threshold) is steered out, not stepped.
        let first = feed(&mut s, 40, 1, 0.0, 10_000);
        assert!(!first.stepped && first.offset.abs() > Nanos::from_ns(9_000));
        let r = feed(&mut s, 41, 400, 0.0, 10_000);
        assert!(
            r.offset.abs().as_ns() < first.offset.abs().as_ns() / 2,
            "{r:?}"
        );
        assert_eq!(s.steps(), 1);
    }

    #[test]
    fn steps_after_three_large_offsets_and_holds_over() {
        let mut s = servo();
        feed(&mut s, 0, 10, 0.0, 0);
        let r = feed(&mut s, 10, 2, 0.0, 1_000_000);
        assert!(!r.accepted && !r.stepped, "{r:?}");
        let r = feed(&mut s, 12, 1, 0.0, 1_000_000);
        assert!(r.stepped, "{r:?}");
        assert_eq!(s.steps(), 2);
        s.enter_holdover();
        assert_eq!(s.state(), ServoState::Holdover);
        // PI has no long-term estimate: holdover keeps the current frequency.
        let f = s.freq();
        s.enter_holdover();
        assert_eq!(s.freq(), f);
    }
}
