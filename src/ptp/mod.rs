//! PTP (IEEE 1588-2019) ordinary clock: a sans-IO core, a virtual clock, and
//! the Linux IO around them.
//!
//! - [`msg`]: message parse/serialize (§13);
//! - [`bmca`]: dataset comparison and state decision (§9.3);
//! - [`servo`]: linear-regression (default) and PI servos;
//! - [`port`]: the sans-IO port state machine (§9.2, E2E §11.3);
//! - [`clock`]: the virtual PTP clock over `CLOCK_MONOTONIC_RAW` and its
//!   thread-safe [`clock::PtpClockHandle`];
//! - [`time`]: [`time::PtpTimestamp`] and [`time::LocalNs`].
//!
//! Clock domains: see `docs/ptp.md`.

pub mod bmca;
pub mod clock;
pub mod msg;
pub mod port;
#[cfg(target_os = "linux")]
pub mod run;
pub mod servo;
#[cfg(test)]
mod sim;
#[cfg(target_os = "linux")]
pub mod sys;
pub mod time;

pub use clock::{ClockMap, PtpClockHandle, ServoState};
#[cfg(target_os = "linux")]
pub use run::{PtpArgs, run, spawn};
pub use time::{LocalNs, PtpTimestamp};
