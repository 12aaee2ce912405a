//! The receive pipeline: ingest thread → playout buffer → rtrb ring.
//!
//! One ingest thread polls a [`PacketSource`], places each datagram in the
//! [`PlayoutBuffer`] by its RTP timestamp, asks the [`MediaClock`] what RTP
//! time it is, and pushes every due frame into a lock-free `rtrb` ring that
//! an output thread (ALSA, WAV, BASS, ...) drains. Counters are atomics that
//! any thread can snapshot with [`Receiver::stats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::media::clock::{ClockState, MediaClock, MonotonicMediaClock};
use crate::media::jitter::{CapacityError, Inserted, PlayoutBuffer, PlayoutConfig, PlayoutStats};
use crate::media::rtp::RtpPacket;
use crate::media::source::{SourceLock, SourceLockConfig, Verdict};
use crate::media::stream::StreamConfig;
use crate::sys::IngestKind;
use crate::sys::clock::realtime_now_ns;
use crate::sys::socket::{SocketError, open_stream_socket};
use crate::sys::{PacketSource, RxTimestamp, open_source};
use crate::units::{MonoNs, Nanos};
use std::net::IpAddr;

/// Settle time of a free-running stream that plays to a real-time output (ns):
/// see [`ReceiverOptions::settle`].
pub const RT_SETTLE: Nanos = Nanos::from_ms(500);

/// Options of a receiver beyond the stream description.
pub struct ReceiverOptions {
    /// Link offset: each frame plays this long after its media-clock time
    /// (AES67-2018 §6.6). Default 5 ms.
    pub link_offset: Nanos,
    /// The media clock; default [`MonotonicMediaClock`].
    pub clock: Option<Box<dyn MediaClock>>,
    /// Ring capacity, frames. Default 1 s of audio.
    pub ring_frames: Option<usize>,
    /// Ingest backend: io_uring, recvmmsg, or automatic (io_uring when the
    /// kernel supports it). Default automatic.
    pub ingest: IngestKind,
    /// `SCHED_FIFO` priority (1-99) for the ingest thread, Linux only; for a
    /// group, the highest of its streams'. Use it below the playout
    /// thread's when frames go to a real-time output, so a busy machine
    /// cannot hold ingest off past the ring's margin. Default `None`
    /// (normal scheduling). See [`Receiver::ingest_rt`].
    pub rt_priority: Option<u8>,
    /// Settle time of the default free-running media clock (ns): it learns the
    /// stream's timing this long after the first packet before any frame is
    /// released ([`MonotonicMediaClock::with_settle`]); the playout buffer grows
    /// by as much. Used with real-time outputs, whose rate loop would otherwise
    /// answer a start-up burst with a drop (an audible click) a few seconds in.
    /// Default 0 (release at once); ignored with [`ReceiverOptions::clock`].
    pub settle: Nanos,
    /// Longest the ingest thread sleeps between wake-ups (ns, at least
    /// 1 ms): bounds how long a stop takes to be noticed, so that the
    /// thread ends within about this long after [`Receiver::take_ingest_thread`]
    /// or a drop. For a group, the smallest of its streams'. Default `None`:
    /// the wake-up follows the link offset alone (≤ 20 ms, see
    /// [`ingest_timeout_ms`] and [`ingest_window_us`]).
    pub max_wake: Option<Nanos>,
    /// Called on the ingest thread at every wake-up while the stream runs
    /// (at least once per [`ReceiverOptions::max_wake`] or per timeout):
    /// control-plane work that must stay off the ring consumer's real-time
    /// thread (e.g. a BASS add-on applying a rate its audio callback only
    /// published). It must return quickly and must not stop the receiver.
    /// Default `None`.
    pub on_wake: Option<Box<dyn FnMut() + Send>>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            link_offset: Nanos::from_ms(5),
            clock: None,
            ring_frames: None,
            ingest: IngestKind::Auto,
            rt_priority: None,
            settle: Nanos::ZERO,
            max_wake: None,
            on_wake: None,
        }
    }
}

