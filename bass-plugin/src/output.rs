//! The output side: any BASS channel → an AES67 RTP stream
//! (`BASS_AES67_OutputCreate/Start/Stop/GetStats/IsRunning/GetPPM/Free`,
//! the seeds' API shape, plus `BASS_AES67_OutputCreateEx` with encoding,
//! TTL and a SAP name).
//!
//! Pipeline (all engine code, nothing re-implemented here):
//! - a **feeder thread** reads the channel with `BASS_ChannelGetData(ch,
//!   buf, bytes | BASS_DATA_FLOAT)` (through [`ChannelReader`], implemented
//!   by the FFI module) one packet at a time whenever the ring has room,
//!   converts the floats to the encoding's integers (`round(x × 2^23)` for
//!   L24, `× 2^15` for L16: a 24/16-bit source decoded by BASS goes through
//!   bit-exactly) and pushes them into the engine's lock-free ring
//!   ([`aes67::engine::source::spawn_feeder`]);
//! - the engine's **pacing thread** ([`aes67::engine::sender::Sender`]) pops
//!   one packet per packet time and sends it, on the **PTP media clock**
//!   (RTP timestamp = PTP time × rate, RFC 7273 §5.2) when the add-on's
//!   `CLOCK_MODE` is PTP and its PTP slave runs, else on `CLOCK_MONOTONIC`.
//!
//! The channel is therefore consumed at exactly the media clock's rate: a
//! BASS decode channel (a file) feeding an output never drifts against PTP.
//! A live channel (an `aes67://` input stream, best opened with
//! `fill=available`) is consumed at the output's clock; it must run on the
//! same clock (both PTP, or both System) or the ring runs dry/full (counted
//! in `underruns`).
//!
//! The pacing thread never calls BASS, allocates, locks or blocks; the
//! feeder never allocates or locks after start-up (one preallocated float
//! buffer); it sleeps 1 ms when the ring is full or the channel had nothing.
//! A short or failed read is padded with silence by the sender and counted
//! (`underruns` while the channel lives; after the channel ended or was
//! freed, silence, `IsRunning` stays 1 until `OutputStop`). A failed send is
//! counted in `send_errors`, never fatal.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes67::engine::sap::{AnnouncementId, SapHandle, SapOptions};
use aes67::engine::sender::{DSCP_AF41, RtpClock, SendClock, SendStream, Sender, SenderOptions};
use aes67::engine::source::{OutFormat, spawn_feeder};
use aes67::media::session::{
    MAX_PACKET_TIME_US, MAX_PAYLOAD_BYTES, MIN_PACKET_TIME_US, RefClock, SenderSdp, packet_frames,
};
use aes67::media::stream::{Encoding, StreamConfig};

use crate::errors::OpenError;
use crate::state::{CLOCK_PTP, clock_settings, stream_defaults};

/// Reads float frames from a BASS channel (`BASS_ChannelGetData` with
/// `BASS_DATA_FLOAT`); implemented over the real BASS by the FFI module.
pub trait ChannelReader: Send + 'static {
    /// Fills up to `out.len()` floats (whole frames); returns how many were
    /// written, or `None` when BASS reports an error (the channel ended, or
    /// the handle is no longer valid).
    fn read(&mut self, out: &mut [f32]) -> Option<usize>;
}

/// The source channel's format, from `BASS_ChannelGetInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelFormat {
    /// Sample rate, Hz.
    pub freq: u32,
    /// Channels.
    pub chans: u32,
}

/// A validated output configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// Destination IPv4 (multicast or unicast).
    pub dest: Ipv4Addr,
    /// Destination UDP port.
    pub port: u16,
    /// Interface (IPv4 or name) to send from; `None`: the OS default.
    pub iface: Option<String>,
    /// RTP payload type, 0-127.
    pub pt: u8,
    /// Channels, 1-64.
    pub channels: u16,
    /// Sample rate, Hz: 44100, 48000 or 96000.
    pub rate: u32,
    /// Packet time, µs: 125-5000.
    pub packet_time_us: u32,
    /// L24 or L16.
    pub encoding: Encoding,
    /// Multicast TTL, 1-255.
    pub ttl: u8,
    /// `s=` name announced by SAP (RFC 2974); `None`: no SAP.
    pub sap_name: Option<String>,
}

