//! Linux IO for PTP: UDP sockets with kernel timestamps, TX timestamps from
//! the error queue, interface capability detection, hardware timestamping
//! set-up, and PHC access. All `unsafe` of the PTP module lives here; each
//! block has a `// SAFETY:` note.
//!
//! - Sockets: UDP 319 (event) and 320 (general), group 224.0.1.129 joined on
//!   the chosen interface, `SO_BINDTODEVICE`, DSCP EF (46), TTL 1, loopback
//!   off, `IP_MULTICAST_ALL` off.
//! - `SO_TIMESTAMPING`: software RX/TX (`SOF_TIMESTAMPING_{RX,TX}_SOFTWARE`),
//!   or hardware (`…_{RX,TX}_HARDWARE | RAW_HARDWARE` after `SIOCSHWTSTAMP`
//!   with `HWTSTAMP_FILTER_PTP_V2_L4_EVENT`). TX timestamps come back on
//!   `MSG_ERRQUEUE`, matched by `SOF_TIMESTAMPING_OPT_ID` (the kernel's
//!   per-socket send counter in `sock_extended_err.ee_data`).
//! - Capabilities: `ETHTOOL_GET_TS_INFO`.
//! - PHC: `/dev/ptpN`, read via its dynamic clock id, correlated with
//!   `PTP_SYS_OFFSET_EXTENDED`; `clock_adjtime` only by explicit request.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// PTP primary multicast group (IEEE 1588-2019 Annex C).
pub const PTP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 129);
/// Event port.
pub const EVENT_PORT: u16 = 319;
/// General port.
pub const GENERAL_PORT: u16 = 320;
/// DSCP Expedited Forwarding (46) in the TOS byte.
pub const TOS_EF: u32 = 46 << 2;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GET_TS_INFO: u32 = 0x41;

fn cerr(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A kernel timestamp from a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelTs {
    /// `CLOCK_REALTIME` ns (software).
    Software(i64),
    /// PHC ns (raw hardware).
    Hardware(i64),
}

/// Parses `SCM_TIMESTAMPING` out of a control buffer (the bytes `recvmsg`
/// filled, `msg_controllen` long). Prefers the hardware stamp (`ts[2]`) when
/// `want_hw`, else the software one (`ts[0]`). Also returns the OPT_ID
/// counter from an `IP_RECVERR` `sock_extended_err` with origin
/// `SO_EE_ORIGIN_TIMESTAMPING`, if present.
pub fn parse_cmsgs(control: &[u8], want_hw: bool) -> (Option<KernelTs>, Option<u32>) {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let align =
        |n: usize| (n + std::mem::size_of::<usize>() - 1) & !(std::mem::size_of::<usize>() - 1);
    let mut at = 0;
    let (mut ts, mut id) = (None, None);
    while at + hdr <= control.len() {
        let rd = |o: usize, n: usize| -> Option<&[u8]> { control.get(at + o..at + o + n) };
        let (Some(l), Some(lv), Some(ty)) = (rd(0, 8), rd(8, 4), rd(12, 4)) else {
            break;
        };
        let len = usize::from_ne_bytes(l.try_into().unwrap_or([0; 8]));
        let level = i32::from_ne_bytes(lv.try_into().unwrap_or([0; 4]));
        let typ = i32::from_ne_bytes(ty.try_into().unwrap_or([0; 4]));
        if len < hdr || at + len > control.len() {
            break;
        }
        let data = &control[at + hdr..at + len];
        if level == libc::SOL_SOCKET && typ == libc::SO_TIMESTAMPING && data.len() >= 48 {
            let tsn = |i: usize| {
                let s = i64::from_ne_bytes(data[i * 16..i * 16 + 8].try_into().unwrap_or([0; 8]));
                let n =
                    i64::from_ne_bytes(data[i * 16 + 8..i * 16 + 16].try_into().unwrap_or([0; 8]));
                s.saturating_mul(1_000_000_000).saturating_add(n)
            };
            let (sw, hw) = (tsn(0), tsn(2));
            ts = if want_hw && hw != 0 {
                Some(KernelTs::Hardware(hw))
            } else if sw != 0 {
                Some(KernelTs::Software(sw))
            } else if hw != 0 {
                Some(KernelTs::Hardware(hw))
            } else {
                None
            };
        } else if level == libc::SOL_IP && typ == libc::IP_RECVERR && data.len() >= 16 {
            let origin = data[4];
            if origin == libc::SO_EE_ORIGIN_TIMESTAMPING {
                id = Some(u32::from_ne_bytes(
                    data[12..16].try_into().unwrap_or([0; 4]),
                ));
            }
        }
        at += align(len);
    }
    (ts, id)
}

/// Interface timestamping capabilities (`ETHTOOL_GET_TS_INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsInfo {
    /// `SOF_TIMESTAMPING_*` bits supported.
    pub so_timestamping: u32,
    /// PHC index (`/dev/ptpN`), −1 if none.
    pub phc_index: i32,
    /// `HWTSTAMP_TX_*` bitmask.
    pub tx_types: u32,
    /// `HWTSTAMP_FILTER_*` bitmask.
    pub rx_filters: u32,
}

