//! One `aes67://` BASS stream: URL → engine stream config, the engine
//! receiver, and the STREAMPROC side that turns its ring of i32 samples into
//! BASS float frames.
//!
//! Rate: BASS pulls at its own output rate. Playing streams go through
//! [`crate::steer::Steer`] in [`Realtime::fill`] (the engine's rate
//! controller and resampler; URL `steer=off` disables it); decode streams
//! are paced by the caller and never resampled.

// Without the engine (Windows default build) only the types and the failing
// `open` remain; the rest is intentionally unused there.
#![cfg_attr(not(engine), allow(dead_code, unused_imports))]

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[cfg(engine)]
use aes67::media::stream::{Encoding, StreamConfig};

use crate::counters::SharedStats;
#[cfg(engine)]
use crate::counters::{StatsSource, StreamStats};
use crate::errors::OpenError;
use crate::state;
#[cfg(engine)]
use crate::state::StreamDefaults;
pub use crate::urlparam::{Fill, parse_jitter};

/// `BASS_CTYPE_STREAM_AES67`: the channel type `BASS_ChannelGetInfo` reports.
pub const CTYPE_AES67: u32 = 0x1f200;

/// True when `url` has the `aes67:` scheme (case-insensitive); other URLs are
/// declined (BASS_ERROR_FILEFORM) so BASS can try its other handlers.
#[cfg(engine)]
pub fn is_aes67_url(url: &str) -> bool {
    aes67::media::stream::has_aes67_scheme(url)
}

/// True when `url` has the `aes67:` scheme (case-insensitive). The Windows
/// DLL built without the engine (`--no-default-features`) does not link the
/// core crate, so it keeps this one-line test of its own.
#[cfg(not(engine))]
pub fn is_aes67_url(url: &str) -> bool {
    let u = url.trim_start().as_bytes();
    u.len() >= 8 && u[..8].eq_ignore_ascii_case(b"aes67://")
}

/// Turns an add-on URL into the engine's stream config.
///
/// Accepts everything [`StreamConfig::from_url`] does (the seeds'
/// `aes67://GROUP:PORT?iface=&pt=&jitter=&ch=&rate=` with aliases
/// `interface`, `payload`, `channels`, `samplerate`, plus `enc=` and
/// `source=`), and `sdp=PATH` (e.g. `aes67://sdp?sdp=/etc/aes67/studio1.sdp`): the stream is then described by the SDP file
/// (RFC 4566), the URL's host and port are ignored, and only `iface=`/
/// `interface=`, `jitter=` and `fill=` may accompany it. `fill=silence|available`
/// (default silence) is the add-on's own parameter, see [`Fill`].
///
/// Where the URL does not set them, the payload type, interface and jitter
/// come from `defaults` (config options PT, INTERFACE, JITTER).
///
/// `jitter=` is 1-1000 ms (as the `JITTER` option, see [`parse_jitter`]);
/// the `sdp=` file must be a regular local file of at most 64 KiB (see
/// [`SDP_MAX_BYTES`]).
///
/// Errors: [`OpenError`] with BASS_ERROR_ILLPARAM and a text naming the field
/// (also for an `sdp=` name or file that is refused); BASS_ERROR_FILEOPEN
/// when the SDP file cannot be opened or read.
#[cfg(engine)]
pub fn resolve_config(
    url: &str,
    defaults: &StreamDefaults,
) -> Result<(StreamConfig, Fill), OpenError> {
    let url = url.trim();
    aes67::media::stream::check_url_shape(url).map_err(|e| OpenError::url(e.to_string()))?;
    let mut parsed =
        url::Url::parse(url).map_err(|e| OpenError::url(format!("invalid URL {url:?}: {e}")))?;
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // `fill=` is the add-on's own parameter: take it out before the engine parses the URL.
    let mut fill = Fill::Silence;
    if let Some(i) = pairs.iter().position(|(k, _)| k == "fill") {
        let (_, v) = pairs.remove(i);
        fill = Fill::parse(&v)?;
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs.iter());
        }
    }
    let url = parsed.as_str();
    let has = |names: &[&str]| pairs.iter().any(|(k, _)| names.contains(&k.as_str()));
    // Checked first, so the error names this add-on's range (not the engine's).
    let jitter = pairs
        .iter()
        .find(|(k, _)| k == "jitter")
        .map(|(_, v)| parse_jitter(v))
        .transpose()?;
    let mut cfg = if let Some((_, path)) = pairs.iter().find(|(k, _)| k == "sdp") {
        if path.is_empty() {
            return Err(OpenError::url("empty path in sdp="));
        }
        let text = read_sdp_file(path)?;
        let mut c = StreamConfig::from_sdp(&text)
            .map_err(|e| OpenError::url(format!("sdp={path}: {e}")))?;
        for (k, v) in &pairs {
            match k.as_str() {
                "sdp" | "jitter" => {}
                "iface" | "interface" if !v.is_empty() => c.iface = Some(v.clone()),
                _ => {
                    return Err(OpenError::url(format!(
                        "parameter not allowed with sdp= in {k}={v}"
                    )));
                }
            }
        }
        c
    } else {
        StreamConfig::from_url(url).map_err(|e| OpenError::url(e.to_string()))?
    };
    if let Some(j) = jitter {
        cfg.jitter_ms = j;
    }
    if !has(&["pt", "payload"]) && !has(&["sdp"]) {
        cfg.payload_type = defaults.payload_type;
    }
    if !has(&["jitter"]) {
        cfg.jitter_ms = defaults.jitter_ms;
    }
    if !has(&["iface", "interface"]) && cfg.iface.is_none() {
        cfg.iface = defaults.iface.clone();
    }
    Ok((cfg, fill))
}

