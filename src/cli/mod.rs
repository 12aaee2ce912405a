//! The `aes67` command line. See `docs/cli.md` for the status and JSON keys.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use aes67::engine::output::{Output, OutputSpec, PcmFormat};
use aes67::engine::receiver::{Receiver, ReceiverOptions, ReceiverStats};
use aes67::media::stream::StreamConfig;
use aes67::status::ReceiverFigures;
use aes67::units::Nanos;

mod monitor;
mod ptp;
mod sap;
#[cfg(feature = "service")]
mod service;
mod signal;

#[derive(Parser)]
#[command(name = "aes67", version, about = "AES67 audio-over-IP engine")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Receive an AES67 stream and play it (ALSA), record it (WAV) or discard it.
    Play(PlayArgs),
    /// Run the whole chain on this machine: an in-process tone sender on a
    /// loopback multicast group, the receiver, and ALSA default or a WAV file.
    Demo(DemoArgs),
    /// Run an IEEE 1588-2019 ordinary clock (slave, or master by BMCA) on an
    /// interface and print its status once per second. Never adjusts
    /// CLOCK_REALTIME.
    Ptp(ptp::PtpArgs),
    /// Receive several streams on one ingest thread and print each one's
    /// counters once per second (audio is discarded).
    Monitor(crate::cli::monitor::MonitorArgs),
    /// Send an AES67 stream (a tone, a file or stdin; L24/L16 in the URL's
    /// format, one packet per packet time, paced on PTP or CLOCK_MONOTONIC),
    /// print its SDP and a status line per second.
    Send(SendArgs),
    /// Run as a service: every PTP port, receiver and sender of a config
    /// file, with metrics, a status socket, SIGHUP reload and systemd
    /// notifications (docs/config.md). `--check` validates only.
    #[cfg(feature = "service")]
    Run(service::RunArgs),
    /// Ask a running service for its status (`aes67 run`'s status socket).
    #[cfg(feature = "service")]
    Status(service::StatusArgs),
    /// List the AES67 sessions announced by SAP (RFC 2974): a table
    /// refreshed each second, or JSON.
    List(sap::ListArgs),
}

/// Arguments of `aes67 send`.
#[derive(Args)]
struct SendArgs {
    /// Destination: aes67://GROUP:PORT?iface=IP|NAME&pt=N&ch=N&rate=HZ&enc=L24|L16
    url: String,
    /// Audio source: tone[:HZ], file:PATH (WAV, FLAC, MP3, Ogg; resampled to
    /// the stream rate), alsa:DEVICE (ALSA capture at the stream's rate and
    /// channels, steered onto the media clock; see --capture-*) or stdin (raw
    /// PCM, see --format/--rate/--channels).
    #[arg(long, default_value = "tone")]
    source: String,
    /// alsa: capture device period, ms.
    #[arg(long, default_value_t = 5.0)]
    capture_period_ms: f64,
    /// alsa: capture device buffer, ms (an overrun when the capture thread
    /// does not read for this long).
    #[arg(long, default_value_t = 100.0)]
    capture_buffer_ms: f64,
    /// alsa: latency held between the ADC and the sender (capture delay +
    /// ring), ms.
    #[arg(long, default_value_t = 20.0)]
    capture_target_ms: f64,
    /// alsa: resampler quality (poly only for emulated CPUs).
    #[arg(long, default_value = "high")]
    capture_resampler: aes67::rate::resampler::Quality,
    /// Packet time, µs (125 to 5000; at 44.1 kHz the 48 kHz frame count).
    #[arg(long, default_value_t = 1000)]
    packet_time_us: u32,
    /// Tone frequency, Hz (for `--source tone` without :HZ).
    #[arg(long, default_value_t = 1000.0)]
    freq: f64,
    /// file: start over at the end (otherwise silence follows the end).
    #[arg(long = "loop")]
    looped: bool,
    /// stdin: sample format.
    #[arg(long, default_value = "s16le")]
    format: aes67::engine::source::RawFormat,
    /// stdin: sample rate, Hz (default: the stream's); resampled if it differs.
    #[arg(long)]
    rate: Option<u32>,
    /// stdin: channels (default: the stream's); mapped 1:1, mono to all.
    #[arg(long)]
    channels: Option<usize>,
    /// Multicast TTL (also in the SDP c= line).
    #[arg(long, default_value_t = 32)]
    ttl: u32,
    /// DSCP of the RTP packets (0-63; AF41 = 34).
    #[arg(long, default_value_t = 34, value_parser = clap::value_parser!(u8).range(0..=63))]
    dscp: u8,
    /// Run a PTP slave on this interface: RTP timestamp = PTP time × rate +
    /// mediaclk offset, packets paced on PTP time, SDP ts-refclk names the
    /// grandmaster. Without it: CLOCK_MONOTONIC and ts-refclk:localmac.
    #[arg(long, value_name = "IFACE")]
    ptp: Option<String>,
    /// PTP domainNumber for --ptp.
    #[arg(long, default_value_t = 0)]
    ptp_domain: u8,
    /// Without --ptp: the RTP timestamp time base.
    #[arg(long, default_value = "arbitrary")]
    rtp_clock: aes67::engine::sender::RtpClock,
    /// `a=mediaclk:direct=` offset added to the RTP timestamps (RFC 7273).
    #[arg(long, default_value_t = 0)]
    mediaclk_offset: u32,
    /// Session name (SDP s=).
    #[arg(long)]
    name: Option<String>,
    /// Write the SDP to this file (rewritten when it changes).
    #[arg(long)]
    sdp_out: Option<PathBuf>,
    /// SDP `a=fmtp:<pt> channel-order=` value, e.g. SMPTE2110.(ST) (ST 2110-30).
    #[arg(long)]
    channel_order: Option<String>,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Packets leave at the media time of their first sample plus this, µs
    /// (0 to 100000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    send_offset_us: u32,
    /// SCHED_FIFO priority of the pacing thread (1-99; best effort).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u8).range(1..=99))]
    rt_priority: u8,
    /// Print one JSON object per second on stdout instead of the status line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sap: sap::SendSapArgs,
}

