//! Writes the seed corpus, `fuzz/corpus/TARGET/seed-*`, with the crate's own
//! serializers: `cargo run -p aes67-fuzz --example seeds`. Idempotent (the
//! same bytes every run); inputs the fuzzer added (other names) are kept.

use std::path::PathBuf;

use aes67::media::rtp;
use aes67::ptp::msg::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Flags, Header, Message, MessageType,
    PortIdentity,
};
use aes67::ptp::time::PtpTimestamp;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, samples: &[i32], l16: bool) -> Vec<u8> {
    let bps = if l16 { 2 } else { 3 };
    let mut b = vec![0u8; 12 + samples.len() * bps];
    rtp::write_header(&mut b, false, pt, seq, ts, ssrc);
    if l16 {
        rtp::encode_l16(samples, &mut b[12..]);
    } else {
        rtp::encode_l24(samples, &mut b[12..]);
    }
    b
}

fn tone(n: usize, amp: f64) -> Vec<i32> {
    (0..n)
        .map(|i| ((i as f64 * 0.3).sin() * amp) as i32)
        .collect()
}

fn rtp_seeds() {
    // 1 ms at 48 kHz: 48 frames; L24 stereo, L16 stereo, L24 8 channels.
    write(
        "rtp",
        "l24-stereo-1ms",
        &rtp_packet(96, 1, 1000, 0x1234_5678, &tone(96, 8e6), false),
    );
    write(
        "rtp",
        "l16-stereo-1ms",
        &rtp_packet(97, 2, 1048, 0x1234_5678, &tone(96, 3e4), true),
    );
    write(
        "rtp",
        "l24-8ch-125us",
        &rtp_packet(98, 3, 6, 7, &tone(48, 8e6), false),
    );
    // CSRCs, a header extension and padding.
    let mut p = rtp_packet(96, 4, 2000, 9, &tone(12, 1e6), false);
    p[0] = 0x80 | 0x20 | 0x10 | 0x01; // padding, extension, 1 CSRC
    let mut q = p[..12].to_vec();
    q.extend_from_slice(&[0xCC; 4]); // CSRC
    q.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 1, 2, 3, 4]); // extension, 1 word
    q.extend_from_slice(&p[12..]);
    q.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
    write("rtp", "csrc-ext-pad", &q);
}

/// The playout-buffer op stream (see `aes67_fuzz::jitter`).
fn jitter_seeds() {
    // Config: 2 channels L24, link offset 96, capacity 1024, clock 1000.
    let head = |c: u8, link: u16, cap_shift: u8| {
        let mut v = vec![c];
        v.extend_from_slice(&link.to_be_bytes());
        v.push(cap_shift);
        v.extend_from_slice(&1000u32.to_be_bytes());
        v
    };
    let pkt = |v: &mut Vec<u8>, step: i16, frames: u8, flags: u8| {
        v.push(2);
        v.extend_from_slice(&step.to_be_bytes());
        v.push(frames - 1);
        v.push(flags);
    };
    let release = |v: &mut Vec<u8>, adv: u16| {
        v.push(3);
        v.extend_from_slice(&adv.to_be_bytes());
    };
    // In order, released as it goes.
    let mut v = head(1, 96, 4);
    for i in 0..20 {
        pkt(&mut v, 0, 48, 0);
        if i % 2 == 1 {
            release(&mut v, 96);
        }
    }
    v.push(4);
    write("jitter", "in-order-l24-stereo", &v);
    // Loss, reorder, duplicates, late, wrong PT, SSRC change, jump (L16 mono).
    let mut v = head(8, 48, 3);
    pkt(&mut v, 0, 48, 0);
    pkt(&mut v, 48, 48, 0); // skips one packet (loss)
    pkt(&mut v, -96, 48, 0); // the missing one (reordered)
    pkt(&mut v, 0, 48, 0); // duplicate
    release(&mut v, 200);
    pkt(&mut v, -3000, 48, 0); // late or jump back
    pkt(&mut v, 0, 48, 0x40); // wrong PT
    pkt(&mut v, 0, 48, 0x20); // odd size
    pkt(&mut v, 0, 48, 0x80); // SSRC change
    pkt(&mut v, 30000, 48, 0x80); // jump
    release(&mut v, 40000);
    v.extend_from_slice(&[5, 0, 10]); // release_until read + 10
    v.push(4);
    write("jitter", "loss-reorder-dup-l16", &v);
    // Raw datagrams (op 0) of a real L24 mono stream.
    let mut v = head(0, 0, 0);
    for i in 0..6u32 {
        let p = rtp_packet(96, i as u16, 1000 + 48 * i, 5, &tone(48, 8e6), false);
        v.push(0);
        v.push(p.len() as u8);
        v.extend_from_slice(&p);
    }
    release(&mut v, 300);
    write("jitter", "raw-l24-mono", &v);
}

