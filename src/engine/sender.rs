//! AES67 RTP senders.
//!
//! - [`Sender`]: many streams paced by one timer thread, each pulling from an
//!   [`AudioSource`] (tone, file, stdin), on the PTP media clock
//!   (`--ptp`: RTP timestamp = PTP time × rate + `mediaclk:direct` offset,
//!   RFC 7273 §5.2, AES67-2018 §7) or on `CLOCK_MONOTONIC`. Used by
//!   `aes67 send`.
//! - [`ToneSender`]: the minimal one-stream tone sender of `aes67 demo` and
//!   the BASS add-on's tests (sleep-paced on `CLOCK_MONOTONIC`).
//!
//! Packets carry L24 or L16 at the stream's packet time (RFC 3550 §5.1,
//! AES67-2018 §7).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::rtp;
use crate::media::stream::{Encoding, StreamConfig};
use crate::media::tone::{self, Sine};
use crate::sys::socket::open_sender_socket;
use crate::units::{MonoNs, Nanos};

use crate::engine::ptp_clock::PtpClockHandle;
pub use crate::engine::source::AudioSource;
use crate::ptp::LocalNs;
use crate::ptp::PtpTimestamp;

/// Options of the tone sender.
#[derive(Debug, Clone)]
pub struct ToneSender {
    /// Stream to send (dest, port, pt, channels, rate, encoding; packet time
    /// from `packet_time_us`, default 1 ms).
    pub stream: StreamConfig,
    /// Outgoing interface address for multicast.
    pub iface: Ipv4Addr,
    /// Multicast TTL; 0 keeps packets on this host (delivered by loopback).
    pub ttl: u32,
    /// Tone frequency, Hz.
    pub freq_hz: f64,
    /// Amplitude, dBFS.
    pub level_dbfs: f64,
    /// What the RTP timestamps count.
    pub rtp_clock: RtpClock,
}

/// The time base of a sender's RTP timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtpClock {
    /// An arbitrary start (RFC 3550 §5.1 random offset), then sample counting.
    #[default]
    Arbitrary,
    /// `CLOCK_REALTIME × rate + mediaclk offset` (RFC 7273 §5.2 with PTP time =
    /// CLOCK_REALTIME): matches a PTP grandmaster serving this host's
    /// CLOCK_REALTIME with an ARB timescale, such as ptp4l with software
    /// timestamps. Then samples are counted, so the stream runs at the
    /// nominal rate of CLOCK_MONOTONIC.
    Realtime,
}

from_names!(RtpClock, "RTP clock", {
    "arbitrary" => Arbitrary,
    "realtime" => Realtime,
});

/// A running sender thread.
pub struct SenderHandle {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    max_late_ns: Arc<AtomicU64>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SenderHandle {
    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Pacing lateness: the largest delay of a send behind its schedule
    /// (the wake-up after the sleep, CLOCK_MONOTONIC), ns, since the start.
    pub fn max_late(&self) -> Nanos {
        Nanos::from_ns(self.max_late_ns.load(Ordering::Relaxed) as i64)
    }
    /// Stops the thread; returns packets sent or the send error.
    pub fn stop(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| io::Error::other("sender panicked"))??;
        }
        Ok(self.sent())
    }
}

