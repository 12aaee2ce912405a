//! The one parser of socket control messages (`cmsg(3)`) for every receive
//! path: the recvmsg/io_uring stream ingest and the PTP sockets (receive
//! timestamps, and TX timestamps from the error queue). It works on a raw
//! control byte slice, as returned by `recvmsg(2)` or by an io_uring
//! multishot `RECVMSG` completion (`io_uring_recvmsg_out`).
//!
//! Layout: each message starts with a `libc::cmsghdr` (read with
//! `read_unaligned` from a checked sub-slice, so its field widths are libc's
//! for the target), whose data starts `CMSG_LEN(0)` bytes in; messages are
//! `CMSG_ALIGN`ed (to `size_t`). A malformed or truncated control area ends
//! the iteration instead of panicking.
//!
//! Messages decoded:
//! - `SCM_TIMESTAMPING` (Linux `Documentation/networking/timestamping.rst`
//!   §2.1): three `struct timespec` (`time_t` and `long` wide), `ts[0]`
//!   software (`CLOCK_REALTIME`), `ts[1]` deprecated, `ts[2]` raw hardware
//!   (PHC); a zero timespec means "not present";
//! - `SCM_TIMESTAMPING_NEW`: the same with 64-bit `__kernel_timespec` on
//!   every architecture;
//! - `IP_RECVERR` (`struct sock_extended_err`) with origin
//!   `SO_EE_ORIGIN_TIMESTAMPING`: `ee_data` is the `SOF_TIMESTAMPING_OPT_ID`
//!   of the send the TX timestamp belongs to.

use crate::sys::RxTimestamp;

/// `SOL_SOCKET`.
const SOL_SOCKET: i32 = libc::SOL_SOCKET;
/// `SCM_TIMESTAMPING` (`SO_TIMESTAMPING_OLD`), 37 on Linux.
const SCM_TIMESTAMPING_OLD: i32 = libc::SO_TIMESTAMPING;
/// `SCM_TIMESTAMPING_NEW` (64-bit `__kernel_timespec` on every arch), 65 on Linux.
const SCM_TIMESTAMPING_NEW: i32 = 65;

/// Bytes of `size_t`: the `CMSG_ALIGN` unit.
const WORD: usize = std::mem::size_of::<usize>();
/// `CMSG_LEN(0)`: offset of the data from the start of a message (16 on
/// 64-bit Linux).
// SAFETY: CMSG_LEN is pure arithmetic on its argument (no pointer involved).
const HDR: usize = unsafe { libc::CMSG_LEN(0) } as usize;

/// `CMSG_ALIGN`: rounds `n` up to a multiple of `size_t`.
const fn align(n: usize) -> usize {
    (n + WORD - 1) & !(WORD - 1)
}

/// `CMSG_SPACE(data_len)`: bytes a control message with `data_len` data bytes
/// occupies in a control buffer, including padding.
pub const fn cmsg_space(data_len: usize) -> usize {
    align(HDR) + align(data_len)
}

/// Control buffer bytes needed for one `SCM_TIMESTAMPING` message
/// (3 × timespec): 64 on 64-bit targets.
pub const TIMESTAMPING_SPACE: usize = cmsg_space(3 * 16);

/// One control message, borrowed from the control buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmsg<'a> {
    /// `cmsg_level` (e.g. `SOL_SOCKET`).
    pub level: i32,
    /// `cmsg_type` (e.g. `SCM_TIMESTAMPING`).
    pub kind: i32,
    /// The data bytes (`cmsg_len - CMSG_LEN(0)` bytes, clipped to the buffer).
    pub data: &'a [u8],
}

/// Iterator over the control messages of a control byte slice.
///
/// Stops at the first header that does not fit, or whose `cmsg_len` is
/// smaller than a header (as the kernel's `CMSG_NXTHDR` does). Data cut off by
/// `MSG_CTRUNC` is clipped to what is present.
#[derive(Debug, Clone)]
pub struct CmsgIter<'a> {
    buf: &'a [u8],
}

