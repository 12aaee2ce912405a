//! The capture real-time loop (the sender's `alsa:` source, `engine::capture`) on
//! the wall clock, without ALSA: a software capture device whose crystal is
//! +1000 ppm off captures a 1 kHz tone; a pacer in this test pops one 1 ms packet
//! (48 frames) per ms of `CLOCK_MONOTONIC`, as the sender's pacing thread does.
//! Over 20 s: a counting `#[global_allocator]` sees no allocation on the capture
//! thread between its start and end hooks, no overrun, the pacer never finds the
//! ring short, the device-clock feed-forward locks to −1000 ppm (media frames per
//! device frame) and the ratio is within 250 ppm of it, and the tone the pacer got
//! has no discontinuity.

use aes67::engine::capture::{self, CaptureConfig, MediaRate, SimCapture};
use aes67::engine::sender::AudioSource;
use aes67::rate::resampler::Quality;
use aes67::units::{MonoNs, Nanos};
use aes67_rig::alloc::{CountingAlloc, mark_thread, unmark_thread};
use std::time::Duration;

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

#[test]
fn capture_loop_never_allocates_and_absorbs_a_1000_ppm_card() {
    // The counter itself works (a check that cannot fail would prove nothing).
    A.self_test();

    let (ch, rate, ppm) = (2usize, 48_000u32, 1000.0);
    let mut cfg = CaptureConfig::new(ch, rate);
    cfg.period_frames = 480;
    cfg.target_latency = Nanos::from_ms(60); // room for a loaded 2-core CI machine
    cfg.rt_priority = Some(10); // denied without CAP_SYS_NICE: must keep running
    cfg.quality = if cfg!(debug_assertions) {
        Quality::Medium
    } else {
        Quality::High
    };
    cfg.rt_hooks = Some((mark_thread, unmark_thread));
    let dev = SimCapture::new(rate, ppm, 480, 8 * 480, ch, 1000.0, 0.25);
    let mut src = capture::start(cfg, dev, MediaRate::free_running()).unwrap();
    let stats = src.stats();
    let mut pkt = vec![0i32; 48 * ch];
    let mut x: Vec<f64> = Vec::with_capacity(rate as usize * 21);
    let (mut short, mut ratios, mut ffs) = (0u64, Vec::new(), Vec::new());
    let t0 = MonoNs::now();
    let secs = 20u64;
    let mut k = 0u64;
    while k < secs * 1000 {
        let due = t0.add(Nanos::from_ns(k as i64 * 1_000_000));
        let now = MonoNs::now();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due.since(now).as_ns() as u64));
        }
        let got = src.pull(&mut pkt);
        if got < 48 {
            short += 1;
        }
        x.extend(
            pkt[..got * ch]
                .iter()
                .step_by(ch)
                .map(|&s| s as f64 / 8_388_608.0),
        );
        k += 1;
        if k.is_multiple_of(1000) {
            let s = stats.snapshot();
            println!("t={}s {}", k / 1000, s.status_line());
            if k > 14_000 {
                ratios.push(s.ratio_ppm);
                ffs.push(s.feed_forward_ppm);
            }
        }
    }
    drop(src);
    let s = stats.snapshot();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let c = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 * (1.0 + ppm * 1e-6) / rate as f64).cos();
    let (mut bad, mut max_res) = (0usize, 0f64);
    for n in 2..x.len() {
        let r = (x[n] - c * x[n - 1] + x[n - 2]).abs();
        max_res = max_res.max(r);
        if r > 0.25 * 0.01 {
            bad += 1;
        }
    }
    println!(
        "final {s:?}; rt allocations {}; short pulls {short}; last 6 s mean ratio {mean:+.1} ppm, feed-forward {:+.1} ppm; \
         max predictor residual {:.1e} of amplitude over {} frames",
        A.allocations(),
        ffs.iter().sum::<f64>() / ffs.len() as f64,
        max_res / 0.25,
        x.len()
    );
    assert!(s.periods > 1500, "loop did not run: {s:?}");
    assert_eq!(A.allocations(), 0, "the capture loop allocated");
    assert_eq!(A.deallocs(), 0, "the capture loop freed memory");
    assert_eq!(s.overruns, 0);
    assert_eq!(short, 0, "the pacer found the ring short");
    assert_eq!(s.ring_overflows, 0);
    // The device-clock estimate (feed-forward) is locked after the DLL's 6 s; the
    // ratio itself still carries the PI's correction of the fill error (~4 ms)
    // accumulated before (60 s loop, critically damped): within 250 ppm here (as
    // tests/play_aloop.rs after 40 s), within 20 ppm after minutes (the
    // virtual-time test in engine::capture, and the qemu test's last minute).
    let ff = ffs.iter().sum::<f64>() / ffs.len() as f64;
    assert!(
        (ff + ppm).abs() < 25.0,
        "device-clock feed-forward {ff} ppm, expected {:+} ppm",
        -ppm
    );
    assert!(
        (mean + ppm).abs() < 250.0,
        "ratio {mean} ppm, expected {:+} ppm",
        -ppm
    );
    assert_eq!(bad, 0, "{bad} discontinuities, max residual {max_res}");
}
