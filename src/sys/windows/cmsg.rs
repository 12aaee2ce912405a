//! Parser of Winsock control messages (`WSARecvMsg`'s `Control` buffer), and
//! the writer of the one `WSASendMsg` sends (`SO_TIMESTAMP_ID`): pure byte
//! work with no OS calls and no `unsafe`, compiled on every OS so its unit
//! tests and the `wincmsg` fuzz target run on Linux too.
//!
//! Layout (64-bit Windows, `ws2def.h`): `WSACMSGHDR { SIZE_T cmsg_len; INT
//! cmsg_level; INT cmsg_type; }` is 16 bytes; the data starts at
//! `WSA_CMSGDATA_ALIGN(16)` = +16 and the next header at
//! `WSA_CMSGHDR_ALIGN(cmsg_len)` (8-byte alignment). Entries read here:
//! - `SOL_SOCKET` (0xffff) / `SO_TIMESTAMP` (0x300A): a `UINT64` receive
//!   timestamp in QueryPerformanceCounter ticks (software) when
//!   `SIO_TIMESTAMPING` with `TIMESTAMPING_FLAG_RX` is on (build ≥ 20348);
//!   `cmsg_len` 24. Zero means "no timestamp".
//! - `IPPROTO_IP` (0) / `IP_PKTINFO` (19): `IN_PKTINFO { IN_ADDR ipi_addr;
//!   ULONG ipi_ifindex; }`, the datagram's destination address and arrival
//!   interface; `cmsg_len` 24.
//!
//! Anything else is skipped; a header that runs past the buffer (or claims
//! less than its own size) ends the walk and is counted as malformed.
//!
//! Written here: `SOL_SOCKET` / `SO_TIMESTAMP_ID` (0x300B, `mstcpip.h`), a
//! `UINT32` id that tags a sent datagram's transmit timestamp for
//! `SIO_GET_TX_TIMESTAMP` (Microsoft Learn, "Winsock timestamping").

use std::net::Ipv4Addr;

/// `SOL_SOCKET` on Windows.
pub const SOL_SOCKET: i32 = 0xffff;
/// `IPPROTO_IP`.
pub const IPPROTO_IP: i32 = 0;
/// `IP_PKTINFO` on Windows (Linux's is 8).
pub const IP_PKTINFO: i32 = 19;
/// `SO_TIMESTAMP` on Windows (`mstcpip.h`): a received datagram's stamp.
pub const SO_TIMESTAMP: i32 = 0x300A;
/// `SO_TIMESTAMP_ID` on Windows (`mstcpip.h`): a sent datagram's TX-stamp id.
pub const SO_TIMESTAMP_ID: i32 = 0x300B;
/// `sizeof(WSACMSGHDR)` on 64-bit Windows = `WSA_CMSGDATA_ALIGN` of it.
pub const HDR_LEN: usize = 16;
/// Alignment of headers and data (`TYPE_ALIGNMENT(WSACMSGHDR)`).
pub const ALIGN: usize = 8;
/// Bytes of one `SO_TIMESTAMP_ID` entry: `WSA_CMSG_SPACE(sizeof(UINT32))`.
pub const TIMESTAMP_ID_SPACE: usize = 24;

/// What one control buffer said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WinCmsgs {
    /// `SO_TIMESTAMP`, QPC ticks; `None` when absent or zero.
    pub so_timestamp: Option<u64>,
    /// `IP_PKTINFO`: destination address and interface index.
    pub pktinfo: Option<(Ipv4Addr, u32)>,
    /// A header ran past the buffer or was shorter than itself.
    pub malformed: bool,
}