impl ToneSender {
    /// Opens the socket and starts sending. Errors: socket set-up failures.
    pub fn start(self) -> io::Result<SenderHandle> {
        let sock = open_sender_socket(self.stream.dest, self.iface, self.ttl, DSCP_AF41)?;
        let dest: SocketAddr = (self.stream.dest, self.stream.port).into();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let max_late_ns = Arc::new(AtomicU64::new(0));
        let (st, se, ml) = (stop.clone(), sent.clone(), max_late_ns.clone());
        let thread = std::thread::Builder::new()
            .name("aes67-sender".into())
            .spawn(move || {
                let c = &self.stream;
                let ch = c.channels as usize;
                let ptime_us = c.packet_time_us.unwrap_or(1000) as u64;
                let frames = (c.sample_rate as u64 * ptime_us / 1_000_000).max(1) as usize;
                let bits = match c.encoding {
                    Encoding::L24 => 24,
                    Encoding::L16 => 16,
                };
                let mut sine = Sine::with_level(
                    c.sample_rate,
                    self.freq_hz,
                    tone::dbfs_to_linear(self.level_dbfs),
                    bits,
                );
                let ssrc = new_ssrc();
                let mut samples = vec![0i32; frames * ch];
                let mut pkt = vec![0u8; 12 + frames * c.frame_bytes()];
                let t0 = MonoNs::now();
                let ts0 = match self.rtp_clock {
                    RtpClock::Arbitrary => (t0.as_ns() / 1000) as u32,
                    RtpClock::Realtime => {
                        let rt = crate::sys::clock::realtime_now_ns() as i128;
                        ((rt * c.sample_rate as i128 / 1_000_000_000) as u64 as u32)
                            .wrapping_add(c.mediaclk_offset.unwrap_or(0))
                    }
                };
                let mut k: u64 = 0;
                while !st.load(Ordering::Relaxed) {
                    let due = t0.add(Nanos::from_ns((k * ptime_us * 1000) as i64));
                    let now = MonoNs::now();
                    if due > now {
                        std::thread::sleep(Duration::from_nanos(due.since(now).as_ns() as u64));
                    }
                    let late = MonoNs::now().since(due).as_ns();
                    if late > 0 {
                        ml.fetch_max(late as u64, Ordering::Relaxed);
                    }
                    sine.fill(&mut samples, ch);
                    let ts = ts0.wrapping_add((k * frames as u64) as u32);
                    rtp::write_header(&mut pkt, k == 0, c.payload_type, k as u16, ts, ssrc);
                    match c.encoding {
                        Encoding::L24 => rtp::encode_l24(&samples, &mut pkt[12..]),
                        Encoding::L16 => rtp::encode_l16(&samples, &mut pkt[12..]),
                    };
                    sock.send_to(&pkt, &dest.into())?;
                    se.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
                Ok(())
            })?;
        Ok(SenderHandle {
            stop,
            sent,
            max_late_ns,
            thread: Some(thread),
        })
    }
}

/// A new RTP SSRC (RFC 3550 §8.1: chosen at random, so that senders on one
/// host, or started in the same nanosecond, do not collide): from the OS RNG,
/// else from the clock, the process id and a per-process counter.
pub fn new_ssrc() -> u32 {
    use rand::TryRng;
    static N: AtomicU64 = AtomicU64::new(0);
    rand::rngs::SysRng.try_next_u32().unwrap_or_else(|_| {
        let n = N.fetch_add(1, Ordering::Relaxed) as u32;
        (crate::sys::clock::realtime_now_ns() as u32
            ^ std::process::id().rotate_left(16)
            ^ n.rotate_left(24))
        .wrapping_mul(2_654_435_761)
    })
}

/// The loopback demo group: an administratively scoped group (RFC 2365)
/// sent with TTL 0 on 127.0.0.1, so it never leaves this host.
pub fn demo_stream() -> StreamConfig {
    let mut s = StreamConfig::new(IpAddr::V4(Ipv4Addr::new(239, 255, 67, 67)), 5004);
    s.iface = Some("127.0.0.1".into());
    s.packet_time_us = Some(1000);
    s.name = Some("aes67 demo tone".into());
    s
}

/// DSCP of RTP media: AF41 (34), AES67-2018 §D.2 / RFC 2597.
pub const DSCP_AF41: u8 = 34;

/// One stream of a [`Sender`].
pub struct SendStream {
    /// Destination, port, payload type, channels, rate, encoding.
    pub stream: StreamConfig,
    /// Frames per packet ([`crate::media::session::check_format`]).
    pub frames: u32,
    /// Outgoing interface address for multicast.
    pub iface: Ipv4Addr,
    /// Multicast TTL.
    pub ttl: u32,
    /// DSCP of the packets (6 bits; AF41 = 34).
    pub dscp: u8,
    /// `a=mediaclk:direct=` offset added to the media clock (RFC 7273 §5.2).
    pub mediaclk_offset: u32,
    /// RTP SSRC (RFC 3550 §8: random).
    pub ssrc: u32,
    /// Where the audio comes from.
    pub source: Box<dyn AudioSource>,
}

/// The clock a [`Sender`] paces and timestamps on.
#[derive(Clone)]
pub enum SendClock {
    /// `CLOCK_MONOTONIC`; the RTP timestamps count from an origin set by
    /// [`RtpClock`] (arbitrary, or `CLOCK_REALTIME` at start).
    Monotonic(RtpClock),
    /// The engine's PTP slave: media time = PTP time (RFC 7273 §5.2).
    Ptp(PtpClockHandle),
}

/// Settings of a [`Sender`].
#[derive(Clone)]
pub struct SenderOptions {
    /// The media clock.
    pub clock: SendClock,
    /// Each packet leaves at the media time of its first sample plus this
    /// fixed offset (ns; default 0).
    pub send_offset: Nanos,
    /// A packet later than this behind its schedule (ns; e.g. after a PTP
    /// step or a stopped process) is not sent: the stream skips ahead to the
    /// current media time, counted in [`SendStats::skipped_packets`], so a
    /// sender never sends a burst. Default 200 ms (shorter delays, e.g.
    /// a preempted thread, are caught up so no audio is lost).
    pub max_late: Nanos,
    /// `SCHED_FIFO` priority of the pacing thread (best effort: when denied
    /// it runs at normal priority, see [`Sender::rt`]). Default none.
    pub rt_priority: Option<u8>,
}

impl SenderOptions {
    /// `clock`, send offset 0, skip after 200 ms late, normal priority.
    pub fn new(clock: SendClock) -> SenderOptions {
        SenderOptions {
            clock,
            send_offset: Nanos::from_ns(0),
            max_late: Nanos::from_ns(200_000_000),
            rt_priority: None,
        }
    }
}

/// Counters of one stream, updated by the pacing thread (atomics).
#[derive(Debug, Default)]
pub struct SendStats {
    /// Packets handed to the socket.
    pub packets_sent: AtomicU64,
    /// Frames sent (audio and silence).
    pub frames_sent: AtomicU64,
    /// Failed sends (counted, never fatal).
    pub send_errors: AtomicU64,
    /// Frames of silence sent because the source had no audio.
    pub silence_frames: AtomicU64,
    /// Packets short of audio while the source was still live (a stall).
    pub underruns: AtomicU64,
    /// Packets not sent because they were over `max_late` behind.
    pub skipped_packets: AtomicU64,
    /// Largest lateness of a send behind its schedule, ns.
    pub max_late_ns: AtomicU64,
    /// RTP timestamp of the first packet (valid once `packets_sent` > 0).
    pub first_rtp: AtomicU64,
}

/// A copy of [`SendStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendStatsSnapshot {
    /// Packets handed to the socket.
    pub packets_sent: u64,
    /// Frames sent (audio and silence).
    pub frames_sent: u64,
    /// Failed sends.
    pub send_errors: u64,
    /// Frames of silence sent for want of audio.
    pub silence_frames: u64,
    /// Packets short of audio while the source was live.
    pub underruns: u64,
    /// Packets skipped for being too late.
    pub skipped_packets: u64,
    /// Largest send lateness, ns.
    pub max_late_ns: u64,
    /// Whether the source has ended.
    pub source_ended: bool,
}

