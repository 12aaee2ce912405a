//! The one status model: what a receiver, a sender, a PTP port and the
//! service report, and one formatter per output form.
//!
//! - [`ReceiverFigures`]: a receiver's raw figures at one instant (the
//!   engine's [`ReceiverStats`], its output's counters, the playout thread's
//!   [`StatsSnapshot`]); [`ReceiverStatus::from_figures`] turns them into
//!   the model, the one place where counters are mapped.
//! - Forms: the CLI status line ([`ReceiverFigures::line`], `aes67 play`,
//!   `demo`, `monitor`) and its JSON ([`ReceiverFigures::json`], keys in
//!   `docs/cli.md`); the service JSON (the serde form of [`ServiceStatus`],
//!   on the status socket); the `aes67 status` screen
//!   ([`ServiceStatus::screen`]); the Prometheus metrics (`service::metrics`,
//!   from [`ServiceStatus`]); the BASS add-on's PTP stats line
//!   ([`PtpPortStatus::slave_line`], `docs/bass-plugin.md`).
//!
//! Plain data and string formatting only: no OS calls, no threads. Units are
//! in the field names (`_s` seconds, `_ms` milliseconds, `_ppb` parts per
//! billion).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::playout::StatsSnapshot;
use crate::engine::receiver::ReceiverStats;

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
    /// parentPortIdentity (IEEE 1588-2019 §8.2.3.2) as
    /// `clockIdentity:portNumber`, when slave or uncalibrated; empty otherwise.
    #[serde(default)]
    pub parent: String,
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
    /// Frames written by the output: a plain one (WAV, null), or in the
    /// service a real-time one (ALSA, sim: stream frames played to the
    /// device, priming silence excluded); 0 when not known.
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
    /// Pacing lateness: the largest delay of a send behind its schedule since
    /// the sender's (re)start, s.
    #[serde(default)]
    pub pacing_lateness_max_s: f64,
    /// An `alsa:` (capture) source's counters; `None` for tone and file sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStatus>,
}

/// The capture side of a sender with an `alsa:` source (`engine::capture`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaptureStatus {
    /// Device overruns (ALSA `-EPIPE` on capture: frames the device dropped).
    pub overruns: u64,
    /// Chunks dropped because the sender's ring was full (the pacing thread stalled).
    pub ring_overflows: u64,
    /// Times the sender found the ring empty and the target was re-established.
    pub ring_underruns: u64,
    /// Resyncs (drop/insert) asked by the rate controller.
    pub resyncs: u64,
    /// Steering: media frames per device frame − 1, ppm (≈ −(device clock error)).
    pub ratio_ppm: f64,
}

impl PtpPortStatus {
    /// The BASS add-on's stats line while a master is known
    /// (`BASS_CONFIG_AES67_PTP_STATS`, the seeds' format), e.g.
    /// `Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED]`:
    /// the parent's clockIdentity as 16 lowercase hex digits and its
    /// portNumber, offsetFromMaster in µs (0 before the first one) and the
    /// frequency in ppm. `None` without a parent (or one that is not
    /// `clockIdentity:portNumber` with 16 hex digits).
    pub fn slave_line(&self) -> Option<String> {
        let (id, port) = self.parent.rsplit_once(':')?;
        let hex: String = id
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let port: u16 = port.parse().ok()?;
        if hex.len() != 16 {
            return None;
        }
        let tag = if self.locked { "LOCKED" } else { "UNLOCKED" };
        Some(format!(
            "Slave to: PTP/{hex}:{port}, δ {:.1}µs, Freq: {:+.2}ppm [{tag}]",
            self.offset_from_master_s.unwrap_or(0.0) * 1e6,
            self.freq_ppb / 1000.0
        ))
    }
}

/// A receiver's raw figures at one instant: what the CLI and the service
/// collect from the engine, before [`ReceiverStatus::from_figures`] maps
/// them onto the model.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverFigures<'a> {
    /// The receiver's counters.
    pub stats: &'a ReceiverStats,
    /// Sample rate, Hz (frames → ms).
    pub rate: u32,
    /// The link offset asked for, ms.
    pub link_offset_ms: f64,
    /// The part of it held in the playout buffer, ms (the link offset, or
    /// with a real-time output the link offset minus the playout target).
    pub buffer_target_ms: f64,
    /// Output underruns and xruns (`None`: no output, `monitor`).
    pub output: Option<(u64, u64)>,
    /// Frames written by the output (WAV, null; the service also gives a
    /// real-time output's frames played to the device).
    pub output_frames: Option<u64>,
    /// The real-time playout thread's figures (ALSA and sim outputs).
    pub playout: Option<StatsSnapshot>,
    /// Seconds since start (`None`: the final report).
    pub t_s: Option<f64>,
}

