//! Sender benchmark harness (issue 11): our engine sender
//! ([`aes67::engine::sender::Sender`], many streams on one pacing thread)
//! against GStreamer's sender pipeline (`audiotestsrc is-live=true !
//! audioconvert ! rtpL24pay ! udpsink`, one pipeline per stream in one
//! `gst-launch-1.0` process), in the same run, on the same configurations.
//!
//! - Senders in namespace A, one capture thread in namespace B (recvmmsg
//!   with kernel software RX timestamps, CLOCK_REALTIME).
//! - **CPU per packet**: `/proc/PID/task/*/schedstat` (ns on CPU) over the
//!   window ÷ packets received; ours: the pacing thread (`aes67-sender`)
//!   plus the tone source's cost inside it; GStreamer: the whole process.
//! - **Pacing** (ours): per packet, kernel arrival time − its scheduled time
//!   (the media time of its first sample: the RTP timestamps count
//!   CLOCK_REALTIME × rate, `RtpClock::Realtime`), p50/p99/max. It includes
//!   the veth hop (a few µs).
//! - **Scale**: ours only, N streams at 2 ch / 1 ms: the pacing thread's
//!   CPU share of one core and the implied streams per core.
//!
//! Run as root: `cargo run --release -p aes67-harness --bin send_bench -- --help`
//! (default: the four configurations, 10 s each, scale 64,128,256).

use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aes67::engine::sender::{DSCP_AF41, RtpClock, SendClock, SendStream, Sender, SenderOptions};
use aes67::engine::source::ToneSource;
use aes67::media::stream::StreamConfig;
use aes67::sys::socket::open_stream_socket;
use aes67_rig::{NetnsPair, in_netns, is_root};
use clap::Parser;

/// Command line of the harness.
#[derive(Parser, Debug)]
#[command(about = "Sender benchmark: the engine's sender vs GStreamer rtpL24pay on N streams")]
struct Args {
    /// Configurations, comma separated, each `N x CH x PTIME_US`.
    #[arg(long, default_value = "1x2x1000,8x2x1000,32x2x1000,8x8x125")]
    configs: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Scale: stream counts (2 ch, 1 ms) for ours only; empty: none.
    #[arg(long, default_value = "64,128,256")]
    scale: String,
    /// Skip GStreamer.
    #[arg(long)]
    no_gst: bool,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    n: usize,
    ch: u16,
    ptime_us: u32,
}

impl Config {
    fn parse(s: &str) -> Result<Config, String> {
        let p: Vec<u64> = s
            .trim()
            .split('x')
            .map(|x| {
                x.parse()
                    .map_err(|_| format!("bad config {s:?} (NxCHxPTIME_US)"))
            })
            .collect::<Result<_, _>>()?;
        match p[..] {
            [n, ch, pt] => Ok(Config {
                n: n as usize,
                ch: ch as u16,
                ptime_us: pt as u32,
            }),
            _ => Err(format!("bad config {s:?} (NxCHxPTIME_US)")),
        }
    }
    fn frames(&self) -> u32 {
        48 * self.ptime_us / 1000
    }
    fn label(&self) -> String {
        format!("N={} {}ch {}us", self.n, self.ch, self.ptime_us)
    }
}

/// SCHED_FIFO priority of our pacing thread, as `aes67 send`'s default.
const RT_PRIORITY: u8 = 60;

fn group(i: usize) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(239, 71, (i / 200) as u8, (i % 200 + 1) as u8),
        5004,
    )
}

/// CPU ns of the tasks of `pid` whose comm starts with `name` (all when empty).
fn cpu_ns(pid: u32, name: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            name.is_empty()
                || std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim_end().starts_with(name))
        })
        .map(|e| {
            std::fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0u64)
        })
        .sum()
}

/// Captured: packets per stream and (ours) arrival − scheduled, ns.
struct Capture {
    packets: u64,
    lag_ns: Vec<i64>,
}

