//! `aes67 ptp`: the IO loop around the sans-IO [`Port`] (sockets from
//! [`super::sys`]), publishing the virtual clock to a [`PtpClockHandle`]
//! and printing status once per second.

use std::io::Write;
use std::ops::Add;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::clock::{ClockMap, PtpClockHandle, ServoState, raw_realtime_pair};
use super::msg::ClockIdentity;
use super::port::{Action, Actions, Port, PortConfig, PortState, PortStatus, TxToken};
use super::servo::{ServoConfig, ServoKind};
use super::sys::{self, KernelTs, Phc, PtpSockets, TsMode};
use super::time::{LocalNs, PtpTimestamp, local_now};
use crate::units::Nanos;

/// Arguments of `aes67 ptp`.
#[derive(Debug, Clone, clap::Args)]
pub struct PtpArgs {
    /// Network interface to run PTP on (e.g. eth0).
    #[arg(long)]
    pub iface: String,
    /// PTP domainNumber (0..=127; AES67 default 0).
    #[arg(long, default_value_t = 0)]
    pub domain: u8,
    /// Never become master (clockClass 255).
    #[arg(long, conflicts_with = "master_only")]
    pub slave_only: bool,
    /// Always master (no BMCA), for small rigs with no grandmaster.
    #[arg(long)]
    pub master_only: bool,
    /// Print one JSON object per second instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Servo estimator.
    #[arg(long, value_enum, default_value_t = ServoKind::LinReg)]
    pub servo: ServoKind,
    /// Timestamping: auto (hardware when the interface has it), software, hardware.
    #[arg(long, default_value = "auto", value_parser = ["auto", "software", "hardware"])]
    pub timestamping: String,
    /// priority1 of our clock (master role; lower wins BMCA).
    #[arg(long, default_value_t = 128)]
    pub priority1: u8,
    /// logSyncInterval of our master role (−3 = 8/s, AES67 media profile).
    #[arg(long, default_value_t = -3, allow_hyphen_values = true)]
    pub log_sync_interval: i8,
    /// Master role: announce an ARB timescale with PTP time = CLOCK_REALTIME
    /// (what ptp4l does with software timestamps) instead of PTP/TAI
    /// (CLOCK_REALTIME + 37 s, currentUtcOffsetValid).
    #[arg(long)]
    pub arb: bool,
    /// Linear-regression servo window, s (shorter follows a wandering
    /// master faster, longer averages more noise).
    #[arg(long, default_value_t = 4.0)]
    pub servo_window_s: f64,
    /// meanPathDelay assumed in one-way mode before any was measured, ns.
    #[arg(long, default_value_t = 0)]
    pub assumed_delay_ns: i64,
}

/// Runs `aes67 ptp` until `--duration` or Ctrl-C; returns the exit code
/// (0 ok, 1 set-up error, printed to stderr).
pub fn run(args: PtpArgs) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let _ = ctrlc::set_handler(move || s2.store(true, Ordering::SeqCst));
    let handle = PtpClockHandle::new();
    let r = run_with(&args, &handle, &stop, &mut |line: &str| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aes67 ptp: {e}");
            1
        }
    }
}

/// Starts the PTP loop on a thread; returns the clock handle (for a
/// receiver's media clock) and a stop flag.
pub fn spawn(
    args: PtpArgs,
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
        .spawn(move || run_with(&args, &h2, &s2, &mut |_| {}))
        .expect("spawn ptp thread");
    (handle, stop, j)
}

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
    fn to_local(&self, ts: KernelTs) -> Option<LocalNs> {
        let (raw, rt) = raw_realtime_pair();
        let rt_ts = match ts {
            KernelTs::Software(t) => t,
            KernelTs::Hardware(t) => t - self.phc_minus_rt?,
        };
        Some(LocalNs(rt_ts - (rt - raw.0)))
    }
    fn refresh(&mut self) {
        if let Some(p) = &self.phc
            && let Ok(c) = p.correlate(9, libc::CLOCK_REALTIME)
        {
            self.phc_minus_rt = Some(c.phc_ns - c.sys_ns);
        }
    }
}

