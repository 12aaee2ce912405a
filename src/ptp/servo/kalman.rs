//! The adaptive Kalman servo ([`super::ServoKind::Kalman`], the default): a
//! two-state (phase error θ, ns; frequency error φ, ppb = ns/s) Kalman filter
//! on the offsetFromMaster samples (IEEE 1588-2019 §11.2), in error-state
//! form: after each update the estimate is folded into the [`ClockMap`], so
//! the predicted offset of the next sample is 0 and its innovation is the
//! measured offset itself. See the [`super`] module doc for the shared step /
//! outlier / holdover logic.
//!
//! Model (local time t in s between samples, dt):
//! - θ(t+dt) = θ(t) + φ(t)·dt, φ(t+dt) = φ(t) + w, w a random walk of
//!   variance `q·dt` (q in ppb²/s: the oscillator's frequency stability);
//! - measurement z = θ + v, v of variance `R` (ns²: the timestamp and
//!   queueing noise).
//!
//! Both noise figures are estimated from the data, so the filter adapts its
//! memory to the noise:
//! - **R** is the running mean (~64 samples) of the squared innovations minus
//!   the filter's own prediction variance, floored (20 ns² software, 2 ns²
//!   hardware). Noisier timestamps → larger R → smaller gain → longer memory.
//! - **q** follows the whiteness of the innovations (Mehra's criterion): an
//!   optimal filter leaves white innovations. Per block of 8 normalized
//!   innovations u, Var(Σu)/(8·Var(u)) is 1 when they are white and grows
//!   when they are correlated, i.e. the clock wanders faster than the model
//!   allows (q too small, memory too long); near 1 the memory can grow. q
//!   moves by at most ×e^±0.25 per block within [`Q_MIN`, `Q_MAX`].
//!
//! Innovations are clipped (Huber) at 3 σ of their predicted spread, so the
//! one-sided queueing tail of software timestamps pulls the estimate less.
//! Lock: the first sample anchors the clock (an estimate at once); `locked`
//! after [`LOCK_SAMPLES`] samples spanning ≥ 0.5 s (≥ 3 Syncs at any rate).

use super::{SampleOutcome, Servo, ServoConfig, ServoCore, anchor};
use crate::ptp::clock::{ClockMap, ServoState};
use crate::ptp::time::{LocalNs, PtpTimestamp};
use crate::units::{Nanos, Ppb};

/// Samples since the anchor before `locked` (with a span ≥ 0.5 s).
pub(super) const LOCK_SAMPLES: u32 = 3;
/// Smallest frequency random-walk intensity, ppb²/s.
pub(super) const Q_MIN: f64 = 1e-4;
/// Largest frequency random-walk intensity, ppb²/s.
pub(super) const Q_MAX: f64 = 1e6;
/// Initial frequency random-walk intensity, ppb²/s.
const Q_INIT: f64 = 1.0;
/// Samples over which R and the innovation autocorrelation are averaged.
const NOISE_SAMPLES: f64 = 64.0;
/// Innovations per whiteness block.
const BLOCK: u32 = 8;
/// Blocks over which the whiteness statistic is averaged.
const BLOCKS_AVG: f64 = 16.0;
/// Whiteness statistic aimed at (1 = white; a little above leaves the
/// memory as long as the wander allows).
const G_TARGET: f64 = 1.5;
/// Largest change of ln q per block.
const Q_STEP: f64 = 0.25;
/// Frequency uncertainty with no prior (first anchor), ppb (100 ppm).
const FREQ_SD_NONE: f64 = 100_000.0;
/// Frequency uncertainty after a re-anchor that keeps the frequency, ppb.
const FREQ_SD_KEPT: f64 = 2_000.0;