impl SendStats {
    fn snapshot(&self, ended: bool) -> SendStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SendStatsSnapshot {
            packets_sent: l(&self.packets_sent),
            frames_sent: l(&self.frames_sent),
            send_errors: l(&self.send_errors),
            silence_frames: l(&self.silence_frames),
            underruns: l(&self.underruns),
            skipped_packets: l(&self.skipped_packets),
            max_late_ns: l(&self.max_late_ns),
            source_ended: ended,
        }
    }
}

/// Many streams on one pacing thread. See the module doc.
pub struct Sender {
    stop: Arc<AtomicBool>,
    /// 0: not asked, 1: SCHED_FIFO, 2: denied (set by the thread).
    rt: Arc<std::sync::atomic::AtomicU8>,
    stats: Vec<(Arc<SendStats>, Arc<AtomicBool>)>,
    thread: Option<JoinHandle<()>>,
}

/// Per-stream state of the pacing thread (all buffers allocated up front).
struct Live {
    sock: socket2::Socket,
    dest: socket2::SockAddr,
    pt: u8,
    encoding: Encoding,
    channels: usize,
    frames: u64,
    rate: u32,
    /// RTP offset: `mediaclk_offset` (+ the arbitrary origin).
    ts_offset: u32,
    ssrc: u32,
    seq: u16,
    /// Media-clock position (samples since the clock's epoch) of the next
    /// packet's first sample.
    next_pos: u64,
    samples: Vec<i32>,
    pkt: Vec<u8>,
    source: Box<dyn AudioSource>,
    stats: Arc<SendStats>,
    ended: Arc<AtomicBool>,
    started: bool,
}

