//! Clock-steered playout: a real-time thread that drains the receiver's ring
//! (`rtrb::Consumer<i32>`, interleaved, samples in the stream's native 24- or 16-bit
//! range), resamples with the steered sinc resampler under the rate controller
//! (the shared sans-IO steering core [`crate::rate::steer::SteerCore`], also used
//! by the BASS add-on's STREAMPROC), and writes one device
//! period at a time to an ALSA PCM ([`AlsaDevice`]) or to a software-clocked device
//! ([`SimDevice`], for tests and as a clocked null sink).
//!
//! Real-time rules: after start-up the loop never allocates, locks or logs. Events
//! (xruns, suspend, underruns, resyncs) go through a lock-free ring to a logger thread
//! that prints them; statistics are published through atomics ([`PlayoutStats`]).
//! The thread asks for `SCHED_FIFO` (thread-priority crate) at the configured
//! priority; if that is denied it says so once (stderr and [`StatsSnapshot::rt`]) and
//! keeps running. `mlockall(MCL_CURRENT|MCL_FUTURE)` is called at start when asked.
//!
//! Recovery follows ALSA practice (cpal's loop, alsa-lib `snd_pcm_recover`):
//! `EPIPE` (xrun) → `prepare`, rebuffer, restart by writing past the start threshold;
//! `ESTRPIPE` (suspend) → `resume` until it stops answering `EAGAIN`, else `prepare`.
//! Any other error (a vanished device answers `ENODEV` to every call) counts in
//! [`StatsSnapshot::device_errors`] (the errno in `last_device_error`), then `prepare`;
//! while that fails the thread sleeps 50 ms per try, so a dead device never spins a
//! `SCHED_FIFO` thread. Reopening the device is the owner's job: the service's supervisor
//! stops a playout whose device keeps failing and restarts it with back-off.

pub use super::device::SimDevice;
pub use super::tone::{ToneGenerator, ToneSpec};
pub use crate::sys::alsa::AlsaDevice;
pub use crate::sys::pcm::{DevError, PcmDevice, SampleFormat};

use crate::rate::resampler::Quality;
use crate::rate::steer::{RingSource, SteerCore};
use crate::rate::{Observation, RateConfig};
use crate::units::{MonoNs, Nanos, Ppb};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sentinel in [`MediaRate`]: no PTP frequency known (holdover).
const NO_PPB: i64 = i64::MIN;

/// Where the media clock's rate against `CLOCK_MONOTONIC` comes from: written by the
/// PTP side (ppb × 1000 stored as integer), read by the playout thread lock-free.
#[derive(Debug)]
pub struct MediaRate(AtomicI64);

impl MediaRate {
    /// A free-running media clock on `CLOCK_MONOTONIC` (0 ppb).
    pub fn free_running() -> Arc<MediaRate> {
        Arc::new(MediaRate(AtomicI64::new(0)))
    }
    /// Sets the media clock rate (ppb, positive = media clock faster than monotonic),
    /// e.g. the PTP servo frequency when locked; `None` when PTP is lost.
    pub fn set(&self, ppb: Option<Ppb>) {
        self.0.store(
            ppb.map(|p| (p.as_ppb() * 1000.0) as i64).unwrap_or(NO_PPB),
            Ordering::Relaxed,
        );
    }
    /// The current value.
    pub fn get(&self) -> Option<Ppb> {
        match self.0.load(Ordering::Relaxed) {
            NO_PPB => None,
            v => Some(Ppb::from_ppb(v as f64 / 1000.0)),
        }
    }
}

/// Start and end hooks run on the real-time thread (see [`PlayoutConfig::rt_hooks`]).
pub type RtHooks = (fn(), fn());

/// Playout configuration.
#[derive(Debug, Clone)]
pub struct PlayoutConfig {
    /// Interleaved channels (1..=64).
    pub channels: usize,
    /// Nominal sample rate of stream and device (frames/s).
    pub sample_rate: u32,
    /// Device period (frames): one resampler chunk per period.
    pub period_frames: usize,
    /// Bits of the input samples' native range (24 for L24, 16 for L16).
    pub input_bits: u32,
    /// Target total latency, ring plus device (ns).
    pub target_latency: Nanos,
    /// `SCHED_FIFO` priority 1..=99; `None` leaves the thread's policy alone.
    pub rt_priority: Option<u8>,
    /// Call `mlockall(MCL_CURRENT | MCL_FUTURE)` at start.
    pub lock_memory: bool,
    /// Resampler quality.
    pub quality: Quality,
    /// Rate controller tuning override (defaults from [`RateConfig::new`]).
    pub rate: Option<RateConfig>,
    /// Called on the real-time thread just before the loop starts and after it ends
    /// (tests use it to mark the thread, e.g. for a counting allocator).
    pub rt_hooks: Option<RtHooks>,
}

