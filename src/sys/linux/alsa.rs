//! ALSA: [`AlsaDevice`] (playback: the engine's real-time playout loop and its
//! plain ALSA sink) and [`AlsaCapture`] (capture: the sender's `alsa:` source),
//! one PCM open and configuration for both.
//!
//! alsa-lib's own error printing (several stderr lines when, say, there is no
//! sound card) is silenced on the opening thread: the caller reports the one
//! [`PcmOpenError`] instead.

use crate::sys::pcm::PcmOpenError;

impl From<alsa::Error> for PcmOpenError {
    fn from(e: alsa::Error) -> PcmOpenError {
        PcmOpenError::Device {
            step: e.func().to_string(),
            reason: std::io::Error::from_raw_os_error(e.errno().abs()).to_string(),
        }
    }
}

/// Sends alsa-lib's error messages on this thread to a buffer instead of
/// stderr (`snd_lib_error_set_local`, via the alsa crate).
fn silence_alsa_lib() {
    let _ = alsa::Output::local_error_handler();
}

use crate::sys::pcm::{CaptureDevice, DevError, PcmDevice, SampleFormat};

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

/// One PCM opened and configured for interleaved read/write: the PCM, its sample
/// format, and the period and buffer (frames) the driver granted.
struct Opened {
    pcm: alsa::PCM,
    format: SampleFormat,
    period: usize,
    buffer: usize,
}

/// Opens `name` in `dir` for `channels` × `rate` Hz (tries `S32_LE`, then `S16_LE`)
/// with the given period and buffer (frames, rounded by the driver); software
/// parameters: avail_min one period, the start threshold from `start_threshold`
/// (given the granted period and buffer). A channel count or rate the device does
/// not take is [`PcmOpenError::Refused`] naming the parameter.
fn open_pcm(
    name: &str,
    dir: alsa::Direction,
    channels: usize,
    rate: u32,
    period: usize,
    buffer: usize,
    start_threshold: impl Fn(usize, usize) -> usize,
) -> Result<Opened, PcmOpenError> {
    use alsa::ValueOr;
    use alsa::pcm::{Access, Format, HwParams};
    silence_alsa_lib();
    let pcm = alsa::PCM::new(name, dir, false)?;
    let format;
    let (p, b);
    {
        let hw = HwParams::any(&pcm)?;
        hw.set_access(Access::RWInterleaved)?;
        if hw.set_channels(channels as u32).is_err() {
            let (lo, hi) = (hw.get_channels_min(), hw.get_channels_max());
            return Err(PcmOpenError::Refused {
                param: "channels",
                why: match (lo, hi) {
                    (Ok(lo), Ok(hi)) => format!("{channels} (the device takes {lo}-{hi})"),
                    _ => format!("{channels}"),
                },
            });
        }
        let nearest = hw
            .set_rate(rate, ValueOr::Nearest)
            .and_then(|_| hw.get_rate());
        if nearest.as_ref().ok() != Some(&rate) {
            return Err(PcmOpenError::Refused {
                param: "rate",
                why: match nearest {
                    Ok(n) => format!("{rate} Hz (nearest {n} Hz)"),
                    Err(e) => format!("{rate} Hz ({e})"),
                },
            });
        }
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
        sw.set_start_threshold(start_threshold(p, b) as alsa::pcm::Frames)?;
        sw.set_avail_min(p as alsa::pcm::Frames)?;
        pcm.sw_params(&sw)?;
    }
    pcm.prepare()?;
    Ok(Opened {
        pcm,
        format,
        period: p,
        buffer: b,
    })
}

impl AlsaDevice {
    /// Opens `name` (e.g. `hw:Loopback,0,0`) for playback of `channels` × `rate` Hz with
    /// the given period and buffer (frames; the driver may round them, see the fields).
    /// Tries `S32_LE`, then `S16_LE`. Start threshold: buffer − period; avail_min: period.
    /// alsa-lib's error printing is silenced on the calling thread.
    ///
    /// Errors: [`PcmOpenError::Device`] naming the ALSA call that failed;
    /// [`PcmOpenError::Refused`] for channels or a rate the device does not take.
    pub fn open(
        name: &str,
        channels: usize,
        rate: u32,
        period: usize,
        buffer: usize,
    ) -> Result<AlsaDevice, PcmOpenError> {
        let o = open_pcm(
            name,
            alsa::Direction::Playback,
            channels,
            rate,
            period,
            buffer,
            |p, b| b - p,
        )?;
        let width = if o.format == SampleFormat::S32 { 4 } else { 2 };
        Ok(AlsaDevice {
            pcm: o.pcm,
            format: o.format,
            channels,
            bytes: Vec::with_capacity(o.buffer * channels * width),
            period: o.period,
            buffer: o.buffer,
        })
    }

