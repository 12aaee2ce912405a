//! The Windows build under wine with the REAL bass.dll (BASS 2.4.17 x64,
//! fetched and sha256-checked by ci/bass-fetch.sh, never committed).
//!
//! Cross-builds `bass_aes67.dll` (`cargo build --target x86_64-pc-windows-gnu
//! -p bass-aes67`, its own target dir so it never waits on this test's
//! build lock), builds the C test host `ci/bass-wine/host.c` and the
//! TEST-ONLY `bcryptprimitives.dll` shim (wine 8 lacks ProcessPrng; real
//! Windows 10+ has it; never shipped) with mingw-w64, and runs the host with
//! `wine`. Needs the packages `mingw-w64 wine64 wine` (ci/setup.sh).

// One kill(2) of our own GStreamer child (SIGINT, so it writes its WAV).
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Builds the DLL, the host and the shim; returns the directory holding
/// host.exe, bass.dll, bass_aes67.dll and bcryptprimitives.dll.
pub(crate) fn wine_dir(features: &[&str], tag: &str) -> PathBuf {
    for tool in ["wine", "x86_64-w64-mingw32-gcc"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is missing: run ci/setup.sh (packages mingw-w64 wine64 wine)"
        );
    }
    // The two tests build different features into one target dir: build
    // and copy the DLL one at a time, else one copies the other's DLL.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _build = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let root = repo_root();
    let target = root.join("target/wine");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-pc-windows-gnu",
            "-p",
            "bass-aes67",
        ])
        .args(features));
    let dll = target.join("x86_64-pc-windows-gnu/release/bass_aes67.dll");
    // One directory and wine prefix per test: tests run in parallel, and
    // `finish_wine` stops its prefix's wineserver (killing any other host of
    // that prefix), while each build copies its own DLL into the directory.
    let dir = target.join(format!("run-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let bass = PathBuf::from(
        run(Command::new("bash").arg(root.join("ci/bass-fetch.sh")))
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    std::fs::copy(bass.join("bass.dll"), dir.join("bass.dll")).unwrap();
    std::fs::copy(&dll, dir.join("bass_aes67.dll")).unwrap();
    let src = root.join("ci/bass-wine");
    run(Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-o"])
        .arg(dir.join("host.exe"))
        .arg(src.join("host.c"))
        .arg("-lws2_32"));
    run(Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(src.join("processprng-shim.c"))
        .arg("-ladvapi32"));
    dir
}

/// Starts `wine host.exe args...` in `dir` with a private prefix, its
/// stdout going to the returned file. Output goes through a file, not a
/// pipe: wine's wineserver and service processes inherit stdout and outlive
/// host.exe, so reading a pipe to EOF would wait for them.
pub(crate) fn spawn_wine(dir: &Path, args: &[&str]) -> (std::process::Child, PathBuf) {
    let log = dir.join(format!("host-{}.out", args.len()));
    let child = Command::new("wine")
        .current_dir(dir)
        .arg("host.exe")
        .args(args)
        .env("WINEPREFIX", dir.join("prefix"))
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wine");
    (child, log)
}

/// Waits for the host started by [`spawn_wine`], stops this prefix's
/// wineserver (only ours), and returns (success, stdout).
pub(crate) fn finish_wine(
    dir: &Path,
    mut child: std::process::Child,
    log: &Path,
) -> (bool, String) {
    let status = child.wait().expect("wine");
    let _ = Command::new("wineserver")
        .arg("-k")
        .env("WINEPREFIX", dir.join("prefix"))
        .status();
    (
        status.success(),
        std::fs::read_to_string(log).unwrap_or_default(),
    )
}

/// Runs `wine host.exe args...` to completion; returns (success, stdout).
pub(crate) fn wine(dir: &Path, args: &[&str]) -> (bool, String) {
    let (child, log) = spawn_wine(dir, args);
    finish_wine(dir, child, &log)
}

#[test]
fn windows_dll_under_wine_with_real_bass() {
    let dir = wine_dir(&["--no-default-features"], "dll");
    let (ok, out) = wine(&dir, &[]);
    eprintln!("{out}");
    assert!(ok && out.contains("\nALL OK"), "wine host failed:\n{out}");
    assert!(out.contains("ok   BASS_GetVersion 02041100"));
    assert!(out.contains("ok   config proc removed after unload"));
}

/// The pattern of tests/bass_real.rs and ci/bass-wine/host.c (seed 0x12345678).
fn pattern(frames: usize) -> Vec<i32> {
    let mut x: u32 = 0x1234_5678;
    (0..frames * 2)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = (x as i32) >> 8;
            if v == 0 { 1 } else { v }
        })
        .collect()
}