impl PlayoutConfig {
    /// Defaults: 24-bit input, 10 ms period at `sample_rate`, 50 ms target latency,
    /// SCHED_FIFO priority 70, mlockall, high quality.
    pub fn new(channels: usize, sample_rate: u32) -> PlayoutConfig {
        PlayoutConfig {
            channels,
            sample_rate,
            period_frames: sample_rate as usize / 100,
            input_bits: 24,
            target_latency: Nanos::from_ms(50),
            rt_priority: Some(70),
            lock_memory: true,
            quality: Quality::High,
            rate: None,
            rt_hooks: None,
        }
    }
}

/// Real-time scheduling outcome, as stored in [`PlayoutStats::rt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RtStatus {
    /// Not asked for.
    NotRequested,
    /// `SCHED_FIFO` granted.
    Fifo,
    /// `SCHED_FIFO` denied (no CAP_SYS_NICE / RLIMIT_RTPRIO): running at normal priority.
    Denied,
}

/// Live statistics, written by the playout thread with relaxed atomics.
#[derive(Debug, Default)]
pub struct PlayoutStats {
    ratio_ppb_milli: AtomicI64,
    ff_ppb_milli: AtomicI64,
    device_delay_us: AtomicI64,
    fill_us: AtomicI64,
    latency_error_us: AtomicI64,
    filtered_error_us: AtomicI64,
    xruns: AtomicU64,
    suspends: AtomicU64,
    ring_underruns: AtomicU64,
    resyncs: AtomicU64,
    rate_resets: AtomicU64,
    periods: AtomicU64,
    device_errors: AtomicU64,
    last_device_error: AtomicI32,
    max_cycle_us: AtomicI64,
    rt: AtomicU8,
    running: AtomicBool,
}

/// A copy of [`PlayoutStats`] for the status line and JSON.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StatsSnapshot {
    /// Resampling ratio − 1 (ppm).
    pub ratio_ppm: f64,
    /// Feed-forward part of the ratio (ppm).
    pub feed_forward_ppm: f64,
    /// Device delay at the last period (ms).
    pub device_delay_ms: f64,
    /// Ring fill at the last period (ms).
    pub fill_ms: f64,
    /// Total latency error against the target (ms), raw and low-passed.
    pub latency_error_ms: f64,
    /// Low-passed latency error (ms).
    pub filtered_error_ms: f64,
    /// ALSA xruns (EPIPE) recovered.
    pub xruns: u64,
    /// Suspends (ESTRPIPE) recovered.
    pub suspends: u64,
    /// Periods played with the ring short of data (padded with silence).
    pub ring_underruns: u64,
    /// Resyncs (drop/insert) asked by the controller.
    pub resyncs: u64,
    /// Re-primes of the rate loop (excursions held past the bound, saturation at the
    /// clamp for more than 3 s, ring underruns, device xruns): see docs/rate-playout.md.
    pub rate_resets: u64,
    /// Periods written.
    pub periods: u64,
    /// Other device errors (e.g. `ENODEV` from a vanished device), each
    /// followed by a 50 ms pause before the next try.
    pub device_errors: u64,
    /// The last of those: negative errno (`-19` = `ENODEV`), 0 if none.
    pub last_device_error: i32,
    /// Longest time spent resampling one period (µs): the CPU headroom check.
    pub max_cycle_us: i64,
    /// Real-time scheduling outcome.
    pub rt: RtStatus,
    /// Whether the loop is past priming and playing the stream.
    pub running: bool,
}

