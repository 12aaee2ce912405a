//! The SAP control-plane thread (RFC 2974): one UDP socket on the SAP group
//! (`239.255.255.255:9875` by default), the listener's
//! [`Directory`](crate::sap::Directory) and one
//! [`Announcer`](crate::sap::Announcer) per announced SDP.
//!
//! Never real-time: it blocks on its socket for at most 100 ms at a time,
//! allocates and locks freely. Readers take a [`SapSnapshot`] (a copy,
//! republished after a change, at most every 100 ms and at least once a
//! second); senders add, update and withdraw SDPs through the [`SapHandle`]. Stopping the handle
//! sends each announcement's deletions (3, 100 ms apart) before the thread
//! ends.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::stream::StreamConfig;
use crate::sap::{
    Announcer, AnnouncerConfig, Change, DEFAULT_GROUP, Directory, DirectoryConfig, DirectoryStats,
    MAX_PACKET, SAP_PORT, Session,
};
use crate::sys::socket::{self, SocketError, io_err};
use crate::units::{MonoNs, Nanos};

/// Options of the SAP thread.
#[derive(Debug, Clone)]
pub struct SapOptions {
    /// Interface (name or IPv4 address) to join on and send from; its
    /// address is the announcements' originating source. `None`: the OS
    /// default route, and origin 0.0.0.0.
    pub iface: Option<String>,
    /// SAP group; default 239.255.255.255 (RFC 2974 §3).
    pub group: Ipv4Addr,
    /// SAP port; default 9875.
    pub port: u16,
    /// Multicast TTL of announcements; default 255 (RFC 2974 §3).
    pub ttl: u32,
    /// Keep a directory of the sessions heard; default true.
    pub listen: bool,
    /// Directory bounds and timeouts.
    pub directory: DirectoryConfig,
    /// Announcement interval and deletions.
    pub announcer: AnnouncerConfig,
}

impl Default for SapOptions {
    fn default() -> SapOptions {
        SapOptions {
            iface: None,
            group: DEFAULT_GROUP,
            port: SAP_PORT,
            ttl: 255,
            listen: true,
            directory: DirectoryConfig::default(),
            announcer: AnnouncerConfig::default(),
        }
    }
}

/// What readers see: the directory as of `taken`.
#[derive(Debug, Clone, Default)]
pub struct SapSnapshot {
    /// When this copy was taken (`CLOCK_MONOTONIC`); ages are `taken −
    /// last_heard` or, fresher, `MonoNs::now() − last_heard`.
    pub taken: MonoNs,
    /// The sessions heard, in the order first heard.
    pub sessions: Vec<Session>,
    /// The directory's counters.
    pub stats: DirectoryStats,
}

/// Counters of the thread's own I/O.
#[derive(Debug, Default)]
pub struct SapIoStats {
    /// SAP packets sent (announcements and deletions).
    pub sent: AtomicU64,
    /// Sends that failed (counted, never fatal).
    pub send_errors: AtomicU64,
    /// Receive errors other than timeouts.
    pub recv_errors: AtomicU64,
}

/// An announced SDP, for [`SapHandle::update`] and [`SapHandle::withdraw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnnouncementId(u64);

enum Cmd {
    Set(AnnouncementId, String),
    Withdraw(AnnouncementId),
}

struct Shared {
    snapshot: Mutex<SapSnapshot>,
    stop: AtomicBool,
    io: SapIoStats,
}

/// The running SAP thread.
pub struct SapHandle {
    shared: Arc<Shared>,
    cmd: mpsc::Sender<Cmd>,
    next_id: AtomicU64,
    origin: Ipv4Addr,
    thread: Option<JoinHandle<()>>,
}