/// The Windows DLL WITH the engine (feature `windows-engine`, std/Winsock
/// packet source) under wine receives a GStreamer sender over UNICAST
/// loopback (127.0.0.1) and returns the pattern bit-exactly.
#[test]
fn windows_engine_receives_gstreamer_unicast_under_wine() {
    let dir = wine_dir(&["--features", "windows-engine"], "engine");
    let wav = dir.join("pattern.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for s in pattern(48_000 * 4) {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("aes67://127.0.0.1:{port}?jitter=60&fill=available");
    let (child, log) = spawn_wine(&dir, &[&url, "2"]);
    // Start sending once the stream exists (a fresh wine prefix boots for many seconds).
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("BASS_StreamCreateURL")
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "wine host did not open the stream"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("gst-launch-1.0")
        .args(aes67_rig::gst_l24_1ms_pay_args(&wav))
        .args([
            "udpsink",
            "host=127.0.0.1",
            &format!("port={port}"),
            "sync=true",
        ])
        .status()
        .expect("gst-launch-1.0");
    assert!(status.success());
    let (ok, out) = finish_wine(&dir, child, &log);
    eprintln!("{out}");
    assert!(ok && out.contains("\nALL OK"), "wine host failed:\n{out}");
    assert!(out.contains("ok   bit-exact over"), "{out}");
}

/// The Windows DLL with the engine under wine: a WAV decoded by the real
/// bass.dll (`BASS_StreamCreateFile`, decode, float) → our output
/// (`BASS_AES67_OutputCreateEx`, L24 2 ch 1 ms, UNICAST to 127.0.0.1) →
/// GStreamer (`udpsrc ! rtpjitterbuffer ! rtpL24depay ! wavenc`) on this
/// host: the whole file arrives bit-exactly.
#[test]
fn windows_output_sends_bass_decoded_wav_to_gstreamer_unicast_under_wine() {
    let dir = wine_dir(&["--features", "windows-engine"], "output");
    let wav = dir.join("out-pattern.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let sent = pattern(48_000 * 3);
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for &s in &sent {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let out = dir.join("out-rx.wav");
    let rx = Command::new("gst-launch-1.0")
        .args(["-q", "-e", "udpsrc", "address=127.0.0.1"])
        .arg(format!("port={port}"))
        .arg("caps=application/x-rtp,media=(string)audio,clock-rate=(int)48000,encoding-name=(string)L24,channels=(int)2,payload=(int)96")
        .args(["!", "rtpjitterbuffer", "latency=200", "!", "rtpL24depay", "!", "audioconvert", "!"])
        .arg("audio/x-raw,format=S24LE")
        .args(["!", "wavenc", "!", "filesink"])
        .arg(format!("location={}", out.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0");
    let (ok, text) = wine(
        &dir,
        &["--output", "out-pattern.wav", &port.to_string(), "4"],
    );
    eprintln!("{text}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: kill(2) of our own child with SIGINT (EOS writes the WAV).
    unsafe { libc::kill(rx.id() as i32, libc::SIGINT) };
    let g = rx.wait_with_output().unwrap();
    assert!(
        g.status.success(),
        "gst-launch: {}",
        String::from_utf8_lossy(&g.stderr)
    );
    assert!(ok && text.contains("\nALL OK"), "wine host failed:\n{text}");
    let got: Vec<i32> = hound::WavReader::open(&out)
        .unwrap()
        .into_samples::<i32>()
        .map(|s| s.unwrap())
        .collect();
    let first = got
        .iter()
        .position(|&v| v != 0)
        .expect("only silence received");
    let rx = &got[first..];
    assert!(
        rx.len() >= sent.len(),
        "received {} samples after the first audio, sent {}",
        rx.len(),
        sent.len()
    );
    let bad = (0..sent.len()).find(|&i| rx[i] != sent[i]);
    assert_eq!(bad, None, "first mismatch (of {} samples)", sent.len());
    eprintln!(
        "wine: BASS-decoded WAV → bass_aes67.dll output → GStreamer: {} samples bit-exact",
        sent.len()
    );
}
