//! Disturbance suite for the rate loop (issue 17), in virtual time: the sans-IO
//! controller (`aes67::rate::RateControl`) driving a simulated sound card and ring
//! that follow the engine's playout loop (`engine::playout`): prime with silence to
//! the target, drop the overshoot, steer; a ring short of data pads with silence
//! (a ring underrun) and primes again; a device that runs dry xruns and restarts.
//! The resampler is modelled as exact consumption of `period / ratio` media frames.
//!
//! Setting: the qemu rig's emulated-CPU settings (20 ms periods, 500 ms device
//! buffer, 750 ms target), 1 ms packets with 0-2 ms arrival jitter, 0-1 ms wake-up
//! jitter, 4 ms device-pointer quantisation. Each scenario runs at device shifts
//! 0, ±100, ±300, ±1000 ppm: 60 s to settle, the disturbance, then 60 s.
//!
//! Recovered = from then on the 5 s mean of |ratio − true ratio| < 20 ppm (the
//! steady-state ratio jitter is ~7 ppm rms, so 1 s means graze 20 ppm undisturbed),
//! the 1 s mean of |latency − target| (ring fill + device delay) < 2 ms, and playing. Asserted: the
//! loop was settled before the disturbance, recovers within [`BOUND_S`] (the
//! device-rate step within its own bound), and has no second underrun or xrun.
//! `cargo test --release --test rate_disturbance -- --nocapture` prints the table.

use aes67::rate::{Observation, RateConfig, RateControl};
use aes67::units::{MonoNs, Nanos, Ppb};

const FS: f64 = 48000.0;
const PERIOD: f64 = 960.0; // 20 ms
const BUFFER: f64 = 24000.0; // 500 ms
const PACKET: f64 = 48.0; // 1 ms
const TARGET_MS: i64 = 750;
const T_EV: f64 = 60.0;
const AFTER: f64 = 60.0;
/// Recovery bound (s) for every disturbance but a device-rate step. It includes the
/// 10 s window of the ratio criterion: a ratio back within 20 ppm at once still counts
/// from the first 10 s window that is clean.
const BOUND_S: f64 = 25.0;
/// Recovery bound after a sudden 100 ppm step of the device's rate, and after a PTP
/// relock whose servo is 50 ppm wrong for 5 s: the device clock's DLL (0.02 Hz) and
/// the feed-forward (slewed at 10 ppm/s) have to follow the rate change (s).
const DEVICE_STEP_BOUND_S: f64 = 35.0;

/// Window of the ratio criterion (1 s windows): the steady-state ratio jitter
/// (P term on the filtered arrival and wake-up jitter) makes shorter means graze 20 ppm.
const RATIO_WIN: usize = 10;

const SHIFTS: [f64; 7] = [0.0, 100.0, -100.0, 300.0, -300.0, 1000.0, -1000.0];

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug)]
enum Dist {
    /// Nothing happens (the control).
    None,
    /// The ring suddenly holds this many ms more (+) or less (−) than before: the
    /// media arrivals shift by that much for good (a burst after a stall that the
    /// priming had already made up for, or a network delay step).
    Excursion(f64),
    /// The sender stops for this many ms, then catches up at once (burst).
    ProducerStall(f64),
    /// The playout thread does not run for this many ms (device keeps playing).
    ConsumerStall(f64),
    /// For 5 s packets arrive in clumps of this many ms.
    Bursts(f64),
    /// The sender's media clock jumps by this many ms (timestamps, so arrivals).
    SenderJump(f64),
    /// For 30 s the sender lags more and more, up to this many ms over 1.5 s, then
    /// catches up in one burst, over and over (a starved or congested sender). Far
    /// beyond the excursion bound most of the time, but never for the whole hold:
    /// the loop must ride it out without a single drop or insert.
    LagCatchUp(f64),
    /// The device's rate steps by this many ppm.
    DeviceStep(f64),
    /// PTP unlocks at the start of a producer stall of this many ms, relocks 2 s
    /// later with the servo 50 ppm wrong for 5 s.
    PtpDuringStall(f64),
}

