//! A portable UDP packet source for the engine's receiver: std sockets
//! (Winsock on Windows) with software receive timestamps taken in user space
//! right after `recv_from` returns.
//!
//! It stands in for the Linux ingest (`recvmmsg` + SO_TIMESTAMPING) where
//! that does not exist: on Windows the add-on hands it to
//! `Receiver::start_with_source`. The timestamp is the UTC wall clock
//! (`SystemTime`, which is GetSystemTimePreciseAsFileTime on Windows), so it
//! includes the wake-up latency a kernel timestamp would not.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::media::stream::StreamConfig;
use crate::sys::clock::realtime_now_ns;
use crate::sys::{PacketSource, RxMeta, RxTimestamp};
use crate::units::MonoNs;
use socket2::{Domain, Protocol, Socket, Type};

/// Largest datagram accepted, bytes (AES67 payloads are ≤ 1440 bytes; jumbo frames fit too).
pub const MAX_DATAGRAM: usize = 9000;
/// Receive buffer requested, bytes.
pub const RCVBUF_BYTES: usize = 4 << 20;
/// Most datagrams delivered by one `poll`.
pub const MAX_PER_POLL: usize = 64;

/// Opens the stream's socket: for a multicast group, bound to the port on
/// all addresses (Windows cannot bind a group address) and joined on the
/// interface given by IPv4 address (`iface=`), source-specific with
/// `source=` (IGMPv3, RFC 4604); for a unicast address, bound to it.
///
/// Errors: BASS_ERROR_FILEOPEN naming the step (`bind`, `join`), or
/// BASS_ERROR_ILLPARAM when `iface=` is not an IPv4 address (interface names
/// are resolved only on Linux) or the group is IPv6.
pub fn open_socket(cfg: &StreamConfig) -> io::Result<UdpSocket> {
    let IpAddr::V4(dest) = cfg.dest else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("IPv6 is not supported in group {}", cfg.dest),
        ));
    };
    let iface = match cfg.iface.as_deref() {
        None => Ipv4Addr::UNSPECIFIED,
        Some(s) => s.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not an IPv4 address (names need Linux) in iface={s}"),
            )
        })?,
    };
    let e = |what: &str| {
        let what = what.to_string();
        move |err: io::Error| io::Error::other(format!("{what}: {err}"))
    };
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(e("socket"))?;
    sock.set_reuse_address(true).map_err(e("SO_REUSEADDR"))?;
    let _ = sock.set_recv_buffer_size(RCVBUF_BYTES);
    if dest.is_multicast() {
        sock.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.port)).into())
            .map_err(e(&format!("bind port {}", cfg.port)))?;
        match cfg.source {
            Some(src) => sock
                .join_ssm_v4(&src, &dest, &iface)
                .map_err(e("IP_ADD_SOURCE_MEMBERSHIP"))?,
            None => sock
                .join_multicast_v4(&dest, &iface)
                .map_err(e("IP_ADD_MEMBERSHIP"))?,
        }
    } else {
        sock.bind(&SocketAddr::from((dest, cfg.port)).into())
            .map_err(e(&format!("bind {dest}:{}", cfg.port)))?;
    }
    Ok(sock.into())
}

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
    /// Wraps a socket from [`open_socket`].
    pub fn new(sock: UdpSocket) -> UdpSource {
        UdpSource {
            sock,
            buf: vec![0; MAX_DATAGRAM],
            timeout_ms: -1,
        }
    }
}

fn is_truncation(e: &io::Error) -> bool {
    // WSAEMSGSIZE: the datagram was larger than the buffer (its start was received).
    cfg!(windows) && e.raw_os_error() == Some(10040)
}

impl PacketSource for UdpSource {
    /// Waits up to `timeout_ms` for the first datagram, then takes up to
    /// [`MAX_PER_POLL`] more, each waiting at most the same timeout.
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
        while n < MAX_PER_POLL {
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
        Ok(n)
    }

    fn backend(&self) -> &'static str {
        "udp-std"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_unicast_loopback_with_timestamps() {
        let mut cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        // Port 0 is refused by the URL parser but fine here: find a free port first.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        cfg.port = probe.local_addr().unwrap().port();
        drop(probe);
        let sock = open_socket(&cfg).unwrap();
        let mut src = UdpSource::new(sock);
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
    fn iface_must_be_an_address() {
        let mut cfg = StreamConfig::new(IpAddr::V4(Ipv4Addr::new(239, 69, 0, 1)), 5004);
        cfg.iface = Some("eth0".into());
        let e = open_socket(&cfg).unwrap_err();
        assert!(e.to_string().contains("iface=eth0"), "{e}");
    }
}
