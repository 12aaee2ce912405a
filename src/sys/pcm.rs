//! The playback-device seam between the real-time playout loop and a sound card.

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
}
