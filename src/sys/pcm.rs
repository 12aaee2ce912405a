//! The device seams between the engine's real-time loops and a sound card:
//! [`PcmDevice`] (playback, the playout loop) and [`CaptureDevice`] (capture,
//! the sender's `alsa:` source).

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

/// What the capture loop (`engine::capture`) needs from a capture device.
/// Implementations must not allocate, lock or log in these calls.
pub trait CaptureDevice {
    /// Blocks until at least one period can be read, or `timeout_ms` passes.
    fn wait(&mut self, timeout_ms: u32) -> Result<(), DevError>;
    /// (avail, delay) in frames (`snd_pcm_avail_delay`): frames ready to read, and
    /// the capture delay (frames from the ADC to a read now).
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError>;
    /// Reads exactly `buf.len() / channels` interleaved frames, samples as `i32` at
    /// full scale 2^31 (callers check `avail` first). [`DevError::Xrun`] is an
    /// overrun (ALSA `EPIPE` on capture: the device's buffer filled up).
    fn read(&mut self, buf: &mut [i32]) -> Result<usize, DevError>;
    /// Recovers from `e` (overrun: prepare and start again; suspend: resume, else
    /// prepare and start).
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

/// Errors opening a playback device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmOpenError {
    /// No ALSA on this OS.
    #[error("ALSA is Linux-only")]
    Unsupported,
    /// The device refused a step (open, a hardware or software parameter).
    #[error("{step}: {reason}")]
    Device {
        /// The ALSA call that failed (e.g. `snd_pcm_open`).
        step: String,
        /// Its error.
        reason: String,
    },
    /// The device does not take a stream parameter.
    #[error("{param} {why} refused")]
    Refused {
        /// `channels` or `rate`.
        param: &'static str,
        /// What was asked and what the device takes, e.g. `4 (the device takes 2-2)`.
        why: String,
    },
}