/// Largest `sdp=` file accepted, bytes (an SDP of one stream is < 2 KiB).
pub const SDP_MAX_BYTES: u64 = 64 * 1024;

/// Reads the `sdp=` file: a regular local file of at most [`SDP_MAX_BYTES`]
/// (`aes67::sys::file::read_small_regular`: no UNC, device namespace,
/// `/dev`, `/proc`, `/sys` or DOS device names, checked before anything is
/// opened; opened non-blocking so a FIFO cannot hang
/// `BASS_StreamCreateURL`; at most 64 KiB + 1 bytes read).
///
/// Errors: BASS_ERROR_ILLPARAM naming `sdp=` for a refused name, a file that
/// is not regular, too large or not UTF-8; BASS_ERROR_FILEOPEN when it
/// cannot be opened or read.
#[cfg(engine)]
fn read_sdp_file(path: &str) -> Result<String, OpenError> {
    use aes67::sys::file::{SmallFileError, read_small_regular};
    let bytes = read_small_regular(path, SDP_MAX_BYTES).map_err(|e| match e {
        SmallFileError::Io(e) => OpenError::open(format!("cannot read sdp={path}: {e}")),
        SmallFileError::TooLarge { size, .. } => OpenError::url(format!(
            "sdp={path}: file too large ({size} bytes; at most 64 KiB)"
        )),
        e => OpenError::url(format!(
            "sdp={path}: {e} (a regular local file of at most 64 KiB)"
        )),
    })?;
    String::from_utf8(bytes).map_err(|_| OpenError::url(format!("sdp={path}: not UTF-8 text")))
}

/// `steer=freq`: the BASS_ATTRIB_FREQ value the audio thread wants, handed
/// to the control plane. The STREAMPROC only stores it ([`FreqCell::publish`],
/// one atomic store: a real-time callback must not call back into BASS); the
/// stream's ingest thread applies it at its next wake-up (within
/// `engine::MAX_WAKE_MS`) with `BASS_ChannelSetAttribute`, see
/// [`FreqCell::pending`].
#[derive(Debug, Default)]
pub struct FreqCell {
    /// The wanted frequency, Hz, as f32 bits (0: none yet).
    target: AtomicU32,
    /// The BASS channel to apply it to (0: not created yet, or freed).
    handle: AtomicU32,
}

impl FreqCell {
    /// Audio thread: records `hz` as the wanted BASS_ATTRIB_FREQ (one
    /// atomic store; never allocates, locks or calls BASS).
    pub fn publish(&self, hz: f32) {
        self.target.store(hz.to_bits(), Ordering::Release);
    }

    /// The channel the value applies to; 0 stops applying (stream freed).
    pub fn set_handle(&self, handle: u32) {
        self.handle.store(handle, Ordering::Release);
    }

    /// Control plane: `(channel, Hz)` to apply when the wanted value
    /// differs from `*applied` (the f32 bits last applied, updated here),
    /// else `None`. `None` too before the channel exists or after it was
    /// freed.
    pub fn pending(&self, applied: &mut u32) -> Option<(u32, f32)> {
        let h = self.handle.load(Ordering::Acquire);
        let bits = self.target.load(Ordering::Acquire);
        if h == 0 || bits == 0 || bits == *applied {
            return None;
        }
        *applied = bits;
        Some((h, f32::from_bits(bits)))
    }
}

/// The control-plane function that applies a frequency to a BASS channel
/// (`BASS_ChannelSetAttribute(handle, BASS_ATTRIB_FREQ, hz)`, in `ffi`).
pub type ApplyFreq = fn(u32, f32);

