//! `aes67 ptp`: the PTP ordinary clock in the foreground, one status line (or
//! JSON object) per second, until `--duration` or Ctrl-C.

use std::io::Write;

use aes67::engine::ptp::{PtpOptions, Timestamping, run_with};
use aes67::engine::ptp_clock::{PtpClockHandle, PtpStatus};
use aes67::ptp::ServoState;
use aes67::ptp::port::{PortState, PortStatus};
use aes67::ptp::servo::ServoKind;
use aes67::units::Nanos;

/// Arguments of `aes67 ptp`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PtpArgs {
    /// Network interface to run PTP on (e.g. eth0).
    #[arg(long)]
    iface: String,
    /// PTP domainNumber (0..=127; AES67 default 0).
    #[arg(long, default_value_t = 0)]
    domain: u8,
    /// Never become master (clockClass 255).
    #[arg(long, conflicts_with = "master_only")]
    slave_only: bool,
    /// Always master (no BMCA), for small rigs with no grandmaster.
    #[arg(long)]
    master_only: bool,
    /// Print one JSON object per second instead of a text line.
    #[arg(long)]
    json: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Servo estimator: linreg (default), pi or kalman (adaptive Kalman filter).
    #[arg(long, default_value = "linreg")]
    servo: ServoKind,
    /// Timestamping: auto (hardware when the interface has it), software, hardware.
    #[arg(long, default_value = "auto", value_parser = ["auto", "software", "hardware"])]
    timestamping: String,
    /// Transport: udp4 (UDP/IPv4, IEEE 1588 Annex C) or l2 (IEEE 802.3,
    /// ethertype 0x88F7, Annex E; ptp4l's -2; needs CAP_NET_RAW).
    #[arg(long, default_value = "udp4", value_parser = ["udp4", "l2"])]
    transport: String,
    /// priority1 of our clock (master role; lower wins BMCA).
    #[arg(long, default_value_t = 128)]
    priority1: u8,
    /// logSyncInterval of our master role (−3 = 8/s, AES67 media profile).
    #[arg(long, default_value_t = -3, allow_hyphen_values = true)]
    log_sync_interval: i8,
    /// Master role: announce an ARB timescale with PTP time = CLOCK_REALTIME
    /// (what ptp4l does with software timestamps) instead of PTP/TAI
    /// (CLOCK_REALTIME + 37 s, currentUtcOffsetValid).
    #[arg(long)]
    arb: bool,
    /// Linear-regression servo window, s (shorter follows a wandering
    /// master faster, longer averages more noise).
    #[arg(long, default_value_t = 4.0)]
    servo_window_s: f64,
    /// meanPathDelay assumed in one-way mode before any was measured, ns.
    #[arg(long, default_value_t = 0)]
    assumed_delay_ns: i64,
    /// Accept only this master (grandmaster or sender clockIdentity, 16 hex
    /// digits; IEEE 1588-2019 §17.6); repeat for several. Default: any.
    #[arg(long = "acceptable-master")]
    acceptable_master: Vec<aes67::ptp::msg::ClockIdentity>,
    /// Largest clock step followed once locked, ms (like ptp4l's
    /// step_threshold): a master whose time jumps further is refused,
    /// counted (steps_refused) and held over. Default: any.
    #[arg(long)]
    max_step_ms: Option<f64>,
}

impl PtpArgs {
    fn options(&self) -> PtpOptions {
        PtpOptions {
            domain: self.domain,
            slave_only: self.slave_only,
            master_only: self.master_only,
            duration: self.duration.map(|d| Nanos::from_secs_f64(d.max(0.0))),
            servo: self.servo,
            timestamping: self.timestamping.parse().unwrap_or(Timestamping::Auto),
            transport: self.transport.parse().unwrap_or_default(),
            priority1: self.priority1,
            log_sync_interval: self.log_sync_interval,
            arb: self.arb,
            servo_window: Nanos::from_secs_f64(self.servo_window_s.clamp(0.5, 600.0)),
            assumed_delay: Nanos::from_ns(self.assumed_delay_ns),
            acceptable_masters: self.acceptable_master.clone(),
            max_step: self
                .max_step_ms
                .map(|ms| Nanos::from_secs_f64(ms.max(0.0) / 1e3)),
            ..PtpOptions::new(self.iface.clone())
        }
    }
}