impl TsInfo {
    /// Hardware RX+TX timestamps with a raw hardware clock, and a PTPv2 L4
    /// (or ALL) RX filter.
    pub fn hardware_capable(&self) -> bool {
        let need = libc::SOF_TIMESTAMPING_TX_HARDWARE
            | libc::SOF_TIMESTAMPING_RX_HARDWARE
            | libc::SOF_TIMESTAMPING_RAW_HARDWARE;
        let filt = (1 << libc::HWTSTAMP_FILTER_PTP_V2_L4_EVENT)
            | (1 << libc::HWTSTAMP_FILTER_ALL)
            | (1 << 12);
        self.so_timestamping & need == need && self.phc_index >= 0 && self.rx_filters & filt != 0
    }
    /// Software RX+TX timestamps.
    pub fn software_capable(&self) -> bool {
        let need = libc::SOF_TIMESTAMPING_TX_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE;
        self.so_timestamping & need == need
    }
}

/// `struct ethtool_ts_info` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Default)]
struct EthtoolTsInfo {
    cmd: u32,
    so_timestamping: u32,
    phc_index: i32,
    tx_types: u32,
    tx_reserved: [u32; 3],
    rx_filters: u32,
    rx_reserved: [u32; 3],
}

/// `struct ifreq` with the union as a data pointer.
#[repr(C)]
struct IfreqPtr {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

fn ifreq(iface: &str, data: *mut libc::c_void) -> io::Result<IfreqPtr> {
    let mut r = IfreqPtr {
        name: [0; libc::IFNAMSIZ],
        data,
        _pad: [0; 16],
    };
    if iface.len() >= libc::IFNAMSIZ || iface.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {iface:?}"),
        ));
    }
    for (d, s) in r.name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// Asks `iface` what it can timestamp (`ETHTOOL_GET_TS_INFO`). Errors:
/// no such interface, or the ioctl is refused.
pub fn ts_info(iface: &str) -> io::Result<TsInfo> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut info = EthtoolTsInfo {
        cmd: ETHTOOL_GET_TS_INFO,
        ..Default::default()
    };
    let mut ifr = ifreq(iface, &mut info as *mut EthtoolTsInfo as *mut libc::c_void)?;
    // SAFETY: ifr is a valid ifreq whose data points at a live, correctly
    // sized ethtool_ts_info for the duration of the call.
    cerr(unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) })?;
    Ok(TsInfo {
        so_timestamping: info.so_timestamping,
        phc_index: info.phc_index,
        tx_types: info.tx_types,
        rx_filters: info.rx_filters,
    })
}

