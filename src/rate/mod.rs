//! Sans-IO rate control: estimates the ratio between the stream's media clock
//! and the sound card's sample clock, and steers a resampler so the total
//! buffered audio (ring fill plus device delay) holds its target.
//!
//! Shape (after PipeWire's `spa/utils/dll.h` and `module-rtp/audio.c`, written anew):
//!
//! - **Device clock estimator** ([`DeviceClock`]): an alpha-beta delay-locked loop
//!   on ALSA's timing — frames the device has consumed (`written − delay`, from
//!   `snd_pcm_avail_delay`) against `CLOCK_MONOTONIC` — gives the device rate
//!   relative to the monotonic clock, in ppb.
//! - **Feed-forward**: the media clock's rate relative to `CLOCK_MONOTONIC`. With PTP
//!   locked it is the PTP frequency (the media clock runs on the grandmaster's
//!   timescale, IEEE 1588-2019 §7.2, AES67-2018 §5); free-running it is 0. When PTP is
//!   lost the last value is held (holdover), and any change is slewed at
//!   [`RateConfig::ff_slew_ppm_per_s`] so a relock never jumps the ratio.
//! - **Feedback**: a PI loop on the low-passed error of the total latency
//!   (ring fill + device delay, in seconds) against [`RateConfig::target_latency`].
//!   It trims whatever the feed-forward misses, and alone carries the whole ratio
//!   when ALSA timing or PTP are unavailable.
//! - **Bounds**: the ratio is clamped to ±[`RateConfig::max_ppm`]; the PI integrator
//!   is kept inside the clamp around the feed-forward and integrates only while the
//!   output is not saturated (anti-windup).
//! - **Recovery** (issue 17): a disturbance never leaves the loop slewing for minutes.
//!   - A raw latency error beyond ±[`RateConfig::resync`] (an *excursion*: a stall, a
//!     burst, a delay step, an overflow) freezes the PI (filter and integrator hold)
//!     instead of winding it up; if the excursion returns within
//!     [`RateConfig::resync_hold`] the loop carries on as if nothing happened, else it
//!     **re-primes**.
//!   - Saturation at the clamp for more than [`RateConfig::saturation_hold`] is a
//!     fault: the loop re-primes.
//!   - **Re-prime**: one drop/insert ([`RateOutput::resync_frames`]) re-establishes the
//!     target (the mean error of the hold's last second), the integrator is
//!     reset to the feed-forward estimate, the filter restarts, and the ratio is
//!     *ramped* (at most [`RateConfig::ramp_ppm_per_s`]) from where it was, never
//!     stepped. The caller re-primes it too after an underrun, an overflow or a device
//!     xrun it has handled itself ([`RateControl::reprime`]). Every re-prime is
//!     counted ([`RateControl::rate_resets`]).
//!   - Bound: a disturbance is over `resync_hold` after it began (or
//!     `saturation_hold` after the output saturated), plus the ramp (≤ 2 s).
//!
//! Everything is explicit: [`Observation`] (with its `now`) in, [`RateOutput`] out.
//! No allocation, no IO: the control core is safe to call on the real-time thread.
//! [`steer`] joins controller and resampler into the one ring → resampler
//! steering used by the engine's playout and the BASS add-on.
#![forbid(unsafe_code)]

pub mod resampler;
pub mod steer;

use crate::units::{MonoNs, Nanos, Ppb};

