//! The add-on's BASS config options (`BASS_SetConfig`/`BASS_GetConfig`,
//! `BASS_SetConfigPtr`/`BASS_GetConfigPtr`), ids 0x20000-0x2001A.
//!
//! Ids, meanings and value types are those of the seeds' add-on
//! (BassAES67 `bass_aes67.h`), so applications written against it work
//! unchanged. This module is safe Rust: the FFI layer (`ffi.rs`) decodes
//! BASS's `(option, flags, value)` triple and calls [`get_dword`],
//! [`set_dword`], [`get_str`] and [`set_str`].
//!
//! The options are process-wide defaults (PT, INTERFACE, JITTER, ...)
//! applied to streams created afterwards, plus read-only statistics of the
//! most recently created stream that is still open. Their values live in
//! [`crate::state`]; this module maps option ids onto them.

use std::sync::atomic::Ordering;

use crate::state::{
    CFG_CLOCK_MODE, CFG_FALLBACK_S, CFG_JITTER_MS, CFG_PT, CFG_PTP_DOMAIN, CFG_PTP_ENABLED,
    INTERFACE_BUF, JITTER_MAX_MS, JITTER_MIN_MS, lock, with_out,
};
pub use crate::state::{
    CLOCK_LIVEWIRE, CLOCK_PTP, CLOCK_SYSTEM, ClockSettings, STR_CAP, StrBuf, StreamDefaults,
    clock_settings, reset_defaults, stream_defaults,
};

/// `BASS_CONFIG_AES67_PT`: default RTP payload type for new streams (DWORD, 0-127; default 96).
pub const PT: u32 = 0x20000;
/// `BASS_CONFIG_AES67_INTERFACE`: default interface for new streams (string ptr; IPv4 address or
/// interface name; empty = kernel's choice).
pub const INTERFACE: u32 = 0x20001;
/// `BASS_CONFIG_AES67_JITTER`: default jitter-buffer depth for new streams (DWORD ms, 1-1000; default 10).
pub const JITTER: u32 = 0x20002;
/// `BASS_CONFIG_AES67_PTP_DOMAIN`: PTP domainNumber (DWORD 0-255; default 0; IEEE 1588-2019 §7.1).
pub const PTP_DOMAIN: u32 = 0x20003;
/// `BASS_CONFIG_AES67_PTP_STATS`: clock status line (string ptr, read-only).
pub const PTP_STATS: u32 = 0x20004;
/// `BASS_CONFIG_AES67_PTP_OFFSET`: offsetFromMaster in ns (read-only). `BASS_GetConfig` gives it
/// saturated to i32 (two's complement in the DWORD); `BASS_GetConfigPtr` gives a pointer to the
/// full i64.
pub const PTP_OFFSET: u32 = 0x20005;
/// `BASS_CONFIG_AES67_PTP_STATE`: 0 disabled, 1 listening, 2 uncalibrated, 3 slave (read-only).
pub const PTP_STATE: u32 = 0x20006;
/// `BASS_CONFIG_AES67_PTP_ENABLED`: run the PTP slave (DWORD 0/1; default 1).
pub const PTP_ENABLED: u32 = 0x20007;
/// `BASS_CONFIG_AES67_BUFFER_LEVEL`: fill of the latest stream's buffer in % of target (0-200; read-only).
pub const BUFFER_LEVEL: u32 = 0x20010;
/// `BASS_CONFIG_AES67_JITTER_UNDERRUNS`: underruns of the latest stream (read-only).
pub const JITTER_UNDERRUNS: u32 = 0x20011;
/// `BASS_CONFIG_AES67_PACKETS_RECEIVED`: RTP packets received by the latest stream (read-only).
pub const PACKETS_RECEIVED: u32 = 0x20012;
/// `BASS_CONFIG_AES67_PACKETS_LATE`: late or dropped packets of the latest stream (read-only).
pub const PACKETS_LATE: u32 = 0x20013;
/// `BASS_CONFIG_AES67_BUFFER_PACKETS`: buffered audio of the latest stream, in packets (read-only).
pub const BUFFER_PACKETS: u32 = 0x20014;
/// `BASS_CONFIG_AES67_TARGET_PACKETS`: target buffer of the latest stream, in packets (read-only).
pub const TARGET_PACKETS: u32 = 0x20015;
/// `BASS_CONFIG_AES67_PACKET_TIME`: packet time of the latest stream in µs (read-only; AES67-2018 §7.2).
pub const PACKET_TIME: u32 = 0x20016;
/// `BASS_CONFIG_AES67_PTP_LOCKED`: 1 when the clock is locked (read-only).
pub const PTP_LOCKED: u32 = 0x20017;
/// `BASS_CONFIG_AES67_PTP_FREQ`: frequency correction in ppm × 1000 as i32 (read-only).
pub const PTP_FREQ: u32 = 0x20018;
/// `BASS_CONFIG_AES67_CLOCK_MODE`: 0 PTP, 1 Livewire (not available: rejected), 2 System (DWORD; default 0).
pub const CLOCK_MODE: u32 = 0x20019;
/// `BASS_CONFIG_AES67_CLOCK_FALLBACK_TIMEOUT`: s without PTP before falling back to the system
/// clock (DWORD; 0 = never; default 5).
pub const CLOCK_FALLBACK_TIMEOUT: u32 = 0x2001A;
/// `BASS_CONFIG_AES67_SAP_SESSIONS`: the sessions announced by SAP (RFC 2974) on the
/// INTERFACE option's interface, one per line (string ptr, read-only; an add-on extension,
/// see [`crate::sapdir::sessions_text`]). The first read starts the listener; any
/// `BASS_SetConfigPtr` of it (NULL included) stops it.
pub const SAP_SESSIONS: u32 = 0x2001B;

