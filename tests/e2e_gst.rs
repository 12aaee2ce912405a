//! End-to-end proof against a real peer: GStreamer sends a known
//! pseudo-random WAV as AES67 RTP from network namespace A; `aes67 play` in
//! namespace B records it to WAV; the received samples must equal the sent
//! ones bit-exactly, with 0 lost and 0 duplicated (or, with nftables loss,
//! lost packets are silence and the lost counter equals the drops).
//!
//! Needs root, `ip`, `gst-launch-1.0` and `nft` (ci/setup.sh installs them).

mod gst_common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aes67_rig::NetnsPair;
use gst_common::*;

/// How the receiver is told about the stream.
#[derive(Clone, Copy, PartialEq)]
enum Describe {
    /// An `aes67://` URL.
    Url,
    /// An `aes67://` URL with `source=` (source-specific join).
    UrlSsm,
    /// An SDP file (`--sdp`).
    Sdp,
}

/// Sends `c` from GStreamer and checks the output is bit-exact, 0 lost, 0 dup.
fn bit_exact(c: Case, group: &str, port: u16) {
    bit_exact_with(c, group, port, Describe::Url)
}

fn bit_exact_with(c: Case, group: &str, port: u16, how: Describe) {
    if !rig_ready() {
        return;
    }
    let bits = if c.enc == "L24" { 24 } else { 16 };
    let ns = NetnsPair::new().unwrap();
    let dir = tmpdir();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let n = (c.rate * c.secs) as usize / c.frames as usize * c.frames as usize;
    let sent = signal(0x5eed ^ port as u64, n * c.ch as usize, bits);
    write_wav(&inp, &sent, c.ch, c.rate, bits);
    let rx = match how {
        Describe::Url => receiver(&ns, &url(group, port, &ns, &c), &outp, c.secs as f64 + 2.5),
        Describe::UrlSsm => receiver(
            &ns,
            &format!("{}&source={}", url(group, port, &ns, &c), ns.ip_a),
            &outp,
            c.secs as f64 + 2.5,
        ),
        Describe::Sdp => {
            let sdp = dir.path().join("s.sdp");
            let ptime = c.frames as f64 * 1000.0 / c.rate as f64;
            std::fs::write(
                &sdp,
                format!(
                    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=gst\r\nc=IN IP4 {group}/32\r\nt=0 0\r\nm=audio {port} RTP/AVP 96\r\n\
                     a=rtpmap:96 {}/{}/{}\r\na=ptime:{ptime}\r\na=mediaclk:direct=0\r\n\
                     a=source-filter: incl IN IP4 {group} {ip}\r\na=recvonly\r\n",
                    c.enc,
                    c.rate,
                    c.ch,
                    ip = ns.ip_a
                ),
            )
            .unwrap();
            let mut cmd = NetnsPair::cmd_in(&ns.b, env!("CARGO_BIN_EXE_aes67"));
            cmd.args([
                "play",
                "--sdp",
                sdp.to_str().unwrap(),
                "--iface",
                &ns.if_b,
                "--output",
            ])
            .arg(format!("wav:{}", outp.display()))
            .args(["--duration", "120", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        }
    };
    std::thread::sleep(Duration::from_millis(700));
    wait_sender(gst_sender(&ns, &inp, &c, group, port));
    let st = finish(rx);
    let (spec, got) = read_wav(&outp);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (c.ch, c.rate, bits)
    );
    assert_eq!(st["lost"], 0, "{st}");
    assert_eq!(st["duplicates"], 0, "{st}");
    assert_eq!(st["malformed"], 0, "{st}");
    assert_eq!(
        st["packets"].as_u64().unwrap(),
        (n / c.frames as usize) as u64,
        "{st}"
    );
    assert_eq!(got.len(), sent.len(), "output length (samples)");
    let first_bad = got.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "first differing sample index");
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_2ch_48k_1ms() {
    bit_exact(l24_stereo_48k(48, 3), "239.69.1.1", 5004);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l16_2ch_48k_1ms() {
    bit_exact(
        Case {
            enc: "L16",
            ch: 2,
            rate: 48000,
            frames: 48,
            secs: 3,
        },
        "239.69.1.2",
        5006,
    );
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_8ch_48k_125us() {
    bit_exact(
        Case {
            enc: "L24",
            ch: 8,
            rate: 48000,
            frames: 6,
            secs: 3,
        },
        "239.69.1.3",
        5008,
    );
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_2ch_48k_5ms_livewire() {
    bit_exact(l24_stereo_48k(240, 3), "239.69.1.4", 5010);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_2ch_48k_1ms_from_sdp_file() {
    bit_exact_with(l24_stereo_48k(48, 2), "239.69.1.6", 5014, Describe::Sdp);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_2ch_48k_1ms_source_specific_join() {
    bit_exact_with(l24_stereo_48k(48, 2), "239.69.1.7", 5016, Describe::UrlSsm);
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn l24_2ch_96k_1ms() {
    bit_exact(
        Case {
            enc: "L24",
            ch: 2,
            rate: 96000,
            frames: 96,
            secs: 3,
        },
        "239.69.1.5",
        5012,
    );
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn two_groups_same_port_each_receiver_gets_its_own() {
    if !rig_ready() {
        return;
    }
    let c = l24_stereo_48k(48, 3);
    let ns = NetnsPair::new().unwrap();
    let dir = tmpdir();
    let port = 5020;
    let groups = ["239.69.2.1", "239.69.2.2"];
    let n = (c.rate * c.secs) as usize;
    let mut sent = Vec::new();
    let mut rxs = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let s = signal(0xabc0 + i as u64, n * 2, 24);
        write_wav(&dir.path().join(format!("in{i}.wav")), &s, 2, c.rate, 24);
        sent.push(s);
        rxs.push(receiver(
            &ns,
            &url(g, port, &ns, &c),
            &dir.path().join(format!("out{i}.wav")),
            c.secs as f64 + 2.5,
        ));
    }
    std::thread::sleep(Duration::from_millis(700));
    let txs: Vec<Child> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| gst_sender(&ns, &dir.path().join(format!("in{i}.wav")), &c, g, port))
        .collect();
    txs.into_iter().for_each(wait_sender);
    for (i, rx) in rxs.into_iter().enumerate() {
        let st = finish(rx);
        let (_, got) = read_wav(&dir.path().join(format!("out{i}.wav")));
        assert_eq!(
            st["packets"].as_u64().unwrap(),
            (n / 48) as u64,
            "receiver {i} got foreign packets: {st}"
        );
        assert_eq!(st["ssrc_changes"], 0, "receiver {i}: {st}");
        assert!(
            got == sent[i],
            "receiver {i} output differs from its own stream"
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer, nftables"]
fn one_percent_loss_is_silence_and_counted() {
    if !rig_ready() {
        return;
    }
    assert!(tool("nft"), "needs nft (ci/setup.sh installs nftables)");
    let c = l24_stereo_48k(48, 5);
    let (group, port) = ("239.69.3.1", 5030u16);
    let ns = NetnsPair::new().unwrap();
    let nft = |args: &str| {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.b, "nft"])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "nft {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    nft("add table inet loss");
    nft("add chain inet loss in { type filter hook input priority 0 ; }");
    nft(&format!(
        "add rule inet loss in udp dport {port} numgen random mod 100 < 1 counter drop"
    ));
    let dir = tmpdir();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let n = (c.rate * c.secs) as usize;
    let sent = signal(0x1055, n * 2, 24);
    write_wav(&inp, &sent, 2, c.rate, 24);
    let rx = receiver(&ns, &url(group, port, &ns, &c), &outp, c.secs as f64 + 2.5);
    std::thread::sleep(Duration::from_millis(700));
    wait_sender(gst_sender(&ns, &inp, &c, group, port));
    let st = finish(rx);
    let listing = nft("list chain inet loss in");
    let drops: u64 = listing
        .split("counter packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {listing}"));
    assert!(drops > 0, "1% of {} packets should drop some", n / 48);
    let (_, got) = read_wav(&outp);
    // Blocks of one packet (48 frames × 2 ch).
    let BlockCheck {
        lead,
        trail,
        silent,
    } = blocks_exact_or_silent(&sent, &got, 96);
    let lost = st["lost"].as_u64().unwrap();
    assert_eq!(lost, silent, "lost counter vs silent blocks: {st}");
    assert_eq!(
        lost,
        drops - lead as u64 - trail as u64,
        "lost counter vs nft drops {drops} (lead {lead}, trail {trail}): {st}"
    );
    assert_eq!(st["duplicates"], 0);
    eprintln!("loss case: {drops} dropped by nft, {lost} concealed, lead {lead}, trail {trail}");
}
