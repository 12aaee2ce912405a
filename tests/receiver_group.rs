//! `Receiver::start_group`: N real multicast streams between two network
//! namespaces, received by **one** ingest thread (io_uring where available),
//! each stream bit-exact into its own ring; stopping one stream flushes it
//! and leaves the others running.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use aes67::engine::receiver::{Receiver, ReceiverOptions};
use aes67::media::rtp;
use aes67::media::stream::{Encoding, StreamConfig};
use aes67::units::Nanos;
use aes67_rig::{NetnsPair, in_netns};

const N: usize = 12;
const FRAMES: usize = 48; // 1 ms at 48 kHz
const CH: usize = 2;
const PACKETS: u32 = 300;

fn group(i: usize) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(239, 71, 0, i as u8 + 1), 21000 + 2 * i as u16)
}

/// The sample stream `i` carries at frame `f`, channel `c` (24-bit range).
fn sample(i: usize, f: u32, c: usize) -> i32 {
    ((f as i64 * 7919 + i as i64 * 104_729 + c as i64 * 31) % 16_000_000 - 8_000_000) as i32
}

fn ingest_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "aes67-ingest")
        })
        .count()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn one_thread_serves_many_streams_bit_exact() {
    let pair = NetnsPair::new().expect("netns pair");
    let streams: Vec<_> = (0..N)
        .map(|i| {
            let (g, p) = group(i);
            let mut c = StreamConfig::new(g.into(), p);
            c.iface = Some(pair.if_b.clone());
            c.channels = CH as u16;
            c.encoding = Encoding::L24;
            c.payload_type = 96;
            c.sample_rate = 48000;
            let o = ReceiverOptions {
                link_offset: Nanos::from_ms(20),
                ..Default::default()
            };
            (c, o)
        })
        .collect();
    let rx = in_netns(&pair.b, || Receiver::start_group(streams))
        .unwrap()
        .expect("start_group");
    assert_eq!(rx.len(), N);
    assert_eq!(ingest_threads(), 1, "one ingest thread for {N} streams");
    eprintln!("backend {}", rx[0].0.backend());
    std::thread::sleep(Duration::from_millis(300)); // IGMP joins settle
    let sock = in_netns(&pair.a, || {
        let s = UdpSocket::bind((pair.ip_a.as_str(), 0)).unwrap();
        s.set_multicast_ttl_v4(1).unwrap();
        s
    })
    .unwrap();
    let (mut rxs, mut cons): (Vec<_>, Vec<_>) = rx.into_iter().unzip();
    let mut pkt = vec![0u8; 12 + FRAMES * CH * 3];
    let mut first = None;
    for k in 0..PACKETS {
        if k == PACKETS / 2 {
            // Stop stream 0 half way: it is flushed, the others go on.
            std::thread::sleep(Duration::from_millis(60));
            let st = rxs.remove(0).stop();
            assert_eq!(st.playout.packets, (PACKETS / 2) as u64, "{st:?}");
            first = Some(st);
        }
        for i in 0..N {
            let samples: Vec<i32> = (0..FRAMES * CH)
                .map(|s| sample(i, k * FRAMES as u32 + (s / CH) as u32, s % CH))
                .collect();
            rtp::write_header(
                &mut pkt,
                false,
                96,
                k as u16,
                k * FRAMES as u32,
                0x7100 + i as u32,
            );
            rtp::encode_l24(&samples, &mut pkt[12..]);
            sock.send_to(&pkt, group(i)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    let finals: Vec<_> = rxs.into_iter().map(|r| r.stop()).collect();
    let first = first.unwrap();
    for (i, st) in std::iter::once(&first).chain(finals.iter()).enumerate() {
        let want_pkts = if i == 0 { PACKETS / 2 } else { PACKETS };
        assert_eq!(st.playout.packets, want_pkts as u64, "stream {i}: {st:?}");
        assert_eq!(st.playout.lost, 0, "stream {i}: {st:?}");
        assert_eq!(st.playout.late, 0, "stream {i}: {st:?}");
        assert_eq!(st.playout.malformed, 0, "stream {i}: {st:?}");
        assert_eq!(st.ring_overflow_frames, 0, "stream {i}: {st:?}");
        let c = &mut cons[i];
        let n = c.slots();
        assert_eq!(
            n,
            want_pkts as usize * FRAMES * CH,
            "stream {i}: ring samples"
        );
        let chunk = c.read_chunk(n).unwrap();
        let (a, b) = chunk.as_slices();
        let got: Vec<i32> = a.iter().chain(b).copied().collect();
        chunk.commit_all();
        let bad = got
            .iter()
            .enumerate()
            .position(|(s, &v)| v != sample(i, (s / CH) as u32, s % CH));
        assert_eq!(bad, None, "stream {i}: first differing sample");
    }
    // The thread has ended with its last stream.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ingest_threads(), 0);
}