/// Adaptive two-state Kalman filter. See the module doc.
#[derive(Debug)]
pub struct KalmanServo {
    core: ServoCore,
    /// Error covariance [[θθ, θφ], [θφ, φφ]] (ns², ns²/s, ppb²).
    p: [[f64; 2]; 2],
    /// Local time of the last update, ns.
    last: Option<i64>,
    /// Local time of the anchor, ns.
    anchored_at: i64,
    /// Samples used since the anchor.
    n: u32,
    /// Frequency random-walk intensity, ppb²/s.
    q: f64,
    /// Running mean of the squared innovations (clipped), ns².
    nu2: f64,
    /// Measurement noise variance estimate, ns².
    r: f64,
    /// Running mean of u² (u: normalized innovation, innovation / √S).
    u2: f64,
    /// Sum of u over the current block, and its length.
    block_sum: f64,
    block_n: u32,
    /// Running mean of (block sum)² / block length: 1 for white innovations.
    block_var: f64,
    /// Blocks seen (saturates).
    blocks: f64,
    /// Samples seen by the noise estimators (saturates).
    noise_n: f64,
}

impl KalmanServo {
    /// A new, unlocked servo.
    pub fn new(cfg: ServoConfig) -> KalmanServo {
        let floor = Self::r_floor(&cfg);
        let r0 = ((cfg.outlier_floor.as_ns() as f64) / 3.0)
            .powi(2)
            .max(floor);
        KalmanServo {
            core: ServoCore::new(cfg),
            p: [[r0, 0.0], [0.0, FREQ_SD_NONE * FREQ_SD_NONE]],
            last: None,
            anchored_at: 0,
            n: 0,
            q: Q_INIT,
            nu2: r0,
            r: r0,
            u2: 1.0,
            block_sum: 0.0,
            block_n: 0,
            block_var: 1.0,
            blocks: 0.0,
            noise_n: 0.0,
        }
    }

    fn r_floor(cfg: &ServoConfig) -> f64 {
        if cfg.hw_timestamps { 4.0 } else { 400.0 }
    }

    /// Measurement noise estimate, ns (standard deviation).
    pub fn measurement_sd(&self) -> f64 {
        self.r.sqrt()
    }
    /// Frequency random-walk intensity in use, ppb²/s.
    pub fn process_noise(&self) -> f64 {
        self.q
    }
    /// Frequency uncertainty (1 σ), ppb.
    pub fn freq_sd(&self) -> f64 {
        self.p[1][1].max(0.0).sqrt()
    }

    /// Time update to local time `t` (ns): returns the predicted covariance.
    fn predicted(&self, t: i64) -> [[f64; 2]; 2] {
        let dt = self
            .last
            .map(|l| (t - l) as f64 * 1e-9)
            .unwrap_or(0.0)
            .max(0.0);
        let p = self.p;
        let q = self.q;
        [
            [
                p[0][0] + 2.0 * dt * p[0][1] + dt * dt * p[1][1] + q * dt * dt * dt / 3.0,
                p[0][1] + dt * p[1][1] + q * dt * dt / 2.0,
            ],
            [p[0][1] + dt * p[1][1] + q * dt * dt / 2.0, p[1][1] + q * dt],
        ]
    }

    /// Innovation gate, ns: `max(outlier_sigmas·√S, outlier_floor)`.
    fn gate(&self, s: f64) -> f64 {
        (self.core.cfg.outlier_sigmas * s.sqrt()).max(self.core.cfg.outlier_floor.as_ns() as f64)
    }

