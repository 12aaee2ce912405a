//! The add-on's one in-process PTP slave (IEEE 1588-2019 ordinary clock,
//! slave-only, the engine's [`aes67::engine::ptp`]) and the per-stream media
//! clock built on it.
//!
//! Lifecycle: the slave runs while `PTP_ENABLED` is 1 and `INTERFACE` is
//! non-empty (an interface name, or an IPv4 address that is mapped to its
//! interface). Setting `PTP_ENABLED`, `INTERFACE` or `PTP_DOMAIN`, and
//! creating a stream, call [`reconcile`]: a slave on another interface or
//! domain is stopped (joined) and a new one started; [`shutdown`] stops it
//! on plugin unload. Its sockets live in the network namespace of the
//! thread that (re)started it.
//!
//! Clock fallback (`CLOCK_FALLBACK_TIMEOUT`, seconds, 0 = never): see
//! [`FallbackSource`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aes67::engine::ptp_clock::PtpClockHandle;
use aes67::media::clock::{PtpReading, PtpTimeSource};
use aes67::units::MonoNs;

use crate::state::{CLOCK_PTP, SLAVE, Slave, clock_settings, stream_defaults};

impl Slave {
    /// Stops the loop and joins its thread.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Slave>> {
    crate::state::lock(&SLAVE)
}

/// Maps an IPv4 address to the name of the interface holding it; a name
/// (or an address no interface holds) is returned as is.
fn iface_name(iface: &str) -> String {
    aes67::sys::socket::lookup(iface).map_or_else(|_| iface.to_string(), |i| i.name)
}

/// Brings the slave in line with the config: started, restarted (other
/// interface or domain) or stopped. Call from a thread in the network
/// namespace the slave should run in (the PTP thread inherits it).
pub fn reconcile() {
    let s = clock_settings();
    let iface = stream_defaults().iface;
    let want = match iface {
        Some(i) if s.ptp_enabled => Some((iface_name(&i), s.domain)),
        _ => None,
    };
    let mut g = lock();
    let same = match (&*g, &want) {
        (Some(cur), Some((i, d))) => cur.iface == *i && cur.domain == *d && cur.failed.is_none(),
        (None, None) => true,
        _ => false,
    };
    if same {
        return;
    }
    if let Some(old) = g.take() {
        old.stop();
    }
    if let Some((iface, domain)) = want {
        let opts = aes67::engine::ptp::PtpOptions {
            domain,
            slave_only: true,
            ..aes67::engine::ptp::PtpOptions::new(iface.clone())
        };
        let (handle, stop, join) = aes67::engine::ptp::spawn(opts);
        *g = Some(Slave {
            iface,
            domain,
            handle: Arc::new(handle),
            stop,
            join: Some(join),
            failed: None,
        });
    }
}

/// Stops the slave (plugin unload). Returns once its thread has ended.
pub fn shutdown() {
    if let Some(old) = lock().take() {
        old.stop();
    }
}

/// The running slave's clock handle, if any.
pub fn handle() -> Option<Arc<PtpClockHandle>> {
    lock()
        .as_ref()
        .filter(|s| s.failed.is_none())
        .map(|s| s.handle.clone())
}

/// Why the slave is not running: `Some(reason)` when its loop ended by
/// itself (e.g. "no such interface"), with the interface name.
fn collect_failure(g: &mut Option<Slave>) {
    if let Some(s) = g.as_mut()
        && s.failed.is_none()
        && s.join.as_ref().is_some_and(|j| j.is_finished())
    {
        let r = s.join.take().map(|j| j.join());
        s.failed = Some(match r {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => "PTP thread panicked".into(),
            _ => "PTP loop ended".into(),
        });
    }
}

/// A snapshot of the slave for the config options.
#[derive(Debug, Clone, Default)]
pub struct SlaveStatus {
    /// Interface the slave runs on (`None`: no slave configured).
    pub iface: Option<String>,
    /// The loop's error, when it ended by itself.
    pub failed: Option<String>,
    /// Port state name (`LISTENING`, `UNCALIBRATED`, `SLAVE`, ...), once the
    /// first once-a-second status was published.
    pub port_state: Option<String>,
    /// Parent portIdentity `clockIdentity:portNumber` (16 hex digits).
    pub parent: Option<String>,
    /// Last offsetFromMaster, ns.
    pub offset_ns: Option<i64>,
    /// Frequency correction, ppb.
    pub freq_ppb: f64,
    /// Servo locked (locked or locked-stable).
    pub locked: bool,
    /// Receive-timestamp path of the slave's sockets, once it reported.
    pub timestamps: Option<&'static str>,
    /// Transmit-timestamp path of the slave's sockets, once it reported.
    pub tx_timestamps: Option<&'static str>,
}

