//! Ingest benchmark harness (issue 6): our io_uring ingest, our recvmmsg
//! ingest and GStreamer receivers, side by side in one run, on the same N
//! multicast streams between two network namespaces.
//!
//! Sender: a Rust RTP L24 sender thread in namespace A (one socket, paced by
//! `CLOCK_MONOTONIC`, catching up in bursts when late), identical for every
//! receiver. GStreamer is not used as the sender because `audiotestsrc !
//! rtpL24pay` pipelines cannot sustain 64k packets/s on this 2-core machine.
//!
//! Receivers in namespace B, one at a time, each on the same groups/ports:
//! - `uring`, `recvmmsg`: one ingest thread over N sockets
//!   ([`aes67::sys::uring::open_source`]); per packet: RTP header parse
//!   (RFC 3550 §5.1), sequence-gap count, L24 decode of the payload.
//! - `gst`: one `gst-launch-1.0` process holding N pipelines `udpsrc !
//!   rtpjitterbuffer ! rtpL24depay ! fakesink` (udpsrc buffer-size = our
//!   SO_RCVBUF, 8 MiB, for equal socket buffers).
//!
//! CPU: `/proc/PID/task/*/schedstat` (ns on CPU) over the send window; for our
//! backends only the ingest thread's own tid. Socket drops: `Udp RcvbufErrors`
//! delta of `/proc/net/snmp` inside namespace B.
//!
//! Run as root: `cargo run --release --bin ingest_bench -- --help`.

use std::collections::HashMap;
use std::io::IoSlice;
use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aes67::media::jitter::{PlayoutBuffer, PlayoutConfig};
use aes67::media::rtp::{self, RtpPacket};
use aes67::media::stream::Encoding;
use aes67::media::stream::StreamConfig;
use aes67::sys::socket::{RCVBUF_BYTES, open_stream_socket};
use aes67::sys::uring::{IngestKind, UringConfig, open_source_with};
use aes67::units::{MonoNs, Nanos};
use aes67_rig::{NetnsPair, in_netns, is_root};
use clap::Parser;

/// Command line of the harness.
#[derive(Parser, Debug)]
#[command(
    about = "Ingest benchmark: io_uring vs recvmmsg vs GStreamer on N multicast streams in netns"
)]
struct Args {
    /// Configurations, comma separated, each `N x CH ch x PTIME_US`, e.g. `8x8x125`.
    #[arg(long, default_value = "1x2x1000,8x2x1000,32x2x1000,8x8x125")]
    configs: String,
    /// Receivers to measure, comma separated: gst; engine and
    /// engine-recvmmsg (the product path, `Receiver::start_group`, over
    /// io_uring or recvmmsg); uring (a bare loop over the io_uring source,
    /// batching per --batch-us), uring-nobatch, recvmmsg (bare loops).
    #[arg(long, default_value = "gst,engine,engine-recvmmsg,uring")]
    receivers: String,
    /// Seconds of sending per measurement.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Scale test: stream counts at 2 ch / 1 ms for our backends only (e.g. `64,128,256`).
    #[arg(long, default_value = "")]
    scale: String,
    /// Backends for the scale test.
    #[arg(long, default_value = "uring,recvmmsg")]
    scale_receivers: String,
    /// io_uring batching window, µs (`UringConfig::batch_wait_us`; 0 = off).
    #[arg(long, default_value_t = 250)]
    batch_us: u32,
    /// Completions each io_uring poll waits for (1: wake per datagram).
    #[arg(long, default_value_t = 1)]
    wait_packets: usize,
    /// Link offset of the `engine` receivers, ms, and the `latency` of
    /// GStreamer's rtpjitterbuffer (the same budget for both).
    #[arg(long, default_value_t = 5)]
    link_offset_ms: u32,
    /// Poll timeout, ms (with --wait-packets above the traffic per poll,
    /// this is the wake-up period).
    #[arg(long, default_value_t = 20)]
    poll_ms: i32,
    /// Every this many packet times, send each stream one extra garbage
    /// (non-RTP, random length) datagram (0: none). Sent/received counts
    /// include them; our receivers count them as malformed.
    #[arg(long, default_value_t = 0)]
    garbage_every: u64,
    /// Sender threads in namespace A (streams split between them).
    #[arg(long, default_value_t = 1)]
    sender_threads: usize,
    /// Print one JSON object per measurement instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    n: usize,
    ch: usize,
    ptime_us: u64,
    /// Every this many packet times, each stream also gets one garbage
    /// (non-RTP) datagram; 0: none.
    garbage_every: u64,
}