/// The media clock state's name as in JSON (`free_run`, `ptp_locked`, …).
fn clock_name(s: &ReceiverStats) -> String {
    serde_json::to_value(s.clock)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl ReceiverStatus {
    /// The model of a receiver's figures: counters (`malformed` counts
    /// malformed packets and wrong payload types), media clock, buffer fill
    /// (s), link offset (s), output underruns/xruns (from the output, else
    /// from the playout thread), steering ratio (real-time output) and
    /// frames written (plain output). Name, destination, output and run
    /// state are the caller's (defaults here).
    pub fn from_figures(f: &ReceiverFigures<'_>) -> ReceiverStatus {
        let s = f.stats;
        let p = &s.playout;
        let (underruns, xruns) = f
            .output
            .or(f.playout.as_ref().map(|p| (p.ring_underruns, p.xruns)))
            .unwrap_or((0, 0));
        ReceiverStatus {
            run: RunState::Running,
            clock: clock_name(s),
            ssrc: s.ssrc,
            packets: p.packets,
            lost: p.lost,
            late: p.late,
            reordered: p.reordered,
            duplicates: p.duplicates,
            malformed: p.malformed + p.wrong_pt,
            foreign: s.foreign_source,
            underruns,
            xruns,
            buffer_s: s.buffer_frames as f64 / f64::from(f.rate.max(1)),
            link_offset_s: f.link_offset_ms / 1e3,
            steering_ratio: f.playout.as_ref().map(|p| 1.0 + p.ratio_ppm * 1e-6),
            output_frames: f.output_frames.unwrap_or(0),
            ..Default::default()
        }
    }
}

impl ReceiverFigures<'_> {
    fn ms(&self, frames: u64) -> f64 {
        frames as f64 * 1000.0 / f64::from(self.rate.max(1))
    }

    /// What the buffer fill is relative to: `link offset 5.0 ms`, or with a
    /// real-time output `target 5.0 ms of link offset 25.0 ms`.
    fn buffer_reference(&self) -> String {
        if (self.buffer_target_ms - self.link_offset_ms).abs() < 1e-9 {
            format!("link offset {:.1} ms", self.link_offset_ms)
        } else {
            format!(
                "target {:.1} ms of link offset {:.1} ms",
                self.buffer_target_ms, self.link_offset_ms
            )
        }
    }

    /// The CLI status line (without the `[   3s]` prefix), from the model
    /// ([`ReceiverStatus::from_figures`]) plus the CLI's extra figures:
    /// `pkts 2986 lost 0 late 0 reord 0 dup 0 bad 0 | SSRC 2ece0f7f | buf 5.9 ms
    /// (link offset 5.0 ms) ring 1.0 ms | underruns 0 xruns 0 | clock free_run`.
    pub fn line(&self) -> String {
        let m = ReceiverStatus::from_figures(self);
        let mut l = format!(
            "pkts {} lost {} late {} reord {} dup {} bad {} | SSRC {:08x} | buf {:.1} ms ({}) ring {:.1} ms",
            m.packets,
            m.lost,
            m.late,
            m.reordered,
            m.duplicates,
            m.malformed,
            m.ssrc,
            m.buffer_s * 1e3,
            self.buffer_reference(),
            self.ms(self.stats.ring_frames),
        );
        if self.output.is_some() {
            l += &format!(" | underruns {} xruns {}", m.underruns, m.xruns);
        }
        l += &format!(" | clock {}", m.clock);
        if let Some(p) = &self.playout {
            l += &format!(
                " | ratio {:+.1} ppm delay {:.1} ms fill {:.1} ms rate resets {}",
                p.ratio_ppm, p.device_delay_ms, p.fill_ms, p.rate_resets
            );
        }
        l
    }

    /// The CLI JSON object (keys in `docs/cli.md`): every [`ReceiverStats`]
    /// field, plus `ssrc` as hex, `buffer_ms`, `link_offset_ms`,
    /// `buffer_target_ms`, `ring_ms`, `underruns`/`xruns` (with an output),
    /// `output_frames` (plain output), the playout figures (real-time
    /// output) and `t_s`, or `"final": true` for the final report.
    pub fn json(&self) -> Map<String, Value> {
        let s = self.stats;
        let m = ReceiverStatus::from_figures(self);
        let mut o = match serde_json::to_value(s) {
            Ok(Value::Object(o)) => o,
            _ => Map::new(),
        };
        match self.t_s {
            Some(t) => o.insert("t_s".into(), json!((t * 10.0).round() / 10.0)),
            None => o.insert("final".into(), json!(true)),
        };
        o.insert("ssrc".into(), json!(format!("{:08x}", m.ssrc)));
        o.insert("buffer_ms".into(), json!(self.ms(s.buffer_frames)));
        o.insert("link_offset_ms".into(), json!(self.link_offset_ms));
        o.insert("buffer_target_ms".into(), json!(self.buffer_target_ms));
        o.insert("ring_ms".into(), json!(self.ms(s.ring_frames)));
        if self.output.is_some() {
            o.insert("underruns".into(), json!(m.underruns));
            o.insert("xruns".into(), json!(m.xruns));
        }
        if let Some(f) = self.output_frames {
            o.insert("output_frames".into(), json!(f));
        }
        if let Some(p) = &self.playout {
            o.insert("ratio_ppm".into(), json!(p.ratio_ppm));
            o.insert("feed_forward_ppm".into(), json!(p.feed_forward_ppm));
            o.insert("device_delay_ms".into(), json!(p.device_delay_ms));
            o.insert("fill_ms".into(), json!(p.fill_ms));
            o.insert("latency_error_ms".into(), json!(p.filtered_error_ms));
            o.insert("resyncs".into(), json!(p.resyncs));
            o.insert("rate_resets".into(), json!(p.rate_resets));
            o.insert("playout".into(), json!(p));
        }
        o
    }
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
            if let Some(c) = &t.capture {
                s += &format!(
                    "       capture: ratio {:+.1} ppm, overruns {}, ring overflows {} underruns {}, resyncs {}\n",
                    c.ratio_ppm, c.overruns, c.ring_overflows, c.ring_underruns, c.resyncs
                );
            }
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
            senders: vec![SenderStatus {
                name: "line-in".into(),
                capture: Some(CaptureStatus {
                    overruns: 2,
                    ratio_ppm: 999.5,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = st.screen();
        assert!(
            s.contains(
                "capture: ratio +999.5 ppm, overruns 2, ring overflows 0 underruns 0, resyncs 0"
            ),
            "{s}"
        );
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

    fn stats() -> ReceiverStats {
        let mut s = ReceiverStats {
            ssrc: 0x2ece0f7f,
            buffer_frames: 283,
            ring_frames: 48,
            ..Default::default()
        };
        s.playout.packets = 2986;
        s
    }

    #[test]
    fn buffer_fill_names_what_it_is_relative_to() {
        let s = stats();
        let mut st = ReceiverFigures {
            stats: &s,
            rate: 48000,
            link_offset_ms: 5.0,
            buffer_target_ms: 5.0,
            output: Some((0, 0)),
            output_frames: None,
            playout: None,
            t_s: Some(3.0),
        };
        let l = st.line();
        assert!(
            l.starts_with("pkts 2986 lost 0 late 0 reord 0 dup 0 bad 0 | SSRC 2ece0f7f | buf 5.9 ms (link offset 5.0 ms) ring 1.0 ms | underruns 0 xruns 0 | clock "),
            "{l}"
        );
        assert!(!l.contains('%'), "{l}");
        st.link_offset_ms = 25.0;
        assert!(
            st.line()
                .contains("buf 5.9 ms (target 5.0 ms of link offset 25.0 ms)"),
            "{}",
            st.line()
        );
        st.output = None;
        assert!(!st.line().contains("underruns"));
        let j = st.json();
        assert_eq!(j["ssrc"], "2ece0f7f");
        assert_eq!(j["link_offset_ms"], 25.0);
        assert_eq!(j["buffer_target_ms"], 5.0);
        assert_eq!(j["t_s"], 3.0);
        assert!(j.get("buffer_pct").is_none() && j.get("underruns").is_none());
        st.t_s = None;
        assert_eq!(st.json()["final"], true);
    }

    /// The CLI line, the CLI JSON and the service model agree on the same
    /// figures: one mapping of counters (bad = malformed + wrong payload type).
    #[test]
    fn cli_forms_and_service_model_agree() {
        let mut s = stats();
        s.playout.lost = 3;
        s.playout.malformed = 2;
        s.playout.wrong_pt = 5;
        s.foreign_source = 4;
        let f = ReceiverFigures {
            stats: &s,
            rate: 48000,
            link_offset_ms: 5.0,
            buffer_target_ms: 5.0,
            output: Some((7, 1)),
            output_frames: Some(960),
            playout: None,
            t_s: Some(1.0),
        };
        let m = ReceiverStatus::from_figures(&f);
        assert_eq!((m.packets, m.lost, m.malformed, m.foreign), (2986, 3, 7, 4));
        assert_eq!((m.underruns, m.xruns, m.output_frames), (7, 1, 960));
        assert!((m.buffer_s - 283.0 / 48000.0).abs() < 1e-12);
        assert!(f.line().contains("lost 3 ") && f.line().contains("bad 7 |"));
        assert!(f.line().contains("underruns 7 xruns 1"), "{}", f.line());
        let j = f.json();
        assert_eq!(
            (j["underruns"].clone(), j["xruns"].clone()),
            (json!(7), json!(1))
        );
        assert!((j["buffer_ms"].as_f64().unwrap() - m.buffer_s * 1e3).abs() < 1e-9);
    }

    #[test]
    fn bass_slave_line_from_the_port_model() {
        let mut p = PtpPortStatus {
            parent: "dca600.fffe.ff2eea:2".into(),
            offset_from_master_s: Some(-270.9e-6),
            freq_ppb: 100_000.0,
            locked: true,
            ..Default::default()
        };
        assert_eq!(
            p.slave_line().as_deref(),
            Some("Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED]")
        );
        p.locked = false;
        assert!(p.slave_line().unwrap().ends_with("[UNLOCKED]"));
        p.parent = String::new();
        assert_eq!(p.slave_line(), None);
        p.parent = "dca600:2".into();
        assert_eq!(p.slave_line(), None);
    }
}
