//! The PTP transport on OSes other than Linux: not yet. The same names as
//! on Linux; every constructor returns `Unsupported`, so the engine's PTP
//! driver compiles everywhere and fails at start with a clear message.

use std::convert::Infallible;
use std::io;

use crate::sys::RxTimestamp;
use crate::sys::ptp::{TsInfo, TsMode};

const UNSUPPORTED: &str = "PTP on this OS: not yet — see the Windows issue";

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, UNSUPPORTED)
}

impl TsInfo {
    /// Hardware timestamps: never here.
    pub fn hardware_capable(&self) -> bool {
        false
    }
    /// Software kernel timestamps: never here.
    pub fn software_capable(&self) -> bool {
        false
    }
}

/// Interface timestamping capabilities.
///
/// Errors: always `Unsupported`.
pub fn ts_info(_iface: &str) -> io::Result<TsInfo> {
    Err(unsupported())
}

/// The two PTP sockets on one interface (cannot be opened here).
#[derive(Debug)]
pub struct PtpSockets {
    /// Timestamping mode.
    pub mode: TsMode,
    /// The transport.
    pub transport: crate::sys::ptp::Transport,
    never: Infallible,
}

impl PtpSockets {
    /// Opens both sockets on `iface`.
    ///
    /// Errors: always `Unsupported` ("PTP on this OS: not yet").
    pub fn open(_iface: &str, _want_hw: bool) -> io::Result<PtpSockets> {
        Err(unsupported())
    }
    /// Opens both sockets on `iface` over a transport.
    ///
    /// Errors: always `Unsupported`.
    pub fn open_with(
        _iface: &str,
        _want_hw: bool,
        _transport: crate::sys::ptp::Transport,
    ) -> io::Result<PtpSockets> {
        Err(unsupported())
    }
    /// The interface's MAC address.
    pub fn mac(&self) -> Option<[u8; 6]> {
        match self.never {}
    }
    /// Received Layer-2 frames not taken.
    pub fn frame_drops(&self) -> crate::ptp::ieee8023::FrameDrops {
        match self.never {}
    }
    /// The interface.
    pub fn iface(&self) -> &str {
        match self.never {}
    }
    /// Receive stamps taken in user space.
    pub fn user_space_rx(&self) -> bool {
        match self.never {}
    }
    /// Which receive timestamps are in use, and a note.
    pub fn timestamp_path(&self) -> (&'static str, &'static str) {
        match self.never {}
    }
    /// Which transmit timestamps are in use, and a note.
    pub fn tx_timestamp_path(&self) -> (&'static str, &'static str) {
        match self.never {}
    }
    /// Sends an event message; returns its TX timestamp id.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn send_event(&mut self, _data: &[u8]) -> io::Result<u32> {
        match self.never {}
    }
    /// Sends a general message.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn send_general(&mut self, _data: &[u8]) -> io::Result<()> {
        match self.never {}
    }
    /// Waits for either socket to be readable.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn wait(&self, _timeout_ms: u16) -> io::Result<()> {
        match self.never {}
    }
    /// Receives one event message with its timestamp.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn recv_event(&self, _buf: &mut [u8]) -> io::Result<Option<crate::sys::ptp::PtpRx>> {
        match self.never {}
    }
    /// Receives one general message.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn recv_general(&self, _buf: &mut [u8]) -> io::Result<Option<crate::sys::ptp::PtpRx>> {
        match self.never {}
    }
    /// Reads one transmit timestamp.
    ///
    /// Errors: never returns (no socket can exist).
    pub fn recv_tx_timestamp(
        &self,
        _buf: &mut [u8],
    ) -> io::Result<Option<(Option<RxTimestamp>, Option<u32>)>> {
        match self.never {}
    }
}

/// A PTP hardware clock (none here).
#[derive(Debug)]
pub struct Phc {
    never: Infallible,
}

impl Phc {
    /// Opens a PHC.
    ///
    /// Errors: always `Unsupported`.
    pub fn open(_index: i32, _writable: bool) -> io::Result<Phc> {
        Err(unsupported())
    }
    /// PHC − wall clock, ns.
    ///
    /// Errors: never returns (no PHC can exist).
    pub fn minus_realtime(&self, _samples: u32) -> io::Result<i64> {
        match self.never {}
    }
}
