//! Audio sources of the RTP sender, behind one trait ([`AudioSource`]):
//! a test tone ([`ToneSource`]), a decoded file ([`open_file`]: WAV, FLAC,
//! MP3, Ogg Vorbis through symphonia) and raw PCM on stdin
//! ([`open_stdin`]).
//!
//! File and stdin audio is decoded (and resampled with rubato's FFT
//! resampler when its rate is not the stream's) by a feeder thread into a
//! lock-free ring ([`RingSource`]); the sender's pacing thread only pops from
//! the ring, so it never allocates, locks or blocks. The ring is filled
//! before sending starts; when it runs dry (the source stalled or ended) the
//! sender sends silence and counts it, and never catches up in a burst.
//!
//! Samples are interleaved `i32` in the range of the stream's encoding
//! (24-bit: ±2^23, 16-bit: ±2^15), the convention of [`crate::media::rtp`].
//! Integer input of the stream's width or narrower, at the stream's rate,
//! goes through bit-exactly.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::media::tone::{self, Sine};

/// Something the sender pulls audio from, once per packet, on its pacing
/// thread. Implementations never block, lock or allocate in [`Self::pull`].
pub trait AudioSource: Send {
    /// Writes up to `out.len() / channels` interleaved frames into `out`
    /// (in the encoding's range, see the module doc) and returns how many
    /// frames it wrote; the sender fills the rest with silence.
    fn pull(&mut self, out: &mut [i32]) -> usize;
    /// `true` once the source has ended for good (end of file without
    /// `--loop`, stdin closed, and the ring drained).
    fn ended(&self) -> bool;
    /// The sender skipped `frames` of media time without sending them (a pacing
    /// stall beyond its `max_late`, a clock step). A live source (capture) drops
    /// the audio of that span now, so the stream stays at its latency instead of
    /// carrying the backlog until the capture loop's own recovery; a file, stdin
    /// or the tone keep their audio (nothing lost, the default).
    fn skip(&mut self, frames: usize) {
        let _ = frames;
    }
}

/// The sine test tone (always has audio).
pub struct ToneSource {
    sine: Sine,
    channels: usize,
}

impl ToneSource {
    /// A `freq_hz` Hz sine at `level_dbfs` for `channels` channels of
    /// `bits` (16/24) at `rate` Hz.
    pub fn new(rate: u32, channels: usize, bits: u32, freq_hz: f64, level_dbfs: f64) -> ToneSource {
        ToneSource {
            sine: Sine::with_level(rate, freq_hz, tone::dbfs_to_linear(level_dbfs), bits),
            channels,
        }
    }
}

impl AudioSource for ToneSource {
    fn pull(&mut self, out: &mut [i32]) -> usize {
        self.sine.fill(out, self.channels);
        out.len() / self.channels.max(1)
    }
    fn ended(&self) -> bool {
        false
    }
}

/// The consumer end of a feeder thread's ring. Dropping it stops the feeder.
pub struct RingSource {
    ring: rtrb::Consumer<i32>,
    channels: usize,
    done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
    /// Join the feeder on drop (not for stdin: a read may block forever;
    /// that feeder is left to end with the process).
    join_on_drop: bool,
}

impl RingSource {
    /// The feeder's error, if it stopped on one (e.g. a corrupt file).
    /// Takes a lock: not for the pacing thread.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|g| g.clone())
    }
    /// A shared flag that reads `true` once the feeder has ended.
    pub fn done_flag(&self) -> Arc<AtomicBool> {
        self.done.clone()
    }
}

/// Pops as many whole frames of `ch` interleaved samples as `ring` holds, up to
/// what fits in `out`, into the start of `out`; returns the frames popped.
pub(crate) fn pop_frames(ring: &mut rtrb::Consumer<i32>, ch: usize, out: &mut [i32]) -> usize {
    let frames = (ring.slots() / ch).min(out.len() / ch);
    if frames == 0 {
        return 0;
    }
    if let Ok(chunk) = ring.read_chunk(frames * ch) {
        let (a, b) = chunk.as_slices();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        chunk.commit_all();
    }
    frames
}

impl AudioSource for RingSource {
    fn pull(&mut self, out: &mut [i32]) -> usize {
        pop_frames(&mut self.ring, self.channels, out)
    }
    fn ended(&self) -> bool {
        self.done.load(Ordering::Acquire) && self.ring.slots() < self.channels
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && self.join_on_drop
        {
            let _ = t.join();
        }
    }
}

