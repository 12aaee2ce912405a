//! Real-peer PTP tests: ptp4l (linuxptp) as grandmaster and as slave, with
//! kernel software timestamps over veth in network namespaces. Needs root and
//! linuxptp; skips with a printed reason otherwise. ptp4l runs without
//! CAP_SYS_TIME and free-running, so this machine's clock is never touched.
//!
//! Master and slave share CLOCK_REALTIME, so our clock minus CLOCK_REALTIME
//! (`clock_minus_realtime_ns`) is our error, and a ptp4l slave's raw
//! master_offset is its estimate of our master's error.

mod ptp_common;
use ptp_common::*;

use std::time::{Duration, Instant};

#[test]
#[ignore = "needs root: network namespaces, ptp4l"]
fn ptp4l_grandmaster_our_slave_locks_within_3s_and_stays_within_bounds() {
    let (dir, net, _solo) = rig();
    let _gm = ptp4l(&net.a, &net.if_a, GM_CONF, dir.path(), "gm");
    let (_us, rx) = ours(
        &net.b,
        &["--iface", &net.if_b, "--slave-only", "--duration", "32"],
    );
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(v) => lines.push(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(_) => break,
        }
    }
    let t = |v: &serde_json::Value| v["t_s"].as_f64().unwrap_or(0.0);
    let first = lines
        .iter()
        .find(|v| v["parent"].is_string())
        .expect("never saw the grandmaster");
    let gm = first["gm_identity"].as_str().unwrap().to_string();
    let locked = lines
        .iter()
        .find(|v| {
            v["state"] == "SLAVE" && v["servo"].as_str().is_some_and(|s| s.starts_with("locked"))
        })
        .expect("never locked");
    let lock_after = t(locked) - t(first);
    let errs: Vec<f64> = lines
        .iter()
        .filter(|v| t(v) >= t(locked) + 3.0 && v["state"] == "SLAVE")
        .filter_map(|v| v["clock_minus_realtime_ns"].as_f64())
        .collect();
    let last = lines.last().unwrap();
    let (rms, max, p1, p50, p99) = stats(&errs);
    println!(
        "ptp4l GM {gm}: first status with parent at {:.0}s, locked {lock_after:.0}s later; clock−realtime over {} s: \
rms {rms:.0} ns max {max:.0} ns p1/p50/p99 {p1:.0}/{p50:.0}/{p99:.0} ns; delay {} ns; outliers {}",
        t(first),
        errs.len(),
        last["mean_path_delay_ns"],
        last["outliers"]
    );
    assert_eq!(last["timestamping"], "software");
    assert_eq!(last["mode"], "sw");
    assert_eq!(last["gm_identity"].as_str(), Some(gm.as_str()));
    // Status lines come once per second, so "within 3 s" is measured to ±1 s.
    assert!(
        lock_after <= 3.0,
        "locked {lock_after} s after the first Sync"
    );
    assert!(errs.len() >= 10, "only {} locked samples", errs.len());
    // Measured here: |error| ≤ 1.3 µs; bounds with margin for a loaded 2-core CI machine.
    assert!(rms < 3_000.0, "rms {rms}");
    assert!(max < 15_000.0, "max {max}");
    assert!(
        last["servo"].as_str().unwrap().starts_with("locked"),
        "ended {}",
        last["servo"]
    );
}

#[test]
#[ignore = "needs root: network namespaces, ptp4l"]
fn our_master_ptp4l_free_running_slave_follows() {
    let (dir, net, _solo) = rig();
    // Default: PTP timescale (TAI = CLOCK_REALTIME + 37 s, currentUtcOffsetValid);
    // ptp4l with software timestamps subtracts currentUtcOffset, so offsets stay small.
    let (_us, rx) = ours(
        &net.a,
        &["--iface", &net.if_a, "--master-only", "--duration", "30"],
    );
    ptp4l_slave_follows_our_master("ptp4l slave of our master", &net, dir.path(), false, &rx);
}

/// Master loss and return with a real ptp4l grandmaster: HOLDOVER (with its
/// age, error still small) while ptp4l is gone, then SLAVE/locked again —
/// the seeds' "UNLOCKED and never relocks" failure, against a real peer.
#[test]
#[ignore = "needs root: network namespaces, ptp4l"]
fn ptp4l_grandmaster_loss_holdover_and_relock() {
    let (dir, net, _solo) = rig();
    let gm = ptp4l(&net.a, &net.if_a, GM_CONF, dir.path(), "gm");
    let (_us, rx) = ours(
        &net.b,
        &["--iface", &net.if_b, "--slave-only", "--duration", "150"],
    );
    let locked = |v: &serde_json::Value| {
        v["state"] == "SLAVE" && v["servo"].as_str().is_some_and(|s| s.starts_with("locked"))
    };
    let wait_for =
        |pred: &dyn Fn(&serde_json::Value) -> bool, secs: u64, what: &str| -> serde_json::Value {
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                if let Ok(v) = rx.recv_timeout(Duration::from_secs(2))
                    && pred(&v)
                {
                    return v;
                }
            }
            panic!("timed out waiting for {what}");
        };
    let first = wait_for(&locked, 25, "first lock");
    // Let the long-term frequency (the holdover estimate) settle over 15 s
    // of lock, then kill the grandmaster.
    wait_for(
        &|v| locked(v) && v["locked_for_s"].as_f64().unwrap_or(0.0) >= 15.0,
        30,
        "15 s locked",
    );
    drop(gm);
    let lost_at = Instant::now();
    let hold = wait_for(&|v| v["state"] == "HOLDOVER", 15, "HOLDOVER");
    let hold_seen = lost_at.elapsed().as_secs_f64();
    // The grandmaster stays away for 60 s (issue 13's fault rig).
    let hold_later = wait_for(
        &|v| v["state"] == "HOLDOVER" && v["holdover_age_s"].as_f64().unwrap_or(0.0) > 60.0,
        60,
        "60 s of holdover",
    );
    let herr = hold_later["clock_minus_realtime_ns"].as_i64().unwrap();
    let _gm2 = ptp4l(&net.a, &net.if_a, GM_CONF, dir.path(), "gm2");
    let back_at = Instant::now();
    let relock = wait_for(&locked, 30, "relock after the grandmaster returned");
    let relock_s = back_at.elapsed().as_secs_f64();
    let after = wait_for(
        &|v| locked(v) && v["locked_for_s"].as_f64().unwrap_or(0.0) >= 3.0,
        10,
        "3 s locked",
    );
    println!(
        "locked at t={}s; HOLDOVER {:.1}s after the GM died (age {}s); holdover error after {:.0}s: {herr} ns; \
relocked {relock_s:.1}s after ptp4l restarted (ptp4l itself waits ~7 s before it masters), error then {} ns",
        first["t_s"],
        hold_seen,
        hold["holdover_age_s"],
        hold_later["holdover_age_s"].as_f64().unwrap(),
        after["clock_minus_realtime_ns"]
    );
    assert_eq!(hold["servo"], "holdover");
    // 60 s of holdover on a frequency from software timestamps: 50 µs is
    // 0.8 ppm, 2.4 samples at 48 kHz (measured 2.2-23.5 µs after 3 s of lock).
    assert!(herr.abs() < 50_000, "holdover error {herr}");
    assert_eq!(relock["gm_identity"], first["gm_identity"]);
    assert!(relock_s < 20.0, "relock {relock_s}");
    assert!(after["clock_minus_realtime_ns"].as_i64().unwrap().abs() < 10_000);
}
