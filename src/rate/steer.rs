//! The one ring → resampler steering core, sans-IO: a [`RateControl`]
//! (ratio from the ring fill, the device position and the media clock's
//! rate) driving a [`SteeredResampler`], with the controller's resyncs
//! (drop frames from the source, or insert silence) applied.
//!
//! Two users, one core ([`SteerCore`]):
//! - the engine's playout thread (`engine::playout`), once per device period,
//!   with ALSA's delay and position;
//! - hosts that pull arbitrary blocks of float frames, such as the BASS
//!   add-on's STREAMPROC: [`PullSteer`] (resampling, or `steer=freq` where the
//!   host applies the ratio as a playback frequency).
//!
//! Every call takes an explicit `now` ([`MonoNs`], ns of `CLOCK_MONOTONIC`),
//! so tests drive it in virtual time. Everything is allocated at
//! construction; the per-period / per-pull calls never allocate, lock, log
//! or call the OS.

use super::resampler::{Quality, ResamplerError, SteeredResampler};
use super::{Observation, RateConfig, RateControl, RateOutput};
use crate::units::{MonoNs, Nanos, Ppb};

/// Where the steering reads media frames from: a lock-free ring, or a test
/// source. Counts are in interleaved samples (frames × channels).
pub trait FrameSource {
    /// Interleaved samples buffered.
    fn available(&self) -> usize;
    /// Reads exactly `out.len()` samples (callers check [`Self::available`])
    /// as f32 in ±1.0.
    fn read(&mut self, out: &mut [f32]);
    /// Drops up to `n` samples.
    fn skip(&mut self, n: usize);
}

/// The engine's receive ring (`rtrb`, interleaved i32 in the stream's native
/// range) as a [`FrameSource`]; samples are scaled by `scale` (2^-23 for
/// 24-bit, 2^-15 for 16-bit, exact in f32).
pub struct RingSource<'a> {
    /// The ring's consumer side.
    pub ring: &'a mut rtrb::Consumer<i32>,
    /// Factor from the native sample range to ±1.0.
    pub scale: f32,
}

impl FrameSource for RingSource<'_> {
    fn available(&self) -> usize {
        self.ring.slots()
    }
    fn read(&mut self, out: &mut [f32]) {
        if let Ok(chunk) = self.ring.read_chunk(out.len()) {
            let (a, b) = chunk.as_slices();
            for (o, s) in out.iter_mut().zip(a.iter().chain(b.iter())) {
                *o = *s as f32 * self.scale;
            }
            chunk.commit_all();
        } else {
            out.fill(0.0);
        }
    }
    fn skip(&mut self, n: usize) {
        let n = n.min(self.ring.slots());
        if let Ok(chunk) = self.ring.read_chunk(n) {
            chunk.commit_all();
        }
    }
}

/// Rate controller plus steered resampler: one control step per period
/// ([`SteerCore::control`]) and the resampler it steers.
pub struct SteerCore {
    ctl: RateControl,
    rs: SteeredResampler,
    chans: usize,
    /// Frames of silence the controller asked to insert, not yet inserted.
    insert_pending: usize,
}

impl SteerCore {
    /// A core for `chans` interleaved channels producing `chunk_frames` output
    /// frames per resampler call, tuned by `cfg`.
    ///
    /// Errors: the resampler's ([`ResamplerError::Channels`] for 0 or more
    /// than 64 channels).
    pub fn new(
        chans: usize,
        chunk_frames: usize,
        quality: Quality,
        cfg: RateConfig,
    ) -> Result<SteerCore, ResamplerError> {
        Ok(SteerCore {
            rs: SteeredResampler::new(chans, chunk_frames, quality)?,
            ctl: RateControl::new(cfg),
            chans,
            insert_pending: 0,
        })
    }

    /// One control step: feeds `obs` to the controller, applies a resync (a
    /// drop is taken from `src` at once, an insert is left pending for
    /// [`Self::take_insert`]) and steers the resampler to the new ratio.
    /// Returns the controller's decision (its `resync_frames`, in frames, says
    /// whether a resync happened).
    pub fn control(&mut self, obs: &Observation, src: &mut dyn FrameSource) -> RateOutput {
        let o = self.ctl.update(obs);
        if let Some(n) = o.resync_frames {
            if n > 0 {
                src.skip(n as usize * self.chans);
            } else {
                self.insert_pending = n.unsigned_abs() as usize;
            }
        }
        let _ = self.rs.set_ratio(o.ratio);
        o
    }