const GM: ClockIdentity = ClockIdentity([0x00, 0x1D, 0xC1, 0xFF, 0xFE, 0x12, 0x34, 0x56]);

fn port(id: ClockIdentity, n: u16) -> PortIdentity {
    PortIdentity {
        clock_identity: id,
        port_number: n,
    }
}

fn msg(ty: MessageType, seq: u16, body: Body) -> Message {
    let mut h = Header::new(ty, 0, port(GM, 1), seq);
    h.flags = Flags(Flags::TWO_STEP | Flags::PTP_TIMESCALE);
    h.correction = 1234 << 16;
    Message { header: h, body }
}

fn ptp_msg_seeds() {
    let t = PtpTimestamp::from_parts(1_700_000_000, 123_456_789);
    let me = port(ClockIdentity([2, 0, 0, 0xFF, 0xFE, 0, 0, 1]), 1);
    let ann = AnnounceBody {
        origin_timestamp: t,
        current_utc_offset: 37,
        gm_priority1: 128,
        gm_clock_quality: ClockQuality {
            clock_class: 6,
            clock_accuracy: 0x21,
            offset_scaled_log_variance: 0x4E5D,
        },
        gm_priority2: 128,
        gm_identity: GM,
        steps_removed: 0,
        time_source: 0x20,
    };
    let all = [
        (
            "announce",
            msg(MessageType::Announce, 1, Body::Announce(ann)),
        ),
        (
            "sync",
            msg(
                MessageType::Sync,
                2,
                Body::Sync {
                    origin_timestamp: t,
                },
            ),
        ),
        (
            "follow-up",
            msg(
                MessageType::FollowUp,
                2,
                Body::FollowUp {
                    precise_origin_timestamp: t,
                },
            ),
        ),
        (
            "delay-req",
            msg(
                MessageType::DelayReq,
                3,
                Body::DelayReq {
                    origin_timestamp: t,
                },
            ),
        ),
        (
            "delay-resp",
            msg(
                MessageType::DelayResp,
                3,
                Body::DelayResp {
                    receive_timestamp: t,
                    requesting_port: me,
                },
            ),
        ),
        (
            "pdelay-req",
            msg(
                MessageType::PdelayReq,
                4,
                Body::PdelayReq {
                    origin_timestamp: t,
                },
            ),
        ),
        (
            "pdelay-resp",
            msg(
                MessageType::PdelayResp,
                4,
                Body::PdelayResp {
                    request_receipt_timestamp: t,
                    requesting_port: me,
                },
            ),
        ),
        (
            "pdelay-resp-fu",
            msg(
                MessageType::PdelayRespFollowUp,
                4,
                Body::PdelayRespFollowUp {
                    response_origin_timestamp: t,
                    requesting_port: me,
                },
            ),
        ),
        (
            "signaling",
            msg(
                MessageType::Signaling,
                5,
                Body::Signaling {
                    target_port: me,
                    tlvs: vec![
                        (0x0003, vec![0x00, 0x00, 0x00, 0x00, 0x10, 0x00]),
                        (0x8000, vec![1, 2, 3, 4]),
                    ],
                },
            ),
        ),
    ];
    for (name, m) in all {
        let b = m.to_bytes();
        write("ptp_msg", name, &b);
    }
}

