//! The io_uring ingest backend: one ring serves N UDP sockets, each with one
//! multishot `IORING_OP_RECVMSG` (`IORING_RECV_MULTISHOT`, Linux ≥ 6.0) that
//! draws receive buffers from a shared provided-buffer ring
//! (`IORING_REGISTER_PBUF_RING`, Linux ≥ 5.19). One submission per socket
//! serves many datagrams; there is no per-packet system call.
//!
//! Shape of a provided buffer, as the kernel fills it for a multishot recvmsg
//! (`io_uring_prep_recvmsg_multishot(3)`): a 16-byte `io_uring_recvmsg_out`
//! header, then a fixed [`NAME_BYTES`] sender-address field, a fixed
//! [`CONTROL_BYTES`] control-message field, then the payload (up to
//! [`UringConfig::payload_bytes`]). Results are parsed with
//! [`io_uring::types::RecvMsgOut::parse`] (bounds-checked) and control messages
//! with [`super::cmsg`] (safe). A payload larger than the buffer is delivered
//! as a prefix with [`RxMeta::truncated`] set and counted.
//!
//! Re-arming: when a multishot ends (a completion without `IORING_CQE_F_MORE`,
//! e.g. `-ENOBUFS` because every buffer was in user space), the socket is
//! re-armed on the next [`PacketSource::poll`], after the buffers handed to
//! the callback have been returned to the ring. Datagrams queued in the socket
//! meanwhile are not lost; they are read by the re-armed request.
//!
//! All `unsafe` code of the ingest path lives in this file.
//!
//! Also here: [`open_source`], which picks the backend (`--ingest
//! auto|uring|recvmmsg`), falling back to [`RecvMmsgSource`] when io_uring is
//! unavailable ([`probe`]).

use std::alloc::Layout;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{IoUring, cqueue, opcode, types};
use socket2::Socket;

use super::cmsg;
use super::recvmmsg::RecvMmsgSource;
use crate::sys::{PacketSource, RxMeta};
use crate::units::MonoNs;

/// Bytes reserved in each buffer for the sender address (`msg_namelen`):
/// fits `sockaddr_in` and `sockaddr_in6`.
pub const NAME_BYTES: usize = 32;
/// Bytes reserved in each buffer for control messages (`msg_controllen`):
/// one `SCM_TIMESTAMPING` plus room for one more message.
pub const CONTROL_BYTES: usize = 2 * cmsg::TIMESTAMPING_SPACE;
/// Size of `struct io_uring_recvmsg_out`, bytes.
const OUT_HDR_BYTES: usize = 16;
/// Buffer group id of the shared provided-buffer ring.
const BGID: u16 = 0x67;
/// `user_data` of cancel requests (stream indices are small).
const CANCEL_TAG: u64 = u64::MAX;

/// Sizes of the ring and its buffers.
#[derive(Debug, Clone, Copy)]
pub struct UringConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel).
    pub sq_entries: u32,
    /// Completion queue entries (at least `sq_entries`): how many datagrams may complete between two
    /// polls before the kernel has to buffer completions (it never drops them
    /// with `IORING_FEAT_NODROP`).
    pub cq_entries: u32,
    /// Provided buffers (a power of two, ≤ 32768): datagrams that can be in
    /// flight between kernel and user space before the multishots stop with
    /// `ENOBUFS` (and are re-armed).
    pub buffers: u16,
    /// Payload bytes per buffer; larger datagrams are truncated (and flagged).
    pub payload_bytes: usize,
    /// Batching window, µs (0: off). When set and the kernel supports
    /// `IORING_SETUP_DEFER_TASKRUN` and min-wait (Linux ≥ 6.12), a poll that
    /// finds nothing queued sleeps
    /// until either this window has passed with at least one datagram
    /// waiting, or half the completion queue is filled; so one wake-up serves
    /// many datagrams of many streams. Adds up to this much
    /// latency; keep it well below the link offset (e.g. 250 µs for 1 ms).
    pub batch_wait_us: u32,
}