impl PlayoutStats {
    /// Reads all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicI64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            ratio_ppm: l(&self.ratio_ppb_milli) as f64 * 1e-6,
            feed_forward_ppm: l(&self.ff_ppb_milli) as f64 * 1e-6,
            device_delay_ms: l(&self.device_delay_us) as f64 * 1e-3,
            fill_ms: l(&self.fill_us) as f64 * 1e-3,
            latency_error_ms: l(&self.latency_error_us) as f64 * 1e-3,
            filtered_error_ms: l(&self.filtered_error_us) as f64 * 1e-3,
            xruns: self.xruns.load(Ordering::Relaxed),
            suspends: self.suspends.load(Ordering::Relaxed),
            ring_underruns: self.ring_underruns.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            rate_resets: self.rate_resets.load(Ordering::Relaxed),
            periods: self.periods.load(Ordering::Relaxed),
            device_errors: self.device_errors.load(Ordering::Relaxed),
            last_device_error: self.last_device_error.load(Ordering::Relaxed),
            max_cycle_us: self.max_cycle_us.load(Ordering::Relaxed),
            rt: match self.rt.load(Ordering::Relaxed) {
                1 => RtStatus::Fifo,
                2 => RtStatus::Denied,
                _ => RtStatus::NotRequested,
            },
            running: self.running.load(Ordering::Relaxed),
        }
    }
}

impl StatsSnapshot {
    /// One status line: `ratio +1000.3 ppm ff +999.8 ppm delay 150.0 ms fill 90.1 ms err +0.2 ms xruns 0 ...`.
    pub fn status_line(&self) -> String {
        format!(
            "ratio {:+.1} ppm ff {:+.1} ppm delay {:.1} ms fill {:.1} ms err {:+.2} ms xruns {} underruns {} resyncs {} resets {} cycle {} us rt {:?}",
            self.ratio_ppm,
            self.feed_forward_ppm,
            self.device_delay_ms,
            self.fill_ms,
            self.filtered_error_ms,
            self.xruns,
            self.ring_underruns,
            self.resyncs,
            self.rate_resets,
            self.max_cycle_us,
            self.rt
        )
    }
}

/// Events the real-time thread reports; printed by the logger thread.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Loop started (device period and format negotiated).
    Started,
    /// SCHED_FIFO granted at this priority.
    RtGranted(u8),
    /// SCHED_FIFO denied (errno-ish detail lost; see stderr).
    RtDenied(u8),
    /// Stream reached its target fill: playing.
    Running,
    /// ALSA xrun (EPIPE), recovered with prepare.
    Xrun,
    /// ALSA suspend (ESTRPIPE), recovered with resume or prepare.
    Suspend,
    /// Ring ran short: period padded with silence; rebuffering.
    RingUnderrun,
    /// Controller resync by this many frames (positive = dropped).
    Resync(i64),
    /// The rate loop re-primed (excursion, saturation fault, underrun, xrun).
    RateReset,
    /// Device error (negative errno).
    DeviceError(i32),
}

/// A running playout thread.
pub struct Playout {
    stop: Arc<AtomicBool>,
    stats: Arc<PlayoutStats>,
    rt: Option<JoinHandle<()>>,
    logger: Option<JoinHandle<()>>,
}

/// A real-time output made ready before its receiver starts ([`Playout::prepare`]):
/// memory locked and the device opened and configured. Under a slow start (alsa-lib's
/// configuration, `mlockall` of the binary: hundreds of ms on a busy box) a receiver
/// already running would fill its ring to the end and drop the newest frames, a hole
/// played later as a click; preparing first leaves only the thread start in between.
pub struct PreparedPlayout {
    cfg: PlayoutConfig,
    device: ReadyDevice,
    media: Arc<MediaRate>,
    /// `mlockall` failed: the playout runs without locked memory (the caller reports it).
    pub lock_error: Option<std::io::Error>,
}

enum ReadyDevice {
    Sim(SimDevice),
    Alsa(AlsaDevice),
}

impl PreparedPlayout {
    /// The media clock rate the playout follows (set it from PTP while locked).
    pub fn media(&self) -> Arc<MediaRate> {
        self.media.clone()
    }

    /// The device period, frames.
    pub fn period_frames(&self) -> usize {
        self.cfg.period_frames
    }

    /// Starts the playout thread on the prepared device, draining `ring`
    /// ([`Playout::start`]). Errors: the resampler refused the configuration.
    pub fn start(
        self,
        ring: rtrb::Consumer<i32>,
    ) -> Result<Playout, crate::rate::resampler::ResamplerError> {
        match self.device {
            ReadyDevice::Sim(d) => Playout::start(self.cfg, d, ring, self.media),
            ReadyDevice::Alsa(d) => Playout::start(self.cfg, d, ring, self.media),
        }
    }
}

