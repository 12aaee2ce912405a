//! The sender's ALSA capture source (issue 11, proof 5) on a real kernel ALSA
//! driver: in the qemu guest with snd-aloop, two loopback subdevices at once, one
//! whose clock runs +1001 ppm (`PCM Rate Shift 100000` = 99900) and one −999 ppm
//! (100100). On each, GStreamer's `audiotestsrc` piped into `aplay` plays a 1 kHz
//! tone into `hw:Loopback,0,N`; `aes67 send --source alsa:hw:Loopback,1,N` captures
//! it, steers it onto the media clock (CLOCK_MONOTONIC) and sends L24 to loopback
//! multicast (TTL 0, lo). In the guest `ci/qemu/rtp_arrivals.py` logs every
//! packet's kernel arrival time, RTP timestamp and sequence number and records its
//! payload (ci/qemu/guest-capture.sh).
//!
//! Over `AES67_CAPTURE_SECONDS` (default 300), per shift:
//! - the sender reports 0 overruns, 0 underruns, no silence, no skipped packets, and
//!   its capture loop 0 resyncs, 0 re-primes, 0 ring underruns or overflows;
//! - no packet lost (sequence numbers) and the RTP timestamps keep the nominal rate:
//!   the slope of arrival time against RTP timestamp / 48 kHz is within ±50 ppm;
//! - the received tone has no discontinuity (second-order predictor residual, as in
//!   tests/play_aloop.rs), and its frequency is 1 kHz × (1 + skew) within 50 ppm:
//!   every captured frame arrived, resampled onto the nominal media rate (an
//!   unsteered capture would give 1 kHz and under- or overrun the ring);
//! - the steered ratio (media per device frame) over the last minute is −skew
//!   within 100 ppm.
//!
//! And bad input: with the cable open at 2 ch / 48 kHz, `ch=4` and `rate=44100`
//! are refused by the capture side, each error naming the URL's field.
//!
//! Needs root (the qemu rig, ci/qemu).