impl Default for UringConfig {
    /// 4096 buffers of 2048 payload bytes (≈ 9 MB), 8192 completion entries:
    /// enough for 256 streams at 125 µs to wait 15 ms between polls.
    fn default() -> Self {
        UringConfig {
            sq_entries: 256,
            cq_entries: 8192,
            buffers: 4096,
            payload_bytes: 2048,
            batch_wait_us: 0,
        }
    }
}

/// Counters of a [`UringSource`]; monotonically increasing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringStats {
    /// Datagrams handed to the callback.
    pub packets: u64,
    /// Of those, datagrams larger than the buffer (`MSG_TRUNC`), delivered as a prefix.
    pub truncated: u64,
    /// Multishot requests (re-)submitted, including the first arm of each socket.
    pub arms: u64,
    /// Multishots that ended because the buffer ring was empty (`ENOBUFS`).
    pub enobufs: u64,
    /// Completions that could not be parsed (no buffer id, bad layout); dropped.
    pub malformed: u64,
    /// Other error completions (errno other than `ENOBUFS`).
    pub errors: u64,
}

/// Why io_uring ingest cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum UringUnavailable {
    /// `io_uring_setup` failed: ENOSYS (no io_uring), EPERM (disabled by
    /// `kernel.io_uring_disabled` or a seccomp filter), ENOMEM (memlock).
    #[error("io_uring_setup failed: {0}")]
    Setup(io::Error),
    /// The kernel does not support an opcode we need.
    #[error("io_uring opcode {0} not supported by this kernel")]
    Opcode(&'static str),
    /// Registering a provided-buffer ring failed (Linux < 5.19).
    #[error("provided-buffer ring not supported: {0}")]
    BufRing(io::Error),
    /// The self-test (one datagram over loopback via multishot recvmsg)
    /// failed, e.g. EINVAL on Linux < 6.0 without `IORING_RECV_MULTISHOT`.
    #[error("multishot recvmsg self-test failed: {0}")]
    Multishot(io::Error),
}

/// Owner of the provided-buffer ring: the shared entry array (page-aligned,
/// registered with the kernel) and the contiguous data area it points into.
struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    data: NonNull<u8>,
    data_layout: Layout,
    mask: u16,
    buf_len: usize,
    /// Local copy of the tail; published with [`BufRing::publish`].
    tail: u16,
    /// Set when the kernel may still write into the buffers (cancel did not
    /// complete on drop): the memory is then leaked instead of freed.
    leak: bool,
}

