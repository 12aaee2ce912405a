//! io_uring ingest against real kernel sockets: multicast in network
//! namespaces (root) and loopback. Skips cleanly (with a message) when the
//! kernel lacks multishot recvmsg / provided-buffer rings.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use aes67::media::stream::StreamConfig;
use aes67::sys::socket::open_stream_socket;
use aes67::sys::uring::{UringConfig, UringSource, probe};
use aes67::sys::{PacketSource, RxTimestamp};
use aes67_rig::{NetnsPair, in_netns};
use socket2::Socket;

/// Kernel software RX timestamps are switched on system-wide by a deferred
/// static key when the first socket enables them (`net_enable_timestamp`),
/// so the first datagrams after that may carry none. Keep one timestamping
/// socket open for the whole test process, and wait until a datagram does
/// carry a timestamp.
fn timestamps_on() {
    static KEEP: std::sync::OnceLock<Socket> = std::sync::OnceLock::new();
    KEEP.get_or_init(|| {
        let (keep, _) = loopback();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Patching the static key can take seconds on a loaded nested VM.
        // Every 5 s the checking socket is reopened: each open queues the
        // kernel's enable work again. Datagrams are paced (1 per ms) so the
        // kernel worker is not starved by this loop.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut ok, mut n, mut sent) = (false, 0, 0);
        while !ok && Instant::now() < deadline {
            let (check, port) = loopback();
            let mut src = aes67::sys::recvmmsg::RecvMmsgSource::new(vec![check]);
            let round = Instant::now();
            while !ok && round.elapsed() < Duration::from_secs(5) {
                tx.send_to(b"ts?", ("127.0.0.1", port)).unwrap();
                sent += 1;
                std::thread::sleep(Duration::from_millis(1));
                src.poll(20, &mut |_, m| {
                    n += 1;
                    ok |= m.kernel_ts.is_some()
                })
                .unwrap();
            }
        }
        assert!(ok, "kernel software RX timestamps never came on ({n} of {sent} datagrams received, none stamped)");
        keep
    });
}

fn uring_ok() -> bool {
    timestamps_on();
    match probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping: io_uring unavailable: {e}");
            false
        }
    }
}

/// A loopback unicast socket with SO_TIMESTAMPING (via the stream socket
/// opener), and its port.
fn loopback() -> (Socket, u16) {
    let mut cfg = StreamConfig::from_url("aes67://127.0.0.1").unwrap();
    cfg.port = 0;
    let s = open_stream_socket(&cfg).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// Polls until `want` datagrams arrived or `secs` passed; returns
/// (stream, payload, timestamp, truncated) per datagram.
fn collect(
    src: &mut dyn PacketSource,
    want: usize,
    secs: u64,
) -> Vec<(usize, Vec<u8>, Option<RxTimestamp>, bool)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while got.len() < want && Instant::now() < deadline {
        src.poll(50, &mut |b, m| {
            got.push((m.stream, b.to_vec(), m.kernel_ts, m.truncated))
        })
        .unwrap();
    }
    // Anything extra that arrives shortly after would be a duplicate: look for it.
    src.poll(20, &mut |b, m| {
        got.push((m.stream, b.to_vec(), m.kernel_ts, m.truncated))
    })
    .unwrap();
    got
}

