//! Rate control for playing (non-decode) streams: BASS pulls at its device
//! rate, the engine's ring fills at the media clock rate. The steering is the
//! engine's sans-IO [`aes67::rate::steer::PullSteer`] (rate controller and
//! resampler, or `steer=freq` through BASS_ATTRIB_FREQ); this module only
//! names it for the STREAMPROC and fixes the add-on's target.

pub use aes67::rate::steer::{
    CHUNK_FRAMES, FrameSource, PullSteer as Steer, RingSource, SteerCounters,
};

/// Ring fill aimed at after each pull by playing streams, ms.
pub const TARGET_MS: u32 = 40;
