//! PTP (IEEE 1588-2019) ordinary clock: the sans-IO core. Its IO (sockets,
//! timestamps, PHC) is in [`crate::sys::ptp`]; the driver thread in
//! [`crate::engine::ptp`].
//!
//! - [`ieee8023`]: the Ethernet frame of the IEEE 802.3 transport (Annex E);
//! - [`msg`]: message parse/serialize (§13);
//! - [`bmca`]: dataset comparison and state decision (§9.3);
//! - [`servo`]: linear-regression (default) and PI servos;
//! - [`port`]: the sans-IO port state machine (§9.2, E2E §11.3);
//! - [`clock`]: the virtual PTP clock map over the local reference clock
//!   (`CLOCK_MONOTONIC_RAW` on Linux);
//! - [`time`]: [`time::PtpTimestamp`] and [`time::LocalNs`].
//!
//! Clock domains: see `docs/ptp.md`.
#![forbid(unsafe_code)]

pub mod bmca;
pub mod clock;
pub mod ieee8023;
pub mod msg;
pub mod port;
pub mod servo;
#[cfg(test)]
mod sim;
pub mod time;

pub use clock::{ClockMap, ServoState};
pub use time::{LocalNs, LogInterval, PtpTimestamp};