/// Tuning of the rate controller.
#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// Nominal sample rate of stream and device, frames per second (e.g. 48000).
    pub sample_rate: u32,
    /// Target total latency: ring fill plus device delay (ns).
    pub target_latency: Nanos,
    /// Clamp of the steering ratio, ± ppm (parts per million of the nominal rate).
    pub max_ppm: f64,
    /// Resync bound: a latency error beyond ± this (ns) makes the controller ask for
    /// a one-off drop/insert of frames instead of steering, once the error has stayed
    /// beyond it for [`RateConfig::resync_hold`].
    pub resync: Nanos,
    /// How long the latency error must stay beyond [`RateConfig::resync`], on one
    /// side, before a resync (ns): glitched readings (a device pointer catching up
    /// after a stall) and a sender that lags and then catches up in a burst never
    /// trigger one; a lasting offset (a delay step, a burst after a stall the ring
    /// already made up for) does.
    pub resync_hold: Nanos,
    /// Time constant of the fill-error low-pass filter (ns).
    pub fill_filter: Nanos,
    /// Natural period of the PI loop on the latency error (ns); critically damped.
    pub loop_period: Nanos,
    /// Bandwidth of the device clock DLL (Hz).
    pub dll_bandwidth_hz: f64,
    /// Slew limit of the feed-forward term (ppm per second).
    pub ff_slew_ppm_per_s: f64,
    /// Saturation at the clamp longer than this (ns) is a fault: re-prime.
    pub saturation_hold: Nanos,
    /// After a re-prime the ratio moves from its last value to the new one at most
    /// this fast (ppm per second).
    pub ramp_ppm_per_s: f64,
    /// Which side of the resampler the device is on (the sign of the feed-forward).
    pub direction: Direction,
    /// Start alignment (ns; zero = off): for this long after the first update the
    /// loop is frozen (ratio = feed-forward) and the mean raw latency error is
    /// measured. That start error then becomes an offset of the target which
    /// returns to zero at [`RateConfig::start_slew_ms_per_s`], so a start that
    /// lands a device period off the target is steered back gently instead of
    /// through a P term pinned at the clamp (a saturation fault and a resync
    /// before the first feed-forward estimate). Used by capture, whose start
    /// (the sender's first pull) is only as exact as the device's period.
    pub start_window: Nanos,
    /// How fast the start error returns to zero (ms of latency per second, i.e.
    /// thousands of ppm: 0.5 ms/s = 500 ppm on top of the skew).
    pub start_slew_ms_per_s: f64,
}

/// Which side of the steered resampler the device clock is on. The ratio is always
/// output/input of the resampler, and the fill (ring + device delay) is always what
/// the feedback holds; only the feed-forward's sign differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Playout: media frames in, device frames out; ratio = device frames per media
    /// frame ≈ 1 + (device − media) vs `CLOCK_MONOTONIC`.
    #[default]
    Playout,
    /// Capture: device frames in, media frames out (into the sender's ring); ratio =
    /// media frames per device frame ≈ 1 + (media − device) vs `CLOCK_MONOTONIC`.
    Capture,
}

impl RateConfig {
    /// Defaults for `sample_rate` frames/s and a target latency: ±2000 ppm clamp,
    /// excursion bound ±min(target/2, 20 ms) (at least 5 ms) held 3 s, 2 s fill filter,
    /// 60 s loop, 0.02 Hz DLL, feed-forward slew 10 ppm/s, saturation fault after 3 s,
    /// re-prime ramp 1000 ppm/s.
    pub fn new(sample_rate: u32, target_latency: Nanos) -> RateConfig {
        RateConfig {
            sample_rate,
            target_latency,
            max_ppm: 2000.0,
            resync: Nanos::from_ns((target_latency.as_ns() / 2).clamp(5_000_000, 20_000_000)),
            resync_hold: Nanos::from_secs(3),
            fill_filter: Nanos::from_secs(2),
            loop_period: Nanos::from_secs(60),
            dll_bandwidth_hz: 0.02,
            ff_slew_ppm_per_s: 10.0,
            saturation_hold: Nanos::from_secs(3),
            ramp_ppm_per_s: 1000.0,
            direction: Direction::Playout,
            start_window: Nanos::from_ns(0),
            start_slew_ms_per_s: 0.5,
        }
    }

    /// [`RateConfig::new`] for a capture device ([`Direction::Capture`]): the device
    /// produces frames on its own clock, the resampler turns them into media frames
    /// and the fill held at the target is the device's capture delay plus the ring
    /// between the resampler and the sender's pacing thread. Start alignment
    /// ([`RateConfig::start_window`]) over the first 500 ms, slewed at 0.5 ms/s.
    pub fn capture(sample_rate: u32, target_latency: Nanos) -> RateConfig {
        RateConfig {
            direction: Direction::Capture,
            start_window: Nanos::from_ms(500),
            ..RateConfig::new(sample_rate, target_latency)
        }
    }
}

/// One measurement, taken by the playout loop once per device period.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// When the measurement was taken (`CLOCK_MONOTONIC`).
    pub now: MonoNs,
    /// Stream frames waiting before the device: the input ring plus the
    /// resampler's not-yet-consumed input (frames at the media rate).
    pub ring_fill_frames: f64,
    /// The device's delay (`snd_pcm_delay`, frames at the device rate): how long a
    /// frame written now takes to be heard.
    pub device_delay_frames: f64,
    /// Frames the device has consumed since it started (`written − delay`), at `now`;
    /// `None` when ALSA timing is unusable (the DLL is then bypassed).
    pub device_position: Option<u64>,
    /// Media clock rate relative to `CLOCK_MONOTONIC` (ppb, positive = media clock
    /// faster): the PTP servo frequency when locked, `Some(Ppb::ZERO)` for a free-running
    /// media clock on the local monotonic clock, `None` when PTP is lost (holdover).
    pub media_vs_mono: Option<Ppb>,
}