/// The loop behind [`run`]: `out` receives one status line (text or JSON)
/// per second. Errors: socket set-up (names the interface and step).
pub fn run_with(
    args: &PtpArgs,
    handle: &PtpClockHandle,
    stop: &AtomicBool,
    out: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let want_hw = args.timestamping != "software";
    let mut socks =
        PtpSockets::open(&args.iface, want_hw).map_err(|e| format!("{}: {e}", args.iface))?;
    if args.timestamping == "hardware" && socks.mode != TsMode::Hardware {
        return Err(format!(
            "{}: hardware timestamping requested but not available (ETHTOOL_GET_TS_INFO)",
            args.iface
        ));
    }
    let info = sys::ts_info(&args.iface).unwrap_or_default();
    let mut conv = TsConv {
        phc: None,
        phc_minus_rt: None,
    };
    if socks.mode == TsMode::Hardware {
        conv.phc = Phc::open(info.phc_index, false).ok();
        conv.refresh();
    }
    let (_, mac) = sys::iface_addrs(&args.iface).map_err(|e| e.to_string())?;
    let mac = mac.unwrap_or_else(|| {
        let p = std::process::id().to_be_bytes();
        [0x02, 0, p[0], p[1], p[2], p[3]]
    });
    let mut cfg = PortConfig::new(ClockIdentity::from_mac(mac));
    cfg.domain = args.domain;
    cfg.slave_only = args.slave_only;
    cfg.master_only = args.master_only;
    cfg.priority1 = args.priority1;
    cfg.log_sync_interval = args.log_sync_interval;
    cfg.ptp_timescale = !args.arb;
    cfg.assumed_delay = Nanos(args.assumed_delay_ns);
    if args.slave_only {
        cfg.quality.clock_class = 255;
    }
    cfg.servo = ServoConfig {
        kind: args.servo,
        hw_timestamps: socks.mode == TsMode::Hardware,
        sync_interval_s: 0.125,
        window: Nanos((args.servo_window_s.clamp(0.5, 600.0) * 1e9) as i64),
        ..ServoConfig::default()
    };
    let (raw, rt) = raw_realtime_pair();
    let utc = if cfg.ptp_timescale {
        cfg.utc_offset as i128 * 1_000_000_000
    } else {
        0
    };
    cfg.initial_map = Some(ClockMap::new(raw, PtpTimestamp(rt as i128 + utc)));
    let start = local_now();
    let mut port = Port::new(cfg, start);
    let mut pending: Vec<PendingTx> = Vec::new();
    let mut buf = [0u8; 2048];
    let mut next_status = start.add(Nanos::from_secs(1));
    let end = args.duration.map(|d| start.add(Nanos((d * 1e9) as i64)));
    let mut acts = Actions::new();
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
        let wait_ms = ((deadline.0 - now.0).max(0) as f64 / 1e6)
            .ceil()
            .min(1000.0) as u16;
        {
            let mut fds = [
                PollFd::new(std::os::fd::AsFd::as_fd(&socks.event), PollFlags::POLLIN),
                PollFd::new(std::os::fd::AsFd::as_fd(&socks.general), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
        }
        // Event socket: datagrams with RX timestamps.
        let hw = socks.mode == TsMode::Hardware;
        while let Some((n, ts, _)) = sys::recv_ts(
            std::os::fd::AsRawFd::as_raw_fd(&socks.event),
            &mut buf,
            hw,
            false,
        )
        .map_err(|e| format!("recv 319: {e}"))?
        {
            let user = local_now();
            let rx = ts.and_then(|t| conv.to_local(t)).unwrap_or(user);
            acts.extend(port.handle_event(&buf[..n], rx, user));
        }
        drain_errqueue(&socks, &conv, &mut pending, &mut port, &mut acts, &mut buf)?;
        while let Some((n, _, _)) = sys::recv_ts(
            std::os::fd::AsRawFd::as_raw_fd(&socks.general),
            &mut buf,
            false,
            false,
        )
        .map_err(|e| format!("recv 320: {e}"))?
        {
            acts.extend(port.handle_general(&buf[..n], local_now()));
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
            let st = port.status(now);
            let v = status_json(&st, handle, &socks, now.since(start));
            handle.set_status(v.clone());
            out(&if args.json {
                v.to_string()
            } else {
                status_line(&st, handle, &socks)
            });
        }
    }
    Ok(())
}

fn drain_errqueue(
    socks: &PtpSockets,
    conv: &TsConv,
    pending: &mut Vec<PendingTx>,
    port: &mut Port,
    acts: &mut Actions,
    buf: &mut [u8],
) -> Result<(), String> {
    let hw = socks.mode == TsMode::Hardware;
    while let Some((_, ts, id)) =
        sys::recv_ts(std::os::fd::AsRawFd::as_raw_fd(&socks.event), buf, hw, true)
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

/// State for display: HOLDOVER when the servo holds over and we are not master.
fn display_state(st: &PortStatus) -> &'static str {
    if st.servo == ServoState::Holdover && st.state != PortState::Master {
        "HOLDOVER"
    } else {
        st.state.name()
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns.abs() >= 1e6 {
        format!("{:.3}ms", ns / 1e6)
    } else if ns.abs() >= 1e3 {
        format!("{:.1}µs", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

/// The seeds' text line plus mode, path delay, rms/max and time since lock:
/// `Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED] …`.
pub fn status_line(st: &PortStatus, handle: &PtpClockHandle, socks: &PtpSockets) -> String {
    let lock = match st.servo {
        ServoState::Locked | ServoState::LockedStable => "LOCKED",
        ServoState::Holdover => "HOLDOVER",
        _ => "UNLOCKED",
    };
    let head = match (&st.parent, st.state) {
        (Some(p), PortState::Slave | PortState::Uncalibrated) => {
            format!(
                "Slave to: PTP/{p}, δ {}",
                st.offset_from_master_ns
                    .map(|o| fmt_ns(o as f64))
                    .unwrap_or("-".into())
            )
        }
        (_, PortState::Master) => format!("Master: PTP/{}", st.gm_identity),
        _ => format!("{}:", display_state(st)),
    };
    let mut s = format!(
        "{head}, Freq: {:+.2}ppm [{lock}] {} {}",
        st.freq_ppb / 1000.0,
        display_state(st),
        mode_name(st, socks)
    );
    if let Some(d) = st.mean_path_delay_ns {
        s += &format!(", delay {}", fmt_ns(d as f64));
    }
    if let (Some(r), Some(m)) = (st.rms_ns, st.max_abs_ns) {
        s += &format!(", rms {} max {} (10s)", fmt_ns(r), fmt_ns(m as f64));
    }
    if let Some(l) = st.locked_for_s {
        s += &format!(", locked {l:.0}s");
    }
    if let Some(h) = st.holdover_age_s {
        s += &format!(", holdover {h:.0}s");
    }
    if let Some(e) = handle.clock_minus_realtime() {
        s += &format!(", clock−realtime {}", fmt_ns(e.0 as f64));
    }
    s
}

/// One `--json` object.
pub fn status_json(
    st: &PortStatus,
    handle: &PtpClockHandle,
    socks: &PtpSockets,
    uptime: Nanos,
) -> serde_json::Value {
    serde_json::json!({
        "t_s": uptime.as_secs_f64(),
        "state": display_state(st),
        "port_state": st.state.name(),
        "servo": st.servo.name(),
        "gm_identity": st.gm_identity,
        "parent": st.parent,
        "offset_from_master_ns": st.offset_from_master_ns,
        "mean_path_delay_ns": st.mean_path_delay_ns,
        "freq_ppb": st.freq_ppb,
        "timestamping": if socks.mode == TsMode::Hardware { "hardware" } else { "software" },
        "mode": mode_name(st, socks),
        "one_way": st.one_way,
        "clock_minus_realtime_ns": handle.clock_minus_realtime().map(|n| n.0),
        "ptp_timescale": st.ptp_timescale,
        "utc_offset_s": st.utc_offset_s,
        "rms_ns": st.rms_ns,
        "max_abs_ns": st.max_abs_ns,
        "locked_for_s": st.locked_for_s,
        "holdover_age_s": st.holdover_age_s,
        "outliers": st.outliers,
        "steps": st.steps,
        "counters": st.counters,
    })
}
