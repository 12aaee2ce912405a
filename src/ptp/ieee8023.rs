//! PTP over IEEE 802.3 / Ethernet (IEEE 1588-2019 Annex E): building and
//! parsing the Ethernet frame around a PTP message. Sans-IO: bytes in, bytes
//! out; the `AF_PACKET` socket that carries the frames is in
//! [`crate::sys::ptp`].
//!
//! - Ethertype 0x88F7 (Annex E.2).
//! - Destination 01-1B-19-00-00-00 for every message of the E2E delay
//!   mechanism, 01-80-C2-00-00-0E for the peer-delay messages (Annex E.3,
//!   Table E.1).
//! - An IEEE 802.1Q (0x8100) or 802.1ad (0x88A8) tagged frame is reported as
//!   [`FrameError::Vlan`]: this port runs untagged, so the caller counts and
//!   drops it (a tag the kernel moved out of band is reported the same way by
//!   the socket). Linux itself takes the tag off every received frame: one
//!   for a VLAN with no device on the host reaches a packet socket untagged
//!   but marked `PACKET_OTHERHOST`, and is counted as
//!   [`FrameError::OtherHost`]; a priority tag (VID 0) is removed and the
//!   frame taken, as IEEE 802.1Q wants.
//! - A frame shorter than its header, or a header with no PTP header after it
//!   (34 bytes, §13.3.1), is [`FrameError::Short`]; never a panic.

use std::fmt;

/// PTP ethertype (Annex E.2).
pub const ETHERTYPE_PTP: u16 = 0x88F7;
/// IEEE 802.1Q VLAN tag protocol identifier.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IEEE 802.1ad service VLAN tag protocol identifier.
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// Destination of all messages but the peer-delay ones (Annex E.3).
pub const PRIMARY_MAC: [u8; 6] = [0x01, 0x1B, 0x19, 0x00, 0x00, 0x00];
/// Destination of Pdelay_Req, Pdelay_Resp, Pdelay_Resp_Follow_Up (Annex E.3).
pub const PDELAY_MAC: [u8; 6] = [0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E];
/// Bytes of an untagged Ethernet header: destination, source, ethertype.
pub const HEADER_LEN: usize = 14;
/// Bytes of the PTP common header (§13.3.1): the shortest PTP message.
pub const PTP_HEADER_LEN: usize = 34;

/// The destination MAC of a PTP message (Annex E.3): the peer-delay address
/// for messageType 0x2, 0x3, 0xA, else the primary one. `msg` is the PTP
/// message (its first nibble is the messageType, §13.3.2.2); empty gives the
/// primary address.
pub fn destination_for(msg: &[u8]) -> [u8; 6] {
    match msg.first().map(|b| b & 0x0f) {
        Some(0x2 | 0x3 | 0xA) => PDELAY_MAC,
        _ => PRIMARY_MAC,
    }
}

/// Writes the frame carrying `msg` from `src` to `dst` into `out`
/// (replacing its contents): the 14-byte header, then the message. The NIC
/// pads to the 60-byte minimum and appends the FCS.
pub fn build(dst: [u8; 6], src: [u8; 6], msg: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_LEN + msg.len());
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ETHERTYPE_PTP.to_be_bytes());
    out.extend_from_slice(msg);
}

/// One received PTP frame, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// The PTP message (may carry the NIC's padding after the message; the
    /// PTP header's messageLength says where it ends).
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Offset of the payload in the frame (always [`HEADER_LEN`]: tagged
    /// frames are refused).
    pub const PAYLOAD_AT: usize = HEADER_LEN;
    /// Sent to a group address (I/G bit set), as every PTP message of the
    /// E2E multicast profile is.
    pub fn is_multicast(&self) -> bool {
        self.dst[0] & 1 == 1
    }
}

/// Why a frame is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than an Ethernet header plus a PTP header.
    Short,
    /// VLAN-tagged (802.1Q or 802.1ad) with this VLAN id.
    Vlan(u16),
    /// Another ethertype.
    Ethertype(u16),
    /// Not addressed to this host (the kernel's `PACKET_OTHERHOST`: a
    /// frame of a VLAN this host has no device for, or promiscuous mode).
    OtherHost,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Short => write!(f, "frame shorter than Ethernet + PTP headers"),
            FrameError::Vlan(v) => write!(f, "VLAN-tagged frame (VID {v})"),
            FrameError::Ethertype(t) => write!(f, "ethertype {t:#06x}, not PTP"),
            FrameError::OtherHost => write!(f, "frame for another host or VLAN"),
        }
    }
}

/// Parses a received Ethernet frame (as an `AF_PACKET` `SOCK_RAW` socket
/// gives it: from the destination MAC, no FCS).
///
/// Errors: [`FrameError`] (short, tagged, not 0x88F7).
pub fn parse(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Short);
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) {
        let vid = frame
            .get(14..16)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) & 0x0fff)
            .ok_or(FrameError::Short)?;
        return Err(FrameError::Vlan(vid));
    }
    if ethertype != ETHERTYPE_PTP {
        return Err(FrameError::Ethertype(ethertype));
    }
    if frame.len() < HEADER_LEN + PTP_HEADER_LEN {
        return Err(FrameError::Short);
    }
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    Ok(Frame {
        dst,
        src,
        payload: &frame[HEADER_LEN..],
    })
}