/// What the controller decided for this period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateOutput {
    /// Resampling ratio output/input (device frames per media frame): `1 + ppm·1e-6`.
    pub ratio: f64,
    /// The same ratio as an offset from 1 (ppb).
    pub ratio_ppb: Ppb,
    /// Feed-forward part of the ratio (device vs monotonic minus media vs monotonic), ppb.
    pub feed_forward: Ppb,
    /// Latency error (actual − target, ns), unfiltered.
    pub latency_error: Nanos,
    /// Low-passed latency error (ns): what the PI loop acts on.
    pub filtered_error: Nanos,
    /// Device rate relative to `CLOCK_MONOTONIC` estimated by the DLL (ppb), if locked.
    pub device_vs_mono: Option<Ppb>,
    /// If set: drop (positive) or insert (negative) this many media frames now.
    pub resync_frames: Option<i64>,
    /// This step re-primed the loop (see the module docs, *Recovery*).
    pub reprimed: bool,
    /// The start error measured by the start alignment ([`RateConfig::start_window`]),
    /// on the step that ends the window: the target offset that then slews to zero.
    pub start_error: Option<Nanos>,
}

/// Integrator trim (ppm around the feed-forward) kept through a re-prime.
const REPRIME_TRIM_PPM: f64 = 50.0;
/// The PI stays frozen until the raw error has been back inside the excursion bound
/// this long (s): clumped arrivals (bursts) never wind it.
const CALM_S: f64 = 0.5;
/// The last part of an excursion's hold (s) whose mean error sets the drop/insert.
const RESYNC_WINDOW_S: f64 = 1.0;

/// Acquisition time of [`DeviceClock`] (s): wide loop, no estimate reported.
const ACQUIRE_S: f64 = 6.0;

/// Delay-locked loop tracking the device position (frames) against
/// `CLOCK_MONOTONIC`: a least-squares fit over the first 6 s acquires the rate, then a
/// critically damped alpha-beta loop (state: predicted position, rate in frames/s) tracks it.
#[derive(Debug, Clone, Copy)]
pub struct DeviceClock {
    nominal: f64,
    wn: f64,
    last: Option<(MonoNs, f64)>,
    rate: f64,
    updates: u64,
    elapsed: f64,
    acquired: bool,
    ls: [f64; 5],
    ls_p0: f64,
}

impl DeviceClock {
    /// A DLL for a device of `nominal` frames/s with loop bandwidth `bw_hz`.
    pub fn new(nominal: f64, bw_hz: f64) -> DeviceClock {
        DeviceClock {
            nominal,
            wn: 2.0 * std::f64::consts::PI * bw_hz,
            last: None,
            rate: nominal,
            updates: 0,
            elapsed: 0.0,
            acquired: false,
            ls: [0.0; 5],
            ls_p0: 0.0,
        }
    }
    /// Restarts the loop (after an xrun or a device restart).
    pub fn reset(&mut self) {
        self.last = None;
        self.updates = 0;
        self.elapsed = 0.0;
        self.acquired = false;
    }
    /// Feeds one (time, position in frames) pair. Position jumps of more than 0.5 s
    /// against the prediction restart the loop (xrun, suspend).
    pub fn update(&mut self, now: MonoNs, position: u64) {
        let meas = position as f64;
        let Some((t0, p0)) = self.last else {
            self.last = Some((now, meas));
            return;
        };
        let dt = now.since(t0).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        let pred = p0 + self.rate * dt;
        let err = meas - pred;
        if err.abs() > 0.5 * self.nominal || dt > 5.0 {
            self.last = Some((now, meas));
            self.updates = 0;
            self.elapsed = 0.0;
            self.acquired = false;
            return;
        }
        self.updates += 1;
        self.elapsed += dt;
        if self.elapsed < ACQUIRE_S {
            // Acquisition: a least-squares line through the (time, position) points
            // since the (re)start gives the rate to start the loop from.
            let (t, p) = (self.elapsed, meas - self.ls_p0);
            if self.updates == 1 {
                self.ls = [0.0; 5];
                self.ls_p0 = meas;
                self.last = Some((now, meas));
                return;
            }
            let l = &mut self.ls;
            l[0] += 1.0;
            l[1] += t;
            l[2] += p;
            l[3] += t * t;
            l[4] += t * p;
            self.last = Some((now, meas));
            return;
        }
        if !self.acquired {
            let l = &self.ls;
            let den = l[0] * l[3] - l[1] * l[1];
            if l[0] >= 10.0 && den > 0.0 {
                let slope = (l[0] * l[4] - l[1] * l[2]) / den;
                let icpt = (l[2] - slope * l[1]) / l[0];
                self.rate = slope.clamp(self.nominal * 0.99, self.nominal * 1.01);
                self.last = Some((now, self.ls_p0 + icpt + slope * self.elapsed));
            }
            self.acquired = true;
            return;
        }
        // Tracking: critically damped alpha-beta gains per elapsed dt.
        let x = (self.wn * dt).min(0.5);
        let alpha = 2.0 * x;
        let beta = x * x;
        self.last = Some((now, pred + alpha * err));
        self.rate += beta * err / dt;
        self.rate = self.rate.clamp(self.nominal * 0.99, self.nominal * 1.01);
    }
    /// Device rate relative to `CLOCK_MONOTONIC`, once the loop has acquired (6 s).
    pub fn ppb(&self) -> Option<Ppb> {
        self.acquired
            .then(|| Ppb::from_ppb((self.rate / self.nominal - 1.0) * 1e9))
    }
}

