//! Every OS but Linux and Windows: std and socket2 sockets with user-space
//! receive timestamps, the `Instant`/`SystemTime` clocks; ALSA and PTP are
//! stand-ins whose constructors return `Unsupported`.

pub mod alsa;
pub(super) mod clock;
pub(super) mod ptp;
pub mod rt;
pub(super) mod socket;

pub use crate::sys::portable::open_single as open_source;