/// The raw values of `BASS_AES67_OUTPUT_CONFIG(_EX)` (0 = default where the
/// header says so).
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// `group`: destination a.b.c.d.
    pub group: [u8; 4],
    /// `port`.
    pub port: u16,
    /// `iface`: a.b.c.d, 0.0.0.0 = the `INTERFACE` option.
    pub iface: [u8; 4],
    /// `pt` (0 = the `PT` option, default 96).
    pub pt: u8,
    /// `channels` (0 = the source channel's).
    pub channels: u16,
    /// `rate` (0 = the source channel's).
    pub rate: u32,
    /// `packet_time_us` (0 = 1000).
    pub packet_time_us: u32,
    /// `encoding` (0 or 24 = L24, 16 = L16).
    pub encoding: u32,
    /// `ttl` (0 = 32).
    pub ttl: u32,
    /// `sap_name` (`None`: no SAP).
    pub sap_name: Option<String>,
}

/// Default multicast TTL of an output.
pub const DEFAULT_TTL: u8 = 32;
/// Ring between the feeder and the pacing thread, ms (also the prefill).
pub const RING_MS: u32 = 20;

/// Checks `raw` against the source channel's format `src`. Errors
/// (`BASS_ERROR_ILLPARAM`, 20) name the config field at fault.
pub fn validate(raw: &RawConfig, src: ChannelFormat) -> Result<OutputConfig, OpenError> {
    let dest = Ipv4Addr::from(raw.group);
    if dest.is_unspecified() || dest.is_broadcast() {
        return Err(OpenError::url(format!(
            "invalid destination {dest} in group (a multicast or unicast IPv4 address)"
        )));
    }
    if raw.port == 0 {
        return Err(OpenError::url("invalid port 0 in port (1-65535)"));
    }
    let iface = if raw.iface == [0; 4] {
        stream_defaults().iface
    } else {
        Some(Ipv4Addr::from(raw.iface).to_string())
    };
    let pt = if raw.pt == 0 {
        stream_defaults().payload_type
    } else {
        raw.pt
    };
    if pt > 127 {
        return Err(OpenError::url(format!(
            "invalid payload type {pt} in pt (0-127)"
        )));
    }
    let channels = if raw.channels == 0 {
        src.chans.min(u16::MAX as u32) as u16
    } else {
        raw.channels
    };
    if !(1..=64).contains(&channels) {
        return Err(OpenError::url(format!(
            "invalid channel count {channels} in channels (1-64)"
        )));
    }
    if u32::from(channels) != src.chans {
        return Err(OpenError::url(format!(
            "channels {channels} does not match the source channel's {} (mix it to {channels} \
             channels first, e.g. with BASSmix)",
            src.chans
        )));
    }
    let rate = if raw.rate == 0 { src.freq } else { raw.rate };
    if ![44_100, 48_000, 96_000].contains(&rate) {
        return Err(OpenError::url(format!(
            "invalid sample rate {rate} Hz in rate (44100, 48000 or 96000)"
        )));
    }
    if rate != src.freq {
        return Err(OpenError::url(format!(
            "rate {rate} Hz does not match the source channel's {} Hz (resample it first, e.g. \
             with a BASSmix mixer at {rate} Hz)",
            src.freq
        )));
    }
    let packet_time_us = if raw.packet_time_us == 0 {
        1000
    } else {
        raw.packet_time_us
    };
    if !(MIN_PACKET_TIME_US..=MAX_PACKET_TIME_US).contains(&packet_time_us) {
        return Err(OpenError::url(format!(
            "invalid packet time {packet_time_us} µs in packet_time_us \
             ({MIN_PACKET_TIME_US}-{MAX_PACKET_TIME_US})"
        )));
    }
    let encoding = match raw.encoding {
        0 | 24 => Encoding::L24,
        16 => Encoding::L16,
        e => {
            return Err(OpenError::url(format!(
                "invalid encoding {e} in encoding (24 = L24, 16 = L16)"
            )));
        }
    };
    let ttl = match raw.ttl {
        0 => DEFAULT_TTL,
        t @ 1..=255 => t as u8,
        t => return Err(OpenError::url(format!("invalid TTL {t} in ttl (1-255)"))),
    };
    let frames = packet_frames(rate, packet_time_us) as usize;
    let bytes = frames * channels as usize * encoding.bytes_per_sample();
    if bytes > MAX_PAYLOAD_BYTES {
        return Err(OpenError::url(format!(
            "payload of {bytes} bytes is over {MAX_PAYLOAD_BYTES} (AES67-2023 §6.3) in channels: \
             at most {} channels fit in {frames} frames per packet",
            MAX_PAYLOAD_BYTES / (frames * encoding.bytes_per_sample())
        )));
    }
    if let Some(n) = &raw.sap_name
        && (n.is_empty() || n.len() > 255 || n.contains(['\r', '\n']))
    {
        return Err(OpenError::url(
            "invalid SAP name in sap_name (1-255 bytes of UTF-8, no line breaks)",
        ));
    }
    Ok(OutputConfig {
        dest,
        port: raw.port,
        iface,
        pt,
        channels,
        rate,
        packet_time_us,
        encoding,
        ttl,
        sap_name: raw.sap_name.clone(),
    })
}

