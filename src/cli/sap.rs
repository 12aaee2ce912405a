//! SAP on the command line: `aes67 list`, the `sap:NAME` source of
//! `aes67 play`, and the `--sap` options of `aes67 send` (docs/discovery.md).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use aes67::engine::sap::{AnnouncementId, SapHandle, SapOptions, SapSnapshot};
use aes67::media::stream::StreamConfig;
use aes67::sap::directory::{self, FindError};
use aes67::sap::{DirectoryConfig, Session};
use aes67::units::{MonoNs, Nanos};

use super::signal;

/// Arguments of `aes67 list`.
#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print one JSON object per refresh on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Listen for --timeout seconds, print once and exit.
    #[arg(long)]
    once: bool,
    /// Interface to listen on (name or IPv4 address). Default: the OS's.
    #[arg(long)]
    iface: Option<String>,
    /// Seconds to listen: with --once, before printing (default 30, the usual
    /// announcement interval); without it, before exiting (default: until Ctrl-C).
    #[arg(long)]
    timeout: Option<f64>,
    #[command(flatten)]
    net: SapNetArgs,
}

/// Where SAP is heard (shared by `list` and `play sap:NAME`).
#[derive(Args)]
pub(crate) struct SapNetArgs {
    /// SAP group (RFC 2974).
    #[arg(long, default_value = "239.255.255.255")]
    sap_group: std::net::Ipv4Addr,
    /// SAP port.
    #[arg(long, default_value_t = aes67::sap::SAP_PORT)]
    sap_port: u16,
    /// Session timeout floor, s: a session is dropped 10 × its observed
    /// announcement interval, or this, whichever is greater, after its last
    /// announcement (RFC 2974 §3.2).
    #[arg(long, default_value_t = 3600.0)]
    min_timeout: f64,
}

impl SapNetArgs {
    fn options(&self, iface: Option<&str>) -> Result<SapOptions, String> {
        if !(0.0..=86_400.0 * 7.0).contains(&self.min_timeout) {
            return Err(format!(
                "invalid session timeout {} s in --min-timeout (allowed 0-604800)",
                self.min_timeout
            ));
        }
        Ok(SapOptions {
            iface: iface.map(str::to_owned),
            group: self.sap_group,
            port: self.sap_port,
            directory: DirectoryConfig {
                min_timeout: Nanos::from_secs_f64(self.min_timeout),
                ..DirectoryConfig::default()
            },
            ..SapOptions::default()
        })
    }
}

/// The SAP options of `aes67 send`.
#[derive(Args)]
pub(crate) struct SendSapArgs {
    /// Announce the stream's SDP by SAP (RFC 2974) on the URL's interface,
    /// and send 3 deletions on a clean stop (Ctrl-C, --duration).
    #[arg(long)]
    sap: bool,
    /// TTL of the SAP announcements.
    #[arg(long, default_value_t = 255)]
    sap_ttl: u32,
    /// Mean SAP announcement interval, s (±1/3 random jitter is added).
    #[arg(long, default_value_t = 30.0)]
    sap_interval: f64,
    #[command(flatten)]
    net: SapNetArgs,
}

impl SendSapArgs {
    /// With `--sap`, starts announcing `sdp` on `iface`; the handle sends
    /// the deletions when stopped.
    pub(crate) fn start(
        &self,
        iface: Option<&str>,
        sdp: &str,
    ) -> Result<Option<(SapHandle, AnnouncementId)>, String> {
        if !self.sap {
            return Ok(None);
        }
        if !(1.0..=3600.0).contains(&self.sap_interval) {
            return Err(format!(
                "invalid SAP interval {} s in --sap-interval (allowed 1-3600)",
                self.sap_interval
            ));
        }
        if self.sap_ttl > 255 {
            return Err(format!(
                "invalid TTL {} in --sap-ttl (allowed 0-255)",
                self.sap_ttl
            ));
        }
        let mut o = self.net.options(iface)?;
        o.listen = false;
        o.ttl = self.sap_ttl;
        o.announcer.interval = Nanos::from_secs_f64(self.sap_interval);
        let h = SapHandle::start(o).map_err(|e| format!("SAP: {e}"))?;
        let id = h.announce(sdp.to_owned());
        eprintln!(
            "aes67 send: announcing by SAP to {}:{} from {} every {} s (±1/3)",
            self.net.sap_group,
            self.net.sap_port,
            h.origin(),
            self.sap_interval
        );
        Ok(Some((h, id)))
    }
}