impl Playout {
    /// Makes a real-time output ready before its receiver starts: locks memory (when
    /// `cfg.lock_memory`; a failure is kept in [`PreparedPlayout::lock_error`] and the
    /// playout runs unlocked) and opens `output` (`alsa:DEV` or `sim[:PPM]`) with
    /// `cfg.period_frames` and a device buffer of `buffer_frames` frames, in
    /// `cfg.channels` × `cfg.sample_rate`, on a free-running media rate.
    /// Errors: [`OutputError::Alsa`](super::output::OutputError::Alsa) when the device
    /// cannot be opened or configured; `NotRealTime` for `wav:`/`null`.
    pub fn prepare(
        mut cfg: PlayoutConfig,
        output: &super::output::OutputSpec,
        buffer_frames: usize,
    ) -> Result<PreparedPlayout, super::output::OutputError> {
        use super::output::{OutputError, OutputSpec};
        let device = match output {
            OutputSpec::Sim { ppm } => ReadyDevice::Sim(SimDevice::new(
                cfg.sample_rate,
                *ppm,
                cfg.period_frames,
                buffer_frames,
                cfg.channels,
            )),
            OutputSpec::Alsa(dev) => ReadyDevice::Alsa(
                AlsaDevice::open(
                    dev,
                    cfg.channels,
                    cfg.sample_rate,
                    cfg.period_frames,
                    buffer_frames,
                )
                .map_err(|e| OutputError::Alsa {
                    device: dev.clone(),
                    reason: e.to_string(),
                })?,
            ),
            other => return Err(OutputError::NotRealTime(other.to_string())),
        };
        // Locked after the device is open, so alsa-lib's allocations are locked too.
        let lock_error = if cfg.lock_memory {
            cfg.lock_memory = false;
            crate::sys::rt::lock_memory().err()
        } else {
            None
        };
        Ok(PreparedPlayout {
            cfg,
            device,
            media: MediaRate::free_running(),
            lock_error,
        })
    }

