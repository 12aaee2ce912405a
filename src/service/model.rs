//! The one status model of a running service: built by the supervisor,
//! served as JSON on the status socket, rendered as Prometheus metrics
//! ([`super::metrics`]) and as the `aes67 status` screen ([`Self::screen`]).
//!
//! Units are in the field names (`_s` seconds, `_ppb` parts per billion).

use serde::{Deserialize, Serialize};

/// Everything `aes67 status` and the metrics show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceStatus {
    /// Crate version of the running service.
    pub version: String,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// The config file in use.
    pub config: String,
    /// The engine health check (what drives the systemd watchdog).
    pub healthy: bool,
    /// Why it is unhealthy, when it is not.
    pub health_reason: Option<String>,
    /// Reloads applied (SIGHUP).
    pub reloads: u64,
    /// Reloads rejected (invalid config; the running set stayed).
    pub reload_errors: u64,
    /// The last rejected reload's errors.
    pub last_reload_error: Option<String>,
    /// One PTP port per interface.
    pub ptp: Vec<PtpPortStatus>,
    /// Receivers, in config order.
    pub receivers: Vec<ReceiverStatus>,
    /// Senders, in config order.
    pub senders: Vec<SenderStatus>,
}

/// A stream's or a port's run state.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Running.
    Running,
    /// Failed; retried after back-off (`retry_in_s`).
    #[default]
    Error,
    /// Stopped on purpose (test hook).
    Stopped,
}

impl RunState {
    /// The name as in JSON (`running`, `error`, `stopped`).
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Error => "error",
            RunState::Stopped => "stopped",
        }
    }
}

/// One PTP port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PtpPortStatus {
    /// Interface name.
    pub interface: String,
    /// domainNumber.
    pub domain: u8,
    /// The port thread's run state.
    pub run: RunState,
    /// The last error, while in `error`.
    pub error: Option<String>,
    /// Seconds until the next restart attempt, while in `error`.
    pub retry_in_s: Option<f64>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Port state (IEEE 1588-2019 §9.2.5): `LISTENING`, `SLAVE`, … (empty before the first status).
    pub state: String,
    /// Servo state: `unlocked`, `locked`, `locked_stable`, `holdover`.
    pub servo: String,
    /// The clock is locked (servo locked or locked_stable).
    pub locked: bool,
    /// grandmasterIdentity.
    pub gm_identity: String,
    /// Last offsetFromMaster, s.
    pub offset_from_master_s: Option<f64>,
    /// meanPathDelay, s.
    pub mean_path_delay_s: Option<f64>,
    /// Frequency of the virtual clock vs the local reference, ppb.
    pub freq_ppb: f64,
    /// Clock steps so far.
    pub steps: u64,
    /// Servo outliers rejected so far.
    pub outliers: u64,
    /// Time since the last Sync sample in holdover, s.
    pub holdover_age_s: Option<f64>,
    /// Hardware timestamps in use.
    pub hardware_timestamps: bool,
}

/// One receiver.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReceiverStatus {
    /// Stream name (the `name` label).
    pub name: String,
    /// `group:port`.
    pub dest: String,
    /// The output, `alsa:DEV`, `wav:PATH` or `null`.
    pub output: String,
    /// Run state.
    pub run: RunState,
    /// The last error, while in `error`.
    pub error: Option<String>,
    /// Seconds until the next restart attempt, while in `error`.
    pub retry_in_s: Option<f64>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Media clock state (`ptp_locked`, `free_run`, …).
    pub clock: String,
    /// RTP SSRC (0 before the first packet).
    pub ssrc: u32,
    /// Packets accepted.
    pub packets: u64,
    /// Packets lost (sequence gaps).
    pub lost: u64,
    /// Packets too late for their play time.
    pub late: u64,
    /// Packets out of order.
    pub reordered: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Malformed packets or a wrong payload type.
    pub malformed: u64,
    /// Packets from a source other than the pinned one.
    pub foreign: u64,
    /// Output underruns.
    pub underruns: u64,
    /// Output xruns.
    pub xruns: u64,
    /// Audio held in the playout buffer, s.
    pub buffer_s: f64,
    /// Link offset, s.
    pub link_offset_s: f64,
    /// Resampling ratio of a steered output (1 = nominal); `None` for plain outputs.
    pub steering_ratio: Option<f64>,
    /// Frames written by a plain output (WAV, null; 0 for ALSA and sim).
    pub output_frames: u64,
}

