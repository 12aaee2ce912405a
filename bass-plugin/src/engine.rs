//! The seam to the aes67 engine's receiver: starts one engine stream for a
//! config and hands back the ring of interleaved i32 samples it fills.

use std::sync::Arc;

use aes67::stream::StreamConfig;

use crate::errors::OpenError;
use crate::stats::SharedStats;

/// A running engine stream; dropping it stops it.
pub struct EngineStream {
    _private: (),
}

/// Starts the engine receiver for `cfg`.
///
/// Errors: BASS_ERROR_FILEOPEN with the engine's message.
pub fn start(cfg: &StreamConfig, _stats: Arc<SharedStats>) -> Result<(EngineStream, rtrb::Consumer<i32>), OpenError> {
    let _ = cfg;
    Err(OpenError::open("the engine receiver is not in this build yet"))
}