/// Counts of received frames not taken, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameDrops {
    /// Too short ([`FrameError::Short`]).
    pub short: u64,
    /// VLAN-tagged, in band or as reported by the kernel.
    pub vlan: u64,
    /// Another ethertype.
    pub ethertype: u64,
    /// For another host or a VLAN with no device here.
    pub other_host: u64,
}

impl FrameDrops {
    /// Counts one error.
    pub fn count(&mut self, e: FrameError) {
        match e {
            FrameError::Short => self.short += 1,
            FrameError::Vlan(_) => self.vlan += 1,
            FrameError::Ethertype(_) => self.ethertype += 1,
            FrameError::OtherHost => self.other_host += 1,
        }
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.short + self.vlan + self.ethertype + self.other_host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn sync_msg() -> Vec<u8> {
        // messageType 0 (Sync), versionPTP 2, messageLength 44.
        let mut m = vec![0u8; 44];
        m[0] = 0x00;
        m[1] = 0x02;
        m[2..4].copy_from_slice(&44u16.to_be_bytes());
        m
    }

    #[test]
    fn build_then_parse_round_trips() {
        let msg = sync_msg();
        let mut f = Vec::new();
        build(PRIMARY_MAC, SRC, &msg, &mut f);
        assert_eq!(f.len(), 14 + 44);
        assert_eq!(&f[..6], &[0x01, 0x1B, 0x19, 0, 0, 0]);
        assert_eq!(&f[6..12], &SRC);
        assert_eq!(&f[12..14], &[0x88, 0xF7]);
        let p = parse(&f).unwrap();
        assert_eq!(p.dst, PRIMARY_MAC);
        assert_eq!(p.src, SRC);
        assert_eq!(p.payload, &msg[..]);
        assert!(p.is_multicast());
        assert_eq!(Frame::PAYLOAD_AT, 14);
        // Reuse of the output buffer replaces the contents.
        build(PDELAY_MAC, SRC, &msg[..34], &mut f);
        assert_eq!(f.len(), 14 + 34);
        assert_eq!(parse(&f).unwrap().dst, PDELAY_MAC);
    }

    #[test]
    fn padded_frames_keep_the_padding_in_the_payload() {
        // A 34-byte PTP message in a minimum 60-byte frame: 12 pad bytes.
        let mut f = Vec::new();
        build(PRIMARY_MAC, SRC, &sync_msg()[..34], &mut f);
        f.resize(60, 0);
        assert_eq!(parse(&f).unwrap().payload.len(), 46);
    }

    #[test]
    fn destination_by_message_type() {
        assert_eq!(destination_for(&[0x00]), PRIMARY_MAC); // Sync
        assert_eq!(destination_for(&[0x01]), PRIMARY_MAC); // Delay_Req
        assert_eq!(destination_for(&[0x08]), PRIMARY_MAC); // Follow_Up
        assert_eq!(destination_for(&[0x09]), PRIMARY_MAC); // Delay_Resp
        assert_eq!(destination_for(&[0x0B]), PRIMARY_MAC); // Announce
        assert_eq!(destination_for(&[0x12]), PDELAY_MAC); // Pdelay_Req, transportSpecific 1
        assert_eq!(destination_for(&[0x03]), PDELAY_MAC);
        assert_eq!(destination_for(&[0x0A]), PDELAY_MAC);
        assert_eq!(destination_for(&[]), PRIMARY_MAC);
    }

    #[test]
    fn vlan_tagged_frames_are_refused_with_their_vid() {
        let msg = sync_msg();
        let mut f = Vec::new();
        f.extend_from_slice(&PRIMARY_MAC);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x81, 0x00, 0xE0, 0x05]); // PCP 7, VID 5
        f.extend_from_slice(&[0x88, 0xF7]);
        f.extend_from_slice(&msg);
        assert_eq!(parse(&f), Err(FrameError::Vlan(5)));
        f[12..14].copy_from_slice(&[0x88, 0xA8]);
        assert_eq!(parse(&f), Err(FrameError::Vlan(5)));
        // A tag cut short.
        assert_eq!(parse(&f[..15]), Err(FrameError::Short));
        let mut d = FrameDrops::default();
        d.count(parse(&f).unwrap_err());
        assert_eq!(d.vlan, 1);
        d.count(FrameError::OtherHost);
        assert_eq!((d.other_host, d.total()), (1, 2));
    }

    #[test]
    fn other_ethertypes_are_refused() {
        let mut f = Vec::new();
        build(PRIMARY_MAC, SRC, &sync_msg(), &mut f);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(&f), Err(FrameError::Ethertype(0x0800)));
        assert_eq!(
            FrameError::Ethertype(0x0800).to_string(),
            "ethertype 0x0800, not PTP"
        );
    }

    #[test]
    fn short_frames_are_counted_never_a_panic() {
        let mut f = Vec::new();
        build(PRIMARY_MAC, SRC, &sync_msg(), &mut f);
        let mut drops = FrameDrops::default();
        for n in 0..HEADER_LEN + PTP_HEADER_LEN {
            let e = parse(&f[..n]).unwrap_err();
            assert_eq!(e, FrameError::Short, "length {n}");
            drops.count(e);
        }
        assert_eq!(drops.short, (HEADER_LEN + PTP_HEADER_LEN) as u64);
        assert!(parse(&f[..HEADER_LEN + PTP_HEADER_LEN]).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep of lengths and contents.
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let mut f = vec![0u8; len];
            for b in f.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            if len >= 14 && len % 3 == 0 {
                f[12] = 0x88;
                f[13] = 0xF7;
            }
            let _ = parse(&f);
        }
    }
}
