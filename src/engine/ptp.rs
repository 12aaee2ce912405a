//! The PTP driver thread: the IO loop around the sans-IO [`Port`], over the
//! platform's PTP transport ([`crate::sys::ptp`]). It publishes the virtual
//! clock to a [`PtpClockHandle`] after every servo update and a [`PtpStatus`]
//! once per second.

use std::ops::Add;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::ptp_clock::{PtpClockHandle, PtpStatus, RxStampCounts};
use crate::ptp::msg::ClockIdentity;
use crate::ptp::port::{Action, Actions, Port, PortConfig, PortStatus, TxToken};
use crate::ptp::servo::{ServoConfig, ServoKind};
use crate::ptp::{ClockMap, LocalNs, LogInterval, PtpTimestamp};
use crate::sys::RxTimestamp;
use crate::sys::clock::{local_now, raw_realtime_pair};
use crate::sys::ptp::{self as sys, Phc, PtpSockets, Transport, TsMode};
use crate::units::Nanos;

/// Which timestamps the PTP port uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timestamping {
    /// Hardware when the interface has a PHC and stamps PTP, else software.
    #[default]
    Auto,
    /// Kernel software timestamps.
    Software,
    /// Hardware timestamps; an error when the interface has none.
    Hardware,
}

from_names!(Timestamping, "timestamping", {
    "auto" => Auto,
    "software" => Software,
    "hardware" => Hardware,
});

/// Settings of one PTP ordinary clock port (IEEE 1588-2019 §8.2.15).
#[derive(Debug, Clone)]
pub struct PtpOptions {
    /// Network interface, e.g. `eth0`.
    pub iface: String,
    /// domainNumber (0..=127; AES67 default 0).
    pub domain: u8,
    /// Never become master (clockClass 255).
    pub slave_only: bool,
    /// Always master (no BMCA).
    pub master_only: bool,
    /// Stop after this long (None: until the stop flag is set).
    pub duration: Option<Nanos>,
    /// Servo estimator.
    pub servo: ServoKind,
    /// Timestamping.
    pub timestamping: Timestamping,
    /// Transport: UDP/IPv4 (Annex C, default) or IEEE 802.3 (Annex E).
    pub transport: Transport,
    /// priority1 of our clock (lower wins BMCA).
    pub priority1: u8,
    /// logSyncInterval of our master role, log2 s (−3 = 8/s, AES67 media profile).
    pub log_sync_interval: i8,
    /// Master role: announce an ARB timescale with PTP time = CLOCK_REALTIME
    /// instead of PTP/TAI (CLOCK_REALTIME + currentUtcOffset).
    pub arb: bool,
    /// Linear-regression servo window (0.5-600 s).
    pub servo_window: Nanos,
    /// meanPathDelay assumed in one-way mode before any was measured.
    pub assumed_delay: Nanos,
    /// Acceptable masters (IEEE 1588-2019 §17.6; grandmaster or sender
    /// clockIdentity); empty = any. A receiver fills it from its SDP's
    /// `a=ts-refclk` ([`crate::media::stream::StreamConfig::ptp_grandmaster`]).
    pub acceptable_masters: Vec<ClockIdentity>,
    /// Largest clock step followed once locked (`None` = any): a master
    /// whose time jumps further is refused and counted
    /// ([`crate::ptp::servo::ServoConfig::max_step`]).
    pub max_step: Option<Nanos>,
}

impl PtpOptions {
    /// A slave-capable ordinary clock on `iface` with the AES67 media profile
    /// defaults: domain 0, priority1 128, logSyncInterval −3, PTP timescale,
    /// linear-regression servo over 4 s, automatic timestamping.
    pub fn new(iface: impl Into<String>) -> PtpOptions {
        PtpOptions {
            iface: iface.into(),
            domain: 0,
            slave_only: false,
            master_only: false,
            duration: None,
            servo: ServoKind::LinReg,
            timestamping: Timestamping::Auto,
            transport: Transport::Udp4,
            priority1: 128,
            log_sync_interval: -3,
            arb: false,
            servo_window: Nanos::from_secs(4),
            assumed_delay: Nanos::ZERO,
            acceptable_masters: Vec::new(),
            max_step: None,
        }
    }
}