#[derive(Debug, Default)]
struct Res {
    recovery_s: f64,
    max_fill_err_ms: f64,
    underruns_after: u64,
    xruns_after: u64,
    rate_resets: u64,
    resyncs: u64,
    settled_before: bool,
    pinned_s: f64,
}

fn run(shift: f64, dist: Dist, seed: u64) -> Res {
    let rc = &mut RateControl::new(RateConfig::new(48000, Nanos::from_ms(TARGET_MS)));
    let after = AFTER;
    let mut rng = Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1);
    let target = TARGET_MS as f64 * 1e-3;
    let media_rate = FS;
    let mut dev_ppm = shift;
    // Device: hw position integrated piecewise (its rate may step).
    let (mut hw, mut t_hw) = (0.0f64, 0.0f64);
    let mut hw_origin = 0.0f64;
    let mut written = 0.0f64;
    let mut started = false;
    let mut consumed = 0.0f64;
    let mut arrived_prev = 0.0f64;
    let mut running = false;
    let mut ran = false;
    let mut t = 0.0f64;
    let end = T_EV + after;
    let mut res = Res::default();
    // 1 s windows of the ratio and latency error.
    let (mut w_start, mut w_n, mut w_r, mut w_e) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut last_bad = T_EV;
    let mut ratio_wins = std::collections::VecDeque::new();
    let mut settled_at_ev = true;
    let mut pin_since: Option<f64> = None;
    let mut last_ratio_ppm = 0.0;
    while t < end {
        // Next wake: when the device has room for a period, plus 0..1 ms jitter.
        let rate = FS * (1.0 + dev_ppm * 1e-6);
        let mut wake = if started {
            t_hw + (written - BUFFER + PERIOD - hw).max(0.0) / rate
        } else {
            t
        } + rng.uniform() * 1e-3;
        if let Dist::ConsumerStall(ms) = dist
            && wake >= T_EV
            && wake < T_EV + ms * 1e-3
        {
            wake = T_EV + ms * 1e-3;
        }
        t = wake.max(t + 1e-4);
        // Device rate step.
        if let Dist::DeviceStep(d) = dist
            && t >= T_EV
            && dev_ppm == shift
        {
            if started {
                hw += (T_EV - t_hw).max(0.0) * FS * (1.0 + dev_ppm * 1e-6);
                t_hw = T_EV.max(t_hw);
            }
            dev_ppm = shift + d;
        }
        let rate = FS * (1.0 + dev_ppm * 1e-6);
        if started {
            hw += (t - t_hw) * rate;
        }
        t_hw = t;
        let mut delay = written - hw;
        if started && delay < 0.0 {
            // Device xrun: restart empty; the position starts again.
            if t > T_EV {
                res.xruns_after += 1;
            }
            written = hw;
            hw_origin = hw;
            delay = 0.0;
            started = false;
            running = false;
            rc.device_restarted();
        }
        // Arrivals: media-rate packets, 0..2 ms late, shaped by the disturbance.
        let mut ta = t - rng.uniform() * 2e-3;
        match dist {
            Dist::Excursion(ms) | Dist::SenderJump(ms) if t >= T_EV => ta += ms * 1e-3,
            Dist::ProducerStall(ms) | Dist::PtpDuringStall(ms)
                if t >= T_EV && t < T_EV + ms * 1e-3 =>
            {
                ta = T_EV
            }
            Dist::Bursts(ms) if (T_EV..T_EV + 5.0).contains(&t) => {
                ta = ((ta - T_EV) / (ms * 1e-3)).floor() * ms * 1e-3 + T_EV
            }
            Dist::LagCatchUp(ms) if (T_EV..T_EV + 30.0).contains(&t) => {
                ta -= ((t - T_EV) % 1.5) / 1.5 * ms * 1e-3
            }
            _ => {}
        }
        let arrived = ((media_rate * ta.max(0.0)) / PACKET).floor() * PACKET;
        let arrived = arrived.max(arrived_prev);
        arrived_prev = arrived;
        let media_obs = match dist {
            Dist::PtpDuringStall(_) if (T_EV..T_EV + 2.0).contains(&t) => None,
            Dist::PtpDuringStall(_) if (T_EV + 2.0..T_EV + 7.0).contains(&t) => {
                Some(Ppb::from_ppm(50.0))
            }
            _ => Some(Ppb::from_ppm((rng.uniform() - 0.5) * 0.2)),
        };
        let position = ((hw - hw_origin).max(0.0) / 192.0).floor() * 192.0;
        let mut avail = BUFFER - delay;
        while avail >= PERIOD {
            let fill = arrived - consumed;
            if !running {
                if fill + delay >= target * FS {
                    // Start exactly on target: drop the overshoot.
                    consumed += (fill + delay - target * FS).floor();
                    running = true;
                    if ran {
                        rc.reprime();
                    }
                    ran = true;
                } else {
                    written += PERIOD;
                    delay += PERIOD;
                    avail -= PERIOD;
                    if !started && written >= BUFFER - PERIOD {
                        started = true;
                    }
                    continue;
                }
            }
            let fill = arrived - consumed;
            let out = rc.update(&Observation {
                now: MonoNs::from_ns((t * 1e9) as u64 + 1_000_000_000),
                ring_fill_frames: fill,
                device_delay_frames: delay,
                device_position: Some(position as u64),
                media_vs_mono: media_obs,
            });
            if let Some(n) = out.resync_frames {
                // drop (n > 0, at most the fill) or insert silence (n < 0)
                consumed += (n as f64).min(fill);
                if t > T_EV {
                    res.resyncs += 1;
                }
            }
            let need = PERIOD / out.ratio;
            let fill = arrived - consumed;
            if fill < need {
                if t > T_EV {
                    res.underruns_after += 1;
                }
                consumed = arrived;
                running = false;
            } else {
                consumed += need;
            }
            written += PERIOD;
            delay += PERIOD;
            avail -= PERIOD;
            if !started && written >= BUFFER - PERIOD {
                started = true;
            }
            // Ratio truth: device frames per media frame.
            let truth = ((1.0 + dev_ppm * 1e-6) - 1.0) * 1e6;
            let ppm = out.ratio_ppb.as_ppm();
            last_ratio_ppm = ppm;
            let err_ms = out.latency_error.as_ms_f64();
            if t > T_EV {
                res.max_fill_err_ms = res.max_fill_err_ms.max(err_ms.abs());
            }
            w_n += 1.0;
            w_r += ppm - truth;
            w_e += err_ms;
            if ppm.abs() >= 1999.9 {
                let s = *pin_since.get_or_insert(t);
                res.pinned_s = res.pinned_s.max(t - s);
            } else {
                pin_since = None;
            }
        }
        if t - w_start >= 1.0 && w_n > 0.0 {
            ratio_wins.push_back(w_r / w_n);
            if ratio_wins.len() > RATIO_WIN {
                ratio_wins.pop_front();
            }
            let r5 = ratio_wins.iter().sum::<f64>() / ratio_wins.len() as f64;
            let bad = r5.abs() >= 20.0 || (w_e / w_n).abs() >= 2.0 || !running;
            if (T_EV - 1.5..T_EV).contains(&t) {
                settled_at_ev = !bad;
            }
            if bad && t > T_EV {
                last_bad = t;
            }
            w_start = t;
            w_n = 0.0;
            w_r = 0.0;
            w_e = 0.0;
        }
    }
    let _ = last_ratio_ppm;
    // From the end of the disturbance for the one that lasts.
    let dist_len = match dist {
        Dist::LagCatchUp(_) => 30.0,
        _ => 0.0,
    };
    res.recovery_s = (last_bad - T_EV - dist_len).max(0.0);
    res.settled_before = settled_at_ev;
    res.rate_resets = rc.rate_resets();
    res
}