/// The audio-thread half of a stream: drains the engine's ring into floats.
pub struct Realtime {
    ring: rtrb::Consumer<i32>,
    /// Return only buffered frames (decode stream with `fill=available`).
    exact: bool,
    chans: usize,
    scale: f32,
    started: bool,
    stats: Arc<SharedStats>,
    /// Playing streams: the steered (rate-controlled) pull; `None` for decode streams.
    #[cfg(engine)]
    steer: Option<crate::steer::Steer>,
    /// The PTP clock the stream's media clock runs on (feed-forward of its frequency).
    #[cfg(engine)]
    ptp: Option<Arc<aes67::engine::ptp_clock::PtpClockHandle>>,
    /// `steer=freq`: the BASS_ATTRIB_FREQ value last published (0 = none yet).
    #[cfg(engine)]
    freq_set: f32,
    /// Where `steer=freq` publishes it for the control plane.
    freq: Arc<FreqCell>,
}

impl Realtime {
    /// `steer=freq`: the BASS_ATTRIB_FREQ (Hz) to apply now, when it moved by
    /// more than 0.001 Hz since the last one applied.
    pub fn freq_update(&mut self) -> Option<f32> {
        #[cfg(engine)]
        if let Some(f) = self.steer.as_ref().and_then(|s| s.freq_hz())
            && (f - self.freq_set).abs() > 0.001
        {
            self.freq_set = f;
            return Some(f);
        }
        None
    }

    /// Fills `out` (interleaved f32 frames) from the ring and returns the
    /// number of floats written. Never allocates, locks or logs.
    ///
    /// By default ([`Fill::Silence`], as the seeds' add-on) every call gets
    /// `out.len()` floats, with silence after the buffered frames; each such
    /// shortfall after the first audio counts as an underrun. Decode streams
    /// opened with `fill=available` get only the whole frames that are
    /// buffered (possibly none): no invented samples.
    ///
    /// Samples arrive in the stream's native range (24- or 16-bit) and are
    /// scaled by 2^-23 or 2^-15, which is exact in f32.
    ///
    /// `steer=freq` streams publish the rate controller's frequency to the
    /// stream's [`FreqCell`]; nothing here calls BASS.
    pub fn fill(&mut self, out: &mut [f32]) -> usize {
        let n = self.fill_inner(out);
        if let Some(f) = self.freq_update() {
            self.freq.publish(f);
        }
        n
    }

