//! Opening a receive socket for one AES67 stream (socket2).
//!
//! Multicast: bound to the group address (so only that group is delivered),
//! `IP_MULTICAST_ALL` off, joined on the chosen interface (by name or IPv4
//! address), source-specific (IGMPv3, RFC 4607) when a source is given.
//! Unicast: bound to the port on all local addresses. Kernel software receive
//! timestamps (`SO_TIMESTAMPING`) are enabled on every socket, and the receive
//! buffer is made large enough for 125 µs packets.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nix::sys::socket::{TimestampingFlag, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::media::stream::StreamConfig;

/// Receive buffer requested, bytes (raised past `rmem_max` as root).
pub const RCVBUF_BYTES: usize = 8 << 20;

/// Errors opening a stream socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The `iface` value names no interface with an IPv4 address.
    #[error("interface {0:?} not found or has no IPv4 address (iface={0})")]
    NoSuchInterface(String),
    /// IPv6 streams are not supported yet.
    #[error("IPv6 destination {0} is not supported")]
    Ipv6(IpAddr),
    /// A socket call failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { what, source }
}

/// Resolves `iface` (an interface name or an IPv4 address) to
/// `(IPv4 address, interface index)`.
///
/// Errors: [`SocketError::NoSuchInterface`].
pub fn resolve_iface(iface: &str) -> Result<(Ipv4Addr, u32), SocketError> {
    let want_ip: Option<Ipv4Addr> = iface.parse().ok();
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| io_err("getifaddrs")(e.into()))?;
    for a in addrs {
        let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) else {
            continue;
        };
        let ip = sin.ip();
        if want_ip == Some(ip) || (want_ip.is_none() && a.interface_name == iface) {
            let idx = nix::net::if_::if_nametoindex(a.interface_name.as_str()).unwrap_or(0);
            return Ok((ip, idx));
        }
    }
    Err(SocketError::NoSuchInterface(iface.to_string()))
}

/// The name of the interface `iface` names: itself when it is a name, the
/// interface holding the address when it is an IPv4 address.
///
/// Errors: [`SocketError::NoSuchInterface`] when no interface matches.
pub fn iface_name(iface: &str) -> Result<String, SocketError> {
    let want_ip: Option<Ipv4Addr> = iface.parse().ok();
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| io_err("getifaddrs")(e.into()))?;
    for a in addrs {
        let ip = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        if (want_ip.is_some() && want_ip == ip) || (want_ip.is_none() && a.interface_name == iface)
        {
            return Ok(a.interface_name);
        }
    }
    Err(SocketError::NoSuchInterface(iface.to_string()))
}

/// Enables kernel software RX timestamps (`SOF_TIMESTAMPING_RX_SOFTWARE`),
/// and raw hardware RX timestamps if the NIC was configured for them.
pub fn enable_rx_timestamps(sock: &Socket) -> io::Result<()> {
    let flags = TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_RX_HARDWARE
        | TimestampingFlag::SOF_TIMESTAMPING_RAW_HARDWARE;
    setsockopt(sock, sockopt::Timestamping, &flags).map_err(io::Error::from)
}

/// Opens a non-blocking UDP socket receiving `cfg`'s stream.
///
/// Errors: [`SocketError`] naming the step (bind, join, ...) that failed.
pub fn open_stream_socket(cfg: &StreamConfig) -> Result<Socket, SocketError> {
    let IpAddr::V4(dest) = cfg.dest else {
        return Err(SocketError::Ipv6(cfg.dest));
    };
    let sock =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    sock.set_reuse_address(true)
        .map_err(io_err("SO_REUSEADDR"))?;
    // As root, exceed rmem_max; otherwise take what the kernel allows.
    if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF_BYTES).is_err() {
        let _ = sock.set_recv_buffer_size(RCVBUF_BYTES);
    }
    enable_rx_timestamps(&sock).map_err(io_err("SO_TIMESTAMPING"))?;
    let iface = cfg.iface.as_deref().map(resolve_iface).transpose()?;
    if dest.is_multicast() {
        sock.set_multicast_all_v4(false)
            .map_err(io_err("IP_MULTICAST_ALL"))?;
        sock.bind(&SocketAddr::from((dest, cfg.port)).into())
            .map_err(io_err("bind"))?;
        let (if_ip, if_idx) = iface.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        match cfg.source {
            Some(src) => sock
                .join_ssm_v4(&src, &dest, &if_ip)
                .map_err(io_err("IP_ADD_SOURCE_MEMBERSHIP"))?,
            None if if_idx != 0 => sock
                .join_multicast_v4_n(&dest, &socket2::InterfaceIndexOrAddress::Index(if_idx))
                .map_err(io_err("IP_ADD_MEMBERSHIP"))?,
            None => sock
                .join_multicast_v4(&dest, &if_ip)
                .map_err(io_err("IP_ADD_MEMBERSHIP"))?,
        }
    } else {
        let bind_ip = if dest.is_unspecified() {
            Ipv4Addr::UNSPECIFIED
        } else {
            dest
        };
        sock.bind(&SocketAddr::from((bind_ip, cfg.port)).into())
            .map_err(io_err("bind"))?;
    }
    sock.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_by_name_and_address() {
        let (ip, idx) = resolve_iface("lo").unwrap();
        assert_eq!(ip, Ipv4Addr::LOCALHOST);
        assert!(idx > 0);
        assert_eq!(resolve_iface("127.0.0.1").unwrap().0, Ipv4Addr::LOCALHOST);
        let e = resolve_iface("nonexistent0").unwrap_err().to_string();
        assert!(e.contains("iface=nonexistent0"), "{e}");
    }
}