/// Enables NIC hardware timestamping: TX on, RX filter PTPv2 L4 event
/// (`SIOCSHWTSTAMP`). Returns the filter the driver actually applied. Needs
/// CAP_NET_ADMIN.
pub fn enable_hw_timestamping(iface: &str) -> io::Result<i32> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut cfg = libc::hwtstamp_config {
        flags: 0,
        tx_type: libc::HWTSTAMP_TX_ON as i32,
        rx_filter: libc::HWTSTAMP_FILTER_PTP_V2_L4_EVENT as i32,
    };
    let mut ifr = ifreq(
        iface,
        &mut cfg as *mut libc::hwtstamp_config as *mut libc::c_void,
    )?;
    // SAFETY: as in ts_info; data points at a live hwtstamp_config.
    cerr(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSHWTSTAMP as _, &mut ifr) })?;
    Ok(cfg.rx_filter)
}

/// Interface addresses: (first IPv4, MAC).
pub fn iface_addrs(iface: &str) -> io::Result<(Option<Ipv4Addr>, Option<[u8; 6]>)> {
    let mut v4 = None;
    let mut mac = None;
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        if ifa.interface_name != iface {
            continue;
        }
        if let Some(a) = ifa.address {
            if let Some(sin) = a.as_sockaddr_in() {
                v4.get_or_insert(sin.ip());
            } else if let Some(l) = a.as_link_addr()
                && let Some(m) = l.addr()
            {
                mac = Some(m);
            }
        }
    }
    if v4.is_none() && mac.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {iface} not found"),
        ));
    }
    Ok((v4, mac))
}

/// Timestamping mode of a socket pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsMode {
    /// Kernel software timestamps (`CLOCK_REALTIME`).
    Software,
    /// NIC hardware timestamps (PHC).
    Hardware,
}

/// The two PTP sockets on one interface.
#[derive(Debug)]
pub struct PtpSockets {
    /// UDP 319.
    pub event: Socket,
    /// UDP 320.
    pub general: Socket,
    /// Timestamping mode.
    pub mode: TsMode,
    /// Next OPT_ID the kernel will assign on `event`.
    next_id: u32,
    iface: String,
}

fn open_one(port: u16, iface: &str, ifaddr: Ipv4Addr, ts_flags: Option<u32>) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    s.join_multicast_v4(&PTP_GROUP, &ifaddr)?;
    s.set_multicast_if_v4(&ifaddr)?;
    s.set_multicast_loop_v4(false)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_tos_v4(TOS_EF)?;
    s.set_nonblocking(true)?;
    let zero: libc::c_int = 0;
    // SAFETY: valid fd, pointer to a live c_int of the stated size.
    cerr(unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_ALL,
            &zero as *const _ as *const libc::c_void,
            4,
        )
    })?;
    if let Some(flags) = ts_flags {
        let f: libc::c_uint = flags;
        // SAFETY: valid fd, pointer to a live c_uint of the stated size.
        cerr(unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPING,
                &f as *const _ as *const libc::c_void,
                4,
            )
        })?;
    }
    Ok(s)
}