impl Config {
    fn parse(s: &str) -> Result<Config, String> {
        let p: Vec<&str> = s.trim().split('x').collect();
        let num = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad config {s:?} (want NxCHxPTIME_US)"))
        };
        if p.len() != 3 {
            return Err(format!("bad config {s:?} (want NxCHxPTIME_US)"));
        }
        Ok(Config {
            n: num(p[0])? as usize,
            ch: num(p[1])? as usize,
            ptime_us: num(p[2])?,
            garbage_every: 0,
        })
    }
    fn frames(&self) -> usize {
        (48 * self.ptime_us / 1000).max(1) as usize
    }
    fn label(&self) -> String {
        format!("N={} {}ch {}us", self.n, self.ch, self.ptime_us)
    }
    fn pps(&self) -> u64 {
        self.n as u64 * 1_000_000 / self.ptime_us
    }
}

static WAIT_PACKETS: AtomicU64 = AtomicU64::new(1);
static POLL_MS: AtomicU64 = AtomicU64::new(20);
static LINK_OFFSET_MS: AtomicU64 = AtomicU64::new(5);

fn group(i: usize) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(239, 70, (i / 250) as u8, (i % 250 + 1) as u8),
        20000 + 2 * i as u16,
    )
}

/// Result of one measurement.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Row {
    config: String,
    receiver: String,
    pps: u64,
    secs: f64,
    sent: u64,
    received: u64,
    /// Received counted by us (false for GStreamer: estimated as sent − drops).
    received_exact: bool,
    cpu_s_per_s: f64,
    us_per_packet: f64,
    /// Times the receiver's threads were scheduled in per second (third
    /// field of `/proc/.../schedstat`): its wake-ups.
    wakeups_per_s: f64,
    /// `engine` only: CPU s/s of the sink thread that drains the rings
    /// (not in `cpu_s_per_s`: GStreamer's fakesink does no such work).
    sink_cpu_s_per_s: Option<f64>,
    socket_drops: u64,
    lost_by_us: u64,
    malformed: u64,
    /// Garbage datagrams among `sent`.
    garbage_sent: u64,
    fallback: Option<String>,
}

/// (CPU ns, times scheduled in) of one task, from
/// `/proc/self/task/TID/schedstat` (first and third fields).
fn task_cpu_ns(path: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let f: Vec<u64> = s
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        f.first().copied().unwrap_or(0),
        f.get(2).copied().unwrap_or(0),
    )
}