/// A snapshot of a receiver's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ReceiverStats {
    /// Playout buffer counters (packets, lost, late, reordered, ...).
    #[serde(flatten)]
    pub playout: PlayoutStats,
    /// Datagrams truncated by the receive buffer (counted as malformed too).
    pub truncated: u64,
    /// Frames dropped because the output ring was full.
    pub ring_overflow_frames: u64,
    /// Packets from a source other than the one being played (address or
    /// SSRC; see [`crate::media::source`]), dropped.
    pub foreign_source: u64,
    /// Current SSRC (0 before the first packet).
    pub ssrc: u32,
    /// Frames waiting in the playout buffer.
    pub buffer_frames: u64,
    /// Frames waiting in the output ring.
    pub ring_frames: u64,
    /// Frames per packet of the last packet (the packet time in frames).
    pub packet_frames: u32,
    /// Media clock state.
    pub clock: ClockState,
    /// Mean network-to-user-space latency of the last second, ns: user
    /// receive time minus the kernel software receive timestamp.
    pub kernel_to_user_ns: i64,
}

#[derive(Default)]
struct Shared {
    p: [AtomicU64; 13],
    truncated: AtomicU64,
    overflow: AtomicU64,
    foreign: AtomicU64,
    ssrc: AtomicU32,
    buffer: AtomicU64,
    ring: AtomicU64,
    pframes: AtomicU32,
    clock: AtomicU8,
    k2u: AtomicU64,
    /// The ingest thread has flushed and left this stream.
    finished: AtomicBool,
}

impl Shared {
    fn store(&self, s: &PlayoutStats) {
        let v = [
            s.packets,
            s.lost,
            s.concealed_frames,
            s.late,
            s.reordered,
            s.duplicates,
            s.malformed,
            s.wrong_pt,
            s.ssrc_changes,
            s.ts_jumps,
            s.frames_out,
            s.format_mismatch,
            s.jump_unconfirmed,
        ];
        for (a, x) in self.p.iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }
    fn load(&self) -> ReceiverStats {
        let p: Vec<u64> = self.p.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        ReceiverStats {
            playout: PlayoutStats {
                packets: p[0],
                lost: p[1],
                concealed_frames: p[2],
                late: p[3],
                reordered: p[4],
                duplicates: p[5],
                malformed: p[6],
                wrong_pt: p[7],
                ssrc_changes: p[8],
                ts_jumps: p[9],
                frames_out: p[10],
                format_mismatch: p[11],
                jump_unconfirmed: p[12],
            },
            truncated: self.truncated.load(Ordering::Relaxed),
            ring_overflow_frames: self.overflow.load(Ordering::Relaxed),
            foreign_source: self.foreign.load(Ordering::Relaxed),
            ssrc: self.ssrc.load(Ordering::Relaxed),
            buffer_frames: self.buffer.load(Ordering::Relaxed),
            ring_frames: self.ring.load(Ordering::Relaxed),
            packet_frames: self.pframes.load(Ordering::Relaxed),
            clock: match self.clock.load(Ordering::Relaxed) {
                1 => ClockState::FreeRun,
                2 => ClockState::PtpLocked,
                3 => ClockState::Holdover,
                _ => ClockState::Unsynced,
            },
            kernel_to_user_ns: self.k2u.load(Ordering::Relaxed) as i64,
        }
    }
}

/// Errors starting a receiver.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The socket could not be opened or joined.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The requested ingest backend could not be set up (e.g. `--ingest uring`
    /// on a kernel without io_uring).
    #[error("ingest backend: {0}")]
    Ingest(std::io::Error),
    /// The stream's playout buffer could not be allocated (its window is
    /// the link offset + `jitter_ms` + 250 ms at the stream's rate and
    /// channel count).
    #[error(transparent)]
    Alloc(#[from] CapacityError),
}

