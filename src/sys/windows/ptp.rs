//! Windows IO for PTP: Winsock UDP 319 (event) and 320 (general) on the PTP
//! group, joined by the interface's IPv4 address (`imr_interface` holds the
//! address, not the `0.0.0.<ifindex>` form), TTL 1, loopback off,
//! `IP_PKTINFO` on. No administrator rights are needed (ports below 1024
//! are not privileged on Windows). Each `unsafe` block has a `// SAFETY:`.
//!
//! Receive timestamps, best first:
//! 1. `SIO_TIMESTAMPING` with `TIMESTAMPING_FLAG_RX` on the event socket: the
//!    stack stamps each datagram and `WSARecvMsg` returns it as a
//!    `SOL_SOCKET`/`SO_TIMESTAMP` control message in QPC ticks (Windows build
//!    ≥ 20348 with the NIC driver's `*SoftwareTimestamp` keyword set). The
//!    ioctl failing (`WSAEOPNOTSUPP` before 20348 and under wine), or
//!    [`MISSING_LIMIT`] datagrams in a row without a stamp (or with a zero
//!    one) before any stamp came, selects path 2 for good.
//! 2. QueryPerformanceCounter read in user space right after the wait
//!    (`WSAPoll`) that saw the event socket readable, for the first datagram
//!    read after it; later datagrams of the same wake-up get QPC right after
//!    their `WSARecvMsg` returns. (GStreamer's ptp helper stamps this way on
//!    Windows.)
//!
//! Transmit timestamps of event messages, best first (the decisions are in
//! `sys/windows/txstamp.rs`, pure and unit-tested on Linux):
//! 1. `SIO_TIMESTAMPING` with `TIMESTAMPING_FLAG_TX` too (asked together with
//!    RX; if that is refused, RX alone): the message goes out by
//!    `WSASendMsg` with a `SO_TIMESTAMP_ID` control message, and
//!    `SIO_GET_TX_TIMESTAMP` polls its stamp (QPC ticks) by that id. Nothing
//!    signals a stamp's arrival, so [`PtpSockets::wait`] waits at most 1 ms
//!    while one is awaited; a stamp that does not come within 20 ms (or is
//!    implausible) gives that send its QPC-before-send reading, and 8 such
//!    sends in a row before any stamp came, the ioctl failing, or
//!    `WSASendMsg` failing (that send is retried by `sendto`), select path 2
//!    for good.
//! 2. QPC read just before the send (`sendto`).
//!
//! [`PtpSockets::tx_timestamp_path`] says which, beside the receive path.
//! `GetInterfaceActiveTimestampCapabilities` (iphlpapi, build ≥ 20348) is
//! loaded at run time with `GetProcAddress`, so the binary still loads on
//! older Windows and under wine; what it said is in the paths' notes.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::windows::io::AsRawSocket;

use socket2::Socket;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ConvertInterfaceIndexToLuid, GetIpAddrTable, INTERFACE_TIMESTAMP_CAPABILITIES, MIB_IPADDRROW_XP,
};
use windows_sys::Win32::NetworkManagement::Ndis::NET_LUID_LH;
use windows_sys::Win32::Networking::WinSock as ws;
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};

use super::clock::{qpc_freq, qpc_ticks, qpc_ticks_to_ns};
use crate::sys::RxTimestamp;
use crate::sys::ptp::{EVENT_PORT, GENERAL_PORT, PTP_GROUP, PtpRx, TsInfo, TsMode};
use crate::sys::socket::{self, Iface, SocketError, io_err};
use crate::sys::txstamp::{self, Poll, TxPath, TxTracker};
use crate::sys::wincmsg;

/// DSCP Expedited Forwarding (46) in the TOS byte (Windows may ignore it
/// without a QoS policy; not an error).
const TOS_EF: u32 = 46 << 2;

/// Datagrams in a row without a usable `SO_TIMESTAMP`, before any stamp was
/// seen, after which the user-space QPC path is chosen for good.
pub const MISSING_LIMIT: u32 = 8;