/// (CPU ns, times scheduled in) summed over every thread of process `pid`.
fn process_cpu_ns(pid: u32) -> (u64, u64) {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    rd.filter_map(|e| e.ok())
        .map(|e| task_cpu_ns(&format!("{}/schedstat", e.path().display())))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// What every measured receiver row shares: CPU (ns) and wake-ups sampled at
/// the start and the end of the window, over `secs` seconds and `window_rx`
/// packets received in it.
struct Sample {
    cpu: (u64, u64),
    wakeups: (u64, u64),
    secs: f64,
    window_rx: u64,
}

impl Row {
    /// A row of `receiver` on `cfg` with the CPU and wake-up figures of `s`;
    /// the caller fills the receiver-specific counters.
    fn measured(cfg: &Config, receiver: String, sent: u64, received: u64, s: &Sample) -> Row {
        Row {
            config: cfg.label(),
            receiver,
            pps: cfg.pps(),
            secs: s.secs,
            sent,
            received,
            received_exact: true,
            cpu_s_per_s: cpu_s_per_s(s.cpu.0, s.cpu.1, s.secs),
            us_per_packet: us_per_packet(s.cpu.0, s.cpu.1, s.window_rx.max(1)),
            wakeups_per_s: (s.wakeups.1 - s.wakeups.0) as f64 / s.secs,
            ..Row::default()
        }
    }
}

/// CPU seconds per second between two CPU-ns readings `el` seconds apart.
fn cpu_s_per_s(cpu0: u64, cpu1: u64, el: f64) -> f64 {
    (cpu1 - cpu0) as f64 / 1e9 / el
}

/// µs of CPU per packet between two CPU-ns readings, over `packets`.
fn us_per_packet(cpu0: u64, cpu1: u64, packets: u64) -> f64 {
    (cpu1 - cpu0) as f64 / 1e3 / packets as f64
}

/// `Udp RcvbufErrors` in namespace `ns`.
fn rcvbuf_errors(ns: &str) -> u64 {
    let text = in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default()
    })
    .unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return 0;
    };
    let Some(i) = h.split_whitespace().position(|x| x == "RcvbufErrors") else {
        return 0;
    };
    v.split_whitespace()
        .nth(i)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// The sender: all N streams from one socket in namespace A, with
/// `sendmmsg(2)` (one system call per 64 streams per packet time).
struct Sender {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    garbage: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sender {
    /// Starts `threads` sender threads, each sending an equal share of the streams.
    fn start(pair: &NetnsPair, cfg: Config, threads: usize) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let garbage = Arc::new(AtomicU64::new(0));
        let threads = threads.clamp(1, cfg.n.max(1));
        let mut handles = Vec::new();
        for t in 0..threads {
            let streams: Vec<usize> = (0..cfg.n).filter(|i| i % threads == t).collect();
            handles.push(Self::spawn_one(
                pair,
                cfg,
                streams,
                stop.clone(),
                sent.clone(),
                garbage.clone(),
            ));
        }
        Sender {
            stop,
            sent,
            garbage,
            threads: handles,
        }
    }

