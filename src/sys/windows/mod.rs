//! Windows: Winsock PTP sockets with `SIO_TIMESTAMPING` / `SO_TIMESTAMP`
//! receive stamps when the OS and NIC give them, else QPC read in user space
//! right after the wait; QPC and `GetSystemTimePreciseAsFileTime` clocks;
//! the portable std-socket ingest ([`crate::sys::portable::UdpSource`]);
//! ALSA is a stand-in whose constructor returns `Unsupported`. The pure
//! parts (control-message parser and writer, QPC arithmetic, the
//! transmit-timestamp decisions) are `crate::sys::wincmsg`,
//! `crate::sys::qpc` and `crate::sys::txstamp`, compiled on every OS for
//! their tests (`wincmsg` also for its fuzz target).

#[path = "../other/alsa.rs"]
pub mod alsa;
pub(super) mod clock;
pub(super) mod ptp;
#[path = "../other/rt.rs"]
pub mod rt;
#[path = "../other/socket.rs"]
pub(super) mod socket;

pub use crate::sys::portable::open_single as open_source;