    fn fill_inner(&mut self, out: &mut [f32]) -> usize {
        #[cfg(engine)]
        if let Some(steer) = self.steer.as_mut() {
            let media = match &self.ptp {
                Some(h) if h.locked() => Some(h.freq()),
                Some(_) => None,
                None => Some(aes67::units::Ppb::from_ppb(0.0)),
            };
            let before = steer.counters().underruns;
            let mut src = crate::steer::RingSource {
                ring: &mut self.ring,
                scale: self.scale,
            };
            let n = steer.pull(&mut src, out, aes67::units::MonoNs::now(), media);
            let c = steer.counters();
            self.stats
                .buffered_frames
                .store(c.fill_frames as u32, Ordering::Relaxed);
            if c.underruns > before {
                self.stats.underruns.fetch_add(1, Ordering::Relaxed);
            }
            return n;
        }
        let chans = self.chans.max(1);
        let want_frames = out.len() / chans;
        let avail_frames = self.ring.slots() / chans;
        let frames = want_frames.min(avail_frames);
        let n = frames * chans;
        if n > 0 {
            if let Ok(chunk) = self.ring.read_chunk(n) {
                let (a, b) = chunk.as_slices();
                for (o, s) in out[..n].iter_mut().zip(a.iter().chain(b.iter())) {
                    *o = *s as f32 * self.scale;
                }
                chunk.commit_all();
            }
            self.started = true;
        }
        self.stats
            .buffered_frames
            .store((avail_frames - frames) as u32, Ordering::Relaxed);
        if self.exact {
            return n;
        }
        let full = want_frames * chans;
        if n < full {
            out[n..full].fill(0.0);
            if self.started {
                self.stats.underruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        full
    }
}

/// One open stream: owns the engine receiver (stopped on drop) and the
/// audio-thread state. Given to BASS as the stream instance.
pub struct StreamState {
    /// Original resolution in bits (24 for L24, 16 for L16) for BASS_CHANNELINFO.origres.
    pub(crate) origres: u32,
    /// Only the STREAMPROC touches this (see `ffi.rs`).
    pub(crate) rt: UnsafeCell<Realtime>,
    rate: u32,
    chans: u32,
    key: u64,
    /// `steer=freq`: the value the STREAMPROC publishes (see [`FreqCell`]).
    pub(crate) freq: Arc<FreqCell>,
    #[cfg(engine)]
    _shared: Arc<StreamShared>,
}

/// How long `BASS_StreamFree` waits for a stream's ingest thread to end,
/// at most: within BASS's 10 ms teardown budget (issue 13 #9), and more
/// than the thread needs to notice the stop (`engine::MAX_WAKE_MS`).
pub const FREE_WAIT: Duration = Duration::from_millis(5);

/// What the config proc reads of an open stream: the add-on's counters and
/// the engine receiver (its stats are lock-free snapshots). The receiver
/// stops when the last holder drops this.
#[cfg(engine)]
pub struct StreamShared {
    counters: Arc<SharedStats>,
    engine: crate::engine::EngineStream,
    rate: u32,
}

#[cfg(engine)]
impl StatsSource for StreamShared {
    /// Combined figures: the engine's packet counters, the add-on's
    /// underruns, and the audio buffered in the engine plus the ring.
    fn snapshot(&self) -> StreamStats {
        let mut s = self.counters.snapshot();
        let e = self.engine.stats();
        s.packets_received = e.playout.packets;
        s.packets_late = e.playout.late + e.playout.lost;
        s.buffered_frames = s
            .buffered_frames
            .saturating_add(e.buffer_frames.min(u32::MAX as u64) as u32);
        if e.packet_frames > 0 {
            s.frames_per_packet = e.packet_frames;
            s.packet_time_us =
                (e.packet_frames as u64 * 1_000_000 / self.rate.max(1) as u64) as u32;
        }
        s
    }
}

impl StreamState {
    /// Frees the stream (BASS's Free) without waiting for anything: stops
    /// the freq applier, asks the ingest thread to stop, frees everything
    /// of the stream but what the ingest thread owns (its sockets, playout
    /// buffer and ring producer; the rest it shares through `Arc`), and
    /// returns that thread, still ending (within `engine::MAX_WAKE_MS` plus
    /// its source's teardown). The caller joins it once it has ended, or
    /// detaches it and keeps the library loaded (`ffi::stream_free`).
    #[cfg(engine)]
    pub fn teardown(self) -> Option<std::thread::JoinHandle<()>> {
        self.freq.set_handle(0);
        let thread = self._shared.engine.take_thread();
        drop(self);
        thread
    }

    /// Without the engine there is no thread.
    #[cfg(not(engine))]
    pub fn teardown(self) -> Option<std::thread::JoinHandle<()>> {
        None
    }

    /// Sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }
    /// Channel count.
    pub fn channels(&self) -> u32 {
        self.chans
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        state::unregister(self.key);
    }
}

/// How a playing stream follows BASS's pull (URL `steer=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerMode {
    /// `steer=resample` (default): the engine's rate controller and resampler.
    Resample,
    /// `steer=freq`: the rate controller, applied through BASS_ATTRIB_FREQ
    /// (BASS resamples), as the seeds proposed; samples pass unchanged.
    Freq,
    /// `steer=off`: no rate control (bit-exact; the fill drifts with the clocks).
    Off,
}

/// Takes the add-on's `steer=` parameter out of `url`: see [`SteerMode`].
/// Decode streams are never steered (the caller sets the pace).
///
/// Errors: BASS_ERROR_ILLPARAM naming `steer=` for other values.
#[cfg(engine)]
pub fn take_steer(url: &str) -> Result<(String, SteerMode), OpenError> {
    let Ok(mut parsed) = url::Url::parse(url.trim()) else {
        return Ok((url.to_string(), SteerMode::Resample));
    };
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Some(i) = pairs.iter().position(|(k, _)| k == "steer") else {
        return Ok((url.to_string(), SteerMode::Resample));
    };
    let (_, v) = pairs.remove(i);
    let on = match v.as_str() {
        "resample" => SteerMode::Resample,
        "freq" => SteerMode::Freq,
        "off" => SteerMode::Off,
        _ => {
            return Err(OpenError::url(format!(
                "invalid steer mode (expected resample, freq or off) in steer={v}"
            )));
        }
    };
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs.iter());
    }
    Ok((parsed.as_str().to_string(), on))
}

