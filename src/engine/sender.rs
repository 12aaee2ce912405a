//! A minimal AES67 RTP sender: a test tone (the sans-IO
//! [`crate::media::tone::Sine`]), paced by `CLOCK_MONOTONIC`.
//!
//! Used by `aes67 demo` as the in-process sender. Packets carry L24 or L16
//! at the stream's packet time (RFC 3550 §5.1, AES67-2018 §7).

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
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SenderHandle {
    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
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
        let sock = open_sender_socket(self.stream.dest, self.iface, self.ttl)?;
        let dest: SocketAddr = (self.stream.dest, self.stream.port).into();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
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
                let ssrc = std::process::id().wrapping_mul(2654435761);
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
            thread: Some(thread),
        })
    }
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
