//! Safe, bounds-checked parsing of socket control messages (`cmsg(3)`)
//! from a raw control byte slice, as returned by `recvmsg(2)` or by an
//! io_uring multishot `RECVMSG` completion (`io_uring_recvmsg_out`).
//!
//! Layout (Linux, `struct cmsghdr`): `cmsg_len: size_t` (header + data, bytes),
//! `cmsg_level: int`, `cmsg_type: int`, then data; each message starts at a
//! multiple of `size_of::<size_t>()` (`CMSG_ALIGN`). Nothing here is unsafe:
//! fields are read with `from_ne_bytes` from checked sub-slices, and a
//! malformed or truncated control area ends the iteration instead of panicking.
//!
//! The timestamp of interest is `SCM_TIMESTAMPING` (Linux
//! `Documentation/networking/timestamping.rst` §2.1): three `timespec`s,
//! `ts[0]` software (`CLOCK_REALTIME`), `ts[1]` deprecated, `ts[2]` raw hardware
//! (PHC). A zero timespec means "not present".

use crate::sys::RxTimestamp;

/// `SOL_SOCKET`.
const SOL_SOCKET: i32 = libc::SOL_SOCKET;
/// `SCM_TIMESTAMPING` (`SO_TIMESTAMPING_OLD`), 37 on Linux.
const SCM_TIMESTAMPING_OLD: i32 = libc::SO_TIMESTAMPING;
/// `SCM_TIMESTAMPING_NEW` (64-bit `__kernel_timespec` on every arch), 65 on Linux.
const SCM_TIMESTAMPING_NEW: i32 = 65;

/// Bytes of `size_t` (the `cmsg_len` field and the alignment unit).
const WORD: usize = std::mem::size_of::<usize>();
/// Bytes of the aligned `struct cmsghdr` (`CMSG_LEN(0)`): 16 on 64-bit Linux.
const HDR: usize = align(WORD + 8);

/// `CMSG_ALIGN`: rounds `n` up to a multiple of `size_t`.
const fn align(n: usize) -> usize {
    (n + WORD - 1) & !(WORD - 1)
}

/// `CMSG_SPACE(data_len)`: bytes a control message with `data_len` data bytes
/// occupies in a control buffer, including padding.
pub const fn cmsg_space(data_len: usize) -> usize {
    HDR + align(data_len)
}

/// Control buffer bytes needed for one `SCM_TIMESTAMPING` message
/// (3 × 16-byte timespec on 64-bit): 64 on x86_64.
pub const TIMESTAMPING_SPACE: usize = cmsg_space(3 * 2 * std::mem::size_of::<libc::time_t>());

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

fn read_usize(b: &[u8]) -> usize {
    let mut w = [0u8; WORD];
    w.copy_from_slice(&b[..WORD]);
    usize::from_ne_bytes(w)
}

fn read_i32(b: &[u8]) -> i32 {
    i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn read_i64(b: &[u8]) -> i64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    i64::from_ne_bytes(w)
}

impl<'a> Iterator for CmsgIter<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        if self.buf.len() < HDR {
            return None;
        }
        let len = read_usize(self.buf);
        if len < HDR {
            self.buf = &[];
            return None;
        }
        let level = read_i32(&self.buf[WORD..]);
        let kind = read_i32(&self.buf[WORD + 4..]);
        let data_end = len.min(self.buf.len());
        let data = &self.buf[HDR..data_end];
        let next = len
            .checked_next_multiple_of(WORD)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Cmsg { level, kind, data })
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
        match (self.hardware, self.software) {
            (Some(h), _) => Some(RxTimestamp::Hardware(h)),
            (None, Some(s)) => Some(RxTimestamp::Software(s)),
            (None, None) => None,
        }
    }
}

/// Decodes `SCM_TIMESTAMPING` data (3 × `struct timespec`, 64-bit `tv_sec` and
/// `tv_nsec`). Returns `None` when the data is too short or a `tv_nsec` is
/// out of range (≥ 10⁹ or negative).
pub fn parse_timestamping(data: &[u8]) -> Option<Timestamping> {
    const TS: usize = 16;
    if data.len() < 3 * TS {
        return None;
    }
    let ts = |i: usize| -> Option<Option<i64>> {
        let sec = read_i64(&data[i * TS..]);
        let nsec = read_i64(&data[i * TS + 8..]);
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

/// Finds the `SCM_TIMESTAMPING` (old or `_NEW`) message in `control` and
/// returns its preferred receive timestamp (hardware, else software).
///
/// Only valid on 64-bit targets for the old form (where `time_t` is 64-bit);
/// on 32-bit targets only `SCM_TIMESTAMPING_NEW` is decoded.
pub fn rx_timestamp(control: &[u8]) -> Option<RxTimestamp> {
    let old_ok = std::mem::size_of::<libc::time_t>() == 8;
    iter(control)
        .filter(|c| {
            c.level == SOL_SOCKET
                && (c.kind == SCM_TIMESTAMPING_NEW || (old_ok && c.kind == SCM_TIMESTAMPING_OLD))
        })
        .find_map(|c| parse_timestamping(c.data))
        .and_then(|t| t.rx_timestamp())
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

    fn ts_data(sw: (i64, i64), hw: (i64, i64)) -> Vec<u8> {
        let mut d = Vec::new();
        for (s, n) in [sw, (0, 0), hw] {
            d.extend_from_slice(&s.to_ne_bytes());
            d.extend_from_slice(&n.to_ne_bytes());
        }
        d
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_matches_linux_64bit() {
        // CMSG_LEN(0) == 16 and CMSG_SPACE(48) == 64 on 64-bit Linux.
        assert_eq!(HDR, 16);
        assert_eq!(TIMESTAMPING_SPACE, 64);
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
            proptest::prop_assert!(iter(&bytes).count() <= bytes.len() / HDR + 1);
        }
    }
}
