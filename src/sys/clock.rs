//! The host's clocks: the local monotonic clock handed to every sans-IO core
//! as `now` ([`MonoNs`], `CLOCK_MONOTONIC`), the local reference the virtual PTP
//! clock is laid over ([`LocalNs`], `CLOCK_MONOTONIC_RAW`) and the wall clock
//! (`CLOCK_REALTIME`, ns since the Unix epoch). Portable parts; the readers
//! come from the OS module (`imp`).

use crate::ptp::LocalNs;
use crate::units::MonoNs;

pub use super::imp::clock::{local_now, monotonic_now, realtime_now_ns};

impl MonoNs {
    /// Reads the local monotonic clock now (`CLOCK_MONOTONIC` on Linux,
    /// QueryPerformanceCounter on Windows), ns: [`monotonic_now`].
    pub fn now() -> MonoNs {
        monotonic_now()
    }
}

/// Reads `(CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW)` as close together as
/// possible (the raw reading is the midpoint of two).
pub fn mono_raw_pair() -> (MonoNs, LocalNs) {
    let a = local_now();
    let m = MonoNs::now();
    let b = local_now();
    (m, LocalNs::from_ns(a.as_ns() + (b.as_ns() - a.as_ns()) / 2))
}

/// Reads `(CLOCK_MONOTONIC_RAW, CLOCK_REALTIME ns)` at one instant (best of
/// three sandwich reads, midpoint of the raw pair).
pub fn raw_realtime_pair() -> (LocalNs, i64) {
    let mut best = (i64::MAX, LocalNs::from_ns(0), 0i64);
    for _ in 0..3 {
        let a = local_now();
        let rt = realtime_now_ns();
        let b = local_now();
        let w = b.as_ns() - a.as_ns();
        if w < best.0 {
            best = (w, LocalNs::from_ns(a.as_ns() + w / 2), rt);
        }
    }
    (best.1, best.2)
}
