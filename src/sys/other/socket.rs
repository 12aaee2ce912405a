//! Additions to the portable socket open ([`crate::sys::socket`]) on OSes
//! other than Linux: an interface is given by its IPv4 address; multicast
//! receive sockets bind the port on all addresses (Windows cannot bind a
//! group address); no kernel receive timestamps.

use std::net::Ipv4Addr;

use socket2::Socket;

use crate::sys::socket::{Iface, SocketError};

/// An interface given literally by its IPv4 address (names need Linux).
///
/// Errors: [`SocketError::NameNeedsLinux`] when `iface` is not an IPv4
/// address.
pub(crate) fn lookup(iface: &str) -> Result<Iface, SocketError> {
    let ipv4: Ipv4Addr = iface
        .parse()
        .map_err(|_| SocketError::NameNeedsLinux(iface.to_string()))?;
    Ok(Iface {
        name: iface.to_string(),
        index: 0,
        ipv4,
        mac: None,
    })
}

/// No forced receive buffer here; the caller asks for the ordinary one.
pub(crate) fn force_rcvbuf(_sock: &Socket, _bytes: usize) -> bool {
    false
}

/// Nothing to add: receive timestamps are taken in user space.
///
/// Errors: none.
pub(crate) fn stream_extras(_sock: &Socket) -> Result<(), SocketError> {
    Ok(())
}

/// Multicast receive sockets bind the port on all addresses.
///
/// Errors: none.
pub(crate) fn multicast_bind(_sock: &Socket, _group: Ipv4Addr) -> Result<Ipv4Addr, SocketError> {
    Ok(Ipv4Addr::UNSPECIFIED)
}