    /// Measurement update with innovation `nu` (ns) at local `t` (ns).
    fn update(&mut self, t: i64, nu: f64, pp: [[f64; 2]; 2]) {
        let s = pp[0][0] + self.r;
        let sd = s.sqrt();
        // Noise estimators (before clipping the update, after the gate),
        // once the filter has converged after an anchor: the innovations
        // of the first samples measure the initial frequency error, not
        // the noise.
        let learn = self.n >= 4;
        let clip2 = (5.0 * sd).powi(2);
        if learn {
            self.noise_n = (self.noise_n + 1.0).min(NOISE_SAMPLES);
        }
        let a = 1.0 / self.noise_n.max(1.0);
        let u = (nu / sd).clamp(-5.0, 5.0);
        let mut block_done = false;
        if learn {
            self.nu2 += a * ((nu * nu).min(clip2) - self.nu2);
            self.u2 += a * (u * u - self.u2);
            self.block_sum += u;
            self.block_n += 1;
        }
        if self.block_n >= BLOCK {
            let v = self.block_sum * self.block_sum / self.block_n as f64;
            self.blocks = (self.blocks + 1.0).min(BLOCKS_AVG);
            self.block_var += (v - self.block_var) / self.blocks;
            self.block_sum = 0.0;
            self.block_n = 0;
            block_done = true;
        }
        // Huber: a one-sided queueing tail pulls less (once the filter trusts
        // its prediction; before, the offsets are what it converges on).
        let nu_h = if self.n >= 4 {
            nu.clamp(-3.0 * sd, 3.0 * sd)
        } else {
            nu
        };
        let k0 = pp[0][0] / s;
        let k1 = pp[0][1] / s;
        let theta = k0 * nu_h;
        let phi = k1 * nu_h;
        self.p = [
            [pp[0][0] - k0 * pp[0][0], pp[0][1] - k0 * pp[0][1]],
            [pp[0][1] - k0 * pp[0][1], pp[1][1] - k1 * pp[0][1]],
        ];
        self.last = Some(t);
        let floor = Self::r_floor(&self.core.cfg);
        if learn && self.noise_n >= 8.0 {
            self.r = (self.nu2 - pp[0][0]).max(floor).max(self.nu2 * 0.25);
        }
        if block_done && self.blocks >= 4.0 {
            // Whiteness over a block: Var(Σu)/(B·Var(u)) is 1 for white
            // innovations, larger when a wander the model does not allow
            // leaves correlated ones (q too small, memory too long).
            let g = self.block_var / self.u2.max(1e-9);
            let step = ((g - G_TARGET) / G_TARGET).clamp(-1.0, 1.0) * Q_STEP;
            self.q = (self.q * step.exp()).clamp(Q_MIN, Q_MAX);
        }
        // Fold the estimate into the map (error state back to zero).
        if let Some(m) = self.core.map {
            let local = LocalNs::from_ns(t);
            let now = m.to_ptp(local).as_nanos() - theta.round() as i128;
            let freq = (m.freq.as_ppb() - phi).clamp(-1e6, 1e6);
            self.core.map = Some(ClockMap {
                ref_local: local,
                ref_ptp: PtpTimestamp::from_nanos(now),
                freq: Ppb::from_ppb(freq),
            });
        }
    }
}

impl Servo for KalmanServo {
    fn core(&self) -> &ServoCore {
        &self.core
    }
    fn core_mut(&mut self) -> &mut ServoCore {
        &mut self.core
    }
    fn restart_at(&mut self, local: LocalNs, _master: PtpTimestamp) {
        let no_freq = self.core.map.is_none_or(|m| m.freq.as_ppb() == 0.0);
        let fsd = if self.last.is_none() || no_freq {
            FREQ_SD_NONE
        } else {
            FREQ_SD_KEPT.max(self.freq_sd())
        };
        self.p = [[self.r, 0.0], [0.0, fsd * fsd]];
        self.last = Some(local.as_ns());
        self.anchored_at = local.as_ns();
        self.n = 1;
        self.block_sum = 0.0;
        self.block_n = 0;
    }
    fn forget(&mut self) {
        let fsd = FREQ_SD_KEPT.max(self.freq_sd());
        self.p = [[self.r, 0.0], [0.0, fsd * fsd]];
        self.n = 0;
        self.block_sum = 0.0;
        self.block_n = 0;
    }
    fn sigma(&self) -> f64 {
        self.r.sqrt()
    }