impl PtpSockets {
    /// Opens both sockets on `iface`. `want_hw`: try hardware timestamping
    /// (falls back to software when the interface cannot). Errors name the
    /// step that failed.
    pub fn open(iface: &str, want_hw: bool) -> io::Result<PtpSockets> {
        let (v4, _) = iface_addrs(iface)?;
        let ifaddr = v4.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{iface} has no IPv4 address"),
            )
        })?;
        let info = ts_info(iface).unwrap_or_default();
        let hw = want_hw && info.hardware_capable() && enable_hw_timestamping(iface).is_ok();
        let common = libc::SOF_TIMESTAMPING_OPT_ID | libc::SOF_TIMESTAMPING_OPT_TSONLY;
        let flags = if hw {
            libc::SOF_TIMESTAMPING_RX_HARDWARE
                | libc::SOF_TIMESTAMPING_TX_HARDWARE
                | libc::SOF_TIMESTAMPING_RAW_HARDWARE
                | common
        } else {
            libc::SOF_TIMESTAMPING_RX_SOFTWARE
                | libc::SOF_TIMESTAMPING_TX_SOFTWARE
                | libc::SOF_TIMESTAMPING_SOFTWARE
                | common
        };
        let event = open_one(EVENT_PORT, iface, ifaddr, Some(flags))
            .map_err(|e| io::Error::new(e.kind(), format!("event socket {iface}:319: {e}")))?;
        let general = open_one(GENERAL_PORT, iface, ifaddr, None)
            .map_err(|e| io::Error::new(e.kind(), format!("general socket {iface}:320: {e}")))?;
        Ok(PtpSockets {
            event,
            general,
            mode: if hw {
                TsMode::Hardware
            } else {
                TsMode::Software
            },
            next_id: 0,
            iface: iface.to_string(),
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Sends an event message to 224.0.1.129:319; returns the OPT_ID its TX
    /// timestamp will carry.
    pub fn send_event(&mut self, data: &[u8]) -> io::Result<u32> {
        self.event.send_to(
            data,
            &SocketAddr::V4(SocketAddrV4::new(PTP_GROUP, EVENT_PORT)).into(),
        )?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    /// Sends a general message to 224.0.1.129:320.
    pub fn send_general(&mut self, data: &[u8]) -> io::Result<()> {
        self.general.send_to(
            data,
            &SocketAddr::V4(SocketAddrV4::new(PTP_GROUP, GENERAL_PORT)).into(),
        )?;
        Ok(())
    }
}

/// Enables software RX timestamps (`SO_TIMESTAMPING` RX_SOFTWARE|SOFTWARE)
/// on any datagram socket (used by the precision harness).
pub fn enable_rx_sw_timestamps(fd: RawFd) -> io::Result<()> {
    let f: libc::c_uint = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;
    // SAFETY: valid fd, pointer to a live c_uint of the stated size.
    cerr(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            &f as *const _ as *const libc::c_void,
            4,
        )
    })?;
    Ok(())
}

/// What [`recv_ts`] returns for one datagram: its length, bytes; its kernel
/// timestamp; and, from the error queue, the `SOF_TIMESTAMPING_OPT_ID`.
pub type RecvTs = (usize, Option<KernelTs>, Option<u32>);

/// Receives one datagram (non-blocking) with its kernel timestamp.
/// `Ok(None)` when nothing is queued. With `errqueue`, reads `MSG_ERRQUEUE`
/// and returns the OPT_ID in the second slot.
pub fn recv_ts(
    fd: RawFd,
    buf: &mut [u8],
    want_hw: bool,
    errqueue: bool,
) -> io::Result<Option<RecvTs>> {
    // u64-aligned control buffer, big enough for SCM_TIMESTAMPING (3×16 B)
    // and IP_RECVERR (sock_extended_err + sockaddr_in), with headers.
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let flags = libc::MSG_DONTWAIT | if errqueue { libc::MSG_ERRQUEUE } else { 0 };
    // SAFETY: msg points at live iov/control buffers of the stated lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let clen = (msg.msg_controllen as usize).min(std::mem::size_of_val(&control));
    // SAFETY: control is a live u64 array; we view its first clen bytes.
    let cbytes = unsafe { std::slice::from_raw_parts(control.as_ptr() as *const u8, clen) };
    let (ts, id) = parse_cmsgs(cbytes, want_hw);
    Ok(Some((n as usize, ts, id)))
}

