//! An in-process media-clock source for playout tests and benches: a sine
//! (the sans-IO [`crate::media::tone::Sine`]) written into the playout ring at
//! the media rate (paced by `CLOCK_MONOTONIC`, optionally skewed by
//! `media_ppm`), in 1 ms packets like an AES67 stream with 1 ms packet time
//! (AES67-2018 §7.2), samples in 24-bit range.

use crate::media::tone::Sine;
use crate::units::MonoNs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running tone source.
pub struct ToneGenerator {
    stop: Arc<AtomicBool>,
    overruns: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

/// What a [`ToneGenerator`] writes.
#[derive(Debug, Clone, Copy)]
pub struct ToneSpec {
    /// Channels per frame (all carry the same sine).
    pub channels: usize,
    /// Nominal media rate, Hz.
    pub rate: u32,
    /// Tone frequency, Hz.
    pub freq: f64,
    /// Amplitude, 0..1 of 24-bit full scale.
    pub amp: f64,
    /// Media clock error against `CLOCK_MONOTONIC`, ppm.
    pub media_ppm: f64,
    /// Ring capacity, ms.
    pub ring_ms: u32,
    /// Frames per packet (rate/1000 for 1 ms; 6 for 125 µs at 48 kHz,
    /// AES67-2018 §7.2.1).
    pub packet_frames: usize,
}

impl ToneSpec {
    /// A 1 kHz sine at half of full scale, `channels` × `rate` Hz, on the
    /// nominal media rate, 1 ms packets, a 500 ms ring.
    pub fn new(channels: usize, rate: u32) -> ToneSpec {
        ToneSpec {
            channels,
            rate,
            freq: 1000.0,
            amp: 0.5,
            media_ppm: 0.0,
            ring_ms: 500,
            packet_frames: (rate / 1000).max(1) as usize,
        }
    }
}

impl ToneGenerator {
    /// Starts writing the sine of `spec` to all its channels at
    /// `rate × (1 + media_ppm·1e-6)` frames per second of `CLOCK_MONOTONIC`,
    /// one packet at a time. Returns the generator and the ring's consumer
    /// side (capacity `ring_ms` milliseconds).
    pub fn start(spec: ToneSpec) -> (ToneGenerator, rtrb::Consumer<i32>) {
        let ToneSpec {
            channels,
            rate,
            freq,
            amp,
            media_ppm,
            ring_ms,
            packet_frames,
        } = spec;
        let (mut tx, rx) =
            rtrb::RingBuffer::<i32>::new(rate as usize * ring_ms as usize / 1000 * channels);
        let stop = Arc::new(AtomicBool::new(false));
        let overruns = Arc::new(AtomicU64::new(0));
        let (s2, o2) = (stop.clone(), overruns.clone());
        let handle = std::thread::Builder::new()
            .name("aes67-tone".into())
            .spawn(move || {
                let r = rate as f64 * (1.0 + media_ppm * 1e-6);
                let t0 = MonoNs::now();
                let pkt = packet_frames.max(1) as u64;
                let nap = Duration::from_secs_f64((pkt as f64 / r / 2.0).clamp(50e-6, 500e-6));
                let mut n: u64 = 0;
                let mut sine = Sine::with_level(rate, freq, amp, 24);
                while !s2.load(Ordering::Relaxed) {
                    let due = (MonoNs::now().since(t0).as_secs_f64() * r) as u64 / pkt * pkt;
                    while n < due {
                        if tx.slots() < pkt as usize * channels {
                            o2.fetch_add(1, Ordering::Relaxed);
                            sine.skip(due - n);
                            n = due; // drop, like a full receiver ring
                            break;
                        }
                        for _ in 0..pkt {
                            let x = sine.next_sample();
                            for _ in 0..channels {
                                let _ = tx.push(x);
                            }
                        }
                        n += pkt;
                    }
                    std::thread::sleep(nap);
                }
            })
            .expect("spawn tone thread");
        (
            ToneGenerator {
                stop,
                overruns,
                handle: Some(handle),
            },
            rx,
        )
    }

    /// Packets dropped because the ring was full.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }
}

impl Drop for ToneGenerator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