/// An EUI-64 as SDP writes it (RFC 7273 §4.8): `00-1D-C1-FF-FE-12-34-56`.
fn eui64(b: &[u8; 8]) -> String {
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Seconds since `t` at `now`.
fn age_s(now: MonoNs, t: MonoNs) -> f64 {
    now.since(t).as_secs_f64().max(0.0)
}

/// One session as JSON (keys in docs/cli.md).
fn session_json(s: &Session, now: MonoNs) -> Value {
    let mut v = json!({
        "name": s.name,
        "origin": s.origin.to_string(),
        "hash": s.hash,
        "session_id": s.o.session_id,
        "sdp_version": s.o.version,
        "age_s": (age_s(now, s.last_heard) * 10.0).round() / 10.0,
        "listed_s": (age_s(now, s.first_heard) * 10.0).round() / 10.0,
        "interval_s": s.interval.map(|i| i.as_secs_f64()),
        "changes": s.changes,
        "sdp": s.sdp,
    });
    let m = v.as_object_mut().expect("object");
    match &s.stream {
        Ok(c) => {
            m.insert("group".into(), json!(c.dest.to_string()));
            m.insert("port".into(), json!(c.port));
            m.insert("encoding".into(), json!(c.encoding.name()));
            m.insert("rate".into(), json!(c.sample_rate));
            m.insert("channels".into(), json!(c.channels));
            m.insert("payload_type".into(), json!(c.payload_type));
            m.insert(
                "ptime_ms".into(),
                json!(c.packet_time_us.map(|u| f64::from(u) / 1000.0)),
            );
            m.insert("ts_refclk".into(), json!(c.ts_refclk));
            let gm = c.ptp_grandmaster();
            m.insert("grandmaster".into(), json!(gm.map(|g| eui64(&g.0.0))));
            m.insert("domain".into(), json!(gm.map(|g| g.1)));
            m.insert("mediaclk_offset".into(), json!(c.mediaclk_offset));
        }
        Err(e) => {
            m.insert("error".into(), json!(e.to_string()));
        }
    }
    v
}

fn snapshot_json(snap: &SapSnapshot, now: MonoNs) -> Value {
    json!({
        "sessions": snap.sessions.iter().map(|s| session_json(s, now)).collect::<Vec<_>>(),
        "stats": serde_json::to_value(snap.stats).unwrap_or(Value::Null),
    })
}

fn format_of(c: &StreamConfig) -> String {
    let pt = c
        .packet_time_us
        .map(|u| format!(" {} ms", f64::from(u) / 1000.0))
        .unwrap_or_default();
    format!("{}/{}/{}{pt}", c.encoding.name(), c.sample_rate, c.channels)
}

fn clock_of(c: &StreamConfig) -> String {
    match (c.ptp_grandmaster(), &c.ts_refclk) {
        (Some((gm, d)), _) => format!("{} dom {d}", eui64(&gm.0)),
        (None, Some(r)) => r.clone(),
        (None, None) => "-".into(),
    }
}

fn table(snap: &SapSnapshot, now: MonoNs) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "ORIGIN".into(),
        "GROUP:PORT".into(),
        "FORMAT".into(),
        "CLOCK (grandmaster, domain)".into(),
        "AGE".into(),
    ]];
    for s in &snap.sessions {
        let (gp, fmt, clk) = match &s.stream {
            Ok(c) => (format!("{}:{}", c.dest, c.port), format_of(c), clock_of(c)),
            Err(e) => ("-".into(), format!("unplayable: {e}"), "-".into()),
        };
        rows.push([
            s.name.clone(),
            s.origin.to_string(),
            gp,
            fmt,
            clk,
            format!("{:.0} s", age_s(now, s.last_heard)),
        ]);
    }
    let mut w = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    let st = &snap.stats;
    out += &format!(
        "{} session(s) | packets {} deletions {} expired {} dropped: malformed {} encrypted/compressed {} other type {} full {}\n",
        snap.sessions.len(),
        st.packets,
        st.deletions,
        st.expired,
        st.malformed,
        st.encrypted_or_compressed,
        st.other_payload_type,
        st.full
    );
    out
}

/// `aes67 list`; returns the exit code.
pub(crate) fn list(a: ListArgs) -> i32 {
    match list_inner(a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aes67: error: {e}");
            1
        }
    }
}

fn list_inner(a: ListArgs) -> Result<(), String> {
    if let Some(t) = a.timeout
        && !(0.0..=86_400.0).contains(&t)
    {
        return Err(format!("invalid time {t} s in --timeout (allowed 0-86400)"));
    }
    let h =
        SapHandle::start(a.net.options(a.iface.as_deref())?).map_err(|e| format!("SAP: {e}"))?;
    let start = Instant::now();
    let limit = a.timeout.or(if a.once { Some(30.0) } else { None });
    let tty = std::io::stdout().is_terminal();
    let mut next = Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let el = start.elapsed();
        let done = signal::interrupted() || limit.is_some_and(|l| el.as_secs_f64() >= l);
        if (!a.once && el >= next) || done {
            next += Duration::from_secs(1);
            let snap = h.snapshot();
            let now = MonoNs::now();
            let mut out = std::io::stdout().lock();
            if a.json {
                let mut v = snapshot_json(&snap, now);
                v["t_s"] = json!((el.as_secs_f64() * 10.0).round() / 10.0);
                let _ = writeln!(out, "{v}");
            } else {
                if tty && !a.once {
                    let _ = write!(out, "\x1b[H\x1b[2J");
                }
                let _ = write!(out, "{}", table(&snap, now));
                if !tty && !a.once {
                    let _ = writeln!(out);
                }
            }
            let _ = out.flush();
        }
        if done {
            break;
        }
    }
    h.stop();
    Ok(())
}

