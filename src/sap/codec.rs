//! The SAP packet format (RFC 2974 §3):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! | V=1 |A|R|T|E|C|   auth len    |         msg id hash           |
//! |      originating source (32 bits IPv4, A=0; 128 bits IPv6, A=1)   |
//! |      optional authentication data (auth len × 32 bits)            |
//! |      optional payload type, e.g. "application/sdp", then a NUL    |
//! |      payload (the SDP)                                            |
//! ```
//!
//! Parsing borrows from the datagram and never panics: anything else is a
//! typed [`SapError`], which the listener counts and drops. Authentication
//! data is skipped (not verified: RFC 2974 §8 authentication is unused in
//! practice). Encrypted (E) and compressed (C) packets are refused.

use std::net::IpAddr;

use thiserror::Error;

use super::MAX_PACKET;

/// The only payload type understood (RFC 2974 §3: when absent, the payload
/// is SDP).
pub const SDP_MIME: &str = "application/sdp";

/// Longest payload type string accepted, bytes (a MIME type; RFC 6838 §4.2
/// limits each half to 127 characters).
pub const MAX_PAYLOAD_TYPE: usize = 255;

/// Announcement or deletion (the T bit, RFC 2974 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// T = 0: the session exists (again).
    Announce,
    /// T = 1: the session is gone.
    Delete,
}

/// A parsed SAP packet, borrowing the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SapPacket<'a> {
    /// Announcement or deletion.
    pub kind: MessageType,
    /// The message id hash: with `origin`, identifies this version of the
    /// session description. 0 is legal but discouraged (RFC 2974 §3).
    pub hash: u16,
    /// The originating source: the announcer's address, as it wrote it.
    pub origin: IpAddr,
    /// Whether the packet named its payload type (`application/sdp`).
    pub has_payload_type: bool,
    /// The session description (trailing NULs removed).
    pub sdp: &'a str,
}

/// Why a datagram is not a usable SAP packet. Counted and dropped by the
/// listener, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SapError {
    /// Shorter than its own header, origin and authentication data.
    #[error("SAP packet of {0} bytes is shorter than its header")]
    TooShort(usize),
    /// Longer than [`MAX_PACKET`].
    #[error("SAP packet of {0} bytes exceeds the {MAX_PACKET}-byte limit")]
    TooLarge(usize),
    /// Not version 1 (RFC 2974 §3).
    #[error("SAP version {0} (only version 1 is supported)")]
    Version(u8),
    /// The E bit: an encrypted payload (RFC 2974 §7), which we cannot read.
    #[error("encrypted SAP payload (E bit) is not supported")]
    Encrypted,
    /// The C bit: a zlib-compressed payload, refused (it would let a small
    /// datagram expand without bound).
    #[error("compressed SAP payload (C bit) is not supported")]
    Compressed,
    /// A payload type other than `application/sdp`, or one without its NUL.
    #[error("unsupported SAP payload type {0:?}")]
    PayloadType(String),
    /// The payload is not UTF-8 text.
    #[error("SAP payload is not UTF-8")]
    NotUtf8,
    /// No payload.
    #[error("SAP packet has an empty payload")]
    Empty,
}

/// Parses one SAP datagram (RFC 2974 §3).
///
/// The payload type is optional: a payload starting with `v=0` is SDP without
/// one (as PipeWire sends it); otherwise a NUL-terminated type must follow and
/// be `application/sdp` (case-insensitive, parameters after `;` ignored).
///
/// Errors: [`SapError`], one variant per reason.
pub fn parse(buf: &[u8]) -> Result<SapPacket<'_>, SapError> {
    if buf.len() > MAX_PACKET {
        return Err(SapError::TooLarge(buf.len()));
    }
    if buf.len() < 4 {
        return Err(SapError::TooShort(buf.len()));
    }
    let flags = buf[0];
    let version = flags >> 5;
    if version != 1 {
        return Err(SapError::Version(version));
    }
    let ipv6 = flags & 0x10 != 0;
    let kind = if flags & 0x04 != 0 {
        MessageType::Delete
    } else {
        MessageType::Announce
    };
    if flags & 0x02 != 0 {
        return Err(SapError::Encrypted);
    }
    if flags & 0x01 != 0 {
        return Err(SapError::Compressed);
    }
    let auth_len = buf[1] as usize * 4;
    let hash = u16::from_be_bytes([buf[2], buf[3]]);
    let origin_len = if ipv6 { 16 } else { 4 };
    let head = 4 + origin_len + auth_len;
    if buf.len() < head {
        return Err(SapError::TooShort(buf.len()));
    }
    let o = &buf[4..4 + origin_len];
    let origin = if ipv6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(o);
        IpAddr::from(a)
    } else {
        IpAddr::from([o[0], o[1], o[2], o[3]])
    };
    let mut payload = &buf[head..];
    let mut has_payload_type = false;
    if !payload.starts_with(b"v=0") {
        let end = payload
            .iter()
            .take(MAX_PAYLOAD_TYPE + 1)
            .position(|&b| b == 0);
        let Some(end) = end else {
            let shown = &payload[..payload.len().min(32)];
            return Err(SapError::PayloadType(
                String::from_utf8_lossy(shown).into_owned(),
            ));
        };
        let ty = String::from_utf8_lossy(&payload[..end]);
        let mime = ty.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case(SDP_MIME) {
            return Err(SapError::PayloadType(ty.chars().take(64).collect()));
        }
        has_payload_type = true;
        payload = &payload[end + 1..];
    }
    while let [rest @ .., 0] = payload {
        payload = rest;
    }
    if payload.is_empty() {
        return Err(SapError::Empty);
    }
    let sdp = std::str::from_utf8(payload).map_err(|_| SapError::NotUtf8)?;
    Ok(SapPacket {
        kind,
        hash,
        origin,
        has_payload_type,
        sdp,
    })
}

