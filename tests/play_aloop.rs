//! The whole engine on a real kernel ALSA driver: in a qemu guest with
//! snd-aloop whose clock runs +1000 ppm fast (`PCM Rate Shift 100000` =
//! 99900), `aes67 demo` receives its loopback tone stream and plays it with
//! the drift-compensated SCHED_FIFO playout thread to hw:Loopback,0,0;
//! arecord records hw:Loopback,1,0. Asserts zero xruns, underruns, lost and
//! late packets, a steered ratio near the skew, and a recorded tone without
//! a single discontinuity. Rig: ci/qemu (tcg, Debian 6.12 kernel, host root
//! over 9p). Needs root.

use std::process::Command;

const SECS: u64 = 40;

#[test]
#[ignore = "needs root: qemu rig (snd-aloop guest)"]
fn aes67_play_to_snd_aloop_at_plus_1000_ppm() {
    let work = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/ci/qemu/runvm.sh"))
        .arg(format!("{root}/ci/qemu/guest-play.sh"))
        .args([env!("CARGO_BIN_EXE_aes67"), &SECS.to_string(), "99900"])
        .env("WORK", work.path())
        .env("TIMEOUT", (SECS + 240).to_string())
        .output()
        .expect("run ci/qemu/runvm.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text
        .lines()
        .filter(|l| l.contains("GUEST") || l.contains("aes67"))
    {
        println!("{l}");
    }
    assert!(
        out.status.success(),
        "guest run failed: {}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(work.path().join("play.json")).unwrap();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fin = lines
        .iter()
        .find(|v| v.get("final").is_some())
        .expect("final stats");
    println!("final: {fin}");
    for k in ["lost", "late", "xruns", "underruns", "duplicates"] {
        assert_eq!(fin[k], 0, "{k}: {fin}");
    }
    // The steered ratio (device frames per media frame − 1) over the last
    // 15 s: the +1000 ppm skew plus a small latency correction.
    let ratios: Vec<f64> = lines
        .iter()
        .filter(|v| v.get("final").is_none())
        .filter_map(|v| v["ratio_ppm"].as_f64())
        .collect();
    assert!(ratios.len() >= 30, "{} status lines", ratios.len());
    let tail = &ratios[ratios.len() - 15..];
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    println!("steered ratio, last 15 s: mean {mean:+.1} ppm ({tail:?})");
    assert!(
        (mean - 1001.0).abs() <= 250.0,
        "ratio {mean} ppm vs +1001 ppm skew"
    );
    // Tone continuity: a sine obeys x[n] = 2cos(w)x[n-1] - x[n-2]; any click
    // (dropped, repeated or zero samples) leaves a large residual.
    let r = hound::WavReader::open(work.path().join("rec.wav")).unwrap();
    let x: Vec<f64> = r
        .into_samples::<i32>()
        .step_by(2)
        .map(|s| s.unwrap() as f64 / 2f64.powi(31))
        .collect();
    let amp = 10f64.powf(-12.0 / 20.0);
    let first = x
        .iter()
        .position(|v| v.abs() > amp * 0.5)
        .expect("tone recorded");
    let last = x.len() - x.iter().rev().position(|v| v.abs() > amp * 0.5).unwrap();
    assert!(
        last - first > 48_000 * (SECS as usize - 10),
        "tone only {} frames",
        last - first
    );
    let c = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 * (1.0 + 1001e-6) / 48_000.0).cos();
    let (from, to) = (first + 480, last - 480);
    let mut max_res = 0f64;
    let mut bad = 0usize;
    for n in from..to {
        let res = (x[n] - c * x[n - 1] + x[n - 2]).abs();
        max_res = max_res.max(res);
        if res > amp * 0.01 {
            bad += 1;
        }
    }
    println!(
        "recorded tone: {} frames, max predictor residual {:.2e} of amplitude",
        to - from,
        max_res / amp
    );
    assert_eq!(bad, 0, "{bad} discontinuities (max residual {max_res})");
}
