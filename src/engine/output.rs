//! Output sinks fed from the playout ring: ALSA, WAV file, null, and the
//! software sound device (`sim`, played only through the real-time playout thread).
//!
//! An output thread drains the `rtrb` ring of interleaved i32 samples (the
//! stream's native 16- or 24-bit range) into the sink until told to stop and
//! the ring is empty, so nothing already received is lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys::pcm::PcmDevice;

/// Where audio goes (`--output`).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSpec {
    /// An ALSA PCM device name, e.g. `default` or `hw:0,0`.
    Alsa(String),
    /// The software sound device (`playout::SimDevice`, Linux): consumes frames on
    /// `CLOCK_MONOTONIC` at the nominal rate × (1 + `ppm`·1e-6), through the same
    /// real-time playout path (period, buffer, target) as ALSA. `sim` = `sim:+100`.
    Sim {
        /// Crystal error of the simulated sound card, ppm (|ppm| ≤ [`SIM_MAX_PPM`]).
        ppm: f64,
    },
    /// A WAV file path.
    Wav(PathBuf),
    /// Discard (counts frames only).
    Null,
}

/// Largest crystal error accepted for `--output sim:PPM`, ppm (the rate
/// controller clamps its ratio at ±2000 ppm).
pub const SIM_MAX_PPM: f64 = 1000.0;

/// Crystal error of `--output sim` without a value, ppm.
pub const SIM_DEFAULT_PPM: f64 = 100.0;

/// Errors of the output side.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The `--output` value is not `alsa:DEV`, `wav:PATH` or `null`.
    #[error(
        "invalid output {0:?} in --output={0} (expected alsa:DEVICE, wav:PATH, sim[:PPM] or null)"
    )]
    BadSpec(String),
    /// The `PPM` of `--output sim:PPM` is not a number within ±[`SIM_MAX_PPM`].
    #[error(
        "invalid crystal error {ppm:?} ppm in --output=sim:{ppm} (expected sim:PPM with PPM a number within ±1000, e.g. sim:+100)"
    )]
    BadSimPpm {
        /// The text after `sim:`.
        ppm: String,
    },
    /// The sink exists only behind the real-time playout thread (`sim`), not as a plain output.
    #[error("output {0} plays only through the real-time playout thread")]
    NeedsPlayout(String),
    /// [`Playout::prepare`](super::playout::Playout::prepare) was given a plain output
    /// (`wav:`, `null`): only `alsa:` and `sim` run behind the real-time playout thread.
    #[error("output {0} is not a real-time output (expected alsa:DEVICE or sim[:PPM])")]
    NotRealTime(String),
    /// The ALSA device could not be opened or configured. The CLI adds its
    /// `--output wav:FILE` hint, the service the config field's name.
    #[error("cannot open ALSA device {device:?}: {reason}")]
    Alsa {
        /// Device name.
        device: String,
        /// The ALSA error.
        reason: String,
    },
    /// Writing the WAV file failed.
    #[error("WAV file {path}: {reason}")]
    Wav {
        /// File path.
        path: String,
        /// The error.
        reason: String,
    },
}

impl std::str::FromStr for OutputSpec {
    type Err = OutputError;
    fn from_str(s: &str) -> Result<OutputSpec, OutputError> {
        match s.split_once(':') {
            Some(("alsa", d)) if !d.is_empty() => Ok(OutputSpec::Alsa(d.to_string())),
            Some(("wav", p)) if !p.is_empty() => Ok(OutputSpec::Wav(PathBuf::from(p))),
            None if s == "null" => Ok(OutputSpec::Null),
            None if s == "alsa" => Ok(OutputSpec::Alsa("default".into())),
            None if s == "sim" => Ok(OutputSpec::Sim {
                ppm: SIM_DEFAULT_PPM,
            }),
            Some(("sim", p)) => match p.trim().parse::<f64>() {
                Ok(ppm) if ppm.is_finite() && ppm.abs() <= SIM_MAX_PPM => {
                    Ok(OutputSpec::Sim { ppm })
                }
                _ => Err(OutputError::BadSimPpm { ppm: p.to_string() }),
            },
            _ => Err(OutputError::BadSpec(s.to_string())),
        }
    }
}

impl std::fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputSpec::Alsa(d) => write!(f, "alsa:{d}"),
            OutputSpec::Wav(p) => write!(f, "wav:{}", p.display()),
            OutputSpec::Sim { ppm } => write!(f, "sim:{ppm:+}"),
            OutputSpec::Null => write!(f, "null"),
        }
    }
}

/// Format of the samples in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Channels per frame.
    pub channels: u16,
    /// Frames per second, Hz.
    pub rate: u32,
    /// Bits per sample of the i32 values: 16 or 24.
    pub bits: u16,
}

/// Counters of an output, shared with the status reporter.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// Frames written to the sink.
    pub frames: AtomicU64,
    /// Times the sink needed audio and the ring was empty (ALSA only).
    pub underruns: AtomicU64,
    /// Device xruns recovered (ALSA only).
    pub xruns: AtomicU64,
    /// Device delay in frames, last read (ALSA only).
    pub delay_frames: AtomicU64,
}

