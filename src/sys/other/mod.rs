//! Every OS but Linux (Windows first): std and socket2 sockets with user-space
//! receive timestamps, the `Instant`/`SystemTime` clocks; ALSA and PTP are
//! stand-ins whose constructors return `Unsupported`.

pub mod alsa;
pub(super) mod clock;
pub(super) mod ptp;
pub mod rt;
pub(super) mod socket;

use std::io;

use socket2::Socket;

use crate::sys::portable::UdpSource;
use crate::sys::{IngestKind, OpenedSource};

/// Opens the ingest source over `socks`: [`IngestKind::Auto`] is the
/// portable std-socket source ([`UdpSource`], one socket per ingest thread).
///
/// Errors: `Unsupported` for io_uring or recvmmsg (Linux-only) and for more
/// than one socket; the socket cannot be made blocking.
pub fn open_source(kind: IngestKind, mut socks: Vec<Socket>) -> io::Result<OpenedSource> {
    if kind != IngestKind::Auto {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("ingest backend {kind:?} is Linux-only; use auto"),
        ));
    }
    if socks.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "one stream per ingest thread on this OS (no Receiver::start_group)",
        ));
    }
    let sock = socks.pop().expect("one socket");
    Ok(OpenedSource {
        source: Box::new(UdpSource::new(sock)?),
        fallback_reason: None,
    })
}
