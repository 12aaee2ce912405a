//! Shared by the GStreamer rig tests (`e2e_gst`, `fault_relay`): the signal,
//! WAV files, a GStreamer AES67 sender and an `aes67 play` receiver in network
//! namespaces, and the block-wise bit-exact check.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aes67_rig::NetnsPair;

pub(crate) struct Case {
    pub(crate) enc: &'static str,
    pub(crate) ch: u16,
    pub(crate) rate: u32,
    /// Frames per packet.
    pub(crate) frames: u32,
    pub(crate) secs: u32,
}

/// L24, 2 channels, 48 kHz, `frames` per packet, `secs` long.
pub(crate) fn l24_stereo_48k(frames: u32, secs: u32) -> Case {
    Case {
        enc: "L24",
        ch: 2,
        rate: 48000,
        frames,
        secs,
    }
}

pub(crate) fn tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn rig_ready() -> bool {
    if !tool("gst-launch-1.0") {
        panic!("e2e tests need gst-launch-1.0: run ci/setup.sh");
    }
    true
}

/// A pseudo-random full-scale signal, different per `seed` (xorshift).
pub(crate) fn signal(seed: u64, n: usize, bits: u16) -> Vec<i32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as i32) >> (32 - bits) // sign-extended, full range of `bits`
        })
        .collect()
}

pub(crate) fn write_wav(path: &Path, s: &[i32], ch: u16, rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: ch,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &v in s {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

pub(crate) fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i32>) {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    (spec, r.into_samples::<i32>().map(|s| s.unwrap()).collect())
}

pub(crate) fn gst_sender(ns: &NetnsPair, wav: &Path, c: &Case, group: &str, port: u16) -> Child {
    gst_sender_in(&ns.a, &ns.if_a, wav, c, group, port)
}

/// A GStreamer AES67 sender of `wav` in namespace `ns`, multicast out of `iface`.
pub(crate) fn gst_sender_in(
    ns: &str,
    iface: &str,
    wav: &Path,
    c: &Case,
    group: &str,
    port: u16,
) -> Child {
    let (fmt, pay) = if c.enc == "L24" {
        ("S24BE", "rtpL24pay")
    } else {
        ("S16BE", "rtpL16pay")
    };
    let ptime_ns = c.frames as u64 * 1_000_000_000 / c.rate as u64;
    let pipeline = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,format={fmt},rate={},channels={} ! \
         {pay} pt=96 mtu=1500 min-ptime={ptime_ns} max-ptime={ptime_ns} ! \
         udpsink host={group} port={port} multicast-iface={} ttl-mc=1 auto-multicast=true sync=true",
        wav.display(),
        c.rate,
        c.ch,
        iface
    );
    let mut cmd = NetnsPair::cmd_in(ns, "gst-launch-1.0");
    cmd.arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn gst-launch-1.0")
}

/// Starts `aes67 play` in namespace B; it runs until [`finish`] sends SIGINT
/// (the Ctrl-C path), with `secs` as a safety limit.
pub(crate) fn receiver(ns: &NetnsPair, url: &str, out: &Path, secs: f64) -> Child {
    receiver_with(ns, url, out, secs, &[])
}

/// [`receiver`] with extra `aes67 play` arguments.
pub(crate) fn receiver_with(
    ns: &NetnsPair,
    url: &str,
    out: &Path,
    secs: f64,
    extra: &[&str],
) -> Child {
    receiver_in(&ns.b, url, out, secs, extra)
}

/// [`receiver_with`] in namespace `ns`.
pub(crate) fn receiver_in(ns: &str, url: &str, out: &Path, secs: f64, extra: &[&str]) -> Child {
    let mut cmd = NetnsPair::cmd_in(ns, env!("CARGO_BIN_EXE_aes67"));
    let limit = (secs + 60.0).to_string();
    cmd.args([
        "play",
        url,
        "--output",
        &format!("wav:{}", out.display()),
        "--duration",
        &limit,
        "--json",
    ])
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd.spawn().expect("spawn aes67")
}

/// Stops a receiver with SIGINT (after the link offset has passed) and
/// returns its final JSON stats. `ip netns exec` execs the binary, so the
/// child's pid is aes67's.
pub(crate) fn finish(child: Child) -> serde_json::Value {
    std::thread::sleep(Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aes67 failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final JSON:\n{stdout}\n{stderr}"));
    serde_json::from_str(last).unwrap()
}

pub(crate) fn wait_sender(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gst-launch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub(crate) fn url(group: &str, port: u16, ns: &NetnsPair, c: &Case) -> String {
    format!(
        "aes67://{group}:{port}?iface={}&ch={}&rate={}&enc={}",
        ns.if_b, c.ch, c.rate, c.enc
    )
}

/// What [`blocks_exact_or_silent`] found.
#[derive(Debug)]
pub(crate) struct BlockCheck {
    /// Sent blocks before the first one in the output (lost before the receiver
    /// locked on: not concealable).
    pub(crate) lead: usize,
    /// Sent blocks after the last one in the output.
    pub(crate) trail: usize,
    /// Output blocks that are silence in place of the sent audio (concealed losses).
    pub(crate) silent: u64,
}

/// Compares the output with the sent signal in blocks of `blk` samples (one
/// packet, all channels). The output starts at the first packet received and
/// ends at the last one: leading/trailing losses are not concealable; every
/// block inside must be either exact or silence (panics otherwise).
pub(crate) fn blocks_exact_or_silent(sent: &[i32], got: &[i32], blk: usize) -> BlockCheck {
    let sent_blocks: Vec<&[i32]> = sent.chunks(blk).collect();
    let got_blocks: Vec<&[i32]> = got.chunks(blk).collect();
    assert!(!got_blocks.is_empty(), "empty output");
    let lead = sent_blocks
        .iter()
        .position(|b| *b == got_blocks[0])
        .expect("first output block is a sent block");
    assert_eq!(got.len() % blk, 0, "output is whole packets");
    assert!(
        lead + got_blocks.len() <= sent_blocks.len(),
        "output longer than sent: {} + {} blocks > {}",
        lead,
        got_blocks.len(),
        sent_blocks.len()
    );
    let trail = sent_blocks.len() - lead - got_blocks.len();
    let mut silent = 0u64;
    for (k, g) in got_blocks.iter().enumerate() {
        if *g != sent_blocks[lead + k] {
            assert!(
                g.iter().all(|&x| x == 0),
                "block {k} is neither the sent audio nor silence"
            );
            silent += 1;
        }
    }
    BlockCheck {
        lead,
        trail,
        silent,
    }
}
