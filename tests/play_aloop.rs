//! The whole engine on a real kernel ALSA driver: in a qemu guest with
//! snd-aloop whose clock runs +1000 ppm fast (`PCM Rate Shift 100000` =
//! 99900), `aes67 demo` receives its loopback tone stream and plays it with
//! the drift-compensated SCHED_FIFO playout thread to hw:Loopback,0,0;
//! arecord records hw:Loopback,1,0. Asserts zero xruns, underruns, lost and
//! late packets, a steered ratio near the skew, and a recorded tone without
//! a single discontinuity. Rig: ci/qemu (tcg, Debian 6.12 kernel, host root
//! over 9p). Needs root.
//!
//! The same boot then plays an external sender (issue 17): a GStreamer pipeline in
//! the guest (`audiotestsrc ! rtpL24pay ! udpsink`, 4 ms packets, loopback multicast)
//! received by `aes67 play … --output alsa:hw:Loopback,0,0` with the emulated-CPU
//! settings, for `AES67_PLAY_EXT_SECONDS` (0 = skip, the default; `ci/test.sh` sets it) at the shifts
//! +1001 ppm (99900) and −999 ppm (100100) at once (two loopback subdevices, one sender,
//! started 3 s after the receivers, which wait for it; sender and recorders run SCHED_FIFO 80,
//! as the other machines they stand in for), with both receivers SIGSTOPped for
//! 300 ms half-way. Asserts per shift: at most one underrun/xrun (no second one), recovery
//! from the stall within [`EXT_RECOVERY_S`] (10 s means of the filtered latency error
//! within ±2 ms from then on, with no second underrun), the mean
//! ratio over the last minute within 50 ppm of the shift, and no discontinuity in
//! the recorded tone outside the disturbance window (stall − 5 s … stall + bound).

const SECS: u64 = 40;
/// Recovery bound of the external-sender runs after the stall (s): the virtual-time
/// bound (15 s) plus margin for tcg's stalls and the 2 s filter.
const EXT_RECOVERY_S: f64 = 30.0;

#[test]
#[ignore = "needs root: qemu rig (snd-aloop guest)"]
fn aes67_play_to_snd_aloop_at_plus_1000_ppm() {
    let work = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let ext: u64 = std::env::var("AES67_PLAY_EXT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let run = aes67_rig::qemu::run_guest(
        root,
        "guest-play.sh",
        &[
            env!("CARGO_BIN_EXE_aes67"),
            &SECS.to_string(),
            "99900",
            &ext.to_string(),
        ],
        work.path(),
        SECS + 240 + if ext > 0 { ext + 150 } else { 0 },
        &[],
        &["GUEST", "aes67"],
    );
    assert!(run.ok, "guest run failed (its last lines are above)");
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
    // The external-sender runs are checked (and printed) even if the demo's
    // recording failed, so one boot reports everything.
    let mut fails = Vec::new();
    if bad != 0 {
        fails.push(format!(
            "demo: {bad} discontinuities (max residual {max_res})"
        ));
    }
    if ext > 0 {
        for (shift, ppm) in [(99900, 1001.0), (100100, -999.0)] {
            if let Err(e) = check_external(work.path(), shift, ppm, ext) {
                fails.push(e);
            }
        }
    }
    if !fails.is_empty() {
        // keep the guest's files (JSON rows, recordings) for a post-mortem
        let kept = work.keep();
        panic!("{fails:#?}\nguest files kept in {}", kept.display());
    }
}