/// Opens the stream a URL names: resolves its config (with the config-option
/// defaults) and starts the engine's receiver.
///
/// `apply` applies a `steer=freq` stream's frequency to its BASS channel;
/// it runs on the stream's ingest thread (see [`FreqCell`]), once the
/// channel handle is set with [`FreqCell::set_handle`].
///
/// Errors: see [`resolve_config`]; BASS_ERROR_FILEOPEN when the engine cannot
/// start (socket, bind, join), with its message.
#[cfg(engine)]
pub fn open(url: &str, decode: bool, apply: ApplyFreq) -> Result<StreamState, OpenError> {
    let (url, mode) = take_steer(url)?;
    let steered = mode != SteerMode::Off && !decode;
    let (cfg, fill) = match crate::sapdir::parse_sap_url(&url) {
        Some(sap) => crate::sapdir::resolve(&sap?, &state::stream_defaults())?,
        None => resolve_config(&url, &state::stream_defaults())?,
    };
    let stats = Arc::new(SharedStats::default());
    // Target buffer: the link offset, plus for playing streams the ring fill
    // the rate controller holds after each pull (`steer::TARGET_MS`).
    let target_ms = cfg.jitter_ms as u64
        + if steered {
            crate::steer::TARGET_MS as u64
        } else {
            0
        };
    let target = (target_ms * cfg.sample_rate as u64 / 1000) as u32;
    stats.target_frames.store(target, Ordering::Relaxed);
    if let Some(pt) = cfg.packet_time_us {
        stats.packet_time_us.store(pt, Ordering::Relaxed);
        stats.frames_per_packet.store(
            (pt as u64 * cfg.sample_rate as u64 / 1_000_000) as u32,
            Ordering::Relaxed,
        );
    }
    crate::ptpslave::reconcile();
    let ptp_clock = crate::ptpslave::stream_clock();
    let freq = Arc::new(FreqCell::default());
    let on_wake: Option<Box<dyn FnMut() + Send>> =
        (steered && mode == SteerMode::Freq).then(|| {
            let cell = freq.clone();
            let mut applied = 0u32;
            Box::new(move || {
                if let Some((h, hz)) = cell.pending(&mut applied) {
                    apply(h, hz);
                }
            }) as Box<dyn FnMut() + Send>
        });
    let (engine, ring) = crate::engine::start(&cfg, on_wake)?;
    let shared = Arc::new(StreamShared {
        counters: stats.clone(),
        engine,
        rate: cfg.sample_rate,
    });
    let (origres, scale) = match cfg.encoding {
        Encoding::L16 => (16, 1.0 / 32768.0),
        _ => (24, 1.0 / 8_388_608.0),
    };
    let key = state::next_stream_key();
    state::register(key, shared.clone());
    Ok(StreamState {
        origres,
        rt: UnsafeCell::new(Realtime {
            ring,
            exact: decode && fill == Fill::Available,
            chans: cfg.channels as usize,
            scale,
            started: false,
            stats,
            steer: if !steered {
                None
            } else {
                let (c, r, t) = (
                    cfg.channels as usize,
                    cfg.sample_rate,
                    crate::steer::TARGET_MS,
                );
                Some(
                    if mode == SteerMode::Freq {
                        crate::steer::Steer::new_freq(c, r, t)
                    } else {
                        crate::steer::Steer::new(c, r, t)
                    }
                    .map_err(OpenError::open)?,
                )
            },
            freq_set: 0.0,
            freq: freq.clone(),
            ptp: ptp_clock,
        }),
        rate: cfg.sample_rate,
        chans: cfg.channels as u32,
        key,
        freq,
        _shared: shared,
    })
}

/// Without the engine (Windows builds without `windows-engine`), every
/// stream fails with BASS_ERROR_NOTAVAIL (37).
#[cfg(not(engine))]
pub fn open(_url: &str, _decode: bool, _apply: ApplyFreq) -> Result<StreamState, OpenError> {
    Err(OpenError {
        code: crate::errors::BASS_ERROR_NOTAVAIL,
        text: "this build of the add-on has no engine (Windows without the windows-engine feature)"
            .into(),
    })
}

#[cfg(all(test, engine))]
mod tests {
    use super::*;

    fn defaults() -> StreamDefaults {
        StreamDefaults {
            payload_type: 100,
            iface: Some("10.0.0.9".into()),
            jitter_ms: 25,
        }
    }

    #[test]
    fn steer_parameter() {
        let (u, m) = take_steer("aes67://239.69.0.1:5004?steer=off&jitter=5").unwrap();
        assert_eq!(m, SteerMode::Off);
        assert_eq!(u, "aes67://239.69.0.1:5004?jitter=5");
        let r = |u: &str| take_steer(u).unwrap().1;
        assert_eq!(r("aes67://239.69.0.1?steer=resample"), SteerMode::Resample);
        assert_eq!(r("aes67://239.69.0.1?steer=freq"), SteerMode::Freq);
        assert_eq!(r("aes67://239.69.0.1"), SteerMode::Resample);
        let e = take_steer("aes67://239.69.0.1?steer=bass").err().unwrap();
        assert!(e.text.contains("steer=bass"), "{}", e.text);
    }

