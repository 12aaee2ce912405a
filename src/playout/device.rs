//! Playback devices for the playout loop: ALSA ([`AlsaDevice`]) and a software
//! device clocked by `CLOCK_MONOTONIC` with a settable crystal error ([`SimDevice`]).

use crate::units::MonoNs;
use std::time::Duration;

/// A device error the loop recovers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevError {
    /// Underrun (ALSA `EPIPE`).
    Xrun,
    /// Suspended (ALSA `ESTRPIPE`).
    Suspended,
    /// Anything else (negative errno).
    Other(i32),
}

/// What the playout loop needs from a playback device. Implementations must not
/// allocate, lock or log in these calls.
pub trait PcmDevice {
    /// Blocks until at least one period can be written, or `timeout_ms` passes.
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError>;
    /// (avail, delay) in frames (`snd_pcm_avail_delay`).
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError>;
    /// Writes interleaved frames, samples as `i32` at full scale 2^31.
    fn write(&mut self, buf: &[i32]) -> Result<usize, DevError>;
    /// Recovers from `e` (xrun: prepare; suspend: resume, else prepare).
    fn recover(&mut self, e: DevError) -> Result<(), DevError>;
}

/// Device sample format negotiated with ALSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// `S32_LE`.
    S32,
    /// `S16_LE`.
    S16,
}

/// An ALSA playback PCM in interleaved read/write mode.
pub struct AlsaDevice {
    pcm: alsa::PCM,
    format: SampleFormat,
    channels: usize,
    bytes: Vec<u8>,
    /// Period (frames) granted by the driver.
    pub period: usize,
    /// Buffer (frames) granted by the driver.
    pub buffer: usize,
}

fn map_err(e: alsa::Error) -> DevError {
    match e.errno().abs() {
        libc::EPIPE => DevError::Xrun,
        libc::ESTRPIPE => DevError::Suspended,
        n => DevError::Other(-n),
    }
}

impl AlsaDevice {
    /// Opens `name` (e.g. `hw:Loopback,0,0`) for playback of `channels` × `rate` Hz with
    /// the given period and buffer (frames; the driver may round them, see the fields).
    /// Tries `S32_LE`, then `S16_LE`. Start threshold: buffer − period; avail_min: period.
    pub fn open(
        name: &str,
        channels: usize,
        rate: u32,
        period: usize,
        buffer: usize,
    ) -> Result<AlsaDevice, alsa::Error> {
        use alsa::pcm::{Access, Format, HwParams};
        use alsa::{Direction, ValueOr};
        let pcm = alsa::PCM::new(name, Direction::Playback, false)?;
        let format;
        let (p, b);
        {
            let hw = HwParams::any(&pcm)?;
            hw.set_access(Access::RWInterleaved)?;
            hw.set_channels(channels as u32)?;
            hw.set_rate(rate, ValueOr::Nearest)?;
            format = if hw.set_format(Format::s32()).is_ok() {
                SampleFormat::S32
            } else {
                hw.set_format(Format::s16())?;
                SampleFormat::S16
            };
            hw.set_period_size_near(period as alsa::pcm::Frames, ValueOr::Nearest)?;
            hw.set_buffer_size_near(buffer as alsa::pcm::Frames)?;
            pcm.hw_params(&hw)?;
            p = hw.get_period_size()? as usize;
            b = hw.get_buffer_size()? as usize;
        }
        {
            let sw = pcm.sw_params_current()?;
            sw.set_start_threshold((b - p) as alsa::pcm::Frames)?;
            sw.set_avail_min(p as alsa::pcm::Frames)?;
            pcm.sw_params(&sw)?;
        }
        pcm.prepare()?;
        let width = if format == SampleFormat::S32 { 4 } else { 2 };
        Ok(AlsaDevice {
            pcm,
            format,
            channels,
            bytes: Vec::with_capacity(b * channels * width),
            period: p,
            buffer: b,
        })
    }

    /// The negotiated sample format.
    pub fn format(&self) -> SampleFormat {
        self.format
    }
}

impl PcmDevice for AlsaDevice {
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError> {
        self.pcm.wait(Some(timeout_ms)).map(|_| ()).map_err(map_err)
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        self.pcm.avail_delay().map_err(map_err)
    }
    fn write(&mut self, buf: &[i32]) -> Result<usize, DevError> {
        self.bytes.clear();
        match self.format {
            SampleFormat::S32 => buf
                .iter()
                .for_each(|s| self.bytes.extend_from_slice(&s.to_le_bytes())),
            SampleFormat::S16 => buf.iter().for_each(|s| {
                self.bytes
                    .extend_from_slice(&((*s >> 16) as i16).to_le_bytes())
            }),
        }
        let width = if self.format == SampleFormat::S32 {
            4
        } else {
            2
        };
        let frame_bytes = width * self.channels;
        let io = self.pcm.io_bytes();
        let mut off = 0;
        while off < self.bytes.len() {
            let n = io.writei(&self.bytes[off..]).map_err(map_err)?;
            off += n * frame_bytes;
        }
        Ok(buf.len() / self.channels)
    }
    fn recover(&mut self, e: DevError) -> Result<(), DevError> {
        if e == DevError::Suspended {
            for _ in 0..100 {
                match self.pcm.resume() {
                    Ok(()) => return Ok(()),
                    Err(r) if r.errno().abs() == libc::EAGAIN => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        }
        self.pcm.prepare().map_err(map_err)
    }
}

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