/// Iterates over the control messages in `control` (the bytes the kernel
/// filled, i.e. `msg_control[..msg_controllen]`).
pub fn iter(control: &[u8]) -> CmsgIter<'_> {
    CmsgIter { buf: control }
}

/// Reads a `T` (plain data: any bit pattern is a valid value) from the start
/// of `b`, if `b` is long enough.
fn read_plain<T: Copy>(b: &[u8]) -> Option<T> {
    if b.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `b` holds at least size_of::<T>() initialised bytes;
    // read_unaligned has no alignment requirement; callers use it only for
    // C structs of integers (cmsghdr, sock_extended_err, i32/i64), for which
    // every bit pattern is valid.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

impl<'a> Iterator for CmsgIter<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        if self.buf.len() < HDR {
            return None;
        }
        let hdr: libc::cmsghdr = read_plain(self.buf)?;
        // `cmsg_len` is `size_t` on glibc, `socklen_t` on musl.
        #[allow(clippy::unnecessary_cast)]
        let len = hdr.cmsg_len as usize;
        if len < HDR {
            self.buf = &[];
            return None;
        }
        let data_end = len.min(self.buf.len());
        let data = &self.buf[HDR..data_end];
        let next = len
            .checked_next_multiple_of(WORD)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Cmsg {
            level: hdr.cmsg_level,
            kind: hdr.cmsg_type,
            data,
        })
    }
}

/// The three timestamps of an `SCM_TIMESTAMPING` message, ns; `None` when the
/// kernel left the slot zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamping {
    /// `ts[0]`: software timestamp, `CLOCK_REALTIME` ns.
    pub software: Option<i64>,
    /// `ts[2]`: raw hardware timestamp, PHC ns.
    pub hardware: Option<i64>,
}

impl Timestamping {
    /// The preferred receive timestamp: hardware when present, else software.
    pub fn rx_timestamp(&self) -> Option<RxTimestamp> {
        self.pick(true)
    }

    /// One timestamp: with `prefer_hw`, hardware when present, else
    /// software; without, software when present, else hardware.
    pub fn pick(&self, prefer_hw: bool) -> Option<RxTimestamp> {
        let hw = self.hardware.map(RxTimestamp::Hardware);
        let sw = self.software.map(RxTimestamp::Software);
        if prefer_hw { hw.or(sw) } else { sw.or(hw) }
    }
}

/// Decodes `SCM_TIMESTAMPING_NEW` data, or old `SCM_TIMESTAMPING` data on a
/// 64-bit target: 3 × (64-bit `tv_sec`, 64-bit `tv_nsec`). Returns `None`
/// when the data is too short or a `tv_nsec` is out of range (≥ 10⁹ or
/// negative).
pub fn parse_timestamping(data: &[u8]) -> Option<Timestamping> {
    parse_timespecs(data, 8)
}

/// Decodes 3 timespecs whose two fields are `word` (4 or 8) bytes each.
fn parse_timespecs(data: &[u8], word: usize) -> Option<Timestamping> {
    let size = 2 * word;
    if data.len() < 3 * size {
        return None;
    }
    let field = |at: usize| -> i64 {
        if word == 8 {
            read_plain::<i64>(&data[at..]).unwrap_or(0)
        } else {
            i64::from(read_plain::<i32>(&data[at..]).unwrap_or(0))
        }
    };
    let ts = |i: usize| -> Option<Option<i64>> {
        let sec = field(i * size);
        let nsec = field(i * size + word);
        if !(0..1_000_000_000).contains(&nsec) {
            return None;
        }
        if sec == 0 && nsec == 0 {
            return Some(None);
        }
        Some(Some(sec.checked_mul(1_000_000_000)?.checked_add(nsec)?))
    };
    Some(Timestamping {
        software: ts(0)?,
        hardware: ts(2)?,
    })
}

