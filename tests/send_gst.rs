//! The sender against a real receiver: `aes67 send --source file:<pseudo-random
//! WAV>` in network namespace A, GStreamer (`udpsrc ! rtpjitterbuffer !
//! rtpL24depay/rtpL16depay ! wavenc`) in namespace B; every sample received
//! must equal the file's after alignment, 0 lost; the sender reports no
//! underrun and no send error, and its SDP (`--sdp-out`, no PTP:
//! `ts-refclk:localmac`) passes sdpoker.
//!
//! Needs root, `ip`, `gst-launch-1.0` and sdpoker (ci/setup.sh installs them).

mod gst_common;
use gst_common::{signal, write_wav};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aes67_rig::NetnsPair;

struct Case {
    enc: &'static str,
    ch: u16,
    rate: u32,
    ptime_us: u32,
    secs: f64,
}

fn gst_receiver(ns: &NetnsPair, c: &Case, group: &str, port: u16, out: &Path) -> Child {
    let (depay, fmt) = if c.enc == "L24" {
        ("rtpL24depay", "S24LE")
    } else {
        ("rtpL16depay", "S16LE")
    };
    let caps = format!(
        "caps=application/x-rtp,media=(string)audio,clock-rate=(int){},encoding-name=(string){},channels=(int){},payload=(int)96",
        c.rate, c.enc, c.ch
    );
    let mut cmd = NetnsPair::cmd_in(&ns.b, "gst-launch-1.0");
    cmd.args(["-q", "-e", "udpsrc"])
        .arg(format!("address={group}"))
        .arg(format!("port={port}"))
        .arg(format!("multicast-iface={}", ns.if_b))
        .arg("buffer-size=8388608")
        .arg(caps)
        .args([
            "!",
            "rtpjitterbuffer",
            "latency=500",
            "!",
            depay,
            "!",
            "audioconvert",
            "!",
        ])
        .arg(format!("audio/x-raw,format={fmt}"))
        .args(["!", "wavenc", "!", "filesink"])
        .arg(format!("location={}", out.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn gst-launch-1.0")
}

fn sdpoker(sdp: &Path) -> (bool, String) {
    let p = std::env::var("SDPOKER").unwrap_or_else(|_| "/tmp/nmos-testing/bin/sdpoker".into());
    let out = Command::new(&p)
        .args(["--audioOnly", "--should"])
        .arg(sdp)
        .output()
        .unwrap_or_else(|e| panic!("{p}: {e}: run ci/setup.sh"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Sends `c` from a file with `aes67 send` and checks GStreamer's WAV.
/// Returns the number of samples compared.
fn bit_exact(c: Case, group: &str, port: u16) -> usize {
    let bits: u16 = if c.enc == "L24" { 24 } else { 16 };
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (inp, outp, sdp) = (
        dir.path().join("in.wav"),
        dir.path().join("out.wav"),
        dir.path().join("s.sdp"),
    );
    let frames = (c.rate as f64 * c.secs) as usize;
    let ch = c.ch as usize;
    let sent = signal(0x5e11 ^ port as u64, frames * ch, bits);
    write_wav(&inp, &sent, c.ch, c.rate, bits);
    let rx = gst_receiver(&ns, &c, group, port, &outp);
    std::thread::sleep(Duration::from_millis(1000));
    let url = format!(
        "aes67://{group}:{port}?iface={}&ch={}&rate={}&enc={}",
        ns.if_a, c.ch, c.rate, c.enc
    );
    let out = NetnsPair::cmd_in(&ns.a, env!("CARGO_BIN_EXE_aes67"))
        .args(["send", &url, "--source"])
        .arg(format!("file:{}", inp.display()))
        .args(["--packet-time-us", &c.ptime_us.to_string()])
        .args([
            "--duration",
            &(c.secs + 1.0).to_string(),
            "--json",
            "--sdp-out",
        ])
        .arg(&sdp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aes67 send failed: {stderr}");
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final JSON:\n{stdout}\n{stderr}"));
    let st: serde_json::Value = serde_json::from_str(last).unwrap();
    // Let the jitter buffer drain, then EOS (SIGINT with -e) writes the WAV.
    std::thread::sleep(Duration::from_millis(600));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rx.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let g = rx.wait_with_output().unwrap();
    assert!(
        g.status.success(),
        "gst-launch failed: {}",
        String::from_utf8_lossy(&g.stderr)
    );
    assert_eq!(st["underruns"], 0, "{st}");
    assert_eq!(st["send_errors"], 0, "{st}");
    assert_eq!(st["skipped_packets"], 0, "{st}");
    assert_eq!(st["source_ended"], true, "{st}");
    let r = hound::WavReader::open(&outp).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (c.ch, c.rate, bits)
    );
    let got: Vec<i32> = r.into_samples::<i32>().map(|s| s.unwrap()).collect();
    // Align: the file's first frame is the first non-zero one (before it,
    // a jitter buffer's start can only be zeros). GStreamer positions more
    // than 2 channels by RFC 3551 order and wavenc writes WAVE order, so a
    // channel permutation is allowed: derived from the first 32 frames,
    // then held for every sample.
    let at = got
        .iter()
        .position(|&v| v != 0)
        .map(|i| i / ch)
        .unwrap_or_else(|| {
            panic!(
                "only silence in {} received samples; sender {st}",
                got.len()
            )
        });
    assert!(
        got.len() >= (at + 32) * ch,
        "too little received; sender {st}"
    );
    let perm: Vec<usize> = (0..ch)
        .map(|r| {
            (0..ch)
                .find(|&s| (0..32).all(|k| got[(at + k) * ch + r] == sent[k * ch + s]))
                .unwrap_or_else(|| {
                    panic!(
                        "received channel {r} matches no sent channel at frame {at}: received {:?}, sent {:?}",
                        &got[at * ch..(at + 1) * ch],
                        &sent[..ch]
                    )
                })
        })
        .collect();
    let mut seen = perm.clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..ch).collect::<Vec<_>>(),
        "not a permutation: {perm:?}"
    );
    if ch <= 2 {
        assert_eq!(perm, (0..ch).collect::<Vec<_>>(), "stereo channels swapped");
    }
    let got: Vec<i32> = got
        .chunks_exact(ch)
        .flat_map(|f| {
            let mut o = vec![0; ch];
            for (r, &s) in perm.iter().enumerate() {
                o[s] = f[r];
            }
            o
        })
        .collect();
    let rest = &got[at * ch..];
    assert!(
        rest.len() >= sent.len(),
        "received {} samples after alignment, sent {}: lost",
        rest.len(),
        sent.len()
    );
    let first_bad = rest.iter().zip(&sent).position(|(a, b)| a != b);
    if let Some(i) = first_bad {
        let f = i / ch;
        let resync = (f..sent.len() / ch).find(|&k| {
            rest.len() >= (f + 1) * ch && rest[f * ch..(f + 1) * ch] == sent[k * ch..(k + 1) * ch]
        });
        panic!(
            "first differing sample {i} (frame {f} of {}): received {:?}, sent {:?}; the received \
             frame {f} is the file's frame {resync:?}; sender {st}",
            sent.len() / ch,
            &rest[f * ch..(f + 1) * ch],
            &sent[f * ch..(f + 1) * ch]
        );
    }
    // After the end of the file: the counted silence, nothing else.
    assert!(
        rest[sent.len()..].iter().all(|&v| v == 0),
        "noise after the file end"
    );
    let (ok, poke) = sdpoker(&sdp);
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(ok, "sdpoker: {poke}\n{text}");
    assert!(
        text.contains(&format!(
            "a=source-filter: incl IN IP4 {group} {}\r\n",
            ns.ip_a
        )),
        "{text}"
    );
    assert!(text.contains("a=ts-refclk:localmac="), "{text}");
    eprintln!(
        "{} {} ch {} Hz {} µs: {} samples compared, 0 lost, {} packets, {} silence frames after the end, \
         GStreamer channel order {perm:?}; sdpoker: no errors",
        c.enc,
        c.ch,
        c.rate,
        c.ptime_us,
        sent.len(),
        st["packets_sent"],
        st["silence_frames"]
    );
    sent.len()
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn send_l24_2ch_48k_1ms() {
    let n = bit_exact(
        Case {
            enc: "L24",
            ch: 2,
            rate: 48_000,
            ptime_us: 1000,
            secs: 2.0,
        },
        "239.69.11.1",
        5104,
    );
    assert_eq!(n, 192_000);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn send_l16_2ch_48k_1ms() {
    let n = bit_exact(
        Case {
            enc: "L16",
            ch: 2,
            rate: 48_000,
            ptime_us: 1000,
            secs: 2.0,
        },
        "239.69.11.2",
        5106,
    );
    assert_eq!(n, 192_000);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn send_l24_8ch_48k_125us() {
    let n = bit_exact(
        Case {
            enc: "L24",
            ch: 8,
            rate: 48_000,
            ptime_us: 125,
            secs: 2.0,
        },
        "239.69.11.3",
        5108,
    );
    assert_eq!(n, 768_000);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn send_l24_2ch_48k_5ms() {
    let n = bit_exact(
        Case {
            enc: "L24",
            ch: 2,
            rate: 48_000,
            ptime_us: 5000,
            secs: 2.0,
        },
        "239.69.11.4",
        5110,
    );
    assert_eq!(n, 192_000);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn send_l24_2ch_96k_1ms() {
    let n = bit_exact(
        Case {
            enc: "L24",
            ch: 2,
            rate: 96_000,
            ptime_us: 1000,
            secs: 2.0,
        },
        "239.69.11.5",
        5112,
    );
    assert_eq!(n, 384_000);
}