/// A slave session for `aes67_fuzz::ptp_port`: Announces every 1 s, Sync +
/// Follow_Up every 125 ms, timers run, Delay_Reqs stamped and answered.
fn ptp_port_seeds() {
    let session = |c: u8, two_step: bool, secs: u32| {
        let mut v = vec![c];
        let adv = |v: &mut Vec<u8>, us: u32| {
            v.push(0);
            v.extend_from_slice(&us.to_be_bytes()[1..]);
        };
        // op 3, master 0, kind, jitter, seq flag (0 = next sequenceId).
        let send = |v: &mut Vec<u8>, kind: u8, next: bool, rx: Option<u8>| {
            v.extend_from_slice(&[3, 0, kind, 0, 0, u8::from(!next)]);
            if let Some(r) = rx {
                v.push(r);
            }
        };
        let ts = if two_step { 0x08 } else { 0 };
        for tick in 0..secs * 8 {
            if tick % 8 == 0 {
                send(&mut v, ts, true, None); // Announce
            }
            send(&mut v, 2 | ts, true, Some(3)); // Sync (event: rx byte)
            if two_step {
                send(&mut v, 3 | ts, false, None); // Follow_Up, same sequenceId
            }
            if tick % 8 == 4 {
                v.push(0x85); // run timers up to the next deadline (Delay_Req)
                v.extend_from_slice(&[6, 0, 1]); // its TX timestamp
                send(&mut v, 4, true, None); // Delay_Resp to our Delay_Req
                v.push(0); // (op 4 reads log interval: 0 → -4)
            }
            adv(&mut v, 125_000);
            v.push(5);
        }
        v
    };
    write("ptp_port", "slave-two-step-20s", &session(1, true, 20));
    write("ptp_port", "default-one-step-12s", &session(0, false, 12));
    write("ptp_port", "pi-servo-two-step-10s", &session(5, true, 10));
    // Master-only: timers only (Announce, Sync, Follow_Up after TX stamps).
    let mut v = vec![2u8];
    for _ in 0..40 {
        v.extend_from_slice(&[0x85, 6, 0, 1, 6, 0, 1]);
    }
    write("ptp_port", "master-only-timers", &v);
    // Raw messages through handle_general / handle_event.
    let t = PtpTimestamp::from_parts(100, 0);
    let mut v = vec![1u8];
    let a = msg(
        MessageType::Sync,
        9,
        Body::Sync {
            origin_timestamp: t,
        },
    )
    .to_bytes();
    v.extend_from_slice(&[1, 2, a.len() as u8]);
    v.extend_from_slice(&a);
    let f = msg(
        MessageType::FollowUp,
        9,
        Body::FollowUp {
            precise_origin_timestamp: t,
        },
    )
    .to_bytes();
    v.extend_from_slice(&[2, f.len() as u8]);
    v.extend_from_slice(&f);
    write("ptp_port", "raw-sync-follow-up", &v);
}

const SDP_AES67: &str = "v=0\r\no=- 1311738121 1311738121 IN IP4 192.168.1.1\r\ns=Stage left\r\n\
c=IN IP4 239.69.1.1/32\r\nt=0 0\r\nm=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/48000/8\r\n\
a=ptime:0.125\r\na=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\n\
a=mediaclk:direct=142410716\r\na=source-filter: incl IN IP4 239.69.1.1 192.168.1.1\r\na=recvonly\r\n";

const SDP_DANTE: &str = "v=0\r\no=- 1423986 1423991 IN IP4 169.254.98.63\r\ns=AOIP44-serial-1614 : 2\r\n\
c=IN IP4 239.65.45.154/32\r\nt=0 0\r\na=keywds:Dante\r\nm=audio 5004 RTP/AVP 97\r\ni=2 channels: TxChan 0, TxChan 1\r\n\
a=recvonly\r\na=rtpmap:97 L24/48000/2\r\na=ptime:1\r\n\
a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-51-9E-F7:0\r\na=mediaclk:direct=0\r\n";