/// Checks one external-sender run (see the module docs); prints its figures.
fn check_external(dir: &std::path::Path, shift: u32, ppm: f64, ext: u64) -> Result<(), String> {
    let w = dir.join(format!("ext-{shift}"));
    let read = |suffix: &str| {
        std::fs::read_to_string(w.with_extension(suffix)).map_err(|e| format!("{shift}: {e}"))
    };
    let stall: Vec<f64> = read("stall")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let t_stall = stall
        .get(1)
        .zip(stall.first())
        .map(|(b, a)| b - a)
        .unwrap_or(ext as f64 / 2.0);
    // The sender starts 3 s after the receivers (guest-play.sh): the recording's
    // time base (its first tone frame) is the sender's start.
    let gst_start: Option<f64> = std::fs::read_to_string(dir.join("ext.gst-start"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let t_stall_rec = match (gst_start, stall.get(1)) {
        (Some(g), Some(b)) => b - g,
        _ => t_stall - 3.0,
    };
    let lines: Vec<serde_json::Value> = read("json")?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fin = lines
        .iter()
        .find(|v| v.get("final").is_some())
        .ok_or(format!("{shift}: no final stats"))?
        .clone();
    let rows: Vec<(f64, f64, f64)> = lines
        .iter()
        .filter_map(|v| {
            Some((
                v["t_s"].as_f64()?,
                v["ratio_ppm"].as_f64()?,
                v["latency_error_ms"].as_f64()?,
            ))
        })
        .collect();
    if rows.len() < (ext as usize).saturating_sub(20) {
        return Err(format!("{shift}: only {} status rows", rows.len()));
    }
    // The run at a glance: 10 s means of the steered ratio and the filtered latency error.
    let glance: Vec<String> = rows
        .chunks(10)
        .map(|c| {
            let n = c.len() as f64;
            format!(
                "{:.0}s {:+.0}/{:+.1}",
                c[0].0,
                c.iter().map(|x| x.1).sum::<f64>() / n,
                c.iter().map(|x| x.2).sum::<f64>() / n
            )
        })
        .collect();
    println!(
        "EXTERNAL shift {shift}: 10 s means (ppm/ms): {}",
        glance.join(" ")
    );
    // Recovered = playing on time again: from the first 10 s window after the stall
    // from which every 10 s mean of the filtered latency error is within ±2 ms. The
    // ratio is judged over the last minute (below), not per 10 s: tcg's device-clock
    // readings make 10 s means of the steered ratio swing ±70 ppm around the shift in
    // undisturbed stretches (CI run, session 5), while the playout time stays within
    // ±1 ms. The virtual-time suite (tests/rate_disturbance.rs) judges the ratio's
    // own recovery against the known truth.
    let mut last_bad = t_stall;
    let mut worst_ratio_10s = 0f64;
    for win in rows.windows(10) {
        let t = win[9].0;
        let r = win.iter().map(|x| x.1).sum::<f64>() / 10.0;
        let e = win.iter().map(|x| x.2).sum::<f64>() / 10.0;
        if win[0].0 > 20.0 {
            worst_ratio_10s = worst_ratio_10s.max((r - ppm).abs());
            if e.abs() >= 2.0 {
                last_bad = last_bad.max(t);
            }
        }
    }
    println!(
        "EXTERNAL shift {shift}: worst 10 s mean of the ratio after settling: {worst_ratio_10s:.0} ppm from the shift"
    );
    let recovery = last_bad - t_stall;
    let end = rows.last().unwrap().0;
    let tail: Vec<f64> = rows
        .iter()
        .filter(|x| x.0 > end - 60.0)
        .map(|x| x.1)
        .collect();
    let mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    let max_err = rows
        .iter()
        .filter(|x| x.0 > 20.0)
        .map(|x| x.2.abs())
        .fold(0.0, f64::max);
    // Recording: discontinuities outside the stall window.
    let r = hound::WavReader::open(w.with_extension("wav")).map_err(|e| format!("{shift}: {e}"))?;
    let x: Vec<f64> = r
        .into_samples::<i32>()
        .step_by(2)
        .map(|s| s.unwrap_or(0) as f64 / 2f64.powi(31))
        .collect();
    let amp = 10f64.powf(-12.0 / 20.0);
    let first = x.iter().position(|v| v.abs() > amp * 0.5).unwrap_or(0);
    let last = x.len()
        - x.iter()
            .rev()
            .position(|v| v.abs() > amp * 0.5)
            .unwrap_or(0);
    let c = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 * (1.0 + ppm * 1e-6) / 48_000.0).cos();
    let (mut bad_in, mut bad_out) = (0usize, 0usize);
    let mut first_bad_out = None;
    for n in (first + 480)..last.saturating_sub(480) {
        if (x[n] - c * x[n - 1] + x[n - 2]).abs() > amp * 0.01 {
            // recording time since the first tone frame ≈ time since the sender's start
            let t = (n - first) as f64 / 48_000.0;
            if t > t_stall_rec - 5.0 && t < t_stall_rec + EXT_RECOVERY_S {
                bad_in += 1;
            } else {
                bad_out += 1;
                first_bad_out.get_or_insert(t);
            }
        }
    }
    let g = |k: &str| fin[k].as_u64().unwrap_or(u64::MAX);
    println!(
        "EXTERNAL shift {shift} ({ppm:+} ppm): stall at {t_stall:.1} s, recovery {recovery:.1} s,          last-minute mean ratio {mean:+.1} ppm, max |filtered err| {max_err:.2} ms,          underruns {} xruns {} resyncs {} rate_resets {} lost {} late {}, tone {:.1} s,          discontinuities in the stall window {bad_in}, outside {bad_out} (first at {first_bad_out:?} s)",
        g("underruns"),
        g("xruns"),
        fin["resyncs"],
        fin["rate_resets"],
        fin["lost"],
        fin["late"],
        (last - first) as f64 / 48_000.0,
    );
    let mut errs = Vec::new();
    if g("underruns").saturating_add(g("xruns")) > 1 {
        errs.push("second underrun/xrun".to_string());
    }
    if recovery > EXT_RECOVERY_S {
        errs.push(format!("recovery {recovery:.1} s > {EXT_RECOVERY_S} s"));
    }
    if (mean - ppm).abs() > 50.0 {
        errs.push(format!("last-minute ratio {mean:+.1} ppm vs {ppm:+} ppm"));
    }
    if bad_out > 0 {
        errs.push(format!(
            "{bad_out} discontinuities outside the stall window"
        ));
    }
    if (last - first) < 48_000 * (ext as usize).saturating_sub(20) {
        errs.push(format!("tone only {} frames", last - first));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("shift {shift}: {errs:?}"))
    }
}
