//! SAP (RFC 2974) against real peers, in network namespaces:
//!
//! - GStreamer sends a pseudo-random WAV that a hand-made SAP announcement
//!   describes; `aes67 play sap:NAME` plays it bit-exactly;
//! - `aes67 list` sees a deletion and a timeout;
//! - our `aes67 send --sap` is listed, then deleted on a clean stop;
//! - PipeWire 1.4 (module-rtp-sap + rtp-sink) announces a stream: `aes67
//!   list` shows its format, `aes67 play sap:NAME` receives its audio
//!   bit-exactly;
//! - PipeWire (module-rtp-sap listener) discovers `aes67 send --sap`, creates
//!   an RTP source for it, and removes it on our deletion.
//!
//! Needs root, `ip`, `gst-launch-1.0` and PipeWire 1.4 (ci/setup.sh).

mod gst_common;
use gst_common::{read_wav, signal, write_wav};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aes67::sap::codec::{MessageType, build};
use aes67_rig::{NetnsPair, in_netns};

const AES67: &str = env!("CARGO_BIN_EXE_aes67");

/// A UDP socket in namespace `ns`, sending multicast on `ip` with TTL 1.
fn sap_socket(ns: &str, ip: &str) -> UdpSocket {
    let s = in_netns(ns, aes67::sys::socket::udp_v4).unwrap().unwrap();
    aes67::sys::socket::set_multicast_send(&s, ip.parse().unwrap(), 1, false).unwrap();
    s.into()
}

fn sap_send(s: &UdpSocket, kind: MessageType, hash: u16, origin: &str, sdp: &str) {
    let p = build(kind, hash, origin.parse().unwrap(), sdp).unwrap();
    s.send_to(&p, (Ipv4Addr::new(239, 255, 255, 255), 9875))
        .unwrap();
}

fn sdp_for(name: &str, origin: &str, group: &str, port: u16, id: u32) -> String {
    format!(
        "v=0\r\no=- {id} 0 IN IP4 {origin}\r\ns={name}\r\nc=IN IP4 {group}/32\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 96\r\na=rtpmap:96 L24/48000/2\r\na=ptime:1\r\n\
         a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-34-56:0\r\na=mediaclk:direct=0\r\n\
         a=source-filter: incl IN IP4 {group} {origin}\r\na=recvonly\r\n"
    )
}

/// Stops a child with SIGINT (the Ctrl-C path) and returns its output.
fn interrupt(child: Child) -> std::process::Output {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    child.wait_with_output().unwrap()
}

