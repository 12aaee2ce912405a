//! A plain ALSA playback sink (blocking `snd_pcm_writei`, S32_LE).
//!
//! It plays the ring at the device's rate; when the ring runs dry it writes
//! silence and counts an underrun; xruns (EPIPE) are recovered with
//! `snd_pcm_prepare` and counted. Drift compensation and the real-time
//! thread live in the playout module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use crate::engine::output::{OutputError, OutputStats, PcmFormat};

/// Period size, frames at 48 kHz scale (5 ms).
const PERIOD_MS: u32 = 5;

/// Opens `device` for `fmt` and starts the playback thread.
///
/// Errors: [`OutputError::Alsa`] when the device cannot be opened or does
/// not accept the format.
pub fn spawn(
    device: &str,
    fmt: PcmFormat,
    mut ring: rtrb::Consumer<i32>,
    stop: Arc<AtomicBool>,
    stats: Arc<OutputStats>,
) -> Result<JoinHandle<Result<(), OutputError>>, OutputError> {
    let aerr = |e: alsa::Error| OutputError::Alsa {
        device: device.to_string(),
        reason: e.to_string(),
    };
    let pcm = PCM::new(device, Direction::Playback, false).map_err(aerr)?;
    let period = (fmt.rate * PERIOD_MS / 1000) as i64;
    {
        let hwp = HwParams::any(&pcm).map_err(aerr)?;
        hwp.set_channels(fmt.channels as u32).map_err(aerr)?;
        hwp.set_rate(fmt.rate, ValueOr::Nearest).map_err(aerr)?;
        hwp.set_format(Format::s32()).map_err(aerr)?;
        hwp.set_access(Access::RWInterleaved).map_err(aerr)?;
        hwp.set_period_size_near(period, ValueOr::Nearest)
            .map_err(aerr)?;
        hwp.set_buffer_size_near(period * 8).map_err(aerr)?;
        pcm.hw_params(&hwp).map_err(aerr)?;
    }
    let shift = 32 - fmt.bits as u32;
    let ch = fmt.channels as usize;
    let dev = device.to_string();
    Ok(std::thread::Builder::new()
        .name("aes67-alsa".into())
        .spawn(move || {
            let aerr = |e: alsa::Error| OutputError::Alsa {
                device: dev.clone(),
                reason: e.to_string(),
            };
            let io = pcm.io_i32().map_err(aerr)?;
            let mut buf = vec![0i32; period as usize * ch];
            let mut started = false;
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                let avail = ring.slots() / ch;
                if stopping && avail == 0 {
                    let _ = pcm.drain();
                    return Ok(());
                }
                let n = avail.min(period as usize);
                if n > 0 {
                    let chunk = ring.read_chunk(n * ch).expect("n <= slots");
                    for (o, s) in buf.iter_mut().zip(chunk) {
                        *o = s << shift;
                    }
                    started = true;
                } else if started {
                    stats.underruns.fetch_add(1, Ordering::Relaxed);
                }
                buf[n * ch..].iter_mut().for_each(|x| *x = 0);
                if !started {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                match io.writei(&buf) {
                    Ok(_) => {}
                    Err(e) if e.errno() == libc::EPIPE => {
                        stats.xruns.fetch_add(1, Ordering::Relaxed);
                        pcm.prepare().map_err(aerr)?;
                    }
                    Err(e) => pcm.try_recover(e, true).map_err(aerr)?,
                }
                if let Ok(d) = pcm.delay() {
                    stats.delay_frames.store(d.max(0) as u64, Ordering::Relaxed);
                }
                stats.frames.fetch_add(period as u64, Ordering::Relaxed);
            }
        })
        .expect("spawn ALSA thread"))
}

use crate::sys::pcm::{DevError, PcmDevice, SampleFormat};

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
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        }
        self.pcm.prepare().map_err(map_err)
    }
}