/// [`TsInfo::so_timestamping`] bit: software receive stamps active
/// (`GetInterfaceActiveTimestampCapabilities`, `SoftwareCapabilities.AllReceive`).
pub const TS_SW_RX: u32 = 1;
/// [`TsInfo::so_timestamping`] bit: software transmit stamps active.
pub const TS_SW_TX: u32 = 2;

impl TsInfo {
    /// Hardware timestamps: not used on Windows.
    pub fn hardware_capable(&self) -> bool {
        false
    }
    /// Software receive stamps are active on the interface.
    pub fn software_capable(&self) -> bool {
        self.so_timestamping & TS_SW_RX != 0
    }
}

/// The interface's index, from its IPv4 address (`GetIpAddrTable`).
fn ifindex_of(ip: Ipv4Addr) -> Option<u32> {
    let mut size = 0u32;
    // SAFETY: a null table with size 0 asks for the size only.
    unsafe { GetIpAddrTable(std::ptr::null_mut(), &mut size, 0) };
    if size == 0 || size > 1 << 20 {
        return None;
    }
    let mut buf = vec![0u64; (size as usize).div_ceil(8)];
    // SAFETY: buf is a live, 8-aligned buffer of at least `size` bytes.
    let rc = unsafe { GetIpAddrTable(buf.as_mut_ptr().cast(), &mut size, 0) };
    if rc != 0 {
        return None;
    }
    let bytes = size as usize;
    // SAFETY: the first u32 of the filled table is dwNumEntries.
    let n = unsafe { *(buf.as_ptr() as *const u32) } as usize;
    let row = std::mem::size_of::<MIB_IPADDRROW_XP>();
    (0..n).find_map(|i| {
        let off = 4 + i * row;
        if off + row > bytes {
            return None;
        }
        // SAFETY: off + row ≤ the filled size; the row is packed(1) plain
        // data, read unaligned.
        let r: MIB_IPADDRROW_XP =
            unsafe { std::ptr::read_unaligned((buf.as_ptr() as *const u8).add(off).cast()) };
        (Ipv4Addr::from(u32::from_be(r.dwAddr)) == ip).then_some(r.dwIndex)
    })
}

type GetCapsFn =
    unsafe extern "system" fn(*const NET_LUID_LH, *mut INTERFACE_TIMESTAMP_CAPABILITIES) -> u32;

/// `GetInterfaceActiveTimestampCapabilities` for the interface holding
/// `ip`, loaded at run time.
///
/// Errors: a text naming what is missing (the function before build 20348
/// and under wine, the interface, or the call's error code).
fn active_caps(ip: Ipv4Addr) -> Result<INTERFACE_TIMESTAMP_CAPABILITIES, &'static str> {
    let name: Vec<u16> = "iphlpapi.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated UTF-16 name; System32 only.
    let lib = unsafe {
        LoadLibraryExW(
            name.as_ptr(),
            std::ptr::null_mut(),
            LOAD_LIBRARY_SEARCH_SYSTEM32,
        )
    };
    if lib.is_null() {
        return Err("iphlpapi.dll not loadable");
    }
    // SAFETY: a live module handle and a NUL-terminated ASCII name.
    let f = unsafe {
        GetProcAddress(
            lib,
            c"GetInterfaceActiveTimestampCapabilities".as_ptr().cast(),
        )
    };
    let Some(f) = f else {
        return Err(
            "GetInterfaceActiveTimestampCapabilities absent (Windows build < 20348, or wine)",
        );
    };
    // SAFETY: the documented signature of GetInterfaceActiveTimestampCapabilities
    // (iphlpapi.h): (const NET_LUID*, INTERFACE_TIMESTAMP_CAPABILITIES*) -> DWORD.
    let f = unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, GetCapsFn>(f) };
    let idx = ifindex_of(ip).ok_or("no interface holds this IPv4 address (GetIpAddrTable)")?;
    let mut luid = NET_LUID_LH { Value: 0 };
    // SAFETY: luid is a live NET_LUID_LH the call writes.
    if unsafe { ConvertInterfaceIndexToLuid(idx, &mut luid) } != 0 {
        return Err("ConvertInterfaceIndexToLuid failed");
    }
    let mut caps = INTERFACE_TIMESTAMP_CAPABILITIES::default();
    // SAFETY: f has the declared signature; luid and caps are live.
    if unsafe { f(&luid, &mut caps) } != 0 {
        return Err("GetInterfaceActiveTimestampCapabilities failed");
    }
    Ok(caps)
}