/// Counters of an output (`BASS_AES67_OUTPUT_STATS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Frames (samples per channel) sent, audio and silence.
    pub samples_sent: u64,
    /// Sends the OS refused (counted, never fatal).
    pub send_errors: u64,
    /// Packets short of audio while the channel was live (padded with silence).
    pub underruns: u64,
}

/// The running part of an output.
struct Running {
    sender: Sender,
    sap: Option<(SapHandle, AnnouncementId)>,
    ptp: Option<Arc<aes67::engine::ptp_clock::PtpClockHandle>>,
}

/// One output: its config, its source and (while started) the sender.
pub struct Output {
    cfg: OutputConfig,
    /// The reader, handed to the feeder thread on start and back on stop.
    reader: Arc<Mutex<Option<Box<dyn ChannelReader>>>>,
    running: Option<Running>,
    /// Totals of earlier runs (Start/Stop cycles).
    base: OutputStats,
}

impl Output {
    /// A stopped output of `cfg` reading `reader`.
    pub fn new(cfg: OutputConfig, reader: Box<dyn ChannelReader>) -> Output {
        Output {
            cfg,
            reader: Arc::new(Mutex::new(Some(reader))),
            running: None,
            base: OutputStats::default(),
        }
    }

    /// The validated config.
    pub fn config(&self) -> &OutputConfig {
        &self.cfg
    }

