//! Windows clock readers. The local monotonic clock ([`MonoNs`]) and the
//! local reference of the virtual PTP clock ([`LocalNs`]) are both
//! QueryPerformanceCounter in ns: QPC is never slewed (it plays the part of
//! `CLOCK_MONOTONIC_RAW` on Linux), and Winsock's software packet timestamps
//! (`SO_TIMESTAMP`) are raw QPC ticks, so they land on this clock with no
//! conversion pair. The wall clock is `GetSystemTimePreciseAsFileTime`
//! (UTC, < 1 µs resolution; under wine it is the host's `CLOCK_REALTIME`).

use std::sync::OnceLock;

use windows_sys::Win32::Foundation::FILETIME;
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::SystemInformation::GetSystemTimePreciseAsFileTime;

use crate::ptp::LocalNs;
use crate::sys::qpc;
use crate::units::MonoNs;

/// `QueryPerformanceFrequency`, Hz (fixed at boot; 10 MHz on Windows 10+).
pub(crate) fn qpc_freq() -> i64 {
    static F: OnceLock<i64> = OnceLock::new();
    *F.get_or_init(|| {
        let mut f = 0i64;
        // SAFETY: `f` is a live i64; the call only writes it.
        unsafe { QueryPerformanceFrequency(&mut f) };
        f.max(1)
    })
}

/// `QueryPerformanceCounter` now, ticks.
pub(crate) fn qpc_ticks() -> i64 {
    let mut t = 0i64;
    // SAFETY: `t` is a live i64; the call only writes it (it cannot fail
    // on XP and later).
    unsafe { QueryPerformanceCounter(&mut t) };
    t
}

/// QPC ticks → ns on the local clock.
pub(crate) fn qpc_ticks_to_ns(ticks: i64) -> i64 {
    qpc::ticks_to_ns(ticks, qpc_freq())
}

/// Reads the monotonic clock now: QPC, ns since boot.
pub fn monotonic_now() -> MonoNs {
    MonoNs::from_ns(qpc_ticks_to_ns(qpc_ticks()).max(0) as u64)
}

/// The local reference of the virtual PTP clock: QPC, ns (the same clock as
/// [`monotonic_now`]; QPC has no NTP slew to avoid).
pub fn local_now() -> LocalNs {
    LocalNs::from_ns(qpc_ticks_to_ns(qpc_ticks()))
}

/// Reads the wall clock, ns since the Unix epoch (UTC timescale):
/// `GetSystemTimePreciseAsFileTime`.
pub fn realtime_now_ns() -> i64 {
    let mut ft = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    // SAFETY: `ft` is a live FILETIME; the call only writes it.
    unsafe { GetSystemTimePreciseAsFileTime(&mut ft) };
    qpc::filetime_to_unix_ns(((ft.dwHighDateTime as u64) << 32) | ft.dwLowDateTime as u64)
}