    #[test]
    fn scheme_check() {
        assert!(is_aes67_url("aes67://239.1.2.3"));
        assert!(is_aes67_url("  AES67://239.1.2.3:5004"));
        assert!(!is_aes67_url("http://x/y.mp3"));
        assert!(!is_aes67_url("aes6"));
    }

    #[test]
    fn defaults_fill_what_the_url_leaves_out() {
        let (c, fill) = resolve_config("aes67://239.69.0.1:5006", &defaults()).unwrap();
        assert_eq!(fill, Fill::Silence);
        assert_eq!((c.port, c.payload_type, c.jitter_ms), (5006, 100, 25));
        assert_eq!(c.iface.as_deref(), Some("10.0.0.9"));
        let (c, fill) = resolve_config(
            "aes67://239.69.0.1?payload=97&fill=available&jitter=5&interface=eth1&channels=8&samplerate=96000",
            &defaults(),
        )
        .unwrap();
        assert_eq!(fill, Fill::Available);
        assert_eq!(
            (c.payload_type, c.jitter_ms, c.channels, c.sample_rate),
            (97, 5, 8, 96000)
        );
        assert_eq!(c.iface.as_deref(), Some("eth1"));
    }

    #[test]
    fn bad_urls_name_the_field() {
        for (u, field) in [
            ("aes67://239.69.0.1?ch=0", "ch=0"),
            ("aes67://239.69.0.1?bogus=1", "bogus=1"),
            ("aes67://nothost", "nothost"),
            ("aes67://239.69.0.1?fill=some", "fill=some"),
        ] {
            let e = resolve_config(u, &defaults()).unwrap_err();
            assert_eq!(e.code, crate::errors::BASS_ERROR_ILLPARAM, "{u}");
            assert!(e.text.contains(field), "{u}: {}", e.text);
        }
    }

    #[test]
    fn sdp_file_describes_the_stream() {
        let dir = std::env::temp_dir().join(format!("bass-aes67-sdp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.sdp");
        std::fs::write(
            &p,
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=t\r\nc=IN IP4 239.69.3.3/32\r\nt=0 0\r\nm=audio 5008 RTP/AVP 98\r\na=rtpmap:98 L16/48000/4\r\na=ptime:1\r\n",
        )
        .unwrap();
        let (c, fill) = resolve_config(
            &format!("aes67://sdp?sdp={}&jitter=7&fill=available", p.display()),
            &defaults(),
        )
        .unwrap();
        assert_eq!(fill, Fill::Available);
        assert_eq!(
            (c.port, c.payload_type, c.channels, c.jitter_ms),
            (5008, 98, 4, 7)
        );
        assert_eq!(c.encoding, Encoding::L16);
        let e = resolve_config(
            &format!("aes67://0.0.0.0?sdp={}&ch=2", p.display()),
            &defaults(),
        )
        .unwrap_err();
        assert!(e.text.contains("ch=2"), "{}", e.text);
        let e = resolve_config("aes67://0.0.0.0?sdp=/nonexistent/x.sdp", &defaults()).unwrap_err();
        assert_eq!(e.code, crate::errors::BASS_ERROR_FILEOPEN);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 13 #8: `jitter=` is refused outside the JITTER option's range
    /// (1-1000 ms), by URL and with `sdp=`, naming the field and the range.
    #[test]
    fn jitter_outside_the_config_range_is_refused() {
        for u in [
            "aes67://239.69.0.1?jitter=10000",
            "aes67://239.69.0.1?jitter=1001",
            "aes67://239.69.0.1?jitter=0",
            "aes67://239.69.0.1?jitter=-5",
            "aes67://sdp?sdp=/nonexistent/x.sdp&jitter=5000",
        ] {
            let e = resolve_config(u, &defaults()).unwrap_err();
            assert_eq!(e.code, crate::errors::BASS_ERROR_ILLPARAM, "{u}");
            assert!(
                e.text.contains("jitter=") && e.text.contains("1-1000"),
                "{u}: {}",
                e.text
            );
        }
        let (c, _) = resolve_config("aes67://239.69.0.1?jitter=1000", &defaults()).unwrap();
        assert_eq!(c.jitter_ms, 1000);
    }

    /// Runs `resolve_config(url)` on a thread; a call still blocked after
    /// 3 s is a failure (`unblock` is then run so the thread can end).
    fn resolve_within_3s(url: String, unblock: impl FnOnce()) -> Result<(), OpenError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(resolve_config(&url, &defaults()).map(|_| ()));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(3)) {
            Ok(r) => {
                t.join().unwrap();
                r
            }
            Err(_) => {
                unblock();
                let _ = t.join();
                panic!("resolve_config blocked for 3 s");
            }
        }
    }

