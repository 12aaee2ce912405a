//! Harness (prints figures): the smallest playout latency (media-clock time to the
//! device, i.e. the link offset budget the playout stage needs) that holds with zero
//! xruns, zero ring underruns and zero resyncs on this machine, for 1 ms and 125 µs
//! packets (AES67-2018 §7.2.1 packet times).
//!
//! The real playout thread (SCHED_FIFO, steered sinc resampler, rate controller) runs
//! against the software device (`SimDevice`, +100 ppm crystal, 1 ms period, 4 ms
//! buffer), fed by the tone source in packets of the given size. For each packet time
//! the target latency is swept downwards; each point runs `AES67_LAT_SECONDS`
//! (default 20; the figure is 600) and the smallest passing target is printed.
//! The peer figure in the same run is the packet time plus the device buffer: the
//! floor no receiver can go below. Run: `cargo bench --bench playout_latency`.

use aes67::engine::playout::{
    MediaRate, Playout, PlayoutConfig, SimDevice, ToneGenerator, ToneSpec,
};
use aes67::rate::resampler::Quality;
use aes67::units::Nanos;
use std::time::Duration;

fn main() {
    let secs: u64 = std::env::var("AES67_LAT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let period = 48; // 1 ms at 48 kHz
    let buffer = 192; // 4 ms
    for (name, pkt) in [("1 ms packets", 48usize), ("125 us packets", 6usize)] {
        let mut best = None;
        for target_us in [20_000i64, 12_000, 8_000, 6_000, 5_000, 4_000] {
            let mut cfg = PlayoutConfig::new(2, 48000);
            cfg.period_frames = period;
            cfg.target_latency = Nanos::from_us(target_us);
            cfg.quality = Quality::High;
            cfg.lock_memory = false;
            cfg.rt_priority = Some(80);
            let dev = SimDevice::new(48000, 100.0, period, buffer, 2);
            let (tone, ring) = ToneGenerator::start(ToneSpec {
                ring_ms: 200,
                packet_frames: pkt,
                ..ToneSpec::new(2, 48000)
            });
            let p = Playout::start(cfg, dev, ring, MediaRate::free_running()).unwrap();
            // count only after the stream started and the first second passed
            std::thread::sleep(Duration::from_secs(1));
            let s0 = p.stats().snapshot();
            std::thread::sleep(Duration::from_secs(secs));
            let s = p.stop();
            drop(tone);
            let bad = (s.xruns - s0.xruns)
                + (s.ring_underruns - s0.ring_underruns)
                + (s.resyncs - s0.resyncs);
            let ok = bad == 0 && s.running;
            println!(
                "{name}: target {:.2} ms for {secs} s: xruns {} underruns {} resyncs {} max cycle {} us rt {:?} -> {}",
                target_us as f64 / 1000.0,
                s.xruns - s0.xruns,
                s.ring_underruns - s0.ring_underruns,
                s.resyncs - s0.resyncs,
                s.max_cycle_us,
                s.rt,
                if ok { "stable" } else { "NOT stable" }
            );
            if ok {
                best = Some(target_us);
            } else {
                break;
            }
        }
        let floor_us = pkt as f64 / 48.0 * 1000.0 + buffer as f64 / 48.0 * 1000.0;
        match best {
            Some(b) => println!(
                "RESULT {name}: minimum stable playout latency {:.2} ms (floor packet+device buffer {:.2} ms, ratio {:.2})",
                b as f64 / 1000.0,
                floor_us / 1000.0,
                b as f64 / floor_us
            ),
            None => println!("RESULT {name}: no tested latency was stable"),
        }
    }
}