impl BufRing {
    fn new(count: u16, buf_len: usize) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffers must be a power of two ≤ 32768",
            ));
        }
        let entries_layout =
            Layout::from_size_align(count as usize * size_of::<BufRingEntry>(), 4096)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let data_layout = Layout::from_size_align(count as usize * buf_len, 64)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: both layouts have non-zero size (count ≥ 1, buf_len > 0 checked
        // by the caller); the results are checked for null below.
        let (e, d) = unsafe {
            (
                std::alloc::alloc_zeroed(entries_layout),
                std::alloc::alloc_zeroed(data_layout),
            )
        };
        let (Some(entries), Some(data)) = (NonNull::new(e.cast::<BufRingEntry>()), NonNull::new(d))
        else {
            // SAFETY: each non-null pointer was allocated just above with its layout.
            unsafe {
                if !e.is_null() {
                    std::alloc::dealloc(e, entries_layout);
                }
                if !d.is_null() {
                    std::alloc::dealloc(d, data_layout);
                }
            }
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        let mut ring = BufRing {
            entries,
            entries_layout,
            data,
            data_layout,
            mask: count - 1,
            buf_len,
            tail: 0,
            leak: false,
        };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Queues buffer `bid` at the local tail (visible to the kernel after
    /// [`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        let slot = (self.tail & self.mask) as usize;
        let addr = self.data.as_ptr() as u64 + bid as u64 * self.buf_len as u64;
        // SAFETY: slot ≤ mask < count, so the entry lies inside the allocation;
        // the kernel only reads entries between its head and the published tail,
        // and this slot is past the published tail, so no one else accesses
        // these three fields. Only they are written, through raw field
        // pointers (`addr_of_mut!`): no reference to the entry is formed, so
        // nothing of ours aliases entry 0's `resv`, the tail the kernel reads
        // concurrently.
        unsafe {
            let e = self.entries.as_ptr().add(slot).cast::<RawBufEntry>();
            std::ptr::addr_of_mut!((*e).addr).write(addr);
            std::ptr::addr_of_mut!((*e).len).write(self.buf_len as u32);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel (release store of the tail).
    fn publish(&self) {
        // SAFETY: `entries` points at the first entry of the ring, initialised
        // (zeroed) memory; the tail is the u16 `resv` field of entry 0, 2-byte
        // aligned, and the kernel reads it with acquire semantics, so it is
        // accessed atomically here.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid` (clipped to the buffer).
    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let bid = (bid & self.mask) as usize;
        let len = len.min(self.buf_len);
        // SAFETY: bid ≤ mask < count, so the range lies inside the data area.
        // The kernel handed this buffer to us in a completion and does not write
        // it again until we push it back, which happens after the borrow ends
        // (`push` takes `&mut self`).
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(bid * self.buf_len), len) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: both pointers were allocated in `new` with these layouts and
        // the kernel no longer uses them (ring unregistered and requests
        // cancelled, else `leak` is set).
        unsafe {
            std::alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            std::alloc::dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}

/// The layout of a provided-buffer ring entry (`struct io_uring_buf`,
/// what [`BufRingEntry`] wraps): written field by field in
/// [`BufRing::push`]. `resv` of entry 0 is the ring's tail.
#[repr(C)]
struct RawBufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(
    size_of::<RawBufEntry>() == size_of::<BufRingEntry>()
        && align_of::<RawBufEntry>() == align_of::<BufRingEntry>()
);

/// An io_uring [`PacketSource`] over N UDP sockets. Stream index `i` is the
/// i-th socket given to [`UringSource::new`].
///
/// Call order: `new` (any thread), then `poll` repeatedly from one thread,
/// and drop on that same thread: the first `poll` binds the ring to its
/// thread (`IORING_SETUP_SINGLE_ISSUER`). The sockets are armed by the first
/// `poll`; datagrams arriving before it wait in the socket buffers. Hot path:
/// no allocation, no lock, no log.
pub struct UringSource {
    // Field order matters for drop: the ring goes before the buffers it uses.
    ring: IoUring,
    bufs: BufRing,
    /// The template handed to every multishot recvmsg (only `msg_namelen`
    /// and `msg_controllen` are read by the kernel); boxed so its address
    /// stays fixed.
    msghdr: Box<libc::msghdr>,
    socks: Vec<Socket>,
    armed: Vec<bool>,
    need_arm: Vec<usize>,
    stats: UringStats,
    /// The ring was created disabled (`IORING_SETUP_R_DISABLED`, for
    /// `SINGLE_ISSUER` + `DEFER_TASKRUN`) and is enabled by the first `poll`,
    /// binding it to the polling thread.
    enabled: bool,
    /// `UringConfig::batch_wait_us`: the window used while no hint sets one.
    batch_wait_us: u32,
    /// Sockets with pending datagrams a poll waits for, and the batching
    /// window, µs (see [`PacketSource::set_wait_hint`]).
    wait_hint: (usize, u32),
    /// The kernel supports min-wait batching on this ring (deferred task
    /// work and `IORING_FEAT_MIN_TIMEOUT`).
    min_wait_ok: bool,
}

// SAFETY: the raw pointers in `BufRing` point to memory owned by this value
// alone; the ring and sockets are plain file descriptors. Moving the whole
// source to another thread is sound; it is not `Sync`.
unsafe impl Send for UringSource {}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl UringSource {
    /// Builds a ring for `socks` (non-blocking UDP sockets, e.g. from
    /// [`crate::sys::socket::open_stream_socket`]) with [`UringConfig::default`].
    ///
    /// Errors: ring setup or buffer-ring registration failed; the sockets are
    /// handed back with the error so a caller can fall back to another backend.
    pub fn new(socks: Vec<Socket>) -> Result<UringSource, (io::Error, Vec<Socket>)> {
        Self::with_config(socks, UringConfig::default())
    }

    /// As [`UringSource::new`] with explicit sizes.
    pub fn with_config(
        socks: Vec<Socket>,
        cfg: UringConfig,
    ) -> Result<UringSource, (io::Error, Vec<Socket>)> {
        match Self::build(&cfg) {
            Ok((ring, bufs, msghdr, enabled)) => {
                let min_wait_ok = !enabled && ring.params().is_feature_min_timeout();
                let n = socks.len();
                Ok(UringSource {
                    ring,
                    bufs,
                    msghdr,
                    socks,
                    armed: vec![false; n],
                    need_arm: (0..n).collect(),
                    stats: UringStats::default(),
                    enabled,
                    batch_wait_us: cfg.batch_wait_us,
                    wait_hint: (1, 0),
                    min_wait_ok,
                })
            }
            Err(e) => Err((e, socks)),
        }
    }

    /// Creates the ring: disabled, single-issuer with deferred task work
    /// (Linux ≥ 6.1: completions are only processed when the polling thread
    /// asks, so it is woken once per batch, not once per datagram), else
    /// cooperative task work (≥ 5.19), else plain. Returns whether the ring
    /// is already enabled.
    fn build(cfg: &UringConfig) -> io::Result<(IoUring, BufRing, Box<libc::msghdr>, bool)> {
        if cfg.payload_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "payload_bytes must be > 0",
            ));
        }
        let cq = cfg.cq_entries.max(cfg.sq_entries);
        let (ring, enabled) = match IoUring::builder()
            .setup_cqsize(cq)
            .setup_r_disabled()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(cfg.sq_entries)
        {
            Ok(r) => (r, false),
            Err(_) => (
                IoUring::builder()
                    .setup_cqsize(cq)
                    .setup_coop_taskrun()
                    .setup_taskrun_flag()
                    .build(cfg.sq_entries)
                    .or_else(|_| IoUring::builder().setup_cqsize(cq).build(cfg.sq_entries))?,
                true,
            ),
        };
        let buf_len = OUT_HDR_BYTES + NAME_BYTES + CONTROL_BYTES + cfg.payload_bytes;
        let bufs = BufRing::new(cfg.buffers, buf_len)?;
        // SAFETY: the entry array is page-aligned, holds `buffers` entries and
        // lives in `bufs`, which outlives every request: `UringSource::drop`
        // cancels all multishots and unregisters the ring before `bufs` is freed
        // (or leaks it if cancellation does not complete).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries.as_ptr() as u64,
                cfg.buffers,
                BGID,
                0,
            )?
        };
        // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = NAME_BYTES as u32;
        msghdr.msg_controllen = CONTROL_BYTES as _;
        Ok((ring, bufs, msghdr, enabled))
    }

    /// Counters since construction.
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// Number of sockets (streams) served.
    pub fn streams(&self) -> usize {
        self.socks.len()
    }

    /// Pushes one submission, flushing the submission queue when it is full.
    fn push_sqe(&mut self, e: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry pushed here is either a multishot recvmsg whose
            // msghdr (`self.msghdr`, boxed) and buffer group (`self.bufs`) outlive
            // the request (see `Drop`), or a cancel that references no memory.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Completions that end a min-wait batch early: half the completion queue.
    fn batch_want(&self) -> usize {
        (self.ring.params().cq_entries() / 2).max(1) as usize
    }

    /// Whether batching (`UringConfig::batch_wait_us`) is in effect.
    pub fn batching(&self) -> bool {
        self.batch_wait_us > 0 && self.min_wait_ok
    }

    /// Submits a multishot recvmsg for every socket that needs one (enabling
    /// a disabled ring first, which binds it to the calling thread).
    fn arm_pending(&mut self) -> io::Result<()> {
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        if self.need_arm.is_empty() {
            return Ok(());
        }
        for k in 0..self.need_arm.len() {
            let i = self.need_arm[k];
            if self.armed[i] {
                continue;
            }
            let fd = self.socks[i].as_raw_fd();
            let e = opcode::RecvMsgMulti::new(
                types::Fd(fd),
                &*self.msghdr as *const libc::msghdr,
                BGID,
            )
            .build()
            .user_data(i as u64);
            self.push_sqe(&e)?;
            self.armed[i] = true;
            self.stats.arms += 1;
        }
        self.need_arm.clear();
        self.ring.submit()?;
        Ok(())
    }

    /// Waits for at least one completion, at most `timeout_ms` (negative: no
    /// limit, 0: no wait).
    fn wait(&mut self, timeout_ms: i32) -> io::Result<()> {
        // With deferred task work the kernel wakes this thread once `want`
        // requests (sockets) have work queued, or at the min-wait timer.
        let (hint, mut window) = self.wait_hint;
        if window == 0 {
            window = self.batch_wait_us;
        }
        let (want, min_wait) = if window > 0 && self.min_wait_ok {
            (self.batch_want(), window)
        } else {
            (hint.max(1), 0)
        };
        let r = if timeout_ms == 0 {
            // GETEVENTS (want 1 with a zero timeout) runs deferred task work.
            let ts = types::Timespec::new();
            self.ring
                .submitter()
                .submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
        } else if timeout_ms < 0 && min_wait == 0 {
            self.ring.submit_and_wait(want)
        } else {
            let ms = if timeout_ms < 0 {
                3_600_000
            } else {
                timeout_ms as u64
            };
            let ts = types::Timespec::new()
                .sec(ms / 1000)
                .nsec((ms % 1000) as u32 * 1_000_000);
            let args = types::SubmitArgs::new()
                .timespec(&ts)
                .min_wait_usec(min_wait);
            self.ring.submitter().submit_with_args(want, &args)
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Handles every completion queued now; returns datagrams delivered.
    fn drain(&mut self, on_packet: &mut dyn FnMut(&[u8], &RxMeta)) -> io::Result<usize> {
        let UringSource {
            ring,
            bufs,
            msghdr,
            armed,
            need_arm,
            stats,
            socks,
            ..
        } = self;
        let n_socks = socks.len();
        let now = MonoNs::now();
        let mut delivered = 0;
        let mut fatal: Option<io::Error> = None;
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            if ud == CANCEL_TAG || ud as usize >= n_socks {
                continue;
            }
            let i = ud as usize;
            let flags = cqe.flags();
            let res = cqe.result();
            if !cqueue::more(flags) {
                armed[i] = false;
            }
            if res < 0 {
                match -res {
                    libc::ENOBUFS => stats.enobufs += 1,
                    // Configuration errors: re-arming would spin.
                    e @ (libc::EINVAL
                    | libc::EBADF
                    | libc::ENOTSOCK
                    | libc::EOPNOTSUPP
                    | libc::EFAULT) => {
                        stats.errors += 1;
                        fatal = Some(errno(e));
                        continue;
                    }
                    _ => stats.errors += 1,
                }
            } else if let Some(bid) = cqueue::buffer_select(flags) {
                match RecvMsgOut::parse(bufs.buf(bid, res as usize), msghdr) {
                    Ok(out) => {
                        let payload = out.payload_data();
                        let truncated = out.is_payload_truncated()
                            || (payload.len() as u64) < out.incoming_payload_len() as u64;
                        stats.truncated += truncated as u64;
                        let meta = RxMeta {
                            stream: i,
                            kernel_ts: cmsg::rx_timestamp(out.control_data()),
                            user_rx: now,
                            src: parse_sockaddr(out.name_data()),
                            truncated,
                        };
                        on_packet(payload, &meta);
                        stats.packets += 1;
                        delivered += 1;
                    }
                    Err(()) => stats.malformed += 1,
                }
                bufs.push(bid);
            } else {
                stats.malformed += 1;
            }
            if !armed[i] {
                need_arm.push(i);
            }
        }
        bufs.publish();
        match fatal {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }
}

/// Decodes a `sockaddr_in` / `sockaddr_in6` from raw name bytes; `None` if
/// the family is unknown or the bytes are short.
pub fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    if family == libc::AF_INET && b.len() >= 8 {
        let port = u16::from_be_bytes([b[2], b[3]]);
        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    } else if family == libc::AF_INET6 && b.len() >= 24 {
        let port = u16::from_be_bytes([b[2], b[3]]);
        let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[8..24]);
        let scope = if b.len() >= 28 {
            u32::from_ne_bytes([b[24], b[25], b[26], b[27]])
        } else {
            0
        };
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flow,
            scope,
        )))
    } else {
        None
    }
}