/// `aes67 play sap:NAME` in namespace B to a WAV file, JSON on stdout.
fn play_sap(ns: &NetnsPair, name: &str, out: &Path, timeout_s: u32) -> Child {
    NetnsPair::cmd_in(&ns.b, AES67)
        .args(["play", &format!("sap:{name}"), "--iface", &ns.if_b])
        .args(["--sap-timeout", &timeout_s.to_string(), "--output"])
        .arg(format!("wav:{}", out.display()))
        .args(["--duration", "120", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aes67 play")
}

/// The final JSON object of a `play --json` run.
fn final_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aes67 failed: {stderr}");
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final JSON:\n{stdout}\n{stderr}"));
    serde_json::from_str(last).unwrap()
}

/// `aes67 list --json` in namespace B for `secs`: one snapshot per line.
fn list_json(ns: &NetnsPair, secs: f64, extra: &[&str]) -> Child {
    NetnsPair::cmd_in(&ns.b, AES67)
        .args([
            "list",
            "--json",
            "--iface",
            &ns.if_b,
            "--timeout",
            &secs.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aes67 list")
}

fn snapshots(child: Child) -> Vec<serde_json::Value> {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "aes67 list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn names(snap: &serde_json::Value) -> Vec<String> {
    snap["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn session<'a>(snap: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    snap["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
}

fn gst_sender(ns: &NetnsPair, wav: &Path, group: &str, port: u16) -> Child {
    let pipeline = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,format=S24BE,rate=48000,channels=2 ! \
         rtpL24pay pt=96 mtu=1500 min-ptime=1000000 max-ptime=1000000 ! \
         udpsink host={group} port={port} multicast-iface={} ttl-mc=1 auto-multicast=true sync=true",
        wav.display(),
        ns.if_a
    );
    NetnsPair::cmd_in(&ns.a, "gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gst-launch-1.0 (run ci/setup.sh)")
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn gst_stream_from_hand_made_sap_plays_by_name_bit_exact() {
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (inp, outp) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let (group, port) = ("239.69.21.1", 5021);
    let n = 48_000 * 2; // 2 s
    let sent = signal(0x5a9, n * 2, 24);
    write_wav(&inp, &sent, 2, 48000, 24);
    // A hand-made announcement, repeated every 500 ms until the end.
    let sock = sap_socket(&ns.a, &ns.ip_a);
    let sdp = sdp_for("Hand-made GStreamer L24", &ns.ip_a, group, port, 4242);
    let decoy = sdp_for("Another stream", &ns.ip_a, "239.69.21.2", 5022, 4243);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let ip_a = ns.ip_a.clone();
    // After 2 s (the player has resolved the name) a new version: another
    // grandmaster, a new hash, and a deletion of the old one first.
    let sdp2 = sdp
        .replace("00-1D-C1-FF-FE-12-34-56", "00-1D-C1-FF-FE-AB-CD-EF")
        .replace(" 4242 0 IN", " 4242 1 IN");
    let announcer = std::thread::spawn(move || {
        let mut k = 0;
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            k += 1;
            if k == 5 {
                sap_send(&sock, MessageType::Delete, 0x4242, &ip_a, &sdp);
            }
            if k >= 5 {
                sap_send(&sock, MessageType::Announce, 0x4244, &ip_a, &sdp2);
            } else {
                sap_send(&sock, MessageType::Announce, 0x4242, &ip_a, &sdp);
            }
            sap_send(&sock, MessageType::Announce, 0x4243, &ip_a, &decoy);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    // A unique prefix of the name.
    let rx = play_sap(&ns, "Hand-made", &outp, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let gst = gst_sender(&ns, &inp, group, port);
    let g = gst.wait_with_output().unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    std::thread::sleep(Duration::from_millis(500));
    let out = interrupt(rx);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    announcer.join().unwrap();
    let st = final_json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SAP session \"Hand-made GStreamer L24\""),
        "{stderr}"
    );
    // The new version was seen and, as only the clock changed and the
    // receiver free-runs, applied without a restart (the audio is intact).
    assert!(
        stderr.contains("has a new version (hash 0x4244, o= version 1): applied: clock now 00-1D-C1-FF-FE-AB-CD-EF dom 0"),
        "{stderr}"
    );
    let (spec, got) = read_wav(&outp);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 48000, 24)
    );
    assert_eq!(st["lost"], 0, "{st}");
    assert_eq!(st["packets"], 2000, "{st}");
    assert_eq!(got.len(), sent.len(), "output length (samples)");
    assert_eq!(
        got.iter().zip(&sent).position(|(a, b)| a != b),
        None,
        "first differing sample"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn list_sees_deletion_and_timeout_and_play_names_its_timeout() {
    let ns = NetnsPair::new().unwrap();
    // Timeout floor 2 s: a session announced every 0.5 s times out 5 s after
    // its last announcement (10 × interval).
    let list = list_json(&ns, 10.0, &["--min-timeout", "2"]);
    std::thread::sleep(Duration::from_millis(500));
    let sock = sap_socket(&ns.a, &ns.ip_a);
    let del = sdp_for("delete me", &ns.ip_a, "239.69.22.1", 5004, 1);
    let exp = sdp_for("expire me", &ns.ip_a, "239.69.22.2", 5004, 2);
    let t0 = Instant::now();
    for _ in 0..3 {
        sap_send(&sock, MessageType::Announce, 0x1111, &ns.ip_a, &del);
        sap_send(&sock, MessageType::Announce, 0x2222, &ns.ip_a, &exp);
        std::thread::sleep(Duration::from_millis(500));
    }
    // Deletion with only the o= line (RFC 2974), by origin and hash.
    sap_send(
        &sock,
        MessageType::Delete,
        0x1111,
        &ns.ip_a,
        &format!("o=- 1 0 IN IP4 {}\r\n", ns.ip_a),
    );
    let deleted_at = t0.elapsed().as_secs_f64();
    // `play` of a session never announced fails, naming the timeout.
    let dir = tempfile::tempdir().unwrap();
    let out = play_sap(&ns, "nobody", &dir.path().join("x.wav"), 2)
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no SAP session \"nobody\" heard within 2 s (--sap-timeout)"),
        "{err}"
    );
    let snaps = snapshots(list);
    let t = |s: &serde_json::Value| s["t_s"].as_f64().unwrap();
    let both = snaps
        .iter()
        .position(|s| names(s).len() == 2)
        .expect("both listed");
    let after_del = snaps
        .iter()
        .position(|s| names(s) == ["expire me"])
        .expect("deletion seen");
    let gone = snaps
        .iter()
        .position(|s| names(s).is_empty() && t(s) > 3.0)
        .expect("timeout seen");
    assert!(both < after_del && after_del < gone);
    let e = session(&snaps[after_del], "expire me").unwrap();
    assert_eq!(
        e["interval_s"].as_f64().map(|i| (i * 10.0).round()),
        Some(5.0),
        "{e}"
    );
    assert_eq!(e["grandmaster"], "00-1D-C1-FF-FE-12-34-56", "{e}");
    assert_eq!(e["domain"], 0);
    // Expiry about 10 × 0.5 s after the last announcement (list started ~0.5 s before t0).
    let last_ann = 0.5 + 1.0;
    assert!(
        t(&snaps[gone]) >= last_ann + 4.5 && t(&snaps[gone]) <= last_ann + 8.0,
        "expired at {} s (deleted at {deleted_at} s)",
        t(&snaps[gone])
    );
    let st = &snaps.last().unwrap()["stats"];
    assert_eq!(
        (st["deleted"].as_u64(), st["expired"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn our_sender_is_listed_then_deleted_on_clean_stop() {
    let ns = NetnsPair::new().unwrap();
    let list = list_json(&ns, 6.0, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("aes67://239.69.23.1:5004?iface={}&ch=2&enc=L24", ns.if_a);
    let send = NetnsPair::cmd_in(&ns.a, AES67)
        .args([
            "send",
            &url,
            "--sap",
            "--name",
            "our tx",
            "--sap-interval",
            "1",
        ])
        .args(["--duration", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    let snaps = snapshots(list);
    let seen = snaps
        .iter()
        .find_map(|s| session(s, "our tx"))
        .expect("our announcement listed");
    assert_eq!(
        (
            seen["group"].as_str(),
            seen["port"].as_u64(),
            seen["encoding"].as_str(),
            seen["rate"].as_u64(),
            seen["channels"].as_u64(),
            seen["ptime_ms"].as_f64()
        ),
        (
            Some("239.69.23.1"),
            Some(5004),
            Some("L24"),
            Some(48000),
            Some(2),
            Some(1.0)
        ),
        "{seen}"
    );
    assert_eq!(seen["origin"], ns.ip_a.as_str());
    let last = snaps.last().unwrap();
    assert!(names(last).is_empty(), "still listed after stop: {last}");
    assert_eq!(last["stats"]["deleted"], 1, "{last}");
    assert_eq!(last["stats"]["expired"], 0, "{last}");
}

// ------------------------------------------------------------ PipeWire ----

/// A PipeWire 1.4 daemon in a namespace, headless (no dbus, no session
/// manager), with its own runtime directory. Killed with SIGTERM on drop
/// (PipeWire then sends its SAP deletions).
struct PipeWire {
    ns: String,
    run: std::path::PathBuf,
    child: Option<Child>,
}

impl PipeWire {
    /// Starts `pipewire -c ci/pipewire/CONF.conf` in `ns` with IFACE, GROUP
    /// and NAME replaced.
    fn start(ns: &str, dir: &Path, conf: &str, iface: &str, group: &str, name: &str) -> PipeWire {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("ci/pipewire/{conf}.conf")),
        )
        .unwrap()
        .replace("= IFACE", &format!("= {iface}"))
        .replace("= GROUP", &format!("= {group}"))
        .replace("\"NAME\"", &format!("\"{name}\""));
        let run = dir.join(format!("run-{conf}"));
        std::fs::create_dir_all(&run).unwrap();
        let path = dir.join(format!("{conf}.conf"));
        std::fs::write(&path, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("pw-{conf}.log"))).unwrap();
        let child = Self::env(&run)
            .args(["ip", "netns", "exec", ns, "pipewire", "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn pipewire (run ci/setup.sh: PipeWire 1.4 from bookworm-backports)");
        let pw = PipeWire {
            ns: ns.to_owned(),
            run,
            child: Some(child),
        };
        // The socket is ready ~0.1 s after start.
        let t = Instant::now();
        while !pw.run.join("pipewire-0").exists() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        pw
    }

    fn env(run: &Path) -> std::process::Command {
        let mut c = std::process::Command::new("env");
        c.arg("-i")
            .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("XDG_RUNTIME_DIR={}", run.display()))
            .arg(format!("HOME={}", run.display()));
        c
    }

    /// A PipeWire client command (`pw-dump`, `pw-link`, ...) in the daemon's
    /// namespace and runtime directory, limited to 20 s.
    fn client(&self, prog: &str) -> std::process::Command {
        let mut c = Self::env(&self.run);
        c.args(["ip", "netns", "exec", &self.ns, "timeout", "20", prog]);
        c
    }

    fn run_client(&self, prog: &str, args: &[&str]) -> String {
        let o = self.client(prog).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{prog} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The properties of the node named `name`, from `pw-dump`.
    fn node(&self, name: &str) -> Option<serde_json::Value> {
        let dump: serde_json::Value =
            serde_json::from_str(&self.run_client("pw-dump", &[])).ok()?;
        dump.as_array()?
            .iter()
            .filter(|o| o["type"] == "PipeWire:Interface:Node")
            .map(|o| o["info"]["props"].clone())
            .find(|p| p["node.name"] == name)
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let mut c = c;
            let _ = c.wait();
        }
    }
}

impl Drop for PipeWire {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `pw-play`/`pw-record` node properties: DSP ports, no session manager.
const PW_NODE: &str =
    "adapter.auto-port-config = { mode = dsp monitor = false control = false position = preserve }";

#[test]
#[ignore = "needs root: network namespaces, PipeWire 1.4"]
fn pipewire_announces_we_list_and_play_it_bit_exact() {
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("pwpeer {}", ns.if_a);
    let group = "239.69.24.1";
    let mut pw = PipeWire::start(&ns.a, dir.path(), "sender", &ns.if_a, group, &name);
    // PipeWire announces every 5 s, the first ~4-5 s after start.
    let list = list_json(&ns, 8.0, &["--once"]);
    let outp = dir.path().join("out.wav");
    let rx = NetnsPair::cmd_in(&ns.b, AES67)
        .args([
            "play",
            "sap:pwpeer",
            "--iface",
            &ns.if_b,
            "--sap-timeout",
            "15",
        ])
        // PipeWire sends in bursts of a 1024-frame quantum (21 ms).
        .args([
            "--link-offset-ms",
            "60",
            "--duration",
            "120",
            "--json",
            "--output",
        ])
        .arg(format!("wav:{}", outp.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let snaps = snapshots(list);
    assert_eq!(snaps.len(), 1, "--once prints one snapshot");
    let s =
        session(&snaps[0], &name).unwrap_or_else(|| panic!("PipeWire not listed: {}", snaps[0]));
    eprintln!("PipeWire's session as listed: {s}");
    assert_eq!(
        (
            s["group"].as_str(),
            s["port"].as_u64(),
            s["encoding"].as_str(),
            s["rate"].as_u64(),
            s["channels"].as_u64(),
            s["ptime_ms"].as_f64(),
            s["payload_type"].as_u64(),
            s["ts_refclk"].as_str()
        ),
        (
            Some(group),
            Some(5004),
            Some("L24"),
            Some(48000),
            Some(2),
            Some(1.0),
            Some(127),
            Some("ptp=traceable")
        ),
        "{s}"
    );
    assert_eq!(s["origin"], ns.ip_a.as_str());
    // Play 1 s of silence, then 2 s of a pseudo-random signal, per channel.
    let pad = 48_000;
    let n = 2 * 48_000;
    let sig = signal(0x9e77, n * 2, 24);
    let mut wav = vec![0i32; pad * 2];
    wav.extend_from_slice(&sig);
    let inp = dir.path().join("in.wav");
    write_wav(&inp, &wav, 2, 48000, 24);
    let props = format!("{{ node.name = wavplay {PW_NODE} }}");
    let mut play = pw
        .client("pw-play")
        .args(["--target", "0", "-P", &props])
        .arg(&inp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut linked = 0;
    while linked < 2 && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        linked = 0;
        for (o, i) in [
            ("wavplay:output_FL", "rtp-sink:send_CH1"),
            ("wavplay:output_FR", "rtp-sink:send_CH2"),
        ] {
            let st = pw.client("pw-link").args([o, i]).output().unwrap();
            let err = String::from_utf8_lossy(&st.stderr);
            if st.status.success() || err.contains("File exists") {
                linked += 1;
            }
        }
    }
    assert_eq!(linked, 2, "could not link pw-play to rtp-sink");
    assert!(play.wait().unwrap().success(), "pw-play failed");
    std::thread::sleep(Duration::from_millis(300));
    // PipeWire's SAP deletion on SIGTERM is seen by the player's watcher.
    pw.stop();
    std::thread::sleep(Duration::from_millis(700));
    let out = interrupt(rx);
    let st = final_json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("aes67 play: {st}");
    assert!(stderr.contains("was deleted or timed out"), "{stderr}");
    assert_eq!(st["lost"], 0, "{st}");
    assert_eq!(st["malformed"], 0, "{st}");
    let (spec, got) = read_wav(&outp);
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 24));
    // Per channel: every non-silent received sample must lie in a run of at
    // least 16 samples that is a bit-exact copy of the sent signal, in order.
    // One run when PipeWire's graph ran smoothly; when it glitched under load
    // (its own RTP timestamps jump: `ts_jumps`), the runs restart after it.
    for ch in 0..2 {
        let tx: Vec<i32> = sig.iter().skip(ch).step_by(2).copied().collect();
        let rx: Vec<i32> = got.iter().skip(ch).step_by(2).copied().collect();
        let (runs, matched, stray) = bit_exact_runs(&tx, &rx);
        eprintln!(
            "channel {ch}: {matched} of {} frames received bit-exact in {} run(s) {runs:?}; {stray} stray non-silent frames",
            tx.len(),
            runs.len()
        );
        assert_eq!(stray, 0, "channel {ch}: samples that are not the signal");
        assert!(
            matched >= tx.len() * 9 / 10,
            "channel {ch}: only {matched} of {} frames",
            tx.len()
        );
        assert!(
            runs.windows(2).all(|w| w[0].0 < w[1].0),
            "runs out of order: {runs:?}"
        );
    }
}

/// Splits `rx` into runs that copy `tx` bit-exactly: returns the runs as
/// (start in `tx`, length), the frames in them, and the non-zero frames of
/// `rx` outside any run of at least 16.
fn bit_exact_runs(tx: &[i32], rx: &[i32]) -> (Vec<(usize, usize)>, usize, usize) {
    use std::collections::HashMap;
    let mut at: HashMap<[i32; 4], usize> = HashMap::new();
    for (i, w) in tx.windows(4).enumerate() {
        at.entry([w[0], w[1], w[2], w[3]]).or_insert(i);
    }
    let (mut runs, mut matched, mut stray) = (Vec::new(), 0, 0);
    let mut k = 0;
    while k < rx.len() {
        let start = (k + 4 <= rx.len())
            .then(|| at.get(&[rx[k], rx[k + 1], rx[k + 2], rx[k + 3]]))
            .flatten();
        if let Some(&j) = start {
            let n = tx[j..]
                .iter()
                .zip(&rx[k..])
                .take_while(|(a, b)| a == b)
                .count();
            if n >= 16 {
                runs.push((j, n));
                matched += n;
                k += n;
                continue;
            }
        }
        if rx[k] != 0 {
            stray += 1;
        }
        k += 1;
    }
    (runs, matched, stray)
}

#[test]
#[ignore = "needs root: network namespaces, PipeWire 1.4"]
fn pipewire_discovers_our_sender_and_honours_its_deletion() {
    let ns = NetnsPair::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = PipeWire::start(&ns.b, dir.path(), "receiver", &ns.if_b, "", "");
    let name = format!("aes67 tx {}", ns.if_a);
    let url = format!("aes67://239.69.25.1:5004?iface={}&ch=2&enc=L24", ns.if_a);
    let send = NetnsPair::cmd_in(&ns.a, AES67)
        .args([
            "send",
            &url,
            "--sap",
            "--name",
            &name,
            "--sap-interval",
            "2",
        ])
        .args(["--duration", "7", "--freq", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let node = loop {
        if let Some(n) = pw.node(&name) {
            break n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "PipeWire created no node for {name:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "PipeWire created {:?} after {:.2} s: {node}",
        name,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(node["media.class"], "Audio/Source", "{node}");
    assert_eq!(node["rtp.mime"], "L24", "{node}");
    assert_eq!(node["rtp.rate"], 48000, "{node}");
    assert_eq!(node["rtp.payload"], 96, "{node}");
    assert_eq!(node["rtp.ptime"], 1.0, "{node}");
    assert_eq!(node["rtp.channels"], 2, "{node}");
    assert_eq!(node["rtp.destination.ip"], "239.69.25.1", "{node}");
    // Its audio: record 1.5 s from the node's ports; our tone is there.
    let ports: Vec<String> = pw
        .run_client("pw-link", &["-o"])
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&format!("{name}:")))
        .map(String::from)
        .collect();
    assert_eq!(ports.len(), 2, "output ports of {name:?}: {ports:?}");
    let recp = dir.path().join("rec.wav");
    let props = format!("{{ node.name = rec {PW_NODE} }}");
    let mut rec = pw
        .client("pw-record")
        .args([
            "--target",
            "0",
            "--format",
            "s32",
            "--rate",
            "48000",
            "--channels",
            "2",
            "-P",
            &props,
        ])
        .arg(&recp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut linked = 0;
    while linked < 2 && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        linked = 0;
        for (o, i) in ports.iter().zip(["rec:input_FL", "rec:input_FR"]) {
            let st = pw.client("pw-link").args([o.as_str(), i]).output().unwrap();
            if st.status.success() || String::from_utf8_lossy(&st.stderr).contains("File exists") {
                linked += 1;
            }
        }
    }
    assert_eq!(linked, 2, "could not link {ports:?} to pw-record");
    std::thread::sleep(Duration::from_millis(2500));
    let _ = interrupt(std::mem::replace(
        &mut rec,
        pw.client("true").spawn().unwrap(),
    ));
    let _ = rec.wait();
    let (_, got) = read_wav(&recp);
    let left: Vec<f64> = got
        .iter()
        .step_by(2)
        .map(|&v| v as f64 / 2f64.powi(31))
        .collect();
    // In 10 ms blocks: level and pitch of our −12 dBFS 1 kHz tone (10 cycles
    // a block). PipeWire's graph may glitch under load: count the good blocks.
    let blocks: Vec<(f64, usize)> = left
        .chunks_exact(480)
        .map(|b| {
            let rms = (b.iter().map(|x| x * x).sum::<f64>() / 480.0).sqrt();
            let up = b.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
            (rms, up)
        })
        .collect();
    let tone = blocks
        .iter()
        .filter(|(r, up)| (r - 0.177).abs() < 0.01 && (9..=11).contains(up))
        .count();
    let silent = blocks.iter().filter(|(r, _)| *r < 1e-6).count();
    eprintln!(
        "pw-record: {} frames, {} blocks of 10 ms: {tone} our tone (rms 0.177 ± 0.01, 1 kHz), {silent} silent",
        left.len(),
        blocks.len()
    );
    assert!(tone >= 30, "only {tone} blocks of our tone: {blocks:?}");
    // Our clean stop sends 3 deletions: PipeWire drops the source at once
    // (its own timeout would take 90 s).
    let out = send.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t1 = Instant::now();
    while pw.node(&name).is_some() {
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "PipeWire kept {name:?} after our deletion"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "PipeWire removed {name:?} {:.2} s after our sender stopped",
        t1.elapsed().as_secs_f64()
    );
}
