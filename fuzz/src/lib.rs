//! Fuzz harnesses: one pure function per target, shared by the AFL++ binary
//! (`src/bin/TARGET.rs`, built by `ci/fuzz.sh`) and the corpus replay test
//! (`tests/replay.rs`, run by plain `cargo test`). Each takes the fuzzer's
//! bytes and panics only when an invariant is broken; none touches the
//! network or the file system.
//!
//! Targets ([`TARGETS`]): `rtp`, `jitter`, `ptp_msg`, `ptp_port`, `sdp`,
//! `url`, `cmsg`, `wincmsg`, `bass_url`, `bass_config`, `sap`. See
//! docs/fuzzing.md.

use aes67::media::jitter::{Inserted, PlayoutBuffer, PlayoutConfig};
use aes67::media::rtp::{self, RtpPacket};
use aes67::media::stream::{Encoding, StreamConfig};
use aes67::ptp::msg::{
    AnnounceBody, Body, ClockIdentity, ClockQuality, Flags, Header, Message, MessageType,
    PortIdentity,
};
use aes67::ptp::port::{Action, Port, PortConfig, PortState, TxToken};
use aes67::ptp::time::{LocalNs, PtpTimestamp};

/// A harness: the fuzzer's bytes in, a panic on a broken invariant.
pub type Harness = fn(&[u8]);

/// Every target: (name, harness).
pub const TARGETS: &[(&str, Harness)] = &[
    ("rtp", rtp),
    ("jitter", jitter),
    ("ptp_msg", ptp_msg),
    ("ptp_port", ptp_port),
    ("sdp", sdp),
    ("url", url),
    ("cmsg", cmsg),
    ("wincmsg", wincmsg),
    ("bass_url", bass_url),
    ("bass_config", bass_config),
    ("sap", sap),
];

/// A cursor over the fuzzer's bytes; reads past the end give zeros, so every
/// input is a valid operation sequence.
struct Input<'a> {
    b: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.b.split_first() {
            Some((&x, rest)) => {
                self.b = rest;
                x
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.b.len());
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        a
    }
    /// A length byte, then that many bytes.
    fn chunk(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }
}

// ---------------------------------------------------------------- RTP ----

/// RTP parse (RFC 3550) and L16/L24 decode: a parsed packet's payload lies
/// inside the datagram after the header; decode→encode gives the payload
/// bytes back; a header written by `write_header` parses back to its fields.
pub fn rtp(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(data) {
        let hdr = 12 + 4 * p.csrc_count as usize;
        assert!(p.payload.len() + hdr <= data.len(), "payload past datagram");
        assert!(p.payload_type < 128);
        check_pcm_roundtrip(p.payload);
    }
    // The raw bytes as a payload too (any length, odd tails ignored).
    check_pcm_roundtrip(data);
    // Header round trip from the first 11 bytes.
    let mut inp = Input { b: data };
    let (m, pt, seq, ts, ssrc) = (
        inp.u8() & 1 != 0,
        inp.u8() & 0x7f,
        inp.u16(),
        inp.u32(),
        inp.u32(),
    );
    let mut pkt = [0u8; 16];
    rtp::write_header(&mut pkt, m, pt, seq, ts, ssrc);
    let p = RtpPacket::parse(&pkt).expect("write_header output parses");
    assert_eq!(
        (
            p.marker,
            p.payload_type,
            p.sequence_number,
            p.timestamp,
            p.ssrc,
            p.payload.len()
        ),
        (m, pt, seq, ts, ssrc, 4)
    );
}

fn check_pcm_roundtrip(payload: &[u8]) {
    let mut s = vec![0i32; payload.len() / 2 + 1];
    let mut back = vec![0u8; payload.len()];
    let n = rtp::decode_l24(payload, &mut s);
    assert_eq!(n, payload.len() / 3);
    assert!(s[..n].iter().all(|v| (-(1 << 23)..(1 << 23)).contains(v)));
    assert_eq!(rtp::encode_l24(&s[..n], &mut back), 3 * n);
    assert_eq!(back[..3 * n], payload[..3 * n], "L24 round trip");
    let n = rtp::decode_l16(payload, &mut s);
    assert_eq!(n, payload.len() / 2);
    assert!(s[..n].iter().all(|v| (-(1 << 15)..(1 << 15)).contains(v)));
    assert_eq!(rtp::encode_l16(&s[..n], &mut back), 2 * n);
    assert_eq!(back[..2 * n], payload[..2 * n], "L16 round trip");
    // A short output buffer bounds the decode.
    let mut short = [0i32; 3];
    assert_eq!(
        rtp::decode_l24(payload, &mut short),
        (payload.len() / 3).min(3)
    );
}

