//! The service configuration: one TOML file (`/etc/aes67/aes67.toml`),
//! parsed with serde + `toml`, then validated into a [`Config`] whose every
//! value is in range. Every field, its default, unit and range is in
//! `docs/config.md`.
//!
//! Errors name the field by its TOML path, with 0-based array indices:
//! `receivers[2].link_offset_ms: 0 is below the minimum 1`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::output::OutputSpec;
use crate::engine::ptp::Timestamping;
use crate::engine::sender::RtpClock;
use crate::media::stream::StreamConfig;
use crate::rate::resampler::Quality;

/// Default Prometheus port (`[metrics] port`).
pub const DEFAULT_METRICS_PORT: u16 = 9367;
/// Default status socket (`[status] socket`).
pub const DEFAULT_STATUS_SOCKET: &str = "/run/aes67/status.sock";
/// Link offset range, ms (`receivers[].link_offset_ms`).
pub const LINK_OFFSET_MS: (f64, f64) = (1.0, 1000.0);

/// The file as written (every field optional where it has a default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interface: Option<String>,
    #[serde(default)]
    ptp: Vec<RawPtp>,
    #[serde(default)]
    receivers: Vec<RawReceiver>,
    #[serde(default)]
    senders: Vec<RawSender>,
    metrics: Option<RawMetrics>,
    status: Option<RawStatus>,
    supervisor: Option<RawSupervisor>,
    nmos: Option<RawNmos>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPtp {
    interface: Option<String>,
    domain: Option<i64>,
    timestamping: Option<String>,
    transport: Option<String>,
    slave_only: Option<bool>,
    priority1: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Option<String>,
    url: Option<String>,
    sdp: Option<PathBuf>,
    sap: Option<String>,
    interface: Option<String>,
    output: Option<String>,
    link_offset_ms: Option<f64>,
    ptp: Option<bool>,
    playout_target_ms: Option<f64>,
    alsa_period_ms: Option<f64>,
    rt_priority: Option<i64>,
    resampler: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSender {
    name: Option<String>,
    url: Option<String>,
    interface: Option<String>,
    source: Option<String>,
    #[serde(rename = "loop")]
    looped: Option<bool>,
    tone_hz: Option<f64>,
    level_dbfs: Option<f64>,
    packet_time_us: Option<i64>,
    ttl: Option<i64>,
    rtp_clock: Option<String>,
    mediaclk_offset: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    address: Option<String>,
    port: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    enabled: Option<bool>,
    socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNmos {
    enabled: Option<bool>,
    interface: Option<String>,
    port: Option<i64>,
    registration: Option<bool>,
    label: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    backoff_min_ms: Option<i64>,
    backoff_max_s: Option<f64>,
    watchdog_max_unlocked_s: Option<f64>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// One PTP port per interface (`[[ptp]]`).
    pub ptp: Vec<PtpConfig>,
    /// Receivers (`[[receivers]]`), names unique among streams.
    pub receivers: Vec<ReceiverConfig>,
    /// Senders (`[[senders]]`), names unique among streams.
    pub senders: Vec<SenderConfig>,
    /// The Prometheus endpoint (`[metrics]`; `None`: disabled).
    pub metrics: Option<MetricsConfig>,
    /// The status socket path (`[status]`; `None`: disabled).
    pub status_socket: Option<PathBuf>,
    /// Restart back-off and health limits (`[supervisor]`).
    pub supervisor: SupervisorConfig,
    /// The AMWA NMOS node (`[nmos]`; `None`: disabled).
    pub nmos: Option<NmosConfig>,
}

/// Default HTTP port of the NMOS Node and Connection APIs (`[nmos] port`).
pub const DEFAULT_NMOS_PORT: u16 = 3212;

/// The AMWA NMOS node (`[nmos]`, [nmos.md](../../docs/nmos.md)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NmosConfig {
    /// The interface whose IPv4 address serves the APIs (default: the
    /// top-level interface).
    pub interface: String,
    /// HTTP port of the IS-04 Node API and IS-05 Connection API
    /// (default [`DEFAULT_NMOS_PORT`]; 0 = any free port).
    pub port: u16,
    /// Find registries by DNS-SD (`_nmos-register._tcp`) and register
    /// (default true); off: peer-to-peer only.
    pub registration: bool,
    /// Node and device label (default: the host name).
    pub label: Option<String>,
    /// Node and device description.
    pub description: String,
}

/// One PTP ordinary clock port (`[[ptp]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PtpConfig {
    /// Network interface name.
    pub interface: String,
    /// domainNumber, 0-127.
    pub domain: u8,
    /// Timestamping: auto, software or hardware.
    #[serde(skip)]
    pub timestamping: Timestamping,
    /// Transport: udp4 (default) or l2 (IEEE 802.3, Annex E).
    #[serde(skip)]
    pub transport: crate::sys::ptp::Transport,
    /// Never become master.
    pub slave_only: bool,
    /// priority1 (lower wins BMCA), 0-255.
    pub priority1: u8,
}

