//! The engine: the threads and pipelines built on the sans-IO cores and the
//! platform layer ([`crate::sys`]).
//!
//! - [`receiver`]: the ingest thread (one for a group of streams) feeding
//!   playout buffers and rings;
//! - [`ptp`]: the PTP driver thread (port + transport + servo), publishing to
//!   a [`ptp_clock::PtpClockHandle`];
//! - [`playout`]: the real-time playout thread with the steered resampler,
//!   over a [`crate::sys::pcm::PcmDevice`] ([`device::SimDevice`] or ALSA);
//! - [`output`]: plain sinks (ALSA, WAV, null) fed from a ring;
//! - [`sender`]: the RTP senders (many streams on one pacing thread);
//! - [`source`]: their audio sources (tone, file, stdin);
//! - [`capture`]: the `alsa:` capture source, steered onto the media clock
//!   (the mirror of [`playout`]);
//! - [`sap`]: the SAP control-plane thread (session directory and
//!   announcements, RFC 2974);
//! - [`tone`]: a test-tone generator feeding a playout ring.
//!
//! No argument parsing and no printing to stdout: that is the CLI's.
#![forbid(unsafe_code)]

pub mod capture;
pub mod device;
pub mod output;
pub mod playout;
pub mod ptp;
pub mod ptp_clock;
pub mod receiver;
pub mod sap;
pub mod sender;
pub mod source;
pub mod tone;
