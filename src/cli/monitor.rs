//! `aes67 monitor`: receive several AES67 streams on **one** ingest thread
//! ([`Receiver::start_group`]) and print each stream's counters once per
//! second; the audio is received, placed and released in time, then
//! discarded. For monitoring feeds and for checking how many streams a box
//! takes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use aes67::engine::receiver::{Receiver, ReceiverOptions, ReceiverStats};
use aes67::media::stream::StreamConfig;
use aes67::units::Nanos;

use aes67::status::ReceiverFigures as ReceiverStatus;

/// Arguments of `aes67 monitor`.
#[derive(Args, Debug)]
pub(crate) struct MonitorArgs {
    /// Stream URLs, one per stream:
    /// aes67://GROUP:PORT?iface=IP|NAME&pt=N&ch=N&rate=HZ&enc=L24|L16&source=IP
    pub(crate) urls: Vec<String>,
    /// SDP files (RFC 4566), one more stream each.
    #[arg(long)]
    pub(crate) sdp: Vec<PathBuf>,
    /// Interface to join on (name or IPv4), overriding every URL/SDP.
    #[arg(long)]
    pub(crate) iface: Option<String>,
    /// Link offset, ms (AES67-2018 §6.6): frames are released this long
    /// after their media-clock time; a packet arriving later is late.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) link_offset_ms: f64,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duration: f64,
    /// Print one JSON object per stream per second on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Ingest backend: auto (io_uring when available), uring or recvmmsg.
    #[arg(long, default_value = "auto")]
    pub(crate) ingest: aes67::sys::IngestKind,
}

/// Parses the streams of `a`; errors name the URL or file at fault.
fn configs(a: &MonitorArgs) -> Result<Vec<StreamConfig>, String> {
    let mut v = Vec::new();
    for u in &a.urls {
        v.push(StreamConfig::from_url(u).map_err(|e| format!("{u}: {e}"))?);
    }
    for p in &a.sdp {
        let text = std::fs::read_to_string(p).map_err(|e| format!("--sdp {}: {e}", p.display()))?;
        v.push(StreamConfig::from_sdp(&text).map_err(|e| format!("--sdp {}: {e}", p.display()))?);
    }
    if v.is_empty() {
        return Err("give one or more stream URLs or --sdp FILE".into());
    }
    if let Some(i) = &a.iface {
        for c in v.iter_mut() {
            c.iface = Some(i.clone());
        }
    }
    Ok(v)
}

/// Stream `i`'s status (`t`: seconds since start, `None`: final).
fn status<'a>(
    a: &MonitorArgs,
    c: &StreamConfig,
    s: &'a ReceiverStats,
    t: Option<f64>,
) -> ReceiverStatus<'a> {
    ReceiverStatus {
        stats: s,
        rate: c.sample_rate,
        link_offset_ms: a.link_offset_ms,
        buffer_target_ms: a.link_offset_ms,
        output: None,
        output_frames: None,
        playout: None,
        t_s: t,
    }
}

/// The `--json` object: the `play` keys plus `stream` (index) and `dest`.
fn json_line(i: usize, c: &StreamConfig, st: &ReceiverStatus<'_>) -> String {
    let mut o = st.json();
    o.insert("stream".into(), serde_json::json!(i));
    o.insert(
        "dest".into(),
        serde_json::json!(format!("{}:{}", c.dest, c.port)),
    );
    serde_json::Value::Object(o).to_string()
}

/// The text line: `#i GROUP:PORT ` and the `play` status line.
fn text_line(i: usize, c: &StreamConfig, st: &ReceiverStatus<'_>) -> String {
    format!("#{i} {}:{} {}", c.dest, c.port, st.line())
}

/// Runs `aes67 monitor`; returns the process exit code (0, or 1 with the
/// error on stderr).
pub(crate) fn run(a: MonitorArgs) -> i32 {
    match run_inner(a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aes67: error: {e}");
            1
        }
    }
}

fn run_inner(a: MonitorArgs) -> Result<(), String> {
    if !(0.0..=1000.0).contains(&a.link_offset_ms) {
        return Err(format!(
            "invalid link offset {} ms in --link-offset-ms (allowed 0-1000)",
            a.link_offset_ms
        ));
    }
    let cfgs = configs(&a)?;
    let streams: Vec<_> = cfgs
        .iter()
        .map(|c| {
            let o = ReceiverOptions {
                link_offset: Nanos::from_ns((a.link_offset_ms * 1e6) as i64),
                ingest: a.ingest,
                ..Default::default()
            };
            (c.clone(), o)
        })
        .collect();
    let group = Receiver::start_group(streams).map_err(|e| e.to_string())?;
    if let Some(why) = group.first().and_then(|(r, _)| r.fallback_reason()) {
        eprintln!("aes67: io_uring unavailable ({why}); using recvmmsg");
    }
    eprintln!(
        "aes67: monitoring {} stream(s) on one ingest thread via {} (link offset {} ms)",
        group.len(),
        group.first().map(|(r, _)| r.backend()).unwrap_or("none"),
        a.link_offset_ms
    );
    let (rxs, mut cons): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    let start = Instant::now();
    let mut next = Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        for c in cons.iter_mut() {
            let n = c.slots();
            if let Ok(ch) = c.read_chunk(n) {
                ch.commit_all();
            }
        }
        let el = start.elapsed();
        let done = crate::cli::signal::interrupted()
            || (a.duration > 0.0 && el.as_secs_f64() >= a.duration);
        if el >= next || done {
            next += Duration::from_secs(1);
            for (i, (r, c)) in rxs.iter().zip(&cfgs).enumerate() {
                let s = r.stats();
                let st = status(&a, c, &s, Some(el.as_secs_f64()));
                if a.json {
                    println!("{}", json_line(i, c, &st));
                } else {
                    eprintln!("[{:>5.0}s] {}", el.as_secs_f64(), text_line(i, c, &st));
                }
            }
        }
        if done {
            break;
        }
    }
    for (i, (r, c)) in rxs.into_iter().zip(&cfgs).enumerate() {
        let s = r.stop();
        let st = status(&a, c, &s, None);
        if a.json {
            println!("{}", json_line(i, c, &st));
        }
        eprintln!("aes67: stopped: {}", text_line(i, c, &st));
    }
    Ok(())
}
