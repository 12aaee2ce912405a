//! aes67: a Linux-first AES67 audio-over-IP engine.
//!
//! Layout:
//! - sans-IO cores: [`rtp`] (RFC 3550 parse, L16/L24 decode), [`jitter`]
//!   (playout buffer by RTP timestamp), [`stream`] (URL and SDP → one
//!   stream config), `ptp` (IEEE 1588-2019 port and servo), `rate` (rate control);
//! - IO around them: [`net`] (sockets, kernel timestamps, ingest backends),
//!   [`output`] (ALSA, WAV, null sinks), [`receiver`] (the pipeline);
//! - [`rig`]: network-namespace rigs for tests and harnesses.
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
pub mod cli;
pub mod clock;
pub mod jitter;
#[cfg(target_os = "linux")]
pub mod monitor;
pub mod net;
pub mod output;
#[cfg(target_os = "linux")]
pub mod playout;
pub mod ptp;
pub mod rate;
pub mod receiver;
#[cfg(target_os = "linux")]
pub mod rig;
pub mod rtp;
pub mod sender;
pub mod stream;
pub mod units;