/// Starts the PTP loop on a thread named `ptp`; returns the clock handle
/// (for a receiver's media clock), the stop flag and the thread.
///
/// Errors (from the thread): socket set-up, naming the interface and step.
pub fn spawn(
    opts: PtpOptions,
) -> (
    PtpClockHandle,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Result<(), String>>,
) {
    let handle = PtpClockHandle::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (h2, s2) = (handle.clone(), stop.clone());
    let j = std::thread::Builder::new()
        .name("ptp".into())
        .spawn(move || run_with(&opts, &h2, &s2, &mut |_| {}))
        .expect("spawn ptp thread");
    (handle, stop, j)
}

/// Longest wait between two reads of the stop flag, ms: the loop ends within
/// this of `stop` being set.
const STOP_POLL_MS: f64 = 100.0;

struct PendingTx {
    id: u32,
    token: TxToken,
    deadline: LocalNs,
}

/// Converts a kernel timestamp to the local reference clock.
struct TsConv {
    phc: Option<Phc>,
    /// PHC − CLOCK_REALTIME, ns, refreshed each second.
    phc_minus_rt: Option<i64>,
}

impl TsConv {
    fn to_local(&self, ts: RxTimestamp) -> Option<LocalNs> {
        let (raw, rt) = raw_realtime_pair();
        let rt_ts = match ts {
            RxTimestamp::Local(t) => return Some(LocalNs::from_ns(t)),
            RxTimestamp::Software(t) => t,
            RxTimestamp::Hardware(t) => t - self.phc_minus_rt?,
        };
        Some(LocalNs::from_ns(rt_ts - (rt - raw.as_ns())))
    }
    fn refresh(&mut self) {
        if let Some(p) = &self.phc
            && let Ok(d) = p.minus_realtime(9)
        {
            self.phc_minus_rt = Some(d);
        }
    }
}

