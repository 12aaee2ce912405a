//! A software playback device clocked by `CLOCK_MONOTONIC` with a settable
//! crystal error ([`SimDevice`]), played through the real-time playout path.

use crate::sys::pcm::{DevError, PcmDevice};
use crate::units::MonoNs;
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
        if avail >= self.period || self.started.is_none() {
            return Ok(());
        }
        let frames = (self.period - avail) as f64;
        let s = (frames / self.rate).min(timeout_ms as f64 * 1e-3);
        std::thread::sleep(Duration::from_secs_f64(s + 50e-6));
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
