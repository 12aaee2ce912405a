//! The engine's sender in the netns rig: many streams on one pacing thread,
//! DSCP marking, and a stalled source that sends counted silence, never a
//! burst.
//!
//! Needs root, `ip` and `nft` (ci/setup.sh installs them).

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aes67::engine::sender::{RtpClock, SendClock, SendStream, Sender, SenderOptions};
use aes67::engine::source::ToneSource;
use aes67::media::stream::StreamConfig;
use aes67::sys::{IngestKind, RxTimestamp, open_source};
use aes67_rig::{NetnsPair, in_netns};

/// Stream configs `i` of `n`: group 239.69.12.(i+1), port 5200 + 2i.
fn cfg(i: usize, ch: u16) -> StreamConfig {
    let mut c = StreamConfig::new(
        std::net::IpAddr::V4(Ipv4Addr::new(239, 69, 12, i as u8 + 1)),
        5200 + 2 * i as u16,
    );
    c.channels = ch;
    c
}

/// What a receiver saw of one stream: packets, (seq, ts) gaps, the last
/// (seq, ts), kernel arrival times (ns).
type Seen = (u64, u64, Option<(u16, u32)>, Vec<i64>);

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == name)
        .count()
}

#[test]
#[ignore = "needs root: network namespaces, nftables"]
fn sixteen_streams_on_one_thread_with_dscp() {
    let ns = NetnsPair::new().unwrap();
    let n = 16;
    // Count DSCP 34 (AF41, stream 0..n-1) and 46 (stream n-1, configured).
    let nft = |args: &str| {
        let out = NetnsPair::cmd_in(&ns.b, "nft")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    nft("add table inet s11");
    nft("add chain inet s11 c { type filter hook input priority 0 ; }");
    nft("add rule inet s11 c ip dscp 34 udp dport 5200-5300 counter");
    nft("add rule inet s11 c ip dscp 46 udp dport 5200-5300 counter");
    let socks = in_netns(&ns.b, || {
        (0..n)
            .map(|i| {
                let mut c = cfg(i, 2);
                c.iface = Some(ns.if_b.clone());
                aes67::sys::socket::open_stream_socket(&c).unwrap()
            })
            .collect::<Vec<_>>()
    })
    .unwrap();
    let mut src = open_source(IngestKind::Recvmmsg, socks).unwrap().source;
    let ip_a: Ipv4Addr = ns.ip_a.parse().unwrap();
    let before = threads_named("aes67-sender");
    let sender = in_netns(&ns.a, || {
        let streams = (0..n)
            .map(|i| SendStream {
                stream: cfg(i, 2),
                frames: 48,
                iface: ip_a,
                ttl: 1,
                dscp: if i == n - 1 { 46 } else { 34 },
                mediaclk_offset: 0,
                ssrc: 0x1100 + i as u32,
                source: Box::new(ToneSource::new(48_000, 2, 24, 440.0 + i as f64, -12.0)),
            })
            .collect();
        Sender::start(
            streams,
            SenderOptions {
                rt_priority: Some(60),
                ..SenderOptions::new(SendClock::Monotonic(RtpClock::Arbitrary))
            },
        )
        .unwrap()
    })
    .unwrap();
    // The thread names itself once running.
    let t = Instant::now();
    while threads_named("aes67-sender") == before && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        threads_named("aes67-sender") - before,
        1,
        "one pacing thread"
    );
    // Per stream: packets, (seq, ts) gaps, last (seq, ts), kernel arrival times.
    let mut per: HashMap<usize, Seen> = HashMap::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        src.poll(50, &mut |buf, m| {
            let e = per.entry(m.stream).or_default();
            e.0 += 1;
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            assert_eq!(
                u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                0x1100 + m.stream as u32,
                "SSRC of stream {}",
                m.stream
            );
            if let Some((s0, t0)) = e.2
                && (seq != s0.wrapping_add(1) || ts != t0.wrapping_add(48))
            {
                e.1 += 1;
            }
            e.2 = Some((seq, ts));
            if let Some(RxTimestamp::Software(k)) = m.kernel_ts {
                e.3.push(k);
            }
        })
        .unwrap();
    }
    let stats: Vec<_> = sender.stop();
    let counters = nft("list table inet s11");
    assert_eq!(stats.len(), n);
    for (i, st) in stats.iter().enumerate() {
        let (pk, gaps, _, arr) = per.get(&i).unwrap_or_else(|| panic!("stream {i}: nothing"));
        assert_eq!(*gaps, 0, "stream {i}: sequence/timestamp gaps");
        assert!(
            (2900..=3100).contains(pk),
            "stream {i}: {pk} packets in 3 s"
        );
        assert_eq!(st.send_errors, 0);
        assert_eq!(st.skipped_packets, 0);
        // Received at the packet rate: the span of the arrivals is the
        // packet count in ms (±50 ms).
        let span_ms = (arr[arr.len() - 1] - arr[0]) as f64 / 1e6;
        assert!(
            (span_ms - (arr.len() - 1) as f64).abs() < 50.0,
            "stream {i}: {} packets over {span_ms} ms",
            arr.len()
        );
    }
    let count = |dscp: &str| -> u64 {
        let line = counters
            .lines()
            .find(|l| l.contains(&format!("ip dscp {dscp}")))
            .unwrap_or_else(|| panic!("no dscp {dscp} rule in {counters}"));
        let after = line.split("packets ").nth(1).unwrap();
        after.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (af41, ef) = (count("af41"), count("ef"));
    let total: u64 = per.values().map(|v| v.0).sum();
    let last = per[&(n - 1)].0;
    eprintln!(
        "{n} streams on one thread: {total} packets in 3 s, 0 gaps; DSCP af41 {af41}, ef {ef}; \
         max late {} µs",
        stats.iter().map(|s| s.max_late_ns).max().unwrap() / 1000
    );
    // nft counts until the stop; the socket reading stopped a little earlier.
    assert!(
        ef >= last && ef <= last + 50,
        "DSCP 46 packets {ef}, stream {} got {last}",
        n - 1
    );
    assert!(
        af41 >= total - last,
        "DSCP 34 packets {af41} < {}",
        total - last
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_stalled_stdin_sends_counted_silence_never_a_burst() {
    let ns = NetnsPair::new().unwrap();
    let mut c = cfg(20, 2);
    c.iface = Some(ns.if_b.clone());
    let sock = in_netns(&ns.b, || {
        aes67::sys::socket::open_stream_socket(&c).unwrap()
    })
    .unwrap();
    let mut src = open_source(IngestKind::Recvmmsg, vec![sock])
        .unwrap()
        .source;
    let url = format!("aes67://{}:{}?iface={}", c.dest, c.port, ns.if_a);
    let mut tx = NetnsPair::cmd_in(&ns.a, env!("CARGO_BIN_EXE_aes67"))
        .args([
            "send",
            &url,
            "--source",
            "stdin",
            "--format",
            "s16le",
            "--duration",
            "3.5",
        ])
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = tx.stdin.take().unwrap();
    // 1 s of a constant at real time (20 ms writes), a 600 ms stall, then
    // 1 s more, then the end of stdin.
    let feeder = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..960 * 2).flat_map(|_| 1000i16.to_le_bytes()).collect();
        let t = Instant::now();
        let mut k = 0u32;
        for phase in 0..2 {
            for _ in 0..50 {
                let due = Duration::from_millis(20 * k as u64 + 600 * phase);
                if let Some(w) = due.checked_sub(t.elapsed()) {
                    std::thread::sleep(w);
                }
                if stdin.write_all(&chunk).is_err() {
                    return;
                }
                k += 1;
            }
        }
    });
    let mut arr: Vec<(i64, bool)> = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(3300) {
        src.poll(50, &mut |buf, m| {
            let audio = buf[12..].chunks(3).any(|s| s != [0, 0, 0]);
            if let Some(RxTimestamp::Software(k)) = m.kernel_ts {
                arr.push((k, audio));
            }
        })
        .unwrap();
    }
    feeder.join().unwrap();
    let out = tx.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .rev()
            .find(|l| l.contains("\"final\""))
            .unwrap(),
    )
    .unwrap();
    // The stall is counted: the sender starts once 250 ms are buffered
    // (the stdin ring), so the 600 ms stall leaves ~350 ms of packets short
    // of audio.
    let under = st["underruns"].as_u64().unwrap();
    assert!((300..=450).contains(&under), "underruns {under}: {st}");
    assert_eq!(st["skipped_packets"], 0, "{st}");
    // Audio, then silence, then audio again.
    let audio: Vec<bool> = arr.iter().map(|a| a.1).collect();
    let first = audio.iter().position(|&a| a).expect("no audio");
    let gap = audio[first..].iter().position(|&a| !a).expect("no silence") + first;
    let back = audio[gap..]
        .iter()
        .position(|&a| a)
        .expect("audio never resumed")
        + gap;
    assert!(back - gap >= 300, "silence of {} packets only", back - gap);
    // Never a burst: in every 20 ms window at most 26 packets (1 ms each,
    // kernel receive times), around the resumption above all.
    let ts: Vec<i64> = arr.iter().map(|a| a.0).collect();
    let mut worst = 0;
    for (i, &t0) in ts.iter().enumerate() {
        let k = ts[i..].iter().take_while(|&&t| t - t0 < 20_000_000).count();
        worst = worst.max(k);
    }
    eprintln!(
        "stall: {under} underrun packets, silence {} packets, at most {worst} packets in any 20 ms: {st}",
        back - gap
    );
    assert!(worst <= 26, "a burst: {worst} packets within 20 ms");
}