#[test]
#[ignore = "needs root: network namespaces"]
fn multicast_streams_in_netns_all_accounted_with_index_payload_and_timestamp() {
    if !uring_ok() {
        return;
    }
    const M: usize = 6;
    const K: usize = 300;
    let pair = NetnsPair::new().unwrap();
    let groups: Vec<(String, u16)> = (0..M)
        .map(|i| {
            (
                format!("239.69.{}.{}", 10 + i / 3, 1 + i % 3),
                5004 + 2 * i as u16,
            )
        })
        .collect();
    // Two streams share a port on different groups: the group filter must hold.
    let mut groups = groups;
    groups[5].1 = groups[4].1;
    let socks: Vec<Socket> = in_netns(&pair.b, || {
        groups
            .iter()
            .map(|(g, p)| {
                let cfg = StreamConfig::from_url(&format!("aes67://{g}:{p}?iface={}", pair.if_b))
                    .unwrap();
                open_stream_socket(&cfg).unwrap()
            })
            .collect()
    })
    .unwrap();
    let mut src = UringSource::new(socks).map_err(|(e, _)| e).unwrap();
    assert_eq!(src.backend(), "uring");
    let before = aes67_rig::sh("ip", &["netns", "exec", &pair.b, "cat", "/proc/net/snmp"]).unwrap();
    in_netns(&pair.a, || {
        let tx = UdpSocket::bind((pair.ip_a.as_str(), 0)).unwrap();
        tx.set_multicast_ttl_v4(1).unwrap();
        for k in 0..K {
            for (i, (g, p)) in groups.iter().enumerate() {
                let mut pkt = vec![0u8; 12 + (k % 50)];
                pkt[0] = i as u8;
                pkt[1..3].copy_from_slice(&(k as u16).to_be_bytes());
                tx.send_to(&pkt, (g.as_str(), *p)).unwrap();
            }
            if k % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
    .unwrap();
    let got = collect(&mut src, M * K, 10);
    let after = aes67_rig::sh("ip", &["netns", "exec", &pair.b, "cat", "/proc/net/snmp"]).unwrap();
    assert_eq!(
        rcvbuf_errors(&before.stdout),
        rcvbuf_errors(&after.stdout),
        "socket drops"
    );
    assert_eq!(got.len(), M * K, "every datagram once");
    let mut seen: HashMap<(usize, u16), usize> = HashMap::new();
    let now = aes67::sys::clock::realtime_now_ns();
    for (stream, b, ts, trunc) in &got {
        assert!(!trunc);
        assert_eq!(
            b[0] as usize, *stream,
            "datagram for stream {} arrived on {}",
            b[0], stream
        );
        let k = u16::from_be_bytes([b[1], b[2]]);
        assert_eq!(b.len(), 12 + (k as usize % 50));
        *seen.entry((*stream, k)).or_default() += 1;
        match ts {
            Some(RxTimestamp::Software(t)) => {
                assert!((now - t).abs() < 60_000_000_000, "ts {t} vs now {now}")
            }
            other => panic!("no kernel software timestamp: {other:?}"),
        }
    }
    assert_eq!(seen.len(), M * K);
    assert_eq!(src.stats().packets, (M * K) as u64);
    assert_eq!(src.stats().truncated, 0);
}

/// `Udp: ... RcvbufErrors` from /proc/net/snmp text.
fn rcvbuf_errors(snmp: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(snmp);
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (h, v) = (lines.next().unwrap(), lines.next().unwrap());
    let i = h
        .split_whitespace()
        .position(|x| x == "RcvbufErrors")
        .unwrap();
    v.split_whitespace().nth(i).unwrap().parse().unwrap()
}

#[test]
fn truncation_is_flagged_and_counted() {
    if !uring_ok() {
        return;
    }
    let (s, port) = loopback();
    let cfg = UringConfig {
        payload_bytes: 256,
        ..UringConfig::default()
    };
    let mut src = UringSource::with_config(vec![s], cfg)
        .map_err(|(e, _)| e)
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(&[1u8; 100], ("127.0.0.1", port)).unwrap();
    tx.send_to(&[2u8; 1000], ("127.0.0.1", port)).unwrap();
    tx.send_to(&[3u8; 256], ("127.0.0.1", port)).unwrap();
    tx.send_to(&[4u8; 257], ("127.0.0.1", port)).unwrap();
    let got = collect(&mut src, 4, 5);
    let summary: Vec<(u8, usize, bool)> =
        got.iter().map(|(_, b, _, t)| (b[0], b.len(), *t)).collect();
    assert_eq!(
        summary,
        vec![
            (1, 100, false),
            (2, 256, true),
            (3, 256, false),
            (4, 256, true)
        ]
    );
    assert_eq!(src.stats().truncated, 2);
    assert!(
        got.iter()
            .all(|g| matches!(g.2, Some(RxTimestamp::Software(_))))
    );
}

#[test]
fn garbage_and_empty_datagrams_are_delivered_without_panic() {
    if !uring_ok() {
        return;
    }
    let (s, port) = loopback();
    let mut src = UringSource::new(vec![s]).map_err(|(e, _)| e).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u32 = 0x1234_5678;
    let mut sent = Vec::new();
    for n in [0usize, 1, 2, 11, 12, 13, 100, 1500, 2048, 2049, 4000] {
        let b: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        tx.send_to(&b, ("127.0.0.1", port)).unwrap();
        sent.push(b);
    }
    let got = collect(&mut src, sent.len(), 5);
    assert_eq!(got.len(), sent.len());
    for ((_, b, ts, trunc), s) in got.iter().zip(&sent) {
        let keep = s.len().min(2048);
        assert_eq!(&b[..], &s[..keep]);
        assert_eq!(*trunc, s.len() > 2048);
        assert!(ts.is_some());
        // The RTP parser downstream rejects garbage without panicking.
        let _ = aes67::media::rtp::RtpPacket::parse(b);
    }
    assert_eq!(src.stats().truncated, 2);
    assert_eq!(src.stats().malformed, 0);
}

#[test]
fn rearm_after_buffer_exhaustion_loses_nothing() {
    if !uring_ok() {
        return;
    }
    const STREAMS: usize = 3;
    const PER: usize = 400;
    let socks: Vec<(Socket, u16)> = (0..STREAMS).map(|_| loopback()).collect();
    let ports: Vec<u16> = socks.iter().map(|s| s.1).collect();
    // 8 buffers for a 1200-datagram burst: every multishot runs dry many times.
    let cfg = UringConfig {
        buffers: 8,
        cq_entries: 16,
        sq_entries: 8,
        ..UringConfig::default()
    };
    let mut src = UringSource::with_config(socks.into_iter().map(|s| s.0).collect(), cfg)
        .map_err(|(e, _)| e)
        .unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for k in 0..PER {
        for (i, p) in ports.iter().enumerate() {
            tx.send_to(&[i as u8, (k >> 8) as u8, k as u8, 0xee], ("127.0.0.1", *p))
                .unwrap();
        }
    }
    let got = collect(&mut src, STREAMS * PER, 10);
    assert_eq!(got.len(), STREAMS * PER);
    // Per stream, every datagram in order.
    for i in 0..STREAMS {
        let ks: Vec<usize> = got
            .iter()
            .filter(|g| g.0 == i)
            .map(|g| {
                assert_eq!(g.1[0] as usize, i);
                (g.1[1] as usize) << 8 | g.1[2] as usize
            })
            .collect();
        assert_eq!(ks, (0..PER).collect::<Vec<_>>(), "stream {i}");
    }
    let st = src.stats();
    assert!(
        st.enobufs >= 1,
        "the burst must exhaust the 8 buffers: {st:?}"
    );
    assert!(st.arms > STREAMS as u64, "re-armed: {st:?}");
    assert_eq!(st.packets, (STREAMS * PER) as u64);
}

#[test]
fn batched_source_built_on_one_thread_polled_on_another() {
    if !uring_ok() {
        return;
    }
    let socks: Vec<(Socket, u16)> = (0..4).map(|_| loopback()).collect();
    let ports: Vec<u16> = socks.iter().map(|s| s.1).collect();
    let cfg = UringConfig {
        batch_wait_us: 500,
        ..UringConfig::default()
    };
    let src = UringSource::with_config(socks.into_iter().map(|s| s.0).collect(), cfg)
        .map_err(|(e, _)| e)
        .unwrap();
    let (maj, min) = aes67::sys::uring::kernel_version();
    if (maj, min) >= (6, 12) {
        assert!(
            src.batching(),
            "min-wait batching must be on for Linux {maj}.{min}"
        );
    }
    let rx = std::thread::spawn(move || {
        let mut src = src;
        let got = collect(&mut src, 4 * 500, 10);
        (got, src.stats())
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for k in 0..500u16 {
        for (i, p) in ports.iter().enumerate() {
            tx.send_to(&[i as u8, (k >> 8) as u8, k as u8], ("127.0.0.1", *p))
                .unwrap();
        }
        if k % 20 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    let (got, st) = rx.join().unwrap();
    assert_eq!(got.len(), 4 * 500);
    for i in 0..4 {
        let ks: Vec<u16> = got
            .iter()
            .filter(|g| g.0 == i)
            .map(|g| u16::from_be_bytes([g.1[1], g.1[2]]))
            .collect();
        assert_eq!(ks, (0..500).collect::<Vec<_>>());
    }
    assert_eq!(st.packets, 2000);
}