/// Captures `n` groups in namespace B until `stop`; `lag`: RTP timestamps
/// count CLOCK_REALTIME × 48000 (ours), so arrival − media time is recorded.
fn capture(
    pair: &NetnsPair,
    n: usize,
    lag: bool,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Capture> {
    let socks = in_netns(&pair.b, || {
        (0..n)
            .map(|i| {
                let (g, p) = group(i);
                let c = StreamConfig::from_url(&format!("aes67://{g}:{p}?iface={}", pair.if_b))
                    .unwrap();
                open_stream_socket(&c).unwrap()
            })
            .collect::<Vec<_>>()
    })
    .unwrap();
    std::thread::spawn(move || {
        let mut src = aes67::sys::open_source(aes67::sys::IngestKind::Recvmmsg, socks)
            .unwrap()
            .source;
        let mut out = Capture {
            packets: 0,
            lag_ns: Vec::with_capacity(if lag { 4_000_000 } else { 0 }),
        };
        while !stop.load(Ordering::Relaxed) {
            let _ = src.poll(50, &mut |buf, meta| {
                if buf.len() < 12 {
                    return;
                }
                out.packets += 1;
                if lag && let Some(aes67::sys::RxTimestamp::Software(rt)) = meta.kernel_ts {
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    let now = (rt as i128 * 48_000 / 1_000_000_000) as i64;
                    let d = (now as u32).wrapping_sub(ts) as i32 as i64;
                    // samples → ns, plus the sub-sample part of the arrival.
                    let frac = rt as i128 - (now as i128 * 1_000_000_000 / 48_000);
                    out.lag_ns.push(d * 1_000_000_000 / 48_000 + frac as i64);
                }
            });
        }
        out
    })
}

struct Row {
    who: &'static str,
    cfg: String,
    packets: u64,
    cpu_ns: u64,
    lag: Option<(f64, f64, f64)>,
}

fn q(v: &mut [i64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

/// Our sender: N tone streams on one pacing thread in namespace A.
fn ours(pair: &NetnsPair, c: Config, secs: f64) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let cap = capture(pair, c.n, true, stop.clone());
    let iface: Ipv4Addr = pair.ip_a.parse().unwrap();
    let sender = in_netns(&pair.a, || {
        let streams = (0..c.n)
            .map(|i| {
                let (g, p) = group(i);
                let mut s = StreamConfig::from_url(&format!(
                    "aes67://{g}:{p}?iface={}&ch={}",
                    pair.ip_a, c.ch
                ))
                .unwrap();
                s.packet_time_us = Some(c.ptime_us);
                SendStream {
                    stream: s,
                    frames: c.frames(),
                    iface,
                    ttl: 1,
                    dscp: DSCP_AF41,
                    mediaclk_offset: 0,
                    ssrc: 0x1000 + i as u32,
                    source: Box::new(ToneSource::new(48_000, c.ch as usize, 24, 997.0, -12.0)),
                }
            })
            .collect();
        Sender::start(
            streams,
            SenderOptions {
                // As `aes67 send` (its --rt-priority default).
                rt_priority: Some(RT_PRIORITY),
                ..SenderOptions::new(SendClock::Monotonic(RtpClock::Realtime))
            },
        )
        .unwrap()
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let me = std::process::id();
    let (c0, t0) = (cpu_ns(me, "aes67-sender"), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = cpu_ns(me, "aes67-sender") - c0;
    let _ = t0;
    drop(sender);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let mut cap = cap.join().unwrap();
    // Packets in the CPU window ≈ total × window share (the capture also saw the warm-up).
    let expected = (c.n as f64 * secs * 1e6 / c.ptime_us as f64) as u64;
    let lag = (!cap.lag_ns.is_empty()).then(|| {
        let v = &mut cap.lag_ns;
        (q(v, 0.5), q(v, 0.99), q(v, 1.0))
    });
    Row {
        who: "aes67 Sender",
        cfg: c.label(),
        packets: expected.min(cap.packets),
        cpu_ns: cpu,
        lag,
    }
}

/// GStreamer: N pipelines in one gst-launch-1.0 process in namespace A.
fn gst(pair: &NetnsPair, c: Config, secs: f64) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let cap = capture(pair, c.n, false, stop.clone());
    let ptime_ns = c.ptime_us as u64 * 1000;
    let mut cmd = NetnsPair::cmd_in(&pair.a, "gst-launch-1.0");
    cmd.arg("-q");
    for i in 0..c.n {
        let (g, p) = group(i);
        cmd.args(
            format!(
                "audiotestsrc is-live=true samplesperbuffer={} freq=997 ! audioconvert ! \
                 audio/x-raw,format=S24BE,rate=48000,channels={} ! rtpL24pay pt=96 \
                 min-ptime={ptime_ns} max-ptime={ptime_ns} ! udpsink host={g} port={p} \
                 multicast-iface={} ttl-mc=1 auto-multicast=true sync=true",
                c.frames(),
                c.ch,
                pair.if_a
            )
            .split_whitespace(),
        );
    }
    let mut child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    std::thread::sleep(Duration::from_millis(1500));
    let c0 = cpu_ns(child.id(), "");
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = cpu_ns(child.id(), "") - c0;
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let got = cap.join().unwrap().packets;
    let expected = (c.n as f64 * secs * 1e6 / c.ptime_us as f64) as u64;
    Row {
        who: "GStreamer",
        cfg: c.label(),
        packets: expected.min(got),
        cpu_ns: cpu,
        lag: None,
    }
}

fn main() {
    let a = Args::parse();
    assert!(is_root(), "run as root (network namespaces)");
    let pair = NetnsPair::new().expect("netns pair");
    let configs: Vec<Config> = a
        .configs
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| Config::parse(s).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    println!(
        "| config | sender | packets | CPU µs/packet | ratio ours/GStreamer | pacing p50 / p99 / max µs |"
    );
    println!("|---|---|---|---|---|---|");
    for c in configs {
        let o = ours(&pair, c, a.secs);
        let g = (!a.no_gst).then(|| gst(&pair, c, a.secs));
        let per = |r: &Row| r.cpu_ns as f64 / 1000.0 / r.packets.max(1) as f64;
        let ratio = g.as_ref().map(|g| per(&o) / per(g));
        for r in std::iter::once(&o).chain(g.as_ref()) {
            println!(
                "| {} | {} | {} | {:.2} | {} | {} |",
                r.cfg,
                r.who,
                r.packets,
                per(r),
                match (r.who, ratio) {
                    ("aes67 Sender", Some(x)) => format!("{x:.3} (1/{:.1})", 1.0 / x),
                    _ => String::new(),
                },
                r.lag
                    .map(|(p50, p99, max)| format!("{p50:.1} / {p99:.1} / {max:.1}"))
                    .unwrap_or_default()
            );
        }
    }
    let scale: Vec<usize> = a
        .scale
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if !scale.is_empty() {
        println!(
            "\n| streams (2 ch, 1 ms) | pacing thread CPU, % of one core | streams per core | pacing p99 / max µs |"
        );
        println!("|---|---|---|---|");
        for n in scale {
            let c = Config {
                n,
                ch: 2,
                ptime_us: 1000,
            };
            let r = ours(&pair, c, a.secs);
            let share = r.cpu_ns as f64 / (a.secs * 1e9);
            println!(
                "| {n} | {:.1} | {:.0} | {} |",
                share * 100.0,
                n as f64 / share.max(1e-9),
                r.lag
                    .map(|(_, p99, max)| format!("{p99:.1} / {max:.1}"))
                    .unwrap_or_default()
            );
        }
    }
}