impl PacketSource for UringSource {
    /// Re-arms ended multishots, waits up to `timeout_ms` (negative: no
    /// limit) for completions, delivers every queued datagram, then returns
    /// the buffers to the ring.
    ///
    /// Errors: `io_uring_enter` failures, and a multishot ending with a
    /// configuration error (EINVAL, EBADF, ENOTSOCK, EOPNOTSUPP, EFAULT), after
    /// which that socket stays disarmed.
    fn poll(
        &mut self,
        timeout_ms: i32,
        on_packet: &mut dyn FnMut(&[u8], &RxMeta),
    ) -> io::Result<usize> {
        self.arm_pending()?;
        if self.ring.completion().is_empty() {
            self.wait(timeout_ms)?;
        }
        let n = self.drain(on_packet)?;
        // Re-arm at once so the socket is read while the caller works.
        self.arm_pending()?;
        Ok(n)
    }

    fn backend(&self) -> &'static str {
        "uring"
    }

    fn set_wait_hint(&mut self, datagrams: usize, window_us: u32) {
        self.wait_hint = (datagrams.max(1), window_us);
    }
}

impl Drop for UringSource {
    fn drop(&mut self) {
        if !self.enabled {
            // Never enabled: no request was ever submitted.
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
            return;
        }
        let armed: Vec<usize> = (0..self.armed.len()).filter(|&i| self.armed[i]).collect();
        for i in armed {
            let e = opcode::AsyncCancel::new(i as u64)
                .build()
                .user_data(CANCEL_TAG);
            if self.push_sqe(&e).is_err() {
                break;
            }
        }
        // Wait for the cancellations alone: no batching window (it would
        // hold each wait for the window, adding milliseconds to a stop).
        self.wait_hint = (1, 0);
        self.batch_wait_us = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.armed.iter().any(|&a| a) && Instant::now() < deadline {
            if self.wait(50).is_err() {
                break;
            }
            let UringSource { ring, armed, .. } = self;
            for cqe in ring.completion() {
                let i = cqe.user_data() as usize;
                if i < armed.len() && !cqueue::more(cqe.flags()) {
                    armed[i] = false;
                }
            }
        }
        if self.armed.iter().any(|&a| a) {
            // The kernel may still write into the buffers: never free them.
            self.bufs.leak = true;
        }
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}

/// Checks, once per process, that io_uring multishot recvmsg with a
/// provided-buffer ring works here: ring setup, opcode probe, buffer-ring
/// registration, and one datagram received over loopback (skipped, with the
/// other checks still made, when loopback is unusable, e.g. a fresh network
/// namespace).
///
/// Errors: [`UringUnavailable`] naming the failed step.
pub fn probe() -> Result<(), &'static UringUnavailable> {
    static RESULT: OnceLock<Result<(), UringUnavailable>> = OnceLock::new();
    RESULT.get_or_init(probe_uncached).as_ref().map(|_| ())
}

