//! The seam to the aes67 engine: starts one engine receiver
//! ([`aes67::engine::receiver::Receiver`]) for a stream config and hands back the ring
//! of interleaved i32 samples it fills.
//!
//! Mapping of the seeds' URL `jitter=` (ms): it is the engine's link offset
//! (AES67-2018 §6.6), i.e. how long each frame waits after its media-clock
//! time before BASS may read it. The media clock: in `CLOCK_MODE` PTP while
//! the add-on's PTP slave runs, the engine's `PtpMediaClock` (with the
//! `CLOCK_FALLBACK_TIMEOUT` rule of `ptpslave::FallbackSource`); otherwise the
//! engine's free-running monotonic clock, anchored on arrivals (System).

use aes67::engine::receiver::{Receiver, ReceiverOptions, ReceiverStats};
use aes67::media::stream::StreamConfig;
use aes67::units::Nanos;
use std::thread::JoinHandle;

use crate::errors::OpenError;

/// A running engine stream; dropping it stops the ingest thread.
pub struct EngineStream {
    rx: Receiver,
}

impl EngineStream {
    /// The receiver's counters (a lock-free snapshot, refreshed every 50 ms).
    pub fn stats(&self) -> ReceiverStats {
        self.rx.stats()
    }

    /// Stops the stream without waiting and hands over its ingest thread
    /// (see [`Receiver::take_ingest_thread`]); it ends within
    /// [`MAX_WAKE_MS`] plus its source's teardown.
    pub fn take_thread(&self) -> Option<JoinHandle<()>> {
        self.rx.take_ingest_thread()
    }
}

/// Longest the ingest thread of an add-on stream sleeps between wake-ups,
/// ms: a stop is noticed within this long, so `BASS_StreamFree` can wait
/// for the thread to end inside its 10 ms budget (see `crate::stream`).
pub const MAX_WAKE_MS: i64 = 2;

/// Starts the engine receiver for `cfg` (socket, multicast join, ingest
/// thread). Sockets are created in the calling thread's network namespace.
///
/// Errors: BASS_ERROR_FILEOPEN with the engine's message (bad interface,
/// bind or join failure).
///
/// `on_wake` runs on the ingest thread at every wake-up (at least every
/// [`MAX_WAKE_MS`]), never on BASS's audio thread.
pub fn start(
    cfg: &StreamConfig,
    on_wake: Option<Box<dyn FnMut() + Send>>,
) -> Result<(EngineStream, rtrb::Consumer<i32>), OpenError> {
    let opts = ReceiverOptions {
        link_offset: Nanos::from_ms(cfg.jitter_ms as i64),
        clock: crate::ptpslave::media_clock(cfg.sample_rate, cfg.mediaclk_offset.unwrap_or(0)),
        max_wake: Some(Nanos::from_ms(MAX_WAKE_MS)),
        on_wake,
        ..Default::default()
    };
    // The engine picks the ingest: SO_TIMESTAMPING + io_uring/recvmmsg on
    // Linux, std (Winsock) sockets with user-space timestamps elsewhere.
    let (rx, ring) =
        Receiver::start(cfg.clone(), opts).map_err(|e| OpenError::open(e.to_string()))?;
    Ok((EngineStream { rx }, ring))
}