// ------------------------------------------------------ playout buffer ----

/// The playout buffer as a state machine. The first 5 bytes choose the
/// config (channels 1-8, L16/L24, link offset, capacity); then each op byte:
/// insert raw datagram bytes, insert a well-formed packet (timestamp, SSRC,
/// size and payload type steered by the input), advance the media clock and
/// `release`, `flush`, or `release_until` a point near the read position.
///
/// Invariants: no panic; every callback slice is whole frames; the frames
/// delivered equal each call's return value and add up to
/// `stats().frames_out`; samples stay in the encoding's range; counters never
/// decrease; inserts are accounted (packets + drops = inserts).
pub fn jitter(data: &[u8]) {
    let mut inp = Input { b: data };
    let c = inp.u8();
    let channels = 1 + (c & 7) as usize;
    let encoding = if c & 8 != 0 {
        Encoding::L16
    } else {
        Encoding::L24
    };
    let link = u32::from(inp.u16() % 4096);
    let capacity = 64usize << (inp.u8() % 8);
    let cfg = PlayoutConfig {
        channels,
        encoding,
        payload_type: 96,
        link_offset_frames: link,
        capacity_frames: capacity,
    };
    let mut b = PlayoutBuffer::new(cfg);
    let cap = b.config().capacity_frames;
    assert!(cap.is_power_of_two() && cap >= capacity && cap >= 2 * link as usize);
    let bps = encoding.bytes_per_sample();
    let range = if encoding == Encoding::L16 {
        1i32 << 15
    } else {
        1i32 << 23
    };
    let mut clock: u32 = inp.u32();
    let mut ts: u32 = clock;
    let mut seq: u16 = 0;
    let mut out_total = 0u64;
    let mut inserts = 0u64;
    let mut prev = b.stats();
    let mut pkt = Vec::with_capacity(12 + 1500);
    // Work budget: release costs are linear in the frames asked for, and
    // `release_until` may ask for frames past the newest packet (concealed
    // as silence), so an input stops after 2^16 frames out: 8 laps of the
    // largest ring (8192 frames), and no hang reports for a long but finite
    // release (2^20 let inputs of a few ops take 5 ms, slowing the fuzzer
    // from ~9,000 to ~400 exec/s).
    while !inp.is_empty() && out_total < 1 << 16 {
        let op = inp.u8();
        let mut delivered = 0usize;
        let mut sink = |s: &[i32]| {
            assert!(
                !s.is_empty() && s.len().is_multiple_of(channels),
                "partial frame"
            );
            assert!(
                s.iter().all(|v| (-range..range).contains(v)),
                "sample out of range"
            );
            delivered += s.len() / channels;
        };
        let released = match op % 6 {
            0 => {
                inserts += 1;
                let _ = b.insert(inp.chunk());
                None
            }
            1 | 2 => {
                // A well-formed packet near the stream: ts step, size, SSRC.
                let step = inp.u16() as i16 as i32;
                let frames = 1 + (inp.u8() % 96) as usize;
                let flags = inp.u8();
                ts = ts.wrapping_add(step as u32);
                seq = seq.wrapping_add(1);
                let ssrc = if flags & 0x80 != 0 { 0xBEEF } else { 0xCAFE };
                let pt = if flags & 0x40 != 0 { 97 } else { 96 };
                let len = frames * channels * bps - usize::from(flags & 0x20 != 0);
                pkt.clear();
                pkt.resize(12 + len, 0);
                rtp::write_header(&mut pkt, false, pt, seq, ts, ssrc);
                for (i, x) in pkt[12..].iter_mut().enumerate() {
                    *x = (i as u8).wrapping_mul(31).wrapping_add(flags);
                }
                inserts += 1;
                if let Inserted::Stored { frames: f, .. } | Inserted::Resync { frames: f, .. } =
                    b.insert(&pkt)
                {
                    assert_eq!(f as usize, frames);
                    assert_eq!(b.packet_frames() as usize, frames);
                }
                if op % 6 == 2 {
                    ts = ts.wrapping_add(frames as u32);
                }
                None
            }
            3 => {
                clock = clock.wrapping_add(u32::from(inp.u16()));
                Some(b.release(clock, &mut sink))
            }
            4 => {
                let n = b.flush(&mut sink);
                assert_eq!(b.fill_frames(), 0, "frames left after flush");
                Some(n)
            }
            _ => {
                // Around the read point, within the buffer window.
                let d = i64::from(inp.u16() as i16) % (cap as i64 + 1);
                b.read_ts().map(|r| b.release_until(r + d, &mut sink))
            }
        };
        if let Some(n) = released {
            assert_eq!(n, delivered as u64, "returned frames != delivered frames");
            out_total += n;
        }
        let s = b.stats();
        assert_eq!(s.frames_out, out_total, "frames_out accounting");
        assert_eq!(
            s.packets
                + s.late
                + s.duplicates
                + s.malformed
                + s.wrong_pt
                + s.format_mismatch
                + s.jump_unconfirmed,
            inserts,
            "every insert is stored or dropped once"
        );
        for (a, z) in [
            (prev.packets, s.packets),
            (prev.lost, s.lost),
            (prev.concealed_frames, s.concealed_frames),
            (prev.late, s.late),
            (prev.reordered, s.reordered),
            (prev.duplicates, s.duplicates),
            (prev.malformed, s.malformed),
            (prev.wrong_pt, s.wrong_pt),
            (prev.ssrc_changes, s.ssrc_changes),
            (prev.ts_jumps, s.ts_jumps),
        ] {
            assert!(z >= a, "counter went down");
        }
        assert!(s.concealed_frames <= s.frames_out);
        prev = s;
    }
}