/// Runs the PTP port on the calling thread until `stop` is set or
/// `opts.duration` has passed; `out` receives a [`PtpStatus`] once per second
/// (also stored in `handle`).
///
/// Errors: socket set-up (names the interface and step), `poll`/`recvmsg`
/// failures.
pub fn run_with(
    opts: &PtpOptions,
    handle: &PtpClockHandle,
    stop: &AtomicBool,
    out: &mut dyn FnMut(&PtpStatus),
) -> Result<(), String> {
    let want_hw = opts.timestamping != Timestamping::Software;
    let mut socks = PtpSockets::open_with(&opts.iface, want_hw, opts.transport)
        .map_err(|e| format!("{}: {e}", opts.iface))?;
    if opts.timestamping == Timestamping::Hardware && socks.mode != TsMode::Hardware {
        return Err(format!(
            "{}: hardware timestamping requested but not available (ETHTOOL_GET_TS_INFO)",
            opts.iface
        ));
    }
    let info = sys::ts_info(&opts.iface).unwrap_or_default();
    let mut conv = TsConv {
        phc: None,
        phc_minus_rt: None,
    };
    if socks.mode == TsMode::Hardware {
        conv.phc = Phc::open(info.phc_index, false).ok();
        conv.refresh();
    }
    let mac = socks.mac().unwrap_or_else(|| {
        let p = std::process::id().to_be_bytes();
        [0x02, 0, p[0], p[1], p[2], p[3]]
    });
    let mut cfg = PortConfig::new(ClockIdentity::from_mac(mac));
    cfg.domain = opts.domain;
    cfg.slave_only = opts.slave_only;
    cfg.master_only = opts.master_only;
    cfg.priority1 = opts.priority1;
    cfg.log_sync_interval = LogInterval::new(opts.log_sync_interval);
    cfg.ptp_timescale = !opts.arb;
    cfg.assumed_delay = opts.assumed_delay;
    cfg.acceptable_masters = opts.acceptable_masters.clone();
    if opts.slave_only {
        cfg.quality.clock_class = 255;
    }
    cfg.servo = ServoConfig {
        kind: opts.servo,
        hw_timestamps: socks.mode == TsMode::Hardware,
        sync_interval_s: 0.125,
        window: opts
            .servo_window
            .clamp(Nanos::from_ms(500), Nanos::from_secs(600)),
        max_step: opts.max_step,
        ..ServoConfig::default()
    };
    if socks.user_space_rx() {
        // Receive stamps read in user space after the wake-up (Windows
        // without SO_TIMESTAMP) carry the scheduler's latency: one-sided,
        // heavy-tailed, 0.1-10 ms on a loaded machine. A jitter of that
        // size is not a step of the master, and the fit needs more samples;
        // the published clock follows the latency's lower envelope, not its
        // mean (PortConfig::one_sided_rx).
        cfg.servo.step_threshold = Nanos::from_ms(20);
        cfg.servo.outlier_floor = Nanos::from_ms(2);
        cfg.servo.restart_after = 16;
        cfg.servo.stable_bound = Nanos::from_us(500);
        cfg.servo.window = cfg.servo.window.max(Nanos::from_secs(8));
        cfg.one_sided_rx = true;
    }
    let (raw, rt) = raw_realtime_pair();
    let utc = if cfg.ptp_timescale {
        cfg.utc_offset as i128 * 1_000_000_000
    } else {
        0
    };
    cfg.initial_map = Some(ClockMap::new(
        raw,
        PtpTimestamp::from_nanos(rt as i128 + utc),
    ));
    let start = local_now();
    let mut port = Port::new(cfg, start);
    let mut pending: Vec<PendingTx> = Vec::new();
    let mut buf = [0u8; 2048];
    let mut next_status = start.add(Nanos::from_secs(1));
    let end = opts.duration.map(|d| start.add(d));
    let mut acts = Actions::new();
    let mut stamps = RxStampCounts::default();
    while !stop.load(Ordering::Relaxed) {
        let now = local_now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let mut deadline = next_status;
        if let Some(t) = port.poll_timeout() {
            deadline = deadline.min(t);
        }
        for p in &pending {
            deadline = deadline.min(p.deadline);
        }
        // The stop flag is set from another thread (e.g. a signal handler's),
        // which does not wake `poll`: wait at most STOP_POLL between reads.
        let wait_ms = ((deadline.as_ns() - now.as_ns()).max(0) as f64 / 1e6)
            .ceil()
            .min(STOP_POLL_MS) as u16;
        socks.wait(wait_ms).map_err(|e| format!("poll: {e}"))?;
        // Event socket: datagrams with RX timestamps and source addresses
        // (the port pins its parent to the address of its Announces). At
        // most RECV_BUDGET per socket and wake-up: a flood cannot starve the
        // timers and sends.
        let mut budget = RECV_BUDGET;
        while budget > 0
            && let Some(r) = socks
                .recv_event(&mut buf)
                .map_err(|e| format!("recv 319: {e}"))?
        {
            budget -= 1;
            if unicast_where_multicast_expected(&r, &buf) {
                port.count_unicast_dropped();
                continue;
            }
            let user = local_now();
            // Over Layer 2 one socket carries every message: general ones
            // (messageType ≥ 8, §13.3.2.2) go the general way.
            if socks.transport == Transport::L2 && buf.first().is_some_and(|b| b & 0x0f >= 0x8) {
                acts.extend(port.handle_general_from(&buf[..r.len], r.src, user));
                continue;
            }
            match r.ts {
                Some(RxTimestamp::Hardware(_)) => stamps.hardware += 1,
                Some(_) => stamps.software += 1,
                None => stamps.missing += 1,
            }
            let rx = r.ts.and_then(|t| conv.to_local(t)).unwrap_or(user);
            acts.extend(port.handle_event_from(&buf[..r.len], r.src, rx, user));
        }
        drain_errqueue(&socks, &conv, &mut pending, &mut port, &mut acts, &mut buf)?;
        let mut budget = RECV_BUDGET;
        while budget > 0
            && let Some(r) = socks
                .recv_general(&mut buf)
                .map_err(|e| format!("recv 320: {e}"))?
        {
            budget -= 1;
            if unicast_where_multicast_expected(&r, &buf) {
                port.count_unicast_dropped();
                continue;
            }
            acts.extend(port.handle_general_from(&buf[..r.len], r.src, local_now()));
        }
        let now = local_now();
        if port.poll_timeout().is_some_and(|t| now >= t) {
            acts.extend(port.handle_timeout(now));
        }
        pending.retain_mut(|p| {
            if now >= p.deadline {
                let tok = std::mem::replace(&mut p.token, TxToken(u64::MAX));
                acts.extend(port.handle_tx_failed(tok, now));
                false
            } else {
                true
            }
        });
        // Execute actions (sending may produce TX timestamps → more actions).
        let mut rounds = 0;
        while !acts.is_empty() && rounds < 8 {
            rounds += 1;
            for a in std::mem::take(&mut acts) {
                match a {
                    Action::SendEvent { data, token } => match socks.send_event(&data) {
                        Ok(id) => pending.push(PendingTx {
                            id,
                            token,
                            deadline: local_now().add(Nanos::from_ms(100)),
                        }),
                        Err(_) => acts.extend(port.handle_tx_failed(token, local_now())),
                    },
                    Action::SendGeneral { data } => {
                        let _ = socks.send_general(&data);
                    }
                    Action::PublishClock {
                        map,
                        servo,
                        utc_offset_s,
                    } => handle.publish(&map, servo, utc_offset_s),
                }
            }
            if !pending.is_empty() {
                // Software TX timestamps are queued within microseconds of the send.
                std::thread::sleep(Duration::from_micros(50));
                drain_errqueue(&socks, &conv, &mut pending, &mut port, &mut acts, &mut buf)?;
            }
        }
        let now = local_now();
        if now >= next_status {
            next_status = next_status.add(Nanos::from_secs(1)).max(now);
            conv.refresh();
            let st = PtpStatus {
                uptime: now.since(start),
                mode: mode_name(&port.status(now), &socks),
                hardware_timestamps: socks.mode == TsMode::Hardware,
                timestamps: socks.timestamp_path().0,
                timestamps_note: socks.timestamp_path().1,
                tx_timestamps: socks.tx_timestamp_path().0,
                tx_timestamps_note: socks.tx_timestamp_path().1,
                transport: socks.transport.name(),
                frame_drops: socks.frame_drops(),
                rx_stamps: stamps,
                clock_minus_realtime: handle.clock_minus_realtime(),
                port: port.status(now),
            };
            handle.set_status(st.clone());
            out(&st);
        }
    }
    Ok(())
}