/// The pacing thread's view of its clock at one wake-up: converts between
/// media-clock positions and `CLOCK_MONOTONIC`.
#[derive(Clone, Copy)]
enum ClockNow {
    /// Clock ns = monotonic ns + `base`.
    Mono { base: i128 },
    /// PTP through the published map, and a paired (mono, raw) reading.
    Ptp {
        map: crate::ptp::ClockMap,
        mono: MonoNs,
        raw: LocalNs,
    },
}

impl ClockNow {
    fn read(clock: &SendClock, mono_base: i128) -> Option<ClockNow> {
        match clock {
            SendClock::Monotonic(_) => Some(ClockNow::Mono { base: mono_base }),
            SendClock::Ptp(h) => {
                let (map, servo, _) = h.snapshot()?;
                if !servo.usable() {
                    return None;
                }
                let (mono, raw) = crate::sys::clock::mono_raw_pair();
                Some(ClockNow::Ptp { map, mono, raw })
            }
        }
    }
    /// Clock time (ns since its epoch) at a monotonic instant.
    fn clock_ns(&self, t: MonoNs) -> i128 {
        match *self {
            ClockNow::Mono { base } => t.as_ns() as i128 + base,
            ClockNow::Ptp { map, mono, raw } => {
                let local =
                    LocalNs::from_ns(raw.as_ns() + (t.as_ns() as i64 - mono.as_ns() as i64));
                map.to_ptp(local).as_nanos()
            }
        }
    }
    /// Monotonic instant at a clock time.
    fn mono_at(&self, clock_ns: i128) -> MonoNs {
        match *self {
            ClockNow::Mono { base } => MonoNs::from_ns((clock_ns - base).max(0) as u64),
            ClockNow::Ptp { map, mono, raw } => {
                let local = map.to_local(PtpTimestamp::from_nanos(clock_ns));
                let m = mono.as_ns() as i128 + (local.as_ns() as i128 - raw.as_ns() as i128);
                MonoNs::from_ns(m.max(0) as u64)
            }
        }
    }
}

/// Samples since the epoch at clock time `ns` (floor).
fn pos_at(ns: i128, rate: u32) -> u64 {
    (ns.max(0) * rate as i128 / 1_000_000_000) as u64
}
/// Clock time of sample `pos` (ceiling: the sample exists from then on).
fn time_of(pos: u64, rate: u32) -> i128 {
    (pos as i128 * 1_000_000_000 + rate as i128 - 1) / rate as i128
}

impl Live {
    /// Clock time at which the next packet leaves.
    fn due(&self, send_offset: Nanos) -> i128 {
        time_of(self.next_pos, self.rate) + send_offset.as_ns() as i128
    }

