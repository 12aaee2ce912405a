//! Linux clock readers: `clock_gettime(2)`.

use crate::ptp::LocalNs;
use crate::units::MonoNs;
use nix::time::{ClockId, clock_gettime};

fn read_ns(id: ClockId) -> i64 {
    // These clocks are always readable on Linux (clock_gettime(2) fails only
    // for an invalid clock id or a bad pointer).
    let ts = clock_gettime(id).expect("CLOCK_MONOTONIC/_RAW/REALTIME are always readable");
    ts.tv_sec() * 1_000_000_000 + ts.tv_nsec()
}

/// Reads `CLOCK_MONOTONIC` now, ns since boot.
pub fn monotonic_now() -> MonoNs {
    MonoNs::from_ns(read_ns(ClockId::CLOCK_MONOTONIC) as u64)
}

/// Reads `CLOCK_MONOTONIC_RAW` now (never slewed by NTP): the local reference
/// of the virtual PTP clock.
pub fn local_now() -> LocalNs {
    LocalNs::from_ns(read_ns(ClockId::CLOCK_MONOTONIC_RAW))
}

/// Reads `CLOCK_REALTIME` now, ns since the Unix epoch (UTC timescale).
pub fn realtime_now_ns() -> i64 {
    read_ns(ClockId::CLOCK_REALTIME)
}