/// Interface timestamping capabilities: the software stamps that are
/// active ([`TS_SW_RX`], [`TS_SW_TX`]); no PHC (`phc_index` −1).
///
/// Errors: `Unsupported` naming why they cannot be asked (the function is
/// absent before build 20348 and under wine), `InvalidInput` for an
/// interface that is not an IPv4 address.
pub fn ts_info(iface: &str) -> io::Result<TsInfo> {
    let ip = socket::lookup(iface)?.ipv4;
    let caps = active_caps(ip).map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e))?;
    let sw = caps.SoftwareCapabilities;
    Ok(TsInfo {
        so_timestamping: if sw.AllReceive { TS_SW_RX } else { 0 }
            | if sw.AllTransmit || sw.TaggedTransmit {
                TS_SW_TX
            } else {
                0
            },
        phc_index: -1,
        tx_types: 0,
        rx_filters: 0,
    })
}

/// Which receive timestamps the event socket delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxPath {
    /// `SIO_TIMESTAMPING` is on; no stamp has been judged missing yet.
    Kernel,
    /// QPC in user space; the static text says why.
    User(&'static str),
}

/// `WSARecvMsg`, from `SIO_GET_EXTENSION_FUNCTION_POINTER`.
type RecvMsgFn = unsafe extern "system" fn(
    ws::SOCKET,
    *mut ws::WSAMSG,
    *mut u32,
    *mut windows_sys::Win32::System::IO::OVERLAPPED,
    ws::LPWSAOVERLAPPED_COMPLETION_ROUTINE,
) -> i32;

/// The two PTP sockets on one interface.
pub struct PtpSockets {
    event: Socket,
    general: Socket,
    /// Timestamping mode (always software here).
    pub mode: TsMode,
    /// The transport (always UDP/IPv4 here).
    pub transport: crate::sys::ptp::Transport,
    iface: String,
    recvmsg: RecvMsgFn,
    rx_path: Cell<RxPath>,
    /// Stamps seen / datagrams without one in a row (kernel path).
    stamps_seen: Cell<u64>,
    missing_in_row: Cell<u32>,
    /// QPC ticks at the end of the last wait that saw the event socket
    /// readable, until the first event datagram takes it.
    wake: Cell<Option<i64>>,
    /// Event messages not yet handed back by
    /// [`PtpSockets::recv_tx_timestamp`], and the transmit-stamp path.
    tx: RefCell<TxTracker>,
    next_id: u32,
    caps_note: &'static str,
    tx_caps_note: &'static str,
}

impl std::fmt::Debug for PtpSockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtpSockets")
            .field("iface", &self.iface)
            .field("rx_path", &self.rx_path.get())
            .field("tx_path", &self.tx.borrow().path())
            .finish()
    }
}

fn wsa_err() -> io::Error {
    // SAFETY: reads the calling thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() })
}

fn raw(s: &Socket) -> ws::SOCKET {
    s.as_raw_socket() as ws::SOCKET
}

/// `setsockopt(level, name, v)` with an int value.
fn set_int(s: &Socket, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: a valid socket; a pointer to a live i32 and its size.
    let rc = unsafe { ws::setsockopt(raw(s), level, name, (&v as *const i32).cast(), 4) };
    if rc != 0 { Err(wsa_err()) } else { Ok(()) }
}