/// `n` rounded up to the 8-byte alignment of headers and data.
pub fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Walks the control bytes `buf` (the first `Control.len` bytes after the
/// call) and picks out `SO_TIMESTAMP` and `IP_PKTINFO` (the last of each
/// wins). Never fails: a bad length ends the walk with `malformed` set.
pub fn parse(buf: &[u8]) -> WinCmsgs {
    let mut out = WinCmsgs::default();
    let mut off = 0usize;
    while off + HDR_LEN <= buf.len() {
        let h = &buf[off..off + HDR_LEN];
        let len = u64::from_le_bytes(h[0..8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
        let kind = i32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
        let Some(end) = off
            .checked_add(len)
            .filter(|&e| len >= HDR_LEN && e <= buf.len())
        else {
            out.malformed = true;
            break;
        };
        let data = &buf[off + HDR_LEN..end];
        match (level, kind) {
            (SOL_SOCKET, SO_TIMESTAMP) if data.len() >= 8 => {
                let t = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
                out.so_timestamp = (t != 0).then_some(t);
            }
            (IPPROTO_IP, IP_PKTINFO) if data.len() >= 8 => {
                let a = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
                let idx = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
                out.pktinfo = Some((a, idx));
            }
            _ => {}
        }
        off = align(end);
    }
    out
}

/// Writes one control message (`level`, `kind`, `data`) at the start of
/// `out` as Winsock lays it out on x64: `cmsg_len` = `WSA_CMSG_LEN` = 16 +
/// `data.len()`, the padding up to `WSA_CMSG_SPACE` zeroed. Returns the
/// bytes used (`WSA_CMSG_SPACE(data.len())`, where the next entry goes), or
/// `None` when `out` is shorter than that.
pub fn write_entry(out: &mut [u8], level: i32, kind: i32, data: &[u8]) -> Option<usize> {
    let len = HDR_LEN.checked_add(data.len())?;
    let space = align(len);
    let dst = out.get_mut(..space)?;
    dst[0..8].copy_from_slice(&(len as u64).to_le_bytes());
    dst[8..12].copy_from_slice(&level.to_le_bytes());
    dst[12..16].copy_from_slice(&kind.to_le_bytes());
    dst[HDR_LEN..len].copy_from_slice(data);
    dst[len..].fill(0);
    Some(space)
}

/// The `WSASendMsg` control buffer that tags a datagram with transmit-stamp
/// id `id` (`SOL_SOCKET` / `SO_TIMESTAMP_ID`, `UINT32` data).
pub fn timestamp_id(id: u32) -> [u8; TIMESTAMP_ID_SPACE] {
    let mut b = [0u8; TIMESTAMP_ID_SPACE];
    let n = write_entry(&mut b, SOL_SOCKET, SO_TIMESTAMP_ID, &id.to_le_bytes());
    debug_assert_eq!(n, Some(TIMESTAMP_ID_SPACE));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One control message as Winsock lays it out on x64 (by hand, not by
    /// `write_entry`, which is checked against this).
    fn entry(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let len = HDR_LEN + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u64).to_le_bytes());
        v.extend_from_slice(&level.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(data);
        v.resize(align(len), 0);
        v
    }

    #[test]
    fn write_entry_matches_the_layout_and_parses_back() {
        for data in [&[][..], &[1], &[1, 2, 3, 4, 5], &[7; 8], &[9; 13]] {
            let want = entry(SOL_SOCKET, 0x77, data);
            let mut out = [0xAAu8; 64];
            assert_eq!(
                write_entry(&mut out, SOL_SOCKET, 0x77, data),
                Some(want.len())
            );
            assert_eq!(&out[..want.len()], &want[..], "{data:?}");
            // Too short for WSA_CMSG_SPACE: refused, nothing written.
            let mut short = vec![0xAAu8; want.len() - 1];
            assert_eq!(write_entry(&mut short, SOL_SOCKET, 0x77, data), None);
            assert!(short.iter().all(|&b| b == 0xAA));
        }
        let mut out = [0u8; 48];
        let a = write_entry(&mut out, SOL_SOCKET, SO_TIMESTAMP, &99u64.to_le_bytes()).unwrap();
        let b = write_entry(
            &mut out[a..],
            IPPROTO_IP,
            IP_PKTINFO,
            &[10, 0, 0, 1, 4, 0, 0, 0],
        );
        let p = parse(&out[..a + b.unwrap()]);
        assert_eq!(p.so_timestamp, Some(99));
        assert_eq!(p.pktinfo, Some((Ipv4Addr::new(10, 0, 0, 1), 4)));
        assert!(!p.malformed);
    }

    #[test]
    fn timestamp_id_is_wsa_cmsg_space_of_a_uint32() {
        let b = timestamp_id(0x0102_0304);
        // cmsg_len = WSA_CMSG_LEN(4) = 20; level 0xffff; type 0x300B; the id
        // little-endian; 4 bytes of zero padding to WSA_CMSG_SPACE(4) = 24.
        assert_eq!(b[0..8], 20u64.to_le_bytes());
        assert_eq!(b[8..12], 0xffffi32.to_le_bytes());
        assert_eq!(b[12..16], 0x300Bi32.to_le_bytes());
        assert_eq!(b[16..20], [4, 3, 2, 1]);
        assert_eq!(b[20..24], [0; 4]);
        // The receive parser walks it and finds nothing it reads.
        assert_eq!(parse(&b), WinCmsgs::default());
    }

    fn pktinfo(a: [u8; 4], idx: u32) -> Vec<u8> {
        let mut d = a.to_vec();
        d.extend_from_slice(&idx.to_le_bytes());
        entry(IPPROTO_IP, IP_PKTINFO, &d)
    }

    #[test]
    fn so_timestamp_and_pktinfo_in_either_order() {
        let ts = entry(SOL_SOCKET, SO_TIMESTAMP, &123_456_789_012u64.to_le_bytes());
        assert_eq!(ts.len(), 24, "cmsg_len 24 as on x64 Windows");
        let pi = pktinfo([224, 0, 1, 129], 7);
        assert_eq!(pi.len(), 24);
        for buf in [[ts.clone(), pi.clone()].concat(), [pi, ts].concat()] {
            let p = parse(&buf);
            assert_eq!(p.so_timestamp, Some(123_456_789_012));
            assert_eq!(p.pktinfo, Some((Ipv4Addr::new(224, 0, 1, 129), 7)));
            assert!(!p.malformed);
        }
    }

    #[test]
    fn zero_stamp_is_no_stamp_and_empty_is_nothing() {
        let p = parse(&entry(SOL_SOCKET, SO_TIMESTAMP, &0u64.to_le_bytes()));
        assert_eq!(p.so_timestamp, None);
        assert_eq!(parse(&[]), WinCmsgs::default());
        // Fewer bytes than one header: nothing, not malformed.
        assert_eq!(parse(&[1, 2, 3]), WinCmsgs::default());
    }

    #[test]
    fn unknown_entries_are_skipped_with_alignment() {
        // A 5-byte payload pads to 8: the next header sits at 24.
        let odd = entry(SOL_SOCKET, 0x1234, &[9; 5]);
        assert_eq!(odd.len(), 24);
        let buf = [odd, pktinfo([10, 0, 0, 2], 3)].concat();
        let p = parse(&buf);
        assert_eq!(p.pktinfo, Some((Ipv4Addr::new(10, 0, 0, 2), 3)));
        assert_eq!(p.so_timestamp, None);
        // Linux's numbers (SOL_SOCKET 1, SO_TIMESTAMP 29) are not Windows's.
        let linux = entry(1, 29, &5u64.to_le_bytes());
        assert_eq!(parse(&linux).so_timestamp, None);
    }

    #[test]
    fn malformed_lengths_stop_the_walk() {
        let good = pktinfo([192, 168, 1, 9], 1);
        // cmsg_len past the end.
        let mut long = entry(SOL_SOCKET, SO_TIMESTAMP, &7u64.to_le_bytes());
        long[0..8].copy_from_slice(&4096u64.to_le_bytes());
        let p = parse(&[good.clone(), long].concat());
        assert_eq!(p.pktinfo, Some((Ipv4Addr::new(192, 168, 1, 9), 1)));
        assert_eq!(p.so_timestamp, None);
        assert!(p.malformed);
        // cmsg_len shorter than a header (would loop forever if trusted).
        let mut short = entry(SOL_SOCKET, SO_TIMESTAMP, &7u64.to_le_bytes());
        short[0..8].copy_from_slice(&3u64.to_le_bytes());
        assert!(parse(&short).malformed);
        // cmsg_len u64::MAX must not overflow.
        let mut huge = entry(SOL_SOCKET, SO_TIMESTAMP, &7u64.to_le_bytes());
        huge[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&huge).malformed);
        // Truncated payload (a timestamp entry with 4 data bytes): ignored.
        let p = parse(&entry(SOL_SOCKET, SO_TIMESTAMP, &[1, 2, 3, 4]));
        assert_eq!(p.so_timestamp, None);
        assert!(!p.malformed);
    }
}