/// The rate controller. See the module docs.
#[derive(Debug, Clone)]
pub struct RateControl {
    cfg: RateConfig,
    dll: DeviceClock,
    media_held: Option<f64>,
    ff: f64,
    ff_init: bool,
    integ: f64,
    filt: Option<f64>,
    last_now: Option<MonoNs>,
    over_since: Option<MonoNs>,
    /// Last time the raw error was beyond the excursion bound.
    last_over: Option<MonoNs>,
    /// Sum (s) and count of the raw error over the last [`RESYNC_WINDOW_S`] of an
    /// excursion's hold, and the excursion's side (±1).
    over_sum: (f64, u32, f64),
    sat_since: Option<MonoNs>,
    /// Last output (ppm) and whether a re-prime ramp is in progress.
    last_ppm: f64,
    ramping: bool,
    /// A re-prime asked by the caller, applied at the next update.
    reprime_asked: bool,
    resyncs: u64,
    rate_resets: u64,
    /// Start alignment: first update's `now`, sum and count of the raw error in the
    /// window, whether it is over, and the target offset (s) still to slew away.
    start_at: Option<MonoNs>,
    start_sum: (f64, u32),
    start_done: bool,
    target_offset: f64,
}

/// The integrator (ppm) when the first feed-forward estimate `ff` (ppm) arrives while
/// the P term holds the latency error `filt` (s): 0, so the error returns at the
/// loop's speed, unless the output `ff − kp·filt` would pass ¾ of `max` (ppm); then
/// the integrator takes the excess and the output starts at ±¾ `max`.
fn first_estimate_integrator(ff: f64, loop_period: Nanos, filt: f64, max: f64) -> f64 {
    let wn = 2.0 * std::f64::consts::PI / loop_period.as_secs_f64();
    let out = ff - 2.0 * wn * 1e6 * filt;
    let bound = 0.75 * max;
    if out > bound {
        bound - out
    } else if out < -bound {
        -bound - out
    } else {
        0.0
    }
}

impl RateControl {
    /// A controller with the given tuning.
    pub fn new(cfg: RateConfig) -> RateControl {
        RateControl {
            dll: DeviceClock::new(cfg.sample_rate as f64, cfg.dll_bandwidth_hz),
            cfg,
            media_held: None,
            ff: 0.0,
            ff_init: false,
            integ: 0.0,
            filt: None,
            last_now: None,
            over_since: None,
            last_over: None,
            over_sum: (0.0, 0, 0.0),
            sat_since: None,
            last_ppm: 0.0,
            ramping: false,
            reprime_asked: false,
            resyncs: 0,
            rate_resets: 0,
            start_at: None,
            start_sum: (0.0, 0),
            start_done: cfg.start_window.as_ns() <= 0,
            target_offset: 0.0,
        }
    }

    /// The tuning in use.
    pub fn config(&self) -> &RateConfig {
        &self.cfg
    }