fn probe_uncached() -> Result<(), UringUnavailable> {
    let ring = IoUring::new(8).map_err(UringUnavailable::Setup)?;
    let mut p = io_uring::Probe::new();
    if ring.submitter().register_probe(&mut p).is_ok() {
        if !p.is_supported(opcode::RecvMsg::CODE) {
            return Err(UringUnavailable::Opcode("IORING_OP_RECVMSG"));
        }
        if !p.is_supported(opcode::AsyncCancel::CODE) {
            return Err(UringUnavailable::Opcode("IORING_OP_ASYNC_CANCEL"));
        }
    }
    drop(ring);
    let cfg = UringConfig {
        sq_entries: 8,
        cq_entries: 16,
        buffers: 4,
        payload_bytes: 64,
        batch_wait_us: 0,
    };
    let Some((rx, port)) = loopback_socket() else {
        // No loopback: check the buffer ring at least.
        return UringSource::with_config(Vec::new(), cfg)
            .map(drop)
            .map_err(|(e, _)| UringUnavailable::BufRing(e));
    };
    let mut src =
        UringSource::with_config(vec![rx], cfg).map_err(|(e, _)| UringUnavailable::BufRing(e))?;
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").map_err(UringUnavailable::Multishot)?;
    tx.send_to(b"aes67-uring-probe", ("127.0.0.1", port))
        .map_err(UringUnavailable::Multishot)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = 0;
    while got == 0 && Instant::now() < deadline {
        src.poll(100, &mut |b, _| got += (b == b"aes67-uring-probe") as usize)
            .map_err(UringUnavailable::Multishot)?;
    }
    if got == 0 {
        return Err(UringUnavailable::Multishot(io::Error::from(
            io::ErrorKind::TimedOut,
        )));
    }
    Ok(())
}

