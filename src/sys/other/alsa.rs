//! ALSA on OSes other than Linux: the same names as on Linux, whose
//! constructors return `Unsupported` ("ALSA is Linux-only").

use std::convert::Infallible;

use crate::sys::pcm::{CaptureDevice, DevError, PcmDevice, PcmOpenError, SampleFormat};

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

    /// Plays what is queued, then stops.
    pub fn drain(&mut self) {
        match self.never {}
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

/// An ALSA capture PCM (cannot be opened here).
pub struct AlsaCapture {
    /// Period (frames) granted by the driver.
    pub period: usize,
    /// Buffer (frames) granted by the driver.
    pub buffer: usize,
    never: Infallible,
}

impl AlsaCapture {
    /// Opens a capture PCM.
    ///
    /// Errors: always [`PcmOpenError::Unsupported`].
    pub fn open(
        _name: &str,
        _channels: usize,
        _rate: u32,
        _period: usize,
        _buffer: usize,
    ) -> Result<AlsaCapture, PcmOpenError> {
        Err(PcmOpenError::Unsupported)
    }

    /// The negotiated sample format.
    pub fn format(&self) -> SampleFormat {
        match self.never {}
    }
}

impl CaptureDevice for AlsaCapture {
    fn wait(&mut self, _timeout_ms: u32) -> Result<(), DevError> {
        match self.never {}
    }
    fn avail_delay(&mut self) -> Result<(i64, i64), DevError> {
        match self.never {}
    }
    fn read(&mut self, _buf: &mut [i32]) -> Result<usize, DevError> {
        match self.never {}
    }
    fn recover(&mut self, _e: DevError) -> Result<(), DevError> {
        match self.never {}
    }
}
