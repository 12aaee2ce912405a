//! The sender's file source against files made by real encoders: FLAC
//! (sox) must decode bit-exactly; Ogg Vorbis at 44.1 kHz (sox) and MP3
//! (GStreamer's lamemp3enc) must come out as the same 1 kHz tone at the
//! stream's 48 kHz (resampled where needed), in level and frequency.
//! No network. Needs `sox` and `gst-launch-1.0` (ci/setup.sh).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aes67::engine::source::{AudioSource, OutFormat, open_file};

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}: run ci/setup.sh"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pulls everything from a file source (until it ends), 48 frames at a time.
fn drain(path: &Path, out: OutFormat) -> Vec<i32> {
    let (mut src, _) = open_file(path, out, false).unwrap();
    let ch = out.channels;
    let mut v = Vec::new();
    let mut buf = vec![0i32; 48 * ch];
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let n = src.pull(&mut buf);
        v.extend_from_slice(&buf[..n * ch]);
        if n == 0 {
            if src.ended() {
                return v;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    panic!("{} never ended", path.display());
}

fn fmt(channels: usize, bits: u32) -> OutFormat {
    OutFormat {
        rate: 48_000,
        channels,
        bits,
        ring_frames: 48_000,
    }
}

/// (zero crossings per second, peak) of channel 0 over the steady middle.
fn tone_of(v: &[i32], ch: usize) -> (f64, i32) {
    let c0: Vec<i32> = v.chunks_exact(ch).map(|f| f[0]).collect();
    let mid = &c0[c0.len() / 5..c0.len() * 4 / 5];
    let z = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    (
        z as f64 * 48_000.0 / mid.len() as f64,
        mid.iter().map(|x| x.abs()).max().unwrap(),
    )
}

#[test]
fn flac_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, flac) = (dir.path().join("a.wav"), dir.path().join("a.flac"));
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let sent: Vec<i32> = (0..96_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as i32) >> 8
        })
        .collect();
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for &s in &sent {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    run("sox", &[wav.to_str().unwrap(), flac.to_str().unwrap()]);
    let got = drain(&flac, fmt(2, 24));
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "FLAC samples differ");
}

#[test]
fn ogg_vorbis_44k1_is_resampled_to_48k() {
    let dir = tempfile::tempdir().unwrap();
    let ogg = dir.path().join("t.ogg");
    run(
        "sox",
        &[
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            ogg.to_str().unwrap(),
            "synth",
            "2",
            "sine",
            "1000",
            "gain",
            "-6",
        ],
    );
    let v = drain(&ogg, fmt(2, 24));
    // 2 s at 48 kHz (the resampler's flushed tail adds at most 2 chunks).
    assert!(
        (96_000..=96_000 + 2400).contains(&(v.len() / 2)),
        "{}",
        v.len() / 2
    );
    let (zps, peak) = tone_of(&v, 2);
    assert!((1995.0..=2005.0).contains(&zps), "{zps} zero crossings/s");
    // -6 dBFS of 2^23, within 0.5 dB (lossy codec).
    let want = 8_388_607.0 * 10f64.powf(-6.0 / 20.0);
    assert!(
        (peak as f64 / want - 1.0).abs() < 0.06,
        "peak {peak}, want {want}"
    );
}

#[test]
fn mp3_decodes_to_the_tone() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, mp3) = (dir.path().join("t.wav"), dir.path().join("t.mp3"));
    run(
        "sox",
        &[
            "-n",
            "-r",
            "48000",
            "-c",
            "1",
            "-b",
            "16",
            wav.to_str().unwrap(),
            "synth",
            "2",
            "sine",
            "1000",
            "gain",
            "-6",
        ],
    );
    run(
        "gst-launch-1.0",
        &[
            "-q",
            "filesrc",
            &format!("location={}", wav.display()),
            "!",
            "wavparse",
            "!",
            "audioconvert",
            "!",
            "lamemp3enc",
            "!",
            "filesink",
            &format!("location={}", mp3.display()),
        ],
    );
    // A mono file feeds both channels of an L16 stream.
    let v = drain(&mp3, fmt(2, 16));
    assert!(v.len() / 2 >= 96_000, "{} frames", v.len() / 2);
    assert!(
        v.chunks_exact(2).all(|f| f[0] == f[1]),
        "mono to both channels"
    );
    let (zps, peak) = tone_of(&v, 2);
    assert!((1995.0..=2005.0).contains(&zps), "{zps} zero crossings/s");
    let want = 32_767.0 * 10f64.powf(-6.0 / 20.0);
    assert!(
        (peak as f64 / want - 1.0).abs() < 0.06,
        "peak {peak}, want {want}"
    );
}