// ---------------------------------------------------------------- PTP ----

fn norm_len(mut m: Message) -> Message {
    m.header.message_length = 0;
    m
}

/// PTP message parse (IEEE 1588-2019 §13), and parse→serialize→parse: a
/// parsed message serializes to bytes that parse back to the same message
/// (messageLength aside), and serialize again to the same bytes.
pub fn ptp_msg(data: &[u8]) {
    let _ = aes67::ptp::msg::parse_header(data);
    let Ok(m) = Message::parse(data) else { return };
    let _ = m.header.correction_ns();
    let _ = m.header.message_type.is_event();
    let bytes = m.to_bytes();
    let m2 =
        Message::parse(&bytes).unwrap_or_else(|e| panic!("serialized {m:?} does not parse: {e}"));
    assert_eq!(m2.header.message_length as usize, bytes.len());
    assert_eq!(
        norm_len(m2.clone()),
        norm_len(m),
        "parse→serialize→parse changed the message"
    );
    assert_eq!(m2.to_bytes(), bytes, "serialize is not stable");
}

const OUR_ID: ClockIdentity = ClockIdentity([0x00, 0x1D, 0xC1, 0xFF, 0xFE, 0x00, 0x00, 0x01]);

fn master_port(k: u8) -> PortIdentity {
    PortIdentity {
        clock_identity: ClockIdentity([0x00, 0x1D, 0xC1, 0xFF, 0xFE, 0xAA, 0x00, k]),
        port_number: 1,
    }
}

/// The PTP port and its servo fed message sequences with timestamps. The
/// first byte chooses the role (default, slave-only, master-only), the
/// servo and the one-sided receive-latency mode; then each op byte: advance
/// the virtual clock, deliver raw bytes as an event or general message,
/// deliver a well-formed Announce / Sync / Follow_Up / Delay_Resp /
/// Delay_Req from one of three masters (sequence
/// ids and timestamps steered by the input, near the virtual `now`), run
/// the timers, or report / fail a pending TX timestamp.
///
/// Invariants: no panic; every message the port sends parses and carries
/// our identity and domain; `status()` is consistent; `now` never moves
/// backwards (the harness's own rule).
pub fn ptp_port(data: &[u8]) {
    ptp_port_run(data);
}