/// Every id the add-on answers, in order.
pub const ALL_IDS: [u32; 20] = [
    PT,
    INTERFACE,
    JITTER,
    PTP_DOMAIN,
    PTP_STATS,
    PTP_OFFSET,
    PTP_STATE,
    PTP_ENABLED,
    BUFFER_LEVEL,
    JITTER_UNDERRUNS,
    PACKETS_RECEIVED,
    PACKETS_LATE,
    BUFFER_PACKETS,
    TARGET_PACKETS,
    PACKET_TIME,
    PTP_LOCKED,
    PTP_FREQ,
    CLOCK_MODE,
    CLOCK_FALLBACK_TIMEOUT,
    SAP_SESSIONS,
];

/// `BASS_GetConfig(option)`: the DWORD value, or `None` when `option` is not
/// a DWORD option of ours (the proc then returns FALSE).
pub fn get_dword(option: u32) -> Option<u32> {
    let clock = crate::stats::clock_status();
    let st = crate::state::latest_stream_stats();
    Some(match option {
        PT => CFG_PT.load(Ordering::Relaxed),
        JITTER => CFG_JITTER_MS.load(Ordering::Relaxed),
        PTP_DOMAIN => CFG_PTP_DOMAIN.load(Ordering::Relaxed),
        PTP_ENABLED => CFG_PTP_ENABLED.load(Ordering::Relaxed),
        CLOCK_MODE => CFG_CLOCK_MODE.load(Ordering::Relaxed),
        CLOCK_FALLBACK_TIMEOUT => CFG_FALLBACK_S.load(Ordering::Relaxed),
        PTP_OFFSET => clock.offset_ns.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32,
        PTP_STATE => clock.state as u32,
        PTP_LOCKED => u32::from(clock.locked),
        PTP_FREQ => ((clock.freq_ppb).clamp(-2.0e9, 2.0e9) as i32) as u32,
        BUFFER_LEVEL => st.map_or(100, |s| s.buffer_level_percent()),
        JITTER_UNDERRUNS => st.map_or(0, |s| s.underruns as u32),
        PACKETS_RECEIVED => st.map_or(0, |s| s.packets_received as u32),
        PACKETS_LATE => st.map_or(0, |s| s.packets_late as u32),
        BUFFER_PACKETS => st.map_or(0, |s| s.buffer_packets()),
        TARGET_PACKETS => st.map_or(0, |s| s.target_packets()),
        PACKET_TIME => st.map_or(0, |s| s.packet_time_us),
        _ => return None,
    })
}