/// Raw PCM sample formats on stdin (little-endian, interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit.
    S16Le,
    /// Signed 24-bit in 3 bytes.
    S24Le,
    /// Signed 32-bit.
    S32Le,
    /// 32-bit float, ±1.0 full scale.
    F32Le,
}

from_names!(RawFormat, "format", {
    "s16le" => S16Le,
    "s24le" => S24Le,
    "s32le" => S32Le,
    "f32le" => F32Le,
});

impl RawFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            RawFormat::S16Le => 2,
            RawFormat::S24Le => 3,
            RawFormat::S32Le | RawFormat::F32Le => 4,
        }
    }
    /// One sample as a fraction of full scale (±1.0).
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            RawFormat::S16Le => i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0,
            RawFormat::S24Le => {
                (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f64 / 8_388_608.0
            }
            RawFormat::S32Le => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 / 2_147_483_648.0
            }
            RawFormat::F32Le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        }
    }
}

/// Errors opening a source; each names the field (`--source`, `--format`,
/// `--rate`, `--channels`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The `--source` value is not `tone[:HZ]`, `file:PATH`, `alsa:DEVICE` or `stdin`.
    #[error("{0} in --source")]
    Spec(String),
    /// The file cannot be opened or decoded.
    #[error("{path}: {why} in --source=file:{path}")]
    File {
        /// The path as given.
        path: String,
        /// What failed.
        why: String,
    },
    /// The capture device does not open, or refuses the stream's format.
    #[error("{why} in {field}")]
    Capture {
        /// What failed, naming the device.
        why: String,
        /// `--source=alsa:DEVICE`, or the stream's `ch=` / `rate=` it refused.
        field: String,
    },
    /// A stdin parameter is out of range.
    #[error("{what} in {field}")]
    Param {
        /// What is wrong.
        what: String,
        /// `--rate` or `--channels`.
        field: &'static str,
    },
}

/// Where a sender's audio comes from (`--source`).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `tone[:HZ]` (default 1000 Hz).
    Tone(f64),
    /// `file:PATH`.
    File(PathBuf),
    /// `stdin`.
    Stdin,
    /// `alsa:DEVICE`: ALSA capture, steered onto the media clock
    /// ([`crate::engine::capture`]).
    Alsa(String),
}

impl std::str::FromStr for SourceSpec {
    type Err = SourceError;
    /// `tone`, `tone:HZ` (1-20000 Hz), `file:PATH`, `stdin`, `alsa:DEVICE`.
    fn from_str(s: &str) -> Result<SourceSpec, SourceError> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("tone", None) => Ok(SourceSpec::Tone(1000.0)),
            ("tone", Some(hz)) => match hz.parse::<f64>() {
                Ok(f) if (1.0..=20_000.0).contains(&f) => Ok(SourceSpec::Tone(f)),
                _ => Err(SourceError::Spec(format!(
                    "invalid tone frequency {hz:?} (allowed 1-20000 Hz)"
                ))),
            },
            ("file", Some(p)) if !p.is_empty() => Ok(SourceSpec::File(p.into())),
            ("stdin", None) => Ok(SourceSpec::Stdin),
            ("alsa", Some(d)) if !d.is_empty() => Ok(SourceSpec::Alsa(d.into())),
            _ => Err(SourceError::Spec(format!(
                "invalid source {s:?} (expected tone[:HZ], file:PATH, alsa:DEVICE or stdin)"
            ))),
        }
    }
}

/// What the feeder produces: the stream's format.
#[derive(Debug, Clone, Copy)]
pub struct OutFormat {
    /// Stream rate, Hz.
    pub rate: u32,
    /// Stream channels.
    pub channels: usize,
    /// Encoding bits (16 or 24).
    pub bits: u32,
    /// Ring capacity, frames (also the prefill before sending starts).
    pub ring_frames: usize,
}

/// Converts input (interleaved, ±1.0 as f64, any channel count and rate)
/// to the stream's format and pushes it into the ring.
struct Pipe {
    out: OutFormat,
    in_ch: usize,
    rs: Option<Resample>,
    tmp: Vec<i32>,
    prod: rtrb::Producer<i32>,
    stop: Arc<AtomicBool>,
}

