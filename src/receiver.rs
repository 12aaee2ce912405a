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

use crate::clock::{ClockState, MediaClock, MonotonicMediaClock};
use crate::jitter::{Inserted, PlayoutBuffer, PlayoutConfig, PlayoutStats};
use crate::net::IngestKind;
#[cfg(target_os = "linux")]
use crate::net::socket::{SocketError, open_stream_socket};
#[cfg(target_os = "linux")]
use crate::net::uring::open_source;
use crate::net::{PacketSource, RxTimestamp};
use crate::rtp::RtpPacket;
use crate::stream::StreamConfig;
use crate::units::{MonoNs, Nanos, realtime_now_ns};

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
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            link_offset: Nanos::from_ms(5),
            clock: None,
            ring_frames: None,
            ingest: IngestKind::Auto,
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
    p: [AtomicU64; 11],
    truncated: AtomicU64,
    overflow: AtomicU64,
    ssrc: AtomicU32,
    buffer: AtomicU64,
    ring: AtomicU64,
    pframes: AtomicU32,
    clock: AtomicU8,
    k2u: AtomicU64,
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
            },
            truncated: self.truncated.load(Ordering::Relaxed),
            ring_overflow_frames: self.overflow.load(Ordering::Relaxed),
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
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The requested ingest backend could not be set up (e.g. `--ingest uring`
    /// on a kernel without io_uring).
    #[error("ingest backend: {0}")]
    Ingest(std::io::Error),
}

/// A running receiver. Dropping it stops the ingest thread.
pub struct Receiver {
    cfg: StreamConfig,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    backend: &'static str,
    fallback_reason: Option<String>,
}

/// Stands in when the ingest backend failed to open; the receiver is
/// dropped right away.
#[cfg(target_os = "linux")]
struct NoSource;

#[cfg(target_os = "linux")]
impl PacketSource for NoSource {
    fn poll(
        &mut self,
        timeout_ms: i32,
        _: &mut dyn FnMut(&[u8], &crate::net::RxMeta),
    ) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(timeout_ms.max(0) as u64));
        Ok(0)
    }
    fn backend(&self) -> &'static str {
        "none"
    }
}

impl Receiver {
    /// Opens the stream's socket and starts receiving. Returns the receiver
    /// and the consumer end of its ring (interleaved i32 samples in the
    /// stream's 16- or 24-bit range).
    ///
    /// Errors: [`ReceiverError::Socket`] (bad interface, bind or join failure).
    #[cfg(target_os = "linux")]
    pub fn start(
        cfg: StreamConfig,
        opts: ReceiverOptions,
    ) -> Result<(Receiver, rtrb::Consumer<i32>), ReceiverError> {
        let sock = open_stream_socket(&cfg)?;
        let kind = opts.ingest;
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, cons) =
            Receiver::start_with_source(cfg, opts, "pending", move || {
                match open_source(kind, vec![sock]) {
                    Ok(o) => {
                        let _ = tx.send(Ok((o.source.backend(), o.fallback_reason)));
                        o.source
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        Box::new(NoSource)
                    }
                }
            });
        match rx.recv() {
            Ok(Ok((backend, why))) => {
                let mut r = r;
                r.backend = backend;
                r.fallback_reason = why;
                Ok((r, cons))
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
        let ch = cfg.channels as usize;
        let rate = cfg.sample_rate;
        let link_frames = (opts.link_offset.0 as i128 * rate as i128 / 1_000_000_000) as u32;
        let window_ms = opts.link_offset.0 / 1_000_000 + cfg.jitter_ms as i64 + 250;
        let mut jb = PlayoutBuffer::new(PlayoutConfig {
            channels: ch,
            encoding: cfg.encoding,
            payload_type: cfg.payload_type,
            link_offset_frames: link_frames,
            capacity_frames: (rate as i64 * window_ms / 1000) as usize,
        });
        let ring_frames = opts.ring_frames.unwrap_or(rate as usize);
        let (mut prod, cons) = rtrb::RingBuffer::new(ring_frames * ch);
        let mut clock = opts
            .clock
            .unwrap_or_else(|| Box::new(MonotonicMediaClock::new(rate)));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (st, sh) = (stop.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("aes67-ingest".into())
            .spawn(move || {
                let mut source = make_source();
                let mut truncated = 0u64;
                let overflow = std::cell::Cell::new(0u64);
                let ring_fill = std::cell::Cell::new(0u64);
                let ring_cap = ring_frames * ch;
                let (mut k2u_sum, mut k2u_n) = (0i64, 0i64);
                let mut last_pub = Instant::now();
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
                    overflow.set(overflow.get() + ((s.len() - n) / ch) as u64);
                    ring_fill.set(((ring_cap - prod.slots()) / ch) as u64);
                };
                loop {
                    let stopping = st.load(Ordering::SeqCst);
                    let r = source.poll(1, &mut |bytes, meta| {
                        if meta.truncated {
                            truncated += 1;
                            jb.count_malformed();
                            return;
                        }
                        if let Some(RxTimestamp::Software(k)) = meta.kernel_ts {
                            k2u_sum += realtime_now_ns() - k;
                            k2u_n += 1;
                        }
                        let Ok(p) = RtpPacket::parse(bytes) else {
                            jb.count_malformed();
                            return;
                        };
                        match jb.insert_packet(&p) {
                            Inserted::Resync { .. } => {
                                clock.reset();
                                clock.observe(p.timestamp, meta.user_rx);
                            }
                            Inserted::Stored { .. } => clock.observe(p.timestamp, meta.user_rx),
                            Inserted::Dropped(_) => {}
                        }
                    });
                    if r.is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if let Some(now) = clock.rtp_now(MonoNs::now()) {
                        jb.release(now, &mut push);
                    }
                    if stopping {
                        jb.flush(&mut push);
                    }
                    if stopping || last_pub.elapsed() >= Duration::from_millis(50) {
                        last_pub = Instant::now();
                        sh.store(&jb.stats());
                        sh.truncated.store(truncated, Ordering::Relaxed);
                        sh.overflow.store(overflow.get(), Ordering::Relaxed);
                        sh.ssrc.store(jb.ssrc().unwrap_or(0), Ordering::Relaxed);
                        sh.buffer.store(jb.fill_frames(), Ordering::Relaxed);
                        sh.ring.store(ring_fill.get(), Ordering::Relaxed);
                        sh.pframes.store(jb.packet_frames(), Ordering::Relaxed);
                        sh.clock.store(clock.state() as u8, Ordering::Relaxed);
                        if k2u_n > 0 {
                            sh.k2u.store((k2u_sum / k2u_n) as u64, Ordering::Relaxed);
                            (k2u_sum, k2u_n) = (0, 0);
                        }
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .expect("spawn ingest thread");
        let _ = &shared;
        (
            Receiver {
                cfg,
                stop,
                shared,
                thread: Some(thread),
                backend,
                fallback_reason: None,
            },
            cons,
        )
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

    /// Stops ingest, releases everything buffered into the ring (gaps
    /// concealed), and returns the final counters.
    pub fn stop(mut self) -> ReceiverStats {
        self.shutdown();
        self.shared.load()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}
