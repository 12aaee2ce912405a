//! Fault rig (issue 13): a user-space impairment relay between a real
//! GStreamer AES67 sender and `aes67 play`, in network namespaces.
//!
//! GStreamer in namespace A sends a pseudo-random L24 stream to a multicast
//! group; the relay, a thread whose sockets live in namespace B, receives it on
//! B's veth and forwards each datagram to `aes67 play` on B's loopback
//! (unicast 127.0.0.1), after applying one impairment with a seeded generator:
//! random loss, 20-packet loss bursts, reordering (depth 3), duplicates, or
//! ±2 ms delay jitter. The relay counts what it did; the test asserts, per
//! fault:
//! - the output keeps its length: every packet slot between the first and the
//!   last received is in the WAV, audio or concealed silence;
//! - `lost` equals the relay's drops inside that span, and the concealed
//!   (silent) blocks are exactly those;
//! - everything else is bit-exact;
//! - duplicates are counted and dropped, reordering is counted and undone.
//!
//! A second test takes B's link down for 5 s in the middle of a stream and
//! asserts that the receiver is back, bit-exact, within 1 s of link up, on the
//! same socket and multicast membership.
//!
//! Needs root, `ip` and `gst-launch-1.0` (ci/setup.sh installs them).
mod gst_common;

use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aes67_rig::{NetnsPair, in_netns};
use gst_common::*;

/// One impairment of the relay.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Drop each packet with this probability (%).
    Loss(f64),
    /// Drop `len` consecutive packets every `every` packets.
    Burst { every: u64, len: u64 },
    /// Hold a packet back behind up to `depth` later ones, with this probability (%).
    Reorder { depth: usize, pct: f64 },
    /// Send a packet twice with this probability (%).
    Duplicate(f64),
    /// Delay each packet by `base` ± `jitter` ms (uniform), so neighbours may swap.
    Jitter { base_ms: f64, jitter_ms: f64 },
}

/// What the relay did.
#[derive(Debug, Default, Clone)]
struct RelayCount {
    received: u64,
    sent: u64,
    /// Sequence numbers (RTP) of the packets dropped.
    dropped: Vec<u16>,
    duplicated: u64,
    /// Packets sent after a packet with a higher sequence number.
    reordered: u64,
}