/// Where a receiver's stream description comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamSource {
    /// An `aes67://` URL.
    Url(String),
    /// An SDP file (read at validation and at every (re)start).
    Sdp(PathBuf),
    /// A SAP session name (RFC 2974; exact name or unique prefix), looked up
    /// in the directory of the service's SAP listener on the stream's
    /// interface at every (re)start; not heard yet → the receiver is in
    /// error and retried with back-off.
    Sap(String),
}

/// One receiver (`[[receivers]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiverConfig {
    /// Unique stream name (the `name` label of its metrics).
    pub name: String,
    /// URL, SDP file or SAP session name.
    pub source: StreamSource,
    /// The stream as resolved at validation (URL/SDP + `interface`; for a
    /// SAP session only the interface, the rest comes from its SDP).
    pub stream: StreamConfig,
    /// Output: `alsa:DEVICE`, `wav:PATH`, `null`, or `sim[:PPM]` (the
    /// software sound device, for tests).
    #[serde(serialize_with = "ser_display")]
    pub output: OutputSpec,
    /// Link offset, ms (1-1000).
    pub link_offset_ms: f64,
    /// ALSA and sim outputs: latency held by the real-time playout thread
    /// (ring + device), ms (2-500, default 20); part of the link offset.
    pub playout_target_ms: f64,
    /// ALSA and sim outputs: device period, ms (1-100, default 5); the
    /// device buffer is 4 periods.
    pub alsa_period_ms: f64,
    /// ALSA and sim outputs: SCHED_FIFO priority of the playout thread
    /// (1-99, default 70; ingest runs 5 below).
    pub rt_priority: u8,
    /// ALSA and sim outputs: the steered resampler's quality (`high`,
    /// `medium`, `fast`, `poly`; default `high`). `poly` is for emulated CPUs.
    pub resampler: Quality,
    /// Media clock from the PTP port on the stream's interface (`true`), or
    /// free-running (`false`).
    pub ptp: bool,
}

/// One sender (`[[senders]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SenderConfig {
    /// Unique stream name.
    pub name: String,
    /// The stream (destination, format, interface, packet time, TTL).
    pub stream: StreamConfig,
    /// The audio source: `tone` (the frequency in `tone_hz`) or
    /// `file:PATH` (WAV, FLAC, MP3, Ogg Vorbis; decoded and resampled to the
    /// stream's format; a relative PATH is relative to the config file) or
    /// `alsa:DEVICE` (ALSA capture steered onto the media clock, 5 ms periods,
    /// 20 ms target; `engine::capture`).
    /// `stdin` is refused: a service has no standard input.
    pub source: String,
    /// `file:` sources: start over at the end (default true); at the end of
    /// a file that does not loop the stream goes on with silence.
    pub looped: bool,
    /// Tone frequency, Hz (1-20000).
    pub tone_hz: f64,
    /// Tone level, dBFS (-120-0).
    pub level_dbfs: f64,
    /// Multicast TTL, 0-255.
    pub ttl: u32,
    /// RTP timestamp time base.
    #[serde(skip)]
    pub rtp_clock: RtpClock,
}

/// The Prometheus endpoint (`[metrics]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsConfig {
    /// Listen address (default 127.0.0.1).
    pub address: IpAddr,
    /// TCP port (default [`DEFAULT_METRICS_PORT`]; 0 = any free port).
    pub port: u16,
}

/// Restart back-off and health limits (`[supervisor]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisorConfig {
    /// First retry delay after a stream fails, ms (10-60000, default 500).
    pub backoff_min_ms: u64,
    /// Longest retry delay, s (doubling from the minimum; 0.1-3600, default 30).
    pub backoff_max_s: f64,
    /// Health: a configured PTP port without a lock for longer than this
    /// (after the first lock) fails the health check, s (1-86400, default 60).
    pub watchdog_max_unlocked_s: f64,
}