/// `BASS_SetConfig(option, value)`: true when accepted. Rejected (false, BASS
/// error 20): unknown ids, read-only ids, string ids, and out-of-range values
/// (PT > 127, JITTER 0 or > 1000, PTP_DOMAIN > 255, CLOCK_MODE other than 0/2).
pub fn set_dword(option: u32, v: u32) -> bool {
    let (cell, ok) = match option {
        PT => (&CFG_PT, v <= 127),
        JITTER => (&CFG_JITTER_MS, (JITTER_MIN_MS..=JITTER_MAX_MS).contains(&v)),
        PTP_DOMAIN => (&CFG_PTP_DOMAIN, v <= 255),
        PTP_ENABLED => (&CFG_PTP_ENABLED, true),
        CLOCK_MODE => (&CFG_CLOCK_MODE, v == CLOCK_PTP || v == CLOCK_SYSTEM),
        CLOCK_FALLBACK_TIMEOUT => (&CFG_FALLBACK_S, true),
        _ => return false,
    };
    if ok {
        let v = if option == PTP_ENABLED {
            u32::from(v != 0)
        } else {
            v
        };
        cell.store(v, Ordering::Relaxed);
    }
    ok
}

/// `BASS_GetConfigPtr(option)`: address of a NUL-terminated UTF-8 (or UTF-16
/// when `unicode`) string, or of the i64 offset (ns) for [`PTP_OFFSET`].
/// `None` for other ids.
///
/// The address is of a copy belonging to the calling thread (see
/// `crate::state`): no other thread's call, `BASS_SetConfigPtr` included,
/// changes it. It stays valid, unchanged, until this thread asks for the
/// same option again, and at most until the thread exits or the add-on is
/// unloaded.
pub fn get_ptr(option: u32, unicode: bool) -> Option<*const std::ffi::c_void> {
    match option {
        INTERFACE => {
            let cur = lock(&INTERFACE_BUF).as_str().to_string();
            Some(with_out(|o| {
                o.interface.set(&cur);
                o.interface.ptr(unicode)
            }))
        }
        PTP_STATS => {
            let line = crate::stats::stats_line(&crate::stats::clock_status());
            Some(with_out(|o| {
                o.stats.set(&line);
                o.stats.ptr(unicode)
            }))
        }
        SAP_SESSIONS => {
            let text = crate::sapdir::sessions_text();
            Some(crate::state::with_sap_text(&text, unicode))
        }
        PTP_OFFSET => {
            let v = crate::stats::clock_status().offset_ns;
            Some(with_out(|o| {
                o.offset = v;
                (&o.offset as *const i64).cast()
            }))
        }
        _ => None,
    }
}

/// `BASS_SetConfigPtr(option, text)`: only [`INTERFACE`] is settable; `None`
/// (a NULL pointer) clears it. Longer than 255 bytes → rejected.
pub fn set_str(option: u32, text: Option<&str>) -> bool {
    match option {
        INTERFACE => {
            let t = text.unwrap_or("");
            if t.len() >= STR_CAP {
                return false;
            }
            lock(&INTERFACE_BUF).set(t);
            true
        }
        // Any write (NULL included) stops the SAP listener.
        SAP_SESSIONS => {
            crate::sapdir::shutdown();
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dword_options_round_trip_and_validate() {
        reset_defaults();
        assert_eq!(get_dword(PT), Some(96));
        assert!(set_dword(PT, 97));
        assert_eq!(get_dword(PT), Some(97));
        assert!(!set_dword(PT, 128));
        assert_eq!(get_dword(PT), Some(97));
        assert!(!set_dword(JITTER, 0));
        assert!(set_dword(JITTER, 20));
        assert_eq!(stream_defaults().jitter_ms, 20);
        assert!(!set_dword(CLOCK_MODE, CLOCK_LIVEWIRE));
        assert!(set_dword(CLOCK_MODE, CLOCK_SYSTEM));
        assert!(set_dword(PTP_ENABLED, 7));
        assert_eq!(get_dword(PTP_ENABLED), Some(1));
        for ro in [
            PTP_STATS,
            PTP_OFFSET,
            PTP_STATE,
            BUFFER_LEVEL,
            PACKETS_RECEIVED,
            PTP_FREQ,
        ] {
            assert!(!set_dword(ro, 1), "{ro:#x} must be read-only");
        }
        assert_eq!(get_dword(0x1234), None);
        assert_eq!(get_dword(INTERFACE), None);
        reset_defaults();
    }
}