/// A running receiver of one stream. Receivers started together with
/// [`Receiver::start_group`] share one ingest thread; the thread ends when
/// every receiver of its group has been stopped or dropped.
pub struct Receiver {
    cfg: StreamConfig,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    group: Arc<Group>,
    backend: &'static str,
    fallback_reason: Option<String>,
}

/// The ingest thread of a group; joined when the last receiver goes
/// (unless [`Receiver::take_ingest_thread`] took it).
struct Group {
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// 0: no real-time priority asked, 1: `SCHED_FIFO` granted, 2: denied,
    /// 3: not yet known.
    rt: Arc<AtomicU8>,
}

impl Drop for Group {
    fn drop(&mut self) {
        let t = match self.thread.get_mut() {
            Ok(t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// Stands in when the ingest backend failed to open; the receiver is
/// dropped right away.
struct NoSource;

impl PacketSource for NoSource {
    fn poll(
        &mut self,
        timeout_ms: i32,
        _: &mut dyn FnMut(&[u8], &crate::sys::RxMeta),
    ) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(timeout_ms.max(0) as u64));
        Ok(0)
    }
    fn backend(&self) -> &'static str {
        "none"
    }
}

/// How long the ingest thread may sleep when no datagram arrives, ms:
/// half the smallest link offset of its streams, clamped to 1-20 ms. Frames
/// are released into the ring at every wake-up, so this bounds how late a
/// frame can reach the ring when a stream stalls; with traffic the thread
/// wakes once every active stream has a datagram queued (about once per
/// packet time), see [`PacketSource::set_wait_hint`].
pub fn ingest_timeout_ms(link_offsets: impl IntoIterator<Item = Nanos>) -> i32 {
    let min = link_offsets
        .into_iter()
        .map(|l| l.as_ns())
        .min()
        .unwrap_or(0);
    (min / 2_000_000).clamp(1, 20) as i32
}

fn set_rt(prio: u8) -> bool {
    crate::sys::rt::set_fifo(prio)
}

/// A stream counts as active for the wake-up hint while it delivered a
/// datagram within this long.
const ACTIVE_NS: i64 = 20_000_000;

/// The ingest thread's batching budget, µs: a quarter of the smallest link
/// offset of its streams, clamped to 250 µs-20 ms. When it covers at least
/// two packet times of the shortest-packet active stream (e.g. 125 µs
/// packets at a 5 ms link offset, or 1 ms packets at ≥ 8 ms), the thread
/// sleeps for this window with datagrams queued instead of waking once per
/// packet time; so ingest adds at most this much to a frame's path to the
/// ring, inside the link offset (AES67-2018 §6.6).
pub fn ingest_window_us(link_offsets: impl IntoIterator<Item = Nanos>) -> u32 {
    let min = link_offsets
        .into_iter()
        .map(|l| l.as_ns())
        .min()
        .unwrap_or(0);
    (min / 4_000).clamp(250, 20_000) as u32
}

/// Per-stream state owned by the ingest thread.
struct Slot {
    jb: PlayoutBuffer,
    /// Which sender is played (first address + SSRC, or the SDP's source).
    lock: SourceLock,
    clock: Box<dyn MediaClock>,
    prod: rtrb::Producer<i32>,
    ch: usize,
    rate: u32,
    ring_cap: usize,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    truncated: u64,
    overflow: u64,
    ring_fill: u64,
    k2u_sum: i64,
    k2u_n: i64,
    last_rx: MonoNs,
    done: bool,
    on_wake: Option<Box<dyn FnMut() + Send>>,
}

impl Slot {
    fn on_packet(&mut self, bytes: &[u8], meta: &crate::sys::RxMeta) {
        self.last_rx = meta.user_rx;
        if meta.truncated {
            self.truncated += 1;
            self.jb.count_malformed();
            return;
        }
        if let Some(RxTimestamp::Software(k)) = meta.kernel_ts {
            self.k2u_sum += realtime_now_ns() - k;
            self.k2u_n += 1;
        }
        let Ok(p) = RtpPacket::parse(bytes) else {
            self.jb.count_malformed();
            return;
        };
        let src = meta.src.map(|a| a.ip());
        if self
            .lock
            .check(src, p.ssrc, p.sequence_number, meta.user_rx)
            == Verdict::Foreign
        {
            return;
        }
        match self.jb.insert_packet(&p) {
            Inserted::Resync { .. } => {
                self.clock.reset();
                self.clock.observe(p.timestamp, meta.user_rx);
            }
            Inserted::Stored { .. } => self.clock.observe(p.timestamp, meta.user_rx),
            Inserted::Dropped(_) => {}
        }
    }