fn ser_display<S: serde::Serializer>(v: &OutputSpec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// A config that cannot be used: every problem found, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while validating.
struct V(Vec<String>);

impl V {
    fn err(&mut self, field: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{field}: {msg}"));
    }
    fn range_i(&mut self, field: &str, v: i64, lo: i64, hi: i64) -> i64 {
        if v < lo {
            self.err(field, format!("{v} is below the minimum {lo}"));
            lo
        } else if v > hi {
            self.err(field, format!("{v} is above the maximum {hi}"));
            hi
        } else {
            v
        }
    }
    fn range_f(&mut self, field: &str, v: f64, lo: f64, hi: f64) -> f64 {
        if !v.is_finite() {
            self.err(field, format!("{v} is not a number"));
            lo
        } else if v < lo {
            self.err(field, format!("{v} is below the minimum {lo}"));
            lo
        } else if v > hi {
            self.err(field, format!("{v} is above the maximum {hi}"));
            hi
        } else {
            v
        }
    }
}

impl Config {
    /// Reads and validates `path`. Errors: the file cannot be read, is not
    /// TOML of this shape (unknown keys included), or has values out of
    /// range; each line names the file or the field.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        Config::parse(&text, path.parent())
    }

    /// Parses and validates TOML text; relative SDP paths are taken from
    /// `base` (the config file's folder).
    pub fn parse(text: &str, base: Option<&Path>) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigErrors(vec![e.to_string().trim_end().replace('\n', "\n  ")]))?;
        let mut v = V(Vec::new());
        let cfg = validate(raw, base, &mut v);
        if v.0.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(v.0))
        }
    }

    /// The PTP port for `iface`, if one is configured.
    pub fn ptp_for(&self, iface: &str) -> Option<&PtpConfig> {
        self.ptp.iter().find(|p| p.interface == iface)
    }
}