    /// Takes up to `max` frames of pending inserted silence.
    pub fn take_insert(&mut self, max: usize) -> usize {
        let n = self.insert_pending.min(max);
        self.insert_pending -= n;
        n
    }

    /// Drops any pending insert.
    pub fn clear_insert(&mut self) {
        self.insert_pending = 0;
    }

    /// The device restarted (xrun, suspend): the controller re-acquires and re-primes.
    pub fn device_restarted(&mut self) {
        self.ctl.device_restarted();
    }

    /// The caller re-established the fill target (after an underrun or overflow):
    /// the controller re-primes ([`RateControl::reprime`]).
    pub fn reprime(&mut self) {
        self.ctl.reprime();
    }

    /// Re-primes of the rate loop so far ([`RateControl::rate_resets`]).
    pub fn rate_resets(&self) -> u64 {
        self.ctl.rate_resets()
    }

    /// The steered resampler (to process chunks).
    pub fn resampler(&mut self) -> &mut SteeredResampler {
        &mut self.rs
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.chans
    }
}

/// Output frames the pull adapter's resampler produces per step (5 ms at 48 kHz).
pub const CHUNK_FRAMES: usize = 240;

/// Counters of a [`PullSteer`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SteerCounters {
    /// Pulls that ran out of input after priming (silence was output).
    pub underruns: u64,
    /// Resyncs (frames dropped or silence inserted) the controller asked for.
    pub resyncs: u64,
    /// Re-primes of the rate loop (excursions, saturation faults, underruns).
    pub rate_resets: u64,
    /// Last ratio (device frames per media frame), as ppb off 1.
    pub ratio_ppb: f64,
    /// Ring fill after the last pull, frames.
    pub fill_frames: usize,
}

/// The steered pull of one playing stream whose host pulls blocks of any
/// size (BASS's STREAMPROC): [`SteerCore`] plus a carry buffer.
///
/// Control signals, once per pull:
/// - feedback: the source fill *after* this pull, in frames (hosts pull in
///   bursts of their update period; after each pull the ring holds only the
///   margin, so this reading does not depend on the burst size). Target:
///   [`PullSteer::target_frames`]. Low-passed 2 s, PI with a 60 s period (the
///   [`RateConfig::new`] defaults);
/// - feed-forward: the media clock's rate against `CLOCK_MONOTONIC` (ppb)
///   against a nominal device on `CLOCK_MONOTONIC` (the host gives no device
///   position, so the device's own error is left to the feedback).
///
/// Priming: after creation (and after an underrun) the pull outputs silence
/// until the source holds the request plus the target; those pulls are not
/// underruns.
pub struct PullSteer {
    core: SteerCore,
    chans: usize,
    rate: u32,
    target: usize,
    /// Resampler input scratch (input_frames_max × chans).
    input: Vec<f32>,
    /// Resampled output not yet given to the host (CHUNK_FRAMES × chans).
    carry: Vec<f32>,
    carry_pos: usize,
    carry_len: usize,
    primed: bool,
    /// Primed at least once (a later priming is a re-prime).
    was_primed: bool,
    t0: Option<MonoNs>,
    counters: SteerCounters,
    /// No resampling; the ratio is applied by the host playing the stream
    /// at `rate / ratio` Hz (BASS_ATTRIB_FREQ).
    freq_mode: bool,
}

impl PullSteer {
    /// A steered pull for `chans` channels at `rate` Hz holding `target_ms`
    /// (ms) of audio in the source after each pull.
    ///
    /// Errors: the resampler's (channels 0 or above 64), as text.
    pub fn new(chans: usize, rate: u32, target_ms: u32) -> Result<PullSteer, String> {
        let target = (target_ms as u64 * rate as u64 / 1000) as usize;
        let cfg = RateConfig::new(rate, Nanos::from_ms(target_ms as i64));
        let mut core =
            SteerCore::new(chans, CHUNK_FRAMES, Quality::Medium, cfg).map_err(|e| e.to_string())?;
        Ok(PullSteer {
            input: vec![0.0; core.resampler().input_frames_max() * chans],
            carry: vec![0.0; CHUNK_FRAMES * chans],
            core,
            chans,
            rate,
            target,
            carry_pos: 0,
            carry_len: 0,
            primed: false,
            was_primed: false,
            t0: None,
            counters: SteerCounters::default(),
            freq_mode: false,
        })
    }

    /// Like [`PullSteer::new`], but the ratio is not applied by resampling:
    /// the host sets its playback frequency to [`PullSteer::freq_hz`] after
    /// each pull and samples pass unchanged.
    pub fn new_freq(chans: usize, rate: u32, target_ms: u32) -> Result<PullSteer, String> {
        let mut s = PullSteer::new(chans, rate, target_ms)?;
        s.freq_mode = true;
        Ok(s)
    }