/// A running output thread.
pub struct Output {
    thread: Option<JoinHandle<Result<(), OutputError>>>,
    stop: Arc<AtomicBool>,
    /// Shared counters.
    pub stats: Arc<OutputStats>,
    /// What it writes to.
    pub spec: OutputSpec,
}

impl Output {
    /// Opens the sink (errors surface here, before any audio) and starts
    /// the thread draining `ring`.
    ///
    /// Errors: [`OutputError::Alsa`],
    /// [`OutputError::Wav`].
    pub fn start(
        spec: OutputSpec,
        fmt: PcmFormat,
        ring: rtrb::Consumer<i32>,
    ) -> Result<Output, OutputError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(OutputStats::default());
        let (st, sp) = (stop.clone(), stats.clone());
        let thread = match &spec {
            OutputSpec::Wav(path) => {
                let spec_w = hound::WavSpec {
                    channels: fmt.channels,
                    sample_rate: fmt.rate,
                    bits_per_sample: fmt.bits,
                    sample_format: hound::SampleFormat::Int,
                };
                let werr = |e: hound::Error| OutputError::Wav {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                };
                let mut w = hound::WavWriter::create(path, spec_w).map_err(werr)?;
                let path_s = path.display().to_string();
                std::thread::Builder::new()
                    .name("aes67-wav".into())
                    .spawn(move || {
                        let werr = |e: hound::Error| OutputError::Wav {
                            path: path_s.clone(),
                            reason: e.to_string(),
                        };
                        drain(ring, &st, &sp, fmt.channels as usize, |s| {
                            for &x in s {
                                w.write_sample(x).map_err(werr)?;
                            }
                            Ok(())
                        })?;
                        w.finalize().map_err(werr)
                    })
                    .expect("spawn output thread")
            }
            OutputSpec::Null => std::thread::Builder::new()
                .name("aes67-null".into())
                .spawn(move || drain(ring, &st, &sp, fmt.channels as usize, |_| Ok(())))
                .expect("spawn output thread"),
            OutputSpec::Sim { .. } => return Err(OutputError::NeedsPlayout(spec.to_string())),
            OutputSpec::Alsa(dev) => spawn_alsa(dev, fmt, ring, st, sp)?,
        };
        Ok(Output {
            thread: Some(thread),
            stop,
            stats,
            spec,
        })
    }

    /// The output thread has ended on its own (e.g. the ALSA device
    /// vanished); [`Self::finish`] then returns its error.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the thread to finish once the ring is empty, waits for it, and
    /// finalises the sink (a WAV header gets its lengths).
    pub fn finish(mut self) -> Result<(), OutputError> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(OutputError::Wav {
                path: self.spec.to_string(),
                reason: "output thread panicked".into(),
            }),
            None => Ok(()),
        }
    }
}