/// The timestamps of the first `SCM_TIMESTAMPING` or `SCM_TIMESTAMPING_NEW`
/// message in `control`.
pub fn timestamping(control: &[u8]) -> Option<Timestamping> {
    // Old form: struct timespec, time_t and long wide (4 bytes each on
    // 32-bit targets without 64-bit time).
    let old_word = std::mem::size_of::<libc::time_t>();
    iter(control)
        .filter(|c| c.level == SOL_SOCKET)
        .find_map(|c| match c.kind {
            SCM_TIMESTAMPING_NEW => parse_timespecs(c.data, 8),
            SCM_TIMESTAMPING_OLD => parse_timespecs(c.data, old_word),
            _ => None,
        })
}

/// Finds the `SCM_TIMESTAMPING` (old or `_NEW`) message in `control` and
/// returns its preferred receive timestamp (hardware, else software).
pub fn rx_timestamp(control: &[u8]) -> Option<RxTimestamp> {
    timestamping(control).and_then(|t| t.rx_timestamp())
}

/// The `SOF_TIMESTAMPING_OPT_ID` of a TX timestamp read from the error
/// queue: `ee_data` of an `IP_RECVERR` (or `IPV6_RECVERR`) message whose
/// `sock_extended_err` has origin `SO_EE_ORIGIN_TIMESTAMPING`.
pub fn tx_opt_id(control: &[u8]) -> Option<u32> {
    iter(control)
        .filter(|c| {
            (c.level == libc::SOL_IP && c.kind == libc::IP_RECVERR)
                || (c.level == libc::SOL_IPV6 && c.kind == libc::IPV6_RECVERR)
                || (c.level == libc::SOL_PACKET && c.kind == PACKET_TX_TIMESTAMP)
        })
        .filter_map(|c| read_plain::<libc::sock_extended_err>(c.data))
        .find(|e| e.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING)
        .map(|e| e.ee_data)
}

/// `PACKET_TX_TIMESTAMP`: the error-queue message type of an `AF_PACKET`
/// socket (`packet(7)`), level `SOL_PACKET`.
pub const PACKET_TX_TIMESTAMP: i32 = 16;
/// `PACKET_AUXDATA` (`packet(7)`): the option, and the message type of its
/// `struct tpacket_auxdata`.
pub const PACKET_AUXDATA: i32 = 8;
/// `TP_STATUS_VLAN_VALID` in `tpacket_auxdata.tp_status`.
const TP_STATUS_VLAN_VALID: u32 = 0x10;

/// The VLAN id of a frame whose 802.1Q tag the kernel moved out of band,
/// from a `PACKET_AUXDATA` message (`struct tpacket_auxdata`: tp_status,
/// tp_len, tp_snaplen u32; tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid u16);
/// `None` when untagged or absent.
pub fn packet_vlan(control: &[u8]) -> Option<u16> {
    let c = iter(control).find(|c| c.level == libc::SOL_PACKET && c.kind == PACKET_AUXDATA)?;
    let status = read_plain::<u32>(c.data)?;
    let tci = read_plain::<u16>(c.data.get(16..)?)?;
    (status & TP_STATUS_VLAN_VALID != 0).then_some(tci & 0x0fff)
}

