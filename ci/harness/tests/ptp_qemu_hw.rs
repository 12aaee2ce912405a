//! Issue 16 Proof 3, short form: PTP with hardware timestamps end to end in
//! the qemu rig (`ci/qemu/run-ptp-hw.sh`: one tcg guest, two emulated igb
//! NICs joined by a qemu hub; ptp4l `-2 -H` grandmaster on one, our slave
//! over Layer 2 with hardware timestamps on the other, then a ptp4l `-2 -H`
//! free_running slave). Truth is the grandmaster's PHC, read in the same
//! guest at the same CLOCK_MONOTONIC_RAW instant as our clock. Needs root
//! and the qemu rig (ci/qemu/setup.sh); about 3 minutes of tcg.

use std::process::Command;

/// Seconds per phase.
const SECS: u64 = 30;

fn summary(text: &str, tag: &str) -> serde_json::Value {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .unwrap_or_else(|| panic!("no {tag} in the guest output:\n{text}"))
}

#[test]
#[ignore = "needs root: qemu rig (two igb NICs)"]
fn qemu_igb_hardware_timestamps_our_l2_slave_against_the_grandmaster_phc() {
    let work = tempfile::tempdir().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(format!("{root}/ci/qemu/run-ptp-hw.sh"))
        .arg(SECS.to_string())
        .env("WORK", work.path())
        .env("BIN", env!("CARGO_BIN_EXE_ptp_harness"))
        .output()
        .expect("run ci/qemu/run-ptp-hw.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text
        .lines()
        .filter(|l| l.contains("GUEST") || l.contains("SUMMARY") || l.contains("latch"))
    {
        println!("{l}");
    }
    let ours = summary(&text, "HWSUMMARY ");
    let theirs = summary(&text, "PTP4L_SUMMARY ");
    println!("ours {ours}\nptp4l {theirs}");
    assert!(out.status.success(), "guest run failed:\n{text}");
    let last = &ours["last"];
    // Hardware receive stamps arrived (the qemu latch shim frees the latch).
    assert!(
        last["rx_stamps"]["hardware"].as_u64().unwrap_or(0) > 10 * SECS / 2,
        "{last}"
    );
    assert_eq!(last["hardware"], true);
    assert!(ours["samples"].as_u64().unwrap_or(0) >= 10, "{ours}");
    assert!(theirs["samples"].as_u64().unwrap_or(0) >= 10, "{theirs}");
    assert!(
        last["delay_resp"].as_u64().unwrap_or(0) > 5,
        "two-way: {last}"
    );
    assert_eq!(last["rx_stamps"]["missing"], 0, "{last}");
    // Measured (30 s phases): ours rms 2.97 µs, max 9.4 µs; ptp4l's raw
    // offset rms 3.9 µs, max 16 µs (tcg: stamps in qemu's virtual time,
    // millisecond scheduling stalls). Bounds with margin for a loaded host.
    let rms = ours["rms_ns"].as_f64().unwrap();
    assert!(rms < 20_000.0, "{ours}");
    assert!(ours["max_ns"].as_f64().unwrap() < 100_000.0, "{ours}");
    println!(
        "our rms / ptp4l raw rms = {:.2}",
        rms / theirs["rms_ns"].as_f64().unwrap_or(f64::NAN)
    );
}