    /// Issue 13 #7: `sdp=` accepts only a regular local file of at most
    /// 64 KiB: a FIFO is refused at once (it used to hang), a larger file is
    /// refused before it is read, and UNC, device namespace and device paths
    /// (also through a symlink) are refused before anything is opened, each
    /// with BASS_ERROR_ILLPARAM and a text naming `sdp=`.
    #[test]
    fn sdp_accepts_only_small_regular_local_files() {
        let dir = std::env::temp_dir().join(format!("bass-aes67-sdpsafe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let refused = |e: OpenError, what: &str| {
            assert_eq!(
                e.code,
                crate::errors::BASS_ERROR_ILLPARAM,
                "{what}: {}",
                e.text
            );
            assert!(e.text.contains("sdp="), "{what}: {}", e.text);
            e.text
        };
        // A FIFO with no writer.
        let fifo = dir.join("fifo.sdp");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let f2 = fifo.clone();
        let e = resolve_within_3s(format!("aes67://sdp?sdp={}", fifo.display()), move || {
            let _ = std::fs::OpenOptions::new().write(true).open(&f2);
        })
        .unwrap_err();
        let t = refused(e, "fifo");
        assert!(t.contains("regular"), "{t}");
        // A valid SDP padded past 64 KiB.
        let big = dir.join("big.sdp");
        let mut text = String::from(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=t\r\nc=IN IP4 239.69.3.3/32\r\nt=0 0\r\nm=audio 5008 RTP/AVP 98\r\na=rtpmap:98 L16/48000/2\r\n",
        );
        while text.len() <= 64 * 1024 {
            text.push_str("a=tool:padding padding padding padding\r\n");
        }
        std::fs::write(&big, &text).unwrap();
        let e =
            resolve_config(&format!("aes67://sdp?sdp={}", big.display()), &defaults()).unwrap_err();
        let t = refused(e, "65 KiB file");
        assert!(t.contains("too large") && t.contains("64 KiB"), "{t}");
        // The same file cut to 64 KiB is accepted.
        std::fs::write(
            &big,
            &text.as_bytes()[..text[..64 * 1024].rfind('\n').unwrap() + 1],
        )
        .unwrap();
        resolve_config(&format!("aes67://sdp?sdp={}", big.display()), &defaults())
            .expect("a 64 KiB SDP");
        // Network and device namespace paths: refused by name.
        for p in [
            r"\\host\share\s.sdp",
            "//host/share/s.sdp",
            r"\\.\pipe\s",
            r"\\?\C:\s.sdp",
        ] {
            let e = resolve_config(&format!("aes67://sdp?sdp={p}"), &defaults()).unwrap_err();
            let t = refused(e, p);
            assert!(t.contains("UNC"), "{p}: {t}");
        }
        // Devices, directly and through a symlink (would read forever).
        let link = dir.join("zero.sdp");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for p in ["/dev/zero".to_string(), link.display().to_string()] {
            let e = resolve_within_3s(format!("aes67://sdp?sdp={p}"), || {}).unwrap_err();
            let t = refused(e, &p);
            assert!(t.contains("device"), "{p}: {t}");
        }
        let e =
            resolve_config(&format!("aes67://sdp?sdp={}", dir.display()), &defaults()).unwrap_err();
        refused(e, "directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 13 #9: a `steer=freq` stream's audio callback never calls BASS.
    /// `Realtime::fill` (what the STREAMPROC runs) only publishes the rate
    /// controller's frequency into the stream's `FreqCell`; the control
    /// plane (the ingest thread's `on_wake`, built like the one `open`
    /// builds) applies it through `apply`, once per change, only while the
    /// channel exists, and on its own thread.
    #[test]
    fn steer_freq_publishes_and_the_control_plane_applies() {
        use std::sync::Mutex;
        static APPLIED: Mutex<Vec<(u32, f32, std::thread::ThreadId)>> = Mutex::new(Vec::new());
        fn apply(h: u32, hz: f32) {
            APPLIED
                .lock()
                .unwrap()
                .push((h, hz, std::thread::current().id()));
        }
        let (mut p, c) = rtrb::RingBuffer::<i32>::new(48_000 * 2);
        let cell = Arc::new(FreqCell::default());
        let mut rt = Realtime {
            ring: c,
            exact: false,
            chans: 2,
            scale: 1.0 / 8_388_608.0,
            started: false,
            stats: Arc::new(SharedStats::default()),
            steer: Some(crate::steer::Steer::new_freq(2, 48_000, crate::steer::TARGET_MS).unwrap()),
            ptp: None,
            freq_set: 0.0,
            freq: cell.clone(),
        };
        // The control plane as `open` builds it, run on another thread.
        let applier = {
            let cell = cell.clone();
            let mut applied = 0u32;
            move || {
                if let Some((h, hz)) = cell.pending(&mut applied) {
                    apply(h, hz);
                }
            }
        };
        // Each tick is acknowledged once the control plane has run, so the
        // test is deterministic however the two threads are scheduled (a
        // lagging control thread once saw only the final freed handle).
        let (tick_tx, tick_rx) = std::sync::mpsc::channel::<bool>();
        let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
        let ctl = std::thread::spawn(move || {
            let mut applier = applier;
            while tick_rx.recv().unwrap_or(false) {
                applier();
                let _ = ack_tx.send(());
            }
            std::thread::current().id()
        });
        let tick = |tx: &std::sync::mpsc::Sender<bool>| {
            tx.send(true).unwrap();
            ack_rx.recv().expect("control thread alive");
        };
        // The audio thread (this one): 2 s of 10 ms pulls with the ring
        // held well above the target, so the controller moves the rate.
        let mut out = vec![0f32; 960];
        let mut published = Vec::new();
        for i in 0..200 {
            while p.slots() > 0 && (48_000 * 2 - p.slots()) < 9_600 * 2 {
                p.push(1).unwrap();
            }
            rt.fill(&mut out);
            published.push(f32::from_bits(cell.target.load(Ordering::Relaxed)));
            if i == 50 {
                cell.set_handle(0x1234);
            }
            tick(&tick_tx);
        }
        assert!(
            APPLIED.lock().unwrap().is_empty() || cell.handle.load(Ordering::Relaxed) != 0,
            "applied before the channel existed"
        );
        // Freed: nothing more is applied.
        cell.set_handle(0);
        rt.fill(&mut out);
        tick(&tick_tx);
        tick_tx.send(false).unwrap();
        let ctl_id = ctl.join().unwrap();
        let applied = APPLIED.lock().unwrap().clone();
        let moved: Vec<f32> = published.iter().copied().filter(|f| *f != 0.0).collect();
        assert!(!moved.is_empty(), "steer=freq never published a frequency");
        assert!(!applied.is_empty(), "the control plane never applied it");
        for (h, hz, id) in &applied {
            assert_eq!(*h, 0x1234, "applied to the wrong channel");
            assert_ne!(
                *id,
                std::thread::current().id(),
                "applied on the audio thread"
            );
            assert_eq!(*id, ctl_id);
            assert!((hz - 48_000.0).abs() < 48_000.0 * 2.1e-3, "{hz}");
            assert!(moved.contains(hz), "applied {hz}, never published");
        }
        // Once per change: no value applied twice in a row.
        assert!(applied.windows(2).all(|w| w[0].1 != w[1].1), "{applied:?}");
    }

    #[test]
    fn fill_decode_and_playing() {
        let (mut p, c) = rtrb::RingBuffer::<i32>::new(64);
        let stats = Arc::new(SharedStats::default());
        let mut rt = Realtime {
            ring: c,
            exact: true,
            chans: 2,
            scale: 1.0 / 8_388_608.0,
            started: false,
            stats: stats.clone(),
            steer: None,
            ptp: None,
            freq_set: 0.0,
            freq: Arc::new(FreqCell::default()),
        };
        let mut out = [9.0f32; 8];
        assert_eq!(rt.fill(&mut out), 0);
        for v in [8_388_607, -8_388_608, 1, -1, 5] {
            p.push(v).unwrap();
        }
        assert_eq!(rt.fill(&mut out), 4, "only whole frames");
        assert_eq!(
            out[..4],
            [
                8_388_607.0 / 8_388_608.0,
                -1.0,
                1.0 / 8_388_608.0,
                -1.0 / 8_388_608.0
            ]
        );
        assert_eq!(out[4], 9.0);
        rt.exact = false;
        let mut out = [9.0f32; 8];
        p.push(6).unwrap();
        assert_eq!(rt.fill(&mut out), 8);
        assert_eq!(
            out,
            [
                5.0 / 8_388_608.0,
                6.0 / 8_388_608.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0
            ]
        );
        assert_eq!(stats.underruns.load(Ordering::Relaxed), 1);
    }
}