#[test]
#[ignore = "needs root: qemu rig (snd-aloop guest)"]
fn aes67_send_from_snd_aloop_capture_at_plus_minus_1000_ppm() {
    let work = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let secs = std::env::var("AES67_CAPTURE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(300);
    let run = aes67_rig::qemu::run_guest(
        root,
        "guest-capture.sh",
        &[env!("CARGO_BIN_EXE_aes67"), &secs.to_string()],
        work.path(),
        secs + 300,
        // the recordings stay in the guest's tmpfs until the end (~0.3 MB/s each)
        &[("MEM", (1024 + secs * 2).to_string())],
        &["GUEST", "aes67"],
    );
    let mut fails = Vec::new();
    if !run.ok {
        fails.push("guest run failed (its last lines are above)".to_string());
    }
    // Bad input: the cable is open at 2 ch / 48 kHz, so the capture side refuses
    // 4 channels and 44.1 kHz; the error names the URL's field.
    for (file, field, what) in [
        ("refuse-ch.err", "in the stream's ch=", "refuses channels 4"),
        (
            "refuse-rate.err",
            "in the stream's rate=",
            "refuses rate 44100 Hz",
        ),
    ] {
        let e = std::fs::read_to_string(work.path().join(file)).unwrap_or_default();
        println!("CAPTURE bad input: {}", e.trim());
        if !(e.contains(field) && e.contains(what) && e.contains("--source=alsa:hw:Loopback,1,0")) {
            fails.push(format!("{file}: {e:?} does not name {field:?}"));
        }
    }
    for (shift, ppm) in [(99900, 1001.0), (100100, -999.0)] {
        if let Err(e) = check(work.path(), shift, ppm, secs) {
            fails.push(e);
        }
    }
    if !fails.is_empty() {
        let kept = work.keep();
        panic!("{fails:#?}\nguest files kept in {}", kept.display());
    }
}

/// Least-squares slope and intercept of y over x, and the residuals' RMS and max.
fn fit(xs: &[f64], ys: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let mut ss = 0.0;
    let mut mx_r = 0f64;
    for (x, y) in xs.iter().zip(ys) {
        let r = y - a - b * x;
        ss += r * r;
        mx_r = mx_r.max(r.abs());
    }
    (b, a, (ss / n).sqrt(), mx_r)
}

fn check(dir: &std::path::Path, shift: u32, ppm: f64, secs: u64) -> Result<(), String> {
    let w = dir.join(format!("cap-{shift}"));
    let read = |suffix: &str| {
        std::fs::read(w.with_extension(suffix)).map_err(|e| format!("{shift}: {suffix}: {e}"))
    };
    let mut errs = Vec::new();

    // The sender's own report.
    let json = String::from_utf8_lossy(&read("json")?).to_string();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fin = lines
        .iter()
        .find(|v| v.get("final").is_some())
        .ok_or(format!("{shift}: no final stats"))?
        .clone();
    let rows: Vec<(f64, f64)> = lines
        .iter()
        .filter(|v| v.get("final").is_none())
        .filter_map(|v| Some((v["t_s"].as_f64()?, v["capture"]["ratio_ppm"].as_f64()?)))
        .collect();
    let end = rows.last().map(|r| r.0).unwrap_or(0.0);
    let tail: Vec<f64> = rows
        .iter()
        .filter(|r| r.0 > end - 60.0)
        .map(|r| r.1)
        .collect();
    let ratio = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    let g = |k: &str| fin[k].as_u64().unwrap_or(u64::MAX);
    let c = &fin["capture"];
    println!(
        "CAPTURE shift {shift} ({ppm:+} ppm): overruns {}, sender underruns {}, silence {} frames, skipped {}, \
         send errors {}, ring underruns {} overflows {}, resyncs {}, rate resets {}, \
         start error {} ms, last-minute mean ratio {ratio:+.1} ppm (expected {:+.0}), rt {}",
        g("overruns"),
        g("underruns"),
        g("silence_frames"),
        g("skipped_packets"),
        g("send_errors"),
        c["ring_underruns"],
        c["ring_overflows"],
        c["resyncs"],
        c["rate_resets"],
        c["start_error_ms"],
        -ppm,
        c["rt"],
    );
    for k in [
        "overruns",
        "underruns",
        "silence_frames",
        "skipped_packets",
        "send_errors",
    ] {
        if g(k) != 0 {
            errs.push(format!("{k} = {}", fin[k]));
        }
    }
    // The capture loop's own recovery never acted: a resync is a drop or an insert
    // (a click), a re-prime a fault of the loop.
    for k in ["resyncs", "rate_resets", "ring_underruns", "ring_overflows"] {
        if c[k].as_u64() != Some(0) {
            errs.push(format!("capture {k} = {}", c[k]));
        }
    }
    if (ratio + ppm).abs() > 100.0 {
        errs.push(format!(
            "last-minute ratio {ratio:+.1} ppm vs {:+} ppm",
            -ppm
        ));
    }

    // Arrival time against RTP timestamp: the nominal rate, nothing lost.
    let ts = read("ts")?;
    let recs: Vec<(i64, u32, u16)> = ts
        .chunks_exact(14)
        .map(|b| {
            (
                i64::from_le_bytes(b[0..8].try_into().unwrap()),
                u32::from_le_bytes(b[8..12].try_into().unwrap()),
                u16::from_le_bytes(b[12..14].try_into().unwrap()),
            )
        })
        .collect();
    if recs.len() < 1000 {
        return Err(format!("{shift}: only {} packets logged", recs.len()));
    }
    let lost: u64 = recs
        .windows(2)
        .map(|p| p[1].2.wrapping_sub(p[0].2).wrapping_sub(1) as u64 % 65536)
        .sum();
    let (mut unwrapped, mut prev, mut hi) = (Vec::with_capacity(recs.len()), recs[0].1, 0i64);
    for r in &recs {
        if r.1 < prev && prev - r.1 > 1 << 31 {
            hi += 1 << 32;
        }
        prev = r.1;
        unwrapped.push(hi + r.1 as i64);
    }
    let x: Vec<f64> = unwrapped
        .iter()
        .map(|&t| (t - unwrapped[0]) as f64 / 48_000.0)
        .collect();
    let y: Vec<f64> = recs
        .iter()
        .map(|r| (r.0 - recs[0].0) as f64 * 1e-9)
        .collect();
    let (slope, _, rms, max_r) = fit(&x, &y);
    let slope_ppm = (slope - 1.0) * 1e6;
    let span = x.last().unwrap();
    println!(
        "CAPTURE shift {shift}: {} packets over {span:.1} s of RTP time, lost {lost}, \
         arrival vs RTP slope {slope_ppm:+.2} ppm, arrival jitter rms {:.2} ms, max {:.2} ms",
        recs.len(),
        rms * 1e3,
        max_r * 1e3
    );
    if slope_ppm.abs() > 50.0 {
        errs.push(format!("RTP timestamp slope {slope_ppm:+.2} ppm"));
    }
    if lost != 0 {
        errs.push(format!("{lost} packets lost"));
    }
    if *span < secs as f64 - 20.0 {
        errs.push(format!("only {span:.1} s of RTP time"));
    }

    // The received tone: continuity and frequency.
    let raw = read("raw")?;
    let s: Vec<f64> = raw
        .chunks_exact(6)
        .map(|f| (i32::from_be_bytes([f[0], f[1], f[2], 0]) >> 8) as f64 / 8_388_608.0)
        .collect();
    let amp = 0.251;
    let first = s.iter().position(|v| v.abs() > amp * 0.5).unwrap_or(0);
    let last = s.len()
        - s.iter()
            .rev()
            .position(|v| v.abs() > amp * 0.5)
            .unwrap_or(s.len());
    let (from, to) = (first + 480, last.saturating_sub(480));
    if to <= from + 48_000 {
        return Err(format!(
            "{shift}: no tone received ({} frames); {errs:?}",
            s.len()
        ));
    }
    let cexp = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 * (1.0 + ppm * 1e-6) / 48_000.0).cos();
    let (mut bad, mut max_res, mut first_bad) = (0usize, 0f64, None);
    let (mut num, mut den) = (0f64, 0f64);
    for n in from..to {
        let res = (s[n] - cexp * s[n - 1] + s[n - 2]).abs();
        max_res = max_res.max(res);
        if res > amp * 0.01 {
            bad += 1;
            first_bad.get_or_insert((n - first) as f64 / 48_000.0);
        }
        num += s[n - 1] * (s[n] + s[n - 2]);
        den += s[n - 1] * s[n - 1];
    }
    // Least-squares 2cos(w) of the whole recording: the tone's frequency.
    let f = (num / den / 2.0).clamp(-1.0, 1.0).acos() * 48_000.0 / (2.0 * std::f64::consts::PI);
    let f_ppm = (f / 1000.0 - 1.0) * 1e6;
    println!(
        "CAPTURE shift {shift}: tone {:.1} s, {:.4} Hz ({f_ppm:+.1} ppm, skew {ppm:+}), \
         max predictor residual {:.2e} of amplitude, discontinuities {bad} (first at {first_bad:?} s)",
        (to - from) as f64 / 48_000.0,
        f,
        max_res / amp
    );
    if bad != 0 {
        errs.push(format!("{bad} discontinuities in the tone"));
    }
    if (f_ppm - ppm).abs() > 50.0 {
        errs.push(format!("tone at {f_ppm:+.1} ppm, skew {ppm:+} ppm"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("shift {shift}: {errs:?}"))
    }
}