/// Watches a session being played and reports its changes on stderr.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a new version of the session being played means for the running
/// receiver: applied when nothing it uses changed, else what would need a
/// restart.
fn version_outcome(
    old: &Result<StreamConfig, aes67::media::stream::ConfigError>,
    new: &Result<StreamConfig, aes67::media::stream::ConfigError>,
    ptp: bool,
) -> String {
    let (Ok(o), Ok(n)) = (old, new) else {
        return "not applied: the new version cannot be played; still playing the old one".into();
    };
    let rx = |c: &StreamConfig| {
        (
            c.dest,
            c.port,
            c.source,
            c.payload_type,
            c.channels,
            c.sample_rate,
            c.encoding,
        )
    };
    if rx(o) != rx(n) {
        return format!(
            "not applied: the stream moved or changed format ({}:{} {} -> {}:{} {}); restart to apply it",
            o.dest,
            o.port,
            format_of(o),
            n.dest,
            n.port,
            format_of(n)
        );
    }
    let clock_changed = (&o.ts_refclk, o.mediaclk_offset) != (&n.ts_refclk, n.mediaclk_offset);
    match (clock_changed, ptp) {
        (false, _) => "applied (nothing this receiver uses changed)".into(),
        (true, false) => format!(
            "applied: clock now {} (the free-running media clock uses neither ts-refclk nor mediaclk)",
            clock_of(n)
        ),
        (true, true) => format!(
            "not applied: clock now {}, but the PTP master filter and mediaclk offset stay as at start; \
             restart to apply it",
            clock_of(n)
        ),
    }
}

/// Resolves `sap:NAME` (exact name or unique prefix): listens on `iface`
/// until the session is heard, at most `timeout_s`. Returns the stream (on
/// `iface`) and a watcher that reports new versions and the session's end.
///
/// Errors: not heard in time (naming the timeout and the sessions heard), an
/// ambiguous prefix, or an SDP that cannot be played.
pub(crate) fn resolve(
    name: &str,
    iface: Option<&str>,
    timeout_s: f64,
    net: &SapNetArgs,
    ptp: bool,
) -> Result<(StreamConfig, Watcher), String> {
    let h = SapHandle::start(net.options(iface)?).map_err(|e| format!("SAP: {e}"))?;
    let start = Instant::now();
    eprintln!(
        "aes67: waiting up to {timeout_s} s (--sap-timeout) for SAP session {name:?} on {}:{}",
        net.sap_group, net.sap_port
    );
    let session = loop {
        let snap = h.snapshot();
        match directory::find(&snap.sessions, name) {
            Ok(s) => break s.clone(),
            Err(e @ FindError::Ambiguous(..)) => return Err(e.to_string()),
            Err(FindError::NotFound(_)) => {}
        }
        if signal::interrupted() {
            return Err("interrupted".into());
        }
        if start.elapsed().as_secs_f64() >= timeout_s {
            let heard: Vec<String> = snap
                .sessions
                .iter()
                .map(|s| format!("{:?}", s.name))
                .collect();
            return Err(format!(
                "no SAP session {name:?} heard within {timeout_s} s (--sap-timeout); heard: [{}]",
                heard.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut cfg = session
        .stream
        .clone()
        .map_err(|e| format!("SAP session {:?} cannot be played: {e}", session.name))?;
    if let Some(i) = iface {
        cfg.iface = Some(i.to_owned());
    }
    eprintln!(
        "aes67: SAP session {:?} from {} (hash {:#06x}, o= version {})",
        session.name, session.origin, session.hash, session.o.version
    );
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let thread = std::thread::Builder::new()
        .name("aes67-sap-watch".into())
        .spawn(move || {
            let mut cur = session;
            let mut present = true;
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let snap = h.snapshot();
                let found = snap.sessions.iter().find(|s| {
                    s.origin == cur.origin && s.o.session_id == cur.o.session_id && s.name == cur.name
                });
                match (found, present) {
                    (Some(s), _) if s.sdp != cur.sdp => {
                        eprintln!(
                            "aes67: SAP session {:?} has a new version (hash {:#06x}, o= version {}): {}",
                            s.name,
                            s.hash,
                            s.o.version,
                            version_outcome(&cur.stream, &s.stream, ptp)
                        );
                        cur = s.clone();
                        present = true;
                    }
                    (Some(_), false) => {
                        eprintln!("aes67: SAP session {:?} is announced again", cur.name);
                        present = true;
                    }
                    (None, true) => {
                        eprintln!(
                            "aes67: SAP session {:?} was deleted or timed out; playing on while packets come",
                            cur.name
                        );
                        present = false;
                    }
                    _ => {}
                }
            }
            h.stop();
        })
        .map_err(|e| format!("spawn: {e}"))?;
    Ok((
        cfg,
        Watcher {
            stop,
            thread: Some(thread),
        },
    ))
}