/// Announce, Sync and Follow_Up (messageType 0xB, 0x0, 0x8; IEEE 1588-2019
/// §13.3.2.2) choose and move the clock and always come to the PTP group in
/// this multicast E2E profile: sent to a unicast address they are dropped.
/// (Delay_Resp may be unicast: hybrid masters answer so.)
fn unicast_where_multicast_expected(r: &sys::PtpRx, buf: &[u8]) -> bool {
    r.is_unicast()
        && buf
            .get(..r.len.min(buf.len()))
            .and_then(|b| b.first())
            .is_some_and(|b| matches!(b & 0x0f, 0x0 | 0x8 | 0xB))
}

/// Datagrams read per socket per wake-up (a bound against floods; the rest
/// wait for the next turn of the loop).
const RECV_BUDGET: usize = 64;

fn drain_errqueue(
    socks: &PtpSockets,
    conv: &TsConv,
    pending: &mut Vec<PendingTx>,
    port: &mut Port,
    acts: &mut Actions,
    buf: &mut [u8],
) -> Result<(), String> {
    while let Some((ts, id)) = socks
        .recv_tx_timestamp(buf)
        .map_err(|e| format!("errqueue: {e}"))?
    {
        let (Some(ts), Some(id)) = (ts, id) else {
            continue;
        };
        if let Some(i) = pending.iter().position(|p| p.id == id) {
            let p = pending.swap_remove(i);
            match conv.to_local(ts) {
                Some(l) => acts.extend(port.handle_tx_timestamp(p.token, l)),
                None => acts.extend(port.handle_tx_failed(p.token, local_now())),
            }
        }
    }
    Ok(())
}

fn mode_name(st: &PortStatus, socks: &PtpSockets) -> &'static str {
    if st.one_way {
        "one-way"
    } else if socks.mode == TsMode::Hardware {
        "hw"
    } else {
        "sw"
    }
}