/// One PTP socket: the common multicast open and join ([`crate::sys::socket`];
/// on Windows the join passes the interface address), multicast send on
/// the interface, TTL 1, loopback off, `IP_PKTINFO`, non-blocking.
fn open_one(port: u16, iface: &Iface) -> Result<Socket, SocketError> {
    let s = socket::udp_v4()?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .map_err(io_err("bind"))?;
    socket::join_v4(&s, PTP_GROUP, None, Some(iface))?;
    socket::set_multicast_send(&s, iface.ipv4, 1, false)?;
    let _ = s.set_tos_v4(TOS_EF);
    set_int(&s, wincmsg::IPPROTO_IP, wincmsg::IP_PKTINFO, 1).map_err(io_err("IP_PKTINFO"))?;
    s.set_nonblocking(true).map_err(io_err("FIONBIO"))?;
    Ok(s)
}

/// `WSARecvMsg`'s pointer for `s`.
fn recvmsg_fn(s: &Socket) -> io::Result<RecvMsgFn> {
    let guid = ws::WSAID_WSARECVMSG;
    let mut f: ws::LPFN_WSARECVMSG = None;
    let mut n = 0u32;
    // SAFETY: in = a live GUID, out = a live function-pointer slot of the
    // stated size; synchronous (no overlapped).
    let rc = unsafe {
        ws::WSAIoctl(
            raw(s),
            ws::SIO_GET_EXTENSION_FUNCTION_POINTER,
            (&guid as *const windows_sys::core::GUID).cast(),
            std::mem::size_of_val(&guid) as u32,
            (&mut f as *mut ws::LPFN_WSARECVMSG).cast(),
            std::mem::size_of::<ws::LPFN_WSARECVMSG>() as u32,
            &mut n,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc != 0 {
        return Err(wsa_err());
    }
    f.ok_or_else(|| io::Error::other("WSARecvMsg: null extension pointer"))
}

/// `SIO_TIMESTAMPING` on `s` with `flags` (`TIMESTAMPING_FLAG_RX`,
/// `TIMESTAMPING_FLAG_TX`) and room for [`txstamp::TX_BUFFERED`] TX stamps;
/// the error is the Winsock code.
fn enable_timestamps(s: &Socket, flags: u32) -> Result<(), i32> {
    let cfg = ws::TIMESTAMPING_CONFIG {
        Flags: flags,
        TxTimestampsBuffered: if flags & ws::TIMESTAMPING_FLAG_TX != 0 {
            txstamp::TX_BUFFERED
        } else {
            0
        },
    };
    let mut n = 0u32;
    // SAFETY: in = a live TIMESTAMPING_CONFIG of the stated size; no output.
    let rc = unsafe {
        ws::WSAIoctl(
            raw(s),
            ws::SIO_TIMESTAMPING,
            (&cfg as *const ws::TIMESTAMPING_CONFIG).cast(),
            std::mem::size_of::<ws::TIMESTAMPING_CONFIG>() as u32,
            std::ptr::null_mut(),
            0,
            &mut n,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc != 0 {
        // SAFETY: reads the calling thread's last Winsock error.
        Err(unsafe { ws::WSAGetLastError() })
    } else {
        Ok(())
    }
}

/// `SIO_GET_TX_TIMESTAMP` for `id` on `s`: the stamp (QPC ticks), or
/// `NotYet` (`WSAEWOULDBLOCK`; the ioctl never blocks), or the error.
fn get_tx_timestamp(s: &Socket, id: u32) -> Poll {
    let mut stamp = 0u64;
    let mut n = 0u32;
    // SAFETY: in = a live u32 id, out = a live u64, both of the stated
    // sizes; synchronous (no overlapped).
    let rc = unsafe {
        ws::WSAIoctl(
            raw(s),
            ws::SIO_GET_TX_TIMESTAMP,
            (&id as *const u32).cast(),
            4,
            (&mut stamp as *mut u64).cast(),
            8,
            &mut n,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc == 0 {
        return if n == 8 {
            Poll::Stamp(stamp)
        } else {
            Poll::NotYet
        };
    }
    // SAFETY: reads the calling thread's last Winsock error.
    Poll::from_error(unsafe { ws::WSAGetLastError() })
}

/// Sends `data` to `to` with `WSASendMsg` and the control bytes `control`
/// (here one `SO_TIMESTAMP_ID` entry).
fn send_msg(s: &Socket, data: &[u8], to: SocketAddrV4, control: &mut [u8]) -> io::Result<()> {
    let mut name = ws::SOCKADDR_IN {
        sin_family: ws::AF_INET,
        sin_port: to.port().to_be(),
        sin_addr: ws::IN_ADDR {
            S_un: ws::IN_ADDR_0 {
                S_addr: u32::from(*to.ip()).to_be(),
            },
        },
        sin_zero: [0; 8],
    };
    let mut buf = ws::WSABUF {
        len: data.len().min(u32::MAX as usize) as u32,
        // WSASendMsg only reads the data buffer.
        buf: data.as_ptr().cast_mut(),
    };
    let msg = ws::WSAMSG {
        name: (&mut name as *mut ws::SOCKADDR_IN).cast(),
        namelen: std::mem::size_of::<ws::SOCKADDR_IN>() as i32,
        lpBuffers: &mut buf,
        dwBufferCount: 1,
        Control: ws::WSABUF {
            len: control.len() as u32,
            buf: control.as_mut_ptr(),
        },
        dwFlags: 0,
    };
    let mut sent = 0u32;
    // SAFETY: msg points at a live SOCKADDR_IN, one WSABUF over `data` (only
    // read) and the control bytes, all of the stated sizes and alive for the
    // call; synchronous (no overlapped).
    let rc = unsafe { ws::WSASendMsg(raw(s), &msg, 0, &mut sent, std::ptr::null_mut(), None) };
    if rc != 0 { Err(wsa_err()) } else { Ok(()) }
}

/// Everything one `WSARecvMsg` tells.
struct Received {
    len: usize,
    /// QPC ticks right after the call returned.
    after: i64,
    cm: wincmsg::WinCmsgs,
    src: Option<IpAddr>,
}

const WSAEWOULDBLOCK: i32 = 10035;
const WSAEMSGSIZE: i32 = 10040;
const WSAECONNRESET: i32 = 10054;

impl PtpSockets {
    /// [`Self::open`] over `transport`.
    ///
    /// Errors: Layer 2 is `Unsupported` on Windows (no packet sockets);
    /// otherwise as [`Self::open`].
    pub fn open_with(
        iface: &str,
        want_hw: bool,
        transport: crate::sys::ptp::Transport,
    ) -> io::Result<PtpSockets> {
        match transport {
            crate::sys::ptp::Transport::Udp4 => Self::open(iface, want_hw),
            crate::sys::ptp::Transport::L2 => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "PTP over IEEE 802.3 (transport l2): Linux only",
            )),
        }
    }

    /// The interface's MAC address, when known.
    pub fn mac(&self) -> Option<[u8; 6]> {
        socket::lookup(&self.iface).ok().and_then(|i| i.mac)
    }

    /// Received Layer-2 frames not taken: none here (UDP only).
    pub fn frame_drops(&self) -> crate::ptp::ieee8023::FrameDrops {
        Default::default()
    }

    /// Opens both sockets on `iface` (an IPv4 address of the interface;
    /// names need Linux). `want_hw` is ignored: Windows stamps in software.
    ///
    /// Errors name the step that failed (`bind`, `IP_ADD_MEMBERSHIP`,
    /// `WSARecvMsg`, …) and the socket.
    pub fn open(iface: &str, _want_hw: bool) -> io::Result<PtpSockets> {
        let found = socket::lookup(iface)?;
        let named = |what: &str, e: SocketError| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("{what} socket {iface}: {e}"))
        };
        let event = open_one(EVENT_PORT, &found).map_err(|e| named("event (319)", e))?;
        let general = open_one(GENERAL_PORT, &found).map_err(|e| named("general (320)", e))?;
        let recvmsg = recvmsg_fn(&event)
            .map_err(|e| io::Error::new(e.kind(), format!("WSARecvMsg pointer: {e}")))?;
        let caps = active_caps(found.ipv4);
        let caps_note = match caps {
            Ok(c) if c.SoftwareCapabilities.AllReceive => "NIC software RX stamps active",
            Ok(_) => "NIC software RX stamps inactive (*SoftwareTimestamp)",
            Err(e) => e,
        };
        let tx_caps_note = match caps {
            Ok(c)
                if c.SoftwareCapabilities.AllTransmit || c.SoftwareCapabilities.TaggedTransmit =>
            {
                "NIC software TX stamps active"
            }
            Ok(_) => "NIC software TX stamps inactive (*SoftwareTimestamp)",
            Err(e) => e,
        };
        let paths = txstamp::configure(|flags| enable_timestamps(&event, flags));
        let rx_path = match paths.rx {
            Ok(()) => RxPath::Kernel,
            Err(why) => RxPath::User(why),
        };
        Ok(PtpSockets {
            event,
            general,
            mode: TsMode::Software,
            transport: crate::sys::ptp::Transport::Udp4,
            iface: found.name,
            recvmsg,
            rx_path: Cell::new(rx_path),
            stamps_seen: Cell::new(0),
            missing_in_row: Cell::new(0),
            wake: Cell::new(None),
            tx: RefCell::new(TxTracker::new(paths.tx, qpc_freq())),
            next_id: 0,
            caps_note,
            tx_caps_note,
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Which receive timestamps are in use, and why: `"SO_TIMESTAMP
    /// (kernel QPC)"` or `"QPC after wait (user space)"`, then a note.
    pub fn timestamp_path(&self) -> (&'static str, &'static str) {
        match self.rx_path.get() {
            RxPath::Kernel => ("SO_TIMESTAMP (kernel QPC)", self.caps_note),
            RxPath::User(why) => ("QPC after wait (user space)", why),
        }
    }

    /// Which transmit timestamps event messages get, and why:
    /// `"SIO_GET_TX_TIMESTAMP (kernel QPC)"` or `"QPC before send (user
    /// space)"`, then a note.
    pub fn tx_timestamp_path(&self) -> (&'static str, &'static str) {
        self.tx.borrow().path().describe(self.tx_caps_note)
    }

    /// The event socket's receive stamps are taken in user space (QPC after
    /// the wait), with the wake-up latency's one-sided jitter in them.
    pub fn user_space_rx(&self) -> bool {
        matches!(self.rx_path.get(), RxPath::User(_))
    }

    /// Sends an event message to 224.0.1.129:319; returns the id its TX
    /// timestamp will carry (the kernel's on the kernel TX path, sent by
    /// `WSASendMsg` with `SO_TIMESTAMP_ID`; else QPC read just before the
    /// send).
    ///
    /// Errors: `sendto`'s (a failing `WSASendMsg` selects plain `sendto`
    /// with QPC-before-send stamps for good, and is retried that way).
    pub fn send_event(&mut self, data: &[u8]) -> io::Result<u32> {
        let id = self.next_id;
        let to = SocketAddrV4::new(PTP_GROUP, EVENT_PORT);
        let kernel = self.tx.borrow().path() == TxPath::Kernel;
        let mut t = qpc_ticks();
        let tagged =
            kernel && send_msg(&self.event, data, to, &mut wincmsg::timestamp_id(id)).is_ok();
        if !tagged {
            if kernel {
                // WSASendMsg with the SO_TIMESTAMP_ID failed: plain sends
                // from now on (a network error repeats just below).
                self.tx
                    .borrow_mut()
                    .give_up("WSASendMsg with SO_TIMESTAMP_ID failed");
                t = qpc_ticks();
            }
            self.event.send_to(data, &SocketAddr::V4(to).into())?;
        }
        self.next_id = self.next_id.wrapping_add(1);
        self.tx.borrow_mut().sent(id, t);
        Ok(id)
    }

    /// Sends a general message to 224.0.1.129:320.
    ///
    /// Errors: `sendto`'s.
    pub fn send_general(&mut self, data: &[u8]) -> io::Result<()> {
        self.general.send_to(
            data,
            &SocketAddr::V4(SocketAddrV4::new(PTP_GROUP, GENERAL_PORT)).into(),
        )?;
        Ok(())
    }

    /// Waits up to `timeout_ms` for either socket to be readable
    /// (`WSAPoll`); reads QPC as soon as it returns. At most 1 ms while a
    /// kernel TX stamp is awaited (nothing signals its arrival).
    ///
    /// Errors: `WSAPoll` failures.
    pub fn wait(&self, timeout_ms: u16) -> io::Result<()> {
        let timeout_ms = if self.tx.borrow().awaiting_kernel() {
            timeout_ms.min(1)
        } else {
            timeout_ms
        };
        let mut fds = [
            ws::WSAPOLLFD {
                fd: raw(&self.event),
                events: ws::POLLRDNORM,
                revents: 0,
            },
            ws::WSAPOLLFD {
                fd: raw(&self.general),
                events: ws::POLLRDNORM,
                revents: 0,
            },
        ];
        // SAFETY: fds is a live array of 2 WSAPOLLFD.
        let rc = unsafe { ws::WSAPoll(fds.as_mut_ptr(), 2, timeout_ms as i32) };
        let t = qpc_ticks();
        if rc < 0 {
            return Err(wsa_err());
        }
        self.wake
            .set((fds[0].revents & ws::POLLRDNORM != 0).then_some(t));
        Ok(())
    }

    /// One non-blocking `WSARecvMsg`; `Ok(None)` when nothing is queued.
    /// Oversized datagrams and ICMP resets are skipped.
    fn recv(&self, s: &Socket, buf: &mut [u8]) -> io::Result<Option<Received>> {
        loop {
            // SAFETY: SOCKADDR_IN is plain data; zeroed is valid.
            let mut name: ws::SOCKADDR_IN = unsafe { std::mem::zeroed() };
            let mut control = [0u64; 16];
            let mut data = ws::WSABUF {
                len: buf.len().min(u32::MAX as usize) as u32,
                buf: buf.as_mut_ptr(),
            };
            let mut msg = ws::WSAMSG {
                name: (&mut name as *mut ws::SOCKADDR_IN).cast(),
                namelen: std::mem::size_of::<ws::SOCKADDR_IN>() as i32,
                lpBuffers: &mut data,
                dwBufferCount: 1,
                Control: ws::WSABUF {
                    len: std::mem::size_of_val(&control) as u32,
                    buf: control.as_mut_ptr().cast(),
                },
                dwFlags: 0,
            };
            let mut n = 0u32;
            // SAFETY: msg points at live name/data/control buffers of the
            // stated sizes; synchronous call (no overlapped).
            let rc =
                unsafe { (self.recvmsg)(raw(s), &mut msg, &mut n, std::ptr::null_mut(), None) };
            let after = qpc_ticks();
            if rc != 0 {
                let e = wsa_err();
                match e.raw_os_error() {
                    Some(WSAEWOULDBLOCK) => return Ok(None),
                    Some(WSAEMSGSIZE | WSAECONNRESET) => continue,
                    _ => return Err(e),
                }
            }
            let clen = (msg.Control.len as usize).min(std::mem::size_of_val(&control));
            // SAFETY: control is a live u64 array; its first clen bytes.
            let cbytes = unsafe { std::slice::from_raw_parts(control.as_ptr() as *const u8, clen) };
            let src = (name.sin_family == ws::AF_INET).then(|| {
                // SAFETY: S_un is a union of plain views of the same 4 bytes.
                IpAddr::V4(Ipv4Addr::from(u32::from_be(unsafe {
                    name.sin_addr.S_un.S_addr
                })))
            });
            return Ok(Some(Received {
                len: n as usize,
                after,
                cm: wincmsg::parse(cbytes),
                src,
            }));
        }
    }

    /// The receive stamp of an event datagram, QPC ticks: the kernel's
    /// `SO_TIMESTAMP` when the kernel path is on and it is plausible (not
    /// after the call returned, less than 1 s before), else the wake-up's
    /// QPC (first datagram after a wait that saw it), else QPC after the call.
    fn stamp(&self, r: &Received) -> i64 {
        let wake = self.wake.take();
        if self.rx_path.get() == RxPath::Kernel {
            let f = super::clock::qpc_freq();
            match r.cm.so_timestamp.map(|k| k as i64) {
                Some(k) if k <= r.after && r.after - k < f => {
                    self.stamps_seen.set(self.stamps_seen.get() + 1);
                    self.missing_in_row.set(0);
                    return k;
                }
                _ => {
                    let m = self.missing_in_row.get() + 1;
                    self.missing_in_row.set(m);
                    if self.stamps_seen.get() == 0 && m >= MISSING_LIMIT {
                        self.rx_path.set(RxPath::User(
                            "SO_TIMESTAMP missing or zero (NIC *SoftwareTimestamp off?)",
                        ));
                    }
                }
            }
        }
        wake.unwrap_or(r.after)
    }

    /// Receives one queued event message (port 319): length, receive
    /// timestamp ([`RxTimestamp::Local`], QPC ns), source and destination;
    /// `Ok(None)` when none is queued.
    ///
    /// Errors: `WSARecvMsg`'s.
    pub fn recv_event(&self, buf: &mut [u8]) -> io::Result<Option<PtpRx>> {
        let Some(r) = self.recv(&self.event, buf)? else {
            return Ok(None);
        };
        let t = self.stamp(&r);
        Ok(Some(PtpRx {
            len: r.len,
            ts: Some(RxTimestamp::Local(qpc_ticks_to_ns(t))),
            src: r.src,
            dst: r.cm.pktinfo.map(|(a, _)| IpAddr::V4(a)),
        }))
    }

    /// Receives one queued general message (port 320): length, source and
    /// destination (no timestamp); `Ok(None)` when none.
    ///
    /// Errors: `WSARecvMsg`'s.
    pub fn recv_general(&self, buf: &mut [u8]) -> io::Result<Option<PtpRx>> {
        Ok(self.recv(&self.general, buf)?.map(|r| PtpRx {
            len: r.len,
            ts: None,
            src: r.src,
            dst: r.cm.pktinfo.map(|(a, _)| IpAddr::V4(a)),
        }))
    }

    /// Hands back one transmit timestamp that is ready: `(stamp as
    /// [`RxTimestamp::Local`], QPC ns; id from send_event)`. On the kernel
    /// TX path the kernel's stamp (`SIO_GET_TX_TIMESTAMP`), or QPC just
    /// before the send when it did not come within 20 ms; `Ok(None)` while
    /// none is ready.
    ///
    /// Errors: none (a failing ioctl selects the user-space path).
    pub fn recv_tx_timestamp(
        &self,
        _buf: &mut [u8],
    ) -> io::Result<Option<(Option<RxTimestamp>, Option<u32>)>> {
        let now = qpc_ticks();
        Ok(self
            .tx
            .borrow_mut()
            .next(now, |id| get_tx_timestamp(&self.event, id))
            .map(|s| (Some(RxTimestamp::Local(s.ns)), Some(s.id))))
    }
}

/// A PTP hardware clock (none on Windows).
#[derive(Debug)]
pub struct Phc {
    never: Infallible,
}

impl Phc {
    /// Opens a PHC.
    ///
    /// Errors: always `Unsupported`.
    pub fn open(_index: i32, _writable: bool) -> io::Result<Phc> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no PTP hardware clock on Windows",
        ))
    }
    /// PHC − wall clock, ns.
    ///
    /// Errors: never returns (no PHC can exist).
    pub fn minus_realtime(&self, _samples: u32) -> io::Result<i64> {
        match self.never {}
    }
}
