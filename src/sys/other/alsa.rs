//! ALSA on OSes other than Linux: the same names as on Linux, whose
//! constructors return `Unsupported` ("ALSA is Linux-only").

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use crate::engine::output::{OutputError, OutputStats, PcmFormat};
use crate::sys::pcm::{DevError, PcmDevice, PcmOpenError, SampleFormat};

/// Starts the plain ALSA sink.
///
/// Errors: always [`OutputError::Alsa`] ("ALSA is Linux-only").
pub fn spawn(
    device: &str,
    _fmt: PcmFormat,
    _ring: rtrb::Consumer<i32>,
    _stop: Arc<AtomicBool>,
    _stats: Arc<OutputStats>,
) -> Result<JoinHandle<Result<(), OutputError>>, OutputError> {
    Err(OutputError::Alsa {
        device: device.to_string(),
        reason: PcmOpenError::Unsupported.to_string(),
    })
}

/// An ALSA playback PCM (cannot be opened here).
pub struct AlsaDevice {
    /// Period (frames) granted by the driver.
    pub period: usize,
    /// Buffer (frames) granted by the driver.
    pub buffer: usize,
    never: Infallible,
}

impl AlsaDevice {
    /// Opens a playback PCM.
    ///
    /// Errors: always [`PcmOpenError::Unsupported`].
    pub fn open(
        _name: &str,
        _channels: usize,
        _rate: u32,
        _period: usize,
        _buffer: usize,
    ) -> Result<AlsaDevice, PcmOpenError> {
        Err(PcmOpenError::Unsupported)
    }

    /// The negotiated sample format.
    pub fn format(&self) -> SampleFormat {
        match self.never {}
    }
}

impl PcmDevice for AlsaDevice {
    fn wait(&mut self, _timeout_ms: u32) -> Result<(), DevError> {
        match self.never {}
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        match self.never {}
    }
    fn write(&mut self, _buf: &[i32]) -> Result<usize, DevError> {
        match self.never {}
    }
    fn recover(&mut self, _e: DevError) -> Result<(), DevError> {
        match self.never {}
    }
}