    fn estimate(&mut self, local: LocalNs, _master: PtpTimestamp, offset: Nanos) -> SampleOutcome {
        let cfg = self.core.cfg;
        let resumed = self.core.state == ServoState::Holdover;
        let t = local.as_ns();
        let pp = self.predicted(t);
        let s = pp[0][0] + self.r;
        let nu = offset.as_ns() as f64;
        let judged = self.n >= 4 || resumed;
        if judged && nu.abs() > self.gate(s) {
            self.core.outliers += 1;
            self.core.consecutive_bad += 1;
            if (offset.abs() > cfg.step_threshold && self.core.consecutive_bad >= cfg.step_after)
                || self.core.consecutive_bad >= cfg.restart_after
            {
                // A step of the master (or a shift below the step threshold,
                // or a holdover that drifted): re-anchor, keep the frequency.
                return anchor(self, local, _master, offset);
            }
            if resumed {
                self.core.state = ServoState::Holdover;
            }
            return SampleOutcome::rejected(offset, self.core.state);
        }
        self.core.consecutive_bad = 0;
        let consistent = nu.abs() <= self.gate(s);
        self.update(t, nu, pp);
        self.n = self.n.saturating_add(1);
        let span = t - self.anchored_at;
        self.core.state = if resumed {
            ServoState::Locked
        } else if self.n >= LOCK_SAMPLES && span >= 500_000_000 && consistent {
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

    fn servo() -> KalmanServo {
        KalmanServo::new(ServoConfig {
            kind: super::super::ServoKind::Kalman,
            ..ServoConfig::default()
        })
    }

    /// A deterministic pseudo-random generator (xorshift) for the noise.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Standard normal (Box-Muller).
        fn normal(&mut self) -> f64 {
            let (a, b) = (self.next().max(1e-12), self.next());
            (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
        }
    }

    #[test]
    fn locks_on_plus_100_ppm_within_half_a_second() {
        let mut s = servo();
        // Anchor + 3 samples: 0.375 s, not yet 0.5 s.
        let r = feed(&mut s, 0, 4, 100_000.0, 0);
        assert_eq!(r.state, ServoState::Jump, "{r:?}");
        let r = feed(&mut s, 4, 1, 100_000.0, 0);
        assert_eq!(r.state, ServoState::Locked, "{r:?}");
        // Five samples over 0.5 s: within 0.1 ppm already.
        assert!(
            (s.freq().as_ppb() - 100_000.0).abs() < 100.0,
            "{:?}",
            s.freq()
        );
        let r = feed(&mut s, 5, 40, 100_000.0, 0);
        assert_eq!(r.state, ServoState::LockedStable);
        assert!(r.offset.abs() < Nanos::from_ns(5), "{r:?}");
        assert_eq!(s.steps(), 1);
    }

    /// Locks within 3 Syncs at logSyncInterval 0 (1 Sync/s).
    #[test]
    fn locks_within_three_syncs_at_one_per_second() {
        let mut s = servo();
        let mut st = ServoState::Unlocked;
        for i in 0..3i64 {
            let local = 1_000_000_000 + i * 1_000_000_000;
            let master = 7_000_000_000_000i128 + (local as f64 * (1.0 + 30e-6)) as i128;
            st = s
                .sample(LocalNs::from_ns(local), PtpTimestamp::from_nanos(master))
                .state;
        }
        assert_eq!(st, ServoState::Locked);
        assert!(
            (s.freq().as_ppb() - 30_000.0).abs() < 100.0,
            "{:?}",
            s.freq()
        );
    }

    /// Virtual time, 8 Sync/s, a master 25 ppm off whose timestamps carry
    /// Gaussian noise of `sd` ns plus an exponential queueing tail: the error
    /// of our clock against the truth, after 20 s of settling, is far below
    /// the raw noise (rms), and the filter's memory grows with the noise.
    fn noisy_run(sd: f64, seed: u64) -> (f64, f64, KalmanServo) {
        let mut s = servo();
        let mut rng = Rng(seed);
        let (mut se, mut raw, mut n) = (0.0, 0.0, 0.0);
        for i in 0..(8 * 120) {
            // Gaussian plus a queueing tail (exponential, mean removed: a
            // constant bias is invisible to any slave).
            let noise = sd * rng.normal() + 0.3 * sd * (-(rng.next().max(1e-12)).ln() - 1.0);
            let (l, m) = sample_at(i, 25_000.0, noise.round() as i64);
            let _ = s.sample(l, m);
            if i >= 8 * 20 {
                let (l, m) = sample_at(i, 25_000.0, 0);
                let e = (s.map().unwrap().to_ptp(l).as_nanos() - m.as_nanos()) as f64;
                se += e * e;
                raw += noise * noise;
                n += 1.0;
            }
        }
        ((se / n).sqrt(), (raw / n).sqrt(), s)
    }

    #[test]
    fn filters_noise_far_below_the_raw_spread_and_adapts_memory() {
        let (e_quiet, raw_quiet, quiet) = noisy_run(200.0, 0x9e3779b97f4a7c15);
        let (e_noisy, raw_noisy, noisy) = noisy_run(3_000.0, 0x2545f4914f6cdd1d);
        eprintln!(
            "quiet {e_quiet:.0}/{raw_quiet:.0} ns (R sd {:.0}, q {:.3}); noisy {e_noisy:.0}/{raw_noisy:.0} ns (R sd {:.0}, q {:.3})",
            quiet.measurement_sd(),
            quiet.process_noise(),
            noisy.measurement_sd(),
            noisy.process_noise()
        );
        assert!(e_quiet < 0.25 * raw_quiet, "{e_quiet} vs {raw_quiet}");
        assert!(e_noisy < 0.25 * raw_noisy, "{e_noisy} vs {raw_noisy}");
        // R tracks the noise; the gain (memory) follows.
        assert!(noisy.measurement_sd() > 5.0 * quiet.measurement_sd());
        assert!(noisy.outliers() < 20, "{}", noisy.outliers());
        assert!(
            (noisy.freq().as_ppb() - 25_000.0).abs() < 100.0,
            "{:?}",
            noisy.freq()
        );
    }

    /// A wandering frequency (random walk, 50 ppb²/s) raises q: the filter
    /// shortens its memory and keeps following.
    #[test]
    fn wandering_frequency_raises_process_noise() {
        let mut s = servo();
        let mut rng = Rng(0xdeadbeef12345);
        let mut phase = 0.0f64;
        let mut freq = 0.0f64;
        let mut worst: f64 = 0.0;
        for i in 0..(8 * 200) {
            freq += (50.0f64 * 0.125).sqrt() * rng.normal();
            phase += freq * 0.125;
            let noise = 100.0 * rng.normal();
            let (l, m) = sample_at(i, 0.0, (phase + noise).round() as i64);
            let _ = s.sample(l, m);
            if i > 8 * 60 {
                let (l, m) = sample_at(i, 0.0, phase.round() as i64);
                let e = (s.map().unwrap().to_ptp(l).as_nanos() - m.as_nanos()) as f64;
                worst = worst.max(e.abs());
            }
        }
        eprintln!("wander: q {:.2} worst {worst:.0} ns", s.process_noise());
        assert!(s.process_noise() > 5.0, "q {}", s.process_noise());
        assert!(worst < 1_000.0, "{worst}");
    }

    #[test]
    fn steps_on_a_persistent_offset_and_relocks_within_two_seconds() {
        let mut s = servo();
        feed(&mut s, 0, 40, 10_000.0, 0);
        let (l, m) = sample_at(40, 10_000.0, 50_000);
        assert!(!s.sample(l, m).accepted);
        assert_eq!(s.outliers(), 1);
        // A 1 ms step of the master at sample 41.
        let mut relocked = None;
        for i in 41..80 {
            let (l, m) = sample_at(i, 10_000.0, 1_000_000);
            let r = s.sample(l, m);
            if i > 41 && r.state == ServoState::Locked && relocked.is_none() && s.steps() == 2 {
                relocked = Some(i - 41);
            }
        }
        let k = relocked.expect("relocked");
        assert!(k * 125 <= 2_000, "{k} samples");
        let (l, m) = sample_at(80, 10_000.0, 1_000_000);
        assert!(s.sample(l, m).offset.abs() < Nanos::from_ns(10));
    }

    #[test]
    fn holdover_keeps_the_frequency_and_resumes() {
        let mut s = servo();
        feed(&mut s, 0, 100, 50_000.0, 0);
        s.enter_holdover();
        assert_eq!(s.state(), ServoState::Holdover);
        assert!((s.freq().as_ppb() - 50_000.0).abs() < 5.0, "{:?}", s.freq());
        let r = feed(&mut s, 180, 1, 50_000.0, 0);
        assert!(r.accepted && !r.stepped, "{r:?}");
        assert_eq!(r.state, ServoState::Locked);
    }

    #[test]
    fn max_step_refuses_and_holds_over() {
        let mut s = KalmanServo::new(ServoConfig {
            kind: super::super::ServoKind::Kalman,
            max_step: Some(Nanos::from_us(500)),
            ..ServoConfig::default()
        });
        feed(&mut s, 0, 40, 0.0, 0);
        let r = feed(&mut s, 40, 6, 0.0, 10_000_000);
        assert!(!r.stepped && !r.accepted, "{r:?}");
        assert!(s.steps_refused() >= 1);
        assert_eq!(s.state(), ServoState::Holdover);
        assert_eq!(s.steps(), 1);
    }
}
