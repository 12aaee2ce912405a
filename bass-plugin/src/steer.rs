//! Rate control for playing (non-decode) streams: BASS pulls at its device
//! rate, the engine's ring fills at the media clock rate. [`Steer`] sits in
//! the STREAMPROC between the two: the engine's sans-IO
//! [`aes67::rate::RateControl`] decides a ratio (device frames per media
//! frame), and the engine's [`aes67::rate::resampler::SteeredResampler`]
//! applies it. Sans-IO: every call takes an explicit `now`, so tests drive it
//! in virtual time.
//!
//! Control signals, once per STREAMPROC call:
//! - feedback: the ring fill *after* this call's pull, in frames (BASS pulls
//!   in bursts of its update period; after each pull the ring holds only the
//!   margin, so this reading does not depend on the burst size). Target:
//!   [`Steer::target_frames`] (default 40 ms). Low-passed 2 s, PI with a 60 s
//!   period (the engine's defaults);
//! - feed-forward: the media clock's rate against `CLOCK_MONOTONIC` (the PTP
//!   servo frequency, ppb, when the stream runs on a locked PTP clock;
//!   0 otherwise) against a nominal device on `CLOCK_MONOTONIC` (BASS gives no
//!   device position, so the device's own error is left to the feedback).
//!
//! Priming: after creation (and after an underrun) the stream outputs
//! silence until the ring holds the request plus the target; those calls
//! are not underruns. Everything is allocated in [`Steer::new`]; `pull`
//! never allocates, locks or logs.

use aes67::rate::resampler::{Quality, SteeredResampler};
use aes67::rate::{Observation, RateConfig, RateControl};
use aes67::units::{MonoNs, Nanos, Ppb};

/// Ring fill aimed at after each pull by playing streams, ms.
pub const TARGET_MS: u32 = 40;

/// Output frames the resampler produces per step (5 ms at 48 kHz).
pub const CHUNK_FRAMES: usize = 240;

/// Counters of a [`Steer`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct SteerCounters {
    /// Pulls that ran out of input after priming (silence was output).
    pub underruns: u64,
    /// Resyncs (frames dropped or silence inserted) the controller asked for.
    pub resyncs: u64,
    /// Last ratio (device frames per media frame), as ppb off 1.
    pub ratio_ppb: f64,
    /// Ring fill after the last pull, frames.
    pub fill_frames: usize,
}

/// The steered pull of one playing stream.
pub struct Steer {
    ctl: RateControl,
    rs: SteeredResampler,
    chans: usize,
    rate: u32,
    target: usize,
    /// Resampler input scratch (input_frames_max × chans).
    input: Vec<f32>,
    /// Resampled output not yet given to BASS (CHUNK_FRAMES × chans).
    carry: Vec<f32>,
    carry_pos: usize,
    carry_len: usize,
    primed: bool,
    insert: usize,
    t0: Option<MonoNs>,
    counters: SteerCounters,
    /// `steer=freq`: no resampling; the ratio is applied by BASS playing the
    /// stream at `rate / ratio` Hz (BASS_ATTRIB_FREQ).
    freq_mode: bool,
}

/// Where `pull` reads media frames from: the engine's ring, or a test source.
pub trait FrameSource {
    /// Interleaved samples buffered.
    fn available(&self) -> usize;
    /// Reads exactly `out.len()` samples (callers check [`Self::available`])
    /// as f32 in ±1.0.
    fn read(&mut self, out: &mut [f32]);
    /// Drops up to `n` samples.
    fn skip(&mut self, n: usize);
}

