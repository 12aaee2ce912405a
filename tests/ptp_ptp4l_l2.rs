//! Real-peer PTP tests over the IEEE 802.3 transport (IEEE 1588-2019 Annex
//! E, ethertype 0x88F7): ptp4l `-2 -S` (Layer 2, software timestamps) as
//! grandmaster with our `--transport l2` slave, and our Layer-2 master with a
//! ptp4l `-2` free-running slave, over veth in network namespaces. Needs
//! root and linuxptp; ptp4l runs without CAP_SYS_TIME and free-running, so
//! this machine's clock is never touched.
//!
//! Master and slave share CLOCK_REALTIME, so our clock minus CLOCK_REALTIME
//! (`clock_minus_realtime_ns`) is our error, and a ptp4l slave's raw
//! master_offset is its estimate of our master's error.

mod ptp_common;
use ptp_common::*;

use std::time::{Duration, Instant};

/// The rig's grandmaster config over Layer 2 (`network_transport L2` is
/// `ptp4l -2`).
fn gm_conf_l2() -> String {
    GM_CONF.replace("network_transport UDPv4", "network_transport L2")
}

#[test]
#[ignore = "needs root: network namespaces, ptp4l"]
fn ptp4l_l2_grandmaster_our_l2_slave_locks_within_bounds() {
    let (dir, net, _solo) = rig();
    let conf = gm_conf_l2();
    assert!(conf.contains("network_transport L2"));
    let _gm = ptp4l(&net.a, &net.if_a, &conf, dir.path(), "gm");
    let (_us, rx) = ours(
        &net.b,
        &[
            "--iface",
            &net.if_b,
            "--slave-only",
            "--transport",
            "l2",
            "--timestamping",
            "software",
            "--duration",
            "32",
        ],
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
    let log = std::fs::read_to_string(dir.path().join("gm.log")).unwrap_or_default();
    let t = |v: &serde_json::Value| v["t_s"].as_f64().unwrap_or(0.0);
    let first = lines
        .iter()
        .find(|v| v["parent"].is_string())
        .unwrap_or_else(|| panic!("never saw the grandmaster; ptp4l log:\n{log}"));
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
        "ptp4l -2 GM {gm}: first status with parent at {:.0}s, locked {lock_after:.0}s later; clock−realtime over {} s: \
rms {rms:.0} ns max {max:.0} ns p1/p50/p99 {p1:.0}/{p50:.0}/{p99:.0} ns; delay {} ns; outliers {}; frame drops {}; \
delay_resp {}",
        t(first),
        errs.len(),
        last["mean_path_delay_ns"],
        last["outliers"],
        last["frame_drops"],
        last["counters"]
    );
    assert_eq!(last["transport"], "l2");
    assert_eq!(last["timestamping"], "software");
    // Two-way (Delay_Req answered by ptp4l over Layer 2), not one-way.
    assert_eq!(last["mode"], "sw", "{last}");
    assert!(last["mean_path_delay_ns"].as_i64().is_some(), "{last}");
    assert_eq!(last["gm_identity"].as_str(), Some(gm.as_str()));
    assert_eq!(last["frame_drops"]["short"], 0);
    assert!(
        lock_after <= 3.0,
        "locked {lock_after} s after the first Sync"
    );
    assert!(errs.len() >= 10, "only {} locked samples", errs.len());
    // The UDP test's bounds (same software-timestamp noise).
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
fn our_l2_master_ptp4l_l2_free_running_slave_follows() {
    let (dir, net, _solo) = rig();
    let (_us, rx) = ours(
        &net.a,
        &[
            "--iface",
            &net.if_a,
            "--master-only",
            "--transport",
            "l2",
            "--timestamping",
            "software",
            "--duration",
            "30",
        ],
    );
    let last = ptp4l_slave_follows_our_master(
        "ptp4l -2 slave of our L2 master",
        &net,
        dir.path(),
        true,
        &rx,
    );
    assert_eq!(last["transport"], "l2");
}

/// Frames that are not plain PTP reach the packet socket and are counted,
/// not taken: VLAN-tagged PTP frames and runts, injected from the peer's
/// namespace with a raw socket, while our slave follows a ptp4l L2
/// grandmaster undisturbed.
#[test]
#[ignore = "needs root: network namespaces, ptp4l"]
fn l2_slave_counts_tagged_and_short_frames() {
    let (dir, net, _solo) = rig();
    let _gm = ptp4l(&net.a, &net.if_a, &gm_conf_l2(), dir.path(), "gm");
    let (_us, rx) = ours(
        &net.b,
        &[
            "--iface",
            &net.if_b,
            "--slave-only",
            "--transport",
            "l2",
            "--timestamping",
            "software",
            "--duration",
            "14",
        ],
    );
    // Wait for the first status, then inject from namespace a.
    let _ = rx.recv_timeout(Duration::from_secs(10));
    let sent = inject_frames(&net.a, &net.if_a);
    let mut last = None;
    while let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
        last = Some(v);
    }
    let last = last.expect("status");
    println!(
        "injected {sent:?}; frame drops {}; state {} servo {}",
        last["frame_drops"], last["state"], last["servo"]
    );
    // The kernel takes the tag off a frame of VLAN 5 (no such VLAN device
    // here) and delivers it marked PACKET_OTHERHOST: counted, not taken.
    assert!(
        last["frame_drops"]["other_host"].as_u64().unwrap_or(0) >= 3,
        "{last}"
    );
    assert!(
        last["frame_drops"]["short"].as_u64().unwrap_or(0) >= 3,
        "{last}"
    );
    assert_eq!(last["state"], "SLAVE");
}

/// Sends, from namespace `ns` on `iface`, 3 VLAN-tagged (VID 5) PTP frames
/// and 3 runts (ethertype 0x88F7, 10 bytes of payload) to
/// 01-1B-19-00-00-00, with `python3`'s raw socket. Returns python's output.
fn inject_frames(ns: &str, iface: &str) -> String {
    let py = format!(
        "import socket\n\
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
s.bind(('{iface}', 0))\n\
dst = bytes([1, 0x1b, 0x19, 0, 0, 0]); src = bytes([2, 0, 0, 0, 0, 9])\n\
msg = bytes([0x0b, 0x02, 0, 64]) + bytes(60)\n\
for _ in range(3): s.send(dst + src + bytes([0x81, 0, 0, 5, 0x88, 0xf7]) + msg); \
s.send(dst + src + bytes([0x88, 0xf7]) + bytes(10))\n\
print('sent 6')\n"
    );
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &py])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "inject: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
