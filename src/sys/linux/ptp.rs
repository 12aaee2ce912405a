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
//! - IEEE 802.3 transport (IEEE 1588-2019 Annex E, [`Transport::L2`]): an
//!   `AF_PACKET`/`SOCK_RAW` socket bound to the interface and ethertype
//!   0x88F7, member of 01-1B-19-00-00-00 and 01-80-C2-00-00-0E
//!   (`PACKET_ADD_MEMBERSHIP`), `PACKET_AUXDATA` on (out-of-band VLAN tags
//!   are seen and dropped), the same `SO_TIMESTAMPING` flags; it receives
//!   every PTP message and sends the event ones. A second, unbound
//!   (protocol 0, receives nothing) packet socket without timestamping sends
//!   the general messages, so each OPT_ID belongs to an event message and a
//!   NIC with one TX-stamp slot (igb) is never busy with an Announce. The
//!   hardware RX filter is `HWTSTAMP_FILTER_PTP_V2_L2_EVENT` (or
//!   `PTP_V2_EVENT` when the driver refuses it).
//! - Capabilities: `ETHTOOL_GET_TS_INFO`.
//! - PHC: `/dev/ptpN`, read via its dynamic clock id, correlated with
//!   `PTP_SYS_OFFSET_EXTENDED`; `clock_adjtime` only by explicit request.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use super::cmsg;
use crate::ptp::ieee8023::{self, FrameDrops};
use crate::sys::RxTimestamp;
use crate::sys::ptp::{EVENT_PORT, GENERAL_PORT, PTP_GROUP, PtpRx, Transport, TsInfo, TsMode};
use crate::sys::socket::{self, Iface, SocketError, io_err};

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
    /// [`Self::hardware_capable`] for `transport`: over Layer 2 the RX
    /// filter must stamp PTPv2 L2 events (`PTP_V2_L2_EVENT`, `PTP_V2_EVENT`
    /// or `ALL`).
    pub fn hardware_capable_for(&self, transport: Transport) -> bool {
        match transport {
            Transport::Udp4 => self.hardware_capable(),
            Transport::L2 => {
                let need = libc::SOF_TIMESTAMPING_TX_HARDWARE
                    | libc::SOF_TIMESTAMPING_RX_HARDWARE
                    | libc::SOF_TIMESTAMPING_RAW_HARDWARE;
                let filt = (1 << libc::HWTSTAMP_FILTER_PTP_V2_L2_EVENT)
                    | (1 << libc::HWTSTAMP_FILTER_PTP_V2_EVENT)
                    | (1 << libc::HWTSTAMP_FILTER_ALL);
                self.so_timestamping & need == need
                    && self.phc_index >= 0
                    && self.rx_filters & filt != 0
            }
        }
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
    enable_hw_timestamping_filter(iface, libc::HWTSTAMP_FILTER_PTP_V2_L4_EVENT as i32)
}

/// [`enable_hw_timestamping`] for `transport`: over Layer 2 the filter
/// `PTP_V2_L2_EVENT`, or `PTP_V2_EVENT` (L2 and L4) when the driver refuses
/// it. Returns the filter applied.
///
/// Errors: the ioctl's errno (no such interface, no CAP_NET_ADMIN, refused).
pub fn enable_hw_timestamping_for(iface: &str, transport: Transport) -> io::Result<i32> {
    match transport {
        Transport::Udp4 => enable_hw_timestamping(iface),
        Transport::L2 => {
            enable_hw_timestamping_filter(iface, libc::HWTSTAMP_FILTER_PTP_V2_L2_EVENT as i32)
                .or_else(|_| {
                    enable_hw_timestamping_filter(iface, libc::HWTSTAMP_FILTER_PTP_V2_EVENT as i32)
                })
        }
    }
}

fn enable_hw_timestamping_filter(iface: &str, rx_filter: i32) -> io::Result<i32> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut cfg = libc::hwtstamp_config {
        flags: 0,
        tx_type: libc::HWTSTAMP_TX_ON as i32,
        rx_filter,
    };
    let mut ifr = ifreq(
        iface,
        &mut cfg as *mut libc::hwtstamp_config as *mut libc::c_void,
    )?;
    // SAFETY: as in ts_info; data points at a live hwtstamp_config.
    cerr(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSHWTSTAMP as _, &mut ifr) })?;
    Ok(cfg.rx_filter)
}