    fn spawn_one(
        pair: &NetnsPair,
        cfg: Config,
        streams: Vec<usize>,
        st: Arc<AtomicBool>,
        se: Arc<AtomicU64>,
        ga: Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<()> {
        let sock = in_netns(&pair.a, || {
            let s = UdpSocket::bind((pair.ip_a.as_str(), 0)).expect("bind sender");
            s.set_multicast_ttl_v4(1).unwrap();
            s
        })
        .unwrap();
        std::thread::Builder::new()
            .name("bench-sender".into())
            .spawn(move || {
                let frames = cfg.frames();
                let n = streams.len();
                let addrs: Vec<Option<SockaddrIn>> = streams
                    .iter()
                    .map(|&i| {
                        Some(SockaddrIn::from(std::net::SocketAddrV4::new(
                            group(i).0,
                            group(i).1,
                        )))
                    })
                    .collect();
                let mut headers = MultiHeaders::<SockaddrIn>::preallocate(64, None);
                let fd = sock.as_raw_fd();
                let mut pkts: Vec<Vec<u8>> = streams
                    .iter()
                    .map(|&i| {
                        let samples: Vec<i32> = (0..frames * cfg.ch)
                            .map(|k| ((k as i32 * 7919 + i as i32) % 8_000_000) - 4_000_000)
                            .collect();
                        let mut p = vec![0u8; 12 + frames * cfg.ch * 3];
                        rtp::encode_l24(&samples, &mut p[12..]);
                        p
                    })
                    .collect();
                let t0 = MonoNs::now();
                let mut k: u64 = 0;
                while !st.load(Ordering::Relaxed) {
                    let due = t0.add(Nanos::from_ns((k * cfg.ptime_us * 1000) as i64));
                    let now = MonoNs::now();
                    if due > now {
                        std::thread::sleep(Duration::from_nanos(due.since(now).as_ns() as u64));
                    }
                    for (p, &i) in pkts.iter_mut().zip(&streams) {
                        rtp::write_header(
                            p,
                            false,
                            96,
                            k as u16,
                            (k * frames as u64) as u32,
                            0x6700_0000 + i as u32,
                        );
                    }
                    // sendmmsg(2) in chunks: one system call for up to 64 streams.
                    let mut i0 = 0;
                    while i0 < n {
                        let i1 = (i0 + 64).min(n);
                        let slices: Vec<[IoSlice<'_>; 1]> =
                            pkts[i0..i1].iter().map(|p| [IoSlice::new(p)]).collect();
                        let r = sendmmsg(
                            fd,
                            &mut headers,
                            &slices,
                            &addrs[i0..i1],
                            [] as [ControlMessage<'_>; 0],
                            MsgFlags::empty(),
                        );
                        match r {
                            Ok(res) => {
                                let m = res.count().min(i1 - i0);
                                if m == 0 {
                                    break;
                                }
                                se.fetch_add(m as u64, Ordering::Relaxed);
                                i0 += m;
                            }
                            Err(_) => i0 = i1, // e.g. ENOBUFS: these packets are not sent (not counted)
                        }
                    }
                    if cfg.garbage_every > 0 && k.is_multiple_of(cfg.garbage_every) {
                        for (j, &i) in streams.iter().enumerate() {
                            // Random length 0-199, first byte 0 (RTP version 0): never valid RTP.
                            let len = (k as usize * 7 + j * 13) % 200;
                            let mut g: Vec<u8> = (0..len)
                                .map(|x| (x as u64 * 2654435761 + k) as u8)
                                .collect();
                            if let Some(b) = g.first_mut() {
                                *b = 0;
                            }
                            let (ip, port) = group(i);
                            if sock.send_to(&g, (ip, port)).is_ok() {
                                se.fetch_add(1, Ordering::Relaxed);
                                ga.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    k += 1;
                }
            })
            .expect("spawn sender")
    }
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    fn garbage(&self) -> u64 {
        self.garbage.load(Ordering::Relaxed)
    }
    /// Stops; returns (sent, of which garbage).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (self.sent(), self.garbage())
    }
}

/// Counters our ingest thread publishes after every poll.
#[derive(Default)]
struct IngestShared {
    tid: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    malformed: AtomicU64,
    ready: AtomicBool,
    stop: AtomicBool,
}

/// Runs one of our backends as the receiver of `cfg` in namespace B.
fn run_ours(
    pair: &NetnsPair,
    cfg: Config,
    kind: IngestKind,
    secs: f64,
    batch_us: u32,
    sender_threads: usize,
) -> Row {
    let shared = Arc::new(IngestShared::default());
    let sh = shared.clone();
    let ns_b = pair.b.clone();
    let if_b = pair.if_b.clone();
    let (ftx, frx) = std::sync::mpsc::channel::<Option<String>>();
    let thread = std::thread::Builder::new()
        .name("bench-ingest".into())
        .spawn(move || {
            // "/proc/thread-self" links to "PID/task/TID".
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|l| l.file_name()?.to_str()?.parse::<u64>().ok())
                .expect("own tid");
            sh.tid.store(tid, Ordering::SeqCst);
            let socks = in_netns(&ns_b, || {
                (0..cfg.n)
                    .map(|i| {
                        let (g, p) = group(i);
                        let mut c = StreamConfig::new(g.into(), p);
                        c.iface = Some(if_b.clone());
                        open_stream_socket(&c).expect("open stream socket")
                    })
                    .collect::<Vec<_>>()
            })
            .expect("enter netns");
            let ucfg = UringConfig {
                batch_wait_us: batch_us,
                ..UringConfig::default()
            };
            let opened = open_source_with(kind, socks, ucfg).expect("open ingest source");
            let _ = ftx.send(opened.fallback_reason.clone());
            let mut src = opened.source;
            src.set_wait_hint(WAIT_PACKETS.load(Ordering::Relaxed) as usize, 0);
            let mut last_seq: Vec<Option<u16>> = vec![None; cfg.n];
            // Each stream gets a real playout buffer (placed by RTP timestamp,
            // released in order) so our per-packet cost covers what
            // GStreamer's rtpjitterbuffer + depayloader do.
            let mut jbs: Vec<PlayoutBuffer> = (0..cfg.n)
                .map(|_| {
                    PlayoutBuffer::new(PlayoutConfig {
                        channels: cfg.ch,
                        encoding: Encoding::L24,
                        payload_type: 96,
                        link_offset_frames: 240,
                        capacity_frames: 1 << 14,
                    })
                })
                .collect();
            let mut released = 0u64;
            let (mut received, mut lost, mut malformed) = (0u64, 0u64, 0u64);
            sh.ready.store(true, Ordering::SeqCst);
            while !sh.stop.load(Ordering::Relaxed) {
                let r = src.poll(POLL_MS.load(Ordering::Relaxed) as i32, &mut |b, m| {
                    received += 1;
                    let Ok(p) = RtpPacket::parse(b) else {
                        malformed += 1;
                        return;
                    };
                    if m.truncated || p.payload_type != 96 {
                        malformed += 1;
                        return;
                    }
                    let s = &mut last_seq[m.stream];
                    if let Some(prev) = *s {
                        let gap = p.sequence_number.wrapping_sub(prev);
                        if (2..0x8000).contains(&gap) {
                            lost += (gap - 1) as u64;
                        }
                    }
                    *s = Some(p.sequence_number);
                    let jb = &mut jbs[m.stream];
                    jb.insert_packet(&p);
                    // Release up to the newest packet minus the link offset.
                    released += jb.release(p.timestamp, &mut |f| {
                        std::hint::black_box(f);
                    });
                });
                if let Err(e) = r {
                    eprintln!("ingest poll error: {e}");
                    break;
                }
                sh.received.store(received, Ordering::Relaxed);
                sh.lost.store(lost, Ordering::Relaxed);
                sh.malformed.store(malformed, Ordering::Relaxed);
            }
            std::hint::black_box(released);
            src.backend()
        })
        .expect("spawn ingest");
    let fallback = frx.recv().ok().flatten();
    while !shared.ready.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300)); // IGMP joins settle
    let tid_path = format!(
        "/proc/self/task/{}/schedstat",
        shared.tid.load(Ordering::SeqCst)
    );
    let drops0 = rcvbuf_errors(&pair.b);
    let (cpu0, sw0) = task_cpu_ns(&tid_path);
    let rx0 = shared.received.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let sender = Sender::start(pair, cfg, sender_threads);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (cpu1, sw1) = task_cpu_ns(&tid_path);
    let rx1 = shared.received.load(Ordering::Relaxed);
    let el = t0.elapsed().as_secs_f64();
    let (sent, garbage_sent) = sender.stop();
    std::thread::sleep(Duration::from_millis(300)); // drain
    shared.stop.store(true, Ordering::SeqCst);
    let backend = thread.join().expect("ingest thread");
    let received = shared.received.load(Ordering::Relaxed) - rx0;
    let drops = rcvbuf_errors(&pair.b) - drops0;
    let sample = Sample {
        cpu: (cpu0, cpu1),
        wakeups: (sw0, sw1),
        secs: el,
        window_rx: rx1 - rx0,
    };
    let receiver = if backend == "uring" && batch_us > 0 {
        format!("uring (batch {batch_us} µs)")
    } else {
        backend.to_string()
    };
    Row {
        socket_drops: drops,
        lost_by_us: shared.lost.load(Ordering::Relaxed),
        malformed: shared.malformed.load(Ordering::Relaxed),
        garbage_sent,
        fallback,
        ..Row::measured(&cfg, receiver, sent, received, &sample)
    }
}

/// Thread ids of this process whose name is `comm`.
fn tids_named(comm: &str) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Runs the product receive path as the receiver of `cfg` in namespace B:
/// [`aes67::engine::receiver::Receiver::start_group`], i.e. one ingest thread for
/// all N streams, each with its playout buffer (link offset `--link-offset-ms`,
/// as GStreamer's `rtpjitterbuffer latency`), monotonic media clock and
/// output ring, plus one sink thread that drains every ring each 5 ms (the
/// counterpart of GStreamer's fakesink). CPU is both threads'.
fn run_engine(
    pair: &NetnsPair,
    cfg: Config,
    kind: IngestKind,
    secs: f64,
    sender_threads: usize,
) -> Result<Row, String> {
    use aes67::engine::receiver::{Receiver, ReceiverOptions};
    let streams: Vec<_> = (0..cfg.n)
        .map(|i| {
            let (g, p) = group(i);
            let mut c = StreamConfig::new(g.into(), p);
            c.iface = Some(pair.if_b.clone());
            c.channels = cfg.ch as u16;
            c.encoding = Encoding::L24;
            c.payload_type = 96;
            c.sample_rate = 48000;
            let o = ReceiverOptions {
                link_offset: Nanos::from_ms(LINK_OFFSET_MS.load(Ordering::Relaxed) as i64),
                ingest: kind,
                ..Default::default()
            };
            (c, o)
        })
        .collect();
    let group_rx = in_netns(&pair.b, || Receiver::start_group(streams))?
        .map_err(|e| format!("start_group: {e}"))?;
    let fallback = group_rx
        .first()
        .and_then(|(r, _)| r.fallback_reason().map(String::from));
    let backend = group_rx.first().map(|(r, _)| r.backend()).unwrap_or("none");
    let (rxs, mut cons): (Vec<_>, Vec<_>) = group_rx.into_iter().unzip();
    let stop = Arc::new(AtomicBool::new(false));
    let frames_out = Arc::new(AtomicU64::new(0));
    let (st, fo) = (stop.clone(), frames_out.clone());
    let sink = std::thread::Builder::new()
        .name("bench-sink".into())
        .spawn(move || {
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                for c in cons.iter_mut() {
                    let n = c.slots();
                    if let Ok(chunk) = c.read_chunk(n) {
                        let (a, b) = chunk.as_slices();
                        std::hint::black_box((a, b));
                        chunk.commit_all();
                        fo.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300)); // IGMP joins settle
    let (ingest, sink_tid) = (tids_named("aes67-ingest"), tids_named("bench-sink"));
    if ingest.len() != 1 || sink_tid.len() != 1 {
        return Err(format!(
            "expected 1 ingest thread for {} streams and 1 sink thread, found {} and {}",
            cfg.n,
            ingest.len(),
            sink_tid.len()
        ));
    }
    let ingest_path = format!("/proc/self/task/{}/schedstat", ingest[0]);
    let sink_path = format!("/proc/self/task/{}/schedstat", sink_tid[0]);
    let cpu = || task_cpu_ns(&ingest_path);
    let sink0 = task_cpu_ns(&sink_path).0;
    let packets =
        |rxs: &Vec<Receiver>| -> u64 { rxs.iter().map(|r| r.stats().playout.packets).sum() };
    let drops0 = rcvbuf_errors(&pair.b);
    let (cpu0, sw0) = cpu();
    let rx0 = packets(&rxs);
    let t0 = Instant::now();
    let sender = Sender::start(pair, cfg, sender_threads);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (cpu1, sw1) = cpu();
    let sink1 = task_cpu_ns(&sink_path).0;
    let rx1 = packets(&rxs);
    let el = t0.elapsed().as_secs_f64();
    let (sent, garbage_sent) = sender.stop();
    std::thread::sleep(Duration::from_millis(300)); // drain
    let finals: Vec<_> = rxs.into_iter().map(|r| r.stop()).collect();
    stop.store(true, Ordering::SeqCst);
    let _ = sink.join();
    let received: u64 = finals
        .iter()
        .map(|s| {
            let p = &s.playout;
            p.packets + p.late + p.duplicates + p.malformed + p.wrong_pt
        })
        .sum::<u64>()
        - rx0;
    let drops = rcvbuf_errors(&pair.b) - drops0;
    let sample = Sample {
        cpu: (cpu0, cpu1),
        wakeups: (sw0, sw1),
        secs: el,
        window_rx: rx1.saturating_sub(rx0),
    };
    Ok(Row {
        sink_cpu_s_per_s: Some((sink1 - sink0) as f64 / 1e9 / el),
        socket_drops: drops,
        lost_by_us: finals.iter().map(|s| s.playout.lost).sum(),
        malformed: finals
            .iter()
            .map(|s| s.playout.malformed + s.playout.wrong_pt)
            .sum(),
        garbage_sent,
        fallback,
        ..Row::measured(&cfg, format!("engine ({backend})"), sent, received, &sample)
    })
}

/// Runs N GStreamer receive pipelines in one gst-launch-1.0 process in namespace B.
fn run_gst(pair: &NetnsPair, cfg: Config, secs: f64, sender_threads: usize) -> Result<Row, String> {
    let mut cmd = NetnsPair::cmd_in(&pair.b, "gst-launch-1.0");
    cmd.arg("-q");
    for i in 0..cfg.n {
        let (g, p) = group(i);
        let caps = format!(
            "application/x-rtp,media=audio,clock-rate=48000,encoding-name=L24,channels={},payload=96",
            cfg.ch
        );
        for a in [
            "udpsrc".to_string(),
            format!("address={g}"),
            format!("port={p}"),
            format!("multicast-iface={}", pair.if_b),
            format!("buffer-size={RCVBUF_BYTES}"),
            format!("caps={caps}"),
            "!".into(),
            "rtpjitterbuffer".into(),
            format!("latency={}", LINK_OFFSET_MS.load(Ordering::Relaxed)),
            "!".into(),
            "rtpL24depay".into(),
            "!".into(),
            "fakesink".into(),
            "sync=false".into(),
        ] {
            cmd.arg(a);
        }
    }
    let mut child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("gst-launch-1.0: {e}"))?;
    let pid = child.id(); // `ip netns exec` execs gst-launch-1.0: same pid
    // Wait for the pipelines to reach PLAYING and join their groups.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let udp = in_netns(&pair.b, || {
            std::fs::read_to_string("/proc/thread-self/net/udp").unwrap_or_default()
        })
        .unwrap_or_default();
        let want: Vec<String> = (0..cfg.n)
            .map(|i| format!(":{:04X} ", group(i).1))
            .collect();
        let bound = want.iter().filter(|w| udp.contains(w.as_str())).count();
        if bound >= cfg.n || Instant::now() > deadline {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            return Err(format!("gst-launch-1.0 exited {st}: {err}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let drops0 = rcvbuf_errors(&pair.b);
    let (cpu0, sw0) = process_cpu_ns(pid);
    let t0 = Instant::now();
    let sender = Sender::start(pair, cfg, sender_threads);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (cpu1, sw1) = process_cpu_ns(pid);
    let el = t0.elapsed().as_secs_f64();
    let sent_window = sender.sent();
    let (sent, garbage_sent) = sender.stop();
    std::thread::sleep(Duration::from_millis(300));
    let drops = rcvbuf_errors(&pair.b) - drops0;
    let _ = child.kill();
    let _ = child.wait();
    let received = sent.saturating_sub(drops);
    let window_rx = sent_window.saturating_sub(drops).max(1);
    Ok(Row {
        config: cfg.label(),
        receiver: "gst".into(),
        pps: cfg.pps(),
        secs: el,
        sent,
        received,
        received_exact: false,
        cpu_s_per_s: cpu_s_per_s(cpu0, cpu1, el),
        us_per_packet: us_per_packet(cpu0, cpu1, window_rx),
        wakeups_per_s: (sw1 - sw0) as f64 / el,
        sink_cpu_s_per_s: None,
        socket_drops: drops,
        lost_by_us: 0,
        malformed: 0,
        garbage_sent,
        fallback: None,
    })
}

fn print_table(rows: &[Row]) {
    let gst: HashMap<&str, f64> = rows
        .iter()
        .filter(|r| r.receiver == "gst")
        .map(|r| (r.config.as_str(), r.us_per_packet))
        .collect();
    println!(
        "| config | receiver | pkt/s nominal | pkt/s sent | sent | received | CPU s/s | µs CPU/pkt | vs GStreamer | wake-ups/s | socket drops | lost by us |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = match gst.get(r.config.as_str()) {
            Some(g) if r.receiver != "gst" && r.us_per_packet > 0.0 => {
                format!("1/{:.1}", g / r.us_per_packet)
            }
            Some(_) if r.receiver == "gst" => "1".into(),
            _ => "-".into(),
        };
        let rx = if r.received_exact {
            r.received.to_string()
        } else {
            format!("~{}", r.received)
        };
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.3} | {:.2} | {} | {:.0} | {} | {} |",
            r.config,
            r.receiver,
            r.pps,
            r.sent as f64 / r.secs,
            r.sent,
            rx,
            r.cpu_s_per_s,
            r.us_per_packet,
            ratio,
            r.wakeups_per_s,
            r.socket_drops,
            r.lost_by_us
        );
    }
}

fn main() {
    let args = Args::parse();
    WAIT_PACKETS.store(args.wait_packets as u64, Ordering::Relaxed);
    POLL_MS.store(args.poll_ms as u64, Ordering::Relaxed);
    LINK_OFFSET_MS.store(args.link_offset_ms as u64, Ordering::Relaxed);
    if !is_root() {
        eprintln!("ingest_bench needs root (network namespaces)");
        std::process::exit(2);
    }
    let parse_list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    };
    let configs: Vec<Config> = match parse_list(&args.configs)
        .iter()
        .map(|c| Config::parse(c))
        .collect()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("--configs: {e}");
            std::process::exit(2);
        }
    };
    let mut jobs: Vec<(Config, Vec<String>)> = configs
        .into_iter()
        .map(|c| {
            (
                Config {
                    garbage_every: args.garbage_every,
                    ..c
                },
                parse_list(&args.receivers),
            )
        })
        .collect();
    for n in parse_list(&args.scale) {
        let Ok(n) = n.parse::<usize>() else {
            eprintln!("--scale: bad stream count {n:?}");
            std::process::exit(2);
        };
        jobs.push((
            Config {
                n,
                ch: 2,
                ptime_us: 1000,
                garbage_every: args.garbage_every,
            },
            parse_list(&args.scale_receivers),
        ));
    }
    let pair = NetnsPair::new().unwrap_or_else(|e| {
        eprintln!("netns rig: {e}");
        std::process::exit(2);
    });
    let mut rows = Vec::new();
    let mut failed = false;
    for (cfg, receivers) in jobs {
        for r in receivers {
            eprintln!("measuring {} with {r} for {} s ...", cfg.label(), args.secs);
            let row = match r.as_str() {
                "gst" => run_gst(&pair, cfg, args.secs, args.sender_threads),
                "uring" => Ok(run_ours(
                    &pair,
                    cfg,
                    IngestKind::Uring,
                    args.secs,
                    args.batch_us,
                    args.sender_threads,
                )),
                "uring-nobatch" => Ok(run_ours(
                    &pair,
                    cfg,
                    IngestKind::Uring,
                    args.secs,
                    0,
                    args.sender_threads,
                )),
                "engine" => run_engine(
                    &pair,
                    cfg,
                    IngestKind::Uring,
                    args.secs,
                    args.sender_threads,
                ),
                "engine-recvmmsg" => run_engine(
                    &pair,
                    cfg,
                    IngestKind::Recvmmsg,
                    args.secs,
                    args.sender_threads,
                ),
                "recvmmsg" => Ok(run_ours(
                    &pair,
                    cfg,
                    IngestKind::Recvmmsg,
                    args.secs,
                    0,
                    args.sender_threads,
                )),
                other => Err(format!(
                    "unknown receiver {other:?} (gst, engine, engine-recvmmsg, uring, uring-nobatch, recvmmsg)"
                )),
            };
            match row {
                Ok(row) => {
                    if args.json {
                        println!("{}", serde_json::to_string(&row).unwrap());
                        let _ = std::io::stdout().flush();
                    }
                    rows.push(row);
                }
                Err(e) => {
                    eprintln!("{}: {r}: {e}", cfg.label());
                    failed = true;
                }
            }
        }
    }
    if !args.json {
        print_table(&rows);
    }
    std::process::exit(if failed { 1 } else { 0 });
}