/// Everything a PTP socket needs from one `recvmsg`: the timestamp (with
/// `prefer_hw`, hardware when present, else software; without, the
/// reverse) and, for the error queue, the TX timestamp's OPT_ID.
/// The IP header's destination address from an `IP_PKTINFO` message
/// (`struct in_pktinfo`: ifindex, spec_dst, addr; `ip(7)`), if present.
pub fn pktinfo_dst(control: &[u8]) -> Option<std::net::Ipv4Addr> {
    iter(control)
        .find(|c| c.level == libc::IPPROTO_IP && c.kind == libc::IP_PKTINFO)
        .and_then(|c| c.data.get(8..12))
        .map(|b| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

/// Decodes a control area: the receive timestamp and the TX OPT_ID.
pub fn parse(control: &[u8], prefer_hw: bool) -> (Option<RxTimestamp>, Option<u32>) {
    (
        timestamping(control).and_then(|t| t.pick(prefer_hw)),
        tx_opt_id(control),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a control message the way the kernel lays it out.
    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(HDR + data.len()).to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.resize(HDR, 0);
        v.extend_from_slice(data);
        v.resize(cmsg_space(data.len()), 0);
        v
    }

    #[test]
    fn packet_socket_tx_id_and_vlan() {
        // SAFETY: plain data; zeroed is valid.
        let mut e: libc::sock_extended_err = unsafe { std::mem::zeroed() };
        e.ee_origin = libc::SO_EE_ORIGIN_TIMESTAMPING;
        e.ee_data = 42;
        // SAFETY: sock_extended_err is plain data; viewed as its bytes.
        let eb = unsafe {
            std::slice::from_raw_parts(
                (&e as *const libc::sock_extended_err).cast::<u8>(),
                std::mem::size_of_val(&e),
            )
        };
        let c = cmsg(libc::SOL_PACKET, PACKET_TX_TIMESTAMP, eb);
        assert_eq!(tx_opt_id(&c), Some(42));
        let mut aux = Vec::new();
        aux.extend_from_slice(&TP_STATUS_VLAN_VALID.to_ne_bytes());
        aux.extend_from_slice(&[0u8; 12]);
        aux.extend_from_slice(&0xE005u16.to_ne_bytes());
        aux.extend_from_slice(&0x8100u16.to_ne_bytes());
        assert_eq!(
            packet_vlan(&cmsg(libc::SOL_PACKET, PACKET_AUXDATA, &aux)),
            Some(5)
        );
        aux[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            packet_vlan(&cmsg(libc::SOL_PACKET, PACKET_AUXDATA, &aux)),
            None
        );
        // Truncated: no panic.
        assert_eq!(
            packet_vlan(&cmsg(libc::SOL_PACKET, PACKET_AUXDATA, &aux[..10])),
            None
        );
    }

    fn ts_data(sw: (i64, i64), hw: (i64, i64)) -> Vec<u8> {
        let mut d = Vec::new();
        for (s, n) in [sw, (0, 0), hw] {
            d.extend_from_slice(&s.to_ne_bytes());
            d.extend_from_slice(&n.to_ne_bytes());
        }
        d
    }

    #[test]
    fn layout_matches_libc() {
        // SAFETY: CMSG_SPACE is pure arithmetic.
        let (s0, s48) = unsafe { (libc::CMSG_SPACE(0), libc::CMSG_SPACE(48)) };
        assert_eq!(cmsg_space(0), s0 as usize);
        assert_eq!(cmsg_space(48), s48 as usize);
        assert_eq!(HDR, std::mem::size_of::<libc::cmsghdr>());
        assert_eq!(std::mem::size_of::<libc::sock_extended_err>(), 16);
        #[cfg(target_pointer_width = "64")]
        assert_eq!((HDR, TIMESTAMPING_SPACE), (16, 64));
    }

    fn recverr(origin: u8, id: u32) -> Vec<u8> {
        let mut ee = Vec::new();
        ee.extend_from_slice(&(libc::ENOMSG as u32).to_ne_bytes()); // ee_errno
        ee.extend_from_slice(&[origin, 0, 0, 0]);
        ee.extend_from_slice(&0u32.to_ne_bytes()); // ee_info = SCM_TSTAMP_SND
        ee.extend_from_slice(&id.to_ne_bytes()); // ee_data = OPT_ID
        ee.extend_from_slice(&[0; 16]); // offender sockaddr_in
        cmsg(libc::SOL_IP, libc::IP_RECVERR, &ee)
    }

    #[test]
    fn error_queue_timestamp_and_opt_id() {
        let mut buf = cmsg(
            SOL_SOCKET,
            SCM_TIMESTAMPING_OLD,
            &ts_data((1_700_000_000, 5), (42, 7)),
        );
        buf.extend(recverr(libc::SO_EE_ORIGIN_TIMESTAMPING, 77));
        assert_eq!(
            parse(&buf, false),
            (
                Some(RxTimestamp::Software(1_700_000_000_000_000_005)),
                Some(77)
            )
        );
        assert_eq!(
            parse(&buf, true),
            (Some(RxTimestamp::Hardware(42_000_000_007)), Some(77))
        );
        // _NEW form, and a non-timestamping error origin carries no id.
        let mut new = cmsg(SOL_SOCKET, SCM_TIMESTAMPING_NEW, &ts_data((0, 0), (9, 1)));
        new.extend(recverr(libc::SO_EE_ORIGIN_ICMP, 5));
        assert_eq!(
            parse(&new, false),
            (Some(RxTimestamp::Hardware(9_000_000_001)), None)
        );
        // Truncated buffers: no panic.
        for cut in 0..buf.len() {
            let _ = parse(&buf[..cut], true);
        }
        let mut bad = buf.clone();
        bad[..WORD].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(tx_opt_id(&bad), None);
    }

    #[test]
    fn software_and_hardware_timestamps() {
        let c = cmsg(
            SOL_SOCKET,
            SCM_TIMESTAMPING_OLD,
            &ts_data((1_700_000_000, 123), (0, 0)),
        );
        assert_eq!(
            rx_timestamp(&c),
            Some(RxTimestamp::Software(1_700_000_000_000_000_123))
        );
        let c = cmsg(SOL_SOCKET, SCM_TIMESTAMPING_NEW, &ts_data((5, 1), (42, 7)));
        assert_eq!(
            rx_timestamp(&c),
            Some(RxTimestamp::Hardware(42_000_000_007))
        );
        let t = parse_timestamping(&ts_data((5, 1), (42, 7))).unwrap();
        assert_eq!(
            t,
            Timestamping {
                software: Some(5_000_000_001),
                hardware: Some(42_000_000_007)
            }
        );
    }

    #[test]
    fn finds_timestamp_after_other_messages() {
        let mut c = cmsg(
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        );
        c.extend(cmsg(
            SOL_SOCKET,
            SCM_TIMESTAMPING_OLD,
            &ts_data((3, 4), (0, 0)),
        ));
        let all: Vec<_> = iter(&c).map(|m| (m.level, m.kind, m.data.len())).collect();
        assert_eq!(
            all,
            vec![
                (libc::IPPROTO_IP, libc::IP_PKTINFO, 12),
                (SOL_SOCKET, SCM_TIMESTAMPING_OLD, 48)
            ]
        );
        assert_eq!(rx_timestamp(&c), Some(RxTimestamp::Software(3_000_000_004)));
    }

    #[test]
    fn truncated_and_malformed_control_data() {
        let c = cmsg(SOL_SOCKET, SCM_TIMESTAMPING_OLD, &ts_data((3, 4), (0, 0)));
        // Every prefix (MSG_CTRUNC) parses without panicking; short data gives None.
        for n in 0..c.len() {
            assert_eq!(rx_timestamp(&c[..n]), None, "prefix {n}");
        }
        // cmsg_len smaller than a header ends iteration.
        let mut bad = c.clone();
        bad[..WORD].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(iter(&bad).count(), 0);
        // Huge cmsg_len is clipped to the buffer.
        let mut big = c.clone();
        big[..WORD].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(iter(&big).count(), 1);
        // Out-of-range tv_nsec and all-zero timestamps give None.
        assert_eq!(
            rx_timestamp(&cmsg(
                SOL_SOCKET,
                SCM_TIMESTAMPING_OLD,
                &ts_data((1, 1_000_000_000), (0, 0))
            )),
            None
        );
        assert_eq!(
            rx_timestamp(&cmsg(
                SOL_SOCKET,
                SCM_TIMESTAMPING_OLD,
                &ts_data((0, 0), (0, 0))
            )),
            None
        );
        // Overflowing seconds give None.
        assert_eq!(parse_timestamping(&ts_data((i64::MAX, 0), (0, 0))), None);
        // Wrong level is ignored.
        assert_eq!(
            rx_timestamp(&cmsg(
                libc::IPPROTO_IP,
                SCM_TIMESTAMPING_OLD,
                &ts_data((1, 1), (0, 0))
            )),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = rx_timestamp(&bytes);
            let _ = parse(&bytes, true);
            proptest::prop_assert!(iter(&bytes).count() <= bytes.len() / HDR + 1);
        }
    }
}
