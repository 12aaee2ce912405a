//! RTP (RFC 3550) header parsing and AES67 linear PCM payloads (L16, L24).
//!
//! Sans-IO: bytes in, a borrowed [`RtpPacket`] out. Malformed input returns an
//! [`RtpError`]; nothing here panics on any input (property-tested).

use thiserror::Error;

/// Why a datagram is not an acceptable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header (RFC 3550 §5.1), or than the
    /// header plus CSRC list / extension it announces.
    #[error("packet too short: {0} bytes")]
    TooShort(usize),
    /// Version field is not 2 (RFC 3550 §5.1).
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// Padding count is zero or larger than the payload (RFC 3550 §5.1).
    #[error("invalid padding length {0}")]
    BadPadding(u8),
}

/// A parsed RTP packet borrowing the datagram (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp, in media clock units (samples per channel).
    pub timestamp: u32,
    /// Synchronisation source identifier (SSRC).
    pub ssrc: u32,
    /// Number of CSRC entries that preceded the payload.
    pub csrc_count: u8,
    /// Whether a header extension (RFC 3550 §5.3.1) was present and skipped.
    pub extension: bool,
    /// Payload bytes, with CSRCs, extension and padding removed.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP datagram.
    ///
    /// Errors: [`RtpError::TooShort`], [`RtpError::BadVersion`],
    /// [`RtpError::BadPadding`]. Source: RFC 3550 §5.1, §5.3.1.
    pub fn parse(b: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::TooShort(b.len()));
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = b[0] & 0x20 != 0;
        let extension = b[0] & 0x10 != 0;
        let csrc_count = b[0] & 0x0f;
        let mut off = 12 + 4 * csrc_count as usize;
        if b.len() < off {
            return Err(RtpError::TooShort(b.len()));
        }
        if extension {
            if b.len() < off + 4 {
                return Err(RtpError::TooShort(b.len()));
            }
            let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize;
            off += 4 + 4 * words;
            if b.len() < off {
                return Err(RtpError::TooShort(b.len()));
            }
        }
        let mut end = b.len();
        if padding {
            let pad = b[end - 1];
            if pad == 0 || pad as usize > end - off {
                return Err(RtpError::BadPadding(pad));
            }
            end -= pad as usize;
        }
        Ok(RtpPacket {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7f,
            sequence_number: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            csrc_count,
            extension,
            payload: &b[off..end],
        })
    }
}

/// Writes a 12-byte RTP header (no CSRC, no extension) into `out[..12]`.
///
/// Panics if `out` is shorter than 12 bytes. Source: RFC 3550 §5.1.
pub fn write_header(out: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    out[0] = 0x80;
    out[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Decodes big-endian 24-bit samples (L24, RFC 3190 §4) into `out`, sign
/// extended to i32 in the 24-bit range. Returns samples written:
/// `min(payload.len() / 3, out.len())`.
pub fn decode_l24(payload: &[u8], out: &mut [i32]) -> usize {
    let n = (payload.len() / 3).min(out.len());
    for (o, c) in out[..n].iter_mut().zip(payload.chunks_exact(3)) {
        *o = ((c[0] as i32) << 24 | (c[1] as i32) << 16 | (c[2] as i32) << 8) >> 8;
    }
    n
}

/// Decodes big-endian 16-bit samples (L16, RFC 3551 §4.5.11) into `out` as
/// i32 in the 16-bit range. Returns samples written.
pub fn decode_l16(payload: &[u8], out: &mut [i32]) -> usize {
    let n = (payload.len() / 2).min(out.len());
    for (o, c) in out[..n].iter_mut().zip(payload.chunks_exact(2)) {
        *o = i16::from_be_bytes([c[0], c[1]]) as i32;
    }
    n
}

/// Encodes i32 samples in the 24-bit range as big-endian L24 into `out`.
/// Returns bytes written (`3 × min(samples.len(), out.len() / 3)`).
pub fn encode_l24(samples: &[i32], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len() / 3);
    for (s, c) in samples[..n].iter().zip(out.chunks_exact_mut(3)) {
        let v = s.to_be_bytes();
        c.copy_from_slice(&v[1..4]);
    }
    n * 3
}

/// Encodes i32 samples in the 16-bit range as big-endian L16 into `out`.
/// Returns bytes written.
pub fn encode_l16(samples: &[i32], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len() / 2);
    for (s, c) in samples[..n].iter().zip(out.chunks_exact_mut(2)) {
        c.copy_from_slice(&(*s as i16).to_be_bytes());
    }
    n * 2
}

/// Extends a wrapping counter (16-bit sequence number or 32-bit RTP
/// timestamp) to 64 bits relative to the last extended value.
///
/// `bits` is 16 or 32. The new value is taken as the nearest to `last` modulo
/// 2^bits, so both forward steps and reordering (backward steps of less than
/// half the range) unwrap correctly. Source: RFC 3550 Appendix A.1.
#[derive(Debug, Clone, Copy)]
pub struct Unwrapper {
    bits: u32,
    last: Option<i64>,
}