/// [`ptp_port`], returning the port's final state and whether it has a
/// clock map (for the seed corpus's own test: the session seeds must reach
/// SLAVE, so fuzzing starts from a synchronised port).
pub fn ptp_port_run(data: &[u8]) -> (PortState, bool) {
    let mut inp = Input { b: data };
    let c = inp.u8();
    let mut cfg = PortConfig::new(OUR_ID);
    cfg.slave_only = c & 1 != 0;
    cfg.master_only = c & 3 == 2;
    if c & 4 != 0 {
        cfg.servo.kind = aes67::ptp::servo::ServoKind::Pi;
    }
    cfg.one_sided_rx = c & 8 != 0;
    cfg.one_way_after = u32::from(c >> 4);
    let mut now: i64 = 1_000_000_000;
    let mut port = Port::new(cfg, LocalNs::from_ns(now));
    let mut tokens: Vec<TxToken> = Vec::new();
    let mut seqs = [0u16; 3];
    // PTP time of the masters relative to our local clock (ns), per master.
    let mut offs = [37_000_000_000i128, -5_000_000, 123_456_789];
    // sequenceId of the port's last Delay_Req (a Delay_Resp answers it).
    let dreq_seq = std::cell::Cell::new(0u16);
    let handle = |acts: Vec<Action>, tokens: &mut Vec<TxToken>, now: i64| {
        for a in acts {
            match a {
                Action::SendEvent { data, token } => {
                    let m = check_sent(&data);
                    if m.header.message_type == MessageType::DelayReq {
                        dreq_seq.set(m.header.sequence_id);
                    }
                    if tokens.len() < 64 {
                        tokens.push(token);
                    }
                }
                Action::SendGeneral { data } => {
                    check_sent(&data);
                }
                Action::PublishClock { map, .. } => {
                    let _ = map.to_ptp(LocalNs::from_ns(now));
                }
            }
        }
    };
    while !inp.is_empty() {
        let op = inp.u8();
        match op % 8 {
            0 => {
                // Advance: up to ~16.7 s in µs steps.
                let dt = (u32::from(inp.u16()) << 8 | u32::from(inp.u8())) as i64 * 1000;
                now += dt;
            }
            1 => {
                let rx = now - i64::from(inp.u8()) * 1000;
                let acts =
                    port.handle_event(inp.chunk(), LocalNs::from_ns(rx), LocalNs::from_ns(now));
                handle(acts, &mut tokens, now);
            }
            2 => {
                let acts = port.handle_general(inp.chunk(), LocalNs::from_ns(now));
                handle(acts, &mut tokens, now);
            }
            3 | 4 => {
                // A well-formed message from master k.
                let k = (inp.u8() % 3) as usize;
                let kind = inp.u8();
                let jitter = i128::from(inp.u16() as i16) * 100;
                if op & 0x80 != 0 {
                    offs[k] += i128::from(inp.u8() as i8) * 1_000;
                }
                if inp.u8() & 1 == 0 {
                    seqs[k] = seqs[k].wrapping_add(1);
                }
                let t = PtpTimestamp::from_nanos(i128::from(now) + offs[k] + jitter);
                // Delay_Resp answers the port's last Delay_Req unless told otherwise.
                let seq = if kind & 7 == 4 && kind & 0x20 == 0 {
                    dreq_seq.get()
                } else {
                    seqs[k]
                };
                let m = build_msg(&mut inp, k, kind, seq, t);
                let bytes = m.to_bytes();
                let acts = if m.header.message_type.is_event() {
                    let rx = now - i64::from(inp.u8()) * 1000;
                    port.handle_event(&bytes, LocalNs::from_ns(rx), LocalNs::from_ns(now))
                } else {
                    port.handle_general(&bytes, LocalNs::from_ns(now))
                };
                handle(acts, &mut tokens, now);
            }
            5 => {
                // Run the timers, jumping to the next deadline when asked.
                if op & 0x80 != 0
                    && let Some(t) = port.poll_timeout()
                {
                    now = now.max(t.as_ns());
                }
                let acts = port.handle_timeout(LocalNs::from_ns(now));
                handle(acts, &mut tokens, now);
            }
            6 => {
                let (i, ago) = (inp.u8() as usize, i64::from(inp.u8()));
                if !tokens.is_empty() {
                    let tok = tokens.remove(tokens.len() - 1 - i % tokens.len()); // 0 = newest
                    let ts = now - ago * 1000;
                    let acts = port.handle_tx_timestamp(tok, LocalNs::from_ns(ts));
                    handle(acts, &mut tokens, now);
                }
            }
            _ => {
                let i = inp.u8() as usize;
                if !tokens.is_empty() {
                    let tok = tokens.remove(tokens.len() - 1 - i % tokens.len()); // 0 = newest
                    let acts = port.handle_tx_failed(tok, LocalNs::from_ns(now));
                    handle(acts, &mut tokens, now);
                }
            }
        }
        let st = port.state();
        if let Some(map) = port.clock_map() {
            let _ = map.to_ptp(LocalNs::from_ns(now));
        }
        assert!(
            !(port_cfg_master_only(c) && matches!(st, PortState::Slave | PortState::Uncalibrated)),
            "master-only port became slave"
        );
    }
    // The status snapshot (strings, statistics) once per input: cheap enough.
    let status = port.status(LocalNs::from_ns(now));
    let _ = (port.freq(), port.servo(), port.state().name());
    assert_eq!(status.state, port.state());
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *DEBUG.get_or_init(|| std::env::var_os("AES67_FUZZ_DEBUG").is_some()) {
        eprintln!("{status:#?}");
    }
    (port.state(), port.clock_map().is_some())
}

