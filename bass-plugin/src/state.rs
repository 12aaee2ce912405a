//! All process-wide state of the add-on, in one place: the config option
//! values, the per-thread buffers whose addresses are handed to BASS (option
//! strings, the `SAP_SESSIONS` text, the last error text), the registry of open streams, and the slot
//! of the one PTP slave.
//!
//! Everything else in the crate is per-stream or stateless and reaches this
//! state through the accessors here. Imports only [`crate::counters`] (a
//! leaf), so the `crate::` module graph stays acyclic:
//! `counters ← state ← {errors, ptpslave, stats, config, stream, ffi}`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::counters::{StatsSource, StreamStats};

/// Clock modes of `BASS_CONFIG_AES67_CLOCK_MODE`: PTP (the default).
pub const CLOCK_PTP: u32 = 0;
/// Livewire clock mode: not implemented; `BASS_SetConfig` rejects it (error 20).
pub const CLOCK_LIVEWIRE: u32 = 1;
/// System (free-running CLOCK_MONOTONIC) clock mode.
pub const CLOCK_SYSTEM: u32 = 2;

/// Smallest jitter (link offset) of a stream, ms: URL `jitter=` and config `JITTER`.
pub const JITTER_MIN_MS: u32 = 1;
/// Largest jitter (link offset) of a stream, ms: URL `jitter=` and config
/// `JITTER`. Bounds a stream's playout buffer (see `stream::parse_jitter`).
pub const JITTER_MAX_MS: u32 = 1000;

/// Capacity of the string buffers, bytes including the terminating NUL.
pub const STR_CAP: usize = 256;

/// A NUL-terminated string in a fixed buffer, as UTF-8 and UTF-16 (the
/// buffers handed to BASS are per-thread copies, see [`with_out`] and
/// [`with_sap_text`]).
pub struct StrBuf<const N: usize = STR_CAP> {
    utf8: [u8; N],
    utf16: [u16; N],
}

impl<const N: usize> StrBuf<N> {
    /// An empty buffer.
    pub const fn new_const() -> StrBuf<N> {
        StrBuf {
            utf8: [0; N],
            utf16: [0; N],
        }
    }