impl Unwrapper {
    /// An unwrapper for a `bits`-wide counter (16 or 32).
    pub const fn new(bits: u32) -> Unwrapper {
        Unwrapper { bits, last: None }
    }
    /// Extends `v` and remembers it as the new reference when it moves forward.
    pub fn extend(&mut self, v: u32) -> i64 {
        let e = self.peek(v);
        if self.last.is_none_or(|l| e > l) {
            self.last = Some(e);
        }
        e
    }
    /// Extends `v` without updating the reference.
    pub fn peek(&self, v: u32) -> i64 {
        let m = 1i64 << self.bits;
        let v = v as i64 & (m - 1);
        match self.last {
            None => v + m, // start one cycle up so early backward steps stay positive
            Some(l) => {
                let base = l & !(m - 1);
                let mut e = base + v;
                if e - l > m / 2 {
                    e -= m;
                } else if l - e > m / 2 {
                    e += m;
                }
                e
            }
        }
    }
    /// Forgets the reference (after a resynchronisation).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        write_header(&mut v, false, pt, seq, ts, ssrc);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_fields() {
        let b = pkt(96, 0xBEEF, 0xDEADBEEF, 0x01020304, &[1, 2, 3, 4, 5, 6]);
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(
            (p.payload_type, p.sequence_number, p.timestamp, p.ssrc),
            (96, 0xBEEF, 0xDEADBEEF, 0x01020304)
        );
        assert_eq!(p.payload, &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn csrc_extension_and_padding_are_stripped() {
        let mut b = vec![0xB1, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V=2 P=1 X=1 CC=1
        b.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension, 1 word
        b.extend_from_slice(&[0xAA, 0xBB, 0, 2]); // payload AA BB + 2 bytes padding
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.extension);
        assert_eq!(p.csrc_count, 1);
        assert_eq!(p.payload, &[0xAA, 0xBB]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(
            RtpPacket::parse(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion(1)
        );
        let mut b = pkt(96, 1, 1, 1, &[1, 2]);
        b[0] |= 0x20;
        *b.last_mut().unwrap() = 9;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadPadding(9)));
    }

    #[test]
    fn l24_and_l16_round_trip_extremes() {
        let s = [0x7FFFFF, -0x800000, 0, -1, 1, 0x123456];
        let mut b = [0u8; 18];
        assert_eq!(encode_l24(&s, &mut b), 18);
        let mut o = [0i32; 6];
        assert_eq!(decode_l24(&b, &mut o), 6);
        assert_eq!(o, s);
        let s16 = [32767, -32768, 0, -1];
        let mut b = [0u8; 8];
        encode_l16(&s16, &mut b);
        let mut o = [0i32; 4];
        decode_l16(&b, &mut o);
        assert_eq!(o, s16);
    }

    #[test]
    fn unwrapper_handles_wrap_and_reorder() {
        let mut u = Unwrapper::new(16);
        let a = u.extend(65534);
        assert_eq!(u.extend(65535), a + 1);
        assert_eq!(u.extend(1), a + 3);
        assert_eq!(u.extend(0), a + 2); // reordered, behind
        assert_eq!(u.extend(2), a + 4);
        let mut t = Unwrapper::new(32);
        let x = t.extend(u32::MAX - 47);
        assert_eq!(t.extend(0), x + 48);
    }

    proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = RtpPacket::parse(&b) {
                prop_assert!(p.payload.len() <= b.len().saturating_sub(12));
            }
        }

        #[test]
        fn header_round_trip(m in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(),
                             payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = vec![0u8; 12];
            write_header(&mut b, m, pt, seq, ts, ssrc);
            b.extend_from_slice(&payload);
            let p = RtpPacket::parse(&b).unwrap();
            prop_assert_eq!((p.marker, p.payload_type, p.sequence_number, p.timestamp, p.ssrc), (m, pt, seq, ts, ssrc));
            prop_assert_eq!(p.payload, &payload[..]);
        }

        #[test]
        fn l24_round_trip(s in proptest::collection::vec(-0x800000i32..0x800000, 0..64)) {
            let mut b = vec![0u8; s.len() * 3];
            encode_l24(&s, &mut b);
            let mut o = vec![0i32; s.len()];
            decode_l24(&b, &mut o);
            prop_assert_eq!(o, s);
        }

        #[test]
        fn unwrap_is_monotone_for_forward_steps(start in any::<u16>(), steps in proptest::collection::vec(1u32..30000, 1..50)) {
            let mut u = Unwrapper::new(16);
            let mut prev = u.extend(start as u32);
            let mut cur = start as u32;
            for s in steps {
                cur = (cur + s) & 0xffff;
                let e = u.extend(cur);
                prop_assert_eq!(e - prev, s as i64);
                prev = e;
            }
        }
    }
}
