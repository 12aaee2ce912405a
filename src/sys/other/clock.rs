//! Clock readers on other OSes: std's `Instant` (QueryPerformanceCounter on
//! Windows) and `SystemTime` (GetSystemTimePreciseAsFileTime on Windows).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::ptp::LocalNs;
use crate::units::MonoNs;

/// Offset of every monotonic reading, ns: early readings minus small
/// durations stay positive.
const ORIGIN_OFFSET_NS: u64 = 1_000_000_000;

/// Reads the monotonic clock now (std's `Instant` from a process-wide origin,
/// + 1 s), ns.
pub fn monotonic_now() -> MonoNs {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    MonoNs::from_ns(origin.elapsed().as_nanos() as u64 + ORIGIN_OFFSET_NS)
}

/// The local reference of the virtual PTP clock: the same clock as
/// [`monotonic_now`] (QPC on Windows has no NTP slew to avoid).
pub fn local_now() -> LocalNs {
    LocalNs::from_ns(monotonic_now().as_ns() as i64)
}

/// Reads the wall clock, ns since the Unix epoch (UTC timescale).
pub fn realtime_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