    /// Releases every due frame into the ring (all of them when `flush`).
    fn release(&mut self, now: MonoNs, flush: bool) {
        let Slot {
            jb,
            clock,
            prod,
            ch,
            ring_cap,
            overflow,
            ring_fill,
            ..
        } = self;
        let ch = *ch;
        let mut push = |s: &[i32]| {
            let n = prod.slots().min(s.len()) / ch * ch;
            if n > 0 {
                let mut chunk = prod.write_chunk(n).expect("n <= slots");
                let (a, b) = chunk.as_mut_slices();
                let k = a.len();
                a.copy_from_slice(&s[..k]);
                b.copy_from_slice(&s[k..n]);
                chunk.commit_all();
            }
            *overflow += ((s.len() - n) / ch) as u64;
            *ring_fill = ((*ring_cap - prod.slots()) / ch) as u64;
        };
        if let Some(rtp_now) = clock.rtp_now(now) {
            jb.release(rtp_now, &mut push);
        }
        if flush {
            jb.flush(&mut push);
        }
    }

    fn publish(&mut self) {
        let sh = &self.shared;
        sh.store(&self.jb.stats());
        sh.truncated.store(self.truncated, Ordering::Relaxed);
        sh.overflow.store(self.overflow, Ordering::Relaxed);
        sh.foreign.store(self.lock.foreign(), Ordering::Relaxed);
        sh.ssrc
            .store(self.jb.ssrc().unwrap_or(0), Ordering::Relaxed);
        sh.buffer.store(self.jb.fill_frames(), Ordering::Relaxed);
        sh.ring.store(self.ring_fill, Ordering::Relaxed);
        sh.pframes.store(self.jb.packet_frames(), Ordering::Relaxed);
        sh.clock.store(self.clock.state() as u8, Ordering::Relaxed);
        if self.k2u_n > 0 {
            sh.k2u
                .store((self.k2u_sum / self.k2u_n) as u64, Ordering::Relaxed);
            (self.k2u_sum, self.k2u_n) = (0, 0);
        }
    }
}

/// The ingest thread: one source, every stream of the group.
fn ingest_loop(
    mut source: Box<dyn PacketSource>,
    mut slots: Vec<Slot>,
    timeout_ms: i32,
    window_us: u32,
) {
    let mut last_pub = Instant::now();
    loop {
        let now = MonoNs::now();
        // Wake once every active stream has a datagram queued (or after the
        // timeout): one wake-up per packet time, whatever the stream count.
        // When the batching budget covers two or more of the shortest packet
        // times, it sleeps for a time window instead (one timer wake-up
        // serving several packet times of every stream).
        let (mut active, mut min_ptime_ns) = (0, i64::MAX);
        for s in slots
            .iter()
            .filter(|s| !s.done && now.since(s.last_rx).as_ns() < ACTIVE_NS)
        {
            let pf = s.jb.packet_frames() as i64;
            let ptime_ns = pf * 1_000_000_000 / s.rate.max(1) as i64;
            // Streams with packets longer than the timeout (e.g. 5 ms
            // Livewire beside 1 ms streams) would hold the others back.
            if ptime_ns < timeout_ms as i64 * 1_000_000 {
                active += 1;
            }
            if pf > 0 {
                min_ptime_ns = min_ptime_ns.min(ptime_ns);
            }
        }
        let window = if window_us as i64 * 1000 >= 2 * min_ptime_ns {
            window_us
        } else {
            0
        };
        source.set_wait_hint(active.max(1), window);
        let r = source.poll(timeout_ms, &mut |bytes, meta| {
            if let Some(s) = slots.get_mut(meta.stream)
                && !s.done
            {
                s.on_packet(bytes, meta);
            }
        });
        if r.is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let now = MonoNs::now();
        let publish = last_pub.elapsed() >= Duration::from_millis(50);
        if publish {
            last_pub = Instant::now();
        }
        let mut live = 0;
        for s in slots.iter_mut().filter(|s| !s.done) {
            let stopping = s.stop.load(Ordering::SeqCst);
            s.release(now, stopping);
            if publish || stopping {
                s.publish();
            }
            if stopping {
                s.done = true;
                s.shared.finished.store(true, Ordering::SeqCst);
            } else {
                if let Some(f) = s.on_wake.as_mut() {
                    f();
                }
                live += 1;
            }
        }
        if live == 0 {
            return;
        }
    }
}

impl Receiver {
    /// Opens the stream's socket and starts receiving on its own ingest
    /// thread. Returns the receiver and the consumer end of its ring
    /// (interleaved i32 samples in the stream's 16- or 24-bit range).
    ///
    /// Errors: [`ReceiverError::Socket`] (bad interface, bind or join
    /// failure), [`ReceiverError::Ingest`] (the requested backend failed).
    pub fn start(
        cfg: StreamConfig,
        opts: ReceiverOptions,
    ) -> Result<(Receiver, rtrb::Consumer<i32>), ReceiverError> {
        let mut v = Receiver::start_group(vec![(cfg, opts)])?;
        Ok(v.pop().expect("one stream in, one receiver out"))
    }