struct Resample {
    fft: Fft<f64>,
    /// Interleaved input waiting for a whole chunk (stream channels).
    pending: Vec<f64>,
    outbuf: Vec<f64>,
    /// Output frames still to drop (the resampler's delay).
    skip: usize,
}

impl Pipe {
    fn new(
        out: OutFormat,
        in_ch: usize,
        in_rate: u32,
        prod: rtrb::Producer<i32>,
        stop: Arc<AtomicBool>,
    ) -> Result<Pipe, String> {
        let rs = if in_rate != out.rate {
            let fft = Fft::<f64>::new(
                in_rate as usize,
                out.rate as usize,
                1024,
                out.channels,
                FixedSync::Input,
            )
            .map_err(|e| format!("resampler {in_rate}->{} Hz: {e}", out.rate))?;
            let skip = fft.output_delay();
            let outbuf = vec![0.0; fft.output_frames_max() * out.channels];
            Some(Resample {
                fft,
                pending: Vec::new(),
                outbuf,
                skip,
            })
        } else {
            None
        };
        Ok(Pipe {
            out,
            in_ch,
            rs,
            tmp: Vec::new(),
            prod,
            stop,
        })
    }

    /// Maps channels: output channel c takes input channel c; a mono input
    /// feeds every channel; missing channels are silent.
    fn map(&self, input: &[f64], dst: &mut Vec<f64>) {
        let (ic, oc) = (self.in_ch, self.out.channels);
        for f in input.chunks_exact(ic) {
            for c in 0..oc {
                dst.push(if c < ic {
                    f[c]
                } else if ic == 1 {
                    f[0]
                } else {
                    0.0
                });
            }
        }
    }

    /// Pushes interleaved input frames (`in_ch` channels, ±1.0).
    /// Returns `false` when stopped.
    fn push(&mut self, input: &[f64]) -> bool {
        let mut mapped = Vec::with_capacity(input.len() / self.in_ch * self.out.channels);
        self.map(input, &mut mapped);
        if self.rs.is_none() {
            return self.emit(&mapped);
        }
        let ch = self.out.channels;
        let mut rs = self.rs.take().expect("checked");
        rs.pending.extend_from_slice(&mapped);
        let mut ok = true;
        loop {
            let need = rs.fft.input_frames_next();
            if rs.pending.len() < need * ch {
                break;
            }
            let produced = Self::run(&mut rs, need, None);
            let skip = rs.skip.min(produced);
            rs.skip -= skip;
            let out: Vec<f64> = rs.outbuf[skip * ch..produced * ch].to_vec();
            rs.pending.drain(..need * ch);
            if !self.emit(&out) {
                ok = false;
                break;
            }
        }
        self.rs = Some(rs);
        ok
    }

    fn run(rs: &mut Resample, need: usize, partial: Option<usize>) -> usize {
        let ch = rs.outbuf.len() / rs.fft.output_frames_max().max(1);
        let mut input = rs.pending[..(partial.unwrap_or(need) * ch)].to_vec();
        input.resize(need * ch, 0.0);
        let max = rs.fft.output_frames_max();
        let (Ok(a), Ok(mut b)) = (
            InterleavedSlice::new(&input[..], ch, need),
            InterleavedSlice::new_mut(&mut rs.outbuf[..], ch, max),
        ) else {
            return 0;
        };
        rs.fft
            .process_into_buffer(&a, &mut b, None)
            .map(|(_, o)| o)
            .unwrap_or(0)
    }

    /// At the end of the input: flushes the resampler's tail.
    fn flush(&mut self) {
        let ch = self.out.channels;
        if let Some(mut rs) = self.rs.take() {
            // The rest of the input, then one chunk of silence for the delay.
            for _ in 0..2 {
                let need = rs.fft.input_frames_next();
                let have = (rs.pending.len() / ch).min(need);
                let produced = Self::run(&mut rs, need, Some(have));
                rs.pending.drain(..have * ch);
                let skip = rs.skip.min(produced);
                rs.skip -= skip;
                let out: Vec<f64> = rs.outbuf[skip * ch..produced * ch].to_vec();
                if !self.emit(&out) {
                    return;
                }
            }
        }
    }