/// Drains the ring into `write` until `stop` is set and the ring is empty.
fn drain(
    mut ring: rtrb::Consumer<i32>,
    stop: &AtomicBool,
    stats: &OutputStats,
    channels: usize,
    mut write: impl FnMut(&[i32]) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let n = ring.slots() / channels * channels;
        if n == 0 {
            if stopping {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let chunk = ring.read_chunk(n).expect("n <= slots");
        let (a, b) = chunk.as_slices();
        write(a)?;
        write(b)?;
        chunk.commit_all();
        stats
            .frames
            .fetch_add((n / channels) as u64, Ordering::Relaxed);
    }
}

/// Period of the plain ALSA sink, ms.
const ALSA_PERIOD_MS: u32 = 5;
/// Buffer of the plain ALSA sink, periods.
const ALSA_BUFFER_PERIODS: usize = 8;

/// The plain ALSA sink: opens `device` for `fmt` ([`crate::sys::alsa::AlsaDevice`],
/// 5 ms periods) and starts a thread that plays the ring at the device's rate
/// (blocking writes). When the ring runs dry it writes silence and counts an
/// underrun; xruns are recovered (prepare, or resume after a suspend) and
/// counted. Drift compensation and the real-time thread are the playout
/// module's.
///
/// Errors: [`OutputError::Alsa`] when the device cannot be opened or does
/// not accept the format.
fn spawn_alsa(
    device: &str,
    fmt: PcmFormat,
    mut ring: rtrb::Consumer<i32>,
    stop: Arc<AtomicBool>,
    stats: Arc<OutputStats>,
) -> Result<JoinHandle<Result<(), OutputError>>, OutputError> {
    let aerr = |reason: String| OutputError::Alsa {
        device: device.to_string(),
        reason,
    };
    let ch = fmt.channels as usize;
    let period = (fmt.rate * ALSA_PERIOD_MS / 1000) as usize;
    let mut pcm = crate::sys::alsa::AlsaDevice::open(
        device,
        ch,
        fmt.rate,
        period,
        period * ALSA_BUFFER_PERIODS,
    )
    .map_err(|e| aerr(e.to_string()))?;
    let shift = 32 - fmt.bits as u32;
    let dev = device.to_string();
    Ok(std::thread::Builder::new()
        .name("aes67-alsa".into())
        .spawn(move || {
            let aerr = |e: crate::sys::pcm::DevError| OutputError::Alsa {
                device: dev.clone(),
                reason: format!("{e:?}"),
            };
            let period = pcm.period;
            let mut buf = vec![0i32; period * ch];
            let mut started = false;
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                let avail = ring.slots() / ch;
                if stopping && avail == 0 {
                    pcm.drain();
                    return Ok(());
                }
                let n = avail.min(period);
                if n > 0 {
                    let chunk = ring.read_chunk(n * ch).expect("n <= slots");
                    for (o, s) in buf.iter_mut().zip(chunk) {
                        *o = s << shift;
                    }
                    started = true;
                } else if started {
                    stats.underruns.fetch_add(1, Ordering::Relaxed);
                }
                buf[n * ch..].iter_mut().for_each(|x| *x = 0);
                if !started {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                if let Err(e) = pcm.write(&buf) {
                    if e == crate::sys::pcm::DevError::Xrun {
                        stats.xruns.fetch_add(1, Ordering::Relaxed);
                    }
                    pcm.recover(e).map_err(aerr)?;
                }
                if let Ok((_, d)) = pcm.avail_delay() {
                    stats.delay_frames.store(d.max(0) as u64, Ordering::Relaxed);
                }
                stats.frames.fetch_add(period as u64, Ordering::Relaxed);
            }
        })
        .expect("spawn ALSA thread"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parse_and_errors() {
        assert_eq!(
            "alsa:hw:0,0".parse::<OutputSpec>().unwrap(),
            OutputSpec::Alsa("hw:0,0".into())
        );
        assert_eq!(
            "wav:/tmp/x.wav".parse::<OutputSpec>().unwrap(),
            OutputSpec::Wav("/tmp/x.wav".into())
        );
        assert_eq!("null".parse::<OutputSpec>().unwrap(), OutputSpec::Null);
        let e = "mp3:x".parse::<OutputSpec>().unwrap_err().to_string();
        assert!(e.contains("--output=mp3:x"), "{e}");
    }

    #[test]
    fn sim_spec_parse_display_and_errors() {
        assert_eq!(
            "sim".parse::<OutputSpec>().unwrap(),
            OutputSpec::Sim { ppm: 100.0 }
        );
        assert_eq!(
            "sim:+100".parse::<OutputSpec>().unwrap(),
            OutputSpec::Sim { ppm: 100.0 }
        );
        assert_eq!(
            "sim:-12.5".parse::<OutputSpec>().unwrap(),
            OutputSpec::Sim { ppm: -12.5 }
        );
        assert_eq!(OutputSpec::Sim { ppm: 100.0 }.to_string(), "sim:+100");
        assert_eq!(OutputSpec::Sim { ppm: -12.5 }.to_string(), "sim:-12.5");
        assert_eq!(OutputSpec::Sim { ppm: 0.0 }.to_string(), "sim:+0");
        for bad in ["sim:abc", "sim:", "sim:1e9", "sim:+1001", "sim:NaN"] {
            let e = bad.parse::<OutputSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("--output={bad}")), "{bad}: {e}");
            assert!(e.contains("crystal error"), "{bad}: {e}");
        }
        // round trip
        let s = OutputSpec::Sim { ppm: -300.0 };
        assert_eq!(s.to_string().parse::<OutputSpec>().unwrap(), s);
        // not a plain sink
        let (_p, c) = rtrb::RingBuffer::new(16);
        let fmt = PcmFormat {
            channels: 2,
            rate: 48000,
            bits: 24,
        };
        let e = Output::start(OutputSpec::Sim { ppm: 0.0 }, fmt, c)
            .err()
            .unwrap();
        assert!(e.to_string().contains("sim:+0"), "{e}");
    }

    #[test]
    fn wav_output_keeps_every_sample_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.wav");
        let (mut p, c) = rtrb::RingBuffer::new(1 << 12);
        let fmt = PcmFormat {
            channels: 3,
            rate: 96000,
            bits: 24,
        };
        let out = Output::start(OutputSpec::Wav(path.clone()), fmt, c).unwrap();
        let mut sent = Vec::new();
        for i in 0..30_000i32 {
            let v = (i * 7919) % 0x7fffff - 0x400000;
            while p.push(v).is_err() {
                std::thread::yield_now();
            }
            sent.push(v);
        }
        drop(p);
        out.finish().unwrap();
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(
            (
                r.spec().channels,
                r.spec().sample_rate,
                r.spec().bits_per_sample
            ),
            (3, 96000, 24)
        );
        let got: Vec<i32> = r.into_samples::<i32>().map(|s| s.unwrap()).collect();
        assert_eq!(got, sent);
    }
}
