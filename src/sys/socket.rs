//! The one multicast socket open and join, and the one interface lookup,
//! for every socket the crate opens: AES67 stream receive sockets
//! ([`open_stream_socket`]), the PTP event/general sockets (`sys::ptp`) and
//! the RTP sender ([`open_sender_socket`]).
//!
//! Portable (socket2): UDP socket, `SO_REUSEADDR`, receive buffer, bind,
//! any-source or source-specific (IGMPv3, RFC 4604) IPv4 join by interface
//! address, multicast TTL/loopback/interface for sending. The OS module adds
//! its thin extras (`imp::socket`): on Linux `SO_TIMESTAMPING`, a receive
//! buffer past `rmem_max`, binding to the group address with
//! `IP_MULTICAST_ALL` off, and interface names (getifaddrs); elsewhere an
//! interface is given by its IPv4 address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

use crate::media::stream::StreamConfig;

/// Receive buffer requested for stream sockets, bytes (raised past
/// `rmem_max` as root on Linux).
pub const RCVBUF_BYTES: usize = 8 << 20;

/// Errors opening, configuring or joining a socket, and looking up an
/// interface. Each names the step or the field (`iface=`) at fault.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The `iface` value names no interface with an IPv4 address.
    #[error("interface {0:?} not found or has no IPv4 address (iface={0})")]
    NoSuchInterface(String),
    /// Interface names are resolved on Linux only; elsewhere `iface=` must
    /// be an IPv4 address.
    #[error("not an IPv4 address (interface names need Linux) in iface={0}")]
    NameNeedsLinux(String),
    /// IPv6 streams are not supported yet.
    #[error("IPv6 destination {0} is not supported")]
    Ipv6(IpAddr),
    /// A socket call failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed (e.g. `bind`, `IP_ADD_MEMBERSHIP`).
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<SocketError> for io::Error {
    fn from(e: SocketError) -> io::Error {
        let kind = match &e {
            SocketError::Io { source, .. } => source.kind(),
            SocketError::NoSuchInterface(_) => io::ErrorKind::NotFound,
            SocketError::NameNeedsLinux(_) | SocketError::Ipv6(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Maps an OS error to [`SocketError::Io`] naming the step `what`.
pub fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { what, source }
}

/// A network interface, as found by [`lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Interface name (e.g. `eth0`); where names are not resolved (not
    /// Linux), the address as given.
    pub name: String,
    /// Interface index; 0 when unknown.
    pub index: u32,
    /// The interface's (first) IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Hardware (MAC) address, when known.
    pub mac: Option<[u8; 6]>,
}

/// Looks up an interface given by name or by one of its IPv4 addresses.
///
/// Linux: via `getifaddrs`. Other OSes: only an IPv4 address given literally
/// (`name` is that address, `index` 0, no MAC).
///
/// Errors: [`SocketError::NoSuchInterface`]; [`SocketError::NameNeedsLinux`]
/// for a name on other OSes.
pub fn lookup(iface: &str) -> Result<Iface, SocketError> {
    super::imp::socket::lookup(iface)
}

/// A new IPv4 UDP socket with `SO_REUSEADDR` (several receivers of one
/// group and port can coexist).
///
/// Errors: [`SocketError::Io`] (`socket`, `SO_REUSEADDR`).
pub fn udp_v4() -> Result<Socket, SocketError> {
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    sock.set_reuse_address(true)
        .map_err(io_err("SO_REUSEADDR"))?;
    Ok(sock)
}

/// A new IPv4 UDP socket for a unicast receiver: no other socket may bind
/// its address and port while it is open. Linux: no `SO_REUSEADDR` (a
/// second bind fails with `EADDRINUSE`); Windows: `SO_EXCLUSIVEADDRUSE`
/// (with `SO_REUSEADDR` another process could bind the same port and take
/// the unicast stream's datagrams).
///
/// Errors: [`SocketError::Io`] (`socket`, `SO_EXCLUSIVEADDRUSE`).
pub fn udp_v4_unicast() -> Result<Socket, SocketError> {
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    super::imp::socket::exclusive_bind(&sock)?;
    Ok(sock)
}

/// Asks for a receive buffer of `bytes` (past `rmem_max` where the OS and
/// privileges allow); a smaller grant is not an error.
pub fn set_rcvbuf(sock: &Socket, bytes: usize) {
    if !super::imp::socket::force_rcvbuf(sock, bytes) {
        let _ = sock.set_recv_buffer_size(bytes);
    }
}

/// Joins `group` on the interface `iface` (the OS default when `None`):
/// source-specific (`IP_ADD_SOURCE_MEMBERSHIP`) when `source` is given, else
/// any-source (`IP_ADD_MEMBERSHIP`, by interface index when known).
///
/// Errors: [`SocketError::Io`] naming the membership option.
pub fn join_v4(
    sock: &Socket,
    group: Ipv4Addr,
    source: Option<Ipv4Addr>,
    iface: Option<&Iface>,
) -> Result<(), SocketError> {
    let if_ip = iface.map_or(Ipv4Addr::UNSPECIFIED, |i| i.ipv4);
    let if_idx = iface.map_or(0, |i| i.index);
    match source {
        Some(src) => sock
            .join_ssm_v4(&src, &group, &if_ip)
            .or_else(|e| super::imp::socket::join_ssm_retry(sock, group, src, if_ip, e))
            .map_err(io_err("IP_ADD_SOURCE_MEMBERSHIP")),
        None if if_idx != 0 => sock
            .join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(if_idx))
            .map_err(io_err("IP_ADD_MEMBERSHIP")),
        None => sock
            .join_multicast_v4(&group, &if_ip)
            .map_err(io_err("IP_ADD_MEMBERSHIP")),
    }
}

/// Sets up multicast sending: outgoing interface (by address), TTL and
/// loopback of own packets.
///
/// Errors: [`SocketError::Io`] naming the option.
pub fn set_multicast_send(
    sock: &Socket,
    iface: Ipv4Addr,
    ttl: u32,
    loopback: bool,
) -> Result<(), SocketError> {
    sock.set_multicast_if_v4(&iface)
        .map_err(io_err("IP_MULTICAST_IF"))?;
    sock.set_multicast_ttl_v4(ttl)
        .map_err(io_err("IP_MULTICAST_TTL"))?;
    sock.set_multicast_loop_v4(loopback)
        .map_err(io_err("IP_MULTICAST_LOOP"))
}

/// Opens a non-blocking UDP socket receiving `cfg`'s stream.
///
/// Multicast (`SO_REUSEADDR`: several receivers of one group and port):
/// joined on `cfg.iface` (name or IPv4 address), source-specific when
/// `cfg.source` is set; bound to the group address on Linux (only that
/// group is delivered), to the port on all addresses elsewhere (Windows
/// cannot bind a group address). Unicast: bound to the address and port
/// exclusively ([`udp_v4_unicast`]).
/// Linux also enables kernel receive timestamps (`SO_TIMESTAMPING`).
///
/// Errors: [`SocketError`] naming the step (`bind`, `IP_ADD_MEMBERSHIP`, ...)
/// or the `iface=` value that failed.
pub fn open_stream_socket(cfg: &StreamConfig) -> Result<Socket, SocketError> {
    let IpAddr::V4(dest) = cfg.dest else {
        return Err(SocketError::Ipv6(cfg.dest));
    };
    let iface = cfg.iface.as_deref().map(lookup).transpose()?;
    let sock = if dest.is_multicast() {
        udp_v4()?
    } else {
        udp_v4_unicast()?
    };
    set_rcvbuf(&sock, RCVBUF_BYTES);
    super::imp::socket::stream_extras(&sock)?;
    if dest.is_multicast() {
        let bind_ip = super::imp::socket::multicast_bind(&sock, dest)?;
        sock.bind(&SocketAddr::from((bind_ip, cfg.port)).into())
            .map_err(io_err("bind"))?;
        join_v4(&sock, dest, cfg.source, iface.as_ref())?;
    } else {
        sock.bind(&SocketAddr::from((dest, cfg.port)).into())
            .map_err(io_err("bind"))?;
    }
    sock.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
    Ok(sock)
}

/// Opens the RTP sender's socket: for a multicast destination, sending on
/// the interface with address `iface`, with `ttl` (0: this host only) and
/// loopback on; DSCP `dscp` (6 bits; media default AF41 = 34, AES67-2018
/// §D.2) when the OS allows.
///
/// Errors: [`SocketError::Io`] naming the step.
pub fn open_sender_socket(
    dest: IpAddr,
    iface: Ipv4Addr,
    ttl: u32,
    dscp: u8,
) -> Result<Socket, SocketError> {
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    if dest.is_multicast() {
        set_multicast_send(&sock, iface, ttl, true)?;
    }
    // DSCP is the upper 6 bits of the TOS byte (RFC 2474 §3). Some OSes
    // refuse IP_TOS (Windows without QoS policy): then packets go unmarked.
    let _ = sock.set_tos_v4(u32::from(dscp & 0x3f) << 2);
    Ok(sock)
}

/// The local IPv4 address this host would send from towards `dest` (the
/// routing table's choice, learned by connecting a UDP socket; nothing is
/// sent). `None` when there is no route.
pub fn local_addr_towards(dest: Ipv4Addr) -> Option<Ipv4Addr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((dest, 9)).ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 #11: a unicast stream's port cannot be taken over: a
    /// second socket asking for `SO_REUSEADDR` cannot bind it while the
    /// stream is open (it could, when the stream's socket had SO_REUSEADDR,
    /// and would then receive the stream's datagrams). Multicast receivers
    /// still share their port.
    #[test]
    fn unicast_port_is_exclusive_multicast_is_shared() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let _stream = open_stream_socket(&cfg).unwrap();
        let thief = udp_v4().unwrap();
        let r = thief.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into());
        assert!(
            r.is_err(),
            "a second socket bound the unicast stream's port"
        );
        let any = udp_v4().unwrap();
        assert!(
            any.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
                .is_err(),
            "a wildcard socket bound the unicast stream's port"
        );
        let group = Ipv4Addr::new(239, 69, 201, 9);
        let mcfg = StreamConfig::new(IpAddr::V4(group), port.wrapping_add(1).max(1024));
        let a = open_stream_socket(&mcfg);
        let b = open_stream_socket(&mcfg);
        if let (Ok(_a), b) = (a, b) {
            assert!(
                b.is_ok(),
                "two multicast receivers of one group: {:?}",
                b.err()
            );
        }
    }

    #[test]
    fn loopback_resolves_by_address() {
        let i = lookup("127.0.0.1").unwrap();
        assert_eq!(i.ipv4, Ipv4Addr::LOCALHOST);
        let e = lookup("nonexistent0").unwrap_err().to_string();
        assert!(e.contains("iface=nonexistent0"), "{e}");
    }

    #[test]
    fn ipv6_is_refused_and_errors_convert() {
        let cfg = StreamConfig::new("ff02::1".parse().unwrap(), 5004);
        let e = open_stream_socket(&cfg).unwrap_err();
        assert!(matches!(e, SocketError::Ipv6(_)));
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn unicast_loopback_opens_non_blocking() {
        let mut cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        cfg.port = probe.local_addr().unwrap().port();
        drop(probe);
        let s = open_stream_socket(&cfg).unwrap();
        let mut buf = [std::mem::MaybeUninit::new(0u8); 16];
        let e = s.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