/// Arguments of `aes67 play`.
#[derive(Args)]
struct PlayArgs {
    /// Stream URL: aes67://GROUP:PORT?iface=IP|NAME&pt=N&jitter=MS&ch=N&rate=HZ&enc=L24|L16&source=IP,
    /// or sap:NAME (a session announced by SAP: exact name or unique prefix).
    #[arg(required_unless_present = "sdp", conflicts_with = "sdp")]
    url: Option<String>,
    /// sap:NAME: how long to wait for the announcement, s.
    #[arg(long, default_value_t = 30.0)]
    sap_timeout: f64,
    #[command(flatten)]
    sap_net: sap::SapNetArgs,
    /// Read the stream description from an SDP file (RFC 4566) instead of a URL.
    #[arg(long)]
    sdp: Option<PathBuf>,
    /// Interface to join on (name or IPv4), overriding the URL/SDP.
    #[arg(long)]
    iface: Option<String>,
    /// Run a PTP slave on this interface and use it as the media clock:
    /// each frame plays at its RTP time (PTP time × rate + mediaclk offset,
    /// RFC 7273) + link offset. Without it, playout free-runs.
    #[arg(long, value_name = "IFACE")]
    ptp: Option<String>,
    /// PTP domainNumber for --ptp.
    #[arg(long, default_value_t = 0)]
    ptp_domain: u8,
    #[command(flatten)]
    common: CommonArgs,
}

/// Arguments of `aes67 demo`.
#[derive(Args)]
struct DemoArgs {
    /// Tone frequency, Hz.
    #[arg(long, default_value_t = 1000.0)]
    freq: f64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CommonArgs {
    /// Where audio goes: alsa:DEVICE, wav:PATH, null, or sim[:PPM] (a software
    /// sound device off by PPM, default +100, through the same real-time path as
    /// ALSA). Default alsa:default (demo: alsa:default if it opens, else wav:aes67-demo.wav).
    #[arg(long)]
    output: Option<String>,
    /// Link offset, ms: each frame plays this long after its media-clock time
    /// (AES67-2018 §6.6). Default 5 ms; with ALSA output, the playout target + 5 ms.
    #[arg(long)]
    link_offset_ms: Option<f64>,
    /// Stop after this many seconds (0 = until Ctrl-C). Demo default 10.
    #[arg(long)]
    duration: Option<f64>,
    /// Print one JSON object per second on stdout instead of the status line.
    #[arg(long)]
    json: bool,
    /// ALSA output: device period, ms.
    #[arg(long, default_value_t = 5.0)]
    alsa_period_ms: f64,
    /// ALSA output: device buffer, ms.
    #[arg(long, default_value_t = 20.0)]
    alsa_buffer_ms: f64,
    /// ALSA output: latency held by the playout thread (ring + device), ms.
    /// It is part of the link offset.
    #[arg(long, default_value_t = 20.0)]
    playout_target_ms: f64,
    /// ALSA output: resampler quality (poly only for emulated CPUs).
    #[arg(long, default_value = "high")]
    resampler: aes67::rate::resampler::Quality,
    /// ALSA output: SCHED_FIFO priority of the playout thread (1-99).
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(1..=99))]
    rt_priority: u8,
    /// Ingest backend: auto (io_uring when available), uring or recvmmsg.
    #[arg(long, default_value = "auto")]
    ingest: aes67::sys::IngestKind,
}