/// Runs `aes67 ptp` until `--duration` or Ctrl-C (the CLI's one handler);
/// returns the exit code (0 ok, 1 set-up error, printed to stderr).
pub(crate) fn run(args: PtpArgs) -> i32 {
    let handle = PtpClockHandle::new();
    let r = run_with(&args.options(), &handle, super::signal::flag(), &mut |s| {
        let line = if args.json {
            status_json(s).to_string()
        } else {
            status_line(s)
        };
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
pub(crate) fn status_line(status: &PtpStatus) -> String {
    let st = &status.port;
    let lock = match st.servo {
        ServoState::Locked | ServoState::LockedStable => "LOCKED",
        ServoState::Holdover => "HOLDOVER",
        _ => "UNLOCKED",
    };
    let head = match (&st.parent, st.state) {
        (Some(p), PortState::Slave | PortState::Uncalibrated) => {
            format!(
                "Slave to: PTP/{p}, δ {}",
                st.offset_from_master
                    .map(|o| fmt_ns(o.as_ns() as f64))
                    .unwrap_or("-".into())
            )
        }
        (_, PortState::Master) => format!("Master: PTP/{}", st.gm_identity),
        _ => format!("{}:", display_state(st)),
    };
    let mut s = format!(
        "{head}, Freq: {:+.2}ppm [{lock}] {} {}",
        st.freq.as_ppm(),
        display_state(st),
        status.mode
    );
    if let Some(d) = st.mean_path_delay {
        s += &format!(", delay {}", fmt_ns(d.as_ns() as f64));
    }
    if let (Some(r), Some(m)) = (st.rms_ns, st.max_abs) {
        s += &format!(", rms {} max {} (10s)", fmt_ns(r), fmt_ns(m.as_ns() as f64));
    }
    if let Some(l) = st.locked_for_s {
        s += &format!(", locked {l:.0}s");
    }
    if let Some(h) = st.holdover_age_s {
        s += &format!(", holdover {h:.0}s");
    }
    if let Some(e) = status.clock_minus_realtime {
        s += &format!(", clock−realtime {}", fmt_ns(e.as_ns() as f64));
    }
    s
}

/// One `--json` object.
pub(crate) fn status_json(s: &PtpStatus) -> serde_json::Value {
    let st = &s.port;
    serde_json::json!({
        "t_s": s.uptime.as_secs_f64(),
        "state": display_state(st),
        "port_state": st.state.name(),
        "servo": st.servo.name(),
        "gm_identity": st.gm_identity,
        "parent": st.parent,
        "offset_from_master_ns": st.offset_from_master.map(|o| o.as_ns()),
        "mean_path_delay_ns": st.mean_path_delay.map(|d| d.as_ns()),
        "freq_ppb": st.freq.as_ppb(),
        "timestamping": if s.hardware_timestamps { "hardware" } else { "software" },
        "mode": s.mode,
        "transport": s.transport,
        "frame_drops": s.frame_drops,
        "rx_stamps": s.rx_stamps,
        "rx_timestamps": s.timestamps,
        "rx_timestamps_note": s.timestamps_note,
        "tx_timestamps": s.tx_timestamps,
        "tx_timestamps_note": s.tx_timestamps_note,
        "one_way": st.one_way,
        "clock_minus_realtime_ns": s.clock_minus_realtime.map(|n| n.as_ns()),
        "ptp_timescale": st.ptp_timescale,
        "utc_offset_s": st.utc_offset_s,
        "rms_ns": st.rms_ns,
        "max_abs_ns": st.max_abs.map(|m| m.as_ns()),
        "locked_for_s": st.locked_for_s,
        "holdover_age_s": st.holdover_age_s,
        "outliers": st.outliers,
        "steps": st.steps,
        "steps_refused": st.steps_refused,
        "counters": st.counters,
    })
}
