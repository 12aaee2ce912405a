//! Harness (prints figures): the smallest link offset the whole engine holds with
//! zero late and lost packets, zero ring underruns, zero device xruns and zero
//! resyncs, for 1 ms and 125 µs packets (AES67-2018 §7.2.1 packet times), on this
//! machine.
//!
//! Rig (root): a `NetnsPair` joined by a veth. In namespace A our sender
//! (`aes67 send --packet-time-us 1000|125`, L24 stereo 48 kHz, multicast); in
//! namespace B `aes67 play URL --output sim --link-offset-ms X --playout-target-ms T
//! --alsa-period-ms 2 --alsa-buffer-ms 16 --json`: the real receiver (io_uring ingest,
//! jitter buffer released `T` ms early) feeding the real SCHED_FIFO playout thread
//! (steered sinc resampler, rate control) on the software sound device (+100 ppm
//! crystal, 2 ms period, 16 ms buffer). The final JSON line gives the counters.
//!
//! For each packet time the link offset `X` is swept downwards in short runs
//! (`AES67_LINK_SWEEP_SECONDS`, default 20), trying for each `X` the splits
//! `X − T` = 2, then 1 ms between the jitter buffer and the playout target (T ≥ device
//! buffer + 1 ms); the sweep stops after two `X` in a row that no split holds. The smallest passing `X` is then
//! held for `AES67_LINK_SECONDS` (default 600, the 10 minutes) after a warm-up
//! (`AES67_LINK_WARMUP_SECONDS`, default 10 s: start-up and the first device-clock
//! estimate; its counts are printed too, 0 makes the criterion whole-run); if that
//! fails, the next larger passing `X` is held. The peer figure printed in the same
//! run is the floor no receiver can go below: one packet time plus the device
//! buffer (`RESULT ... ratio`).
//!
//! Run (root, takes 25+ minutes at the defaults):
//! `cargo bench --bench link_offset` (cargo builds the release `aes67` binary first).
//! Env: `AES67_LINK_PACKETS` (µs list, default `1000,125`), `AES67_LINK_OFFSETS`
//! (ms list to sweep, default `35,30,27,24,21`), `AES67_LINK_SWEEP_SECONDS`,
//! `AES67_LINK_SECONDS`, `AES67_LINK_WARMUP_SECONDS`, `AES67_LINK_SENDER_PRIO` (default 60),
//! `AES67_LINK_PERIOD_MS` (default 2), `AES67_LINK_BUFFER_MS` (default 16: on this
//! 2-core VM a SCHED_FIFO thread sleeping 1 ms woke up to 11.8 ms late, and 4 ms and
//! 8 ms device buffers had xruns within minutes even at 16-20 ms link offsets). The
//! packet times can run as separate processes (`AES67_LINK_PACKETS=1000`, `=125`).

use aes67_rig::NetnsPair;
use std::process::Stdio;

/// Smallest playout target tried, ms (the device buffer + 1 ms of ring).
fn min_target_ms(buffer_ms: f64) -> f64 {
    buffer_ms + 1.0
}

fn env_f(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<f64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().parse().expect(name))
        .collect()
}

/// Counters of one run (from the final JSON line, maxima from the per-second lines).
#[derive(Debug, Default, Clone)]
struct RunResult {
    /// Whole-run counts `[late, lost, underruns, xruns, resyncs]`.
    whole: [u64; 5],
    packets: u64,
    late: u64,
    lost: u64,
    underruns: u64,
    xruns: u64,
    resyncs: u64,
    ring_overflow: u64,
    max_cycle_us: i64,
    max_abs_latency_error_ms: f64,
    min_fill_ms: f64,
    rt: String,
    ok: bool,
}