    /// Converts to the encoding's range (rounded, clipped) and pushes into
    /// the ring, waiting while it is full. `false` when stopped.
    fn emit(&mut self, frames: &[f64]) -> bool {
        let fs = (1i64 << (self.out.bits - 1)) as f64;
        let (lo, hi) = (-fs, fs - 1.0);
        self.tmp.clear();
        self.tmp
            .extend(frames.iter().map(|v| (v * fs).round().clamp(lo, hi) as i32));
        let mut off = 0;
        while off < self.tmp.len() {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let n = self.prod.slots().min(self.tmp.len() - off);
            if n == 0 {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            if let Ok(w) = self.prod.write_chunk_uninit(n) {
                let _ = w.fill_from_iter(self.tmp[off..off + n].iter().copied());
            }
            off += n;
        }
        true
    }
}

/// Starts a feeder thread running `body` and waits until the ring holds
/// its prefill (`out.ring_frames`, or the feeder ended; at most 5 s).
/// `body` gets the ring's producer (interleaved `i32` in the encoding's
/// range) and a stop flag set when the [`RingSource`] is dropped; it
/// returns an error text or (). Used by the file and stdin sources here and
/// by the BASS add-on's output (a BASS channel read by `BASS_ChannelGetData`).
///
/// Errors: the thread could not be spawned.
pub fn spawn_feeder(
    out: OutFormat,
    name: &str,
    join_on_drop: bool,
    body: impl FnOnce(rtrb::Producer<i32>, Arc<AtomicBool>) -> Result<(), String> + Send + 'static,
) -> std::io::Result<RingSource> {
    let cap = out.ring_frames.max(64) * out.channels;
    let (prod, cons) = rtrb::RingBuffer::new(cap);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let error = Arc::new(std::sync::Mutex::new(None));
    let (s2, d2, e2) = (stop.clone(), done.clone(), error.clone());
    let thread = std::thread::Builder::new()
        .name(format!("aes67-src-{name}"))
        .spawn(move || {
            if let Err(e) = body(prod, s2)
                && let Ok(mut g) = e2.lock()
            {
                *g = Some(e);
            }
            d2.store(true, Ordering::Release);
        })?;
    let src = RingSource {
        ring: cons,
        channels: out.channels,
        done,
        stop,
        error,
        thread: Some(thread),
        join_on_drop,
    };
    // Prefill: wait for a full ring (or the end) for at most 5 s.
    let t = Instant::now();
    while src.ring.slots() + out.channels <= cap
        && !src.done.load(Ordering::Acquire)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(src)
}

/// Opens a decoder for `path`: (format reader, decoder, track id, rate, channels).
type Opened = (
    Box<dyn symphonia::core::formats::FormatReader>,
    Box<dyn symphonia::core::codecs::Decoder>,
    u32,
    u32,
    usize,
);

fn open_decoder(path: &Path) -> Result<Opened, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mss = MediaSourceStream::new(Box::new(f), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("not a supported audio file (WAV, FLAC, MP3, Ogg): {e}"))?;
    let format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| "no audio track".to_string())?;
    let params = &track.codec_params;
    let rate = params
        .sample_rate
        .ok_or_else(|| "unknown sample rate".to_string())?;
    let channels = params.channels.map(|c| c.count()).unwrap_or(0);
    if channels == 0 {
        return Err("unknown channel count".into());
    }
    let id = track.id;
    let dec = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| format!("no decoder: {e}"))?;
    Ok((format, dec, id, rate, channels))
}

/// Facts about an opened file, for the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's sample rate, Hz.
    pub rate: u32,
    /// The file's channels.
    pub channels: usize,
}