    /// Stores `s`, truncated at a char boundary to fit `N - 1` bytes.
    pub fn set(&mut self, s: &str) {
        let mut end = s.len().min(N - 1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let s = &s[..end];
        self.utf8 = [0; N];
        self.utf8[..end].copy_from_slice(s.as_bytes());
        self.utf16 = [0; N];
        for (d, c) in self.utf16.iter_mut().zip(s.encode_utf16().take(N - 1)) {
            *d = c;
        }
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        let n = self.utf8.iter().position(|&b| b == 0).unwrap_or(N);
        std::str::from_utf8(&self.utf8[..n]).unwrap_or("")
    }

    /// Address of the NUL-terminated UTF-8 (`unicode == false`) or UTF-16 text.
    pub fn ptr(&self, unicode: bool) -> *const std::ffi::c_void {
        if unicode {
            self.utf16.as_ptr().cast()
        } else {
            self.utf8.as_ptr().cast()
        }
    }
}

// ---- config option values (BASS_SetConfig / BASS_SetConfigPtr) ----

/// `PT`: default RTP payload type of new streams.
pub(crate) static CFG_PT: AtomicU32 = AtomicU32::new(96);
/// `JITTER`: default jitter depth of new streams, ms.
pub(crate) static CFG_JITTER_MS: AtomicU32 = AtomicU32::new(10);
/// `PTP_DOMAIN`: PTP domainNumber.
pub(crate) static CFG_PTP_DOMAIN: AtomicU32 = AtomicU32::new(0);
/// `PTP_ENABLED`: 0/1.
pub(crate) static CFG_PTP_ENABLED: AtomicU32 = AtomicU32::new(1);
/// `CLOCK_MODE`: [`CLOCK_PTP`] or [`CLOCK_SYSTEM`].
pub(crate) static CFG_CLOCK_MODE: AtomicU32 = AtomicU32::new(CLOCK_PTP);
/// `CLOCK_FALLBACK_TIMEOUT`, s.
pub(crate) static CFG_FALLBACK_S: AtomicU32 = AtomicU32::new(5);
/// `INTERFACE`: default interface of new streams (and of the PTP slave).
pub(crate) static INTERFACE_BUF: Mutex<StrBuf> = Mutex::new(StrBuf::new_const());

// ---- buffers whose addresses BASS_GetConfigPtr / GetLastErrorText hand out ----
//
// Per thread: each thread gets its own copy, so a pointer handed to one
// thread is never rewritten by another thread's call (a `BASS_SetConfigPtr`,
// a failing stream creation, or its own getter on another thread). It stays
// valid until that same thread's next call of the same getter (the next
// failed `BASS_StreamCreateURL` on that thread for the error text), and at
// most until the thread exits or the add-on is unloaded. Per-thread copies
// rather than kept-alive snapshots: a caller never tells us when it is done
// with a pointer, so immutable snapshots could only be freed by guessing (or
// leaked); per-thread buffers are freed with the thread, and match BASS's
// own per-thread `BASS_ErrorGetCode`. The types have no destructor, so no
// thread-exit destructor of this library is registered on the caller's
// thread (which would keep the library mapped after `BASS_PluginFree`).

/// Capacity of the `SAP_SESSIONS` text, bytes including the NUL.
pub const SAP_TEXT_CAP: usize = 16 * 1024;
/// The SAP listeners of `aes67://sap/` and `SAP_SESSIONS`, by interface ("" = default),
/// started on first use, running for the life of the process.
#[cfg(engine)]
pub(crate) static SAP_LISTENERS: Mutex<Vec<(String, aes67::engine::sap::SapHandle)>> =
    Mutex::new(Vec::new());

/// One thread's copies of the values whose addresses are handed out.
pub(crate) struct OutBufs {
    /// `INTERFACE`, as of this thread's last `BASS_GetConfigPtr(INTERFACE)`.
    pub(crate) interface: StrBuf,
    /// `PTP_STATS` text.
    pub(crate) stats: StrBuf,
    /// `PTP_OFFSET` as a full i64 (ns).
    pub(crate) offset: i64,
    /// The last failure text of this thread (`BASS_AES67_GetLastErrorText`).
    pub(crate) last_error: StrBuf,
}

thread_local! {
    static OUT: std::cell::RefCell<OutBufs> = const {
        std::cell::RefCell::new(OutBufs {
            interface: StrBuf::new_const(),
            stats: StrBuf::new_const(),
            offset: 0,
            last_error: StrBuf::new_const(),
        })
    };
}

thread_local! {
    /// This thread's copy of the `SAP_SESSIONS` text (16 KiB as UTF-8 plus
    /// 32 KiB as UTF-16). Its own thread-local rather than a field of
    /// [`OutBufs`] so that the other buffers stay small; like them it has no
    /// destructor.
    static SAP_TEXT: std::cell::RefCell<StrBuf<SAP_TEXT_CAP>> =
        const { std::cell::RefCell::new(StrBuf::new_const()) };
}

/// Stores `text` in the calling thread's `SAP_SESSIONS` buffer and returns
/// its address (UTF-8, or UTF-16 when `unicode`): valid, unchanged, until
/// this thread reads `SAP_SESSIONS` again, and at most until the thread
/// exits or the add-on is unloaded. No other thread's read changes it.
pub(crate) fn with_sap_text(text: &str, unicode: bool) -> *const std::ffi::c_void {
    SAP_TEXT.with(|b| {
        let mut b = b.borrow_mut();
        b.set(text);
        b.ptr(unicode)
    })
}

/// Runs `f` on the calling thread's [`OutBufs`]; an address taken inside
/// stays valid as described above (the buffers never move while the thread
/// lives).
pub(crate) fn with_out<R>(f: impl FnOnce(&mut OutBufs) -> R) -> R {
    OUT.with(|o| f(&mut o.borrow_mut()))
}

/// Locks `m`, ignoring poisoning (the state stays usable after a caught panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Defaults applied to a new stream where its URL does not set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDefaults {
    /// RTP payload type (config `PT`).
    pub payload_type: u8,
    /// Interface address or name (config `INTERFACE`); `None` when empty.
    pub iface: Option<String>,
    /// Jitter buffer depth, ms (config `JITTER`).
    pub jitter_ms: u32,
}

/// The current defaults for new streams.
pub fn stream_defaults() -> StreamDefaults {
    let iface = lock(&INTERFACE_BUF).as_str().to_string();
    StreamDefaults {
        payload_type: CFG_PT.load(Ordering::Relaxed) as u8,
        iface: if iface.is_empty() { None } else { Some(iface) },
        jitter_ms: CFG_JITTER_MS.load(Ordering::Relaxed),
    }
}

/// Clock settings (config `PTP_DOMAIN`, `PTP_ENABLED`, `CLOCK_MODE`, `CLOCK_FALLBACK_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSettings {
    /// PTP domainNumber.
    pub domain: u8,
    /// PTP slave enabled.
    pub ptp_enabled: bool,
    /// [`CLOCK_PTP`] or [`CLOCK_SYSTEM`].
    pub mode: u32,
    /// Seconds without PTP before falling back to the system clock; 0 = never.
    pub fallback_timeout_s: u32,
}

/// The current clock settings.
pub fn clock_settings() -> ClockSettings {
    ClockSettings {
        domain: CFG_PTP_DOMAIN.load(Ordering::Relaxed) as u8,
        ptp_enabled: CFG_PTP_ENABLED.load(Ordering::Relaxed) != 0,
        mode: CFG_CLOCK_MODE.load(Ordering::Relaxed),
        fallback_timeout_s: CFG_FALLBACK_S.load(Ordering::Relaxed),
    }
}

