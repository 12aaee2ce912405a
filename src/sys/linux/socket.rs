//! Linux additions to the portable socket open ([`crate::sys::socket`]):
//! interface lookup by name or address (getifaddrs, with index and MAC),
//! `SO_RCVBUFFORCE`, `SO_TIMESTAMPING`, and binding a multicast receive
//! socket to its group address with `IP_MULTICAST_ALL` off (only that group
//! is delivered).

use std::io;
use std::net::Ipv4Addr;

use nix::sys::socket::{TimestampingFlag, setsockopt, sockopt};
use socket2::Socket;

use crate::sys::socket::{Iface, SocketError, io_err};

/// Looks up `iface` (an interface name or one of its IPv4 addresses) with
/// getifaddrs: name, index, first IPv4 address and MAC.
///
/// Errors: [`SocketError::NoSuchInterface`] when no interface with an IPv4
/// address matches.
pub(crate) fn lookup(iface: &str) -> Result<Iface, SocketError> {
    let want_ip: Option<Ipv4Addr> = iface.parse().ok();
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs()
        .map_err(|e| io_err("getifaddrs")(e.into()))?
        .collect();
    let name = addrs.iter().find_map(|a| {
        let ip = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        let hit = match want_ip {
            Some(w) => ip == Some(w),
            None => ip.is_some() && a.interface_name == iface,
        };
        hit.then(|| (a.interface_name.clone(), ip))
    });
    let Some((name, Some(ip))) = name else {
        return Err(SocketError::NoSuchInterface(iface.to_string()));
    };
    let mac = addrs
        .iter()
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address.as_ref()?.as_link_addr()?.addr());
    let index = nix::net::if_::if_nametoindex(name.as_str()).unwrap_or(0);
    Ok(Iface {
        name,
        index,
        ipv4: ip,
        mac,
    })
}

/// `SO_RCVBUFFORCE` (exceeds `rmem_max`; needs CAP_NET_ADMIN). Returns
/// whether it was granted.
pub(crate) fn force_rcvbuf(sock: &Socket, bytes: usize) -> bool {
    setsockopt(sock, sockopt::RcvBufForce, &bytes).is_ok()
}

/// Enables kernel software RX timestamps (`SOF_TIMESTAMPING_RX_SOFTWARE`),
/// and raw hardware RX timestamps if the NIC was configured for them.
///
/// Errors: the `setsockopt` errno.
pub(crate) fn enable_rx_timestamps(sock: &Socket) -> io::Result<()> {
    let flags = TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_RX_HARDWARE
        | TimestampingFlag::SOF_TIMESTAMPING_RAW_HARDWARE;
    setsockopt(sock, sockopt::Timestamping, &flags).map_err(io::Error::from)
}

/// Stream-socket extras: `SO_TIMESTAMPING` receive timestamps.
///
/// Errors: [`SocketError::Io`] (`SO_TIMESTAMPING`).
pub(crate) fn stream_extras(sock: &Socket) -> Result<(), SocketError> {
    enable_rx_timestamps(sock).map_err(io_err("SO_TIMESTAMPING"))
}

/// The address a multicast receive socket binds: the group itself, with
/// `IP_MULTICAST_ALL` off, so only `group` is delivered to it.
///
/// Errors: [`SocketError::Io`] (`IP_MULTICAST_ALL`).
pub(crate) fn multicast_bind(sock: &Socket, group: Ipv4Addr) -> Result<Ipv4Addr, SocketError> {
    sock.set_multicast_all_v4(false)
        .map_err(io_err("IP_MULTICAST_ALL"))?;
    Ok(group)
}

/// Unicast receive sockets: no `SO_REUSEADDR`, so no other socket can bind
/// the same address and port.
///
/// Errors: none.
pub(crate) fn exclusive_bind(_sock: &Socket) -> Result<(), SocketError> {
    Ok(())
}

/// A refused source-specific join is final on Linux.
///
/// Errors: `e`, unchanged.
pub(crate) fn join_ssm_retry(
    _sock: &Socket,
    _group: Ipv4Addr,
    _source: Ipv4Addr,
    _iface: Ipv4Addr,
    e: io::Error,
) -> io::Result<()> {
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_by_name_and_address() {
        let lo = lookup("lo").unwrap();
        assert_eq!(lo.ipv4, Ipv4Addr::LOCALHOST);
        assert!(lo.index > 0);
        assert_eq!(lo.name, "lo");
        let by_ip = lookup("127.0.0.1").unwrap();
        assert_eq!(by_ip.name, "lo");
        assert_eq!(by_ip.index, lo.index);
        let e = lookup("nonexistent0").unwrap_err().to_string();
        assert!(e.contains("iface=nonexistent0"), "{e}");
    }
}