fn validate(raw: RawConfig, base: Option<&Path>, v: &mut V) -> Config {
    let default_iface = raw.interface.clone();
    if let Some(i) = &default_iface
        && i.is_empty()
    {
        v.err("interface", "empty");
    }
    let mut ptp = Vec::new();
    for (i, p) in raw.ptp.into_iter().enumerate() {
        let f = |k: &str| format!("ptp[{i}].{k}");
        let interface = match p.interface.or_else(|| default_iface.clone()) {
            Some(s) if !s.is_empty() => s,
            _ => {
                v.err(&f("interface"), "missing (and no top-level interface)");
                String::new()
            }
        };
        if ptp.iter().any(|q: &PtpConfig| q.interface == interface) {
            v.err(
                &f("interface"),
                format!("{interface:?} has a PTP port already (one per interface)"),
            );
        }
        let timestamping = match p.timestamping.as_deref().unwrap_or("auto").parse() {
            Ok(t) => t,
            Err(e) => {
                v.err(&f("timestamping"), e);
                Timestamping::Auto
            }
        };
        let transport = match p.transport.as_deref().unwrap_or("udp4").parse() {
            Ok(t) => t,
            Err(e) => {
                v.err(&f("transport"), e);
                crate::sys::ptp::Transport::Udp4
            }
        };
        ptp.push(PtpConfig {
            interface,
            domain: v.range_i(&f("domain"), p.domain.unwrap_or(0), 0, 127) as u8,
            timestamping,
            transport,
            slave_only: p.slave_only.unwrap_or(true),
            priority1: v.range_i(&f("priority1"), p.priority1.unwrap_or(128), 0, 255) as u8,
        });
    }
    let mut names: Vec<String> = Vec::new();
    let mut unique = |v: &mut V, field: &str, name: &Option<String>| -> String {
        match name {
            None => {
                v.err(field, "missing");
                String::new()
            }
            Some(n) if n.is_empty() || n.len() > 64 => {
                v.err(field, format!("{n:?} must be 1-64 characters"));
                n.clone()
            }
            Some(n)
                if !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
            {
                v.err(
                    field,
                    format!("{n:?} may hold only letters, digits, '-', '_' and '.'"),
                );
                n.clone()
            }
            Some(n) if names.contains(n) => {
                v.err(
                    field,
                    format!("{n:?} is the name of another stream already"),
                );
                n.clone()
            }
            Some(n) => {
                names.push(n.clone());
                n.clone()
            }
        }
    };
    let mut receivers = Vec::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        let f = |k: &str| format!("receivers[{i}].{k}");
        let name = unique(v, &f("name"), &r.name);
        let (source, stream) = match (&r.url, &r.sdp, &r.sap) {
            (None, None, Some(n)) => {
                if n.trim().is_empty() {
                    v.err(&f("sap"), "empty (give the SAP session name)");
                } else if n.len() > 255 {
                    v.err(
                        &f("sap"),
                        format!("{} bytes is above the maximum 255", n.len()),
                    );
                }
                (StreamSource::Sap(n.clone()), None)
            }
            (_, _, Some(_)) => {
                v.err(&f("sap"), "give one of url, sdp or sap");
                (StreamSource::Url(String::new()), None)
            }
            (Some(u), None, None) => (
                StreamSource::Url(u.clone()),
                StreamConfig::from_url(u)
                    .map_err(|e| v.err(&f("url"), e))
                    .ok(),
            ),
            (None, Some(p), None) => {
                let p = match base {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p.clone(),
                };
                let s = match std::fs::read_to_string(&p) {
                    Ok(t) => StreamConfig::from_sdp(&t)
                        .map_err(|e| v.err(&f("sdp"), format!("{}: {e}", p.display())))
                        .ok(),
                    Err(e) => {
                        v.err(&f("sdp"), format!("{}: {e}", p.display()));
                        None
                    }
                };
                (StreamSource::Sdp(p), s)
            }
            (Some(_), Some(_), _) => {
                v.err(&f("url"), "give one of url, sdp or sap");
                (StreamSource::Url(String::new()), None)
            }
            (None, None, None) => {
                v.err(&f("url"), "missing (give url, sdp or sap)");
                (StreamSource::Url(String::new()), None)
            }
        };
        let mut stream = stream
            .unwrap_or_else(|| StreamConfig::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0));
        inherit_interface(&mut stream, r.interface.clone(), &default_iface);
        let output = match r.output.as_deref().unwrap_or("null").parse::<OutputSpec>() {
            Ok(o) => o,
            Err(_) => {
                v.err(
                    &f("output"),
                    format!(
                        "{:?} is not alsa:DEVICE, wav:PATH, null or sim[:PPM]",
                        r.output.as_deref().unwrap_or_default()
                    ),
                );
                OutputSpec::Null
            }
        };
        let link_offset_ms = v.range_f(
            &f("link_offset_ms"),
            r.link_offset_ms.unwrap_or(5.0),
            LINK_OFFSET_MS.0,
            LINK_OFFSET_MS.1,
        );
        let playout_target_ms = v.range_f(
            &f("playout_target_ms"),
            r.playout_target_ms.unwrap_or(20.0),
            2.0,
            500.0,
        );
        let alsa_period_ms = v.range_f(
            &f("alsa_period_ms"),
            r.alsa_period_ms.unwrap_or(5.0),
            1.0,
            100.0,
        );
        let rt_priority = v.range_i(&f("rt_priority"), r.rt_priority.unwrap_or(70), 1, 99) as u8;
        let resampler = match r.resampler.as_deref().unwrap_or("high").parse::<Quality>() {
            Ok(q) => q,
            Err(e) => {
                v.err(&f("resampler"), e);
                Quality::High
            }
        };
        let rt_output = matches!(output, OutputSpec::Alsa(_) | OutputSpec::Sim { .. });
        if rt_output && link_offset_ms < playout_target_ms + 1.0 && r.link_offset_ms.is_some() {
            v.err(
                &f("link_offset_ms"),
                format!(
                    "{link_offset_ms} is below the playout target {playout_target_ms} ms + 1 ms of the {} output",
                    output
                ),
            );
        }
        // ALSA default: the playout target + 5 ms.
        let link_offset_ms = if rt_output && r.link_offset_ms.is_none() {
            playout_target_ms + 5.0
        } else {
            link_offset_ms
        };
        let want_ptp = r.ptp.unwrap_or(true);
        let has_port = stream
            .iface
            .as_ref()
            .is_some_and(|i| ptp.iter().any(|p| &p.interface == i));
        if r.ptp == Some(true) && !has_port {
            v.err(
                &f("ptp"),
                format!(
                    "true, but no [[ptp]] port on the stream's interface {:?}",
                    stream.iface.as_deref().unwrap_or("(none)")
                ),
            );
        }
        receivers.push(ReceiverConfig {
            name,
            source,
            stream,
            output,
            link_offset_ms,
            playout_target_ms,
            alsa_period_ms,
            rt_priority,
            resampler,
            ptp: want_ptp && has_port,
        });
    }
    let mut senders = Vec::new();
    for (i, s) in raw.senders.into_iter().enumerate() {
        let f = |k: &str| format!("senders[{i}].{k}");
        let name = unique(v, &f("name"), &s.name);
        let mut stream = match &s.url {
            Some(u) => StreamConfig::from_url(u)
                .map_err(|e| v.err(&f("url"), e))
                .ok(),
            None => {
                v.err(&f("url"), "missing");
                None
            }
        }
        .unwrap_or_else(|| StreamConfig::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0));
        inherit_interface(&mut stream, s.interface.clone(), &default_iface);
        let mut tone_hz = s.tone_hz.unwrap_or(1000.0);
        let source = match s
            .source
            .as_deref()
            .unwrap_or("tone")
            .parse::<crate::engine::source::SourceSpec>()
        {
            Ok(crate::engine::source::SourceSpec::Tone(hz)) => {
                if s.source.as_deref().is_some_and(|t| t.contains(':')) {
                    if s.tone_hz.is_some() {
                        v.err(&f("source"), "tone:HZ and tone_hz both set; give one");
                    }
                    tone_hz = hz;
                }
                "tone".to_string()
            }
            Ok(crate::engine::source::SourceSpec::File(p)) => {
                let p = match base {
                    Some(b) if p.is_relative() => b.join(&p),
                    _ => p,
                };
                if !p.is_file() {
                    v.err(
                        &f("source"),
                        format!("file:{}: not a readable file", p.display()),
                    );
                }
                format!("file:{}", p.display())
            }
            Ok(crate::engine::source::SourceSpec::Alsa(d)) => format!("alsa:{d}"),
            Ok(crate::engine::source::SourceSpec::Stdin) => {
                v.err(
                    &f("source"),
                    "stdin is not available to a service (it has no standard input); use tone or file:PATH",
                );
                "tone".to_string()
            }
            Err(e) => {
                let m = match e {
                    crate::engine::source::SourceError::Spec(m) => m,
                    e => e.to_string(),
                };
                v.err(&f("source"), m);
                "tone".to_string()
            }
        };
        stream.packet_time_us = Some(v.range_i(
            &f("packet_time_us"),
            s.packet_time_us.unwrap_or(1000),
            125,
            5000,
        ) as u32);
        stream.mediaclk_offset = Some(v.range_i(
            &f("mediaclk_offset"),
            s.mediaclk_offset.unwrap_or(0),
            0,
            u32::MAX as i64,
        ) as u32);
        let ttl = v.range_i(&f("ttl"), s.ttl.unwrap_or(1), 0, 255) as u32;
        stream.ttl = Some(ttl as u8);
        let rtp_clock = match s.rtp_clock.as_deref().unwrap_or("arbitrary").parse() {
            Ok(c) => c,
            Err(e) => {
                v.err(&f("rtp_clock"), e);
                RtpClock::Arbitrary
            }
        };
        senders.push(SenderConfig {
            name,
            stream,
            source,
            looped: s.looped.unwrap_or(true),
            tone_hz: v.range_f(&f("tone_hz"), tone_hz, 1.0, 20000.0),
            level_dbfs: v.range_f(&f("level_dbfs"), s.level_dbfs.unwrap_or(-12.0), -120.0, 0.0),
            ttl,
            rtp_clock,
        });
    }
    let metrics = match raw.metrics.unwrap_or_default() {
        m if m.enabled == Some(false) => None,
        m => Some(MetricsConfig {
            address: match m.address.as_deref().unwrap_or("127.0.0.1").parse() {
                Ok(a) => a,
                Err(_) => {
                    v.err(
                        "metrics.address",
                        format!("{:?} is not an IP address", m.address.unwrap_or_default()),
                    );
                    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                }
            },
            port: v.range_i(
                "metrics.port",
                m.port.unwrap_or(DEFAULT_METRICS_PORT as i64),
                0,
                65535,
            ) as u16,
        }),
    };
    let status_socket = match raw.status.unwrap_or_default() {
        s if s.enabled == Some(false) => None,
        s => {
            let p = s
                .socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATUS_SOCKET));
            if p.as_os_str().is_empty() {
                v.err("status.socket", "empty");
            }
            Some(p)
        }
    };
    let sv = raw.supervisor.unwrap_or_default();
    let supervisor = SupervisorConfig {
        backoff_min_ms: v.range_i(
            "supervisor.backoff_min_ms",
            sv.backoff_min_ms.unwrap_or(500),
            10,
            60_000,
        ) as u64,
        backoff_max_s: v.range_f(
            "supervisor.backoff_max_s",
            sv.backoff_max_s.unwrap_or(30.0),
            0.1,
            3600.0,
        ),
        watchdog_max_unlocked_s: v.range_f(
            "supervisor.watchdog_max_unlocked_s",
            sv.watchdog_max_unlocked_s.unwrap_or(60.0),
            1.0,
            86400.0,
        ),
    };
    let nmos = match raw.nmos {
        None => None,
        Some(n) if n.enabled == Some(false) => None,
        Some(n) => {
            let interface = match n.interface.or_else(|| default_iface.clone()) {
                Some(i) if !i.is_empty() => i,
                _ => {
                    v.err("nmos.interface", "missing (and no top-level interface)");
                    String::new()
                }
            };
            if let Some(l) = &n.label
                && (l.is_empty() || l.len() > 128)
            {
                v.err("nmos.label", format!("{l:?} must be 1-128 characters"));
            }
            Some(NmosConfig {
                interface,
                port: v.range_i(
                    "nmos.port",
                    n.port.unwrap_or(DEFAULT_NMOS_PORT as i64),
                    0,
                    65535,
                ) as u16,
                registration: n.registration.unwrap_or(true),
                label: n.label,
                description: n.description.unwrap_or_default(),
            })
        }
    };
    Config {
        ptp,
        receivers,
        senders,
        metrics,
        status_socket,
        supervisor,
        nmos,
    }
}

