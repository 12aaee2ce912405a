//! Linux: SO_TIMESTAMPING, recvmmsg and io_uring ingest, PTP sockets and the
//! PHC, ALSA, SCHED_FIFO.

pub mod alsa;
pub(super) mod clock;
pub mod cmsg;
pub(super) mod ptp;
pub mod recvmmsg;
pub mod rt;
pub(super) mod socket;
pub mod uring;

pub use uring::open_source;