/// A non-blocking UDP socket on 127.0.0.1, and its port.
fn loopback_socket() -> Option<(Socket, u16)> {
    let s = Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .ok()?;
    s.set_nonblocking(true).ok()?;
    let port = s.local_addr().ok()?.as_socket()?.port();
    Some((s, port))
}

pub use crate::sys::IngestKind;

pub use crate::sys::OpenedSource;

/// Opens an ingest source over `socks` (stream index i = socket i).
///
/// [`IngestKind::Auto`] uses io_uring when [`probe`] passes and the ring can
/// be built, else recvmmsg, stating why in [`OpenedSource::fallback_reason`].
///
/// Errors: with [`IngestKind::Uring`], io_uring is unavailable or the ring
/// cannot be built.
pub fn open_source(kind: IngestKind, socks: Vec<Socket>) -> io::Result<OpenedSource> {
    open_source_with(kind, socks, UringConfig::default())
}

/// As [`open_source`], with explicit io_uring sizes and batching.
pub fn open_source_with(
    kind: IngestKind,
    socks: Vec<Socket>,
    cfg: UringConfig,
) -> io::Result<OpenedSource> {
    let recvmmsg = |socks, why: Option<String>| OpenedSource {
        source: Box::new(RecvMmsgSource::new(socks)),
        fallback_reason: why,
    };
    match kind {
        IngestKind::Recvmmsg => Ok(recvmmsg(socks, None)),
        IngestKind::Uring => {
            probe().map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e.to_string()))?;
            let s = UringSource::with_config(socks, cfg).map_err(|(e, _)| e)?;
            Ok(OpenedSource {
                source: Box::new(s),
                fallback_reason: None,
            })
        }
        IngestKind::Auto => match probe() {
            Err(e) => Ok(recvmmsg(socks, Some(e.to_string()))),
            Ok(()) => match UringSource::with_config(socks, cfg) {
                Ok(s) => Ok(OpenedSource {
                    source: Box::new(s),
                    fallback_reason: None,
                }),
                Err((e, socks)) => Ok(recvmmsg(
                    socks,
                    Some(format!("io_uring ring setup failed: {e}")),
                )),
            },
        },
    }
}

