//! The supervisor: starts every PTP port, receiver and sender of a
//! [`Config`], restarts a failed one with exponential back-off without
//! touching the others, applies a new config by differences only, and
//! builds the [`ServiceStatus`].
//!
//! It is driven by [`Supervisor::tick`] from one control thread (the
//! service loop); nothing here runs on a real-time thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{Config, PtpConfig, ReceiverConfig, SenderConfig, StreamSource};
use super::model::{PtpPortStatus, ReceiverStatus, RunState, SenderStatus, ServiceStatus};
use crate::engine::output::{Output, OutputSpec, PcmFormat};
use crate::engine::playout::{MediaRate, Playout, PlayoutConfig};
use crate::engine::ptp::PtpOptions;
use crate::engine::ptp_clock::PtpClockHandle;
use crate::engine::receiver::{Receiver, ReceiverOptions};
use crate::engine::sap::{SapHandle, SapOptions};
use crate::engine::sender::{
    SendClock, SendStream, Sender, SenderHandle, SenderOptions, ToneSender,
};
use crate::media::clock::{MediaClock, PtpMediaClock};
use crate::media::stream::StreamConfig;
use crate::ptp::ServoState;
use crate::status::ReceiverFigures;
use crate::units::Nanos;

/// A sender whose packet count has not moved for this long is failed.
const SENDER_STALL: Duration = Duration::from_secs(2);

/// Retry state of a failed part.
#[derive(Debug, Clone)]
struct Failure {
    error: String,
    retry_at: Instant,
    backoff: Duration,
}

/// Back-off bookkeeping shared by every slot.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// The failure after `prev` (doubling, capped).
    fn fail(&self, prev: Option<&Failure>, error: String) -> Failure {
        let backoff = match prev {
            Some(f) => (f.backoff * 2).min(self.max),
            None => self.min,
        };
        Failure {
            error,
            retry_at: Instant::now() + backoff,
            backoff,
        }
    }
}

struct PtpRun {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), String>>,
}

struct PtpSlot {
    cfg: PtpConfig,
    /// Stays the same across restarts and reconfigurations: receivers keep
    /// reading it.
    handle: PtpClockHandle,
    run: Option<PtpRun>,
    failed: Option<Failure>,
    restarts: u64,
    /// Stopped by the test hook: not restarted.
    held: bool,
    /// Last time the servo was seen locked.
    last_locked: Option<Instant>,
}

/// Where a receiver's ring goes: a plain sink (WAV, null), or the
/// real-time playout thread with drift steering (ALSA, sim).
enum Sink {
    Plain(Output),
    Rt {
        playout: Playout,
        media: Arc<MediaRate>,
        /// device_errors at the last check, and when it was taken.
        errors_seen: (u64, Instant),
        /// The output as configured (`alsa:hw:Loopback,0,0`), for errors.
        output: String,
        /// Device period, frames.
        period: usize,
    },
}

/// Device errors within [`DEVICE_ERROR_WINDOW`] that mark an RT output as
/// failed (the playout thread retries a vanished device every 50 ms).
const DEVICE_ERRORS_FAILED: u64 = 10;
const DEVICE_ERROR_WINDOW: Duration = Duration::from_secs(1);

