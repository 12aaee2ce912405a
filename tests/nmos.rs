//! The NMOS node of `aes67 run` against real peers (root: network
//! namespaces with no route off the rig):
//!
//! 1. the AMWA NMOS API Testing Tool (`../shared/peers/nmos-testing`,
//!    unpacked by `ci/setup.sh` into `/tmp/nmos-testing`) runs the suites
//!    IS-04-01 (Node API, registration to its mock registries found over
//!    mDNS, heartbeats, failover), IS-05-01, IS-05-02 and IS-04-03 in
//!    parallel, each against its own node in its own namespace pair; the
//!    JSON results go to `target/nmos-results/`; no test may fail, and
//!    every other non-pass is one of the [`EXPECTED`] with its reason;
//! 2. sdpoker (`--audioOnly --should`) finds nothing in any SDP the node
//!    serves;
//! 3. an IS-05 PATCH to a receiver's `/staged` with a GStreamer stream's SDP
//!    and `activate_immediate` makes the engine play it bit-exactly (WAV);
//!    `master_enable: false` stops it while the stream still flows.

mod gst_common;
use gst_common::{blocks_exact_or_silent, l24_stereo_48k, read_wav, rig_ready, signal, write_wav};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aes67_rig::{NetnsPair, in_netns};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_aes67");
const PORT: u16 = 3212;

/// Non-pass results that are expected, with the reason (also in
/// docs/nmos.md). Besides these, "Test Disabled" (HTTPS, authorization,
/// unicast DNS-SD, other API versions: off in this rig or not for v1.3),
/// the tool's own `__init__`/`set_up_tests`/`tear_down_tests` entries, and
/// "Not Applicable" with the tool's reason "Replaced by 'auto' test" pass.
/// Anything else that is not a pass fails the test.
const EXPECTED: &[(&str, &str, &str)] = &[
    (
        "IS-04-01",
        "test_12_01",
        "Warning: the tool withdraws every registry before this test, so the node has fallen back to peer-to-peer and advertises _nmos-node._tcp, as IS-04 asks of a node without a registry",
    ),
    (
        "IS-04-01",
        "test_19_01",
        "Not Implemented (optional): interfaces carry no attached_network_device (LLDP neighbour) info",
    ),
    (
        "IS-04-01",
        "test_22",
        "Manual by design: ids persisting over a reboot needs a reboot (ids are UUID v5 of host and stream names, unit-tested)",
    ),
    (
        "IS-04-01",
        "test_23",
        "Not Implemented (optional): no BCP-002-01 grouphint tags (each stream stands alone)",
    ),
    (
        "IS-04-01",
        "test_27_4",
        "Not Implemented (optional): BCP-004-01 constraint set labels",
    ),
    (
        "IS-04-01",
        "test_27_5",
        "Not Implemented (optional): BCP-004-01 constraint set preferences",
    ),
    (
        "IS-04-01",
        "test_27_6",
        "Not Implemented (optional): BCP-004-01 enabled/disabled constraint sets",
    ),
    (
        "IS-04-03",
        "test_02",
        "Manual by design: ver_* increments are checked by hand in the tool (unit-tested here: Node::ver_txt)",
    ),
];

struct Reap(Option<Child>);
impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tool_dir() -> PathBuf {
    let d =
        PathBuf::from(std::env::var("NMOS_TESTING").unwrap_or_else(|_| "/tmp/nmos-testing".into()));
    assert!(
        d.join(".ready").exists(),
        "{} missing: run ci/setup.sh (it unpacks ../shared/peers/nmos-testing)",
        d.display()
    );
    d
}

fn results_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nmos-results");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `aes67 run` in namespace B with an `[nmos]` section; `extra` goes into
/// the config.
fn node(ns: &NetnsPair, dir: &Path, tag: &str, extra: &str) -> Reap {
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"interface = "{}"
{extra}
[metrics]
enabled = false
[status]
enabled = false
[nmos]
port = {PORT}
label = "aes67 {tag}"
description = "aes67 under test"
"#,
            ns.if_b
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{tag}.log"))).unwrap();
    let c = NetnsPair::cmd_in(&ns.b, BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let n = Reap(Some(c));
    let t = Instant::now();
    while http(
        ns,
        "GET",
        &format!("http://{}:{PORT}/x-nmos/node/v1.3/self", ns.ip_b),
        None,
    )
    .0 != 200
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the node did not come up:\n{}",
            std::fs::read_to_string(dir.join(format!("{tag}.log"))).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    n
}

/// One HTTP request from inside namespace A: (status, body).
fn http(ns: &NetnsPair, method: &str, url: &str, body: Option<&Value>) -> (u16, String) {
    in_netns(&ns.a, || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(3))
            .build();
        let r = agent.request(method, url);
        let r = match body {
            Some(b) => r
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => r.call(),
        };
        match r {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    })
    .unwrap()
}