const SDP_PIPEWIRE: &str = "v=0\no=- 1967 0 IN IP4 192.168.1.20\ns=PipeWire RTP Stream on host\n\
c=IN IP4 239.0.0.1/32\nt=0 0\na=recvonly\na=tool:PipeWire 1.2.7\na=type:broadcast\n\
m=audio 46000 RTP/AVP 127\na=rtpmap:127 L16/48000/2\na=ptime:4\n\
a=ts-refclk:ptp=IEEE1588-2008:00-00-00-00-00-00-00-00:0\na=mediaclk:direct=1184155072\n";

const SDP_L16_441: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=L16 44.1\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 100\r\na=rtpmap:100 L16/44100/1\r\na=ptime:0.25\r\n";

const SDP_V6: &str = "v=0\r\no=- 1 1 IN IP6 fe80::1\r\ns=six\r\nc=IN IP6 ff3e::1:2/16\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/96000/4\r\na=sendonly\r\n";

fn text_seeds() {
    for (n, s) in [
        ("aes67", SDP_AES67),
        ("dante", SDP_DANTE),
        ("pipewire", SDP_PIPEWIRE),
        ("l16-44k1-unicast", SDP_L16_441),
        ("ipv6", SDP_V6),
    ] {
        write("sdp", n, s.as_bytes());
    }
    let urls = [
        ("plain", "aes67://239.192.76.52"),
        ("port", "aes67://239.69.1.2:5006"),
        (
            "aliases",
            "aes67://239.69.1.2:5006?interface=eth1&payload=97&channels=8&samplerate=96000&jitter=4&enc=l16&source=10.0.0.9",
        ),
        (
            "short",
            "aes67://239.1.1.1:5004?iface=lo&pt=96&ch=2&rate=48000&enc=L24&jitter=10",
        ),
        ("ipv6", "aes67://[ff3e::1:2]:5004?ch=2"),
        ("bad-ch", "aes67://239.1.1.1?ch=0"),
        ("bad-param", "aes67://239.1.1.1?bogus=1"),
    ];
    for (n, u) in urls {
        write("url", n, u.as_bytes());
    }
    let bass = [
        ("plain", "aes67://239.192.76.52:5004"),
        ("fill", "aes67://239.192.76.52:5004?fill=available&ch=2"),
        ("fill-only", "  AES67://239.1.1.1?fill=silence  "),
        (
            "full",
            "aes67://239.69.1.2:5006?iface=eth0&pt=98&jitter=5&ch=8&rate=96000&enc=L16",
        ),
        ("bad-fill", "aes67://239.1.1.1?fill=never"),
        ("http", "http://example.invalid/stream"),
        ("port-identity", "001dc1fffe123456:1"),
    ];
    for (n, u) in bass {
        write("bass_url", n, u.as_bytes());
    }
}

/// Control buffers as the kernel lays them out (64-bit Linux).
fn cmsg_seeds() {
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let hdr = std::mem::size_of::<usize>() + 8;
        let mut v = Vec::new();
        v.extend_from_slice(&(hdr + data.len()).to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % std::mem::size_of::<usize>() != 0 {
            v.push(0);
        }
        v
    }
    fn ts3(sw: (i64, i64), hw: (i64, i64)) -> Vec<u8> {
        let mut d = Vec::new();
        for (s, n) in [sw, (0, 0), hw] {
            d.extend_from_slice(&s.to_ne_bytes());
            d.extend_from_slice(&n.to_ne_bytes());
        }
        d
    }
    const SOL_SOCKET: i32 = 1;
    const SCM_TIMESTAMPING: i32 = 37;
    const SCM_TIMESTAMPING_NEW: i32 = 65;
    const SOL_IP: i32 = 0;
    const IP_RECVERR: i32 = 11;
    const SOL_IPV6: i32 = 41;
    const IPV6_RECVERR: i32 = 25;
    let sw = cmsg(
        SOL_SOCKET,
        SCM_TIMESTAMPING,
        &ts3((1_700_000_000, 5), (0, 0)),
    );
    let hw = cmsg(
        SOL_SOCKET,
        SCM_TIMESTAMPING,
        &ts3((0, 0), (12, 999_999_999)),
    );
    let new = cmsg(SOL_SOCKET, SCM_TIMESTAMPING_NEW, &ts3((1, 2), (3, 4)));
    // sock_extended_err: errno, origin 4 (TIMESTAMPING), type, code, pad, info, data.
    let mut ee = Vec::new();
    ee.extend_from_slice(&42u32.to_ne_bytes());
    ee.extend_from_slice(&[4, 0, 0, 0]);
    ee.extend_from_slice(&0u32.to_ne_bytes());
    ee.extend_from_slice(&7u32.to_ne_bytes());
    let err4 = cmsg(SOL_IP, IP_RECVERR, &ee);
    let err6 = cmsg(SOL_IPV6, IPV6_RECVERR, &ee);
    write("cmsg", "timestamping-sw", &sw);
    write("cmsg", "timestamping-hw", &hw);
    write("cmsg", "timestamping-new", &new);
    write(
        "cmsg",
        "txerr-v4-with-ts",
        &[err4.clone(), sw.clone()].concat(),
    );
    write("cmsg", "txerr-v6-with-hw", &[hw.clone(), err6].concat());
    write("cmsg", "truncated", &new[..new.len() - 20]);
}