    /// Number of resyncs asked for so far.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Re-primes of the loop so far (excursions held too long, saturation faults,
    /// and re-primes asked by the caller).
    pub fn rate_resets(&self) -> u64 {
        self.rate_resets
    }

    /// Tells the controller the device restarted (xrun recovery, resume): the device
    /// position starts again from 0; the ratio estimate is kept, the loop re-primes.
    pub fn device_restarted(&mut self) {
        self.dll.reset();
        self.reprime();
    }

    /// The caller re-established the fill target itself (after an underrun, an
    /// overflow or a device xrun it handled): at the next update the integrator is
    /// reset to the feed-forward estimate, the filter restarts and the ratio ramps
    /// from its last value. Counted in [`Self::rate_resets`]. Never drops or inserts.
    pub fn reprime(&mut self) {
        self.reprime_asked = true;
    }

    /// The re-prime itself: integrator to the feed-forward estimate (kept, within the
    /// clamp, when there is none: it then carries the whole ratio), filter and
    /// timers restarted, ramp from the last output.
    fn do_reprime(&mut self) {
        if self.ff_init {
            // To the feed-forward estimate, keeping a small trim (what the integrator
            // held before a wind-up: the estimate's own error, a few ppm).
            self.integ = self.integ.clamp(-REPRIME_TRIM_PPM, REPRIME_TRIM_PPM);
        } else {
            let m = self.cfg.max_ppm;
            self.integ = self.integ.clamp(-m, m);
        }
        // The target was just re-established: the filter restarts from zero error, not
        // from one noisy reading (a 1 ms reading would be a 200 ppm P kick).
        self.filt = Some(0.0);
        self.target_offset = 0.0;
        self.over_since = None;
        self.last_over = None;
        self.over_sum = (0.0, 0, 0.0);
        self.sat_since = None;
        self.ramping = true;
        self.rate_resets += 1;
    }

