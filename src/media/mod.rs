//! Sans-IO media cores: RTP packets and the L16/L24 codec ([`rtp`]), the
//! playout buffer placed by RTP timestamp ([`jitter`]), the media clock maths
//! ([`clock`]), source pinning ([`source`]), the URL/SDP stream description
//! ([`stream`]), the sender's SDP and packet format ([`session`]), and the
//! test-tone sine generator ([`tone`]).
//!
//! No OS calls, no threads: bytes and an explicit `now` in, results out.
#![forbid(unsafe_code)]

pub mod clock;
pub mod jitter;
pub mod rtp;
pub mod session;
pub mod source;
pub mod stream;
pub mod tone;
