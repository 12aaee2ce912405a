//! A portable UDP packet source for the engine's receiver: std sockets
//! (Winsock on Windows) with software receive timestamps taken in user space
//! right after `recv_from` returns.
//!
//! It stands in for the Linux ingest (`recvmmsg` + SO_TIMESTAMPING) where
//! that does not exist: [`crate::sys::open_source`] builds it on other OSes
//! over a socket from [`crate::sys::socket::open_stream_socket`]. The timestamp is the UTC wall clock
//! (`SystemTime`, which is GetSystemTimePreciseAsFileTime on Windows), so it
//! includes the wake-up latency a kernel timestamp would not.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use crate::sys::clock::realtime_now_ns;
use crate::sys::{PacketSource, RxMeta, RxTimestamp};
use crate::units::MonoNs;

/// Largest datagram accepted, bytes (AES67 payloads are ≤ 1440 bytes; jumbo frames fit too).
pub const MAX_DATAGRAM: usize = 9000;
/// Most datagrams delivered by one `poll`.
pub const MAX_PER_POLL: usize = 64;

/// The packet source over one socket.
///
/// Limitation: a multicast socket is bound to the port on all addresses, and
/// std sockets cannot read a datagram's destination address (IP_PKTINFO), so
/// streams of different groups must use different ports on Windows.
pub struct UdpSource {
    sock: UdpSocket,
    buf: Vec<u8>,
    timeout_ms: i32,
}

impl UdpSource {
    /// Wraps a socket from [`crate::sys::socket::open_stream_socket`]
    /// (made blocking again: `poll` waits with a read timeout).
    ///
    /// Errors: the socket cannot be made blocking.
    pub fn new(sock: socket2::Socket) -> io::Result<UdpSource> {
        sock.set_nonblocking(false)?;
        Ok(UdpSource {
            sock: sock.into(),
            buf: vec![0; MAX_DATAGRAM],
            timeout_ms: -1,
        })
    }
}

fn is_truncation(e: &io::Error) -> bool {
    // WSAEMSGSIZE: the datagram was larger than the buffer (its start was received).
    cfg!(windows) && e.raw_os_error() == Some(10040)
}

impl PacketSource for UdpSource {
    /// Waits up to `timeout_ms` for the first datagram, then takes what is
    /// already queued (non-blocking), up to [`MAX_PER_POLL`] in all: a
    /// quiet socket after a burst costs no further timeout.
    fn poll(
        &mut self,
        timeout_ms: i32,
        on_packet: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        let t = timeout_ms.max(1);
        if t != self.timeout_ms {
            self.sock
                .set_read_timeout(Some(Duration::from_millis(t as u64)))?;
            self.timeout_ms = t;
        }
        let mut n = 0;
        let mut drained_nonblocking = false;
        while n < MAX_PER_POLL {
            if n == 1 && !drained_nonblocking {
                // The first datagram waited; the rest only take what is queued.
                self.sock.set_nonblocking(true)?;
                drained_nonblocking = true;
            }
            let (len, src, truncated) = match self.sock.recv_from(&mut self.buf) {
                Ok((len, src)) => (len, Some(src), false),
                Err(e) if is_truncation(&e) => (self.buf.len(), None, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            let meta = RxMeta {
                stream: 0,
                kernel_ts: Some(RxTimestamp::Software(realtime_now_ns())),
                user_rx: MonoNs::now(),
                src,
                truncated,
            };
            on_packet(&self.buf[..len], &meta);
            n += 1;
        }
        if drained_nonblocking {
            self.sock.set_nonblocking(false)?;
        }
        Ok(n)
    }

    fn backend(&self) -> &'static str {
        "udp-std"
    }
}

/// Opens the ingest source over `socks` where there is no Linux ingest:
/// [`IngestKind::Auto`] is the portable std-socket source ([`UdpSource`],
/// one socket per ingest thread). The OS module re-exports it as
/// `open_source` (Windows and the rest).
///
/// Errors: `Unsupported` for io_uring or recvmmsg (Linux-only) and for more
/// than one socket; the socket cannot be made blocking.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub fn open_single(
    kind: crate::sys::IngestKind,
    mut socks: Vec<socket2::Socket>,
) -> io::Result<crate::sys::OpenedSource> {
    if kind != crate::sys::IngestKind::Auto {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("ingest backend {kind:?} is Linux-only; use auto"),
        ));
    }
    if socks.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "one stream per ingest thread on this OS (no Receiver::start_group)",
        ));
    }
    let sock = socks.pop().expect("one socket");
    Ok(crate::sys::OpenedSource {
        source: Box::new(UdpSource::new(sock)?),
        fallback_reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stream::StreamConfig;
    use crate::sys::socket::open_stream_socket;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn receives_unicast_loopback_with_timestamps() {
        let mut cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        // Port 0 is refused by the URL parser but fine here: find a free port first.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        cfg.port = probe.local_addr().unwrap().port();
        drop(probe);
        let sock = open_stream_socket(&cfg).unwrap();
        let mut src = UdpSource::new(sock).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            tx.send_to(&[0x80, 96, 0, i, 1, 2, 3, 4], ("127.0.0.1", cfg.port))
                .unwrap();
        }
        let before = realtime_now_ns();
        let mut got = Vec::new();
        let t0 = std::time::Instant::now();
        while got.len() < 3 && t0.elapsed() < Duration::from_secs(2) {
            src.poll(5, &mut |b, m| got.push((b.to_vec(), *m))).unwrap();
        }
        assert_eq!(got.len(), 3);
        for (i, (b, m)) in got.iter().enumerate() {
            assert_eq!(b[3], i as u8);
            assert_eq!(m.src, Some(tx.local_addr().unwrap()));
            let Some(RxTimestamp::Software(ts)) = m.kernel_ts else {
                panic!("no timestamp")
            };
            assert!(ts >= before - 1_000_000_000 && ts <= realtime_now_ns());
        }
        // Nothing more: poll times out and reports 0.
        assert_eq!(
            src.poll(1, &mut |_, _| panic!("unexpected packet"))
                .unwrap(),
            0
        );
    }

    #[test]
    fn unknown_iface_names_the_field() {
        let mut cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::new(239, 69, 0, 1)), 5004);
        cfg.iface = Some("nosuchif0".into());
        let e = open_stream_socket(&cfg).unwrap_err();
        assert!(e.to_string().contains("iface=nosuchif0"), "{e}");
    }
}