/// Winsock control buffers as `WSARecvMsg` lays them out (64-bit Windows),
/// written with the parser's own `write_entry`, plus the malformed shapes.
fn wincmsg_seeds() {
    use aes67::sys::wincmsg as w;
    fn entry(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; w::align(w::HDR_LEN + data.len())];
        w::write_entry(&mut v, level, kind, data).unwrap();
        v
    }
    let ts = |t: u64| entry(w::SOL_SOCKET, w::SO_TIMESTAMP, &t.to_le_bytes());
    let pi = |a: [u8; 4], idx: u32| {
        let mut d = a.to_vec();
        d.extend_from_slice(&idx.to_le_bytes());
        entry(w::IPPROTO_IP, w::IP_PKTINFO, &d)
    };
    let stamp = ts(123_456_789_012);
    let ptp = pi([224, 0, 1, 129], 7);
    write(
        "wincmsg",
        "timestamp-pktinfo",
        &[stamp.clone(), ptp.clone()].concat(),
    );
    write(
        "wincmsg",
        "pktinfo-timestamp",
        &[ptp.clone(), stamp.clone()].concat(),
    );
    write("wincmsg", "pktinfo-only", &pi([10, 0, 0, 2], 3));
    write("wincmsg", "zero-stamp", &[ts(0), ptp.clone()].concat());
    // A 5-byte payload pads to 8; Linux's SOL_SOCKET/SO_TIMESTAMP numbers.
    write(
        "wincmsg",
        "odd-unknown-linux-numbers",
        &[
            entry(w::SOL_SOCKET, 0x1234, &[9; 5]),
            entry(1, 29, &5u64.to_le_bytes()),
            ptp.clone(),
        ]
        .concat(),
    );
    let mut past_end = ts(7);
    past_end[..8].copy_from_slice(&4096u64.to_le_bytes());
    write("wincmsg", "len-past-end", &[ptp.clone(), past_end].concat());
    let mut short = ts(7);
    short[..8].copy_from_slice(&3u64.to_le_bytes());
    write("wincmsg", "len-shorter-than-header", &short);
    write("wincmsg", "truncated", &stamp[..stamp.len() - 4]);
    write("wincmsg", "timestamp-id", &w::timestamp_id(0x0102_0304));
}

/// `aes67_fuzz::bass_config` op streams: op, id selector, then the value.
fn bass_config_seeds() {
    // Set PT (idx 0) to 97, JITTER (idx 2) to 20, INTERFACE (idx 1) to "eth0",
    // read every option, read the stats pointer.
    let mut v = vec![0, 0, 0, 97, 0, 2, 1, 0, 20, 2, 1, 4, b'e', b't', b'h', b'0'];
    for i in 0..19u8 {
        v.extend_from_slice(&[1, i]);
    }
    v.extend_from_slice(&[3, 4, 0x43, 1]);
    write("bass_config", "set-get-all", &v);
    // Out-of-range values and raw ids (0x80: id = 0x20000 + next byte).
    let v = [
        0x80, 0x19, 0, 1, 0x80, 0x02, 2, 0, 0, 0x13, 0x88, 0, 0x1F, 1, 5, 0x42, 1, 0, 0xC2, 0x01,
        0x00,
    ];
    write("bass_config", "out-of-range", &v);
    let mut v = vec![2, 1, 255];
    v.extend(std::iter::repeat_n(b'x', 255));
    v.extend_from_slice(&[2, 1, 3, b'a', 0, b'b', 0x42, 1, 0]);
    write("bass_config", "long-and-nul-iface", &v);
}