/// Builds a SAP packet (RFC 2974 §3): version 1, no authentication, no
/// encryption or compression, the payload type `application/sdp`, then
/// `sdp`.
///
/// Errors: [`SapError::TooLarge`] when the packet would exceed
/// [`MAX_PACKET`]; [`SapError::Empty`] for an empty `sdp`.
pub fn build(kind: MessageType, hash: u16, origin: IpAddr, sdp: &str) -> Result<Vec<u8>, SapError> {
    if sdp.is_empty() {
        return Err(SapError::Empty);
    }
    let origin_len = if origin.is_ipv6() { 16 } else { 4 };
    let len = 4 + origin_len + SDP_MIME.len() + 1 + sdp.len();
    if len > MAX_PACKET {
        return Err(SapError::TooLarge(len));
    }
    let mut v = Vec::with_capacity(len);
    let mut flags = 1u8 << 5;
    if origin.is_ipv6() {
        flags |= 0x10;
    }
    if kind == MessageType::Delete {
        flags |= 0x04;
    }
    v.push(flags);
    v.push(0); // no authentication data
    v.extend_from_slice(&hash.to_be_bytes());
    match origin {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
    v.extend_from_slice(SDP_MIME.as_bytes());
    v.push(0);
    v.extend_from_slice(sdp.as_bytes());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 0 IN IP4 10.0.0.1\r\ns=x\r\n";

    #[test]
    fn round_trip_v4_and_v6() {
        for origin in ["10.0.0.1", "fe80::1"] {
            let origin: IpAddr = origin.parse().unwrap();
            for kind in [MessageType::Announce, MessageType::Delete] {
                let b = build(kind, 0xBEEF, origin, SDP).unwrap();
                let p = parse(&b).unwrap();
                assert_eq!(
                    p,
                    SapPacket {
                        kind,
                        hash: 0xBEEF,
                        origin,
                        has_payload_type: true,
                        sdp: SDP
                    }
                );
            }
        }
    }

    #[test]
    fn wire_layout_is_rfc_2974() {
        let b = build(
            MessageType::Delete,
            0x1234,
            "192.168.1.2".parse().unwrap(),
            "v=0\n",
        )
        .unwrap();
        assert_eq!(&b[..8], &[0x24, 0, 0x12, 0x34, 192, 168, 1, 2]);
        assert_eq!(&b[8..24], b"application/sdp\0");
        assert_eq!(&b[24..], b"v=0\n");
    }

    #[test]
    fn no_payload_type_auth_data_and_trailing_nul() {
        // PipeWire style: no payload type; 2 words of auth data skipped.
        let mut b = vec![0x20, 2, 0, 0, 10, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        b.extend_from_slice(SDP.as_bytes());
        b.extend_from_slice(&[0, 0]);
        let p = parse(&b).unwrap();
        assert!(!p.has_payload_type);
        assert_eq!((p.hash, p.sdp), (0, SDP));
        assert_eq!(p.origin, "10.0.0.9".parse::<IpAddr>().unwrap());
        // Payload type with parameters and upper case.
        let mut b = vec![0x20, 0, 0, 1, 10, 0, 0, 9];
        b.extend_from_slice(b"Application/SDP; charset=utf-8\0");
        b.extend_from_slice(SDP.as_bytes());
        assert_eq!(parse(&b).unwrap().sdp, SDP);
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        let good = build(MessageType::Announce, 1, "10.0.0.1".parse().unwrap(), SDP).unwrap();
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert_eq!(parse(&[]), Err(SapError::TooShort(0)));
        assert_eq!(parse(&good[..6]), Err(SapError::TooShort(6)));
        assert_eq!(parse(&with(0, 0x00)), Err(SapError::Version(0)));
        assert_eq!(parse(&with(0, 0x40)), Err(SapError::Version(2)));
        assert_eq!(parse(&with(0, 0x22)), Err(SapError::Encrypted));
        assert_eq!(parse(&with(0, 0x21)), Err(SapError::Compressed));
        // Auth length past the end.
        assert_eq!(parse(&with(1, 255)), Err(SapError::TooShort(good.len())));
        // IPv6 flag on a short packet: the origin runs into the payload, so
        // the payload type is garbage.
        assert!(matches!(
            parse(&with(0, 0x30)),
            Err(SapError::PayloadType(_))
        ));
        let mut b = good[..8].to_vec();
        b.extend_from_slice(b"text/plain\0hello");
        assert_eq!(parse(&b), Err(SapError::PayloadType("text/plain".into())));
        let mut b = good[..8].to_vec();
        b.extend_from_slice(&[b'x'; 600]);
        assert!(matches!(parse(&b), Err(SapError::PayloadType(s)) if s.len() == 32));
        let mut b = good[..8].to_vec();
        b.extend_from_slice(b"application/sdp\0\0\0");
        assert_eq!(parse(&b), Err(SapError::Empty));
        let mut b = good[..8].to_vec();
        b.extend_from_slice(b"v=0\r\n\xff\xfe");
        assert_eq!(parse(&b), Err(SapError::NotUtf8));
        let big = vec![0x20u8; MAX_PACKET + 1];
        assert_eq!(parse(&big), Err(SapError::TooLarge(MAX_PACKET + 1)));
        let sdp = "v=0\n".repeat(MAX_PACKET / 4);
        assert!(matches!(
            build(MessageType::Announce, 1, "10.0.0.1".parse().unwrap(), &sdp),
            Err(SapError::TooLarge(_))
        ));
        assert_eq!(
            build(MessageType::Announce, 1, "10.0.0.1".parse().unwrap(), ""),
            Err(SapError::Empty)
        );
    }
}