    /// One control step. Call once per device period with a fresh [`Observation`].
    pub fn update(&mut self, obs: &Observation) -> RateOutput {
        let fs = self.cfg.sample_rate as f64;
        let dt = self
            .last_now
            .map(|t| obs.now.since(t).as_secs_f64())
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        self.last_now = Some(obs.now);

        // Feed-forward: device vs mono (DLL) minus media vs mono (PTP, held when lost).
        if let Some(pos) = obs.device_position {
            self.dll.update(obs.now, pos);
        }
        if let Some(m) = obs.media_vs_mono {
            self.media_held = Some(m.as_ppb() * 1e-3); // ppb -> ppm
        }
        let dev = self.dll.ppb();
        if let (Some(d), Some(m)) = (dev, self.media_held) {
            let target = match self.cfg.direction {
                Direction::Playout => d.as_ppb() * 1e-3 - m,
                Direction::Capture => m - d.as_ppb() * 1e-3,
            };
            if !self.ff_init {
                // First estimate: take it whole and let the PI restart from it (a
                // one-off ratio step of at most a few hundred ppm, ramped by the
                // resampler: far below a cent of pitch). Until now the P term carried
                // the rate, as a latency error; it now returns that error, so the
                // output briefly runs at up to twice the rate. For a capture, where
                // that would pass 3/4 of the clamp (a ±1000 ppm card: ~2000 ppm,
                // pinned at the clamp into a saturation fault) the integrator takes
                // over the excess, and the error returns more slowly instead.
                // Playout keeps a zero integrator (its start error is held by the
                // playout target, and its qemu proofs run on that behaviour).
                self.ff = target;
                self.integ = match self.cfg.direction {
                    Direction::Playout => 0.0,
                    Direction::Capture => first_estimate_integrator(
                        target,
                        self.cfg.loop_period,
                        self.filt.unwrap_or(0.0),
                        self.cfg.max_ppm,
                    ),
                };
                self.ff_init = true;
            } else {
                let step = self.cfg.ff_slew_ppm_per_s * dt;
                self.ff += (target - self.ff).clamp(-step, step);
            }
        }

        let mut reprimed = false;
        if self.reprime_asked {
            self.reprime_asked = false;
            self.do_reprime();
            reprimed = true;
        }

        // Feedback: latency error in seconds.
        let lat = obs.ring_fill_frames / fs + obs.device_delay_frames / fs;
        let raw_err = lat - self.cfg.target_latency.as_secs_f64();
        let tau = self.cfg.fill_filter.as_secs_f64().max(1e-3);

        // Start alignment: measure the start error with the loop frozen, then hold
        // it as a target offset that slews to zero (see RateConfig::start_window).
        let mut start_error = None;
        if !self.start_done {
            let t0 = *self.start_at.get_or_insert(obs.now);
            self.start_sum.0 += raw_err;
            self.start_sum.1 += 1;
            if obs.now.since(t0) < self.cfg.start_window {
                let ppm = self.ff.clamp(-self.cfg.max_ppm, self.cfg.max_ppm);
                return self.output(ppm, raw_err, 0.0, dev, None, reprimed, None);
            }
            self.start_done = true;
            self.target_offset = self.start_sum.0 / self.start_sum.1 as f64;
            self.filt = Some(raw_err - self.target_offset);
            start_error = Some(Nanos::from_ns((self.target_offset * 1e9) as i64));
        } else if self.target_offset != 0.0 {
            let step = self.cfg.start_slew_ms_per_s * 1e-3 * dt;
            self.target_offset -= self.target_offset.clamp(-step, step);
        }
        let err = raw_err - self.target_offset;

        // Excursion: freeze the PI while the raw error is beyond the bound; re-prime
        // (one drop/insert to the target) if it is still beyond after the hold.
        let mut resync = None;
        let mut frozen = false;
        let bound = self.cfg.resync.as_secs_f64();
        if err.abs() > bound {
            frozen = true;
            // An excursion is one-sided: beyond the bound on the other side, it is a
            // new one (a lagging sender catching up in a burst is not a steady offset).
            if self.over_sum.2 != err.signum() {
                self.over_since = None;
                self.over_sum = (0.0, 0, err.signum());
            }
            let since = *self.over_since.get_or_insert(obs.now);
            let held = obs.now.since(since);
            let window = Nanos::from_ns(
                (self.cfg.resync_hold.as_ns() - (RESYNC_WINDOW_S * 1e9) as i64).max(0),
            );
            if held >= window {
                self.over_sum.0 += raw_err;
                self.over_sum.1 += 1;
            }
            if held >= self.cfg.resync_hold {
                // Every reading of the hold was beyond the bound on this side: the mean
                // of the last second is a lasting offset, not a burst in transit.
                let amount = self.over_sum.0 / self.over_sum.1.max(1) as f64;
                resync = Some((amount * fs).round() as i64);
                self.resyncs += 1;
                self.do_reprime();
                reprimed = true;
            }
            self.last_over = Some(obs.now);
        } else {
            self.over_since = None;
            self.over_sum = (0.0, 0, 0.0);
            if let Some(l) = self.last_over {
                if obs.now.since(l).as_secs_f64() < CALM_S {
                    frozen = true;
                } else {
                    self.last_over = None;
                }
            }
        }

        let filt = match self.filt {
            None => {
                if frozen {
                    0.0
                } else {
                    err
                }
            }
            Some(f) if frozen => f,
            Some(f) => f + (err - f) * (dt / tau).min(1.0),
        };
        if !(frozen && self.filt.is_none()) {
            self.filt = Some(filt);
        }

        // PI: more latency than wanted means the device is too slow for the stream,
        // so produce fewer device frames per stream frame (lower ratio), and vice versa.
        let wn = 2.0 * std::f64::consts::PI / self.cfg.loop_period.as_secs_f64();
        let kp = 2.0 * wn * 1e6; // ppm per second of error
        let ki = wn * wn * 1e6; // ppm per second of error per second
        // Frozen, the output is the feed-forward plus the held integrator: no P action
        // from a filter caught mid-way into an excursion.
        let f_used = if resync.is_some() || frozen {
            0.0
        } else {
            filt
        };
        let max = self.cfg.max_ppm;
        // Anti-windup: the integrator stays inside the clamp around the feed-forward,
        // and integrates only while the output is not saturated (or when integrating
        // pulls it out of saturation) and not frozen by an excursion.
        let lo = -max - self.ff;
        let hi = max - self.ff;
        let integ = if frozen {
            self.integ
        } else {
            (self.integ - ki * f_used * dt).clamp(lo.min(hi), hi.max(lo))
        };
        let raw = self.ff + integ - kp * f_used;
        let mut ppm = raw.clamp(-max, max);
        let saturated = raw != ppm;
        if !saturated || (integ - self.integ) * (raw - ppm) < 0.0 {
            self.integ = integ;
        }
        self.integ = self.integ.clamp(lo.min(hi), hi.max(lo));
        // Ramp after a re-prime: from the last output toward the loop's value.
        if self.ramping {
            let step = self.cfg.ramp_ppm_per_s * dt;
            let d = ppm - self.last_ppm;
            if d.abs() <= step {
                self.ramping = false;
            } else {
                ppm = self.last_ppm + d.clamp(-step, step);
            }
        }
        // Saturation for longer than the hold is a fault: re-prime (to the current
        // error, if it is worth a drop/insert).
        if saturated && !self.ramping && !frozen {
            let since = *self.sat_since.get_or_insert(obs.now);
            if obs.now.since(since) >= self.cfg.saturation_hold {
                let n = (raw_err * fs).round() as i64;
                if raw_err.abs() > 0.002 {
                    resync = Some(n);
                    self.resyncs += 1;
                }
                self.do_reprime();
                reprimed = true;
                let step = self.cfg.ramp_ppm_per_s * dt;
                ppm = self.last_ppm + (self.ff - self.last_ppm).clamp(-step, step);
            }
        } else {
            self.sat_since = None;
        }
        self.output(ppm, err, filt, dev, resync, reprimed, start_error)
    }

