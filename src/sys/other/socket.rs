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

/// Unicast receive sockets on Windows: `SO_EXCLUSIVEADDRUSE`, so no other
/// socket (of any process) can bind the same port and take its datagrams.
/// Other OSes: no `SO_REUSEADDR` (nothing to set).
///
/// Errors: [`SocketError::Io`] naming `SO_EXCLUSIVEADDRUSE` (Windows).
#[cfg(windows)]
pub(crate) fn exclusive_bind(sock: &Socket) -> Result<(), SocketError> {
    use std::os::windows::io::AsRawSocket;
    #[link(name = "ws2_32")]
    unsafe extern "system" {
        fn setsockopt(s: usize, level: i32, name: i32, val: *const u8, len: i32) -> i32;
    }
    const SOL_SOCKET: i32 = 0xffff;
    const SO_EXCLUSIVEADDRUSE: i32 = !4; // ~SO_REUSEADDR
    let on: i32 = 1;
    // SAFETY: a valid socket handle; `on` is a live i32 and `len` its size.
    let rc = unsafe {
        setsockopt(
            sock.as_raw_socket() as usize,
            SOL_SOCKET,
            SO_EXCLUSIVEADDRUSE,
            (&on as *const i32).cast(),
            4,
        )
    };
    if rc != 0 {
        return Err(crate::sys::socket::io_err("SO_EXCLUSIVEADDRUSE")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// See the Windows version: nothing to set here.
///
/// Errors: none.
#[cfg(not(windows))]
pub(crate) fn exclusive_bind(_sock: &Socket) -> Result<(), SocketError> {
    Ok(())
}

/// Windows under wine: wine (8.x) hands `IP_ADD_SOURCE_MEMBERSHIP`'s
/// `IP_MREQ_SOURCE { multiaddr, sourceaddr, interface }` to Linux unchanged,
/// where `struct ip_mreq_source` is `{ multiaddr, interface, sourceaddr }`:
/// the correct join fails there with WSAEINVAL. Only after that error the
/// join is retried with the two fields swapped, which only a stack that
/// reads the Linux layout accepts with this meaning (on Windows the
/// interface field would then hold the remote source, not a local address).
///
/// Errors: the first error `e` when the retry fails too, or when `e` is not
/// WSAEINVAL (10022).
#[cfg(windows)]
pub(crate) fn join_ssm_retry(
    sock: &Socket,
    group: Ipv4Addr,
    source: Ipv4Addr,
    iface: Ipv4Addr,
    e: std::io::Error,
) -> std::io::Result<()> {
    if e.raw_os_error() != Some(10022) || iface.is_unspecified() {
        return Err(e);
    }
    sock.join_ssm_v4(&iface, &group, &source).map_err(|_| e)
}

/// A refused source-specific join is final here.
///
/// Errors: `e`, unchanged.
#[cfg(not(windows))]
pub(crate) fn join_ssm_retry(
    _sock: &Socket,
    _group: Ipv4Addr,
    _source: Ipv4Addr,
    _iface: Ipv4Addr,
    e: std::io::Error,
) -> std::io::Result<()> {
    Err(e)
}