    /// Frequency mode: the playback frequency that applies the current ratio
    /// (`rate / ratio`, Hz); `None` in resampling mode.
    pub fn freq_hz(&self) -> Option<f32> {
        self.freq_mode
            .then(|| (self.rate as f64 / (1.0 + self.counters.ratio_ppb * 1e-9)) as f32)
    }

    /// The source fill aimed at after each pull, frames.
    pub fn target_frames(&self) -> usize {
        self.target
    }

    /// Counters so far.
    pub fn counters(&self) -> SteerCounters {
        self.counters
    }

    /// Fills all of `out` (interleaved f32) from `src` at time `now`;
    /// `media_vs_mono` is the media clock's rate against CLOCK_MONOTONIC (PTP
    /// servo frequency when locked; `Some(Ppb(0.0))` free-running; `None` in
    /// holdover). Returns `out.len()` rounded down to whole frames, in samples.
    pub fn pull(
        &mut self,
        src: &mut dyn FrameSource,
        out: &mut [f32],
        now: MonoNs,
        media_vs_mono: Option<Ppb>,
    ) -> usize {
        let ch = self.chans;
        let want = out.len() / ch * ch;
        let out = &mut out[..want];
        if !self.primed {
            if src.available() / ch >= want / ch + self.target {
                self.primed = true;
                if self.was_primed {
                    self.core.reprime();
                }
                self.was_primed = true;
            } else {
                out.fill(0.0);
                self.counters.fill_frames = src.available() / ch;
                return want;
            }
        }
        let mut done = 0;
        if self.freq_mode {
            self.core.clear_insert();
            if src.available() < want {
                out.fill(0.0);
                self.counters.underruns += 1;
                self.primed = false;
            } else {
                src.read(out);
            }
            done = want;
        }
        while done < want {
            if self.carry_pos == self.carry_len {
                let ins = self.core.take_insert(CHUNK_FRAMES);
                if ins > 0 {
                    let n = ins * ch;
                    self.carry[..n].fill(0.0);
                    self.carry_pos = 0;
                    self.carry_len = n;
                } else {
                    let rs = self.core.resampler();
                    let need = rs.input_frames_next() * ch;
                    if src.available() < need {
                        out[done..].fill(0.0);
                        self.counters.underruns += 1;
                        self.primed = false;
                        break;
                    }
                    src.read(&mut self.input[..need]);
                    match rs.process_f32(&self.input[..need], &mut self.carry) {
                        Ok((_, produced)) => {
                            self.carry_pos = 0;
                            self.carry_len = produced * ch;
                        }
                        Err(_) => {
                            self.carry.fill(0.0);
                            self.carry_pos = 0;
                            self.carry_len = self.carry.len();
                        }
                    }
                }
            }
            let n = (self.carry_len - self.carry_pos).min(want - done);
            out[done..done + n].copy_from_slice(&self.carry[self.carry_pos..self.carry_pos + n]);
            self.carry_pos += n;
            done += n;
        }
        let fill = src.available() / ch;
        self.counters.fill_frames = fill;
        // Resampled but not yet given to the host: part of the buffered audio.
        let carried = (self.carry_len - self.carry_pos) / ch;
        let t0 = *self.t0.get_or_insert(now);
        // A nominal device on CLOCK_MONOTONIC: the DLL then reports 0 ppb and
        // the feed-forward is −media_vs_mono.
        let pos = (now.as_ns().saturating_sub(t0.as_ns()) as u128 * self.rate as u128
            / 1_000_000_000) as u64;
        let o = self.core.control(
            &Observation {
                now,
                ring_fill_frames: fill as f64 + carried as f64,
                device_delay_frames: 0.0,
                device_position: Some(pos),
                media_vs_mono,
            },
            src,
        );
        if o.resync_frames.is_some() {
            self.counters.resyncs += 1;
        }
        self.counters.ratio_ppb = o.ratio_ppb.as_ppb();
        self.counters.rate_resets = self.core.rate_resets();
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender at exactly 48 kHz on the virtual clock (1 ms packets) into a
    /// counted buffer; reads check the running sample counter (continuity).
    struct Sim {
        buf: std::collections::VecDeque<f32>,
        next: u64,
    }
    impl FrameSource for Sim {
        fn available(&self) -> usize {
            self.buf.len()
        }
        fn read(&mut self, out: &mut [f32]) {
            for o in out {
                *o = self.buf.pop_front().unwrap();
            }
        }
        fn skip(&mut self, n: usize) {
            for _ in 0..n.min(self.buf.len()) {
                self.buf.pop_front();
            }
        }
    }

    /// BASS pulling at +300 ppm against the sender (its device crystal fast),
    /// 100 ms bursts (its default update period) with ±3 ms wake-up jitter,
    /// over 30 simulated minutes: the fill after each pull converges to the
    /// 40 ms target, never underruns and never grows without bound.
    #[test]
    fn pull_300ppm_fast_converges_without_underrun() {
        run(300.0, 30 * 60);
    }

    #[test]
    fn pull_300ppm_slow_converges_without_overrun() {
        run(-300.0, 30 * 60);
    }

    fn run(ppm: f64, secs: u64) {
        let rate = 48_000u32;
        let mut st = PullSteer::new(2, rate, 40).unwrap();
        let mut src = Sim {
            buf: Default::default(),
            next: 0,
        };
        let dev_rate = rate as f64 * (1.0 + ppm * 1e-6);
        let mut out = vec![0f32; 2 * 12_000];
        let mut pulled_dev_frames = 0f64;
        let mut t_ns: u64 = 1_000_000_000;
        let end = t_ns + secs * 1_000_000_000;
        let mut max_fill = 0usize;
        let mut late = Vec::new();
        let mut ratios = Vec::new();
        let mut resyncs = 0;
        let mut resync_at = Vec::new();
        let mut lcg = 12345u64;
        let mut sent_frames = 0u64;
        let mut next_pull = t_ns + 100_000_000;
        while t_ns < end {
            // Sender: 48 frames per ms of virtual time.
            t_ns += 1_000_000;
            let due = (t_ns - 1_000_000_000) * rate as u64 / 1_000_000_000;
            while sent_frames < due {
                src.buf.push_back(src.next as f32);
                src.buf.push_back(-(src.next as f32));
                src.next += 1;
                sent_frames += 1;
            }
            // BASS: every ~100 ms (jittered) take what its device consumed.
            if t_ns >= next_pull {
                lcg = lcg
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                next_pull = (t_ns / 100_000_000 + 1) * 100_000_000 + (lcg >> 33) % 7 * 1_000_000;
                let elapsed = (t_ns - 1_000_000_000) as f64 / 1e9;
                let frames = (elapsed * dev_rate - pulled_dev_frames).floor() as usize;
                pulled_dev_frames += frames as f64;
                let n = st.pull(
                    &mut src,
                    &mut out[..frames * 2],
                    MonoNs::from_ns(t_ns),
                    Some(Ppb::from_ppb(0.0)),
                );
                assert_eq!(n, frames * 2);
                let c = st.counters();
                if t_ns > 120_000_000_000 {
                    max_fill = max_fill.max(c.fill_frames);
                    if t_ns > end - 60_000_000_000 {
                        late.push(c.fill_frames as f64);
                        ratios.push(c.ratio_ppb / 1000.0);
                    }
                }
                if c.resyncs > resyncs {
                    resyncs = c.resyncs;
                    resync_at.push(t_ns as f64 / 1e9 - 1.0);
                }
            }
        }
        let c = st.counters();
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        let mean_ratio = ratios.iter().sum::<f64>() / ratios.len() as f64;
        eprintln!(
            "{ppm:+} ppm: underruns {}, resyncs {}, resyncs at {resync_at:?} s, last ratio {:+.1} ppm, last-minute mean ratio {mean_ratio:+.1} ppm, mean fill {:.1} frames (target {}), max fill after 2 min {}",
            c.underruns,
            c.resyncs,
            c.ratio_ppb / 1000.0,
            mean,
            st.target_frames(),
            max_fill
        );
        assert_eq!(c.underruns, 0, "underruns");
        // Only the start-up (the first pulls after priming) may resync.
        assert!(
            resync_at.iter().all(|&t| t < 5.0),
            "resyncs after start-up at {resync_at:?} s"
        );
        // Converged: a device `ppm` fast needs 1 + ppm device frames per media frame.
        assert!(
            (mean_ratio - ppm).abs() < 20.0,
            "mean ratio {mean_ratio} ppm for a device at {ppm:+} ppm"
        );
        assert!(
            (mean - 1920.0).abs() < 240.0,
            "last-minute mean fill {mean} frames, target 1920"
        );
        assert!(
            max_fill < 1920 + 4800 + 1000,
            "fill grew to {max_fill} frames"
        );
    }
}