/// SAP datagrams (`aes67::sap::codec::build`) wrapped in the `sap` target's
/// op stream (see `aes67_fuzz::sap`): raw datagram ops (0), built ops (1),
/// time steps (2).
fn sap_seeds() {
    use aes67::sap::codec::{MessageType, build};
    let raw = |v: &mut Vec<u8>, b: &[u8]| {
        v.push(0);
        v.extend_from_slice(&(b.len() as u16).to_be_bytes());
        v.extend_from_slice(b);
    };
    let sdp = "v=0\r\no=- 1311738121 1311738121 IN IP4 192.168.1.1\r\ns=Stage left\r\n\
        c=IN IP4 239.69.1.1/32\r\nt=0 0\r\nm=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L24/48000/8\r\n\
        a=ptime:0.125\r\na=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\n\
        a=mediaclk:direct=142410716\r\na=recvonly\r\n";
    let origin = "192.168.1.1".parse().unwrap();
    let ann = build(MessageType::Announce, 0x4242, origin, sdp).unwrap();
    let del = build(MessageType::Delete, 0x4242, origin, sdp).unwrap();
    // Announce, refresh after 30 s, delete.
    let mut v = Vec::new();
    raw(&mut v, &ann);
    v.extend_from_slice(&[2, 1, 44]); // +30 s
    raw(&mut v, &ann);
    raw(&mut v, &del);
    write("sap", "announce-refresh-delete", &v);
    // PipeWire style: no payload type, hash 0, LF endings; then a timeout.
    let mut pw = vec![0x20, 0, 0, 0, 10, 0, 0, 9];
    pw.extend_from_slice(
        b"v=0\no=root 0 0 IN IP4 10.0.0.9\ns=pwpeer AES67 tx\nc=IN IP4 239.69.1.10/32\nt=0 0\n\
          m=audio 5004 RTP/AVP 127\na=recvonly\na=rtpmap:127 L24/48000/2\na=ptime:1\n\
          a=ts-refclk:ptp=traceable\na=mediaclk:direct=0\na=tool:PipeWire 1.4.2\na=type:broadcast\n",
    );
    let mut v = Vec::new();
    raw(&mut v, &pw);
    v.extend_from_slice(&[2, 0x40, 0]); // +1638 s
    write("sap", "pipewire-timeout", &v);
    // Built ops: announce, change, delete across origins and hashes.
    write(
        "sap",
        "built-ops",
        &[1, 0, 1, 0, 1, 0, 2, 5, 1, 1, 1, 0, 1, 2, 3, 7, 2, 0, 9],
    );
    // IPv6 origin, auth data and an encrypted packet.
    let mut v = Vec::new();
    raw(
        &mut v,
        &build(MessageType::Announce, 7, "fe80::1".parse().unwrap(), sdp).unwrap(),
    );
    let mut a = vec![0x20, 1, 0, 8, 10, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    a.extend_from_slice(sdp.as_bytes());
    raw(&mut v, &a);
    raw(&mut v, &[0x22, 0, 0, 1, 10, 0, 0, 1, b'x']);
    write("sap", "ipv6-auth-encrypted", &v);
}

fn main() {
    rtp_seeds();
    jitter_seeds();
    ptp_msg_seeds();
    ptp_port_seeds();
    text_seeds();
    cmsg_seeds();
    wincmsg_seeds();
    bass_config_seeds();
    sap_seeds();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (t, _) in aes67_fuzz::TARGETS {
        std::fs::create_dir_all(root.join("regressions").join(t)).unwrap();
    }
    println!("seeds written under {}", root.join("corpus").display());
}