/// Resets every option to its default (tests only).
#[doc(hidden)]
pub fn reset_defaults() {
    CFG_PT.store(96, Ordering::Relaxed);
    CFG_JITTER_MS.store(10, Ordering::Relaxed);
    CFG_PTP_DOMAIN.store(0, Ordering::Relaxed);
    CFG_PTP_ENABLED.store(1, Ordering::Relaxed);
    CFG_CLOCK_MODE.store(CLOCK_PTP, Ordering::Relaxed);
    CFG_FALLBACK_S.store(5, Ordering::Relaxed);
    lock(&INTERFACE_BUF).set("");
}

// ---- the registry of open streams ----

type Registry = Vec<(u64, Arc<dyn StatsSource>)>;

static OPEN_STREAMS: Mutex<Registry> = Mutex::new(Vec::new());
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A fresh registry key for a new stream (1, 2, 3, ...).
pub fn next_stream_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Registers an open stream under `key`; the latest registered is the one reported.
pub fn register(key: u64, s: Arc<dyn StatsSource>) {
    lock(&OPEN_STREAMS).push((key, s));
}

/// Removes the stream registered under `key`.
pub fn unregister(key: u64) {
    lock(&OPEN_STREAMS).retain(|(k, _)| *k != key);
}

/// Number of open streams.
pub fn open_count() -> usize {
    lock(&OPEN_STREAMS).len()
}

/// Counters of the most recently created stream still open.
pub fn latest_stream_stats() -> Option<StreamStats> {
    let latest = lock(&OPEN_STREAMS).last().map(|(_, s)| s.clone());
    latest.map(|s| s.snapshot())
}

// ---- the slot of the one in-process PTP slave (run by `crate::ptpslave`) ----

/// The running PTP slave (fields managed by `crate::ptpslave`).
#[cfg(engine)]
pub(crate) struct Slave {
    /// Interface name it runs on.
    pub(crate) iface: String,
    /// PTP domainNumber.
    pub(crate) domain: u8,
    /// The engine's clock handle.
    pub(crate) handle: Arc<aes67::engine::ptp_clock::PtpClockHandle>,
    /// Set to stop the loop.
    pub(crate) stop: Arc<std::sync::atomic::AtomicBool>,
    /// The PTP thread.
    pub(crate) join: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The loop's error once it ended by itself (bad interface, socket).
    pub(crate) failed: Option<String>,
}

/// The PTP slave slot: `None` while no slave runs.
#[cfg(engine)]
pub(crate) static SLAVE: Mutex<Option<Slave>> = Mutex::new(None);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_buffer_truncates_on_char_boundary() {
        let mut b: StrBuf = StrBuf::new_const();
        let long = "é".repeat(200); // 400 bytes
        b.set(&long);
        assert_eq!(b.as_str().len(), 254);
        assert!(b.as_str().chars().all(|c| c == 'é'));
        b.set("eth0");
        assert_eq!(b.as_str(), "eth0");
        assert_eq!(
            b.utf16[..5],
            [b'e' as u16, b't' as u16, b'h' as u16, b'0' as u16, 0]
        );
    }

    /// The calling thread's `SAP_SESSIONS` text and the address of its
    /// UTF-8 buffer (what [`with_sap_text`] hands out), read without `unsafe`.
    fn this_thread_text() -> (String, usize) {
        SAP_TEXT.with(|b| {
            let b = b.borrow();
            (b.as_str().to_string(), b.ptr(false) as usize)
        })
    }

    /// Issue 13 finding 10: the `SAP_SESSIONS` text handed to one thread is
    /// not rewritten by another thread's read; each thread has its own
    /// buffer, and a thread's next read reuses its own address.
    #[test]
    fn sap_sessions_text_is_per_thread() {
        let a = with_sap_text("A\t239.69.0.1:5004\n", false) as usize;
        let (tx_read, rx_read) = std::sync::mpsc::channel();
        let (tx_go, rx_go) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let b = with_sap_text("B\t239.69.0.2:5004\n", false) as usize;
            tx_read.send(b).unwrap();
            rx_go.recv().unwrap();
            // Still this thread's own text, at the address handed out, after
            // the main thread's rewrite.
            let (text, at) = this_thread_text();
            assert_eq!(at, b);
            text
        });
        let b = rx_read.recv().unwrap();
        assert_ne!(a, b, "each thread has its own buffer");
        assert_eq!(this_thread_text(), ("A\t239.69.0.1:5004\n".to_string(), a));
        let a2 = with_sap_text("A2\n", false) as usize;
        assert_eq!(a2, a, "a thread's next read reuses its buffer");
        tx_go.send(()).unwrap();
        assert_eq!(other.join().unwrap(), "B\t239.69.0.2:5004\n");
        assert_eq!(this_thread_text(), ("A2\n".to_string(), a));
        // The UTF-16 view is another array of the same thread's buffer.
        let w = with_sap_text("Z", true) as usize;
        assert_ne!(w, a);
        assert_eq!(this_thread_text(), ("Z".to_string(), a));
    }
}
