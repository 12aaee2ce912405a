//! The platform layer: the one place that talks to the operating system, and
//! (with the BASS FFI module) the only place with `unsafe`.
//!
//! One OS module is chosen here, in one place (`imp`): `linux/` (SO_TIMESTAMPING,
//! recvmmsg, io_uring, PTP sockets and PHC, ALSA, SCHED_FIFO), `windows/`
//! (Winsock PTP sockets with `SO_TIMESTAMP` or user-space QPC stamps, QPC
//! clocks, the std-socket ingest) or `other/` (std/socket2 sockets with
//! user-space timestamps, no PTP).
//! Everything above this layer sees the same API on every OS:
//!
//! - [`clock`]: the local monotonic clock ([`MonoNs`]), the PTP reference
//!   (`CLOCK_MONOTONIC_RAW` on Linux) and the wall clock;
//! - [`socket`]: one multicast open/join and one interface lookup;
//! - [`PacketSource`] and its backends, chosen by [`open_source`];
//! - [`ptp`]: the PTP transport (event/general sockets, kernel timestamps, PHC);
//! - [`pcm`]: the playback-device seam, and [`alsa`];
//! - [`rt`]: real-time thread set-up;
//! - [`file`]: reading a small local file named by a user (an SDP) safely.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
#[path = "linux/mod.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows/mod.rs"]
mod imp;
#[cfg(not(any(target_os = "linux", windows)))]
#[path = "other/mod.rs"]
mod imp;

// Windows' pure parts (no OS calls), compiled on every OS for their tests;
// the control-message parser is public on every OS so that the `wincmsg`
// fuzz target (fuzz/) runs on Linux too. None of them has `unsafe`.
#[cfg(any(windows, test))]
#[path = "windows/qpc.rs"]
pub(crate) mod qpc;
#[cfg(any(windows, test))]
#[path = "windows/txstamp.rs"]
pub(crate) mod txstamp;
#[path = "windows/cmsg.rs"]
pub mod wincmsg;

pub mod clock;
pub mod file;
pub mod pcm;
pub mod portable;
pub mod ptp;
pub mod socket;

#[cfg(test)]
mod policy;

pub use imp::{alsa, open_source, rt};
#[cfg(target_os = "linux")]
pub use imp::{cmsg, recvmmsg, uring};

/// Which ingest backend to use (`--ingest auto|uring|recvmmsg`). io_uring
/// and recvmmsg are Linux's; elsewhere `Auto` is the portable std-socket
/// source ([`portable::UdpSource`]) and the others are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestKind {
    /// io_uring when `uring::probe` passes, else recvmmsg.
    #[default]
    Auto,
    /// io_uring only; an error if unavailable.
    Uring,
    /// `recvmmsg(2)` with `poll(2)`.
    Recvmmsg,
}

from_names!(IngestKind, "ingest backend", {
    "auto" => Auto,
    "uring" => Uring,
    "recvmmsg" => Recvmmsg,
});

use std::net::SocketAddr;

use crate::units::MonoNs;

/// A kernel (or, on other OSes, user-space) packet timestamp: of a received
/// datagram, or of a sent one (PTP TX timestamps from the error queue), as
/// carried in `SCM_TIMESTAMPING`.
///
/// Linux: software timestamps are `CLOCK_REALTIME` (ns since the Unix epoch);
/// hardware timestamps are in the NIC's PHC timescale (ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxTimestamp {
    /// Kernel software timestamp, `CLOCK_REALTIME` ns.
    Software(i64),
    /// NIC hardware timestamp, PHC ns (`SOF_TIMESTAMPING_RAW_HARDWARE`).
    Hardware(i64),
    /// A stamp already on the local reference clock ([`crate::ptp::LocalNs`]
    /// ns): Windows' QueryPerformanceCounter, from `SO_TIMESTAMP` or read in
    /// user space.
    Local(i64),
}

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy)]
pub struct RxMeta {
    /// Index of the stream (socket) this datagram arrived on, in the order the
    /// sockets were handed to the source.
    pub stream: usize,
    /// Kernel receive timestamp, if the socket delivered one.
    pub kernel_ts: Option<RxTimestamp>,
    /// Local monotonic time when user space saw the datagram.
    pub user_rx: MonoNs,
    /// Sender address.
    pub src: Option<SocketAddr>,
    /// The datagram did not fit the receive buffer (`MSG_TRUNC`); the bytes
    /// handed over are a prefix only.
    pub truncated: bool,
}

/// A batch receiver of datagrams from one or more sockets.
///
/// Contract: `poll` waits up to `timeout_ms` for datagrams, then calls
/// `on_packet(bytes, meta)` for each one received (possibly zero), and
/// returns how many it delivered. The byte slice is only valid during the
/// call. Errors are I/O errors of the underlying sockets.
pub trait PacketSource {
    /// Receives what is ready (waiting at most `timeout_ms` ms) and hands each
    /// datagram to `on_packet`. Returns the number delivered.
    fn poll(
        &mut self,
        timeout_ms: i32,
        on_packet: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> std::io::Result<usize>;

    /// A short name of the backend, e.g. `"recvmmsg"` or `"uring"`.
    fn backend(&self) -> &'static str;

    /// Asks later polls to sleep until `datagrams` sockets have datagrams
    /// ready, or, when `window_us` > 0, until that many µs have passed with
    /// at least one ready; the poll timeout bounds both. One wake-up then
    /// serves several packets. Backends that cannot wait this way ignore it
    /// (the default) and wake on the first datagram.
    fn set_wait_hint(&mut self, datagrams: usize, window_us: u32) {
        let _ = (datagrams, window_us);
    }
}

/// An opened ingest source and why it was chosen.
pub struct OpenedSource {
    /// The source; `source.backend()` names the backend in use. Not `Send`
    /// (the recvmmsg backend is not): open it on the thread that polls it.
    pub source: Box<dyn PacketSource>,
    /// With [`IngestKind::Auto`], why the preferred backend (io_uring) was
    /// not used (if it was not).
    pub fallback_reason: Option<String>,
}

impl std::fmt::Debug for OpenedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSource")
            .field("backend", &self.source.backend())
            .field("fallback_reason", &self.fallback_reason)
            .finish()
    }
}