/// The two PTP sockets on one interface.
#[derive(Debug)]
pub struct PtpSockets {
    /// UDP 319; over Layer 2 the packet socket that receives every PTP
    /// message and sends the event ones (TX timestamps on its error queue).
    pub event: Socket,
    /// UDP 320; over Layer 2 the send-only packet socket of the general
    /// messages.
    pub general: Socket,
    /// Timestamping mode.
    pub mode: TsMode,
    /// The transport.
    pub transport: Transport,
    /// Next OPT_ID the kernel will assign on `event`.
    next_id: u32,
    iface: String,
    l2: Option<L2Link>,
}

/// The Layer-2 side of [`PtpSockets`].
#[derive(Debug)]
struct L2Link {
    ifindex: i32,
    mac: [u8; 6],
    /// Frame being sent (reused).
    frame: Vec<u8>,
    /// Received frames not taken.
    drops: Cell<FrameDrops>,
}

/// `PACKET_ADD_MEMBERSHIP` (include/uapi/linux/if_packet.h).
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
/// `PACKET_MR_MULTICAST`.
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
/// `PACKET_OUTGOING`: `sll_pkttype` of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `PACKET_OTHERHOST`: a frame not for this host (promiscuous mode, or a
/// VLAN this host has no device for; the kernel removed the tag).
const PACKET_OTHERHOST: u8 = 3;

/// `struct packet_mreq` (include/uapi/linux/if_packet.h).
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// `sockaddr_ll` for `ifindex`, ethertype 0x88F7 and, if given, the
/// destination MAC.
fn sockaddr_ll(ifindex: i32, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid initial state.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = ieee8023::ETHERTYPE_PTP.to_be();
    a.sll_ifindex = ifindex;
    if let Some(d) = dst {
        a.sll_halen = 6;
        a.sll_addr[..6].copy_from_slice(&d);
    }
    a
}

/// The interface's index and MAC (getifaddrs; no IPv4 address needed).
fn link_of(iface: &str) -> io::Result<(i32, [u8; 6])> {
    let index = nix::net::if_::if_nametoindex(iface)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("interface {iface}: {e}")))?;
    let mac = nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == iface)
        .find_map(|a| a.address.as_ref()?.as_link_addr()?.addr())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{iface}: no MAC")))?;
    Ok((index as i32, mac))
}