fn port_cfg_master_only(c: u8) -> bool {
    c & 3 == 2
}

/// Every message a port sends must parse, be ours and be in our domain.
fn check_sent(data: &[u8]) -> Message {
    let m = Message::parse(data).unwrap_or_else(|e| panic!("port sent unparseable bytes: {e}"));
    assert_eq!(
        m.header.source_port.clock_identity, OUR_ID,
        "sent with a foreign identity"
    );
    assert_eq!(m.header.domain, 0);
    m
}

fn build_msg(inp: &mut Input<'_>, k: usize, kind: u8, seq: u16, t: PtpTimestamp) -> Message {
    let src = master_port(k as u8);
    let (ty, body) = match kind & 7 {
        0 | 1 | 6 => (
            MessageType::Announce,
            Body::Announce(AnnounceBody {
                origin_timestamp: t,
                current_utc_offset: 37,
                gm_priority1: if kind & 0x40 != 0 { inp.u8() } else { 128 },
                gm_clock_quality: ClockQuality {
                    clock_class: if kind & 0x80 != 0 { inp.u8() } else { 6 },
                    clock_accuracy: 0x21,
                    offset_scaled_log_variance: 0x4E5D,
                },
                gm_priority2: 128,
                gm_identity: src.clock_identity,
                steps_removed: u16::from(kind >> 6),
                time_source: 0x20,
            }),
        ),
        2 | 7 => (
            MessageType::Sync,
            Body::Sync {
                origin_timestamp: t,
            },
        ),
        3 => (
            MessageType::FollowUp,
            Body::FollowUp {
                precise_origin_timestamp: t,
            },
        ),
        4 => (
            MessageType::DelayResp,
            Body::DelayResp {
                receive_timestamp: t,
                requesting_port: PortIdentity {
                    clock_identity: OUR_ID,
                    port_number: if kind & 0x80 != 0 { 2 } else { 1 },
                },
            },
        ),
        _ => (
            MessageType::DelayReq,
            Body::DelayReq {
                origin_timestamp: t,
            },
        ),
    };
    let mut header = Header::new(ty, 0, src, seq);
    if kind & 0x08 != 0 {
        header.flags = Flags(Flags::TWO_STEP | Flags::PTP_TIMESCALE | Flags::UTC_OFFSET_VALID);
    } else {
        header.flags = Flags(Flags::PTP_TIMESCALE);
    }
    if kind & 0x10 != 0 {
        header.correction = i64::from(inp.u16() as i16) << 16;
    }
    header.log_message_interval = match ty {
        MessageType::Announce => 1,
        MessageType::Sync | MessageType::FollowUp => -3,
        MessageType::DelayResp => (inp.u8() % 8) as i8 - 4,
        _ => 0x7F,
    };
    Message { header, body }
}

// ------------------------------------------------------------ SDP, URL ----

/// A config must describe itself: `to_sdp` parses back (RFC 4566) to the
/// same stream parameters.
fn check_sdp_roundtrip(c: &StreamConfig) {
    let origin = "192.0.2.1".parse().expect("literal");
    let text = c.to_sdp(origin, 1);
    let back = StreamConfig::from_sdp(&text)
        .unwrap_or_else(|e| panic!("to_sdp output does not parse ({e}):\n{text}"));
    assert_eq!(
        (
            back.dest,
            back.port,
            back.payload_type,
            back.channels,
            back.sample_rate,
            back.encoding
        ),
        (
            c.dest,
            c.port,
            c.payload_type,
            c.channels,
            c.sample_rate,
            c.encoding
        ),
        "to_sdp→from_sdp changed the stream:\n{text}"
    );
    assert_eq!(
        back.mediaclk_offset, c.mediaclk_offset,
        "mediaclk lost:\n{text}"
    );
}

fn check_config(c: &StreamConfig) {
    assert!((1..=64).contains(&c.channels), "channels {}", c.channels);
    assert!(matches!(c.sample_rate, 44_100 | 48_000 | 96_000));
    assert!(c.payload_type < 128);
    let _ = c.frame_bytes();
}

/// SDP (RFC 4566, AES67-2018 §8) → `StreamConfig::from_sdp`; an accepted
/// config is in range and round-trips through `to_sdp`.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = StreamConfig::from_sdp(&text) {
        check_config(&c);
        check_sdp_roundtrip(&c);
    }
}

/// `aes67://` URLs → `StreamConfig::from_url`; an accepted config is in
/// range and round-trips through `to_sdp`.
pub fn url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = StreamConfig::from_url(&text) {
        check_config(&c);
        check_sdp_roundtrip(&c);
    }
}