    /// Starts the playout thread on `device`, draining `ring`. `media` supplies the
    /// media clock rate (feed-forward); pass [`MediaRate::free_running`] without PTP.
    /// Errors: the resampler refused the configuration (channels out of 1..=64).
    pub fn start<D: PcmDevice + Send + 'static>(
        cfg: PlayoutConfig,
        mut device: D,
        mut ring: rtrb::Consumer<i32>,
        media: Arc<MediaRate>,
    ) -> Result<Playout, crate::rate::resampler::ResamplerError> {
        let rcfg = cfg
            .rate
            .unwrap_or_else(|| RateConfig::new(cfg.sample_rate, cfg.target_latency));
        let steer = SteerCore::new(cfg.channels, cfg.period_frames, cfg.quality, rcfg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PlayoutStats::default());
        let (mut ev_tx, mut ev_rx) = rtrb::RingBuffer::<Event>::new(256);
        if cfg.lock_memory
            && let Err(e) = crate::sys::rt::lock_memory()
        {
            eprintln!("playout: mlockall failed ({e}); continuing without locked memory");
        }
        let (s2, st2) = (stop.clone(), stats.clone());
        let rt = std::thread::Builder::new()
            .name("aes67-playout".into())
            .spawn(move || {
                let mut core = RtCore::new(&cfg, rcfg, steer);
                if let Some(p) = cfg.rt_priority {
                    let ok = crate::sys::rt::set_fifo(p);
                    st2.rt.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                    let _ = ev_tx.push(if ok {
                        Event::RtGranted(p)
                    } else {
                        Event::RtDenied(p)
                    });
                }
                let _ = ev_tx.push(Event::Started);
                if let Some((on, _)) = cfg.rt_hooks {
                    on();
                }
                core.run(&mut device, &mut ring, &media, &st2, &s2, &mut ev_tx);
                if let Some((_, off)) = cfg.rt_hooks {
                    off();
                }
            })
            .expect("spawn playout thread");
        let s3 = stop.clone();
        let logger = std::thread::Builder::new()
            .name("aes67-playout-log".into())
            .spawn(move || {
                loop {
                    while let Ok(e) = ev_rx.pop() {
                        match e {
                            Event::RtDenied(p) => eprintln!(
                                "playout: SCHED_FIFO priority {p} DENIED (needs CAP_SYS_NICE or RLIMIT_RTPRIO); running at normal priority"
                            ),
                            other => eprintln!("playout: {other:?}"),
                        }
                    }
                    if s3.load(Ordering::Relaxed) && ev_rx.is_empty() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .expect("spawn logger thread");
        Ok(Playout {
            stop,
            stats,
            rt: Some(rt),
            logger: Some(logger),
        })
    }

    /// The live statistics.
    pub fn stats(&self) -> &Arc<PlayoutStats> {
        &self.stats
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) -> StatsSnapshot {
        self.shutdown();
        self.stats.snapshot()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.rt.take() {
            let _ = h.join();
        }
        if let Some(h) = self.logger.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Playout {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The loop state, all buffers allocated in [`RtCore::new`].
struct RtCore {
    ch: usize,
    period: usize,
    fs: f64,
    in_scale: f32,
    /// Rate controller + resampler: the shared steering core.
    steer: SteerCore,
    out: Vec<i32>,
    written: u64,
    running: bool,
    /// Has been running before (a later start is a re-prime of the rate loop).
    ran: bool,
    target_frames: f64,
}

impl RtCore {
    fn new(cfg: &PlayoutConfig, rcfg: RateConfig, steer: SteerCore) -> RtCore {
        RtCore {
            ch: cfg.channels,
            period: cfg.period_frames,
            fs: cfg.sample_rate as f64,
            in_scale: 1.0 / (1u64 << (cfg.input_bits.clamp(8, 32) - 1)) as f32,
            target_frames: rcfg.target_latency.as_secs_f64() * cfg.sample_rate as f64,
            steer,
            out: vec![0; cfg.period_frames * cfg.channels],
            written: 0,
            running: false,
            ran: false,
        }
    }

    /// Writes the period in `out` to the device; on a device error recovers
    /// ([`Self::recover`]) and returns false (the period was not played).
    fn write_period<D: PcmDevice>(
        &mut self,
        dev: &mut D,
        stats: &PlayoutStats,
        ev: &mut rtrb::Producer<Event>,
    ) -> bool {
        match dev.write(&self.out) {
            Ok(_) => {
                self.written += self.period as u64;
                true
            }
            Err(e) => {
                self.recover(dev, e, stats, ev);
                false
            }
        }
    }

    /// Handles a device error; returns false when the loop must end.
    fn recover<D: PcmDevice>(
        &mut self,
        dev: &mut D,
        e: DevError,
        stats: &PlayoutStats,
        ev: &mut rtrb::Producer<Event>,
    ) -> bool {
        match e {
            DevError::Xrun => {
                stats.xruns.fetch_add(1, Ordering::Relaxed);
                let _ = ev.push(Event::Xrun);
            }
            DevError::Suspended => {
                stats.suspends.fetch_add(1, Ordering::Relaxed);
                let _ = ev.push(Event::Suspend);
            }
            DevError::Other(n) => {
                stats.device_errors.fetch_add(1, Ordering::Relaxed);
                stats.last_device_error.store(n, Ordering::Relaxed);
                let _ = ev.push(Event::DeviceError(n));
            }
        }
        self.written = 0;
        self.running = false;
        self.steer.device_restarted();
        match dev.recover(e) {
            Ok(()) => true,
            Err(_) => {
                // back off a little; a vanished device is retried rather than spun on
                std::thread::sleep(Duration::from_millis(50));
                true
            }
        }
    }

    fn run<D: PcmDevice>(
        &mut self,
        dev: &mut D,
        ring: &mut rtrb::Consumer<i32>,
        media: &MediaRate,
        stats: &PlayoutStats,
        stop: &AtomicBool,
        ev: &mut rtrb::Producer<Event>,
    ) {
        let ch = self.ch;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = dev.wait(100) {
                if !self.recover(dev, e, stats, ev) {
                    return;
                }
                continue;
            }
            let (mut avail, delay) = match dev.avail_delay() {
                Ok(v) => v,
                Err(e) => {
                    if !self.recover(dev, e, stats, ev) {
                        return;
                    }
                    continue;
                }
            };
            let now = MonoNs::now();
            let mut delay = delay.max(0) as f64;
            let position = self.written.saturating_sub(delay as u64);
            while avail >= self.period as i64 {
                let ring_frames = (ring.slots() / ch) as f64;
                if !self.running {
                    // Priming: feed silence until the ring holds the rest of the target.
                    if ring_frames + delay >= self.target_frames {
                        // Start exactly on target: drop the excess priming overshoot.
                        let excess = (ring_frames + delay - self.target_frames) as usize;
                        if let Ok(c) = ring.read_chunk(excess.min(ring.slots() / ch) * ch) {
                            c.commit_all();
                        }
                        self.running = true;
                        stats.running.store(true, Ordering::Relaxed);
                        let _ = ev.push(Event::Running);
                        self.steer.resampler().reset();
                        if self.ran {
                            // After an underrun or xrun the fill target is re-established
                            // here; the rate loop re-primes (integrator to feed-forward,
                            // ramped ratio).
                            self.steer.reprime();
                        }
                        self.ran = true;
                    } else {
                        self.out.iter_mut().for_each(|s| *s = 0);
                        if !self.write_period(dev, stats, ev) {
                            break;
                        }
                        avail -= self.period as i64;
                        delay += self.period as f64;
                        continue;
                    }
                }
                let ring_frames = (ring.slots() / ch) as f64;
                let out = self.steer.control(
                    &Observation {
                        now,
                        ring_fill_frames: ring_frames,
                        device_delay_frames: delay,
                        device_position: Some(position),
                        media_vs_mono: media.get(),
                    },
                    &mut RingSource {
                        ring: &mut *ring,
                        scale: self.in_scale,
                    },
                );
                if let Some(n) = out.resync_frames {
                    stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    let _ = ev.push(Event::Resync(n));
                }
                if out.reprimed {
                    let _ = ev.push(Event::RateReset);
                }
                stats
                    .rate_resets
                    .store(self.steer.rate_resets(), Ordering::Relaxed);
                let need = self.steer.resampler().input_frames_next();
                let have = ring.slots() / ch;
                let mut short = false;
                let ins = self.steer.take_insert(need);
                let take = (need - ins).min(have);
                if take < need - ins {
                    short = true;
                }
                let scale = self.in_scale;
                let c0 = MonoNs::now();
                let chunk = ring.read_chunk(take * ch).ok();
                let res = self.steer.resampler().process_with(
                    |buf| {
                        let (z, rest) = buf.split_at_mut(ins * ch);
                        z.iter_mut().for_each(|s| *s = 0.0);
                        let mut i = 0;
                        if let Some(c) = &chunk {
                            let (a, b) = c.as_slices();
                            for s in a.iter().chain(b.iter()) {
                                rest[i] = *s as f32 * scale;
                                i += 1;
                            }
                        }
                        rest[i..].iter_mut().for_each(|s| *s = 0.0);
                    },
                    &mut self.out,
                    2147483648.0,
                );
                if let Some(c) = chunk {
                    c.commit_all();
                }
                stats
                    .max_cycle_us
                    .fetch_max(MonoNs::now().since(c0).as_ns() / 1000, Ordering::Relaxed);
                if res.is_err() {
                    self.out.iter_mut().for_each(|s| *s = 0);
                }
                if short {
                    stats.ring_underruns.fetch_add(1, Ordering::Relaxed);
                    let _ = ev.push(Event::RingUnderrun);
                    self.running = false;
                    stats.running.store(false, Ordering::Relaxed);
                }
                if !self.write_period(dev, stats, ev) {
                    break;
                }
                avail -= self.period as i64;
                delay += self.period as f64;
                stats.periods.fetch_add(1, Ordering::Relaxed);
                let st = |a: &AtomicI64, v: f64| a.store(v as i64, Ordering::Relaxed);
                st(&stats.ratio_ppb_milli, out.ratio_ppb.as_ppb() * 1000.0);
                st(&stats.ff_ppb_milli, out.feed_forward.as_ppb() * 1000.0);
                st(&stats.device_delay_us, delay / self.fs * 1e6);
                st(&stats.fill_us, ring_frames / self.fs * 1e6);
                st(
                    &stats.latency_error_us,
                    out.latency_error.as_ns() as f64 / 1e3,
                );
                st(
                    &stats.filtered_error_us,
                    out.filtered_error.as_ns() as f64 / 1e3,
                );
            }
        }
    }
}