/// The running kernel's `(major, minor)` version from `uname(2)`; `(0, 0)`
/// when it cannot be read.
pub fn kernel_version() -> (u32, u32) {
    let Ok(r) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let rel = r.release().to_string_lossy().into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_parsing_is_bounds_checked() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&5004u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(parse_sockaddr(&v4), Some("10.1.2.3:5004".parse().unwrap()));
        for n in 0..8 {
            assert_eq!(parse_sockaddr(&v4[..n]), None);
        }
        let mut v6 = vec![0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&9u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(parse_sockaddr(&v6), Some("[::1]:9".parse().unwrap()));
        assert_eq!(parse_sockaddr(&[0xff; 28]), None);
    }

    #[test]
    fn ingest_kind_parses_cli_names() {
        assert_eq!("uring".parse(), Ok(IngestKind::Uring));
        assert_eq!("recvmmsg".parse(), Ok(IngestKind::Recvmmsg));
        assert_eq!("auto".parse(), Ok(IngestKind::Auto));
        assert!("epoll".parse::<IngestKind>().is_err());
        assert_eq!(IngestKind::default(), IngestKind::Auto);
    }

    #[test]
    fn buf_ring_rejects_bad_sizes() {
        assert!(BufRing::new(3, 64).is_err());
        let r = BufRing::new(8, 64).unwrap();
        assert_eq!(r.tail, 8);
        assert_eq!(r.buf(7, 1000).len(), 64);
    }

    /// Issue 13 #11: `push` writes addr/len/bid through raw field pointers
    /// and `publish` stores the tail into entry 0's `resv` (the layout the
    /// kernel reads).
    #[test]
    fn buf_ring_entries_and_tail_layout() {
        let r = BufRing::new(8, 64).unwrap();
        for i in 0..8usize {
            // SAFETY: i < 8 entries of the ring; nothing else accesses it here.
            let (addr, len, bid) = unsafe {
                let e = r.entries.as_ptr().add(i).cast::<RawBufEntry>();
                ((*e).addr, (*e).len, (*e).bid)
            };
            assert_eq!(
                (addr, len, bid),
                (r.data.as_ptr() as u64 + i as u64 * 64, 64, i as u16)
            );
        }
        // SAFETY: entry 0 exists; its `resv` is the published tail.
        let tail = unsafe { (*r.entries.as_ptr().cast::<RawBufEntry>()).resv };
        assert_eq!(tail, 8);
    }

    /// (major, minor) of the running kernel.

    #[test]
    fn probe_passes_where_the_kernel_supports_it() {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .map(|s| s.trim() != "0")
            .unwrap_or(false);
        if kernel_version() < (6, 0) || disabled {
            // Skip cleanly (and visibly) where the kernel lacks multishot recvmsg.
            eprintln!(
                "skipping: kernel {:?}, io_uring_disabled={disabled}: {:?}",
                kernel_version(),
                probe().err()
            );
            return;
        }
        probe().unwrap();
        let opened = open_source(IngestKind::Auto, vec![loopback_socket().unwrap().0]).unwrap();
        assert_eq!(opened.source.backend(), "uring");
        assert!(opened.fallback_reason.is_none());
        let opened = open_source(IngestKind::Recvmmsg, vec![loopback_socket().unwrap().0]).unwrap();
        assert_eq!(opened.source.backend(), "recvmmsg");
    }
}