// ---------------------------------------------------------------- cmsg ----

/// Socket control messages (`aes67::sys::cmsg`, Linux): iteration stays in
/// the buffer; the convenience parsers agree with each other.
#[cfg(target_os = "linux")]
pub fn cmsg(data: &[u8]) {
    use aes67::sys::cmsg as c;
    let mut total = 0usize;
    for m in c::iter(data).take(4096) {
        total += m.data.len();
        let _ = c::parse_timestamping(m.data);
    }
    assert!(total <= data.len(), "cmsg data exceeds the buffer");
    let ts = c::timestamping(data);
    assert_eq!(c::rx_timestamp(data), ts.and_then(|t| t.rx_timestamp()));
    let id = c::tx_opt_id(data);
    for hw in [false, true] {
        assert_eq!(c::parse(data, hw), (ts.and_then(|t| t.pick(hw)), id));
    }
}

/// Socket control messages are Linux's; elsewhere the target does nothing.
#[cfg(not(target_os = "linux"))]
pub fn cmsg(_data: &[u8]) {}

// ------------------------------------------------------------- wincmsg ----

/// Winsock control messages (`aes67::sys::wincmsg`, the Windows backend's
/// `WSARecvMsg` parser; pure, so it runs on every OS): `parse` agrees with an
/// independent reference walk (u128 offsets, no early exits) on the
/// timestamp, the packet info and the malformed flag; a zero stamp is never
/// reported; what it found, written back with `write_entry`, parses to the
/// same values and is not malformed; the `SO_TIMESTAMP_ID` buffer of an id
/// taken from the input is 24 bytes that the parser skips.
pub fn wincmsg(data: &[u8]) {
    use aes67::sys::wincmsg as w;
    let got = w::parse(data);
    assert_ne!(got.so_timestamp, Some(0), "a zero stamp is no stamp");
    assert_eq!(got, wincmsg_reference(data), "parse != reference walk");
    // Re-encode what was found (in either order) and parse it back.
    let mut buf = [0u8; 2 * 24];
    for ts_first in [false, true] {
        let mut n = 0;
        let mut put = |level, kind, d: &[u8]| {
            n += w::write_entry(&mut buf[n..], level, kind, d).expect("48 bytes hold two entries");
        };
        let ts = got.so_timestamp.map(u64::to_le_bytes);
        let pi = got.pktinfo.map(|(a, i)| {
            let mut d = [0u8; 8];
            d[..4].copy_from_slice(&a.octets());
            d[4..].copy_from_slice(&i.to_le_bytes());
            d
        });
        if ts_first && let Some(t) = ts {
            put(w::SOL_SOCKET, w::SO_TIMESTAMP, &t);
        }
        if let Some(p) = pi {
            put(w::IPPROTO_IP, w::IP_PKTINFO, &p);
        }
        if !ts_first && let Some(t) = ts {
            put(w::SOL_SOCKET, w::SO_TIMESTAMP, &t);
        }
        let back = w::parse(&buf[..n]);
        assert_eq!(
            (back.so_timestamp, back.pktinfo, back.malformed),
            (got.so_timestamp, got.pktinfo, false),
            "re-encoded entries do not parse back"
        );
    }
    let id = Input { b: data }.u32();
    let tid = w::timestamp_id(id);
    assert_eq!(tid.len(), w::TIMESTAMP_ID_SPACE);
    assert_eq!(u64::from_le_bytes(tid[..8].try_into().unwrap()), 20);
    assert_eq!(u32::from_le_bytes(tid[16..20].try_into().unwrap()), id);
    assert_eq!(w::parse(&tid), w::WinCmsgs::default());
}

/// The reference walk for [`wincmsg`], written apart from the parser:
/// offsets in u128 (no overflow possible), every header read field by field.
fn wincmsg_reference(b: &[u8]) -> aes67::sys::wincmsg::WinCmsgs {
    let rd = |at: u128, n: usize| -> Option<&[u8]> {
        let at = usize::try_from(at).ok()?;
        b.get(at..at.checked_add(n)?)
    };
    let mut out = aes67::sys::wincmsg::WinCmsgs::default();
    let mut off: u128 = 0;
    while let Some(h) = rd(off, 16) {
        let len = u128::from(u64::from_le_bytes(h[..8].try_into().unwrap()));
        let level = i32::from_le_bytes(h[8..12].try_into().unwrap());
        let kind = i32::from_le_bytes(h[12..16].try_into().unwrap());
        if len < 16 || off + len > b.len() as u128 {
            out.malformed = true;
            break;
        }
        let body = rd(off + 16, (len - 16) as usize).unwrap();
        if body.len() >= 8 {
            if (level, kind) == (0xffff, 0x300A) {
                let t = u64::from_le_bytes(body[..8].try_into().unwrap());
                out.so_timestamp = if t == 0 { None } else { Some(t) };
            } else if (level, kind) == (0, 19) {
                let a = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                out.pktinfo = Some((a, u32::from_le_bytes(body[4..8].try_into().unwrap())));
            }
        }
        off = (off + len).div_ceil(8) * 8;
    }
    out
}