fn name(d: Dist) -> String {
    match d {
        Dist::None => "none".into(),
        Dist::Excursion(ms) => format!("fill excursion {ms:+} ms"),
        Dist::ProducerStall(ms) => format!("producer stall {ms} ms"),
        Dist::ConsumerStall(ms) => format!("consumer stall {ms} ms"),
        Dist::Bursts(ms) => format!("bursts of {ms} ms for 5 s"),
        Dist::LagCatchUp(ms) => format!("lag to {ms} ms and catch up, 1.5 s cycles for 30 s"),
        Dist::SenderJump(ms) => format!("sender clock jump {ms:+} ms"),
        Dist::DeviceStep(p) => format!("device rate step {p:+} ppm"),
        Dist::PtpDuringStall(ms) => format!("PTP unlock/relock in a {ms} ms stall"),
    }
}

/// Runs `dists` at every shift; prints one table row per scenario and shift;
/// asserts the recovery bound and no second underrun.
fn suite(dists: &[Dist]) {
    let mut failures = Vec::new();
    for &d in dists {
        for (i, &shift) in SHIFTS.iter().enumerate() {
            let r = run(shift, d, i as u64 + 1);
            let bound = match d {
                Dist::DeviceStep(_) | Dist::PtpDuringStall(_) => DEVICE_STEP_BOUND_S,
                _ => BOUND_S,
            };
            println!(
                "| {} | {shift:+} | {:.1} s | {:.1} ms | {} | {} | {} / {} | {} |",
                name(d),
                r.recovery_s,
                r.max_fill_err_ms,
                r.underruns_after,
                r.xruns_after,
                r.resyncs,
                r.rate_resets,
                if r.underruns_after + r.xruns_after > 1 {
                    "yes"
                } else {
                    "no"
                },
            );
            if !r.settled_before {
                failures.push(format!("{} at {shift:+}: not settled before", name(d)));
            }
            if r.recovery_s > bound {
                failures.push(format!(
                    "{} at {shift:+}: recovery {:.1} s > {bound} s ({r:?})",
                    name(d),
                    r.recovery_s
                ));
            }
            if matches!(d, Dist::LagCatchUp(_)) && r.resyncs + r.rate_resets > 0 {
                failures.push(format!(
                    "{} at {shift:+}: drop/insert or re-prime ({r:?})",
                    name(d)
                ));
            }
            if r.underruns_after + r.xruns_after > 1 {
                failures.push(format!("{} at {shift:+}: second underrun ({r:?})", name(d)));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The reported failure (issue 17): a −999 ppm card, +300 ms of fill after a
/// stall burst. Before the fix the ratio sat at the −2000 ppm clamp for minutes.
#[test]
fn issue17_minus_999ppm_plus_300ms_does_not_pin() {
    let r = run(-999.0, Dist::Excursion(300.0), 17);
    println!("issue 17 repro: {r:?}");
    assert!(
        r.pinned_s < 3.5,
        "ratio pinned at the clamp for {} s",
        r.pinned_s
    );
    assert!(r.recovery_s <= BOUND_S, "recovery {} s", r.recovery_s);
    assert_eq!(r.underruns_after + r.xruns_after, 0, "{r:?}");
}

#[test]
fn undisturbed_stays_settled() {
    suite(&[Dist::None]);
}

#[test]
fn fill_excursions_300ms() {
    suite(&[Dist::Excursion(300.0), Dist::Excursion(-300.0)]);
}

#[test]
fn producer_stalls() {
    suite(&[
        Dist::ProducerStall(50.0),
        Dist::ProducerStall(200.0),
        Dist::ProducerStall(500.0),
    ]);
}

#[test]
fn consumer_stalls() {
    suite(&[
        Dist::ConsumerStall(50.0),
        Dist::ConsumerStall(200.0),
        Dist::ConsumerStall(500.0),
    ]);
}

#[test]
fn bursts() {
    suite(&[Dist::Bursts(50.0), Dist::Bursts(200.0)]);
}

#[test]
fn lagging_sender_catching_up() {
    suite(&[Dist::LagCatchUp(150.0)]);
}

#[test]
fn sender_clock_jumps() {
    suite(&[Dist::SenderJump(40.0), Dist::SenderJump(-40.0)]);
}

#[test]
fn device_rate_steps() {
    suite(&[Dist::DeviceStep(100.0), Dist::DeviceStep(-100.0)]);
}

#[test]
fn ptp_unlock_relock_during_stall() {
    suite(&[Dist::PtpDuringStall(300.0)]);
}