    /// Opens one socket per stream and receives all of them on **one**
    /// ingest thread and one ingest source (one io_uring with a multishot
    /// recvmsg per socket, or one recvmmsg loop): the many-streams-per-core
    /// path. Each stream keeps its own playout buffer, media clock, ring and
    /// counters; nothing is shared or locked on the hot path. The ingest
    /// backend is the first stream's `opts.ingest`.
    ///
    /// Returns one `(Receiver, ring consumer)` per stream, in order.
    ///
    /// Errors: as [`Receiver::start`]; on error no stream is started.
    /// On OSes other than Linux, one stream per group (the portable source
    /// reads one socket).
    pub fn start_group(
        streams: Vec<(StreamConfig, ReceiverOptions)>,
    ) -> Result<Vec<(Receiver, rtrb::Consumer<i32>)>, ReceiverError> {
        let kind = streams.first().map(|s| s.1.ingest).unwrap_or_default();
        let socks = streams
            .iter()
            .map(|(c, _)| open_stream_socket(c))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut v = Receiver::try_start_group_with_source(streams, "pending", move || {
            match open_source(kind, socks) {
                Ok(o) => {
                    let _ = tx.send(Ok((o.source.backend(), o.fallback_reason)));
                    o.source
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    Box::new(NoSource)
                }
            }
        })?;
        match rx.recv() {
            Ok(Ok((backend, why))) => {
                for (r, _) in v.iter_mut() {
                    r.backend = backend;
                    r.fallback_reason = why.clone();
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(ReceiverError::Ingest(e)),
            Err(_) => Err(ReceiverError::Ingest(std::io::Error::other(
                "ingest thread died",
            ))),
        }
    }

    /// Starts on a packet source built by `make_source` on the ingest
    /// thread (stream index 0 is used). `backend` names it for status.
    pub fn start_with_source(
        cfg: StreamConfig,
        opts: ReceiverOptions,
        backend: &'static str,
        make_source: impl FnOnce() -> Box<dyn PacketSource> + Send + 'static,
    ) -> (Receiver, rtrb::Consumer<i32>) {
        let mut v = Receiver::start_group_with_source(vec![(cfg, opts)], backend, make_source);
        v.pop().expect("one stream in, one receiver out")
    }

    /// As [`Receiver::start_group`] on a packet source built by
    /// `make_source` on the ingest thread; datagrams with `RxMeta::stream`
    /// = i go to the i-th stream (others are ignored).
    ///
    /// Panics when a playout buffer cannot be allocated; see
    /// [`Receiver::try_start_group_with_source`].
    pub fn start_group_with_source(
        streams: Vec<(StreamConfig, ReceiverOptions)>,
        backend: &'static str,
        make_source: impl FnOnce() -> Box<dyn PacketSource> + Send + 'static,
    ) -> Vec<(Receiver, rtrb::Consumer<i32>)> {
        Receiver::try_start_group_with_source(streams, backend, make_source)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Receiver::start_group_with_source`], with the playout buffers
    /// allocated fallibly ([`PlayoutBuffer::try_new`]): nothing is started
    /// when one cannot be allocated.
    ///
    /// Errors: [`ReceiverError::Alloc`].
    pub fn try_start_group_with_source(
        streams: Vec<(StreamConfig, ReceiverOptions)>,
        backend: &'static str,
        make_source: impl FnOnce() -> Box<dyn PacketSource> + Send + 'static,
    ) -> Result<Vec<(Receiver, rtrb::Consumer<i32>)>, ReceiverError> {
        let max_wake = streams.iter().filter_map(|s| s.1.max_wake).min();
        let mut timeout_ms = ingest_timeout_ms(streams.iter().map(|s| s.1.link_offset));
        let mut window_us = ingest_window_us(streams.iter().map(|s| s.1.link_offset));
        if let Some(w) = max_wake {
            let w_us = (w.as_ns() / 1000).clamp(1000, i64::from(i32::MAX)) as u32;
            timeout_ms = timeout_ms.min((w_us / 1000) as i32);
            window_us = window_us.min(w_us);
        }
        let rt_priority = streams.iter().filter_map(|s| s.1.rt_priority).max();
        let rt = Arc::new(AtomicU8::new(if rt_priority.is_some() { 3 } else { 0 }));
        let rt_thread = rt.clone();
        let mut slots = Vec::with_capacity(streams.len());
        let mut handles = Vec::with_capacity(streams.len());
        for (cfg, mut opts) in streams {
            let ch = cfg.channels as usize;
            let rate = cfg.sample_rate;
            let link_frames =
                (opts.link_offset.as_ns() as i128 * rate as i128 / 1_000_000_000) as u32;
            let settle = if opts.clock.is_none() {
                opts.settle.max(Nanos::ZERO)
            } else {
                Nanos::ZERO
            };
            let window_ms = (opts.link_offset.as_ns() + settle.as_ns()) / 1_000_000
                + cfg.jitter_ms as i64
                + 250;
            let mut jb = PlayoutBuffer::try_new(PlayoutConfig {
                channels: ch,
                encoding: cfg.encoding,
                payload_type: cfg.payload_type,
                link_offset_frames: link_frames,
                capacity_frames: (rate as i64 * window_ms.max(0) / 1000) as usize,
            })?;
            // The SDP's packet time, when a whole number of frames, backs the
            // format check of packets with no consecutive predecessor.
            jb.set_packet_frames(cfg.packet_time_us.and_then(|us| {
                let f = us as u64 * rate as u64;
                f.is_multiple_of(1_000_000)
                    .then_some((f / 1_000_000) as u32)
            }));
            let ring_frames = opts.ring_frames.unwrap_or(rate as usize);
            let (prod, cons) = rtrb::RingBuffer::new(ring_frames * ch);
            let clock = opts
                .clock
                .unwrap_or_else(|| Box::new(MonotonicMediaClock::with_settle(rate, settle)));
            let stop = Arc::new(AtomicBool::new(false));
            let shared = Arc::new(Shared::default());
            let lock = SourceLock::new(SourceLockConfig::new(
                cfg.source.map(IpAddr::V4),
                opts.link_offset,
            ));
            slots.push(Slot {
                jb,
                lock,
                clock,
                prod,
                ch,
                rate,
                ring_cap: ring_frames * ch,
                stop: stop.clone(),
                shared: shared.clone(),
                truncated: 0,
                overflow: 0,
                ring_fill: 0,
                k2u_sum: 0,
                k2u_n: 0,
                last_rx: MonoNs::from_ns(0),
                done: false,
                on_wake: opts.on_wake.take(),
            });
            handles.push((cfg, stop, shared, cons));
        }
        let thread = std::thread::Builder::new()
            .name("aes67-ingest".into())
            .spawn(move || {
                if let Some(p) = rt_priority {
                    rt_thread.store(if set_rt(p) { 1 } else { 2 }, Ordering::SeqCst);
                }
                ingest_loop(make_source(), slots, timeout_ms, window_us)
            })
            .map_err(ReceiverError::Ingest)?;
        let group = Arc::new(Group {
            thread: std::sync::Mutex::new(Some(thread)),
            rt,
        });
        Ok(handles
            .into_iter()
            .map(|(cfg, stop, shared, cons)| {
                (
                    Receiver {
                        cfg,
                        stop,
                        shared,
                        group: group.clone(),
                        backend,
                        fallback_reason: None,
                    },
                    cons,
                )
            })
            .collect())
    }

    /// Whether the ingest thread runs `SCHED_FIFO`: `None` when
    /// [`ReceiverOptions::rt_priority`] was not set (or the thread has not
    /// started yet), `Some(false)` when it was denied (the thread then runs
    /// at normal priority).
    pub fn ingest_rt(&self) -> Option<bool> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match self.group.rt.load(Ordering::SeqCst) {
                1 => return Some(true),
                2 => return Some(false),
                3 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                _ => return None,
            }
        }
    }

    /// Asks the ingest thread to stop this stream, without waiting (it
    /// notices within its wake-up, ≤ 20 ms). Dropping the receiver does the
    /// same; the group's thread is joined when its last receiver is dropped.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the ingest thread to stop this stream, without waiting, and,
    /// when this is the only receiver of its group, hands its ingest thread
    /// over to the caller: dropping the receiver then no longer joins it.
    /// The thread ends by itself within one wake-up (see
    /// [`ReceiverOptions::max_wake`]) plus its source's teardown (an io_uring
    /// cancel, normally microseconds, at most 2 s); everything it uses is
    /// its own or shared through `Arc`, so it may outlive the receiver.
    /// `None` when other receivers of the group still run (the last one's
    /// drop joins the thread) or when the thread was already taken.
    pub fn take_ingest_thread(&self) -> Option<JoinHandle<()>> {
        self.stop.store(true, Ordering::SeqCst);
        if Arc::strong_count(&self.group) != 1 {
            return None;
        }
        match self.group.thread.lock() {
            Ok(mut t) => t.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    /// The stream being received.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// The ingest backend in use, e.g. `"uring"` or `"recvmmsg"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// With automatic ingest selection, why io_uring was not used.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// A snapshot of the counters (updated every 50 ms).
    pub fn stats(&self) -> ReceiverStats {
        self.shared.load()
    }

    /// Stops this stream: releases everything buffered into the ring (gaps
    /// concealed) and returns the final counters. Other streams of the
    /// group keep running.
    pub fn stop(self) -> ReceiverStats {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.shared.finished.load(Ordering::SeqCst)
            && !self
                .group
                .thread
                .lock()
                .map(|t| t.as_ref().is_none_or(|t| t.is_finished()))
                .unwrap_or(true)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.load()
    }
}

impl Drop for Receiver {
    /// Stops this stream; the group's thread is joined when its last
    /// receiver is dropped.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