/// The packet socket of the Layer-2 transport that receives: bound to
/// `ifindex` and 0x88F7, both PTP groups joined, `PACKET_AUXDATA` on,
/// non-blocking, `SO_TIMESTAMPING` `flags`.
fn open_l2_event(ifindex: i32, flags: u32) -> io::Result<Socket> {
    let proto = i32::from(ieee8023::ETHERTYPE_PTP.to_be());
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(proto)))
        .map_err(|e| io::Error::new(e.kind(), format!("AF_PACKET socket: {e}")))?;
    let a = sockaddr_ll(ifindex, None);
    // SAFETY: valid fd; a is a live sockaddr_ll of the stated size.
    cerr(unsafe {
        libc::bind(
            s.as_raw_fd(),
            (&a as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("bind AF_PACKET: {e}")))?;
    for group in [ieee8023::PRIMARY_MAC, ieee8023::PDELAY_MAC] {
        let mut mr = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_MULTICAST,
            mr_alen: 6,
            mr_address: [0; 8],
        };
        mr.mr_address[..6].copy_from_slice(&group);
        // SAFETY: valid fd; mr is a live packet_mreq of the stated size.
        cerr(unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_ADD_MEMBERSHIP,
                (&mr as *const PacketMreq).cast::<libc::c_void>(),
                std::mem::size_of::<PacketMreq>() as libc::socklen_t,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_ADD_MEMBERSHIP: {e}")))?;
    }
    set_int(s.as_raw_fd(), libc::SOL_PACKET, cmsg::PACKET_AUXDATA, 1)
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_AUXDATA: {e}")))?;
    s.set_nonblocking(true)?;
    set_timestamping(s.as_raw_fd(), flags)
        .map_err(|e| io::Error::new(e.kind(), format!("SO_TIMESTAMPING: {e}")))?;
    Ok(s)
}

/// The send-only packet socket of the general messages: protocol 0 (it
/// receives nothing), no timestamps; each send names the interface.
fn open_l2_general() -> io::Result<Socket> {
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
        .map_err(|e| io::Error::new(e.kind(), format!("AF_PACKET socket: {e}")))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// One PTP socket: the common multicast open and join
/// ([`crate::sys::socket`]) plus `SO_BINDTODEVICE`, DSCP EF,
/// `IP_MULTICAST_ALL` off and, on the event socket, `SO_TIMESTAMPING`.
fn open_one(port: u16, iface: &Iface, ts_flags: Option<u32>) -> Result<Socket, SocketError> {
    let s = socket::udp_v4()?;
    s.bind_device(Some(iface.name.as_bytes()))
        .map_err(io_err("SO_BINDTODEVICE"))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .map_err(io_err("bind"))?;
    socket::join_v4(&s, PTP_GROUP, None, Some(iface))?;
    socket::set_multicast_send(&s, iface.ipv4, 1, false)?;
    s.set_tos_v4(TOS_EF).map_err(io_err("IP_TOS"))?;
    s.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
    s.set_multicast_all_v4(false)
        .map_err(io_err("IP_MULTICAST_ALL"))?;
    if let Some(flags) = ts_flags {
        set_timestamping(s.as_raw_fd(), flags).map_err(io_err("SO_TIMESTAMPING"))?;
    }
    set_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1).map_err(io_err("IP_PKTINFO"))?;
    Ok(s)
}

/// `setsockopt(level, name, v)` with an int value.
fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd, pointer to a live c_int of the stated size.
    cerr(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `setsockopt(SO_TIMESTAMPING, flags)` on any datagram socket.
fn set_timestamping(fd: RawFd, flags: u32) -> io::Result<()> {
    let f: libc::c_uint = flags;
    // SAFETY: valid fd, pointer to a live c_uint of the stated size.
    cerr(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            &f as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn ts_flags(hw: bool) -> u32 {
    let common = libc::SOF_TIMESTAMPING_OPT_ID | libc::SOF_TIMESTAMPING_OPT_TSONLY;
    if hw {
        libc::SOF_TIMESTAMPING_RX_HARDWARE
            | libc::SOF_TIMESTAMPING_TX_HARDWARE
            | libc::SOF_TIMESTAMPING_RAW_HARDWARE
            | common
    } else {
        libc::SOF_TIMESTAMPING_RX_SOFTWARE
            | libc::SOF_TIMESTAMPING_TX_SOFTWARE
            | libc::SOF_TIMESTAMPING_SOFTWARE
            | common
    }
}

impl PtpSockets {
    /// [`Self::open`] over `transport`. Layer 2 needs CAP_NET_RAW and no
    /// IPv4 address on `iface`.
    ///
    /// Errors: as [`Self::open`]; over Layer 2 also the packet socket's
    /// steps (socket, bind, `PACKET_ADD_MEMBERSHIP`, `PACKET_AUXDATA`,
    /// `SO_TIMESTAMPING`), named.
    pub fn open_with(iface: &str, want_hw: bool, transport: Transport) -> io::Result<PtpSockets> {
        if transport == Transport::Udp4 {
            return Self::open(iface, want_hw);
        }
        let (ifindex, mac) = link_of(iface)?;
        let info = ts_info(iface).unwrap_or_default();
        let hw = want_hw
            && info.hardware_capable_for(transport)
            && enable_hw_timestamping_for(iface, transport).is_ok();
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{iface} (Layer 2): {e}"));
        let event = open_l2_event(ifindex, ts_flags(hw)).map_err(named)?;
        let general = open_l2_general().map_err(named)?;
        Ok(PtpSockets {
            event,
            general,
            mode: if hw {
                TsMode::Hardware
            } else {
                TsMode::Software
            },
            transport,
            next_id: 0,
            iface: iface.to_string(),
            l2: Some(L2Link {
                ifindex,
                mac,
                frame: Vec::with_capacity(128),
                drops: Cell::new(FrameDrops::default()),
            }),
        })
    }

    /// The interface's MAC address, when known (Layer 2: always).
    pub fn mac(&self) -> Option<[u8; 6]> {
        match &self.l2 {
            Some(l) => Some(l.mac),
            None => socket::lookup(&self.iface).ok().and_then(|i| i.mac),
        }
    }

    /// Received Layer-2 frames not taken (short, VLAN-tagged, another
    /// ethertype); zero over UDP.
    pub fn frame_drops(&self) -> FrameDrops {
        self.l2.as_ref().map(|l| l.drops.get()).unwrap_or_default()
    }

    /// Opens both sockets on `iface`. `want_hw`: try hardware timestamping
    /// (falls back to software when the interface cannot). Errors name the
    /// step that failed.
    pub fn open(iface: &str, want_hw: bool) -> io::Result<PtpSockets> {
        let found = socket::lookup(iface)?;
        let iface = found.name.as_str();
        let info = ts_info(iface).unwrap_or_default();
        let hw = want_hw && info.hardware_capable() && enable_hw_timestamping(iface).is_ok();
        let flags = ts_flags(hw);
        let named = |what: &str, e: SocketError| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("{what} socket {iface}: {e}"))
        };
        let event =
            open_one(EVENT_PORT, &found, Some(flags)).map_err(|e| named("event (319)", e))?;
        let general =
            open_one(GENERAL_PORT, &found, None).map_err(|e| named("general (320)", e))?;
        Ok(PtpSockets {
            event,
            general,
            mode: if hw {
                TsMode::Hardware
            } else {
                TsMode::Software
            },
            transport: Transport::Udp4,
            next_id: 0,
            iface: iface.to_string(),
            l2: None,
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Receive stamps taken in user space: never on Linux (the kernel stamps).
    pub fn user_space_rx(&self) -> bool {
        false
    }

    /// Which receive timestamps are in use, and a note (empty on Linux).
    pub fn timestamp_path(&self) -> (&'static str, &'static str) {
        match (self.mode, self.transport) {
            (TsMode::Hardware, Transport::Udp4) => ("SO_TIMESTAMPING hardware (PHC)", ""),
            (TsMode::Software, Transport::Udp4) => ("SO_TIMESTAMPING software (kernel)", ""),
            (TsMode::Hardware, Transport::L2) => ("SO_TIMESTAMPING hardware (PHC), AF_PACKET", ""),
            (TsMode::Software, Transport::L2) => {
                ("SO_TIMESTAMPING software (kernel), AF_PACKET", "")
            }
        }
    }

    /// Which transmit timestamps event messages get (the same kind as the
    /// receive ones: the error queue's `SO_TIMESTAMPING`), and a note (empty).
    pub fn tx_timestamp_path(&self) -> (&'static str, &'static str) {
        (self.timestamp_path().0, "")
    }

    /// Sends an event message (to 224.0.1.129:319, or over Layer 2 to
    /// 01-1B-19-00-00-00, 01-80-C2-00-00-0E for peer delay); returns the
    /// OPT_ID its TX timestamp will carry.
    ///
    /// Errors: the send's errno.
    pub fn send_event(&mut self, data: &[u8]) -> io::Result<u32> {
        match &mut self.l2 {
            None => {
                self.event.send_to(
                    data,
                    &SocketAddr::V4(SocketAddrV4::new(PTP_GROUP, EVENT_PORT)).into(),
                )?;
            }
            Some(l) => {
                ieee8023::build(ieee8023::destination_for(data), l.mac, data, &mut l.frame);
                self.event.send(&l.frame)?;
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    /// Sends a general message (to 224.0.1.129:320, or over Layer 2 as
    /// [`Self::send_event`], without a TX timestamp).
    ///
    /// Errors: the send's errno.
    pub fn send_general(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.l2 {
            None => {
                self.general.send_to(
                    data,
                    &SocketAddr::V4(SocketAddrV4::new(PTP_GROUP, GENERAL_PORT)).into(),
                )?;
            }
            Some(l) => {
                let dst = ieee8023::destination_for(data);
                ieee8023::build(dst, l.mac, data, &mut l.frame);
                let a = sockaddr_ll(l.ifindex, Some(dst));
                // SAFETY: valid fd; frame and a are live for the call, of
                // the stated lengths.
                cerr(unsafe {
                    libc::sendto(
                        self.general.as_raw_fd(),
                        l.frame.as_ptr().cast::<libc::c_void>(),
                        l.frame.len(),
                        0,
                        (&a as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    ) as libc::c_int
                })?;
            }
        }
        Ok(())
    }
}

/// Frames a Layer-2 receive skips (ours, dropped) before it returns
/// `Ok(None)`: a bound on the work of one call.
pub const L2_SKIP_BUDGET: usize = 16;

/// Enables software RX timestamps (`SO_TIMESTAMPING` RX_SOFTWARE|SOFTWARE)
/// on any datagram socket (used by the precision harness).
pub fn enable_rx_sw_timestamps(fd: RawFd) -> io::Result<()> {
    set_timestamping(
        fd,
        libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE,
    )
}

/// What [`recv_ts`] returns for one datagram: its length, bytes; its kernel
/// timestamp; and, from the error queue, the `SOF_TIMESTAMPING_OPT_ID`.
pub type RecvTs = (usize, Option<RxTimestamp>, Option<u32>);

/// Receives one datagram (non-blocking) with its kernel timestamp.
/// `Ok(None)` when nothing is queued. With `errqueue`, reads `MSG_ERRQUEUE`
/// and returns the OPT_ID in the second slot.
pub fn recv_ts(
    fd: RawFd,
    buf: &mut [u8],
    want_hw: bool,
    errqueue: bool,
) -> io::Result<Option<RecvTs>> {
    Ok(recv_ts_from(fd, buf, want_hw, errqueue)?.map(|(r, _)| r))
}

/// [`recv_ts`] plus the datagram's IPv4 source address (`msg_name`;
/// `None` for other families or when the kernel gives none).
pub fn recv_ts_from(
    fd: RawFd,
    buf: &mut [u8],
    want_hw: bool,
    errqueue: bool,
) -> io::Result<Option<(RecvTs, Option<IpAddr>)>> {
    Ok(recv_full(fd, buf, want_hw, errqueue)?.map(|r| ((r.len, r.ts, r.id), r.src)))
}

/// Everything one `recvmsg` tells.
struct Received {
    len: usize,
    ts: Option<RxTimestamp>,
    id: Option<u32>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    /// `sll_pkttype` of a packet socket's frame (`PACKET_OUTGOING` = 4).
    pkttype: Option<u8>,
    /// VLAN id of a frame whose tag the kernel took out of band.
    vlan: Option<u16>,
}

fn recv_full(
    fd: RawFd,
    buf: &mut [u8],
    want_hw: bool,
    errqueue: bool,
) -> io::Result<Option<Received>> {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid initial state.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // u64-aligned control buffer, big enough for SCM_TIMESTAMPING (3×16 B)
    // and IP_RECVERR (sock_extended_err + sockaddr_in), with headers.
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid initial state.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut name) as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
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
    let (ts, id) = cmsg::parse(cbytes, want_hw);
    let namelen = msg.msg_namelen as usize;
    let (mut src, mut pkttype) = (None, None);
    if namelen >= std::mem::size_of::<libc::sockaddr_in>()
        && name.ss_family == libc::AF_INET as libc::sa_family_t
    {
        // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length
        // checked) into the storage, which is larger and suitably aligned.
        let sin = unsafe { &*(&raw const name).cast::<libc::sockaddr_in>() };
        src = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
            sin.sin_addr.s_addr,
        ))));
    } else if namelen >= std::mem::size_of::<libc::sockaddr_ll>() - 8
        && name.ss_family == libc::AF_PACKET as libc::sa_family_t
    {
        // SAFETY: the kernel wrote a sockaddr_ll (family AF_PACKET, at
        // least up to sll_addr) into the storage, which is larger and
        // suitably aligned; the rest is zeroed.
        let sll = unsafe { &*(&raw const name).cast::<libc::sockaddr_ll>() };
        pkttype = Some(sll.sll_pkttype);
    }
    let dst = cmsg::pktinfo_dst(cbytes).map(IpAddr::V4);
    Ok(Some(Received {
        len: n as usize,
        ts,
        id,
        src,
        dst,
        pkttype,
        vlan: cmsg::packet_vlan(cbytes),
    }))
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

    /// Receives one queued event message (port 319): length, kernel
    /// receive timestamp (hardware in hardware mode), source and
    /// destination addresses; `Ok(None)` when none is queued.
    pub fn recv_event(&self, buf: &mut [u8]) -> io::Result<Option<PtpRx>> {
        let hw = self.mode == TsMode::Hardware;
        if let Some(l) = &self.l2 {
            return self.recv_l2(l, buf, hw);
        }
        Ok(
            recv_full(self.event.as_raw_fd(), buf, hw, false)?.map(|r| PtpRx {
                len: r.len,
                ts: r.ts,
                src: r.src,
                dst: r.dst,
            }),
        )
    }

    /// Over Layer 2: the next queued PTP frame's message, moved to the
    /// start of `buf` (its timestamp; no addresses). Frames sent by us
    /// (`PACKET_OUTGOING`) are skipped; short, VLAN-tagged, foreign and
    /// other hosts' (`PACKET_OTHERHOST`) frames are counted ([`Self::frame_drops`]) and skipped; at most
    /// [`L2_SKIP_BUDGET`] per call.
    fn recv_l2(&self, l: &L2Link, buf: &mut [u8], hw: bool) -> io::Result<Option<PtpRx>> {
        for _ in 0..L2_SKIP_BUDGET {
            let Some(r) = recv_full(self.event.as_raw_fd(), buf, hw, false)? else {
                return Ok(None);
            };
            if r.pkttype == Some(PACKET_OUTGOING) {
                continue;
            }
            let mut drops = l.drops.get();
            if r.pkttype == Some(PACKET_OTHERHOST) {
                drops.count(ieee8023::FrameError::OtherHost);
                l.drops.set(drops);
                continue;
            }
            if let Some(vid) = r.vlan {
                drops.count(ieee8023::FrameError::Vlan(vid));
                l.drops.set(drops);
                continue;
            }
            let len = r.len.min(buf.len());
            match ieee8023::parse(&buf[..len]) {
                Ok(f) => {
                    let n = f.payload.len();
                    buf.copy_within(ieee8023::Frame::PAYLOAD_AT..len, 0);
                    return Ok(Some(PtpRx {
                        len: n,
                        ts: r.ts,
                        src: None,
                        dst: None,
                    }));
                }
                Err(e) => {
                    drops.count(e);
                    l.drops.set(drops);
                }
            }
        }
        Ok(None)
    }

    /// Receives one queued general message (port 320): length, source and
    /// destination addresses (no timestamp); `Ok(None)` when none (always
    /// over Layer 2, where [`Self::recv_event`] receives every message).
    pub fn recv_general(&self, buf: &mut [u8]) -> io::Result<Option<PtpRx>> {
        if self.l2.is_some() {
            return Ok(None);
        }
        Ok(
            recv_full(self.general.as_raw_fd(), buf, false, false)?.map(|r| PtpRx {
                len: r.len,
                ts: None,
                src: r.src,
                dst: r.dst,
            }),
        )
    }

    /// Reads one transmit timestamp from the event socket's error queue:
    /// `(timestamp, SOF_TIMESTAMPING_OPT_ID of the send)`; `Ok(None)` when
    /// the queue is empty. Entries without both are returned as `None` fields.
    pub fn recv_tx_timestamp(
        &self,
        buf: &mut [u8],
    ) -> io::Result<Option<(Option<RxTimestamp>, Option<u32>)>> {
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
    fn loopback_capabilities_and_missing_phc() {
        // lo supports software timestamps on every Linux; it has no PHC.
        let info = ts_info("lo").expect("ETHTOOL_GET_TS_INFO on lo");
        assert!(info.software_capable(), "{info:?}");
        assert!(!info.hardware_capable());
        assert!(ts_info("no-such-if0").is_err());
        assert!(Phc::open(99, false).is_err());
    }

    /// recvmsg fills `msg_name`: the source address the port pins its
    /// parent to.
    #[test]
    fn recv_reports_the_source_address() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("nonblocking");
        set_int(rx.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1).expect("IP_PKTINFO");
        let mut buf = [0u8; 64];
        assert!(
            recv_ts_from(rx.as_raw_fd(), &mut buf, false, false)
                .expect("recv")
                .is_none()
        );
        let tx = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        tx.send_to(b"ptp", rx.local_addr().unwrap()).expect("send");
        let mut got = None;
        for _ in 0..100 {
            if let Some(r) = recv_ts_from(rx.as_raw_fd(), &mut buf, false, false).expect("recv") {
                got = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let ((n, _, _), src) = got.expect("datagram");
        assert_eq!(&buf[..n], b"ptp");
        assert_eq!(src, Some("127.0.0.2".parse().unwrap()));
        // And the destination (IP_PKTINFO): unicast here.
        tx.send_to(b"ptp2", rx.local_addr().unwrap()).expect("send");
        let mut got = None;
        for _ in 0..100 {
            if let Some(r) = recv_full(rx.as_raw_fd(), &mut buf, false, false).expect("recv") {
                got = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let r = got.expect("datagram");
        assert_eq!(r.dst, Some("127.0.0.1".parse().unwrap()));
        let rx = PtpRx {
            len: r.len,
            ts: None,
            src: r.src,
            dst: r.dst,
        };
        assert!(rx.is_unicast());
    }
}