/// One sender.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SenderStatus {
    /// Stream name.
    pub name: String,
    /// `group:port`.
    pub dest: String,
    /// Run state.
    pub run: RunState,
    /// The last error, while in `error`.
    pub error: Option<String>,
    /// Seconds until the next restart attempt, while in `error`.
    pub retry_in_s: Option<f64>,
    /// Restarts after failures.
    pub restarts: u64,
    /// Packets sent (since the last (re)start).
    pub packets: u64,
    /// Source underruns (the tone source never runs dry: 0).
    pub underruns: u64,
    /// Send errors that stopped the sender.
    pub send_errors: u64,
}

fn opt_us(v: Option<f64>) -> String {
    v.map(|s| format!("{:.1}", s * 1e6))
        .unwrap_or_else(|| "-".into())
}

impl ServiceStatus {
    /// The `aes67 status` screen: a header, the PTP ports (like `pmc`), then
    /// one line per stream (like `pw-top`). Fits 100 columns.
    pub fn screen(&self) -> String {
        let mut s = format!(
            "aes67 {} up {:.0} s  config {}  health {}{}  reloads {} (rejected {})\n",
            self.version,
            self.uptime_s,
            self.config,
            if self.healthy { "ok" } else { "FAILING" },
            self.health_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.reloads,
            self.reload_errors,
        );
        if let Some(e) = &self.last_reload_error {
            s += &format!("last rejected reload: {}\n", e.replace('\n', "; "));
        }
        s += "\nPTP  IFACE        DOM STATE        SERVO          OFFSET_us  DELAY_us   FREQ_ppb  GM\n";
        for p in &self.ptp {
            if p.run != RunState::Running {
                s += &format!(
                    "     {:<12} {:>3} {:<12} {}{}\n",
                    p.interface,
                    p.domain,
                    p.run.name().to_uppercase(),
                    p.error.as_deref().unwrap_or(""),
                    p.retry_in_s
                        .map(|r| format!(" (retry in {r:.1} s)"))
                        .unwrap_or_default()
                );
                continue;
            }
            s += &format!(
                "     {:<12} {:>3} {:<12} {:<13} {:>10} {:>9} {:>10.1}  {}\n",
                p.interface,
                p.domain,
                p.state,
                p.servo,
                opt_us(p.offset_from_master_s),
                opt_us(p.mean_path_delay_s),
                p.freq_ppb,
                p.gm_identity
            );
        }
        s += "\nRX   NAME             STATE    CLOCK        PKTS     LOST  LATE  BUF_ms  UNDER  XRUN  OUTPUT\n";
        for r in &self.receivers {
            s += &format!(
                "     {:<16} {:<8} {:<10} {:>8} {:>6} {:>5} {:>7.1} {:>6} {:>5}  {}\n",
                r.name,
                r.run.name(),
                r.clock,
                r.packets,
                r.lost,
                r.late,
                r.buffer_s * 1e3,
                r.underruns,
                r.xruns,
                r.output
            );
            if let Some(e) = &r.error {
                s += &format!(
                    "       error: {e}{}\n",
                    r.retry_in_s
                        .map(|t| format!(" (retry in {t:.1} s, restarts {})", r.restarts))
                        .unwrap_or_default()
                );
            }
        }
        s += "\nTX   NAME             STATE    DEST                      PKTS  ERRORS\n";
        for t in &self.senders {
            s += &format!(
                "     {:<16} {:<8} {:<21} {:>8} {:>7}\n",
                t.name,
                t.run.name(),
                t.dest,
                t.packets,
                t.send_errors
            );
            if let Some(e) = &t.error {
                s += &format!("       error: {e}\n");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_shows_ports_streams_and_errors() {
        let st = ServiceStatus {
            version: "0.1.0".into(),
            healthy: true,
            ptp: vec![PtpPortStatus {
                interface: "eth0".into(),
                run: RunState::Running,
                state: "SLAVE".into(),
                servo: "locked".into(),
                offset_from_master_s: Some(1.5e-6),
                ..Default::default()
            }],
            receivers: vec![ReceiverStatus {
                name: "a".into(),
                run: RunState::Error,
                error: Some("no interface eth9".into()),
                retry_in_s: Some(2.0),
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = st.screen();
        assert!(
            s.contains("eth0") && s.contains("SLAVE") && s.contains("1.5"),
            "{s}"
        );
        assert!(
            s.contains("error: no interface eth9 (retry in 2.0 s"),
            "{s}"
        );
        let back: ServiceStatus =
            serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
    }
}
