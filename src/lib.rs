//! aes67: a Linux-first AES67 audio-over-IP engine.
//!
//! The crate is laid out by layer (see `docs/architecture.md`):
//!
//! - **Sans-IO cores**, `#![forbid(unsafe_code)]`, no OS calls, no threads:
//!   [`media`] (RTP, L16/L24, playout buffer, media clock, URL/SDP),
//!   [`ptp`] (IEEE 1588-2019 messages, BMCA, port, servo, clock map),
//!   [`rate`] (rate control and the steered resampler), [`sap`] (SAP
//!   announcements and the session directory, RFC 2974), [`units`];
//! - **The platform layer** [`sys`]: sockets, kernel timestamps, ingest
//!   backends, the PTP transport, clocks, ALSA, real-time threads: the only
//!   module with `unsafe` and with per-OS code;
//! - **The engine** [`engine`]: threads and pipelines over the two.
//! - **The status model** [`status`]: the one model of what a receiver,
//!   a sender, a PTP port and the service report, and its output forms (the
//!   CLI status line and JSON, the `aes67 status` screen, the service JSON,
//!   the BASS stats line); used by the CLI, the service and the BASS add-on.
//!
//! The CLI (`aes67` binary) sits on top, in `src/cli/`.
#![warn(missing_docs)]

/// Implements `FromStr` for a field-less enum from its names on the command
/// line and in configs; an unknown name is an error naming `what` and the
/// accepted names.
macro_rules! from_names {
    ($ty:ident, $what:literal, { $($name:literal => $v:ident),+ $(,)? }) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<$ty, String> {
                match s {
                    $($name => Ok($ty::$v),)+
                    _ => Err(format!(
                        "{} {s:?}: expected one of {}",
                        $what,
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

pub mod engine;
pub mod media;
#[cfg(feature = "service")]
pub mod nmos;
pub mod ptp;
pub mod rate;
pub mod sap;
#[cfg(feature = "service")]
pub mod service;
pub mod status;
pub mod sys;
pub mod units;