/// Opens `file:PATH`: probes it now (errors name the path), then decodes it
/// on a feeder thread into the stream's format; `looped` starts over at the
/// end. Returns the source and the file's own rate and channels.
///
/// Errors: [`SourceError::File`] (missing, unsupported or undecodable file).
pub fn open_file(
    path: &Path,
    out: OutFormat,
    looped: bool,
) -> Result<(RingSource, FileInfo), SourceError> {
    let ferr = |why: String| SourceError::File {
        path: path.display().to_string(),
        why,
    };
    let (_, _, _, rate, channels) = open_decoder(path).map_err(ferr)?;
    let p = path.to_path_buf();
    let src = spawn_feeder(out, "file", true, move |prod, stop| {
        let mut pipe = Pipe::new(out, channels, rate, prod, stop.clone())?;
        loop {
            let (mut format, mut dec, id, _, _) = open_decoder(&p)?;
            let mut sbuf: Option<SampleBuffer<i32>> = None;
            let mut any = false;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let packet = match format.next_packet() {
                    Ok(p) => p,
                    Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break;
                    }
                    Err(SymError::ResetRequired) => break,
                    Err(e) => return Err(format!("{}: {e}", p.display())),
                };
                if packet.track_id() != id {
                    continue;
                }
                let decoded = match dec.decode(&packet) {
                    Ok(d) => d,
                    Err(SymError::DecodeError(_)) => continue, // skip a corrupt frame
                    Err(e) => return Err(format!("{}: {e}", p.display())),
                };
                let need = decoded.capacity() as u64;
                if sbuf.as_ref().is_none_or(|b| (b.capacity() as u64) < need) {
                    sbuf = Some(SampleBuffer::new(need, *decoded.spec()));
                }
                let b = sbuf.as_mut().expect("set above");
                b.copy_interleaved_ref(decoded);
                let v: Vec<f64> = b
                    .samples()
                    .iter()
                    .map(|&s| s as f64 / 2_147_483_648.0)
                    .collect();
                any = true;
                if !pipe.push(&v) {
                    return Ok(());
                }
            }
            if !looped || !any {
                break;
            }
        }
        pipe.flush();
        Ok(())
    })
    .map_err(|e| ferr(e.to_string()))?;
    Ok((src, FileInfo { rate, channels }))
}