/// Device and run settings shared by all runs.
struct Setup {
    period_ms: f64,
    buffer_ms: f64,
    warmup_s: f64,
    sender_prio: u32,
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    pair: &NetnsPair,
    bin: &str,
    setup: &Setup,
    port: u16,
    pkt_us: u32,
    link_ms: f64,
    target_ms: f64,
    secs: f64,
) -> RunResult {
    let group = "239.67.4.4";
    let send_url = format!("aes67://{group}:{port}?iface={}", pair.if_a);
    let play_url = format!("aes67://{group}:{port}?iface={}", pair.if_b);
    // The sender is the test peer standing in for a hardware-paced AES67 source:
    // it runs SCHED_FIFO (`AES67_LINK_SENDER_PRIO`, default 60; 0 = normal) so that
    // its own scheduling stalls do not show up as receiver underruns (the playout
    // buffer never releases past the newest packet, so a late burst drains the ring).
    let mut sender = if setup.sender_prio > 0 {
        let mut c = NetnsPair::cmd_in(&pair.a, "chrt");
        c.args(["-f", &setup.sender_prio.to_string(), bin]);
        c
    } else {
        NetnsPair::cmd_in(&pair.a, bin)
    };
    let mut sender = sender
        .args(["send", &send_url, "--packet-time-us", &pkt_us.to_string()])
        .args(["--duration", &format!("{}", secs + 30.0)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aes67 send");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = NetnsPair::cmd_in(&pair.b, bin)
        .args(["play", &play_url, "--output", "sim:+100", "--json"])
        .args(["--link-offset-ms", &format!("{link_ms}")])
        .args(["--playout-target-ms", &format!("{target_ms}")])
        .args(["--alsa-period-ms", &format!("{}", setup.period_ms)])
        .args(["--alsa-buffer-ms", &format!("{}", setup.buffer_ms)])
        .args(["--duration", &format!("{}", secs + setup.warmup_s)])
        .stderr(Stdio::piped())
        .output()
        .expect("run aes67 play");
    let _ = sender.kill();
    let _ = sender.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let Some(fin) = lines.iter().find(|v| v.get("final").is_some()) else {
        eprintln!(
            "no final JSON line (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        return RunResult::default();
    };
    // Counters count from the end of the warm-up (the first per-second line at
    // or after it); the whole-run figures are kept too.
    let periodic: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v.get("final").is_none() && v["t_s"].as_f64().unwrap_or(0.0) >= setup.warmup_s)
        .collect();
    let zero = serde_json::json!({});
    let base = if setup.warmup_s > 0.0 {
        periodic.first().copied().unwrap_or(fin)
    } else {
        &zero
    };
    let get = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let u = |k: &str| {
        fin[k]
            .as_u64()
            .map(|f| f.saturating_sub(get(base, k)))
            .unwrap_or(u64::MAX)
    };
    let mut r = RunResult {
        whole: ["late", "lost", "underruns", "xruns", "resyncs"].map(|k| get(fin, k)),
        packets: u("packets"),
        late: u("late"),
        lost: u("lost"),
        underruns: u("underruns"),
        xruns: u("xruns"),
        resyncs: u("resyncs"),
        ring_overflow: u("ring_overflow_frames"),
        max_cycle_us: fin["playout"]["max_cycle_us"].as_i64().unwrap_or(-1),
        max_abs_latency_error_ms: periodic
            .iter()
            .filter_map(|v| v["latency_error_ms"].as_f64())
            .fold(0.0, |a, b| a.max(b.abs())),
        min_fill_ms: periodic
            .iter()
            .filter_map(|v| v["fill_ms"].as_f64())
            .fold(f64::INFINITY, f64::min),
        rt: fin["playout"]["rt"].as_str().unwrap_or("?").to_string(),
        ok: false,
    };
    // Not vacuous: the stream must have arrived for the whole run.
    let expected = (secs - 1.0) * 1e6 / pkt_us as f64;
    r.ok = out.status.success()
        && r.packets as f64 >= 0.95 * expected
        && r.late == 0
        && r.lost == 0
        && r.underruns == 0
        && r.xruns == 0
        && r.resyncs == 0
        && r.ring_overflow == 0;
    r
}

fn print_run(label: &str, link: f64, target: f64, secs: f64, r: &RunResult) {
    println!(
        "{label}: link offset {link:.2} ms (playout target {target:.2} ms, jitter buffer {:.2} ms) \
         for {secs} s: packets {} late {} lost {} underruns {} xruns {} resyncs {} overflow {} | \
         max |latency error| {:.2} ms, min ring fill {:.2} ms, max cycle {} us, rt {} \
         (whole run incl. warm-up: late/lost/underruns/xruns/resyncs {:?}) -> {}",
        link - target,
        r.packets,
        r.late,
        r.lost,
        r.underruns,
        r.xruns,
        r.resyncs,
        r.ring_overflow,
        r.max_abs_latency_error_ms,
        r.min_fill_ms,
        r.max_cycle_us,
        r.rt,
        r.whole,
        if r.ok { "stable" } else { "NOT stable" }
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    assert!(aes67_rig::is_root(), "needs root (network namespaces)");
    let bin = env!("CARGO_BIN_EXE_aes67");
    let sweep_s = env_f("AES67_LINK_SWEEP_SECONDS", 20.0);
    let hold_s = env_f("AES67_LINK_SECONDS", 600.0);
    let packets = env_list("AES67_LINK_PACKETS", "1000,125");
    let offsets = env_list("AES67_LINK_OFFSETS", "35,30,27,24,21");
    let setup = Setup {
        period_ms: env_f("AES67_LINK_PERIOD_MS", 2.0),
        buffer_ms: env_f("AES67_LINK_BUFFER_MS", 16.0),
        warmup_s: env_f("AES67_LINK_WARMUP_SECONDS", 10.0),
        sender_prio: env_f("AES67_LINK_SENDER_PRIO", 60.0) as u32,
    };
    let pair = NetnsPair::new().expect("netns pair");
    println!(
        "link offset harness: sim device +100 ppm, period {} ms, buffer {} ms; warm-up {} s, \
         then sweep {sweep_s} s per point, hold {hold_s} s; sender SCHED_FIFO {} (0 = normal); \
         netns {} -> {}",
        setup.period_ms, setup.buffer_ms, setup.warmup_s, setup.sender_prio, pair.a, pair.b
    );
    let mut port = 5004u16;
    let mut results = Vec::new();
    for pkt_us in packets {
        let pkt_us = pkt_us as u32;
        let name = if pkt_us == 125 {
            "125 us packets".to_string()
        } else {
            format!("{} ms packets", pkt_us as f64 / 1000.0)
        };
        // Sweep: passing (link, target) points, largest first. A failing X does not
        // end the sweep (a load spike can fail one point); two failing X in a row do.
        let mut passing: Vec<(f64, f64)> = Vec::new();
        let mut fails_in_a_row = 0;
        for &link in &offsets {
            let mut held = None;
            for split in [2.0, 1.0] {
                let target = link - split;
                if target < min_target_ms(setup.buffer_ms) {
                    continue;
                }
                port += 2;
                let r = run_once(&pair, bin, &setup, port, pkt_us, link, target, sweep_s);
                print_run(&format!("{name} sweep"), link, target, sweep_s, &r);
                if r.ok {
                    held = Some(target);
                    break;
                }
            }
            match held {
                Some(t) => {
                    passing.push((link, t));
                    fails_in_a_row = 0;
                }
                None => {
                    fails_in_a_row += 1;
                    if fails_in_a_row == 2 {
                        break;
                    }
                }
            }
        }
        // Hold the smallest passing point; on failure the next larger one.
        let mut result = None;
        for &(link, target) in passing.iter().rev().take(2) {
            port += 2;
            let r = run_once(&pair, bin, &setup, port, pkt_us, link, target, hold_s);
            print_run(&format!("{name} HOLD"), link, target, hold_s, &r);
            if r.ok {
                result = Some((link, target, r));
                break;
            }
        }
        let floor = pkt_us as f64 / 1000.0 + setup.buffer_ms;
        let line = match &result {
            Some((link, target, r)) => format!(
                "RESULT {name}: minimum stable link offset {link:.2} ms (playout target {target:.2} ms) \
                 held {hold_s} s after {} s warm-up: late {} lost {} underruns {} xruns {} resyncs {} \
                 (whole run late/lost/underruns/xruns/resyncs {:?}), max |latency error| \
                 {:.2} ms, max cycle {} us (floor packet time + device buffer {floor:.3} ms, ratio {:.2})",
                setup.warmup_s,
                r.late,
                r.lost,
                r.underruns,
                r.xruns,
                r.resyncs,
                r.whole,
                r.max_abs_latency_error_ms,
                r.max_cycle_us,
                link / floor
            ),
            None => format!(
                "RESULT {name}: no link offset held (swept {:?}, passing {:?}; floor {floor:.3} ms)",
                offsets, passing
            ),
        };
        println!("{line}");
        results.push(line);
    }
    println!("---");
    for l in &results {
        println!("{l}");
    }
}