impl PtpSockets {
    /// Waits up to `timeout_ms` for either socket to be readable (an
    /// interrupted wait returns early, Ok).
    ///
    /// Errors: `poll(2)` failures other than EINTR.
    pub fn wait(&self, timeout_ms: u16) -> io::Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [
            PollFd::new(self.event.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.general.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Receives one queued event message (port 319) with its kernel receive
    /// timestamp (hardware in hardware mode); `Ok(None)` when none is queued.
    pub fn recv_event(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Option<KernelTs>)>> {
        let hw = self.mode == TsMode::Hardware;
        Ok(recv_ts(self.event.as_raw_fd(), buf, hw, false)?.map(|(n, ts, _)| (n, ts)))
    }

    /// Receives one queued general message (port 320); `Ok(None)` when none.
    pub fn recv_general(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(recv_ts(self.general.as_raw_fd(), buf, false, false)?.map(|(n, _, _)| n))
    }

    /// Reads one transmit timestamp from the event socket's error queue:
    /// `(timestamp, SOF_TIMESTAMPING_OPT_ID of the send)`; `Ok(None)` when
    /// the queue is empty. Entries without both are returned as `None` fields.
    pub fn recv_tx_timestamp(
        &self,
        buf: &mut [u8],
    ) -> io::Result<Option<(Option<KernelTs>, Option<u32>)>> {
        let hw = self.mode == TsMode::Hardware;
        Ok(recv_ts(self.event.as_raw_fd(), buf, hw, true)?.map(|(_, ts, id)| (ts, id)))
    }
}

impl Phc {
    /// [`Phc::correlate`] against `CLOCK_REALTIME`: PHC − CLOCK_REALTIME, ns.
    ///
    /// Errors: the ioctl's errno.
    pub fn minus_realtime(&self, samples: u32) -> io::Result<i64> {
        let c = self.correlate(samples, libc::CLOCK_REALTIME)?;
        Ok(c.phc_ns - c.sys_ns)
    }
}

/// A PTP hardware clock (`/dev/ptpN`).
#[derive(Debug)]
pub struct Phc {
    file: std::fs::File,
    path: String,
}

/// One PHC ↔ system-clock correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhcCorrelation {
    /// PHC reading, ns.
    pub phc_ns: i64,
    /// System clock (the `clockid` asked for) at the same instant, ns.
    pub sys_ns: i64,
    /// Width of the tightest sandwich (uncertainty), ns.
    pub window_ns: i64,
}

impl Phc {
    /// Opens `/dev/ptpN` read-only (follow mode), or read-write for
    /// `clock_adjtime`.
    pub fn open(index: i32, writable: bool) -> io::Result<Phc> {
        let path = format!("/dev/ptp{index}");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)?;
        Ok(Phc { file, path })
    }
    /// Path.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The dynamic clock id (`FD_TO_CLOCKID`: `(~fd << 3) | 3`).
    pub fn clock_id(&self) -> libc::clockid_t {
        ((!self.file.as_raw_fd()) << 3) | 3
    }
    /// Reads the PHC, ns.
    pub fn now_ns(&self) -> io::Result<i64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id from an open fd; ts is a live timespec.
        cerr(unsafe { libc::clock_gettime(self.clock_id(), &mut ts) })?;
        Ok(ts.tv_sec * 1_000_000_000 + ts.tv_nsec)
    }
    /// `PTP_SYS_OFFSET_EXTENDED` with `samples` (1..=25) sandwiches against
    /// `clockid` (e.g. `CLOCK_MONOTONIC_RAW`; kernels before 6.10 ignore the
    /// field and use `CLOCK_REALTIME`); returns the tightest one.
    pub fn correlate(&self, samples: u32, clockid: libc::clockid_t) -> io::Result<PhcCorrelation> {
        // SAFETY: plain data; zeroed is valid.
        let mut req: libc::ptp_sys_offset_extended = unsafe { std::mem::zeroed() };
        req.n_samples = samples.clamp(1, libc::PTP_MAX_SAMPLES);
        req.clockid = clockid;
        // SAFETY: fd is a PTP clock; req is a live, correctly sized struct.
        cerr(unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::PTP_SYS_OFFSET_EXTENDED as _,
                &mut req,
            )
        })?;
        let ns = |t: &libc::ptp_clock_time| t.sec * 1_000_000_000 + t.nsec as i64;
        let best = req.ts[..req.n_samples as usize]
            .iter()
            .map(|s| {
                (
                    ns(&s[2]) - ns(&s[0]),
                    ns(&s[0]) + (ns(&s[2]) - ns(&s[0])) / 2,
                    ns(&s[1]),
                )
            })
            .min_by_key(|x| x.0)
            .ok_or_else(|| io::Error::other("no samples"))?;
        Ok(PhcCorrelation {
            phc_ns: best.2,
            sys_ns: best.1,
            window_ns: best.0,
        })
    }
    /// Sets the PHC frequency offset (`clock_adjtime`, `ADJ_FREQUENCY`);
    /// only for an explicitly configured disciplined PHC.
    pub fn adj_frequency(&self, ppb: f64) -> io::Result<()> {
        // SAFETY: plain data; zeroed is valid.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        tx.modes = libc::ADJ_FREQUENCY;
        tx.freq = (ppb / 1000.0 * 65536.0).round() as libc::c_long;
        // SAFETY: valid clock id; tx is a live timex.
        cerr(unsafe { libc::clock_adjtime(self.clock_id(), &mut tx) })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let len = std::mem::size_of::<libc::cmsghdr>() + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<EthtoolTsInfo>(), 44);
        assert_eq!(std::mem::size_of::<libc::hwtstamp_config>(), 12);
        assert_eq!(std::mem::size_of::<libc::sock_extended_err>(), 16);
        assert_eq!(
            std::mem::size_of::<libc::ptp_sys_offset_extended>(),
            16 + 25 * 3 * 16
        );
        assert_eq!(std::mem::size_of::<IfreqPtr>(), 40);
        assert_eq!(std::mem::size_of::<libc::cmsghdr>(), 16);
        // _IOWR('=', 9, 1216)
        assert_eq!(libc::PTP_SYS_OFFSET_EXTENDED, 0xC4C0_3D09);
    }

    #[test]
    fn parses_scm_timestamping_and_recverr() {
        let mut ts = Vec::new();
        for (s, n) in [(1_700_000_000i64, 5i64), (0, 0), (42, 7)] {
            ts.extend_from_slice(&s.to_ne_bytes());
            ts.extend_from_slice(&n.to_ne_bytes());
        }
        let mut ee = Vec::new();
        ee.extend_from_slice(&libc::ENOMSG.to_ne_bytes()); // ee_errno
        ee.extend_from_slice(&[libc::SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 0]);
        ee.extend_from_slice(&0u32.to_ne_bytes()); // ee_info = SCM_TSTAMP_SND
        ee.extend_from_slice(&77u32.to_ne_bytes()); // ee_data = OPT_ID
        ee.extend_from_slice(&[0; 16]); // offender sockaddr_in
        let mut buf = cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMPING, &ts);
        buf.extend(cmsg(libc::SOL_IP, libc::IP_RECVERR, &ee));
        assert_eq!(
            parse_cmsgs(&buf, false),
            (
                Some(KernelTs::Software(1_700_000_000_000_000_005)),
                Some(77)
            )
        );
        assert_eq!(
            parse_cmsgs(&buf, true),
            (Some(KernelTs::Hardware(42_000_000_007)), Some(77))
        );
        // Truncated and garbage buffers: no panic, nothing found.
        for cut in 0..buf.len() {
            let _ = parse_cmsgs(&buf[..cut], true);
        }
        let mut bad = buf.clone();
        bad[0..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(parse_cmsgs(&bad, false), (None, None));
    }

    #[test]
    fn loopback_capabilities_and_missing_phc() {
        // lo supports software timestamps on every Linux; it has no PHC.
        let info = ts_info("lo").expect("ETHTOOL_GET_TS_INFO on lo");
        assert!(info.software_capable(), "{info:?}");
        assert!(!info.hardware_capable());
        assert!(ts_info("no-such-if0").is_err());
        assert!(Phc::open(99, false).is_err());
    }
}