/// Opens raw PCM on stdin (`format`, `rate` Hz, `channels`), converted to
/// the stream's format on a feeder thread. The end of stdin ends the source.
///
/// Errors: [`SourceError::Param`] for a rate outside 8000-192000 Hz or
/// channels outside 1-64.
pub fn open_stdin(
    format: RawFormat,
    rate: u32,
    channels: usize,
    out: OutFormat,
) -> Result<RingSource, SourceError> {
    if !(8_000..=192_000).contains(&rate) {
        return Err(SourceError::Param {
            what: format!("invalid rate {rate} (allowed 8000-192000 Hz)"),
            field: "--rate",
        });
    }
    if !(1..=64).contains(&channels) {
        return Err(SourceError::Param {
            what: format!("invalid channel count {channels} (allowed 1-64)"),
            field: "--channels",
        });
    }
    spawn_feeder(out, "stdin", false, move |prod, stop| {
        let mut pipe = Pipe::new(out, channels, rate, prod, stop.clone())?;
        let frame = format.bytes() * channels;
        let mut buf = vec![0u8; frame * 256];
        let mut have = 0usize;
        let mut stdin = std::io::stdin().lock();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let n = match stdin.read(&mut buf[have..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("stdin: {e}")),
            };
            have += n;
            let whole = have / frame * frame;
            let v: Vec<f64> = buf[..whole]
                .chunks_exact(format.bytes())
                .map(|b| format.decode(b))
                .collect();
            buf.copy_within(whole..have, 0);
            have -= whole;
            if !pipe.push(&v) {
                return Ok(());
            }
        }
        pipe.flush();
        Ok(())
    })
    .map_err(|e| SourceError::Spec(format!("stdin feeder: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts a feeder's frames, for tests: how many frames `src` yields until
    /// it ends (at most `limit`), pulling `chunk` frames at a time.
    fn drain_frames(
        src: &mut dyn AudioSource,
        channels: usize,
        chunk: usize,
        limit: usize,
    ) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = vec![0i32; chunk * channels];
        let t = Instant::now();
        while out.len() < limit * channels && t.elapsed() < Duration::from_secs(20) {
            let n = src.pull(&mut buf);
            out.extend_from_slice(&buf[..n * channels]);
            if n == 0 {
                if src.ended() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        out
    }

    fn wav(path: &Path, s: &[i32], ch: u16, rate: u32, bits: u16) {
        let spec = hound::WavSpec {
            channels: ch,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &v in s {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
    }

    fn ramp(n: usize, bits: u32) -> Vec<i32> {
        let m = 1i64 << (bits - 1);
        (0..n)
            .map(|i| ((i as i64 * 7919 + 13) % (2 * m) - m) as i32)
            .collect()
    }

    fn fmt(rate: u32, channels: usize, bits: u32) -> OutFormat {
        OutFormat {
            rate,
            channels,
            bits,
            ring_frames: 4800,
        }
    }

    #[test]
    fn spec_parses_and_errors_name_the_field() {
        assert_eq!(
            "tone".parse::<SourceSpec>().unwrap(),
            SourceSpec::Tone(1000.0)
        );
        assert_eq!(
            "tone:440".parse::<SourceSpec>().unwrap(),
            SourceSpec::Tone(440.0)
        );
        assert_eq!(
            "file:/a/b.wav".parse::<SourceSpec>().unwrap(),
            SourceSpec::File("/a/b.wav".into())
        );
        assert_eq!("stdin".parse::<SourceSpec>().unwrap(), SourceSpec::Stdin);
        assert_eq!(
            "alsa:hw:Loopback,1,0".parse::<SourceSpec>().unwrap(),
            SourceSpec::Alsa("hw:Loopback,1,0".into())
        );
        for bad in ["tone:0", "tone:x", "file:", "mic", "alsa:", "alsa"] {
            let e = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(e.ends_with("in --source"), "{bad}: {e}");
        }
        assert_eq!("s24le".parse::<RawFormat>(), Ok(RawFormat::S24Le));
        assert!("s8".parse::<RawFormat>().unwrap_err().contains("format"));
    }

    #[test]
    fn wav_24_and_16_bit_go_through_bit_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, ch) in [(24u32, 2usize), (16, 8)] {
            let p = dir.path().join(format!("r{bits}.wav"));
            let s = ramp(3000 * ch, bits);
            wav(&p, &s, ch as u16, 48_000, bits as u16);
            let (mut src, info) = open_file(&p, fmt(48_000, ch, bits), false).unwrap();
            assert_eq!(
                info,
                FileInfo {
                    rate: 48_000,
                    channels: ch
                }
            );
            let got = drain_frames(&mut src, ch, 48, 10_000);
            assert_eq!(got.len(), s.len());
            assert!(got == s, "{bits}-bit samples differ");
            assert!(src.ended());
        }
    }

    #[test]
    fn a_16_bit_file_into_l24_is_shifted_exactly_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let s = ramp(1000, 16);
        wav(&p, &s, 1, 48_000, 16);
        let (mut src, _) = open_file(&p, fmt(48_000, 2, 24), true).unwrap();
        let got = drain_frames(&mut src, 2, 48, 2500);
        assert!(got.len() >= 5000, "{}", got.len());
        for (i, f) in got.chunks(2).enumerate() {
            let want = s[i % 1000] << 8;
            assert_eq!((f[0], f[1]), (want, want), "frame {i}");
        }
        assert!(!src.ended());
    }

    #[test]
    fn a_44k1_file_is_resampled_to_48k() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        // 1 s of a 1 kHz sine at 44.1 kHz.
        let s: Vec<i32> = (0..44_100)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 44_100.0).sin() * 16384.0) as i32
            })
            .collect();
        wav(&p, &s, 1, 44_100, 16);
        let (mut src, info) = open_file(&p, fmt(48_000, 1, 16), false).unwrap();
        assert_eq!(info.rate, 44_100);
        let got = drain_frames(&mut src, 1, 48, 100_000);
        // 48000 frames, and the flushed tail (at most two resampler chunks).
        assert!(
            (48_000..=48_000 + 2400).contains(&got.len()),
            "{}",
            got.len()
        );
        // Still a 1 kHz sine of the same amplitude: count zero crossings
        // and the peak in the steady middle.
        let mid = &got[4800..43_200];
        let crossings = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((1598..=1602).contains(&crossings), "{crossings}");
        let peak = mid.iter().map(|v| v.abs()).max().unwrap();
        assert!((16_200..=16_500).contains(&peak), "{peak}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = open_file(Path::new("/nonexistent/x.wav"), fmt(48_000, 2, 24), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--source=file:/nonexistent/x.wav"), "{e}");
    }

    #[test]
    fn raw_formats_decode_to_full_scale_fractions() {
        assert_eq!(RawFormat::S16Le.decode(&[0x00, 0x80]), -1.0);
        assert_eq!(
            RawFormat::S24Le.decode(&[0xff, 0xff, 0x7f]),
            8_388_607.0 / 8_388_608.0
        );
        assert_eq!(RawFormat::S24Le.decode(&[0x00, 0x00, 0x80]), -1.0);
        assert_eq!(RawFormat::S32Le.decode(&[0, 0, 0, 0x40]), 0.5);
        assert_eq!(RawFormat::F32Le.decode(&0.25f32.to_le_bytes()), 0.25);
    }
}