impl Sink {
    /// The output has failed: its thread ended (plain), or its device keeps
    /// failing (real-time).
    fn failed(&mut self, now: Instant) -> bool {
        match self {
            Sink::Plain(o) => o.is_finished(),
            Sink::Rt {
                playout,
                errors_seen,
                ..
            } => {
                if now.duration_since(errors_seen.1) < DEVICE_ERROR_WINDOW {
                    return false;
                }
                let e = playout.stats().snapshot().device_errors;
                let bad = e.saturating_sub(errors_seen.0) >= DEVICE_ERRORS_FAILED;
                *errors_seen = (e, now);
                bad
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Sink::Plain(o) => o.finish().map_err(|e| e.to_string()),
            Sink::Rt {
                playout, output, ..
            } => {
                let s = playout.stop();
                if s.device_errors > 0 {
                    Err(device_failure(&output, &s))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The error of a real-time output stopped for device errors, naming the
/// device and its last errno: `alsa:hw:Loopback,0,0: device error: No such
/// device (os error 19); 21 device errors`.
fn device_failure(output: &str, s: &crate::engine::playout::StatsSnapshot) -> String {
    let what = match s.last_device_error {
        0 => "unknown".to_string(),
        n => std::io::Error::from_raw_os_error(n.saturating_abs()).to_string(),
    };
    format!(
        "{output}: device error: {what}; {} device errors",
        s.device_errors
    )
}

struct RxRun {
    rx: Receiver,
    out: Sink,
}

struct RxSlot {
    cfg: ReceiverConfig,
    /// Set by an NMOS IS-05 activation: play this stream (`Some`) or stay
    /// stopped (`None`) instead of the configured one.
    nmos: Option<Option<StreamConfig>>,
    run: Option<RxRun>,
    failed: Option<Failure>,
    restarts: u64,
}

/// A running sender: the tone sender, or the engine's pacing sender with a
/// file source.
enum TxHandle {
    Tone(SenderHandle),
    File(Sender),
}

impl TxHandle {
    /// Packets sent since the start.
    fn sent(&self) -> u64 {
        match self {
            TxHandle::Tone(h) => h.sent(),
            TxHandle::File(s) => s.stats(0).map(|s| s.packets_sent).unwrap_or(0),
        }
    }

    /// Pacing lateness: the largest send behind its schedule so far, s.
    fn max_late_s(&self) -> f64 {
        match self {
            TxHandle::Tone(h) => h.max_late().as_secs_f64(),
            TxHandle::File(s) => s.stats(0).map(|s| s.max_late_ns).unwrap_or(0) as f64 / 1e9,
        }
    }

    /// Packets short of audio while the source was live.
    fn underruns(&self) -> u64 {
        match self {
            TxHandle::Tone(_) => 0,
            TxHandle::File(s) => s.stats(0).map(|s| s.underruns).unwrap_or(0),
        }
    }

    fn stop(self) -> std::io::Result<u64> {
        match self {
            TxHandle::Tone(h) => h.stop(),
            TxHandle::File(s) => Ok(s.stop().first().map(|s| s.packets_sent).unwrap_or(0)),
        }
    }
}

struct TxRun {
    h: TxHandle,
    /// An `alsa:` source's capture counters (overruns, ring, steering).
    capture: Option<Arc<crate::engine::capture::CaptureStats>>,
    last_sent: u64,
    last_progress: Instant,
}

struct TxSlot {
    cfg: SenderConfig,
    /// Set by an NMOS IS-05 activation: send this stream (`Some`) or stay
    /// stopped (`None`) instead of the configured one.
    nmos: Option<Option<StreamConfig>>,
    run: Option<TxRun>,
    failed: Option<Failure>,
    restarts: u64,
    send_errors: u64,
}

/// Runs everything in a config. See the module docs.
pub struct Supervisor {
    cfg: Config,
    backoff: Backoff,
    ptp: Vec<PtpSlot>,
    receivers: Vec<RxSlot>,
    senders: Vec<TxSlot>,
    started: Instant,
    reloads: u64,
    reload_errors: u64,
    last_reload_error: Option<String>,
    /// SAP listeners of the receivers given by `sap = NAME`, one per
    /// interface (`None`: the default route), started on first use and kept
    /// until shutdown so their directories fill while receivers wait.
    sap: std::sync::Mutex<Vec<(Option<String>, SapHandle)>>,
}

fn ptp_options(c: &PtpConfig) -> PtpOptions {
    PtpOptions {
        domain: c.domain,
        slave_only: c.slave_only,
        priority1: c.priority1,
        timestamping: c.timestamping,
        transport: c.transport,
        ..PtpOptions::new(c.interface.clone())
    }
}

fn start_ptp(c: &PtpConfig, handle: &PtpClockHandle) -> Result<PtpRun, String> {
    let opts = ptp_options(c);
    let stop = Arc::new(AtomicBool::new(false));
    let (h, s) = (handle.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("ptp".into())
        .spawn(move || crate::engine::ptp::run_with(&opts, &h, &s, &mut |_| {}))
        .map_err(|e| format!("cannot start the PTP thread: {e}"))?;
    Ok(PtpRun { stop, thread })
}

fn stop_ptp(run: PtpRun) -> Result<(), String> {
    run.stop.store(true, Ordering::SeqCst);
    run.thread
        .join()
        .map_err(|_| "the PTP thread panicked".to_string())?
}

/// The stream of a receiver, re-reading its SDP file, or (`sap = NAME`)
/// the session's SDP from `sap`, the directory of the SAP listener on the
/// stream's interface.
fn resolve(c: &ReceiverConfig, sap: Option<&SapHandle>) -> Result<StreamConfig, String> {
    match &c.source {
        StreamSource::Url(_) => Ok(c.stream.clone()),
        StreamSource::Sap(name) => {
            let snap = sap.ok_or("no SAP listener")?.snapshot();
            let session = crate::sap::directory::find(&snap.sessions, name).map_err(|e| {
                let heard: Vec<String> = snap
                    .sessions
                    .iter()
                    .map(|s| format!("{:?}", s.name))
                    .collect();
                format!("sap {name:?}: {e}; heard: [{}]", heard.join(", "))
            })?;
            let mut s = session
                .stream
                .clone()
                .map_err(|e| format!("sap {name:?}: the session's SDP cannot be played: {e}"))?;
            if c.stream.iface.is_some() {
                s.iface = c.stream.iface.clone();
            }
            Ok(s)
        }
        StreamSource::Sdp(p) => {
            let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut s = StreamConfig::from_sdp(&t).map_err(|e| format!("{}: {e}", p.display()))?;
            if c.stream.iface.is_some() {
                s.iface = c.stream.iface.clone();
            }
            Ok(s)
        }
    }
}

fn start_receiver(
    c: &ReceiverConfig,
    stream: StreamConfig,
    ptp: Option<&PtpClockHandle>,
) -> Result<RxRun, String> {
    let clock: Option<Box<dyn MediaClock>> = match (c.ptp, ptp) {
        (true, Some(h)) => Some(Box::new(PtpMediaClock::new(
            Arc::new(h.clone()),
            stream.sample_rate,
            stream.mediaclk_offset.unwrap_or(0),
        ))),
        _ => None,
    };
    let fmt = PcmFormat {
        channels: stream.channels,
        rate: stream.sample_rate,
        bits: stream.encoding.bits(),
    };
    let rt = matches!(c.output, OutputSpec::Alsa(_) | OutputSpec::Sim { .. });
    // With a real-time output the playout thread holds the playout target
    // (ring + device), so frames leave the playout buffer that much earlier.
    let buffer_ms = if rt {
        (c.link_offset_ms - c.playout_target_ms).max(0.5)
    } else {
        c.link_offset_ms
    };
    let opts = ReceiverOptions {
        link_offset: Nanos::from_ns((buffer_ms * 1e6).round() as i64),
        clock,
        rt_priority: rt.then(|| c.rt_priority.saturating_sub(5).max(1)),
        // A free-running stream settles its timing before the playout hears it.
        settle: if rt {
            crate::engine::receiver::RT_SETTLE
        } else {
            Nanos::ZERO
        },
        ..Default::default()
    };
    // The real-time output is made ready (device opened, memory locked) before the
    // receiver starts (`Playout::prepare`): a slow start must not overflow the ring.
    let prepared = if rt {
        let frames =
            |ms: f64| ((ms * f64::from(stream.sample_rate) / 1000.0).round() as usize).max(16);
        let period = frames(c.alsa_period_ms);
        let mut pc = PlayoutConfig::new(usize::from(stream.channels), stream.sample_rate);
        pc.input_bits = u32::from(stream.encoding.bits());
        pc.period_frames = period;
        pc.target_latency = Nanos::from_ns((c.playout_target_ms * 1e6).round() as i64);
        pc.rt_priority = Some(c.rt_priority);
        pc.quality = c.resampler;
        let p = Playout::prepare(pc, &c.output, 4 * period)
            .map_err(|e| format!("{e} (receiver {:?}, output = \"{}\")", c.name, c.output))?;
        if let Some(e) = &p.lock_error {
            tracing::warn!("mlockall failed ({e}); continuing without locked memory");
        }
        Some(p)
    } else {
        None
    };
    let (rx, ring) = Receiver::start(stream.clone(), opts).map_err(|e| e.to_string())?;
    let out = if let Some(p) = prepared {
        let (media, period) = (p.media(), p.period_frames());
        match p.start(ring).map_err(|e| format!("playout: {e}")) {
            Ok(playout) => Sink::Rt {
                playout,
                media,
                errors_seen: (0, Instant::now()),
                output: c.output.to_string(),
                period,
            },
            Err(e) => {
                let _ = rx.stop();
                return Err(e);
            }
        }
    } else {
        match Output::start(c.output.clone(), fmt, ring) {
            Ok(out) => Sink::Plain(out),
            Err(e) => {
                let _ = rx.stop();
                return Err(e.to_string());
            }
        }
    };
    Ok(RxRun { rx, out })
}

/// One reload step for one kind of part matched by name (`kind`: "receiver",
/// "sender"): an unchanged part keeps running untouched, a changed one is
/// `restart`ed with its new config, a new one is `fresh`ly started, and one no
/// longer configured is `stop`ped; each change is described in `changes`.
/// Returns the parts in the order of `wanted`.
#[allow(clippy::too_many_arguments)]
fn reconcile<S, C: Clone + PartialEq>(
    kind: &str,
    mut old: Vec<S>,
    wanted: &[C],
    changes: &mut Vec<String>,
    cfg_of: impl Fn(&S) -> &C,
    name_of: impl Fn(&C) -> &String,
    mut restart: impl FnMut(&mut S, C),
    mut fresh: impl FnMut(C) -> S,
    mut stop: impl FnMut(S),
) -> Vec<S> {
    let mut now = Vec::with_capacity(wanted.len());
    for c in wanted {
        match old.iter().position(|s| name_of(cfg_of(s)) == name_of(c)) {
            Some(i) if cfg_of(&old[i]) == c => now.push(old.remove(i)),
            Some(i) => {
                let mut slot = old.remove(i);
                changes.push(format!("{kind} {}: changed, restarted", name_of(c)));
                restart(&mut slot, c.clone());
                now.push(slot);
            }
            None => {
                changes.push(format!("{kind} {}: added", name_of(c)));
                now.push(fresh(c.clone()));
            }
        }
    }
    for s in old {
        changes.push(format!("{kind} {}: removed", name_of(cfg_of(&s))));
        stop(s);
    }
    now
}

fn stop_receiver(run: RxRun) -> Result<(), String> {
    let _ = run.rx.stop();
    run.out.finish()
}

fn start_sender(c: &SenderConfig) -> Result<TxRun, String> {
    let iface = match &c.stream.iface {
        Some(i) => {
            crate::sys::socket::lookup(i)
                .map_err(|e| e.to_string())?
                .ipv4
        }
        None => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let mut capture = None;
    let file = c.source.strip_prefix("file:");
    let alsa = c.source.strip_prefix("alsa:");
    let h = match file.or(alsa) {
        None => TxHandle::Tone(
            ToneSender {
                stream: c.stream.clone(),
                iface,
                ttl: c.ttl,
                freq_hz: c.tone_hz,
                level_dbfs: c.level_dbfs,
                rtp_clock: c.rtp_clock,
            }
            .start()
            .map_err(|e| e.to_string())?,
        ),
        Some(path) => {
            let st = &c.stream;
            let frames = crate::media::session::check_format(st, st.packet_time_us.unwrap_or(1000))
                .map_err(|e| e.to_string())?;
            let out = crate::engine::source::OutFormat {
                rate: st.sample_rate,
                channels: usize::from(st.channels),
                bits: u32::from(st.encoding.bits()),
                // Decoded 1 s ahead: the feeder is not real-time.
                ring_frames: (st.sample_rate as usize).max(8 * frames as usize),
            };
            let src: Box<dyn crate::engine::source::AudioSource> = match alsa {
                // Capture (line in): 5 ms periods, 100 ms device buffer, 20 ms
                // target, steered onto the sender's (monotonic) media clock.
                Some(dev) => {
                    let mut cc = crate::engine::capture::CaptureConfig::new(
                        usize::from(st.channels),
                        st.sample_rate,
                    );
                    cc.out_bits = u32::from(st.encoding.bits());
                    let cap = crate::engine::capture::open_alsa(
                        dev,
                        cc,
                        st.sample_rate as usize / 10,
                        crate::engine::playout::MediaRate::free_running(),
                    )
                    .map_err(|e| e.to_string())?;
                    capture = Some(cap.stats());
                    Box::new(cap)
                }
                None => Box::new(
                    crate::engine::source::open_file(std::path::Path::new(path), out, c.looped)
                        .map_err(|e| e.to_string())?
                        .0,
                ),
            };
            let ssrc = crate::engine::sender::new_ssrc();
            TxHandle::File(
                Sender::start(
                    vec![SendStream {
                        stream: st.clone(),
                        frames,
                        iface,
                        ttl: c.ttl,
                        dscp: crate::engine::sender::DSCP_AF41,
                        mediaclk_offset: st.mediaclk_offset.unwrap_or(0),
                        ssrc,
                        source: src,
                    }],
                    SenderOptions::new(SendClock::Monotonic(c.rtp_clock)),
                )
                .map_err(|e| e.to_string())?,
            )
        }
    };
    Ok(TxRun {
        h,
        capture,
        last_sent: 0,
        last_progress: Instant::now(),
    })
}

fn ptp_locked(h: &PtpClockHandle) -> bool {
    matches!(
        h.servo_state(),
        ServoState::Locked | ServoState::LockedStable
    )
}

impl Supervisor {
    /// Starts everything in `cfg`. Parts that fail to start are in error
    /// and retried by [`Self::tick`]; this never fails.
    pub fn start(cfg: Config) -> Supervisor {
        let mut s = Supervisor {
            backoff: backoff_of(&cfg),
            cfg: Config {
                ptp: Vec::new(),
                receivers: Vec::new(),
                senders: Vec::new(),
                ..cfg.clone()
            },
            ptp: Vec::new(),
            receivers: Vec::new(),
            senders: Vec::new(),
            started: Instant::now(),
            reloads: 0,
            reload_errors: 0,
            last_reload_error: None,
            sap: std::sync::Mutex::new(Vec::new()),
        };
        s.apply_diff(cfg);
        s
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Applies a new (validated) config by differences: a PTP port, receiver
    /// or sender whose settings are unchanged keeps running untouched
    /// (receivers are matched by name, ports by interface); changed ones
    /// are restarted, removed ones stopped, new ones started. A PTP port
    /// keeps its clock handle across a change, so its receivers play on.
    /// Returns what changed, one line per part.
    pub fn reload(&mut self, cfg: Config) -> Vec<String> {
        self.reloads += 1;
        self.apply_diff(cfg)
    }

    /// Counts a rejected reload and keeps its errors for the status.
    pub fn reject_reload(&mut self, errors: String) {
        self.reload_errors += 1;
        self.last_reload_error = Some(errors);
    }

    fn apply_diff(&mut self, cfg: Config) -> Vec<String> {
        let mut changes = Vec::new();
        self.backoff = backoff_of(&cfg);
        // PTP ports, by interface.
        let mut old: Vec<PtpSlot> = std::mem::take(&mut self.ptp);
        for pc in &cfg.ptp {
            match old.iter().position(|s| s.cfg.interface == pc.interface) {
                Some(i) => {
                    let mut slot = old.remove(i);
                    if slot.cfg != *pc {
                        changes.push(format!("ptp {}: changed, restarted", pc.interface));
                        if let Some(r) = slot.run.take() {
                            let _ = stop_ptp(r);
                        }
                        slot.cfg = pc.clone();
                        slot.failed = None;
                        self.ptp_try_start(&mut slot);
                    }
                    self.ptp.push(slot);
                }
                None => {
                    changes.push(format!("ptp {}: added", pc.interface));
                    let mut slot = PtpSlot {
                        cfg: pc.clone(),
                        handle: PtpClockHandle::new(),
                        run: None,
                        failed: None,
                        restarts: 0,
                        held: false,
                        last_locked: None,
                    };
                    self.ptp_try_start(&mut slot);
                    self.ptp.push(slot);
                }
            }
        }
        // Receivers, by name.
        let old_rx = std::mem::take(&mut self.receivers);
        self.receivers = reconcile(
            "receiver",
            old_rx,
            &cfg.receivers,
            &mut changes,
            |s| &s.cfg,
            |c| &c.name,
            |slot, c| {
                if let Some(r) = slot.run.take() {
                    let _ = stop_receiver(r);
                }
                slot.cfg = c;
                slot.failed = None;
                self.rx_try_start(slot);
            },
            |c| {
                let mut slot = RxSlot {
                    cfg: c,
                    nmos: None,
                    run: None,
                    failed: None,
                    restarts: 0,
                };
                self.rx_try_start(&mut slot);
                slot
            },
            |s| {
                if let Some(r) = s.run {
                    let _ = stop_receiver(r);
                }
            },
        );
        // PTP ports no longer configured go after their receivers.
        for s in old {
            changes.push(format!("ptp {}: removed", s.cfg.interface));
            if let Some(r) = s.run {
                let _ = stop_ptp(r);
            }
        }
        // Senders, by name.
        let old_tx = std::mem::take(&mut self.senders);
        self.senders = reconcile(
            "sender",
            old_tx,
            &cfg.senders,
            &mut changes,
            |s| &s.cfg,
            |c| &c.name,
            |slot, c| {
                if let Some(r) = slot.run.take() {
                    let _ = r.h.stop();
                }
                slot.cfg = c;
                slot.failed = None;
                self.tx_try_start(slot);
            },
            |c| {
                let mut slot = TxSlot {
                    cfg: c,
                    nmos: None,
                    run: None,
                    failed: None,
                    restarts: 0,
                    send_errors: 0,
                };
                self.tx_try_start(&mut slot);
                slot
            },
            |s| {
                if let Some(r) = s.run {
                    let _ = r.h.stop();
                }
            },
        );
        self.cfg = cfg;
        changes
    }

    /// Records the outcome of starting a part (`what`: "ptp eth0", "receiver
    /// studio-a"): running, or failed with the next retry after the back-off.
    fn settle<R>(
        &self,
        what: std::fmt::Arguments<'_>,
        started: Result<R, String>,
        run: &mut Option<R>,
        failed: &mut Option<Failure>,
    ) {
        match started {
            Ok(r) => {
                tracing::info!("{what} started");
                *run = Some(r);
                *failed = None;
            }
            Err(e) => {
                tracing::warn!("{what}: {e}");
                *failed = Some(self.backoff.fail(failed.as_ref(), e));
            }
        }
    }

    fn ptp_try_start(&self, slot: &mut PtpSlot) {
        let r = start_ptp(&slot.cfg, &slot.handle);
        self.settle(
            format_args!("ptp {}", slot.cfg.interface),
            r,
            &mut slot.run,
            &mut slot.failed,
        );
    }

    fn rx_try_start(&self, slot: &mut RxSlot) {
        let cfg = match &slot.nmos {
            None => slot.cfg.clone(),
            Some(None) => {
                slot.failed = None;
                return;
            }
            Some(Some(s)) => ReceiverConfig {
                stream: s.clone(),
                source: StreamSource::Url(String::new()),
                ..slot.cfg.clone()
            },
        };
        let ptp = self
            .ptp
            .iter()
            .find(|p| Some(&p.cfg.interface) == cfg.stream.iface.as_ref())
            .map(|p| &p.handle);
        // An IS-05 activation hands the stream itself; else the config's
        // URL, SDP file or SAP session, resolved now.
        let r = match &slot.nmos {
            Some(Some(stream)) => start_receiver(&cfg, stream.clone(), ptp),
            _ => self
                .stream_of(&cfg)
                .and_then(|stream| start_receiver(&cfg, stream, ptp)),
        };
        self.settle(
            format_args!("receiver {}", slot.cfg.name),
            r,
            &mut slot.run,
            &mut slot.failed,
        );
    }

    /// The receiver's stream as of now ([`resolve`]), starting the SAP
    /// listener on its interface first for `sap = NAME`.
    fn stream_of(&self, c: &ReceiverConfig) -> Result<StreamConfig, String> {
        if !matches!(c.source, StreamSource::Sap(_)) {
            return resolve(c, None);
        }
        let mut l = self.sap.lock().unwrap_or_else(|p| p.into_inner());
        let iface = c.stream.iface.clone();
        if !l.iter().any(|(i, _)| *i == iface) {
            let h = SapHandle::start(SapOptions {
                iface: iface.clone(),
                ..SapOptions::default()
            })
            .map_err(|e| format!("SAP listener: {e}"))?;
            l.push((iface.clone(), h));
        }
        let (_, h) = l.iter().find(|(i, _)| *i == iface).expect("inserted above");
        resolve(c, Some(h))
    }

    fn tx_try_start(&self, slot: &mut TxSlot) {
        let cfg = match &slot.nmos {
            None => slot.cfg.clone(),
            Some(None) => {
                slot.failed = None;
                return;
            }
            Some(Some(s)) => SenderConfig {
                stream: s.clone(),
                ..slot.cfg.clone()
            },
        };
        let r = start_sender(&cfg);
        self.settle(
            format_args!("sender {}", slot.cfg.name),
            r,
            &mut slot.run,
            &mut slot.failed,
        );
    }

    /// Checks every part and restarts the failed ones whose back-off has
    /// passed. Call it every 100 ms or so.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let mut ptp = std::mem::take(&mut self.ptp);
        for slot in &mut ptp {
            if slot.run.as_ref().is_some_and(|r| r.thread.is_finished()) {
                let e = match slot.run.take().map(stop_ptp) {
                    Some(Err(e)) => e,
                    _ => "the PTP thread ended".into(),
                };
                tracing::warn!(interface = %slot.cfg.interface, "ptp failed: {e}");
                slot.failed = Some(self.backoff.fail(slot.failed.as_ref(), e));
            }
            if slot.run.is_none()
                && !slot.held
                && slot.failed.as_ref().is_some_and(|f| now >= f.retry_at)
            {
                slot.restarts += 1;
                self.ptp_try_start(slot);
            }
            if slot.run.is_some() && ptp_locked(&slot.handle) {
                slot.last_locked = Some(now);
            }
        }
        self.ptp = ptp;
        let mut rxs = std::mem::take(&mut self.receivers);
        for slot in &mut rxs {
            if slot.run.as_mut().is_some_and(|r| r.out.failed(now)) {
                let e = match slot.run.take().map(stop_receiver) {
                    Some(Err(e)) => e,
                    _ => "the output ended".into(),
                };
                tracing::warn!(name = %slot.cfg.name, "receiver failed: {e}");
                slot.failed = Some(self.backoff.fail(slot.failed.as_ref(), e));
            }
            if slot.run.is_none() && slot.failed.as_ref().is_some_and(|f| now >= f.retry_at) {
                slot.restarts += 1;
                self.rx_try_start(slot);
            }
        }
        // PTP feed-forward: a real-time output's media clock runs at the PTP
        // frequency while locked; when lost, the playout holds the last value.
        for slot in &rxs {
            if let Some(RxRun {
                out: Sink::Rt { media, .. },
                ..
            }) = &slot.run
            {
                let h = self
                    .ptp
                    .iter()
                    .find(|p| {
                        slot.cfg.ptp && Some(&p.cfg.interface) == slot.cfg.stream.iface.as_ref()
                    })
                    .map(|p| &p.handle);
                media.set(h.filter(|h| ptp_locked(h)).map(|h| h.freq()));
            }
        }
        self.receivers = rxs;
        let mut txs = std::mem::take(&mut self.senders);
        for slot in &mut txs {
            if let Some(r) = slot.run.as_mut() {
                let n = r.h.sent();
                if n != r.last_sent {
                    r.last_sent = n;
                    r.last_progress = now;
                }
            }
            if slot
                .run
                .as_ref()
                .is_some_and(|r| now.duration_since(r.last_progress) > SENDER_STALL)
            {
                let e = match slot.run.take().map(|r| r.h.stop()) {
                    Some(Err(e)) => e.to_string(),
                    _ => "the sender stalled".into(),
                };
                slot.send_errors += 1;
                tracing::warn!(name = %slot.cfg.name, "sender failed: {e}");
                slot.failed = Some(self.backoff.fail(slot.failed.as_ref(), e));
            }
            if slot.run.is_none() && slot.failed.as_ref().is_some_and(|f| now >= f.retry_at) {
                slot.restarts += 1;
                self.tx_try_start(slot);
            }
        }
        self.senders = txs;
    }

    /// An NMOS IS-05 activation of receiver `name`: play `stream`
    /// (restarting it), or stop it (`None`). It stays so until the next
    /// activation (a reload keeps it). Errors: no receiver of that name.
    pub fn nmos_receiver(
        &mut self,
        name: &str,
        stream: Option<StreamConfig>,
    ) -> Result<(), String> {
        let mut rxs = std::mem::take(&mut self.receivers);
        let r = match rxs.iter_mut().find(|s| s.cfg.name == name) {
            Some(slot) => {
                if let Some(r) = slot.run.take() {
                    let _ = stop_receiver(r);
                }
                tracing::info!(
                    "receiver {name}: NMOS activation: {}",
                    match &stream {
                        Some(s) => format!("play {}:{}", s.dest, s.port),
                        None => "stop".into(),
                    }
                );
                slot.nmos = Some(stream);
                slot.failed = None;
                self.rx_try_start(slot);
                Ok(())
            }
            None => Err(format!("no receiver {name}")),
        };
        self.receivers = rxs;
        r
    }

    /// An NMOS IS-05 activation of sender `name`: send `stream`
    /// (restarting it), or stop it (`None`). Errors: no sender of that name.
    pub fn nmos_sender(&mut self, name: &str, stream: Option<StreamConfig>) -> Result<(), String> {
        let mut txs = std::mem::take(&mut self.senders);
        let r = match txs.iter_mut().find(|s| s.cfg.name == name) {
            Some(slot) => {
                if let Some(r) = slot.run.take() {
                    let _ = r.h.stop();
                }
                tracing::info!(
                    "sender {name}: NMOS activation: {}",
                    match &stream {
                        Some(s) => format!("send to {}:{}", s.dest, s.port),
                        None => "stop".into(),
                    }
                );
                slot.nmos = Some(stream);
                slot.failed = None;
                self.tx_try_start(slot);
                Ok(())
            }
            None => Err(format!("no sender {name}")),
        };
        self.senders = txs;
        r
    }

    /// The clock handle of the PTP port on `iface` (or the first port).
    pub fn ptp_handle(&self, iface: &str) -> Option<PtpClockHandle> {
        self.ptp
            .iter()
            .find(|p| p.cfg.interface == iface)
            .or(self.ptp.first())
            .map(|p| p.handle.clone())
    }

    /// Test hook: stops every PTP thread and keeps it stopped (no restart),
    /// so the health check fails.
    pub fn hold_ptp(&mut self) {
        for s in &mut self.ptp {
            s.held = true;
            if let Some(r) = s.run.take() {
                let _ = stop_ptp(r);
            }
            s.failed = None;
        }
    }

    /// The engine health check behind the systemd watchdog: `Err(reason)`
    /// when a configured PTP port's thread is not running (and not being
    /// retried), or a port that had locked has been unlocked for longer
    /// than `supervisor.watchdog_max_unlocked_s`.
    pub fn health(&self) -> Result<(), String> {
        let max = Duration::from_secs_f64(self.cfg.supervisor.watchdog_max_unlocked_s);
        for s in &self.ptp {
            if s.run.is_none() && s.failed.is_none() {
                return Err(format!("PTP port {} is not running", s.cfg.interface));
            }
            if let Some(t) = s.last_locked
                && t.elapsed() > max
            {
                return Err(format!(
                    "PTP port {} unlocked for {:.0} s",
                    s.cfg.interface,
                    t.elapsed().as_secs_f64()
                ));
            }
        }
        Ok(())
    }

    /// The status model of everything, now.
    pub fn status(&self, config_path: &str) -> ServiceStatus {
        let now = Instant::now();
        let retry = |f: &Option<Failure>| {
            f.as_ref()
                .map(|f| f.retry_at.saturating_duration_since(now).as_secs_f64())
        };
        let health = self.health();
        let ptp = self
            .ptp
            .iter()
            .map(|s| {
                let st = s.handle.status();
                let mut p = PtpPortStatus {
                    interface: s.cfg.interface.clone(),
                    domain: s.cfg.domain,
                    run: if s.run.is_some() {
                        RunState::Running
                    } else if s.held {
                        RunState::Stopped
                    } else {
                        RunState::Error
                    },
                    error: s.failed.as_ref().map(|f| f.error.clone()),
                    retry_in_s: retry(&s.failed),
                    restarts: s.restarts,
                    locked: s.run.is_some() && ptp_locked(&s.handle),
                    ..Default::default()
                };
                if let (Some(st), true) = (st, s.run.is_some()) {
                    p.state = json_name(&st.port.state);
                    p.servo = json_name(&st.port.servo);
                    p.gm_identity = st.port.gm_identity.clone();
                    p.parent = st.port.parent.clone().unwrap_or_default();
                    p.offset_from_master_s = st.port.offset_from_master.map(secs);
                    p.mean_path_delay_s = st.port.mean_path_delay.map(secs);
                    p.freq_ppb = st.port.freq.as_ppb();
                    p.steps = st.port.steps;
                    p.outliers = st.port.outliers;
                    p.holdover_age_s = st.port.holdover_age_s;
                    p.hardware_timestamps = st.hardware_timestamps;
                }
                p
            })
            .collect();
        let receivers = self
            .receivers
            .iter()
            .map(|s| {
                let mut r = match &s.run {
                    Some(run) => {
                        let st = run.rx.stats();
                        let (output, output_frames, playout) = match &run.out {
                            Sink::Plain(o) => (
                                Some((
                                    o.stats.underruns.load(Ordering::Relaxed),
                                    o.stats.xruns.load(Ordering::Relaxed),
                                )),
                                Some(o.stats.frames.load(Ordering::Relaxed)),
                                None,
                            ),
                            Sink::Rt {
                                playout, period, ..
                            } => {
                                let p = playout.stats().snapshot();
                                (None, Some(p.periods * *period as u64), Some(p))
                            }
                        };
                        ReceiverStatus::from_figures(&ReceiverFigures {
                            stats: &st,
                            rate: run.rx.config().sample_rate,
                            link_offset_ms: s.cfg.link_offset_ms,
                            buffer_target_ms: s.cfg.link_offset_ms,
                            output,
                            output_frames,
                            playout,
                            t_s: None,
                        })
                    }
                    None => ReceiverStatus {
                        // parked by IS-05 (master_enable false): stopped, not failed
                        run: if s.nmos == Some(None) {
                            RunState::Stopped
                        } else {
                            RunState::Error
                        },
                        link_offset_s: s.cfg.link_offset_ms / 1e3,
                        ..Default::default()
                    },
                };
                r.name = s.cfg.name.clone();
                r.dest = match (&s.run, &s.nmos, &s.cfg.source) {
                    (Some(run), _, _) => {
                        let c = run.rx.config();
                        format!("{}:{}", c.dest, c.port)
                    }
                    (None, Some(Some(st)), _) => format!("{}:{}", st.dest, st.port),
                    (None, _, StreamSource::Sap(n)) => format!("sap:{n}"),
                    (None, _, _) => format!("{}:{}", s.cfg.stream.dest, s.cfg.stream.port),
                };
                r.output = s.cfg.output.to_string();
                r.error = s.failed.as_ref().map(|f| f.error.clone());
                r.retry_in_s = retry(&s.failed);
                r.restarts = s.restarts;
                r
            })
            .collect();
        let senders = self
            .senders
            .iter()
            .map(|s| SenderStatus {
                name: s.cfg.name.clone(),
                dest: match &s.nmos {
                    Some(Some(st)) => format!("{}:{}", st.dest, st.port),
                    _ => format!("{}:{}", s.cfg.stream.dest, s.cfg.stream.port),
                },
                run: if s.run.is_some() {
                    RunState::Running
                } else if s.nmos == Some(None) {
                    RunState::Stopped
                } else {
                    RunState::Error
                },
                error: s.failed.as_ref().map(|f| f.error.clone()),
                retry_in_s: retry(&s.failed),
                restarts: s.restarts,
                packets: s.run.as_ref().map(|r| r.h.sent()).unwrap_or(0),
                underruns: s.run.as_ref().map(|r| r.h.underruns()).unwrap_or(0),
                pacing_lateness_max_s: s.run.as_ref().map(|r| r.h.max_late_s()).unwrap_or(0.0),
                send_errors: s.send_errors,
                capture: s.run.as_ref().and_then(|r| r.capture.as_ref()).map(|c| {
                    let c = c.snapshot();
                    crate::status::CaptureStatus {
                        overruns: c.overruns,
                        ring_overflows: c.ring_overflows,
                        ring_underruns: c.ring_underruns,
                        resyncs: c.resyncs,
                        ratio_ppm: c.ratio_ppm,
                    }
                }),
            })
            .collect();
        ServiceStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config: config_path.into(),
            healthy: health.is_ok(),
            health_reason: health.err(),
            reloads: self.reloads,
            reload_errors: self.reload_errors,
            last_reload_error: self.last_reload_error.clone(),
            ptp,
            receivers,
            senders,
        }
    }

    /// Stops everything: senders, receivers (outputs finalised), PTP ports,
    /// SAP listeners.
    pub fn shutdown(self) {
        for (_, h) in self.sap.into_inner().unwrap_or_else(|p| p.into_inner()) {
            h.stop();
        }
        for s in self.senders {
            if let Some(r) = s.run {
                let _ = r.h.stop();
            }
        }
        for s in self.receivers {
            if let Some(r) = s.run
                && let Err(e) = stop_receiver(r)
            {
                tracing::warn!(name = %s.cfg.name, "stopping: {e}");
            }
        }
        for s in self.ptp {
            if let Some(r) = s.run {
                let _ = stop_ptp(r);
            }
        }
    }
}

fn backoff_of(c: &Config) -> Backoff {
    Backoff {
        min: Duration::from_millis(c.supervisor.backoff_min_ms),
        max: Duration::from_secs_f64(c.supervisor.backoff_max_s)
            .max(Duration::from_millis(c.supervisor.backoff_min_ms)),
    }
}

fn secs(n: Nanos) -> f64 {
    n.as_ns() as f64 * 1e-9
}

/// The serde name of a unit enum (`SLAVE`, `locked`, `ptp_locked`).
fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(2),
        };
        let f1 = b.fail(None, "x".into());
        assert_eq!(f1.backoff, Duration::from_millis(500));
        let f2 = b.fail(Some(&f1), "x".into());
        assert_eq!(f2.backoff, Duration::from_secs(1));
        let f3 = b.fail(Some(&f2), "x".into());
        let f4 = b.fail(Some(&f3), "x".into());
        assert_eq!(
            (f3.backoff, f4.backoff),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
    }

    #[test]
    fn a_device_failure_names_the_output_and_the_errno() {
        let mut s = crate::engine::playout::PlayoutStats::default().snapshot();
        s.device_errors = 21;
        s.last_device_error = -19; // ENODEV on Linux
        let errno = std::io::Error::from_raw_os_error(19);
        assert_eq!(
            device_failure("alsa:hw:Loopback,0,0", &s),
            format!("alsa:hw:Loopback,0,0: device error: {errno}; 21 device errors")
        );
    }

    #[test]
    fn a_missing_interface_fails_only_its_stream_and_is_retried() {
        let cfg = Config::parse(
            r#"
[[receivers]]
name = "bad"
url = "aes67://239.255.70.1:5004?iface=nosuchif0"
[[receivers]]
name = "good"
url = "aes67://239.255.70.2:5004?iface=lo"
[supervisor]
backoff_min_ms = 50
"#,
            None,
        )
        .unwrap();
        let mut s = Supervisor::start(cfg);
        let st = s.status("t");
        assert_eq!(st.receivers[0].run, RunState::Error, "{st:?}");
        assert!(
            st.receivers[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("nosuchif0"),
            "{st:?}"
        );
        assert_eq!(st.receivers[1].run, RunState::Running, "{st:?}");
        std::thread::sleep(Duration::from_millis(120));
        s.tick();
        let st = s.status("t");
        assert_eq!(st.receivers[0].restarts, 1, "{st:?}");
        assert_eq!(st.receivers[1].run, RunState::Running);
        s.shutdown();
    }

    #[test]
    fn a_sim_output_plays_through_the_steered_real_time_path() {
        let cfg = Config::parse(
            r#"
interface = "lo"
[[receivers]]
name = "sim"
url = "aes67://239.255.70.9:5004"
output = "sim:+100"
[[senders]]
name = "tone"
url = "aes67://239.255.70.9:5004"
ttl = 0
"#,
            None,
        )
        .unwrap();
        assert_eq!(cfg.receivers[0].link_offset_ms, 25.0);
        let mut s = Supervisor::start(cfg);
        std::thread::sleep(Duration::from_millis(1500));
        s.tick();
        let st = s.status("t");
        let r = &st.receivers[0];
        assert_eq!(r.run, RunState::Running, "{st:?}");
        assert!(r.packets > 500, "{r:?}");
        let ratio = r.steering_ratio.expect("a steered output has a ratio");
        assert!((ratio - 1.0).abs() < 2e-3, "{r:?}");
        s.shutdown();
    }
}