    /// Starts the feeder and the sender (sockets in the calling thread's
    /// network namespace). A second start of a running output is a no-op.
    ///
    /// Errors: `BASS_ERROR_FILEOPEN` (2) when the socket, the interface or
    /// the SAP socket cannot be set up (the text names which).
    pub fn start(&mut self) -> Result<(), OpenError> {
        if self.running.is_some() {
            return Ok(());
        }
        let c = &self.cfg;
        let ch = c.channels as usize;
        let frames = packet_frames(c.rate, c.packet_time_us);
        let bits = match c.encoding {
            Encoding::L24 => 24,
            Encoding::L16 => 16,
        };
        let ifc = match &c.iface {
            Some(i) => Some(
                aes67::sys::socket::lookup(i)
                    .map_err(|e| OpenError::open(format!("interface {i} in iface: {e}")))?,
            ),
            None => None,
        };
        let iface_v4 = ifc.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |i| i.ipv4);
        // The clock: the add-on's PTP slave in CLOCK_MODE PTP, else System.
        let ptp = if clock_settings().mode == CLOCK_PTP {
            crate::ptpslave::handle()
        } else {
            None
        };
        let clock = match &ptp {
            Some(h) => SendClock::Ptp((**h).clone()),
            None => SendClock::Monotonic(RtpClock::Arbitrary),
        };
        // The feeder: BASS_ChannelGetData one packet at a time into the ring.
        let reader = self.reader.clone();
        let chunk = frames as usize * ch;
        let scale = (1i64 << (bits - 1)) as f32;
        let fmt = OutFormat {
            rate: c.rate,
            channels: ch,
            bits,
            ring_frames: (c.rate * RING_MS / 1000) as usize,
        };
        let src = spawn_feeder(fmt, "bass-output", true, move |mut prod, stop| {
            let Some(mut r) = reader.lock().ok().and_then(|mut g| g.take()) else {
                return Err("output source already in use".into());
            };
            let mut buf = vec![0f32; chunk];
            let res = feed(&mut *r, &mut buf, &mut prod, &stop, ch, scale);
            if let Ok(mut g) = reader.lock() {
                *g = Some(r);
            }
            res
        })
        .map_err(|e| OpenError::open(format!("feeder thread: {e}")))?;
        let ssrc = aes67::engine::sender::new_ssrc();
        let mut stream = StreamConfig::new(IpAddr::V4(c.dest), c.port);
        stream.iface = c.iface.clone();
        stream.payload_type = c.pt;
        stream.channels = c.channels;
        stream.sample_rate = c.rate;
        stream.encoding = c.encoding;
        stream.packet_time_us = Some(c.packet_time_us);
        stream.ttl = Some(c.ttl);
        stream.name = c.sap_name.clone();
        let sender = Sender::start(
            vec![SendStream {
                stream: stream.clone(),
                frames,
                iface: iface_v4,
                ttl: u32::from(c.ttl),
                dscp: DSCP_AF41,
                mediaclk_offset: 0,
                ssrc,
                source: Box::new(src),
            }],
            SenderOptions::new(clock),
        )
        .map_err(|e| OpenError::open(format!("RTP socket to {}:{}: {e}", c.dest, c.port)))?;
        // SAP (RFC 2974): the stream's SDP, when a name is given.
        let sap = match &c.sap_name {
            None => None,
            Some(_) => {
                let refclk = match ptp.as_ref().and_then(|h| {
                    h.status()
                        .filter(|s| s.port.state == aes67::ptp::port::PortState::Slave)
                        .and_then(|s| {
                            s.port
                                .gm_identity
                                .parse::<aes67::ptp::msg::ClockIdentity>()
                                .ok()
                        })
                }) {
                    Some(gm) => RefClock::Ptp {
                        gm,
                        domain: clock_settings().domain,
                    },
                    None => RefClock::LocalMac(ifc.as_ref().and_then(|i| i.mac).unwrap_or([0; 6])),
                };
                let sdp = SenderSdp {
                    stream,
                    frames,
                    origin: iface_v4,
                    session_id: aes67::sys::clock::realtime_now_ns() as u64 / 1_000_000_000,
                    version: 1,
                    refclk,
                    mediaclk_offset: 0,
                    channel_order: None,
                }
                .render();
                let h = SapHandle::start(SapOptions {
                    iface: c.iface.clone(),
                    listen: false,
                    ..SapOptions::default()
                })
                .map_err(|e| OpenError::open(format!("SAP socket in sap_name: {e}")))?;
                let id = h.announce(sdp);
                Some((h, id))
            }
        };
        self.running = Some(Running { sender, sap, ptp });
        Ok(())
    }

    /// Stops sending (SAP deletions sent); the counters are kept. The
    /// output can be started again.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let last = r.sender.stop();
            if let Some(s) = last.first() {
                self.base.packets_sent += s.packets_sent;
                self.base.samples_sent += s.frames_sent;
                self.base.send_errors += s.send_errors;
                self.base.underruns += s.underruns;
            }
            if let Some((h, _)) = r.sap {
                h.stop();
            }
        }
    }

    /// Whether the sender runs.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Counters over every run so far.
    pub fn stats(&self) -> OutputStats {
        let mut s = self.base;
        if let Some(r) = &self.running
            && let Some(n) = r.sender.stats(0)
        {
            s.packets_sent += n.packets_sent;
            s.samples_sent += n.frames_sent;
            s.send_errors += n.send_errors;
            s.underruns += n.underruns;
        }
        s
    }

    /// The rate correction the media clock applies against the local
    /// clock, ppm × 1000 (= ppb): the PTP servo's frequency while the
    /// output runs on PTP, 0 on the System clock.
    pub fn ppm_x1000(&self) -> i32 {
        self.running
            .as_ref()
            .and_then(|r| r.ptp.as_ref())
            .map_or(0, |h| {
                h.freq()
                    .as_ppb()
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The feeder loop: tops the ring up (at most one packet per read) from the channel.
/// Never allocates (`buf` is preallocated); sleeps 1 ms when the ring is
/// full or the channel had nothing. Returns when `stop` is set or the
/// channel ended (BASS error).
fn feed(
    r: &mut dyn ChannelReader,
    buf: &mut [f32],
    prod: &mut rtrb::Producer<i32>,
    stop: &AtomicBool,
    ch: usize,
    scale: f32,
) -> Result<(), String> {
    let (lo, hi) = (-scale, scale - 1.0);
    while !stop.load(Ordering::Relaxed) {
        // Up to one packet, never more than the ring's free whole frames
        // (a live channel may hand over less than asked: the ring still
        // fills completely).
        let room = prod.slots().min(buf.len()) / ch * ch;
        if room == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let Some(n) = r.read(&mut buf[..room]) else {
            return Ok(()); // ended or freed: the sender sends silence
        };
        let n = n.min(room) / ch * ch;
        if n == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        if let Ok(w) = prod.write_chunk_uninit(n) {
            // Fills and commits every slot (rtrb's safe form).
            w.fill_from_iter(
                buf[..n]
                    .iter()
                    .map(|s| (s * scale).round().clamp(lo, hi) as i32),
            );
        }
    }
    Ok(())
}

// ---- the registry of outputs (handles are small integers, never pointers) ----

static OUTPUTS: Mutex<Vec<(usize, Arc<Mutex<Output>>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, Vec<(usize, Arc<Mutex<Output>>)>> {
    OUTPUTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers `o`; returns its handle (never 0).
pub fn insert(o: Output) -> usize {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) as usize;
    registry().push((id, Arc::new(Mutex::new(o))));
    id
}

/// Runs `f` on output `id`; `None` for an unknown (or freed) handle.
pub fn with<R>(id: usize, f: impl FnOnce(&mut Output) -> R) -> Option<R> {
    let o = registry().iter().find(|(i, _)| *i == id)?.1.clone();
    let mut g = o.lock().unwrap_or_else(|p| p.into_inner());
    Some(f(&mut g))
}

/// Stops and frees output `id`; `false` for an unknown handle.
pub fn remove(id: usize) -> bool {
    let o = {
        let mut r = registry();
        let Some(k) = r.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        r.remove(k).1
    };
    o.lock().unwrap_or_else(|p| p.into_inner()).stop();
    true
}

/// Stops and frees every output (add-on unload).
pub fn shutdown() {
    let all: Vec<_> = std::mem::take(&mut *registry());
    for (_, o) in all {
        o.lock().unwrap_or_else(|p| p.into_inner()).stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawConfig {
        RawConfig {
            group: [239, 69, 0, 1],
            port: 5004,
            iface: [10, 0, 0, 2],
            pt: 97,
            ..Default::default()
        }
    }
    const SRC: ChannelFormat = ChannelFormat {
        freq: 48_000,
        chans: 2,
    };

    #[test]
    fn defaults_come_from_the_source_and_the_seeds() {
        let c = validate(&raw(), SRC).unwrap();
        assert_eq!(
            (
                c.channels,
                c.rate,
                c.packet_time_us,
                c.encoding,
                c.ttl,
                c.pt
            ),
            (2, 48_000, 1000, Encoding::L24, DEFAULT_TTL, 97)
        );
        assert_eq!(c.iface.as_deref(), Some("10.0.0.2"));
        let c = validate(
            &RawConfig {
                encoding: 16,
                ttl: 5,
                ..raw()
            },
            SRC,
        )
        .unwrap();
        assert_eq!((c.encoding, c.ttl), (Encoding::L16, 5));
    }

    #[test]
    fn an_oversized_payload_names_channels_and_says_how_many_fit() {
        let src = ChannelFormat {
            freq: 48_000,
            chans: 3,
        };
        // 240 frames (5 ms) × 3 ch × 3 bytes = 2160 > 1440.
        let e = validate(
            &RawConfig {
                packet_time_us: 5000,
                ..raw()
            },
            src,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::errors::BASS_ERROR_ILLPARAM);
        assert!(
            e.text.contains("in channels") && e.text.contains("at most 2 channels"),
            "{}",
            e.text
        );
        // L16 fits 3 channels (1440 bytes exactly).
        assert!(
            validate(
                &RawConfig {
                    packet_time_us: 5000,
                    encoding: 16,
                    ..raw()
                },
                src
            )
            .is_ok()
        );
        let e = validate(&RawConfig { ttl: 300, ..raw() }, SRC).unwrap_err();
        assert!(e.text.contains("in ttl"), "{}", e.text);
    }
}