    /// Plays what is queued, then stops (`snd_pcm_drain`); errors are ignored
    /// (the device is being closed).
    pub fn drain(&mut self) {
        let _ = self.pcm.drain();
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

/// An ALSA capture PCM in interleaved read/write mode (the sender's `alsa:`
/// source). Started at open (`snd_pcm_start`), so the device clock runs from then on.
pub struct AlsaCapture {
    pcm: alsa::PCM,
    format: SampleFormat,
    channels: usize,
    bytes: Vec<u8>,
    /// Period (frames) granted by the driver.
    pub period: usize,
    /// Buffer (frames) granted by the driver.
    pub buffer: usize,
}

impl AlsaCapture {
    /// Opens `name` (e.g. `hw:Loopback,1,0`) for capture of `channels` × `rate` Hz
    /// with the given period and buffer (frames; the driver may round them, see the
    /// fields), `S32_LE` else `S16_LE`, avail_min one period, and starts it.
    /// alsa-lib's error printing is silenced on the calling thread.
    ///
    /// Errors: [`PcmOpenError::Device`] naming the ALSA call that failed;
    /// [`PcmOpenError::Refused`] for channels or a rate the device does not take.
    pub fn open(
        name: &str,
        channels: usize,
        rate: u32,
        period: usize,
        buffer: usize,
    ) -> Result<AlsaCapture, PcmOpenError> {
        let o = open_pcm(
            name,
            alsa::Direction::Capture,
            channels,
            rate,
            period,
            buffer,
            |_, _| 1,
        )?;
        o.pcm.start()?;
        let width = if o.format == SampleFormat::S32 { 4 } else { 2 };
        Ok(AlsaCapture {
            pcm: o.pcm,
            format: o.format,
            channels,
            bytes: vec![0; o.buffer * channels * width],
            period: o.period,
            buffer: o.buffer,
        })
    }

    /// The negotiated sample format.
    pub fn format(&self) -> SampleFormat {
        self.format
    }
}

impl CaptureDevice for AlsaCapture {
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError> {
        self.pcm.wait(Some(timeout_ms)).map(|_| ()).map_err(map_err)
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        self.pcm.avail_delay().map_err(map_err)
    }
    fn read(&mut self, buf: &mut [i32]) -> Result<usize, DevError> {
        let width = if self.format == SampleFormat::S32 {
            4
        } else {
            2
        };
        let frame_bytes = width * self.channels;
        let frames = (buf.len() / self.channels).min(self.bytes.len() / frame_bytes);
        let len = frames * frame_bytes;
        let io = self.pcm.io_bytes();
        let mut off = 0;
        while off < len {
            let n = io.readi(&mut self.bytes[off..len]).map_err(map_err)?;
            off += n * frame_bytes;
        }
        match self.format {
            SampleFormat::S32 => {
                for (d, b) in buf.iter_mut().zip(self.bytes[..len].chunks_exact(4)) {
                    *d = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            SampleFormat::S16 => {
                for (d, b) in buf.iter_mut().zip(self.bytes[..len].chunks_exact(2)) {
                    *d = (i16::from_le_bytes([b[0], b[1]]) as i32) << 16;
                }
            }
        }
        Ok(frames)
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
        self.pcm.prepare().map_err(map_err)?;
        self.pcm.start().map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_one_error_naming_the_call() {
        // alsa-lib's own stderr lines are silenced (run with --nocapture
        // and no "ALSA lib" line appears).
        let Err(e) = AlsaDevice::open("hw:CARD=aes67nosuchcard", 2, 48000, 240, 1920) else {
            panic!("a card that does not exist opened");
        };
        assert!(matches!(e, PcmOpenError::Device { .. }), "{e:?}");
        assert!(e.to_string().contains("snd_pcm_open"), "{e}");
        let Err(e) = AlsaCapture::open("hw:CARD=aes67nosuchcard", 2, 48000, 240, 1920) else {
            panic!("a capture card that does not exist opened");
        };
        assert!(e.to_string().contains("snd_pcm_open"), "{e}");
    }
}