impl Steer {
    /// A steered pull for `chans` channels at `rate` Hz holding `target_ms`
    /// of audio in the ring after each pull.
    ///
    /// Errors: the resampler's (channels 0 or above 64).
    pub fn new(chans: usize, rate: u32, target_ms: u32) -> Result<Steer, String> {
        let target = (target_ms as u64 * rate as u64 / 1000) as usize;
        let cfg = RateConfig::new(rate, Nanos::from_ms(target_ms as i64));
        let rs = SteeredResampler::new(chans, CHUNK_FRAMES, Quality::Medium)
            .map_err(|e| e.to_string())?;
        Ok(Steer {
            input: vec![0.0; rs.input_frames_max() * chans],
            carry: vec![0.0; CHUNK_FRAMES * chans],
            ctl: RateControl::new(cfg),
            rs,
            chans,
            rate,
            target,
            carry_pos: 0,
            carry_len: 0,
            primed: false,
            insert: 0,
            t0: None,
            counters: SteerCounters::default(),
            freq_mode: false,
        })
    }

    /// Like [`Steer::new`], but the ratio is not applied by resampling: the
    /// caller sets BASS_ATTRIB_FREQ to [`Steer::freq_hz`] after each pull.
    pub fn new_freq(chans: usize, rate: u32, target_ms: u32) -> Result<Steer, String> {
        let mut s = Steer::new(chans, rate, target_ms)?;
        s.freq_mode = true;
        Ok(s)
    }

    /// `steer=freq` mode: the playback frequency that applies the current
    /// ratio (`rate / ratio`, Hz); `None` in resampling mode.
    pub fn freq_hz(&self) -> Option<f32> {
        self.freq_mode
            .then(|| (self.rate as f64 / (1.0 + self.counters.ratio_ppb * 1e-9)) as f32)
    }

    /// The ring fill aimed at after each pull, frames.
    pub fn target_frames(&self) -> usize {
        self.target
    }

    /// Counters so far.
    pub fn counters(&self) -> SteerCounters {
        self.counters
    }

    /// Fills all of `out` (interleaved f32) from `src` at time `now`;
    /// `media_vs_mono` is the media clock's rate against CLOCK_MONOTONIC (PTP
    /// servo frequency when locked; `Some(0)` free-running; `None` in holdover).
    /// Returns `out.len()` rounded down to whole frames.
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
            } else {
                out.fill(0.0);
                self.counters.fill_frames = src.available() / ch;
                return want;
            }
        }
        let mut done = 0;
        if self.freq_mode {
            self.insert = 0;
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
                if self.insert > 0 {
                    let n = (self.insert * ch).min(self.carry.len());
                    self.carry[..n].fill(0.0);
                    self.carry_pos = 0;
                    self.carry_len = n;
                    self.insert -= n / ch;
                } else {
                    let need = self.rs.input_frames_next() * ch;
                    if src.available() < need {
                        out[done..].fill(0.0);
                        self.counters.underruns += 1;
                        self.primed = false;
                        break;
                    }
                    src.read(&mut self.input[..need]);
                    match self.rs.process_f32(&self.input[..need], &mut self.carry) {
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
        // Resampled but not yet given to BASS: part of the buffered audio.
        let carried = (self.carry_len - self.carry_pos) / ch;
        let t0 = *self.t0.get_or_insert(now);
        // A nominal device on CLOCK_MONOTONIC: the DLL then reports 0 ppb and
        // the feed-forward is −media_vs_mono.
        let pos = (now.0.saturating_sub(t0.0) as u128 * self.rate as u128 / 1_000_000_000) as u64;
        let o = self.ctl.update(&Observation {
            now,
            ring_fill_frames: fill as f64 + carried as f64,
            device_delay_frames: 0.0,
            device_position: Some(pos),
            media_vs_mono,
        });
        if let Some(r) = o.resync_frames {
            self.counters.resyncs += 1;
            if r > 0 {
                src.skip(r as usize * ch);
            } else {
                self.insert = r.unsigned_abs() as usize;
            }
        }
        let _ = self.rs.set_ratio(o.ratio);
        self.counters.ratio_ppb = o.ratio_ppb.0;
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
        let mut st = Steer::new(2, rate, 40).unwrap();
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
                    MonoNs(t_ns),
                    Some(Ppb(0.0)),
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
