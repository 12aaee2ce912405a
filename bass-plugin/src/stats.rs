//! Statistics the config options report: the clock status with its one-line
//! summary (`BASS_CONFIG_AES67_PTP_STATS`), and (re-exported) the per-stream
//! counters of [`crate::counters`] and the registry queries of [`crate::state`].

pub use crate::counters::{SharedStats, StatsSource, StreamStats};
use crate::state::{CLOCK_SYSTEM, clock_settings};
pub use crate::state::{latest_stream_stats, open_count};

/// PTP port state as the seeds report it (`BASS_CONFIG_AES67_PTP_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PtpState {
    /// No PTP slave runs.
    Disabled = 0,
    /// Waiting for an Announce (IEEE 1588-2019 §9.2.5 LISTENING).
    Listening = 1,
    /// Master chosen, servo not locked yet (UNCALIBRATED).
    Uncalibrated = 2,
    /// Locked to the master (SLAVE).
    Slave = 3,
}

/// A snapshot of the media clock's discipline.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockStatus {
    /// Port state.
    pub state: PtpState,
    /// Servo locked.
    pub locked: bool,
    /// offsetFromMaster, ns.
    pub offset_ns: i64,
    /// Frequency correction, ppb (= ppm × 1000, the unit of `PTP_FREQ`).
    pub freq_ppb: f64,
    /// The master's clockIdentity (8 bytes) and port number, when known.
    pub master: Option<([u8; 8], u16)>,
    /// Clock mode in force (config `CLOCK_MODE`).
    pub mode: u32,
    /// The PTP loop's error, when it ended by itself.
    pub failed: Option<String>,
    /// Interface of the PTP slave, when one is configured.
    pub iface: Option<String>,
    /// Which receive timestamps the slave uses (e.g. `"QPC after wait (user
    /// space)"` on Windows without `SO_TIMESTAMP`), once it reported.
    pub timestamps: Option<&'static str>,
    /// Which transmit timestamps it uses (e.g. `"QPC before send (user
    /// space)"` on Windows without `SIO_GET_TX_TIMESTAMP`), once it reported.
    pub tx_timestamps: Option<&'static str>,
}

/// The current clock status, from the add-on's PTP slave (`ptpslave`;
/// Linux with the engine) or [`PtpState::Disabled`] when none runs.
///
/// Port state mapping: LISTENING (and no status yet) → 1, UNCALIBRATED → 2,
/// SLAVE → 3; MASTER/PASSIVE/FAULTY cannot occur on a slave-only port and
/// map to 1.
pub fn clock_status() -> ClockStatus {
    let s = clock_settings();
    #[cfg_attr(not(engine), allow(unused_mut))]
    let mut c = ClockStatus {
        state: PtpState::Disabled,
        locked: false,
        offset_ns: 0,
        freq_ppb: 0.0,
        master: None,
        mode: s.mode,
        failed: None,
        iface: None,
        timestamps: None,
        tx_timestamps: None,
    };
    #[cfg(engine)]
    {
        let p = crate::ptpslave::status();
        c.iface = p.iface.clone();
        c.failed = p.failed.clone();
        c.timestamps = p.timestamps;
        c.tx_timestamps = p.tx_timestamps;
        if p.iface.is_some() && p.failed.is_none() {
            c.state = match p.port_state.as_deref() {
                Some("SLAVE") => PtpState::Slave,
                Some("UNCALIBRATED") => PtpState::Uncalibrated,
                _ => PtpState::Listening,
            };
            c.locked = p.locked;
            c.offset_ns = p.offset_ns.unwrap_or(0);
            c.freq_ppb = p.freq_ppb;
            c.master = p.parent.as_deref().and_then(parse_port_identity);
        }
    }
    c
}

/// Parses `clockIdentity:portNumber` (16 hex digits, decimal port).
pub fn parse_port_identity(s: &str) -> Option<([u8; 8], u16)> {
    let (id, port) = s.rsplit_once(':')?;
    let id: String = id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if id.len() != 16 {
        return None;
    }
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((out, port.parse().ok()?))
}