/// Runs the CLI; returns the process exit code.
pub(crate) fn main() -> i32 {
    let cli = Cli::parse();
    signal::install();
    let r = match cli.cmd {
        Cmd::Play(a) => play(a),
        Cmd::Demo(a) => demo(a),
        Cmd::Ptp(a) => return ptp::run(a),
        Cmd::Send(a) => send(a),
        Cmd::Monitor(a) => return crate::cli::monitor::run(a),
        #[cfg(feature = "service")]
        Cmd::Run(a) => return service::run(a),
        #[cfg(feature = "service")]
        Cmd::Status(a) => return service::status(a),
        Cmd::List(a) => return sap::list(a),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aes67: error: {e}");
            1
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn play(a: PlayArgs) -> Res {
    // Held while playing: reports new versions of a SAP session.
    let mut _sap_watch = None;
    let mut cfg = match (&a.url, &a.sdp) {
        (Some(u), _) if u.starts_with("sap:") => {
            let (c, w) = sap::resolve(
                &u["sap:".len()..],
                a.iface.as_deref(),
                a.sap_timeout,
                &a.sap_net,
                a.ptp.is_some(),
            )?;
            _sap_watch = Some(w);
            c
        }
        (Some(u), _) => StreamConfig::from_url(u)?,
        (None, Some(p)) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("--sdp {}: {e}", p.display()))?;
            StreamConfig::from_sdp(&text).map_err(|e| format!("--sdp {}: {e}", p.display()))?
        }
        (None, None) => return Err("give a URL or --sdp FILE".into()),
    };
    if let Some(i) = a.iface {
        cfg.iface = Some(i);
    }
    let spec: OutputSpec = a
        .common
        .output
        .as_deref()
        .unwrap_or("alsa:default")
        .parse()?;
    let ptp = a.ptp.as_ref().map(|iface| {
        // The SDP's ts-refclk grandmaster is the only acceptable master
        // (IEEE 1588-2019 §17.6): a rogue grandmaster is ignored and counted.
        let gm = cfg.ptp_grandmaster();
        if let Some((id, d)) = gm {
            eprintln!("ptp: accepting only grandmaster {id} (SDP ts-refclk, domain {d})");
        }
        let opts = aes67::engine::ptp::PtpOptions {
            domain: a.ptp_domain,
            slave_only: true,
            acceptable_masters: gm.map(|g| vec![g.0]).unwrap_or_default(),
            ..aes67::engine::ptp::PtpOptions::new(iface.clone())
        };
        aes67::engine::ptp::spawn(opts)
    });
    let clock: Option<Box<dyn aes67::media::clock::MediaClock>> = ptp.as_ref().map(|(h, _, _)| {
        Box::new(aes67::media::clock::PtpMediaClock::new(
            std::sync::Arc::new(h.clone()),
            cfg.sample_rate,
            cfg.mediaclk_offset.unwrap_or(0),
        )) as Box<dyn aes67::media::clock::MediaClock>
    });
    if let Some(iface) = &a.ptp {
        eprintln!(
            "aes67: PTP slave on {iface}, domain {}: media clock = PTP time (mediaclk:direct={})",
            a.ptp_domain,
            cfg.mediaclk_offset.unwrap_or(0)
        );
    }
    let r = run_with_clock(
        cfg,
        spec,
        &a.common,
        a.common.duration.unwrap_or(0.0),
        clock,
        ptp.as_ref().map(|(h, _, _)| h),
    );
    if let Some((_, stop, j)) = ptp {
        stop.store(true, Ordering::SeqCst);
        let _ = j.join();
    }
    r
}