impl SapHandle {
    /// Opens the socket (bound to the group and port, joined on the
    /// interface, sending there with `ttl` and loopback on, so this host's
    /// own listeners hear its announcements) and starts the thread.
    ///
    /// Errors: [`SocketError`] naming the step or the `iface=` at fault.
    pub fn start(opts: SapOptions) -> Result<SapHandle, SocketError> {
        let mut sc = StreamConfig::new(IpAddr::V4(opts.group), opts.port);
        sc.iface = opts.iface.clone();
        let origin = match &opts.iface {
            Some(i) => socket::lookup(i)?.ipv4,
            None => Ipv4Addr::UNSPECIFIED,
        };
        let sock = socket::open_stream_socket(&sc)?;
        socket::set_multicast_send(&sock, origin, opts.ttl, true)?;
        sock.set_nonblocking(false).map_err(io_err("O_NONBLOCK"))?;
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(SapSnapshot::default()),
            stop: AtomicBool::new(false),
            io: SapIoStats::default(),
        });
        let (tx, rx) = mpsc::channel();
        let sh = shared.clone();
        let dest: SocketAddr = (opts.group, opts.port).into();
        let thread = std::thread::Builder::new()
            .name("aes67-sap".into())
            .spawn(move || run(sock, dest, IpAddr::V4(origin), opts, sh, rx))
            .map_err(io_err("spawn"))?;
        Ok(SapHandle {
            shared,
            cmd: tx,
            next_id: AtomicU64::new(1),
            origin,
            thread: Some(thread),
        })
    }

    /// The directory as last published.
    pub fn snapshot(&self) -> SapSnapshot {
        self.shared
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The originating source of announcements (the interface address).
    pub fn origin(&self) -> Ipv4Addr {
        self.origin
    }

    /// The thread's send and receive counters.
    pub fn io_stats(&self) -> &SapIoStats {
        &self.shared.io
    }

    /// Starts announcing `sdp` (at once, then every interval).
    pub fn announce(&self, sdp: String) -> AnnouncementId {
        let id = AnnouncementId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let _ = self.cmd.send(Cmd::Set(id, sdp));
        id
    }

    /// Replaces an announced SDP: a deletion of the old one, then the new
    /// one with a new message id hash (RFC 2974 §3).
    pub fn update(&self, id: AnnouncementId, sdp: String) {
        let _ = self.cmd.send(Cmd::Set(id, sdp));
    }

    /// Stops announcing one SDP (its deletions are sent).
    pub fn withdraw(&self, id: AnnouncementId) {
        let _ = self.cmd.send(Cmd::Withdraw(id));
    }

    /// Stops the thread after sending the deletions of every announcement
    /// (about 200 ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SapHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Longest single wait on the socket, so commands and stop are seen.
const TICK: Duration = Duration::from_millis(100);
/// Shortest time between two published snapshots.
const PUBLISH_MIN: Nanos = Nanos::from_ms(100);
/// Longest wait for the deletions at stop.
const STOP_DRAIN: Nanos = Nanos::from_secs(2);

fn run(
    sock: socket2::Socket,
    dest: SocketAddr,
    origin: IpAddr,
    opts: SapOptions,
    sh: Arc<Shared>,
    rx: mpsc::Receiver<Cmd>,
) {
    let mut dir = Directory::new(opts.directory);
    let mut ann: Vec<(AnnouncementId, Announcer)> = Vec::new();
    let sock: std::net::UdpSocket = sock.into();
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut seed_base = rand_seed();
    let mut last_publish = MonoNs::from_ns(0);
    let mut dirty = true;
    let send_all = |ann: &mut Vec<(AnnouncementId, Announcer)>, now: MonoNs| {
        for (_, a) in ann.iter_mut() {
            for p in a.poll(now) {
                match sock.send_to(&p, dest) {
                    Ok(_) => sh.io.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => sh.io.send_errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
        ann.retain(|(_, a)| !a.is_idle());
    };
    while !sh.stop.load(Ordering::Relaxed) {
        let now = MonoNs::now();
        while let Ok(c) = rx.try_recv() {
            match c {
                Cmd::Set(id, sdp) => {
                    let a = match ann.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, a)) => a,
                        None => {
                            seed_base = seed_base.wrapping_add(0x9E37_79B9_7F4A_7C15);
                            ann.push((id, Announcer::new(opts.announcer, origin, seed_base)));
                            &mut ann.last_mut().expect("just pushed").1
                        }
                    };
                    if a.set_sdp(now, &sdp).is_err() {
                        sh.io.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Cmd::Withdraw(id) => {
                    if let Some((_, a)) = ann.iter_mut().find(|(i, _)| *i == id) {
                        a.stop(now);
                    }
                }
            }
        }
        send_all(&mut ann, now);
        if dir.expire(now) > 0 {
            dirty = true;
        }
        // Republished on a change, at most every 100 ms (a flood of new
        // sessions costs one copy per 100 ms, not one per packet), and at
        // least once a second.
        let since = now.since(last_publish);
        if (dirty && since >= PUBLISH_MIN) || since >= Nanos::from_secs(1) {
            *sh.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = SapSnapshot {
                taken: now,
                sessions: dir.sessions().to_vec(),
                stats: dir.stats(),
            };
            last_publish = now;
            dirty = false;
        }
        // Sleep on the socket until the next announcement, expiry or tick.
        let mut wait = TICK;
        for t in ann
            .iter()
            .filter_map(|(_, a)| a.poll_timeout())
            .chain(dir.next_expiry())
        {
            let d = t.since(now).as_ns().max(1_000_000) as u64;
            wait = wait.min(Duration::from_nanos(d));
        }
        let _ = sock.set_read_timeout(Some(wait));
        match sock.recv_from(&mut buf) {
            Ok((n, _from)) if opts.listen => {
                // A datagram over MAX_PACKET arrives truncated to MAX_PACKET + 1
                // bytes and is refused as too large.
                if let Ok(c) = dir.handle(MonoNs::now(), &buf[..n])
                    && c != Change::Refreshed
                {
                    dirty = true;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                sh.io.recv_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(TICK);
            }
        }
    }
    // Clean stop: every announcement's deletions.
    let t0 = MonoNs::now();
    for (_, a) in ann.iter_mut() {
        a.stop(t0);
    }
    while !ann.is_empty() && MonoNs::now().since(t0) < STOP_DRAIN {
        let now = MonoNs::now();
        send_all(&mut ann, now);
        if let Some(next) = ann.iter().filter_map(|(_, a)| a.poll_timeout()).min() {
            let d = next.since(MonoNs::now()).as_ns().max(0) as u64;
            std::thread::sleep(Duration::from_nanos(d));
        }
    }
}

/// A seed for the announcers' jitter: from the OS RNG, else the clock.
fn rand_seed() -> u64 {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_next_u64()
        .unwrap_or_else(|_| MonoNs::now().as_ns() ^ u64::from(std::process::id()))
}