/// The interface of a stream: its own `interface` field, else the one its URL
/// or SDP gave, else the config's top-level `interface`.
fn inherit_interface(stream: &mut StreamConfig, own: Option<String>, default: &Option<String>) {
    if let Some(i) = own.or_else(|| stream.iface.is_none().then(|| default.clone()).flatten()) {
        stream.iface = Some(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(t: &str) -> Vec<String> {
        Config::parse(t, None).unwrap_err().0
    }

    #[test]
    fn empty_config_is_valid_with_defaults() {
        let c = Config::parse("", None).unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(m.address.to_string(), "127.0.0.1");
        assert_eq!(m.port, DEFAULT_METRICS_PORT);
        assert_eq!(
            c.status_socket.unwrap(),
            PathBuf::from(DEFAULT_STATUS_SOCKET)
        );
        assert_eq!(c.supervisor.backoff_min_ms, 500);
        assert_eq!(c.nmos, None);
    }

    #[test]
    fn nmos_section_defaults_and_errors() {
        let c = Config::parse("interface = \"eth0\"\n[nmos]\n", None).unwrap();
        let n = c.nmos.unwrap();
        assert_eq!(
            (n.interface.as_str(), n.port, n.registration),
            ("eth0", DEFAULT_NMOS_PORT, true)
        );
        assert_eq!(
            errs("[nmos]\nport = 70000\n"),
            [
                "nmos.interface: missing (and no top-level interface)",
                "nmos.port: 70000 is above the maximum 65535"
            ]
        );
        let c = Config::parse("[nmos]\nenabled = false\n", None).unwrap();
        assert_eq!(c.nmos, None);
    }

    #[test]
    fn resampler_defaults_to_high_and_a_bad_name_names_the_field() {
        let c = Config::parse(
            "[[receivers]]\nname = \"a\"\nurl = \"aes67://239.1.1.1:5004\"\nresampler = \"poly\"\n\
             [[receivers]]\nname = \"b\"\nurl = \"aes67://239.1.1.2:5004\"\n",
            None,
        )
        .unwrap();
        assert_eq!(
            (c.receivers[0].resampler, c.receivers[1].resampler),
            (Quality::Poly, Quality::High)
        );
        let e = errs(
            "[[receivers]]\nname = \"a\"\nurl = \"aes67://239.1.1.1:5004\"\nresampler = \"best\"\n",
        );
        assert_eq!(
            e,
            [
                "receivers[0].resampler: resampler \"best\": expected one of high, medium, fast, poly"
            ]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let t = r#"
interface = "eth9"
[[ptp]]
domain = 200
[[receivers]]
name = "a"
url = "aes67://239.1.1.1:5004"
[[receivers]]
name = "b"
url = "aes67://239.1.1.2:5004"
[[receivers]]
name = "a"
url = "aes67://239.1.1.3:5004"
link_offset_ms = 0
output = "tape:x"
[[senders]]
name = "s"
url = "aes67://239.1.1.9:5004?ch=0"
ttl = 300
[metrics]
address = "localhost"
"#;
        let e = errs(t);
        let want = [
            "ptp[0].domain: 200 is above the maximum 127",
            "receivers[2].name: \"a\" is the name of another stream already",
            "receivers[2].output: \"tape:x\" is not alsa:DEVICE, wav:PATH, null or sim[:PPM]",
            "receivers[2].link_offset_ms: 0 is below the minimum 1",
            "senders[0].ttl: 300 is above the maximum 255",
            "metrics.address: \"localhost\" is not an IP address",
        ];
        for w in want {
            assert!(e.iter().any(|x| x == w), "missing {w:?} in {e:#?}");
        }
        assert!(
            e.iter().any(|x| x.starts_with("senders[0].url: ")),
            "{e:#?}"
        );
        assert_eq!(e.len(), want.len() + 1, "{e:#?}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_rejected_with_their_name() {
        let e = errs(
            "[[receivers]]\nname = \"a\"\nurl = \"aes67://239.1.1.1:5004\"\nlink_ofset_ms = 3\n",
        );
        assert!(e[0].contains("link_ofset_ms"), "{e:?}");
        let e = errs("[metrics]\nport = \"x\"\n");
        assert!(e[0].contains("port"), "{e:?}");
    }

    #[test]
    fn interface_is_inherited_and_ptp_bound_by_interface() {
        let c = Config::parse(
            r#"
interface = "veth0"
[[ptp]]
[[receivers]]
name = "a"
url = "aes67://239.1.1.1:5004"
[[receivers]]
name = "b"
url = "aes67://239.1.1.2:5004?iface=other"
[[senders]]
name = "s"
url = "aes67://239.1.1.9:5004"
"#,
            None,
        )
        .unwrap();
        assert_eq!(c.ptp[0].interface, "veth0");
        assert_eq!(c.receivers[0].stream.iface.as_deref(), Some("veth0"));
        assert!(c.receivers[0].ptp);
        assert_eq!(c.receivers[1].stream.iface.as_deref(), Some("other"));
        assert!(!c.receivers[1].ptp, "no PTP port on 'other'");
        assert_eq!(c.senders[0].stream.iface.as_deref(), Some("veth0"));
        let e = errs(
            "[[ptp]]\ninterface = \"a\"\n[[receivers]]\nname = \"x\"\nurl = \"aes67://239.1.1.1:5004?iface=b\"\nptp = true\n",
        );
        assert_eq!(
            e,
            ["receivers[0].ptp: true, but no [[ptp]] port on the stream's interface \"b\""]
        );
    }

    #[test]
    fn real_time_outputs_need_a_link_offset_above_the_playout_target() {
        let r = "[[receivers]]\nname = \"x\"\nurl = \"aes67://239.1.1.1:5004\"\n";
        let e = errs(&format!("{r}output = \"alsa:hw:0\"\nlink_offset_ms = 10\n"));
        assert_eq!(
            e,
            [
                "receivers[0].link_offset_ms: 10 is below the playout target 20 ms + 1 ms of the alsa:hw:0 output"
            ]
        );
        let c = Config::parse(&format!("{r}output = \"alsa\"\n"), None).unwrap();
        assert_eq!(
            c.receivers[0].link_offset_ms, 25.0,
            "default: the target + 5 ms"
        );
        let c = Config::parse(&format!("{r}output = \"null\"\n"), None).unwrap();
        assert_eq!(c.receivers[0].link_offset_ms, 5.0);
    }
}