/// The slave's current status (from the handle and its once-a-second status).
pub fn status() -> SlaveStatus {
    let mut g = lock();
    collect_failure(&mut g);
    let Some(s) = g.as_ref() else {
        return SlaveStatus::default();
    };
    let mut out = SlaveStatus {
        iface: Some(s.iface.clone()),
        failed: s.failed.clone(),
        ..Default::default()
    };
    if s.failed.is_some() {
        return out;
    }
    out.locked = s.handle.locked();
    out.freq_ppb = s.handle.freq().as_ppb();
    if let Some(v) = s.handle.status() {
        out.port_state = Some(v.port.state.name().to_string());
        out.parent = v.port.parent.clone();
        out.offset_ns = v.port.offset_from_master.map(|o| o.as_ns());
        out.freq_ppb = v.port.freq.as_ppb();
        out.timestamps = Some(v.timestamps);
        out.tx_timestamps = Some(v.tx_timestamps);
    }
    out
}

/// The PTP time source of a stream created in `CLOCK_MODE` PTP, with the
/// `CLOCK_FALLBACK_TIMEOUT` rule:
///
/// - while the slave's servo is locked, readings pass through (the stream's
///   media clock is PTP time, `rtp = ptp_ns × rate / 1e9 + mediaclk_offset`);
/// - while it is not locked (unlocked, or in holdover), its readings are
///   still used (holdover on the last frequency) until `timeout_s` seconds
///   have passed since the last locked reading (or since the stream was
///   created, if it never was locked); after that the source reports no PTP
///   time, and the engine's `PtpMediaClock` free-runs on the stream's arrivals
///   (the System clock) until PTP locks again, then slews back at
///   ≤ 1000 ppm (steps when more than 50 ms apart);
/// - `timeout_s == 0`: never fall back (holdover indefinitely).
///
/// The timeout is read once, when the stream is created.
pub struct FallbackSource {
    inner: Arc<PtpClockHandle>,
    timeout_ns: u64,
    /// Monotonic ns of the last locked reading (or of creation).
    last_locked: AtomicU64,
}

impl FallbackSource {
    /// A source over `inner` falling back after `timeout_s` s unlocked.
    pub fn new(inner: Arc<PtpClockHandle>, timeout_s: u32) -> FallbackSource {
        FallbackSource {
            inner,
            timeout_ns: timeout_s as u64 * 1_000_000_000,
            last_locked: AtomicU64::new(MonoNs::now().as_ns()),
        }
    }
}

impl PtpTimeSource for FallbackSource {
    fn ptp_time_at(&self, mono: MonoNs) -> Option<PtpReading> {
        let r = self.inner.ptp_time_at(mono);
        if r.as_ref().is_some_and(|r| r.locked) {
            self.last_locked.fetch_max(mono.as_ns(), Ordering::Relaxed);
            return r;
        }
        let since = mono
            .as_ns()
            .saturating_sub(self.last_locked.load(Ordering::Relaxed));
        if self.timeout_ns != 0 && since >= self.timeout_ns {
            return None;
        }
        r
    }
}

/// The PTP clock a new stream's media clock runs on (`CLOCK_MODE` PTP while a
/// slave runs), for the rate controller's feed-forward.
pub fn stream_clock() -> Option<Arc<PtpClockHandle>> {
    if clock_settings().mode != CLOCK_PTP {
        return None;
    }
    handle()
}

/// The media clock for a new stream: `Some(PtpMediaClock)` in `CLOCK_MODE`
/// PTP while a slave runs, `None` (the engine's free-running System clock)
/// otherwise.
pub fn media_clock(
    rate: u32,
    mediaclk_offset: u32,
) -> Option<Box<dyn aes67::media::clock::MediaClock>> {
    let s = clock_settings();
    if s.mode != CLOCK_PTP {
        return None;
    }
    let h = handle()?;
    let src = Arc::new(FallbackSource::new(h, s.fallback_timeout_s));
    Some(Box::new(aes67::media::clock::PtpMediaClock::new(
        src,
        rate,
        mediaclk_offset,
    )))
}