/// xorshift64*: a deterministic, seeded generator (no test may depend on luck).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A datagram waiting for its release time (min-heap on `at`, then arrival order).
#[derive(PartialEq, Eq)]
struct Held {
    at: Instant,
    order: u64,
    data: Vec<u8>,
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

fn rtp_seq(d: &[u8]) -> u16 {
    u16::from_be_bytes([d[2], d[3]])
}

/// The relay: receives `group:port` on `ns.if_b` inside namespace B and sends
/// to 127.0.0.1:`out_port` there, applying `fault`. Runs until `stop`.
fn spawn_relay(
    ns: &NetnsPair,
    group: Ipv4Addr,
    port: u16,
    out_port: u16,
    fault: Fault,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<RelayCount> {
    let ip_b: Ipv4Addr = ns.ip_b.parse().unwrap();
    let (rx, tx) = in_netns(&ns.b, || {
        let rx = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("relay socket");
        // Room for a second of packets: the relay is the network, never the weak link.
        rx.set_recv_buffer_size(4 << 20).unwrap();
        rx.bind(&SocketAddr::from((group, port)).into())
            .expect("relay bind");
        let rx = UdpSocket::from(rx);
        rx.join_multicast_v4(&group, &ip_b).expect("relay join");
        rx.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").expect("relay tx");
        tx.connect(("127.0.0.1", out_port)).unwrap();
        (rx, tx)
    })
    .expect("enter namespace B");
    std::thread::spawn(move || {
        // A network element: SCHED_FIFO, so a busy host delays it no more than it
        // delays the receiver under test.
        aes67::sys::rt::set_fifo(30);
        let mut rng = Rng(seed | 1);
        let mut c = RelayCount::default();
        let mut heap = BinaryHeap::new();
        // Reorder: packets held back, each with how many later packets to wait for.
        let mut held_back: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut max_sent: Option<u16> = None;
        let mut order = 0u64;
        let mut buf = [0u8; 2048];
        let send = |d: &[u8], c: &mut RelayCount, max_sent: &mut Option<u16>| {
            let s = rtp_seq(d);
            if let Some(m) = *max_sent {
                if (s.wrapping_sub(m) as i16) < 0 {
                    c.reordered += 1;
                } else {
                    *max_sent = Some(s);
                }
            } else {
                *max_sent = Some(s);
            }
            tx.send(d).expect("relay send");
            c.sent += 1;
        };
        while !stop.load(Ordering::Relaxed) || !heap.is_empty() || !held_back.is_empty() {
            // Release what is due.
            let now = Instant::now();
            while heap.peek().is_some_and(|h: &Held| h.at <= now) {
                let h = heap.pop().unwrap();
                send(&h.data, &mut c, &mut max_sent);
            }
            if stop.load(Ordering::Relaxed) {
                // Flush: nothing more arrives.
                for (_, d) in held_back.drain(..) {
                    send(&d, &mut c, &mut max_sent);
                }
                if let Some(h) = heap.peek() {
                    std::thread::sleep(h.at.saturating_duration_since(now));
                }
                continue;
            }
            let n = match rx.recv(&mut buf) {
                Ok(n) if n >= 12 => n,
                _ => continue,
            };
            c.received += 1;
            let d = buf[..n].to_vec();
            match fault {
                Fault::Loss(pct) => {
                    if rng.unit() * 100.0 < pct {
                        c.dropped.push(rtp_seq(&d));
                    } else {
                        send(&d, &mut c, &mut max_sent);
                    }
                }
                Fault::Burst { every, len } => {
                    if c.received % every < len && c.received > every {
                        c.dropped.push(rtp_seq(&d));
                    } else {
                        send(&d, &mut c, &mut max_sent);
                    }
                }
                Fault::Reorder { depth, pct } => {
                    // One packet at a time is held back behind 1..=depth later ones.
                    if held_back.is_empty() && c.received > 50 && rng.unit() * 100.0 < pct {
                        let k = 1 + (rng.next() % depth as u64) as usize;
                        held_back.push((k, d));
                    } else {
                        send(&d, &mut c, &mut max_sent);
                        for h in held_back.iter_mut() {
                            h.0 -= 1;
                        }
                        if let Some(i) = held_back.iter().position(|h| h.0 == 0) {
                            let (_, old) = held_back.remove(i);
                            send(&old, &mut c, &mut max_sent);
                        }
                    }
                }
                Fault::Duplicate(pct) => {
                    send(&d, &mut c, &mut max_sent);
                    if rng.unit() * 100.0 < pct {
                        send(&d, &mut c, &mut max_sent);
                        c.duplicated += 1;
                    }
                }
                Fault::Jitter { base_ms, jitter_ms } => {
                    // The first packets go straight through: the receiver locks
                    // on to the first packet it sees.
                    let ms = if c.received > 50 {
                        base_ms + (rng.unit() * 2.0 - 1.0) * jitter_ms
                    } else {
                        base_ms
                    };
                    heap.push(Held {
                        at: Instant::now() + Duration::from_secs_f64(ms.max(0.0) / 1e3),
                        order,
                        data: d,
                    });
                    order += 1;
                }
            }
        }
        c
    })
}

/// Where the relay's output goes: a unicast `aes67://` URL on B's loopback.
fn relay_url(out_port: u16) -> String {
    format!("aes67://127.0.0.1:{out_port}?iface=127.0.0.1&ch=2&rate=48000&enc=L24")
}

/// One fault: GStreamer → relay(`fault`) → `aes67 play`; returns the relay's
/// counts, the receiver's final stats and the block check.
fn run_fault(fault: Fault, group: &str, port: u16, secs: u32) {
    assert!(rig_ready());
    let c = l24_stereo_48k(48, secs);
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let n = (c.rate * c.secs) as usize;
    let sent = signal(0xfa17 ^ port as u64, n * 2, 24);
    write_wav(&inp, &sent, 2, c.rate, 24);
    let out_port = port + 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let relay = spawn_relay(
        &ns,
        group.parse().unwrap(),
        port,
        out_port,
        fault,
        port as u64,
        stop.clone(),
    );
    let rx = receiver_with(
        &ns,
        &relay_url(out_port),
        &outp,
        c.secs as f64 + 2.5,
        &["--link-offset-ms", "200"],
    );
    std::thread::sleep(Duration::from_millis(700));
    wait_sender(gst_sender(&ns, &inp, &c, group, port));
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let count = relay.join().expect("relay thread");
    let st = finish(rx);
    let (_, got) = read_wav(&outp);
    let b = blocks_exact_or_silent(&sent, &got, 96);
    let packets = (n / 48) as u64;
    eprintln!(
        "{fault:?}: relay received {} sent {} dropped {} duplicated {} reordered {}; \
         receiver packets {} lost {} duplicates {} reordered {} late {}; \
         output {} of {} blocks (lead {}, trail {}, {} concealed)",
        count.received,
        count.sent,
        count.dropped.len(),
        count.duplicated,
        count.reordered,
        st["packets"],
        st["lost"],
        st["duplicates"],
        st["reordered"],
        st["late"],
        got.len() / 96,
        packets,
        b.lead,
        b.trail,
        b.silent
    );
    assert_eq!(
        count.received, packets,
        "the relay saw every packet GStreamer sent"
    );
    let u = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
    assert_eq!(u("late"), 0, "{st}");
    assert_eq!(u("malformed"), 0, "{st}");
    // The output keeps its length: every slot from the first to the last packet
    // received is there (audio or concealed silence).
    assert_eq!(
        got.len() / 96 + b.lead + b.trail,
        packets as usize,
        "output length"
    );
    // lost = the relay's drops inside the span, and exactly those are silent.
    let dropped = count.dropped.len() as u64;
    assert_eq!(u("lost"), b.silent, "lost vs concealed blocks: {st}");
    assert_eq!(
        u("lost"),
        dropped - b.lead as u64 - b.trail as u64,
        "lost vs relay drops {dropped} (lead {}, trail {}): {st}",
        b.lead,
        b.trail
    );
    match fault {
        Fault::Loss(_) | Fault::Burst { .. } => assert!(dropped > 0, "the fault dropped nothing"),
        Fault::Duplicate(_) => {
            assert!(count.duplicated > 0, "the fault duplicated nothing");
            assert_eq!(u("duplicates"), count.duplicated, "{st}");
        }
        Fault::Reorder { .. } | Fault::Jitter { .. } => {
            assert!(count.reordered > 0, "the fault reordered nothing");
            assert_eq!(u("reordered"), count.reordered, "{st}");
        }
    }
    if !matches!(fault, Fault::Loss(_) | Fault::Burst { .. }) {
        assert_eq!((b.lead, b.trail, b.silent), (0, 0, 0), "{st}");
    }
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn random_loss_5_percent() {
    run_fault(Fault::Loss(5.0), "239.69.7.1", 5070, 5);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn loss_bursts_of_20_packets() {
    run_fault(
        Fault::Burst {
            every: 500,
            len: 20,
        },
        "239.69.7.2",
        5072,
        5,
    );
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn reorder_depth_3() {
    run_fault(Fault::Reorder { depth: 3, pct: 5.0 }, "239.69.7.3", 5074, 5);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn duplicates_2_percent() {
    run_fault(Fault::Duplicate(2.0), "239.69.7.4", 5076, 5);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn delay_jitter_plus_minus_2ms() {
    run_fault(
        Fault::Jitter {
            base_ms: 2.0,
            jitter_ms: 2.0,
        },
        "239.69.7.5",
        5078,
        5,
    );
}

/// B's link goes down for 5 s in the middle of a 12 s stream (the receiver
/// listens to the multicast group on B's veth; no relay). The outage is far
/// beyond the playout buffer's window, so the buffer resynchronises on the first
/// packets after it (a timestamp jump, confirmed by 4 packets in a row): the
/// output is the audio before the outage, bit-exact, then the audio from at most
/// 1 s after link up, bit-exact to the end, on the same socket and membership.
#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn link_down_5s_then_up() {
    assert!(rig_ready());
    let c = l24_stereo_48k(48, 12);
    let (group, port) = ("239.69.7.6", 5080u16);
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let n = (c.rate * c.secs) as usize;
    let sent = signal(0x11d0, n * 2, 24);
    write_wav(&inp, &sent, 2, c.rate, 24);
    let url = format!(
        "aes67://{group}:{port}?iface={}&ch=2&rate=48000&enc=L24",
        ns.if_b
    );
    let rx = receiver_with(&ns, &url, &outp, c.secs as f64 + 2.5, &[]);
    std::thread::sleep(Duration::from_millis(700));
    let tx = gst_sender(&ns, &inp, &c, group, port);
    let t0 = Instant::now();
    let link = |state: &str| {
        aes67_rig::sh("ip", &["-n", &ns.b, "link", "set", &ns.if_b, state]).unwrap();
    };
    std::thread::sleep(Duration::from_secs(3));
    link("down");
    let down_at = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    link("up");
    let up_at = t0.elapsed().as_secs_f64();
    wait_sender(tx);
    let st = finish(rx);
    let (_, got) = read_wav(&outp);
    let blk = 96;
    let sent_b: Vec<&[i32]> = sent.chunks(blk).collect();
    let got_b: Vec<&[i32]> = got.chunks(blk).collect();
    // Before: a bit-exact prefix. After: a bit-exact run to the very end.
    let before = got_b
        .iter()
        .zip(&sent_b)
        .position(|(g, s)| g != s)
        .expect("the outage left no mark in the output");
    let resume = sent_b
        .iter()
        .position(|s| *s == got_b[before])
        .expect("the audio after the outage is the sent audio");
    let after = got_b.len() - before;
    eprintln!(
        "link down at {down_at:.2} s for {:.2} s: {before} packets before, resumed at packet \
         {resume} ({:.3} s after link up), {after} after; receiver {st}",
        up_at - down_at,
        resume as f64 / 1000.0 - up_at,
    );
    assert_eq!(
        &got_b[before..],
        &sent_b[resume..resume + after],
        "bit-exact after the outage"
    );
    assert_eq!(resume + after, sent_b.len(), "received to the end");
    // GStreamer started sending up to ~0.3 s after t0 (pipeline start): the
    // packet index runs behind wall time by that much, never ahead.
    assert!(
        (before as f64 / 1000.0) <= down_at + 0.05,
        "{before} packets before a link down at {down_at:.2} s"
    );
    assert!(
        (resume as f64 / 1000.0) <= up_at + 1.0,
        "back at packet {resume}: more than 1 s after link up at {up_at:.2} s"
    );
    assert_eq!(st["ts_jumps"], 1, "{st}");
    assert_eq!(st["late"], 0, "{st}");
}

/// Forged RTP from a third host (issue 13, audit cases 3-4). Three namespaces on
/// a bridge: GStreamer sends in 0, `aes67 play` records in 1, and a forger in 2
/// sniffs the stream and, for each genuine packet, sends to the same group and
/// port one of: a packet of a new SSRC (a takeover attempt), a packet of the
/// genuine SSRC 265 ms ahead (which used to move the free-running anchor), or
/// a packet of the genuine SSRC and next sequence number in L16 instead of L24
/// (a format change). The receiver stays pinned to the first source: the output
/// is bit-exact, nothing is lost, and the forgeries are counted.
#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn forged_rtp_from_a_third_host_loses_nothing() {
    assert!(rig_ready());
    let c = l24_stereo_48k(48, 5);
    let (group, port) = ("239.69.7.7", 5082u16);
    let lan = aes67_rig::NetnsLan::new(3).expect("lan");
    let dir = tempfile::tempdir().unwrap();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let n = (c.rate * c.secs) as usize;
    let sent = signal(0xf0f0, n * 2, 24);
    write_wav(&inp, &sent, 2, c.rate, 24);
    let url = format!(
        "aes67://{group}:{port}?iface={}&ch=2&rate=48000&enc=L24",
        lan.ifs[1]
    );
    let rx = receiver_in(&lan.ns[1], &url, &outp, c.secs as f64 + 2.5, &[]);
    let g: Ipv4Addr = group.parse().unwrap();
    let me: Ipv4Addr = lan.ips[2].parse().unwrap();
    let (sniff, tx) = in_netns(&lan.ns[2], || {
        let s = UdpSocket::bind(SocketAddr::from((g, port))).unwrap();
        s.join_multicast_v4(&g, &me).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let t = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        t.set_multicast_if_v4(&me).unwrap();
        t.set_multicast_loop_v4(false).unwrap();
        (s, UdpSocket::from(t))
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let forger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut k = 0u64;
            let mut rng = Rng(0xbad);
            while !stop.load(Ordering::Relaxed) {
                let Ok(len) = sniff.recv(&mut buf) else {
                    continue;
                };
                if len < 12 + 288 {
                    continue;
                }
                let mut p = buf[..len].to_vec();
                for b in &mut p[12..] {
                    *b = rng.next() as u8;
                }
                let seq = rtp_seq(&p);
                let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                match k % 3 {
                    // A new SSRC.
                    0 => p[8..12].copy_from_slice(&0x0bad_f00du32.to_be_bytes()),
                    // The genuine SSRC, 265 ms ahead.
                    1 => {
                        p[2..4].copy_from_slice(&seq.wrapping_add(265).to_be_bytes());
                        p[4..8].copy_from_slice(&ts.wrapping_add(265 * 48).to_be_bytes());
                    }
                    // The genuine SSRC, the next packet, as L16 (192 bytes).
                    _ => {
                        p.truncate(12 + 192);
                        p[2..4].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
                        p[4..8].copy_from_slice(&ts.wrapping_add(48).to_be_bytes());
                    }
                }
                tx.send_to(&p, (g, port)).unwrap();
                k += 1;
            }
            k
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    wait_sender(gst_sender_in(
        &lan.ns[0],
        &lan.ifs[0],
        &inp,
        &c,
        group,
        port,
    ));
    stop.store(true, Ordering::Relaxed);
    let forged = forger.join().unwrap();
    let st = finish(rx);
    let (_, got) = read_wav(&outp);
    eprintln!("forged RTP: {forged} packets from the third host; receiver {st}");
    assert!(forged > 1000, "the forger sent {forged}");
    assert_eq!(st["lost"], 0, "{st}");
    assert_eq!(st["late"], 0, "{st}");
    assert_eq!(st["ssrc_changes"], 0, "{st}");
    assert_eq!(st["ts_jumps"], 0, "{st}");
    assert!(
        st["foreign_source"].as_u64().unwrap_or(0) >= forged * 9 / 10,
        "forgeries not counted as foreign: {st}"
    );
    assert_eq!(got.len(), sent.len(), "output length");
    assert_eq!(
        got.iter().zip(&sent).position(|(a, b)| a != b),
        None,
        "first differing sample"
    );
}