    /// This step's [`RateOutput`] for a ratio of `ppm` (kept as the last output);
    /// `err` and `filt` in s.
    #[allow(clippy::too_many_arguments)]
    fn output(
        &mut self,
        ppm: f64,
        err: f64,
        filt: f64,
        dev: Option<Ppb>,
        resync_frames: Option<i64>,
        reprimed: bool,
        start_error: Option<Nanos>,
    ) -> RateOutput {
        self.last_ppm = ppm;
        RateOutput {
            ratio: 1.0 + ppm * 1e-6,
            ratio_ppb: Ppb::from_ppb(ppm * 1e3),
            feed_forward: Ppb::from_ppb(self.ff * 1e3),
            latency_error: Nanos::from_ns((err * 1e9) as i64),
            filtered_error: Nanos::from_ns((filt * 1e9) as i64),
            device_vs_mono: dev,
            resync_frames,
            reprimed,
            start_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dll_tracks_device_rate() {
        let mut d = DeviceClock::new(48000.0, 0.02);
        let rate = 48000.0 * (1.0 + 250e-6);
        for i in 0..12000u64 {
            let t = i * 10_000_000;
            // 64-frame quantisation of the position, like a timer-driven driver
            let pos = ((rate * t as f64 * 1e-9) as u64 / 64) * 64;
            d.update(MonoNs::from_ns(t), pos);
        }
        let ppm = d.ppb().unwrap().as_ppm();
        assert!((ppm - 250.0).abs() < 5.0, "{ppm}");
    }

    #[test]
    fn first_estimate_returns_the_p_terms_error_but_stays_below_the_clamp() {
        let period = Nanos::from_secs(10);
        let wn = 2.0 * std::f64::consts::PI / 10.0;
        let kp = 2.0 * wn * 1e6;
        // 300 ppm carried by the P term (filt = −300/kp s): no takeover, the output
        // runs at 600 ppm while the error returns.
        assert_eq!(
            first_estimate_integrator(300.0, period, -300.0 / kp, 2000.0),
            0.0
        );
        // ±1000 ppm: 2000 would sit on the clamp; the integrator takes 500 of it.
        for s in [1.0, -1.0] {
            let i = first_estimate_integrator(1000.0 * s, period, -1000.0 * s / kp, 2000.0);
            assert!((i + 500.0 * s).abs() < 1e-6, "{i}");
            let out = 1000.0 * s + i + 1000.0 * s;
            assert!((out - 1500.0 * s).abs() < 1e-6, "{out}");
        }
    }

    #[test]
    fn saturation_is_a_fault_reprimes_and_ramps() {
        let mut c = RateControl::new(RateConfig::new(48000, Nanos::from_ms(20)));
        // Latency permanently 3 ms short (inside the excursion bound) with no timing:
        // the ratio rises to the clamp; 3 s there is a fault: one re-prime (an insert
        // of the 3 ms), then the ratio ramps back, never stepping.
        let mut last = 0.0;
        let mut at_clamp = None;
        for i in 0..100_000u64 {
            let o = c.update(&Observation {
                now: MonoNs::from_ns(i * 10_000_000),
                ring_fill_frames: 48.0 * 7.0,
                device_delay_frames: 48.0 * 10.0,
                device_position: None,
                media_vs_mono: None,
            });
            let ppm = o.ratio_ppb.as_ppm();
            if o.reprimed {
                assert_eq!(o.resync_frames, Some(-144));
                let t0: u64 = at_clamp.expect("clamped before the re-prime");
                assert!((i - t0) as f64 * 0.01 >= 2.99, "{i} {t0}");
                assert!((last - ppm) <= 10.0 + 1e-9 && ppm < last, "{last} -> {ppm}");
                assert_eq!(c.rate_resets(), 1);
                return;
            }
            assert!(o.resync_frames.is_none());
            assert!(ppm >= last - 1e-9);
            assert!(ppm <= 2000.0);
            if ppm == 2000.0 && at_clamp.is_none() {
                at_clamp = Some(i);
            }
            last = ppm;
        }
        panic!("never re-primed");
    }

    /// At `t` ns: `fill_ms` of ring and 490 ms of device delay (a 750 ms target
    /// holds a 260 ms ring), no ALSA timing, a free-running media clock.
    fn obs(t: u64, fill_ms: f64) -> Observation {
        Observation {
            now: MonoNs::from_ns(t),
            ring_fill_frames: 48.0 * fill_ms,
            device_delay_frames: 48.0 * 490.0,
            device_position: None,
            media_vs_mono: Some(Ppb::ZERO),
        }
    }

    #[test]
    fn excursion_freezes_then_reprimes_once() {
        let mut c = RateControl::new(RateConfig::new(48000, Nanos::from_ms(750)));
        for i in 0..1000u64 {
            c.update(&obs(i * 20_000_000, 260.0));
        }
        let before = c.update(&obs(1000 * 20_000_000, 260.0)).ratio_ppb.as_ppm();
        // A short excursion (400 ms at +300 ms) leaves the loop untouched.
        for i in 1001..1021u64 {
            let o = c.update(&obs(i * 20_000_000, 560.0));
            assert_eq!(o.ratio_ppb.as_ppm(), before);
        }
        // A lasting one: one drop of 300 ms after 3 s, counted, no clamp.
        let mut drops = 0;
        for i in 1021..1200u64 {
            let fill = if drops == 0 { 560.0 } else { 260.0 };
            let o = c.update(&obs(i * 20_000_000, fill));
            assert!(o.ratio_ppb.as_ppm().abs() < 50.0, "{o:?}");
            if let Some(n) = o.resync_frames {
                assert_eq!(n, 48 * 300);
                drops += 1;
            }
        }
        assert_eq!((drops, c.rate_resets()), (1, 1));
    }

    #[test]
    fn resync_beyond_bound() {
        let mut c = RateControl::new(RateConfig::new(48000, Nanos::from_ms(20)));
        let obs = |t: u64| Observation {
            now: MonoNs::from_ns(t),
            ring_fill_frames: 48.0 * 40.0,
            device_delay_frames: 48.0 * 10.0,
            device_position: None,
            media_vs_mono: Some(Ppb::ZERO),
        };
        // a single glitched reading (or a short burst) does not resync
        for i in 0..300 {
            assert_eq!(c.update(&obs(1 + i * 9_000_000)).resync_frames, None);
        }
        let o = c.update(&obs(1 + 3_000_000_000));
        assert_eq!(o.resync_frames, Some(48 * 30));
        assert_eq!(c.resyncs(), 1);
    }

    /// A sender that lags and then catches up in bursts (a starved guest, a congested
    /// link) swings the fill far beyond the bound on both sides around its target:
    /// never a drop or insert (each would be a click), never a re-prime, and the PI
    /// does not wind up.
    #[test]
    fn lag_and_catch_up_never_resyncs() {
        let mut c = RateControl::new(RateConfig::new(48000, Nanos::from_ms(750)));
        // 2.5 s cycles: 1.2 s lagging (the ring draining to 60 ms below its target),
        // a burst, 1.2 s ahead, around the 260 ms ring target, for 5 minutes.
        for i in 0..15_000u64 {
            let phase = (i % 125) as f64 / 125.0;
            let fill = 260.0 + 180.0 * (2.0 * std::f64::consts::PI * phase).sin();
            let o = c.update(&obs(i * 20_000_000, fill));
            assert_eq!(o.resync_frames, None, "step {i}: {o:?}");
            assert!(o.ratio_ppb.as_ppm().abs() < 100.0, "step {i}: {o:?}");
        }
        assert_eq!((c.resyncs(), c.rate_resets()), (0, 0));
    }
}