const STREAMS: &str = r#"
[[receivers]]
name = "rx-1"
url = "aes67://239.69.1.1:5004?ch=2&enc=L24&rate=48000"
output = "null"
[[receivers]]
name = "rx-2"
url = "aes67://239.69.1.2:5004?ch=8&enc=L24&rate=48000"
output = "null"
[[senders]]
name = "tx-l24"
url = "aes67://239.69.2.1:5004?ch=2&enc=L24&rate=48000"
ttl = 1
[[senders]]
name = "tx-l16"
url = "aes67://239.69.2.2:5004?ch=2&enc=L16&rate=48000"
packet_time_us = 125
ttl = 1
"#;

/// Runs one suite of the tool in namespace A against the node in B.
fn suite(tool: &Path, ns: &NetnsPair, name: &str, args: &[String], out: &Path) -> Child {
    // The tool's own config: this rig's interface, and a unicast target
    // inside the rig (its default is 192.0.2.1).
    let work = out.with_extension("d");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let src = tool.join("nmos-testing");
    let dst = work.join("nmos-testing");
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(tool.join("venv"), work.join("venv")).unwrap();
    let uc = dst.join("nmostesting/UserConfig.py");
    let mut text = std::fs::read_to_string(&uc).unwrap();
    text += &format!(
        "CONFIG.BIND_INTERFACE = '{}'\nCONFIG.UNICAST_STREAM_TARGET = '{}'\n",
        ns.if_a, ns.ip_a
    );
    std::fs::write(&uc, text).unwrap();
    let path = format!(
        "{}:{}",
        tool.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = std::fs::File::create(out.with_extension("log")).unwrap();
    NetnsPair::cmd_in(&ns.a, &work.join("venv/bin/python").display().to_string())
        .current_dir(&dst)
        .env("PATH", path)
        .args(["nmos-test.py", "suite", name])
        .args(args)
        .arg("--output")
        .arg(out)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn sdpoker(tool: &Path, sdp: &str, dir: &Path, tag: &str) -> (bool, String) {
    let f = dir.join(format!("{tag}.sdp"));
    std::fs::write(&f, sdp).unwrap();
    let out = Command::new(tool.join("bin/sdpoker"))
        .args(["--audioOnly", "--should"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[ignore = "needs root: network namespaces, the AMWA NMOS testing tool"]
fn amwa_nmos_testing_tool_suites_and_sdpoker() {
    let tool = tool_dir();
    let res = results_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let suites: [(&str, Vec<&str>); 4] = [
        ("IS-04-01", vec!["v1.3"]),
        ("IS-05-01", vec!["v1.1"]),
        ("IS-05-02", vec!["v1.3", "v1.1"]),
        ("IS-04-03", vec!["v1.3"]),
    ];
    let t0 = Instant::now();
    let mut runs = Vec::new();
    for (name, versions) in &suites {
        let ns = NetnsPair::new().unwrap();
        let n = node(&ns, dir, name, STREAMS);
        let hosts: Vec<String> = versions.iter().map(|_| ns.ip_b.clone()).collect();
        let ports: Vec<String> = versions.iter().map(|_| PORT.to_string()).collect();
        let mut args = vec!["--host".to_string()];
        args.extend(hosts);
        args.push("--port".into());
        args.extend(ports);
        args.push("--version".into());
        args.extend(versions.iter().map(|v| v.to_string()));
        let out = res.join(format!("{name}.json"));
        let _ = std::fs::remove_file(&out);
        let c = suite(&tool, &ns, name, &args, &out);
        runs.push((name.to_string(), ns, n, Reap(Some(c)), out));
    }
    // sdpoker on every SDP a node serves, while the suites run.
    {
        let ns = &runs[1].1;
        let base = format!("http://{}:{PORT}/x-nmos", ns.ip_b);
        let (_, senders) = http(ns, "GET", &format!("{base}/node/v1.3/senders"), None);
        let senders: Vec<Value> = serde_json::from_str(&senders).unwrap();
        assert_eq!(senders.len(), 2);
        for s in &senders {
            let href = s["manifest_href"].as_str().unwrap();
            let (code, sdp) = http(ns, "GET", href, None);
            assert_eq!(code, 200, "{href}: {sdp}");
            let (ok, out) = sdpoker(&tool, &sdp, dir, s["label"].as_str().unwrap());
            assert!(ok, "sdpoker on {href}:\n{out}\n{sdp}");
            eprintln!("sdpoker clean: {} ({} bytes)", s["label"], sdp.len());
        }
    }
    // Wait for every suite (the slowest, IS-04-01, sets the pace).
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, _ns, node, mut c, out) in runs {
        let st = c.0.as_mut().unwrap().wait().unwrap();
        c.0 = None;
        drop(node);
        let log = std::fs::read_to_string(out.with_extension("log")).unwrap_or_default();
        let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
            panic!(
                "{name}: no result file {} ({e}, exit {st}):\n{log}",
                out.display()
            )
        });
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for r in v["results"].as_array().unwrap() {
            let state = r["state"].as_str().unwrap_or("?").to_string();
            *counts.entry(state.clone()).or_default() += 1;
            let test = r["name"].as_str().unwrap_or("?");
            let harness = ["__init__", "set_up_tests", "tear_down_tests"].contains(&test);
            let replaced = state == "Not Applicable"
                && r["detail"].as_str() == Some("Replaced by 'auto' test");
            if state == "Pass" || state == "Test Disabled" || harness || replaced {
                continue;
            }
            let expected = EXPECTED.iter().any(|(s, t, _)| *s == name && *t == test);
            let line = format!(
                "{name} {test}: {state}: {}",
                r["detail"].as_str().unwrap_or("")
            );
            if state == "Fail" || !expected {
                failures.push(line.clone());
            }
            report.push(line);
        }
        eprintln!("{name}: {counts:?} (exit {st})");
        let _ = std::fs::remove_dir_all(out.with_extension("d"));
    }
    for l in &report {
        eprintln!("  {l}");
    }
    eprintln!("suites took {:.0} s", t0.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "unexpected results:\n{}",
        failures.join("\n")
    );
}

#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn is05_activation_plays_a_gstreamer_stream_bit_exactly_and_master_enable_false_stops_it() {
    assert!(rig_ready());
    let ns = NetnsPair::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let case = l24_stereo_48k(48, 8);
    let sent = signal(0x1505, (case.rate * case.secs) as usize * 2, 24);
    let wav_in = dir.join("in.wav");
    write_wav(&wav_in, &sent, 2, 48000, 24);
    let wav_out = dir.join("out.wav");
    // The receiver starts on another group; NMOS moves it.
    let _node = node(
        &ns,
        dir,
        "rx",
        &format!(
            "[[receivers]]\nname = \"rx\"\nurl = \"aes67://239.69.1.1:5004?ch=2&enc=L24&rate=48000\"\noutput = \"wav:{}\"\nlink_offset_ms = 20\n",
            wav_out.display()
        ),
    );
    let base = format!("http://{}:{PORT}/x-nmos", ns.ip_b);
    let (_, rx) = http(&ns, "GET", &format!("{base}/node/v1.3/receivers"), None);
    let rx: Vec<Value> = serde_json::from_str(&rx).unwrap();
    let id = rx[0]["id"].as_str().unwrap().to_string();
    let group = "239.69.15.5";
    let gst = gst_common::gst_sender(&ns, &wav_in, &case, group, 5006);
    let sdp = format!(
        "v=0\r\no=- 15 1 IN IP4 {a}\r\ns=gstreamer\r\nc=IN IP4 {group}/32\r\nt=0 0\r\nm=audio 5006 RTP/AVP 96\r\na=rtpmap:96 L24/48000/2\r\na=ptime:1\r\na=source-filter: incl IN IP4 {group} {a}\r\na=recvonly\r\n",
        a = ns.ip_a
    );
    std::thread::sleep(Duration::from_millis(500));
    let staged = format!("{base}/connection/v1.1/single/receivers/{id}/staged");
    let (code, body) = http(
        &ns,
        "PATCH",
        &staged,
        Some(&json!({
            "sender_id": null,
            "master_enable": true,
            "transport_file": {"data": sdp, "type": "application/sdp"},
            "activation": {"mode": "activate_immediate", "requested_time": null},
        })),
    );
    assert_eq!(code, 200, "{body}");
    let (_, active) = http(
        &ns,
        "GET",
        &format!("{base}/connection/v1.1/single/receivers/{id}/active"),
        None,
    );
    let active: Value = serde_json::from_str(&active).unwrap();
    assert_eq!(active["transport_params"][0]["multicast_ip"], group);
    assert_eq!(active["transport_params"][0]["source_ip"], ns.ip_a.as_str());
    assert_eq!(active["transport_params"][0]["destination_port"], 5006);
    // Let it play 4 s, then stop it while GStreamer still sends.
    std::thread::sleep(Duration::from_secs(4));
    let (code, body) = http(
        &ns,
        "PATCH",
        &staged,
        Some(&json!({"master_enable": false, "activation": {"mode": "activate_immediate"}})),
    );
    assert_eq!(code, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (spec, got) = read_wav(&wav_out);
    std::thread::sleep(Duration::from_millis(1000));
    let (_, got_later) = read_wav(&wav_out);
    assert_eq!(
        got.len(),
        got_later.len(),
        "the output grew after master_enable false"
    );
    let (_, rx) = http(
        &ns,
        "GET",
        &format!("{base}/node/v1.3/receivers/{id}"),
        None,
    );
    let rx: Value = serde_json::from_str(&rx).unwrap();
    assert_eq!(rx["subscription"]["active"], false);
    gst_common::wait_sender(gst);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 48000, 24)
    );
    let blk = case.frames as usize * 2;
    let chk = blocks_exact_or_silent(&sent, &got, blk);
    let played = got.len() / blk;
    eprintln!(
        "played {played} packets bit-exactly ({} concealed), {} before the activation, {} after the stop",
        chk.silent, chk.lead, chk.trail
    );
    assert!(played > 2500, "played only {played} packets");
    assert!(chk.silent < 10, "{chk:?}");
    assert!(chk.trail > 1000, "the stop did not cut the stream: {chk:?}");
}