    fn send_one(&mut self) {
        let ch = self.channels;
        let n = self.frames as usize * ch;
        let got = self.source.pull(&mut self.samples[..n]);
        let st = &self.stats;
        if got < self.frames as usize {
            self.samples[got * ch..n].fill(0);
            st.silence_frames
                .fetch_add(self.frames - got as u64, Ordering::Relaxed);
            if self.source.ended() {
                self.ended.store(true, Ordering::Relaxed);
            } else {
                st.underruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        let ts = (self.next_pos as u32).wrapping_add(self.ts_offset);
        rtp::write_header(
            &mut self.pkt,
            !self.started,
            self.pt,
            self.seq,
            ts,
            self.ssrc,
        );
        match self.encoding {
            Encoding::L24 => rtp::encode_l24(&self.samples[..n], &mut self.pkt[12..]),
            Encoding::L16 => rtp::encode_l16(&self.samples[..n], &mut self.pkt[12..]),
        };
        if !self.started {
            st.first_rtp.store(ts as u64, Ordering::Relaxed);
            self.started = true;
        }
        match self.sock.send_to(&self.pkt, &self.dest) {
            Ok(_) => {
                st.packets_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                st.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        st.frames_sent.fetch_add(self.frames, Ordering::Relaxed);
        self.seq = self.seq.wrapping_add(1);
        self.next_pos += self.frames;
    }
}

impl Sender {
    /// Opens one socket per stream (with its DSCP) and starts the pacing
    /// thread. With [`SendClock::Ptp`] nothing is sent until the PTP servo
    /// is usable; the first packet starts at the next packet boundary of
    /// the media clock (RTP timestamps are multiples of the packet size
    /// plus the offset).
    ///
    /// Errors: socket set-up failures (naming the step).
    pub fn start(streams: Vec<SendStream>, opts: SenderOptions) -> io::Result<Sender> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut live = Vec::with_capacity(streams.len());
        let mut stats = Vec::with_capacity(streams.len());
        let mono_base: i128 = match &opts.clock {
            SendClock::Monotonic(RtpClock::Realtime) => {
                crate::sys::clock::realtime_now_ns() as i128 - MonoNs::now().as_ns() as i128
            }
            _ => 0,
        };
        for s in streams {
            let c = &s.stream;
            let sock = open_sender_socket(c.dest, s.iface, s.ttl, s.dscp)?;
            let st = Arc::new(SendStats::default());
            let ended = Arc::new(AtomicBool::new(false));
            stats.push((st.clone(), ended.clone()));
            let arbitrary = match &opts.clock {
                SendClock::Monotonic(RtpClock::Arbitrary) => s.ssrc.rotate_left(13),
                _ => 0,
            };
            let ch = c.channels as usize;
            let frames = s.frames.max(1) as u64;
            live.push(Live {
                sock,
                dest: SocketAddr::from((c.dest, c.port)).into(),
                pt: c.payload_type,
                encoding: c.encoding,
                channels: ch,
                frames,
                rate: c.sample_rate,
                ts_offset: s.mediaclk_offset.wrapping_add(arbitrary),
                ssrc: s.ssrc,
                seq: (s.ssrc >> 7) as u16,
                next_pos: 0,
                samples: vec![0; frames as usize * ch],
                pkt: vec![0; 12 + frames as usize * c.frame_bytes()],
                source: s.source,
                stats: st,
                ended,
                started: false,
            });
        }
        let st = stop.clone();
        let rt = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let rt2 = rt.clone();
        let thread = std::thread::Builder::new()
            .name("aes67-sender".into())
            .spawn(move || {
                if let Some(p) = opts.rt_priority {
                    let ok = crate::sys::rt::set_fifo(p);
                    rt2.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
                }
                pace(live, opts, mono_base, &st)
            })?;
        Ok(Sender {
            stop,
            rt,
            stats,
            thread: Some(thread),
        })
    }

    /// Whether the pacing thread runs `SCHED_FIFO`: `None` when not asked
    /// (or not yet known), `Some(false)` when denied.
    pub fn rt(&self) -> Option<bool> {
        match self.rt.load(Ordering::SeqCst) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// Counters of stream `i` (in the order given to [`Self::start`]).
    pub fn stats(&self, i: usize) -> Option<SendStatsSnapshot> {
        self.stats
            .get(i)
            .map(|(s, e)| s.snapshot(e.load(Ordering::Relaxed)))
    }

    /// RTP timestamp of stream `i`'s first packet, once sent.
    pub fn first_rtp(&self, i: usize) -> Option<u32> {
        let (s, _) = self.stats.get(i)?;
        (s.packets_sent.load(Ordering::Relaxed) > 0)
            .then(|| s.first_rtp.load(Ordering::Relaxed) as u32)
    }

    /// Stops the thread and returns every stream's final counters.
    pub fn stop(mut self) -> Vec<SendStatsSnapshot> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (0..self.stats.len())
            .filter_map(|i| self.stats(i))
            .collect()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Longest sleep of the pacing thread (so a stop is seen promptly), ns.
const MAX_SLEEP_NS: i64 = 20_000_000;

/// The pacing loop: sends every due packet of every stream, then sleeps
/// until the earliest next one. Never allocates, never spins: the sleep is
/// `std::thread::sleep`, which is `nanosleep` on Linux and a
/// high-resolution waitable timer on Windows (`CreateWaitableTimerExW` with
/// `CREATE_WAITABLE_TIMER_HIGH_RESOLUTION`, Windows 10 1803+; std ≥ 1.75).
fn pace(mut live: Vec<Live>, opts: SenderOptions, mono_base: i128, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Some(clk) = ClockNow::read(&opts.clock, mono_base) else {
            // PTP not usable yet (or lost without holdover): wait.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let now = MonoNs::now();
        let now_ns = clk.clock_ns(now);
        let mut next_wake = now_ns + MAX_SLEEP_NS as i128;
        for l in live.iter_mut() {
            if !l.started && l.next_pos == 0 {
                // First packet at the next packet boundary of the media clock.
                let p = pos_at(now_ns, l.rate);
                l.next_pos = p.div_ceil(l.frames) * l.frames;
            }
            loop {
                let due = l.due(opts.send_offset);
                if due > now_ns {
                    next_wake = next_wake.min(due);
                    break;
                }
                let late = now_ns - due;
                if late > opts.max_late.as_ns() as i128 {
                    // Too late (clock step, stopped process): skip ahead to
                    // the current media time instead of a burst.
                    let p = pos_at(now_ns, l.rate).div_ceil(l.frames) * l.frames;
                    let skipped = (p - l.next_pos) / l.frames;
                    l.stats
                        .skipped_packets
                        .fetch_add(skipped, Ordering::Relaxed);
                    l.source.skip((p - l.next_pos) as usize);
                    l.next_pos = p;
                    continue;
                }
                l.stats
                    .max_late_ns
                    .fetch_max(late as u64, Ordering::Relaxed);
                l.send_one();
            }
        }
        let wake = clk.mono_at(next_wake);
        let now = MonoNs::now();
        if wake > now {
            std::thread::sleep(Duration::from_nanos(
                (wake.since(now).as_ns().min(MAX_SLEEP_NS)) as u64,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_times_round_trip() {
        for rate in [44_100u32, 48_000, 96_000] {
            for pos in [0u64, 1, 47, 48, 1_000_003, 86_400 * 96_000 * 365 * 56] {
                let t = time_of(pos, rate);
                assert_eq!(pos_at(t, rate), pos, "rate {rate} pos {pos}");
                if pos > 0 {
                    assert_eq!(pos_at(t - 1, rate), pos - 1, "rate {rate} pos {pos}");
                }
            }
        }
        // 1 s of PTP time is exactly `rate` samples.
        assert_eq!(pos_at(1_000_000_000, 44_100), 44_100);
    }
    /// Two senders started back to back in one process get different SSRCs
    /// (the tone sender once derived it from the process id alone).
    #[test]
    fn ssrcs_differ_within_one_process() {
        let v: Vec<u32> = (0..64).map(|_| new_ssrc()).collect();
        let mut u = v.clone();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), v.len(), "{v:?}");
    }
}
