//! The playout real-time loop never allocates: a counting `#[global_allocator]`
//! counts every allocation made on the playout thread between the loop's start and
//! end hooks. The loop runs for real (wall clock) against a software device whose
//! crystal is +300 ppm off, fed by a 1 kHz tone at the media rate; it must also keep
//! zero xruns and lock its ratio near +300 ppm.

use aes67::engine::playout::{
    MediaRate, Playout, PlayoutConfig, SimDevice, ToneGenerator, ToneSpec,
};
use aes67::rate::resampler::Quality;
use aes67::units::Nanos;
use aes67_rig::alloc::{CountingAlloc, mark_thread, unmark_thread};
use std::time::Duration;

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

#[test]
fn rt_loop_never_allocates_and_locks_to_the_device() {
    // The counter itself works (a check that cannot fail would prove nothing).
    A.self_test();

    let ch = 2;
    let mut cfg = PlayoutConfig::new(ch, 48000);
    cfg.period_frames = 480;
    cfg.target_latency = Nanos::from_ms(120); // room for a loaded 2-core CI machine
    cfg.rt_priority = Some(10); // denied without CAP_SYS_NICE: must keep running
    cfg.lock_memory = false;
    cfg.quality = if cfg!(debug_assertions) {
        Quality::Medium
    } else {
        Quality::High
    };
    cfg.rt_hooks = Some((mark_thread, unmark_thread));
    let dev = SimDevice::new(48000, 300.0, 480, 4 * 480, ch);
    let (tone, ring) = ToneGenerator::start(ToneSpec::new(ch, 48000));
    let p = Playout::start(cfg, dev, ring, MediaRate::free_running()).unwrap();
    let mut ratios = Vec::new();
    let mut ffs = Vec::new();
    for s in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        let snap = p.stats().snapshot();
        println!("t={s}s {}", snap.status_line());
        if s >= 15 {
            ratios.push(snap.ratio_ppm);
            ffs.push(snap.feed_forward_ppm);
        }
    }
    let s = p.stop();
    drop(tone);
    println!("final {s:?}; rt allocations {}", A.allocations());
    assert!(s.periods > 1000, "loop did not run: {s:?}");
    assert_eq!(A.allocations(), 0, "the real-time loop allocated");
    assert_eq!(A.deallocs(), 0, "the real-time loop freed memory");
    assert_eq!(s.xruns, 0);
    assert_eq!(s.ring_underruns, 0);
    assert_eq!(s.resyncs, 0);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!(
        (mean - 300.0).abs() < 40.0,
        "ratio {mean} ppm, expected +300 ppm"
    );
    let ff = ffs.iter().sum::<f64>() / ffs.len() as f64;
    assert!(
        (ff - 300.0).abs() < 15.0,
        "device-clock estimate {ff} ppm, expected +300 ppm"
    );
}
