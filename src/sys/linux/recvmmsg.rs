//! The `recvmmsg(2)` ingest backend: poll(2) over N sockets, then drain each
//! readable socket in batches, with kernel receive timestamps from
//! `SCM_TIMESTAMPING` control messages (decoded by nix, no unsafe here).

use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use socket2::Socket;

use crate::sys::{PacketSource, RxMeta, RxTimestamp};
use crate::units::MonoNs;

/// Datagrams received per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Bytes per datagram buffer (a whole jumbo-free UDP payload fits).
pub const BUF_BYTES: usize = 2048;

/// A [`PacketSource`] over N sockets using `recvmmsg`. Stream index `i` is
/// the i-th socket given to [`RecvMmsgSource::new`].
pub struct RecvMmsgSource {
    socks: Vec<Socket>,
    bufs: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    metas: Vec<(
        usize,
        Option<RxTimestamp>,
        Option<std::net::SocketAddr>,
        bool,
    )>,
}

impl RecvMmsgSource {
    /// Takes ownership of non-blocking sockets (see
    /// [`crate::sys::socket::open_stream_socket`]).
    pub fn new(socks: Vec<Socket>) -> RecvMmsgSource {
        let cmsg = nix::cmsg_space!(nix::sys::socket::Timestamps);
        RecvMmsgSource {
            socks,
            bufs: vec![0; BATCH * BUF_BYTES],
            headers: MultiHeaders::preallocate(BATCH, Some(cmsg)),
            metas: Vec::with_capacity(BATCH),
        }
    }

    /// Drains socket `i` (non-blocking); returns datagrams delivered.
    fn drain(&mut self, i: usize, on_packet: &mut dyn FnMut(&[u8], &RxMeta)) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let fd = self.socks[i].as_raw_fd();
            self.metas.clear();
            {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
                    .bufs
                    .chunks_exact_mut(BUF_BYTES)
                    .map(|b| [IoSliceMut::new(b)])
                    .collect();
                let res = match recvmmsg(
                    fd,
                    &mut self.headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(r) => r,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                for m in res {
                    let mut ts = None;
                    if let Ok(cmsgs) = m.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmTimestampsns(t) = c {
                                let hw = t.hw_raw.tv_sec() * 1_000_000_000 + t.hw_raw.tv_nsec();
                                let sw = t.system.tv_sec() * 1_000_000_000 + t.system.tv_nsec();
                                ts = if hw != 0 {
                                    Some(RxTimestamp::Hardware(hw))
                                } else if sw != 0 {
                                    Some(RxTimestamp::Software(sw))
                                } else {
                                    None
                                };
                            }
                        }
                    }
                    let src = m.address.and_then(|a| {
                        a.as_sockaddr_in()
                            .map(|s| std::net::SocketAddr::V4((*s).into()))
                    });
                    let trunc = m.flags.contains(MsgFlags::MSG_TRUNC);
                    self.metas.push((m.bytes, ts, src, trunc));
                }
            }
            let now = MonoNs::now();
            let n = self.metas.len();
            for (k, &(len, kernel_ts, src, truncated)) in self.metas.iter().enumerate() {
                let meta = RxMeta {
                    stream: i,
                    kernel_ts,
                    user_rx: now,
                    src,
                    truncated,
                };
                on_packet(
                    &self.bufs[k * BUF_BYTES..k * BUF_BYTES + len.min(BUF_BYTES)],
                    &meta,
                );
            }
            total += n;
            if n < BATCH {
                break;
            }
        }
        Ok(total)
    }
}

impl PacketSource for RecvMmsgSource {
    fn poll(
        &mut self,
        timeout_ms: i32,
        on_packet: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = self
                .socks
                .iter()
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                .collect();
            let t = PollTimeout::try_from(timeout_ms.max(0)).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, t) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN)))
                .collect()
        };
        let mut total = 0;
        for (i, r) in ready.into_iter().enumerate() {
            if r {
                total += self.drain(i, on_packet)?;
            }
        }
        Ok(total)
    }

    fn backend(&self) -> &'static str {
        "recvmmsg"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stream::StreamConfig;

    #[test]
    fn receives_unicast_on_loopback_with_kernel_timestamps() {
        let mut cfg = StreamConfig::from_url("aes67://127.0.0.1").unwrap();
        cfg.port = 0;
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel enables software RX timestamping system-wide lazily (a
        // deferred static key, `net_enable_timestamp`): the first datagrams
        // after the first timestamping socket opens may carry none, and under
        // load the enabling work can lag. Warm up (paced) until one does,
        // reopening the socket every 3 s to queue the enabling work again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (mut src, port) = loop {
            // Port 0 binds an ephemeral port; find it.
            let s = crate::sys::socket::open_stream_socket(&cfg).unwrap();
            let port = s.local_addr().unwrap().as_socket().unwrap().port();
            let mut src = RecvMmsgSource::new(vec![s]);
            let round = std::time::Instant::now();
            let mut stamped = false;
            while !stamped && round.elapsed() < std::time::Duration::from_secs(3) {
                tx.send_to(&[255u8; 10], ("127.0.0.1", port)).unwrap();
                src.poll(100, &mut |_, m| stamped |= m.kernel_ts.is_some())
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if stamped {
                break (src, port);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no kernel RX timestamp within 30 s"
            );
        };
        while src.poll(10, &mut |_, _| {}).unwrap() > 0 {}
        for i in 0..100u8 {
            tx.send_to(&[i; 100], ("127.0.0.1", port)).unwrap();
        }
        tx.send_to(&[7u8; 4000], ("127.0.0.1", port)).unwrap(); // larger than a buffer
        let mut got = Vec::new();
        let mut truncated = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() + truncated < 101 && std::time::Instant::now() < deadline {
            src.poll(100, &mut |b, m| {
                if m.truncated {
                    truncated += 1;
                } else {
                    assert!(matches!(m.kernel_ts, Some(RxTimestamp::Software(t)) if t > 0));
                    got.push(b[0]);
                }
            })
            .unwrap();
        }
        assert_eq!(got, (0..100u8).collect::<Vec<_>>());
        assert_eq!(truncated, 1);
    }
}