/// The status line of `BASS_CONFIG_AES67_PTP_STATS`, in the seeds' format when
/// a master is known (formatted by the engine's one status model,
/// `aes67::status::PtpPortStatus::slave_line`), e.g.
/// `Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED]`.
/// Otherwise one of: `Clock: System (free-running)` (CLOCK_MODE 2),
/// `PTP: disabled, clock: System (free-running)`, `PTP: no INTERFACE set
/// (domain N), clock: System (free-running)`, `PTP: listening on IFACE
/// (domain N), no master yet`, `PTP: failed on IFACE: REASON, clock: System
/// (free-running)`, or (builds without the engine) `PTP: not available in this
/// build (domain N), clock: System (free-running)`. Once the slave reported
/// its receive-timestamp path, `, stamps: PATH` follows (e.g. `, stamps:
/// QPC after wait (user space)` on Windows without `SO_TIMESTAMP`), then its
/// transmit-timestamp path, `, tx: PATH` (e.g. `, tx: QPC before send (user
/// space)` on Windows without `SIO_GET_TX_TIMESTAMP`).
pub fn stats_line(c: &ClockStatus) -> String {
    let mut line = stats_head(c);
    if let Some(t) = c.timestamps {
        line += ", stamps: ";
        line += t;
    }
    if let Some(t) = c.tx_timestamps {
        line += ", tx: ";
        line += t;
    }
    line
}

fn stats_head(c: &ClockStatus) -> String {
    let settings = clock_settings();
    match c.master {
        Some((id, port)) => master_line(c, &id, port),
        None if c.mode == CLOCK_SYSTEM => "Clock: System (free-running)".to_string(),
        None if !settings.ptp_enabled => "PTP: disabled, clock: System (free-running)".to_string(),
        None if !cfg!(engine) => format!(
            "PTP: not available in this build (domain {}), clock: System (free-running)",
            settings.domain
        ),
        None => match (&c.iface, &c.failed) {
            (None, _) => format!(
                "PTP: no INTERFACE set (domain {}), clock: System (free-running)",
                settings.domain
            ),
            (Some(i), Some(e)) => {
                format!("PTP: failed on {i}: {e}, clock: System (free-running)")
            }
            (Some(i), None) => format!(
                "PTP: listening on {i} (domain {}), no master yet",
                settings.domain
            ),
        },
    }
}

/// The line while a master is known: the slave's figures as the engine's
/// status model ([`aes67::status::PtpPortStatus`]) and its BASS form.
#[cfg(engine)]
fn master_line(c: &ClockStatus, id: &[u8; 8], port: u16) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let p = aes67::status::PtpPortStatus {
        parent: format!("{hex}:{port}"),
        offset_from_master_s: Some(c.offset_ns as f64 * 1e-9),
        freq_ppb: c.freq_ppb,
        locked: c.locked,
        ..Default::default()
    };
    p.slave_line().unwrap_or_default()
}

/// Without the engine no PTP slave runs, so no master is ever known.
#[cfg(not(engine))]
fn master_line(_c: &ClockStatus, _id: &[u8; 8], _port: u16) -> String {
    "PTP: not available in this build, clock: System (free-running)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line_matches_the_seeds_format() {
        let c = ClockStatus {
            state: PtpState::Slave,
            locked: true,
            offset_ns: -270_900,
            freq_ppb: 100_000.0,
            master: Some(([0xdc, 0xa6, 0x00, 0xff, 0xfe, 0xff, 0x2e, 0xea], 2)),
            mode: 0,
            failed: None,
            iface: Some("eth0".into()),
            timestamps: None,
            tx_timestamps: None,
        };
        assert_eq!(
            parse_port_identity("dca600fffeff2eea:2"),
            Some(([0xdc, 0xa6, 0x00, 0xff, 0xfe, 0xff, 0x2e, 0xea], 2))
        );
        assert_eq!(parse_port_identity("dca600:2"), None);
        assert_eq!(
            stats_line(&c),
            "Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED]"
        );
        let w = ClockStatus {
            timestamps: Some("QPC after wait (user space)"),
            tx_timestamps: Some("QPC before send (user space)"),
            ..c.clone()
        };
        assert_eq!(
            stats_line(&w),
            "Slave to: PTP/dca600fffeff2eea:2, δ -270.9µs, Freq: +100.00ppm [LOCKED], stamps: QPC after wait (user space), tx: QPC before send (user space)"
        );
        let k = ClockStatus {
            timestamps: Some("SO_TIMESTAMP (kernel QPC)"),
            tx_timestamps: Some("SIO_GET_TX_TIMESTAMP (kernel QPC)"),
            ..c
        };
        assert!(stats_line(&k).ends_with(
            "[LOCKED], stamps: SO_TIMESTAMP (kernel QPC), tx: SIO_GET_TX_TIMESTAMP (kernel QPC)"
        ));
    }
}