// ---------------------------------------------------------------- BASS ----

/// The BASS add-on's URL entry point: `is_aes67_url` and `resolve_config`
/// (URL → engine config, `fill=`, defaults). `sdp=` URLs read a file and are
/// skipped (the SDP text itself is the `sdp` target).
pub fn bass_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = bass_aes67::stream::is_aes67_url(&text);
    let _ = bass_aes67::stats::parse_port_identity(&text);
    // The same shape check resolve_config makes first, so this harness's own
    // `sdp=` probe never runs a URL parser on an input the add-on refuses.
    if aes67::media::stream::check_url_shape(&text).is_ok()
        && let Ok(u) = url::Url::parse(text.trim())
        && u.query_pairs().any(|(k, _)| k == "sdp")
    {
        return;
    }
    let defaults = bass_aes67::config::StreamDefaults {
        payload_type: 97,
        iface: Some("lo".into()),
        jitter_ms: 20,
    };
    if let Ok((c, _fill)) = bass_aes67::stream::resolve_config(&text, &defaults) {
        check_config(&c);
    }
}

/// The BASS add-on's config options as a sequence of `BASS_SetConfig` /
/// `BASS_GetConfig` / `BASS_SetConfigPtr` / `BASS_GetConfigPtr` calls
/// (`bass_aes67::config`). Invariants: an accepted DWORD reads back (PTP
/// ENABLED as 0/1); rejected ones leave the value unchanged; an accepted
/// INTERFACE string is the stream default (up to its first NUL).
pub fn bass_config(data: &[u8]) {
    use bass_aes67::config as c;
    c::reset_defaults();
    c::set_str(c::INTERFACE, None);
    let mut inp = Input { b: data };
    while !inp.is_empty() {
        let op = inp.u8();
        let id = if op & 0x80 != 0 {
            0x20000 + u32::from(inp.u8() % 0x20)
        } else {
            c::ALL_IDS[inp.u8() as usize % c::ALL_IDS.len()]
        };
        match op % 4 {
            0 => {
                let v = match inp.u8() % 4 {
                    0 => u32::from(inp.u8()),
                    1 => u32::from(inp.u16()),
                    _ => inp.u32(),
                };
                let before = c::get_dword(id);
                let ok = c::set_dword(id, v);
                let after = c::get_dword(id);
                if ok {
                    let want = if id == c::PTP_ENABLED {
                        u32::from(v != 0)
                    } else {
                        v
                    };
                    assert_eq!(
                        after,
                        Some(want),
                        "option {id:#x} set to {v} reads {after:?}"
                    );
                } else if before.is_some() && !is_live_stat(id) {
                    assert_eq!(after, before, "rejected set of {id:#x} changed it");
                }
            }
            1 => {
                let _ = c::get_dword(id);
            }
            2 => {
                let t = String::from_utf8_lossy(inp.chunk()).into_owned();
                let none = t.is_empty() && op & 0x40 != 0;
                let ok = c::set_str(id, if none { None } else { Some(&t) });
                // Any write to SAP_SESSIONS is accepted: it stops the SAP listener.
                if ok && id != c::SAP_SESSIONS {
                    assert_eq!(id, c::INTERFACE);
                    let want = t.split('\0').next().unwrap_or("");
                    let got = c::stream_defaults().iface;
                    assert_eq!(got.as_deref().unwrap_or(""), want, "INTERFACE readback");
                }
            }
            // SAP_SESSIONS starts a network listener: not in a fuzz harness.
            _ if id == c::SAP_SESSIONS => {}
            _ => {
                let _ = c::get_ptr(id, op & 0x40 != 0);
            }
        }
        let d = c::stream_defaults();
        assert!(d.payload_type <= 127 && (1..=1000).contains(&d.jitter_ms));
        let s = c::clock_settings();
        assert!(s.mode == c::CLOCK_PTP || s.mode == c::CLOCK_SYSTEM);
    }
    c::reset_defaults();
    c::set_str(c::INTERFACE, None);
}