fn send(a: SendArgs) -> Res {
    use aes67::engine::sender::{SendClock, SendStream, Sender, SenderOptions};
    use aes67::engine::source::{self, OutFormat, SourceSpec};
    use aes67::media::session::{RefClock, SdpVersion, SenderSdp, check_format};

    let mut cfg = StreamConfig::from_url(&a.url)?;
    let std::net::IpAddr::V4(dest) = cfg.dest else {
        return Err(format!("IPv6 is not supported yet in group={}", cfg.dest).into());
    };
    if dest.is_unspecified() || dest.is_broadcast() {
        return Err(format!("not a usable destination address in group={dest}").into());
    }
    let frames = check_format(&cfg, a.packet_time_us)?;
    let spec: SourceSpec = a.source.parse()?;
    cfg.packet_time_us = Some(a.packet_time_us);
    cfg.mediaclk_offset = Some(a.mediaclk_offset);
    cfg.ttl = Some(a.ttl.min(255) as u8);
    if let Some(n) = &a.name {
        cfg.name = Some(n.clone());
    }
    let ifc = match &cfg.iface {
        Some(i) => Some(aes67::sys::socket::lookup(i)?),
        // The interface the routing table picks (for the origin and MAC).
        None => aes67::sys::socket::local_addr_towards(dest)
            .and_then(|a| aes67::sys::socket::lookup(&a.to_string()).ok()),
    };
    let iface = match (&cfg.iface, &ifc) {
        (Some(_), Some(i)) => i.ipv4,
        _ => std::net::Ipv4Addr::UNSPECIFIED,
    };
    let origin = ifc
        .as_ref()
        .map(|i| i.ipv4)
        .or_else(|| aes67::sys::socket::local_addr_towards(dest))
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let ch = cfg.channels as usize;
    let bits = cfg.encoding.bits() as u32;
    let out = OutFormat {
        rate: cfg.sample_rate,
        channels: ch,
        bits,
        // Decoded ahead: a file 1 s (the feeder thread is not real-time and
        // must ride out a loaded machine), stdin 250 ms (its latency).
        ring_frames: (cfg.sample_rate as usize
            / if matches!(spec, SourceSpec::Stdin) {
                4
            } else {
                1
            })
        .max(8 * frames as usize),
    };
    // alsa: the capture thread's statistics, and the media clock's rate it steers to.
    let mut capture: Option<std::sync::Arc<aes67::engine::capture::CaptureStats>> = None;
    let capture_media = aes67::engine::playout::MediaRate::free_running();
    let (src, what): (Box<dyn aes67::engine::sender::AudioSource>, String) = match &spec {
        SourceSpec::Tone(f) => {
            let hz = if a.source == "tone" { a.freq } else { *f };
            (
                Box::new(source::ToneSource::new(
                    cfg.sample_rate,
                    ch,
                    bits,
                    hz,
                    -12.0,
                )),
                format!("{hz} Hz tone at -12 dBFS"),
            )
        }
        SourceSpec::File(p) => {
            let (s, info) = source::open_file(p, out, a.looped)?;
            (
                Box::new(s),
                format!(
                    "{} ({} ch, {} Hz{}{})",
                    p.display(),
                    info.channels,
                    info.rate,
                    if info.rate != cfg.sample_rate {
                        ", resampled"
                    } else {
                        ""
                    },
                    if a.looped { ", looped" } else { "" }
                ),
            )
        }
        SourceSpec::Alsa(dev) => {
            let ms = |v: f64| ((v * cfg.sample_rate as f64 / 1000.0).round() as usize).max(16);
            let mut cc = aes67::engine::capture::CaptureConfig::new(ch, cfg.sample_rate);
            cc.out_bits = bits;
            cc.period_frames = ms(a.capture_period_ms);
            cc.target_latency = aes67::units::Nanos::from_ns((a.capture_target_ms * 1e6) as i64);
            cc.quality = a.capture_resampler;
            cc.rt_priority = Some(a.rt_priority);
            let s = aes67::engine::capture::open_alsa(
                dev,
                cc,
                ms(a.capture_buffer_ms),
                capture_media.clone(),
            )?;
            capture = Some(s.stats());
            (
                Box::new(s),
                format!(
                    "ALSA capture {dev} ({ch} ch, {} Hz, steered to the media clock)",
                    cfg.sample_rate
                ),
            )
        }
        SourceSpec::Stdin => {
            let rate = a.rate.unwrap_or(cfg.sample_rate);
            let chans = a.channels.unwrap_or(ch);
            (
                Box::new(source::open_stdin(a.format, rate, chans, out)?),
                format!("stdin ({:?}, {chans} ch, {rate} Hz)", a.format),
            )
        }
    };
    // The clock: the engine's PTP slave, or CLOCK_MONOTONIC.
    let ptp = a.ptp.as_ref().map(|i| {
        let opts = aes67::engine::ptp::PtpOptions {
            domain: a.ptp_domain,
            slave_only: true,
            ..aes67::engine::ptp::PtpOptions::new(i.clone())
        };
        aes67::engine::ptp::spawn(opts)
    });
    // The grandmaster our slave follows; `None` unless it is in SLAVE state
    // (listening, the port reports its own identity).
    let gm_of = |h: &aes67::engine::ptp_clock::PtpClockHandle| {
        h.status()
            .filter(|s| s.port.state == aes67::ptp::port::PortState::Slave)
            .and_then(|s| {
                s.port
                    .gm_identity
                    .parse::<aes67::ptp::msg::ClockIdentity>()
                    .ok()
            })
    };
    let (clock, refclk) = match &ptp {
        Some((h, _, _)) => {
            eprintln!(
                "aes67 send: waiting for a stable PTP lock on {} (domain {})",
                a.ptp.as_deref().unwrap_or(""),
                a.ptp_domain
            );
            let t = Instant::now();
            let gm = loop {
                // Locked and stable: the servo no longer steps or slews
                // fast, so RTP timestamps run smoothly from the first packet.
                if let (aes67::ptp::ServoState::LockedStable, Some(gm)) =
                    (h.servo_state(), gm_of(h))
                {
                    break gm;
                }
                if signal::interrupted() || t.elapsed() > Duration::from_secs(90) {
                    return Err("PTP did not reach locked_stable within 90 s in --ptp".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            (
                SendClock::Ptp(h.clone()),
                RefClock::Ptp {
                    gm,
                    domain: a.ptp_domain,
                },
            )
        }
        None => (
            SendClock::Monotonic(a.rtp_clock),
            RefClock::LocalMac(ifc.as_ref().and_then(|i| i.mac).unwrap_or([0; 6])),
        ),
    };
    let session_id = aes67::sys::clock::realtime_now_ns() as u64 / 1_000_000_000;
    let mut version = SdpVersion::new(1, refclk);
    let mut desc = SenderSdp {
        stream: cfg.clone(),
        frames,
        origin,
        session_id,
        version: version.version(),
        refclk,
        mediaclk_offset: a.mediaclk_offset,
        channel_order: a.channel_order.clone(),
    };
    let publish = |d: &SenderSdp| -> Res {
        let text = d.render();
        if let Some(p) = &a.sdp_out {
            std::fs::write(p, &text).map_err(|e| format!("--sdp-out {}: {e}", p.display()))?;
        }
        if a.json {
            println!(
                "{}",
                serde_json::json!({ "sdp": text, "sdp_version": d.version })
            );
        } else {
            print!("{text}");
        }
        Ok(())
    };
    publish(&desc)?;
    // SAP (RFC 2974): the same SDP, updated with every new version.
    let sap = a.sap.start(cfg.iface.as_deref(), &desc.render())?;
    let ssrc = aes67::engine::sender::new_ssrc();
    let stream = SendStream {
        stream: cfg.clone(),
        frames,
        iface,
        ttl: a.ttl,
        dscp: a.dscp,
        mediaclk_offset: a.mediaclk_offset,
        ssrc,
        source: src,
    };
    let sender = Sender::start(
        vec![stream],
        SenderOptions {
            rt_priority: Some(a.rt_priority),
            send_offset: aes67::units::Nanos::from_ns(i64::from(a.send_offset_us) * 1000),
            ..SenderOptions::new(clock)
        },
    )?;
    eprintln!(
        "aes67 send: {what} -> {}:{} {} {} ch {} Hz, {} frames/packet, DSCP {}, {}",
        cfg.dest,
        cfg.port,
        cfg.encoding.name(),
        cfg.channels,
        cfg.sample_rate,
        frames,
        a.dscp,
        if ptp.is_some() {
            "PTP media clock"
        } else {
            "CLOCK_MONOTONIC"
        }
    );
    let start = Instant::now();
    while sender.rt().is_none() && start.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(1));
    }
    if sender.rt() == Some(false) {
        eprintln!(
            "aes67 send: warning: SCHED_FIFO denied for the pacing thread (needs CAP_SYS_NICE or \
             RLIMIT_RTPRIO); it runs at normal priority"
        );
    }
    let mut next = Duration::from_secs(1);
    let report = |s: aes67::engine::sender::SendStatsSnapshot, t: f64, fin: bool| {
        if a.json {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("t_s".into(), serde_json::json!(t));
                if let Some(c) = &capture {
                    let c = c.snapshot();
                    o.insert("overruns".into(), serde_json::json!(c.overruns));
                    o.insert("capture".into(), serde_json::json!(c));
                }
                if fin {
                    o.insert("final".into(), serde_json::json!(true));
                }
            }
            println!("{v}");
        } else {
            eprintln!(
                "[{t:>5.0}s] sent {} packets ({} frames), silence {} frames, underruns {}, \
                 send errors {}, skipped {}, max late {:.0} µs{}{}{}",
                s.packets_sent,
                s.frames_sent,
                s.silence_frames,
                s.underruns,
                s.send_errors,
                s.skipped_packets,
                s.max_late_ns as f64 / 1000.0,
                if s.source_ended { ", source ended" } else { "" },
                capture
                    .as_ref()
                    .map(|c| format!(", capture: {}", c.snapshot().status_line()))
                    .unwrap_or_default(),
                if fin { " (final)" } else { "" }
            );
        }
    };
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let el = start.elapsed();
        let done = signal::interrupted() || (a.duration > 0.0 && el.as_secs_f64() >= a.duration);
        if done {
            break;
        }
        // The capture steering's feed-forward: the PTP media clock's rate.
        if let Some((h, _, _)) = &ptp {
            capture_media.set(
                matches!(
                    h.servo_state(),
                    aes67::ptp::ServoState::Locked | aes67::ptp::ServoState::LockedStable
                )
                .then(|| h.freq()),
            );
        }
        if el >= next {
            next += Duration::from_secs(1);
            if let Some(s) = sender.stats(0) {
                report(s, el.as_secs_f64(), false);
            }
            // A new grandmaster: new ts-refclk, new SDP version (RFC 4566 §5.2).
            if let Some((h, _, _)) = &ptp
                && let Some(gm) = gm_of(h)
            {
                let rc = RefClock::Ptp {
                    gm,
                    domain: a.ptp_domain,
                };
                if version.observe(rc) {
                    desc.refclk = rc;
                    desc.version = version.version();
                    eprintln!(
                        "aes67 send: grandmaster now {gm}: SDP version {}",
                        desc.version
                    );
                    publish(&desc)?;
                    if let Some((h, id)) = &sap {
                        h.update(*id, desc.render());
                    }
                }
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let last = sender.stop();
    if let Some((_, stop, j)) = ptp {
        stop.store(true, Ordering::SeqCst);
        let _ = j.join();
    }
    if let Some(s) = last.first() {
        report(*s, el, true);
    }
    if let Some((s, _)) = sap {
        s.stop(); // the SAP deletions (3)
    }
    Ok(())
}

fn demo(a: DemoArgs) -> Res {
    let cfg = aes67::engine::sender::demo_stream();
    let sender = aes67::engine::sender::ToneSender {
        stream: cfg.clone(),
        iface: std::net::Ipv4Addr::LOCALHOST,
        ttl: 0,
        freq_hz: a.freq,
        level_dbfs: -12.0,
        rtp_clock: aes67::engine::sender::RtpClock::Arbitrary,
    }
    .start()?;
    eprintln!(
        "aes67 demo: sending a {} Hz tone to {}:{} on loopback (TTL 0, never leaves this host)",
        a.freq, cfg.dest, cfg.port
    );
    let spec = match a.common.output.as_deref() {
        Some(s) => s.parse()?,
        None => {
            // Probe ALSA default; without a sound card fall back to a WAV file.
            let (_p, c) = rtrb::RingBuffer::new(1024);
            let fmt = PcmFormat {
                channels: cfg.channels,
                rate: cfg.sample_rate,
                bits: cfg.encoding.bits(),
            };
            match Output::start(OutputSpec::Alsa("default".into()), fmt, c) {
                Ok(o) => {
                    drop(_p);
                    let _ = o.finish();
                    OutputSpec::Alsa("default".into())
                }
                Err(e) => {
                    eprintln!("aes67 demo: {e}");
                    eprintln!("aes67 demo: writing to wav:aes67-demo.wav instead");
                    OutputSpec::Wav("aes67-demo.wav".into())
                }
            }
        }
    };
    let r = run(cfg, spec, &a.common, a.common.duration.unwrap_or(10.0));
    let sent = sender.stop()?;
    eprintln!("aes67 demo: sender sent {sent} packets");
    r
}

/// An ALSA open error with the CLI's way out (the service names its config field instead).
fn output_hint(e: aes67::engine::output::OutputError) -> Box<dyn std::error::Error> {
    match e {
        aes67::engine::output::OutputError::Alsa { .. } => {
            format!("{e}. No sound card? Use --output wav:FILE (or null)").into()
        }
        e => e.into(),
    }
}

fn run(cfg: StreamConfig, spec: OutputSpec, c: &CommonArgs, duration_s: f64) -> Res {
    run_with_clock(cfg, spec, c, duration_s, None, None)
}

/// Where the ring goes: a plain sink (WAV, null) or the real-time playout
/// thread with drift compensation (ALSA).
enum Sink {
    Plain(Output),
    Rt {
        playout: aes67::engine::playout::Playout,
        media: std::sync::Arc<aes67::engine::playout::MediaRate>,
    },
}

impl Sink {
    fn underruns_xruns(&self) -> (u64, u64) {
        match self {
            Sink::Plain(o) => (
                o.stats.underruns.load(Ordering::Relaxed),
                o.stats.xruns.load(Ordering::Relaxed),
            ),
            Sink::Rt { playout, .. } => {
                let s = playout.stats().snapshot();
                (s.ring_underruns, s.xruns)
            }
        }
    }

    /// The playout thread's figures (real-time outputs only).
    fn playout(&self) -> Option<aes67::engine::playout::StatsSnapshot> {
        match self {
            Sink::Plain(_) => None,
            Sink::Rt { playout, .. } => Some(playout.stats().snapshot()),
        }
    }

    /// Frames written (plain outputs only).
    fn output_frames(&self) -> Option<u64> {
        match self {
            Sink::Plain(o) => Some(o.stats.frames.load(Ordering::Relaxed)),
            Sink::Rt { .. } => None,
        }
    }

    fn finish(self) -> Res {
        match self {
            Sink::Plain(o) => Ok(o.finish()?),
            Sink::Rt { playout, .. } => {
                // Let the ring play out (at most 1 s), then stop.
                let t = Instant::now();
                while playout.stats().snapshot().fill_ms > 0.5
                    && t.elapsed() < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                playout.stop();
                Ok(())
            }
        }
    }
}

fn run_with_clock(
    cfg: StreamConfig,
    spec: OutputSpec,
    c: &CommonArgs,
    duration_s: f64,
    clock: Option<Box<dyn aes67::media::clock::MediaClock>>,
    ptp: Option<&aes67::engine::ptp_clock::PtpClockHandle>,
) -> Res {
    let rt = matches!(spec, OutputSpec::Alsa(_) | OutputSpec::Sim { .. });
    let link_offset_ms =
        c.link_offset_ms
            .unwrap_or(if rt { c.playout_target_ms + 5.0 } else { 5.0 });
    if !(0.0..=1000.0).contains(&link_offset_ms) {
        return Err(format!(
            "invalid link offset {link_offset_ms} ms in --link-offset-ms (allowed 0-1000)"
        )
        .into());
    }
    let fmt = PcmFormat {
        channels: cfg.channels,
        rate: cfg.sample_rate,
        bits: cfg.encoding.bits(),
    };
    // With ALSA the playout thread holds `playout_target` in its ring and the
    // device, so frames leave the playout buffer that much earlier: each
    // sample then reaches the device at RTP time + link offset.
    let mut jb_link_ms = link_offset_ms;
    if rt {
        jb_link_ms = link_offset_ms - c.playout_target_ms;
        if jb_link_ms < 0.5 {
            eprintln!(
                "aes67: warning: --link-offset-ms {} is below the ALSA playout target {} ms + 0.5 ms: \
                 latency is {} ms, not sample-accurate to the link offset",
                link_offset_ms,
                c.playout_target_ms,
                c.playout_target_ms + 0.5
            );
            jb_link_ms = 0.5;
        }
    }
    let opts = ReceiverOptions {
        link_offset: Nanos::from_ns((jb_link_ms * 1e6) as i64),
        ingest: c.ingest,
        clock,
        // Real-time output: ingest runs SCHED_FIFO just below the playout thread.
        rt_priority: rt.then(|| c.rt_priority.saturating_sub(5).max(1)),
        // A free-running stream settles its timing before the playout hears it.
        settle: if rt {
            aes67::engine::receiver::RT_SETTLE
        } else {
            Nanos::ZERO
        },
        ..Default::default()
    };
    // The real-time output is made ready (device opened, memory locked) before the
    // receiver starts (`Playout::prepare`): a slow start must not overflow the ring.
    let prepared = if rt {
        let ms = |v: f64| ((v * cfg.sample_rate as f64 / 1000.0).round() as usize).max(16);
        let period = ms(c.alsa_period_ms);
        let buffer = ms(c.alsa_buffer_ms).max(2 * period);
        let mut pc =
            aes67::engine::playout::PlayoutConfig::new(cfg.channels as usize, cfg.sample_rate);
        pc.input_bits = cfg.encoding.bits() as u32;
        pc.period_frames = period;
        pc.target_latency = Nanos::from_ns((c.playout_target_ms * 1e6) as i64);
        pc.rt_priority = Some(c.rt_priority);
        pc.quality = c.resampler;
        let p = aes67::engine::playout::Playout::prepare(pc, &spec, buffer).map_err(output_hint)?;
        if let Some(e) = &p.lock_error {
            eprintln!("playout: mlockall failed ({e}); continuing without locked memory");
        }
        Some(p)
    } else {
        None
    };
    let (rx, ring) = Receiver::start(cfg.clone(), opts)?;
    if let Some(why) = rx.fallback_reason() {
        eprintln!("aes67: io_uring unavailable ({why}); using recvmmsg");
    }
    if rx.ingest_rt() == Some(false) {
        eprintln!(
            "aes67: warning: SCHED_FIFO denied for the ingest thread (needs CAP_SYS_NICE or RLIMIT_RTPRIO); \
             it runs at normal priority"
        );
    }
    let sink = match prepared {
        Some(p) => {
            let media = p.media();
            let playout = p.start(ring).map_err(|e| format!("playout: {e}"))?;
            Sink::Rt { playout, media }
        }
        None => Sink::Plain(Output::start(spec.clone(), fmt, ring).map_err(output_hint)?),
    };
    eprintln!(
        "aes67: receiving {}:{} {} {} ch {} Hz pt {} via {} -> {} (link offset {} ms)",
        cfg.dest,
        cfg.port,
        cfg.encoding.name(),
        cfg.channels,
        cfg.sample_rate,
        cfg.payload_type,
        rx.backend(),
        spec,
        link_offset_ms
    );
    let start = Instant::now();
    let mut next = Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if let (Sink::Rt { media, .. }, Some(h)) = (&sink, ptp) {
            // PTP feed-forward: the media clock runs at the PTP frequency
            // while locked; when lost the playout holds the last value.
            use aes67::ptp::ServoState;
            match h.servo_state() {
                ServoState::Locked | ServoState::LockedStable => media.set(Some(h.freq())),
                _ => media.set(None),
            }
        }
        let el = start.elapsed();
        let done = signal::interrupted() || (duration_s > 0.0 && el.as_secs_f64() >= duration_s);
        if el >= next || done {
            next += Duration::from_secs(1);
            let s = rx.stats();
            let r = report_of(
                &s,
                &sink,
                &cfg,
                link_offset_ms,
                jb_link_ms,
                Some(el.as_secs_f64()),
            );
            if c.json {
                println!("{}", serde_json::Value::Object(r.json()));
            } else {
                eprintln!("[{:>5.0}s] {}", el.as_secs_f64(), r.line());
            }
        }
        if done {
            break;
        }
    }
    let st = rx.stop();
    // Taken before the ring is drained at stop.
    let last = report_of(&st, &sink, &cfg, link_offset_ms, jb_link_ms, None);
    let (json, line) = (last.json(), last.line());
    let res = sink.finish();
    if c.json {
        println!("{}", serde_json::Value::Object(json));
    }
    eprintln!("aes67: stopped: {line}");
    res
}

/// The status of `play` and `demo` at `t_s` (`None`: the final report).
fn report_of<'a>(
    s: &'a ReceiverStats,
    sink: &Sink,
    cfg: &StreamConfig,
    link_offset_ms: f64,
    buffer_target_ms: f64,
    t_s: Option<f64>,
) -> ReceiverFigures<'a> {
    ReceiverFigures {
        stats: s,
        rate: cfg.sample_rate,
        link_offset_ms,
        buffer_target_ms,
        output: Some(sink.underruns_xruns()),
        output_frames: sink.output_frames(),
        playout: sink.playout(),
        t_s,
    }
}
