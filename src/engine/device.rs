//! Software sound devices with a settable crystal error: [`SimDevice`] (playback,
//! clocked by `CLOCK_MONOTONIC`, played through the real-time playout path) and
//! [`SimCapture`] (capture of a tone, on `CLOCK_MONOTONIC` or a virtual clock, read by
//! the sender's capture loop).

use crate::sys::pcm::{CaptureDevice, DevError, PcmDevice};
use crate::units::MonoNs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A software playback device: consumes frames at `nominal × (1 + ppm·1e-6)` frames
/// per second of `CLOCK_MONOTONIC`, position advancing in steps of min(period, 64)
/// frames like a timer-driven driver. Underruns when its buffer empties, as ALSA does.
pub struct SimDevice {
    rate: f64,
    buffer: i64,
    period: i64,
    quantum: i64,
    start_threshold: i64,
    written: i64,
    started: Option<MonoNs>,
    /// Every frame written (first channel, full scale 2^31), if recording was asked for.
    pub recorded: Option<Vec<i32>>,
    channels: usize,
}

/// Sleeps until a simulated device running at `rate` frames/s has a whole
/// `period` (frames) where it now has `avail`, at most `timeout_ms`.
fn sleep_until_period(avail: i64, period: i64, rate: f64, timeout_ms: u32) {
    if avail < period {
        let s = ((period - avail) as f64 / rate).min(timeout_ms as f64 * 1e-3);
        std::thread::sleep(Duration::from_secs_f64(s + 50e-6));
    }
}

impl SimDevice {
    /// A device of `nominal` Hz off by `ppm`, with `buffer`/`period` frames.
    pub fn new(nominal: u32, ppm: f64, period: usize, buffer: usize, channels: usize) -> SimDevice {
        SimDevice {
            rate: nominal as f64 * (1.0 + ppm * 1e-6),
            buffer: buffer as i64,
            period: period as i64,
            quantum: period.clamp(1, 64) as i64,
            start_threshold: (buffer - period) as i64,
            written: 0,
            started: None,
            recorded: None,
            channels,
        }
    }
    /// Records the first channel of everything written (preallocates `frames`).
    pub fn record(mut self, frames: usize) -> SimDevice {
        self.recorded = Some(Vec::with_capacity(frames));
        self
    }
    fn hw(&self, now: MonoNs) -> i64 {
        match self.started {
            None => 0,
            Some(t0) => {
                let f = (now.since(t0).as_secs_f64() * self.rate) as i64;
                f / self.quantum * self.quantum
            }
        }
    }
}

impl PcmDevice for SimDevice {
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError> {
        let (avail, _) = self.avail_delay()?;
        if self.started.is_some() {
            sleep_until_period(avail, self.period, self.rate, timeout_ms);
        }
        Ok(())
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        let delay = self.written - self.hw(MonoNs::now());
        if self.started.is_some() && delay < 0 {
            return Err(DevError::Xrun);
        }
        Ok((self.buffer - delay, delay))
    }
    fn write(&mut self, buf: &[i32]) -> Result<usize, DevError> {
        let (avail, _) = self.avail_delay()?;
        let frames = (buf.len() / self.channels) as i64;
        if frames > avail {
            return Err(DevError::Other(-libc::EAGAIN));
        }
        if let Some(r) = &mut self.recorded {
            for f in buf.chunks(self.channels) {
                if r.len() < r.capacity() {
                    r.push(f[0]);
                }
            }
        }
        self.written += frames;
        if self.started.is_none() && self.written >= self.start_threshold {
            self.started = Some(MonoNs::now());
        }
        Ok(frames as usize)
    }
    fn recover(&mut self, _e: DevError) -> Result<(), DevError> {
        self.written = 0;
        self.started = None;
        Ok(())
    }
}

/// A software capture device: produces a sine of `freq_hz` (in its own sample
/// index, as a sound card digitising a tone that was written at its nominal rate,
/// e.g. snd-aloop) at `nominal × (1 + ppm·1e-6)` frames per second, its position
/// advancing in steps of min(period, 64) frames. Overruns (as ALSA's `EPIPE`) when
/// more than `buffer` frames wait unread; recovery restarts it.
///
/// The clock is `CLOCK_MONOTONIC`, or a virtual one ([`SimCapture::with_clock`]: ns
/// in an atomic the test advances; `wait` then returns at once).
pub struct SimCapture {
    rate: f64,
    buffer: i64,
    period: i64,
    quantum: i64,
    channels: usize,
    /// Radians per device frame, and the amplitude (full scale 2^31 = 1.0).
    w: f64,
    amp: f64,
    t0: Option<MonoNs>,
    /// Frames read since the (re)start, and in all (the tone's phase).
    read: i64,
    phase_frames: u64,
    clock: Option<Arc<AtomicU64>>,
}

impl SimCapture {
    /// A device of `nominal` Hz off by `ppm`, `period`/`buffer` frames, `channels`,
    /// capturing a `freq_hz` sine at `level` (fraction of full scale) on every channel.
    pub fn new(
        nominal: u32,
        ppm: f64,
        period: usize,
        buffer: usize,
        channels: usize,
        freq_hz: f64,
        level: f64,
    ) -> SimCapture {
        SimCapture {
            rate: nominal as f64 * (1.0 + ppm * 1e-6),
            buffer: buffer as i64,
            period: period as i64,
            quantum: period.clamp(1, 64) as i64,
            channels,
            w: 2.0 * std::f64::consts::PI * freq_hz / nominal as f64,
            amp: level,
            t0: None,
            read: 0,
            phase_frames: 0,
            clock: None,
        }
    }
    /// Runs on a virtual clock: `CLOCK_MONOTONIC` ns read from `ns`.
    pub fn with_clock(mut self, ns: Arc<AtomicU64>) -> SimCapture {
        self.clock = Some(ns);
        self
    }
    fn now(&self) -> MonoNs {
        match &self.clock {
            Some(c) => MonoNs::from_ns(c.load(Ordering::Relaxed)),
            None => MonoNs::now(),
        }
    }
    /// Frames captured since the (re)start at `now` (starting on first use).
    fn hw(&mut self) -> i64 {
        let now = self.now();
        let t0 = *self.t0.get_or_insert(now);
        let f = (now.since(t0).as_secs_f64() * self.rate) as i64;
        f / self.quantum * self.quantum
    }
}

impl CaptureDevice for SimCapture {
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError> {
        let (avail, _) = self.avail_delay()?;
        if self.clock.is_none() {
            sleep_until_period(avail, self.period, self.rate, timeout_ms);
        }
        Ok(())
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        let avail = self.hw() - self.read;
        if avail > self.buffer {
            return Err(DevError::Xrun);
        }
        Ok((avail, avail))
    }
    fn read(&mut self, buf: &mut [i32]) -> Result<usize, DevError> {
        let (avail, _) = self.avail_delay()?;
        let frames = ((buf.len() / self.channels) as i64).min(avail);
        for f in buf.chunks_mut(self.channels).take(frames as usize) {
            let v = (self.amp * (self.w * self.phase_frames as f64).sin() * 2147483648.0)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32;
            f.fill(v);
            self.phase_frames += 1;
        }
        self.read += frames;
        Ok(frames as usize)
    }
    fn recover(&mut self, _e: DevError) -> Result<(), DevError> {
        // Restart: the frames captured meanwhile are lost (the tone's phase jumps
        // by them, as on a card), the position counts from 0 again.
        let lost = (self.hw() - self.read).max(0) as u64;
        self.phase_frames += lost;
        self.t0 = None;
        self.read = 0;
        Ok(())
    }
}