/// Read-only statistics (they follow the running streams, not the setter).
fn is_live_stat(id: u32) -> bool {
    use bass_aes67::config as c;
    !matches!(
        id,
        c::PT
            | c::JITTER
            | c::PTP_DOMAIN
            | c::PTP_ENABLED
            | c::CLOCK_MODE
            | c::CLOCK_FALLBACK_TIMEOUT
    )
}

// ---------------------------------------------------------------- SAP ----

/// SAP (RFC 2974): `sap::codec::parse` and a small `sap::Directory` driven
/// by ops on a virtual `now`. Op byte (mod 4): 0 a raw datagram (u16 length
/// then bytes) to `handle`; 1 a well-formed announcement or deletion (kind,
/// one of 4 origins, a hash 0-7, one of 6 SDP variants) built by
/// `codec::build`; 2 advance time (u16 × 100 ms) and `expire`; 3 a raw
/// datagram through `parse` only. Invariants: a parsed packet rebuilt by
/// `build` parses back to the same fields; the directory never holds more
/// than its bound, nor an SDP over `MAX_PACKET`; its counters add up; after
/// `expire(now)` nothing is due before `now`.
pub fn sap(data: &[u8]) {
    use aes67::sap::codec::{self, MessageType};
    use aes67::sap::{Directory, DirectoryConfig, MAX_PACKET};
    use aes67::units::{MonoNs, Nanos};
    let check_parse = |b: &[u8]| {
        if let Ok(p) = codec::parse(b) {
            assert!(b.len() <= MAX_PACKET);
            let again = match codec::build(p.kind, p.hash, p.origin, p.sdp) {
                Ok(b) => b,
                // Adding the payload type may push a packet without one over the bound.
                Err(codec::SapError::TooLarge(_)) if !p.has_payload_type => return,
                Err(e) => panic!("a parsed packet does not rebuild: {e}"),
            };
            let q = codec::parse(&again).expect("build output parses");
            assert_eq!(
                (q.kind, q.hash, q.origin, q.sdp),
                (p.kind, p.hash, p.origin, p.sdp)
            );
        }
    };
    let cfg = DirectoryConfig {
        max_sessions: 8,
        min_timeout: Nanos::from_secs(60),
        timeout_intervals: 10,
    };
    let mut d = Directory::new(cfg);
    let mut now = MonoNs::from_ns(1_000_000_000);
    let mut inp = Input { b: data };
    let mut handled = 0u64;
    let origins = ["10.0.0.1", "10.0.0.2", "fe80::1", "0.0.0.0"];
    while !inp.is_empty() {
        match inp.u8() % 4 {
            0 => {
                let n = inp.u16() as usize;
                let b = inp.bytes(n);
                check_parse(b);
                let _ = d.handle(now, b);
                handled += 1;
            }
            1 => {
                let k = inp.u8();
                let kind = if k & 1 == 0 {
                    MessageType::Announce
                } else {
                    MessageType::Delete
                };
                let origin: std::net::IpAddr = origins[(k >> 1) as usize % 4].parse().unwrap();
                let hash = u16::from(inp.u8() % 8);
                let v = inp.u8();
                let sdp = format!(
                    "v=0\r\no=- {} {} IN IP4 10.0.0.1\r\ns=s{}\r\nc=IN IP4 239.69.1.{}/32\r\nt=0 0\r\n\
                     m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 {}/48000/2\r\n",
                    v % 3,
                    (v >> 2) % 2,
                    v % 3,
                    v % 5,
                    if v & 0x80 == 0 { "L24" } else { "L16" }
                );
                let b = codec::build(kind, hash, origin, &sdp).unwrap();
                check_parse(&b);
                d.handle(now, &b).expect("well-formed packet accepted");
                handled += 1;
            }
            2 => {
                now = now.add(Nanos::from_ms(i64::from(inp.u16()) * 100));
                d.expire(now);
                if let Some(e) = d.next_expiry() {
                    assert!(e > now, "expired session left behind");
                }
            }
            _ => {
                let n = inp.u16() as usize;
                check_parse(inp.bytes(n));
            }
        }
        assert!(d.sessions().len() <= 8, "directory over its bound");
        assert!(d.sessions().iter().all(|s| s.sdp.len() <= MAX_PACKET));
        let st = d.stats();
        assert_eq!(st.packets, handled);
        assert_eq!(
            st.packets,
            st.announcements
                + st.deletions
                + st.malformed
                + st.encrypted_or_compressed
                + st.other_payload_type
        );
        assert_eq!(
            d.sessions().len() as u64,
            st.new - st.deleted - st.expired,
            "{st:?}"
        );
    }
}
