//! `aes67 run` as a service, against real peers:
//!
//! - the shipped example config passes `--check` with the test's interface
//!   substituted in its one place, and bad input is rejected naming the field;
//! - the unit passes `systemd-analyze verify`;
//! - in network namespaces (root): `aes67 run` as `nobody` with only the
//!   unit's ambient capabilities (setpriv), a ptp4l grandmaster, 4 GStreamer
//!   senders received bit-exactly, 2 of our senders received by GStreamer,
//!   PTP locked; a Prometheus server scraping our metrics; an invalid config
//!   on SIGHUP changes nothing; a SIGHUP that removes one receiver and adds
//!   one leaves the 3 others bit-exact; READY=1 and WATCHDOG=1 on a test
//!   NOTIFY_SOCKET, and no WATCHDOG=1 once the PTP thread is stopped (test hook).
//!
//! `AES67_SERVICE_SECS` sets the length of the long run (default 60 s).

mod gst_common;
use gst_common::{read_wav, signal, write_wav};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aes67_rig::{NetnsPair, PTP4L_GM_CONF, spawn_ptp4l};

const BIN: &str = env!("CARGO_BIN_EXE_aes67");

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/aes67.example.toml"
    ))
    .unwrap()
}

/// The example with its one interface line set to `iface`.
fn example_on(iface: &str) -> String {
    let t = example();
    let line = "interface = \"eth0\"";
    assert_eq!(
        t.lines().filter(|l| l.trim_start() == line).count(),
        1,
        "the example names its interface in exactly one place"
    );
    t.lines()
        .map(|l| {
            if l.trim_start() == line {
                format!("interface = \"{iface}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_config_passes_check_with_the_interface_substituted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("aes67.toml");
    std::fs::write(&p, example_on("lo")).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--check"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("ok (1 PTP port(s), 2 receiver(s), 1 sender(s))")
    );
    // Every section is present.
    let c = aes67::service::config::Config::parse(&example_on("lo"), None).unwrap();
    assert_eq!(c.ptp[0].interface, "lo");
    assert!(
        c.receivers
            .iter()
            .all(|r| r.stream.iface.as_deref() == Some("lo") && r.ptp)
    );
    assert_eq!(c.senders[0].stream.iface.as_deref(), Some("lo"));
    assert!(c.metrics.is_some() && c.status_socket.is_some());
    for s in [
        "[[ptp]]",
        "[[receivers]]",
        "[[senders]]",
        "[metrics]",
        "[status]",
        "[supervisor]",
    ] {
        assert!(example().contains(s), "example lacks {s}");
    }
}

#[test]
fn check_rejects_bad_values_naming_the_field_and_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    let t = example_on("lo").replace("link_offset_ms = 10.0", "link_offset_ms = 0");
    std::fs::write(&p, t).unwrap();
    for args in [vec!["run", "--check"], vec!["run", "--config"]] {
        let out = Command::new(BIN).args(&args).arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("receivers[1].link_offset_ms: 0 is below the minimum 1"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/aes67.service"
    ))
    .unwrap()
    .replace("/usr/bin/aes67", BIN);
    let p = dir.path().join("aes67.service");
    std::fs::write(&p, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&p)
        .output()
        .expect("systemd-analyze (ci/setup.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("aes67")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}

fn gst_send(ns: &NetnsPair, wav: &Path, group: &str) -> Child {
    let p = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,format=S24BE,rate=48000,channels=2 ! \
         rtpL24pay pt=96 mtu=1500 min-ptime=1000000 max-ptime=1000000 ! \
         udpsink host={group} port=5004 multicast-iface={} ttl-mc=1 auto-multicast=true sync=true",
        wav.display(),
        ns.if_a
    );
    NetnsPair::cmd_in(&ns.a, "gst-launch-1.0")
        .arg("-q")
        .args(p.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// GStreamer receiving `group:port` (each on its own port: a socket bound to
/// a port receives every group joined on it in the namespace).
fn gst_receive(ns: &NetnsPair, group: &str, port: u16, out: &Path) -> Child {
    let p = format!(
        "udpsrc address={group} port={port} multicast-iface={} buffer-size=8388608 \
         caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=L24,channels=2,payload=96 ! \
         rtpL24depay ! audioconvert ! audio/x-raw,format=S32LE ! filesink location={}",
        ns.if_a,
        out.display()
    );
    let log = std::fs::File::create(out.with_extension("log")).unwrap();
    NetnsPair::cmd_in(&ns.a, "gst-launch-1.0")
        .args(["-e"])
        .args(p.split_whitespace())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn config(ns: &NetnsPair, dir: &Path, rx: &[u8], tail: &str) -> String {
    let mut c = format!(
        "interface = \"{}\"\n[[ptp]]\n[metrics]\nport = 9367\n[status]\nsocket = \"{}/status.sock\"\n\
         [supervisor]\nbackoff_min_ms = 100\n",
        ns.if_b,
        dir.display()
    );
    for i in rx {
        c += &format!(
            "[[receivers]]\nname = \"r{i}\"\nurl = \"aes67://239.69.8.{i}:5004\"\noutput = \"wav:{}/r{i}.wav\"\n\
             link_offset_ms = 20\nptp = false\n",
            dir.display()
        );
    }
    for i in 1..=2 {
        c += &format!(
            "[[senders]]\nname = \"s{i}\"\nurl = \"aes67://239.69.9.{i}:{}\"\ntone_hz = {}\n",
            5008 + 2 * i,
            440 * i
        );
    }
    c + tail
}

fn status(dir: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(dir.join("status.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rx<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no receiver {name} in {st}"))
}

fn in_b(ns: &NetnsPair, prog: &str, args: &[&str]) -> String {
    let out = NetnsPair::cmd_in(&ns.b, prog).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One Prometheus instant query in namespace B: the first result's value.
fn prom_query(ns: &NetnsPair, q: &str) -> Option<f64> {
    let body = in_b(
        ns,
        "curl",
        &[
            "-s",
            "http://127.0.0.1:9090/api/v1/query",
            "--data-urlencode",
            &format!("query={q}"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Drains the notify socket on a thread (sd_notify blocks once a socket's
/// queue is full, as a real service manager never lets it be).
struct Notifications(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Notifications {
    fn start(sock: UnixDatagram) -> Notifications {
        let v = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let v2 = v.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                v2.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Notifications(v)
    }
    /// The datagrams received since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Kills and reaps a peer process when the test ends, passing or not.
struct Reap(Option<Child>);

impl Reap {
    fn get(&self) -> &Child {
        self.0.as_ref().unwrap()
    }
    fn take(&mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sig(c: &Child, s: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), s).unwrap();
}

#[test]
#[ignore = "needs root: network namespaces, ptp4l, GStreamer, setpriv, prometheus"]
fn unprivileged_service_real_peers_metrics_reload_and_watchdog() {
    let secs: u64 = std::env::var("AES67_SERVICE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let ns = NetnsPair::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("AES67_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
        std::mem::forget(tmp);
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _gm = Reap(Some(
        spawn_ptp4l(&ns.a, &ns.if_a, PTP4L_GM_CONF, &dir, "gm").unwrap(),
    ));

    // Inputs: 4 streams for the whole run, the 5th (added by reload) shorter.
    let frames = |s: u64| (s * 48000) as usize;
    let inputs: Vec<(PathBuf, Vec<i32>)> = (1..=5u8)
        .map(|i| {
            let len = if i == 5 { secs - 15 } else { secs };
            let s = signal(0xa567 ^ u64::from(i), frames(len) * 2, 24);
            let p = dir.join(format!("in{i}.wav"));
            write_wav(&p, &s, 2, 48000, 24);
            (p, s)
        })
        .collect();

    let cfg = dir.join("aes67.toml");
    std::fs::write(&cfg, config(&ns, &dir, &[1, 2, 3, 4], "")).unwrap();
    let notify = dir.join("notify.sock");
    let nsock = UnixDatagram::bind(&notify).unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o777)).unwrap();
    let nsock = Notifications::start(nsock);

    // Our receivers of our senders, then the service as nobody with only the
    // ambient capabilities of the unit.
    let gst_rx: Vec<(Child, PathBuf)> = (1..=2)
        .map(|i| {
            let p = dir.join(format!("gst{i}.raw"));
            (
                gst_receive(&ns, &format!("239.69.9.{i}"), 5008 + 2 * i, &p),
                p,
            )
        })
        .collect();
    let caps = "+net_bind_service,+net_raw,+net_admin,+sys_nice,+ipc_lock";
    let log = std::fs::File::create(dir.join("aes67.log")).unwrap();
    let mut svc = Reap(Some(
        NetnsPair::cmd_in(&ns.b, "setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                &format!("--inh-caps={caps}"),
                &format!("--ambient-caps={caps}"),
                BIN,
                "run",
                "--config",
            ])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "400000")
            .env("AES67_TEST_HOOKS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    let log = || std::fs::read_to_string(dir.join("aes67.log")).unwrap_or_default();

    let t0 = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|m| m.contains("READY=1")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no READY=1: {seen:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
        seen.extend(nsock.take());
    }
    let st = status(&dir);
    assert_eq!(st["ptp"][0]["run"], "running", "{st}\n{}", log());

    let senders: Vec<Child> = (0..4)
        .map(|i| gst_send(&ns, &inputs[i].0, &format!("239.69.8.{}", i + 1)))
        .collect();

    // Prometheus scrapes us every second.
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: aes67\n    static_configs:\n      - targets: ['127.0.0.1:9367']\n",
    )
    .unwrap();
    let _prom = Reap(Some(
        NetnsPair::cmd_in(&ns.b, "prometheus")
            .arg(format!("--config.file={}/prometheus.yml", dir.display()))
            .arg(format!("--storage.tsdb.path={}/tsdb", dir.display()))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (ci/setup.sh)"),
    ));

    // promtool on our own output.
    std::thread::sleep(Duration::from_secs(4));
    let text = in_b(&ns, "curl", &["-s", "http://127.0.0.1:9367/metrics"]);
    assert!(
        text.contains("aes67_stream_packets_total{name=\"r1\"}"),
        "{text}"
    );
    // Each sender's pacing lateness (largest send behind schedule) is
    // reported, in seconds: measured (> 0) and far below a packet time x 100.
    for s in ["s1", "s2"] {
        let key = format!("aes67_sender_pacing_lateness_max_seconds{{name=\"{s}\"}} ");
        let v: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{text}"));
        println!("{s}: pacing lateness max {:.0} us", v * 1e6);
        assert!(v > 0.0 && v < 0.1, "{s}: pacing lateness {v} s");
    }
    let mut pt = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (ci/setup.sh)");
    std::io::Write::write_all(pt.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let pto = pt.wait_with_output().unwrap();
    assert!(
        pto.status.success() && pto.stdout.is_empty() && pto.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&pto.stdout),
        String::from_utf8_lossy(&pto.stderr)
    );

    // An invalid config on SIGHUP changes nothing.
    std::fs::write(
        &cfg,
        config(
            &ns,
            &dir,
            &[1, 2, 3, 4],
            "[[receivers]]\nname = \"r1\"\nlink_offset_ms = 0\n",
        ),
    )
    .unwrap();
    sig(svc.get(), nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    let st = status(&dir);
    assert_eq!(st["reload_errors"], 1, "{st}");
    assert_eq!(st["reloads"], 0, "{st}");
    assert!(
        st["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("receivers[4].link_offset_ms: 0 is below the minimum 1"),
        "{st}"
    );
    for n in ["r1", "r2", "r3", "r4"] {
        assert_eq!(rx(&st, n)["run"], "running", "{st}");
        assert_eq!(rx(&st, n)["restarts"], 0, "{st}");
    }

    // Reload: r4 removed, r5 added; then the 5th sender starts.
    std::fs::write(&cfg, config(&ns, &dir, &[1, 2, 3, 5], "")).unwrap();
    sig(svc.get(), nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    let st = status(&dir);
    assert_eq!(st["reloads"], 1, "{st}");
    assert!(
        st["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "r4"),
        "{st}"
    );
    assert_eq!(rx(&st, "r5")["run"], "running", "{st}");
    let g5 = gst_send(&ns, &inputs[4].0, "239.69.8.5");

    // The counter grows in Prometheus, which also has the PTP offset.
    let q = "aes67_stream_packets_total{name=\"r1\"}";
    let a = (0..20)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(500));
            prom_query(&ns, q)
        })
        .unwrap_or_else(|| {
            panic!(
                "Prometheus has no {q}: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            )
        });
    std::thread::sleep(Duration::from_secs(3));
    let b = prom_query(&ns, q).unwrap();
    assert!(b > a, "{q}: {a} then {b}");
    // The offset once the port is locked (the first samples come before the step).
    let locked = (0..(secs - 10) * 2).any(|_| {
        let l = prom_query(&ns, "aes67_ptp_locked") == Some(1.0);
        if !l {
            std::thread::sleep(Duration::from_millis(500));
        }
        l
    });
    assert!(
        locked,
        "PTP never locked in Prometheus: {}\n{}",
        status(&dir),
        log()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let off = prom_query(&ns, "aes67_ptp_offset_from_master_seconds")
        .unwrap_or_else(|| panic!("no PTP offset in Prometheus: {}\n{}", status(&dir), log()));
    assert!(off.abs() < 1e-3, "PTP offset {off} s");
    println!("prometheus: {q} {a} -> {b}; PTP offset {off:e} s");

    for s in senders.into_iter().chain([g5]) {
        let o = s.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "gst-launch: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = status(&dir);
    let screen = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(dir.join("status.sock"))
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&screen.stdout));
    let p = &st["ptp"][0];
    assert!(
        p["locked"] == true && p["state"] == "SLAVE",
        "PTP not locked: {st}"
    );
    assert!(
        p["offset_from_master_s"].as_f64().unwrap().abs() < 1e-3,
        "{st}"
    );
    for n in ["r1", "r2", "r3", "r5"] {
        let r = rx(&st, n);
        assert_eq!(
            (
                r["lost"].as_u64(),
                r["late"].as_u64(),
                r["duplicates"].as_u64(),
                r["restarts"].as_u64()
            ),
            (Some(0), Some(0), Some(0), Some(0)),
            "{n}: {r}"
        );
    }
    for s in st["senders"].as_array().unwrap() {
        assert_eq!(s["run"], "running", "{st}");
        assert!(s["packets"].as_u64().unwrap() >= (secs - 2) * 1000, "{st}");
    }

    // Watchdog: pings while healthy; none once the PTP thread is stopped.
    seen.extend(nsock.take());
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(
        pings as f64 >= (t0.elapsed().as_secs_f64() / 0.2) * 0.5,
        "{pings} pings in {:?}",
        t0.elapsed()
    );
    sig(svc.get(), nix::sys::signal::Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    let _ = nsock.take();
    std::thread::sleep(Duration::from_millis(1500));
    let after = nsock.take();
    assert!(
        !after.iter().any(|m| m.contains("WATCHDOG=1")),
        "watchdog pinged while unhealthy: {after:?}"
    );
    let st = status(&dir);
    assert_eq!(st["healthy"], false, "{st}");
    assert!(
        in_b(&ns, "curl", &["-s", "http://127.0.0.1:9367/metrics"]).contains("aes67_healthy 0")
    );

    sig(svc.get(), nix::sys::signal::Signal::SIGTERM);
    let code = svc.take().wait().unwrap();
    assert!(code.success(), "aes67 run exit {code:?}\n{}", log());

    // Every received stream is bit-exact, across both reloads.
    for i in [1usize, 2, 3, 5] {
        let got = read_wav(&dir.join(format!("r{i}.wav"))).1;
        let sent = &inputs[i - 1].1;
        assert_eq!(got.len(), sent.len(), "r{i}: output length (samples)");
        assert_eq!(
            got.iter().zip(sent).position(|(a, b)| a != b),
            None,
            "r{i}: first differing sample"
        );
    }
    // Our senders, received by GStreamer: the tone bit-exact, from the first
    // packet GStreamer caught to the last one sent.
    for (i, (c, p)) in gst_rx.into_iter().enumerate() {
        sig(&c, nix::sys::signal::Signal::SIGINT);
        let _ = c.wait_with_output();
        // Raw S32LE: the 24-bit samples in the top three bytes.
        let got: Vec<i32> = std::fs::read(&p)
            .unwrap()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 8)
            .collect();
        assert!(
            got.len() >= frames(secs) * 2,
            "{}: {} samples; gst-launch said:\n{}",
            p.display(),
            got.len(),
            std::fs::read_to_string(p.with_extension("log")).unwrap_or_default()
        );
        let mut sine = aes67::media::tone::Sine::with_level(
            48000,
            440.0 * (i + 1) as f64,
            aes67::media::tone::dbfs_to_linear(-12.0),
            24,
        );
        let mut want = vec![0i32; got.len() + 4 * 48000 * 2];
        sine.fill(&mut want, 2);
        // The first packet caught is within the first 2 s of the sender.
        let probe = 480 * 2;
        let off = (0..2 * 48000)
            .map(|f| f * 2)
            .find(|&o| want[o..o + probe] == got[..probe])
            .unwrap_or_else(|| panic!("{}: the capture does not start on the tone", p.display()));
        let first_bad = got.iter().zip(&want[off..]).position(|(a, b)| a != b);
        assert_eq!(
            first_bad,
            None,
            "{}: first differing sample of {} (tone offset {off}); {} differ",
            p.display(),
            got.len(),
            got.iter().zip(&want[off..]).filter(|(a, b)| a != b).count()
        );
    }
    let mut l = String::new();
    std::fs::File::open(dir.join("aes67.log"))
        .unwrap()
        .read_to_string(&mut l)
        .unwrap();
    assert!(!l.contains("panicked"), "{l}");
}

#[test]
#[ignore = "needs root: installs the rules for a moment in /run/udev/rules.d for udevadm"]
fn udev_rules_parse_with_udevadm() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/udev/60-aes67.rules");
    let dst = PathBuf::from(format!(
        "/run/udev/rules.d/60-aes67-test-{}.rules",
        std::process::id()
    ));
    std::fs::create_dir_all("/run/udev/rules.d").unwrap();
    std::fs::copy(src, &dst).unwrap();
    let out = Command::new("udevadm")
        .args(["test", "--action=add", "/sys/class/net/lo"])
        .output()
        .expect("udevadm (ci/setup.sh)");
    let _ = std::fs::remove_file(&dst);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let name = dst.display().to_string();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&name)).collect();
    assert!(
        ours.iter().any(|l| l.starts_with("Reading rules file")),
        "udevadm did not read the rules:\n{text}"
    );
    // The group is created by the package; anything else is a defect.
    let bad: Vec<&&str> = ours
        .iter()
        .filter(|l| !l.starts_with("Reading rules file") && !l.contains("Unknown group 'aes67'"))
        .collect();
    assert!(bad.is_empty(), "udevadm on the rules: {bad:#?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_metrics(port: u16) -> Option<String> {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

/// On loopback (TTL 0, this host only): a reload that moves the metrics port
/// restarts only the metrics server; the stream keeps its counters.
#[test]
fn reload_moves_the_metrics_server_and_keeps_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let cfg = |port: u16| {
        format!(
            "interface = \"lo\"\n[[receivers]]\nname = \"rx\"\nurl = \"aes67://239.255.71.1:5004\"\n\
             [[senders]]\nname = \"tx\"\nurl = \"aes67://239.255.71.1:5004\"\nttl = 0\n\
             [metrics]\nport = {port}\n[status]\nsocket = \"{}/status.sock\"\n",
            dir.path().display()
        )
    };
    let path = dir.path().join("aes67.toml");
    std::fs::write(&path, cfg(p1)).unwrap();
    let mut svc = Reap(Some(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap(),
    ));
    let packets = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("aes67_stream_packets_total{name=\"rx\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let t0 = Instant::now();
    let before = loop {
        if let Some(t) = http_metrics(p1).filter(|t| packets(t) > 200) {
            break packets(&t);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no packets on port {p1}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::write(&path, cfg(p2)).unwrap();
    sig(svc.get(), nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        http_metrics(p1).is_none(),
        "the old metrics port still answers"
    );
    let t = http_metrics(p2).expect("the new metrics port answers");
    assert!(
        packets(&t) > before,
        "the stream was restarted: {before} then {}",
        packets(&t)
    );
    assert!(t.contains("aes67_reloads_total 1"), "{t}");
    assert!(
        t.contains("aes67_stream_restarts_total{name=\"rx\"} 0"),
        "{t}"
    );
    sig(svc.get(), nix::sys::signal::Signal::SIGTERM);
    assert!(svc.take().wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        log.contains("reload: 0 change(s)"),
        "the streams were touched:\n{log}"
    );
}

/// `--check` names the field of a bad `sap`, `source` or `loop` in receivers
/// and senders; a good `sap` receiver and a `file:` sender (relative to the
/// config's folder) pass.
#[test]
fn check_names_sap_and_sender_source_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("a.wav"), &signal(7, 960, 24), 2, 48000, 24);
    let run_check = |body: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            format!("interface = \"lo\"\n[status]\nenabled = false\n{body}"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["run", "--check"])
            .arg(&p)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = "[[receivers]]\nname = \"r\"\nsap = \"Studio\"\n\
                [[senders]]\nname = \"s\"\nurl = \"aes67://239.69.9.1:5004\"\nsource = \"file:a.wav\"\nloop = false\n";
    assert_eq!(run_check(good), (Some(0), String::new()));
    for (body, want) in [
        (
            "[[receivers]]\nname = \"r\"\nsap = \"\"\n",
            "receivers[0].sap: empty",
        ),
        (
            "[[receivers]]\nname = \"r\"\nsap = \"S\"\nurl = \"aes67://239.69.9.1:5004\"\n",
            "receivers[0].sap: give one of url, sdp or sap",
        ),
        (
            "[[senders]]\nname = \"s\"\nurl = \"aes67://239.69.9.1:5004\"\nsource = \"stdin\"\n",
            "senders[0].source: stdin is not available to a service",
        ),
        (
            "[[senders]]\nname = \"s\"\nurl = \"aes67://239.69.9.1:5004\"\nsource = \"file:nope.wav\"\n",
            "senders[0].source: file:",
        ),
        (
            "[[senders]]\nname = \"s\"\nurl = \"aes67://239.69.9.1:5004\"\nsource = \"tone:440\"\ntone_hz = 880\n",
            "senders[0].source: tone:HZ and tone_hz both set",
        ),
        (
            "[[senders]]\nname = \"s\"\nurl = \"aes67://239.69.9.1:5004\"\nsource = \"noise\"\n",
            "senders[0].source: invalid source \"noise\"",
        ),
    ] {
        let (code, err) = run_check(body);
        assert_eq!(code, Some(2), "{body}: {err}");
        assert!(err.contains(want), "{body}: want {want:?} in {err}");
    }
}

/// Samples of `got` from its first non-zero frame on, matched against `want`
/// played in a loop: the offset into `want` where they start. Panics naming
/// `what` unless every sample matches.
fn assert_cyclic_bit_exact(what: &str, got: &[i32], want: &[i32], min_samples: usize) {
    let start = got
        .chunks_exact(2)
        .position(|f| f != [0, 0])
        .unwrap_or_else(|| panic!("{what}: nothing but silence ({} samples)", got.len()))
        * 2;
    let got = &got[start..];
    assert!(
        got.len() >= min_samples,
        "{what}: {} samples after the leading silence, want ≥ {min_samples}",
        got.len()
    );
    let probe = 480 * 2;
    let off = (0..want.len() / 2)
        .map(|f| f * 2)
        .find(|&o| (0..probe).all(|k| want[(o + k) % want.len()] == got[k]))
        .unwrap_or_else(|| panic!("{what}: the audio is not the sent file's"));
    let bad = got
        .iter()
        .enumerate()
        .filter(|&(k, s)| *s != want[(off + k) % want.len()])
        .count();
    let first = got
        .iter()
        .enumerate()
        .position(|(k, s)| *s != want[(off + k) % want.len()]);
    assert_eq!(
        first,
        None,
        "{what}: first differing sample of {} (file offset {off}); {bad} differ",
        got.len()
    );
}

/// Issue 14: a `file:` sender received bit-exactly by GStreamer, and a
/// receiver naming a SAP session (`sap = NAME`) that `aes67 send --sap`
/// announces from the other namespace: in error (naming what it heard)
/// until the announcement, then playing it bit-exactly to a WAV file.
#[test]
#[ignore = "needs root: network namespaces, GStreamer"]
fn file_sender_to_gstreamer_and_sap_receiver_by_name() {
    let ns = NetnsPair::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    if std::env::var_os("AES67_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
        std::mem::forget(tmp);
    }
    // 2 s files, looped by both senders.
    let file_tx = signal(0x5e4d, 2 * 48000 * 2, 24);
    write_wav(&dir.join("tx.wav"), &file_tx, 2, 48000, 24);
    let file_sap = signal(0x5a9, 2 * 48000 * 2, 24);
    write_wav(&dir.join("sap.wav"), &file_sap, 2, 48000, 24);
    let cfg = dir.join("aes67.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"{}\"\n[metrics]\nenabled = false\n[status]\nsocket = \"{}/status.sock\"\n\
             [supervisor]\nbackoff_min_ms = 100\nbackoff_max_s = 0.5\n\
             [[receivers]]\nname = \"bysap\"\nsap = \"Svc SAP\"\noutput = \"wav:{}/sap_rx.wav\"\n\
             link_offset_ms = 20\nptp = false\n\
             [[senders]]\nname = \"file\"\nurl = \"aes67://239.69.9.7:5020\"\nsource = \"file:tx.wav\"\n",
            ns.if_b,
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let gst = Reap(Some(gst_receive(
        &ns,
        "239.69.9.7",
        5020,
        &dir.join("gst.raw"),
    )));
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::File::create(dir.join("aes67.log")).unwrap();
    let mut svc = Reap(Some(
        NetnsPair::cmd_in(&ns.b, BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    let log = || std::fs::read_to_string(dir.join("aes67.log")).unwrap_or_default();
    // Before any announcement: in error, naming the session and what was heard.
    let t0 = Instant::now();
    let st = loop {
        if dir.join("status.sock").exists() {
            let st = status(&dir);
            if rx(&st, "bysap")["error"].is_string() {
                break st;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no status\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let r = rx(&st, "bysap");
    assert_eq!(r["run"], "error", "{st}");
    assert_eq!(r["dest"], "sap:Svc SAP", "{st}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("no SAP session named \"Svc SAP\"") && e.contains("heard: []"),
        "{e}"
    );
    // Announce it from namespace A.
    let send_log = std::fs::File::create(dir.join("send.log")).unwrap();
    let mut sender = Reap(Some(
        NetnsPair::cmd_in(&ns.a, BIN)
            .args([
                "send",
                &format!("aes67://239.69.9.8:5022?iface={}", ns.if_a),
                "--source",
                &format!("file:{}", dir.join("sap.wav").display()),
                "--loop",
                "--sap",
                "--sap-interval",
                "1",
                "--name",
                "Svc SAP 14",
            ])
            .stdout(Stdio::null())
            .stderr(send_log)
            .spawn()
            .unwrap(),
    ));
    let t1 = Instant::now();
    let st = loop {
        let st = status(&dir);
        if rx(&st, "bysap")["run"] == "running" {
            break st;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "the SAP receiver did not start: {st}\n{}\n{}",
            log(),
            std::fs::read_to_string(dir.join("send.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "SAP receiver running {:.1} s after the sender started",
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(rx(&st, "bysap")["dest"], "239.69.9.8:5022", "{st}");
    // Both streams flow at 1000 packets/s (1 ms packets), measured over 4 s
    // once the SAP-announced one has started arriving.
    let counts = |st: &serde_json::Value| {
        (
            rx(st, "bysap")["packets"].as_u64().unwrap(),
            st["senders"][0]["packets"].as_u64().unwrap(),
        )
    };
    let t2 = Instant::now();
    while counts(&status(&dir)).0 == 0 {
        assert!(
            t2.elapsed() < Duration::from_secs(10),
            "no packets\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (a0, t_a) = (counts(&status(&dir)), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let st = status(&dir);
    let (a1, dt) = (counts(&st), t_a.elapsed().as_secs_f64());
    let rate = |n1: u64, n0: u64| (n1 - n0) as f64 / dt;
    eprintln!(
        "over {dt:.2} s: SAP receiver {:.0} packets/s, file sender {:.0} packets/s",
        rate(a1.0, a0.0),
        rate(a1.1, a0.1)
    );
    for (what, r) in [
        ("SAP receiver", rate(a1.0, a0.0)),
        ("file sender", rate(a1.1, a0.1)),
    ] {
        assert!((r - 1000.0).abs() < 50.0, "{what}: {r:.0} packets/s\n{st}");
    }
    let r = rx(&st, "bysap");
    assert_eq!(
        (r["lost"].as_u64(), r["late"].as_u64()),
        (Some(0), Some(0)),
        "{st}"
    );
    let s = &st["senders"][0];
    assert_eq!(
        (s["run"].as_str(), s["underruns"].as_u64()),
        (Some("running"), Some(0)),
        "{st}"
    );
    sig(svc.get(), nix::sys::signal::Signal::SIGTERM);
    let code = svc.take().wait().unwrap();
    assert!(code.success(), "aes67 run exit {code:?}\n{}", log());
    sig(sender.get(), nix::sys::signal::Signal::SIGINT);
    let _ = sender.take().wait();
    let mut gst = gst;
    let g = gst.take();
    sig(&g, nix::sys::signal::Signal::SIGINT);
    let _ = g.wait_with_output();

    let got = read_wav(&dir.join("sap_rx.wav")).1;
    assert_cyclic_bit_exact("SAP receiver", &got, &file_sap, 3 * 48000 * 2);
    let raw: Vec<i32> = std::fs::read(dir.join("gst.raw"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 8)
        .collect();
    assert_cyclic_bit_exact("file sender via GStreamer", &raw, &file_tx, 3 * 48000 * 2);
    assert!(!log().contains("panicked"), "{}", log());
}

/// Issue 14: with `JOURNAL_STREAM` set, the service logs to a real
/// systemd-journald (started in a private mount namespace, its own `/run`
/// and `/var/log` on tmpfs), with the journal's fields: a receiver whose
/// interface is missing is a warning (PRIORITY 4) naming it, retried with
/// back-off (logged again), the start an info (tracing-journald's PRIORITY 5),
/// each with SYSLOG_IDENTIFIER=aes67, TARGET and the code location.
#[test]
#[ignore = "needs root: a mount namespace and systemd-journald"]
fn logs_reach_a_real_journald_with_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aes67.toml");
    std::fs::write(
        &cfg,
        "interface = \"nonexist0\"\n[metrics]\nenabled = false\n[status]\nenabled = false\n\
         [[receivers]]\nname = \"r1\"\nurl = \"aes67://239.69.9.9:5004\"\nptp = false\n",
    )
    .unwrap();
    let out = dir.path().join("journal.json");
    let script = dir.path().join("journald.sh");
    std::fs::write(
        &script,
        r#"set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/log
/lib/systemd/systemd-journald &
J=$!
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
JOURNAL_STREAM=0:0 RUST_LOG=info "$1" run --config "$2" &
A=$!
sleep 1.5
kill -TERM $A
wait $A
journalctl -D /run/log/journal -o json --no-pager SYSLOG_IDENTIFIER=aes67 > "$3"
kill $J
wait $J || true
"#,
    )
    .unwrap();
    let r = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh"])
        .arg(&script)
        .arg(BIN)
        .arg(&cfg)
        .arg(&out)
        .output()
        .expect("unshare");
    assert!(
        r.status.success(),
        "journald run failed: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |needle: &str| {
        entries
            .iter()
            .find(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(needle)))
            .unwrap_or_else(|| panic!("no journal entry with {needle:?} in {entries:#?}"))
    };
    let start = find("receiver(s), 0 sender(s) from");
    assert_eq!(start["PRIORITY"], "5", "{start:#}");
    let warn = find("receiver r1: ");
    assert_eq!(warn["PRIORITY"], "4", "{warn:#}");
    assert!(
        warn["MESSAGE"].as_str().unwrap().contains("nonexist0"),
        "{warn:#}"
    );
    assert_eq!(warn["TARGET"], "aes67::service::supervisor", "{warn:#}");
    let retries = entries
        .iter()
        .filter(|e| e["MESSAGE"] == warn["MESSAGE"])
        .count();
    assert!(retries >= 2, "{retries} attempt(s) logged in 1.5 s");
    for e in [start, warn] {
        assert_eq!(e["SYSLOG_IDENTIFIER"], "aes67", "{e:#}");
        assert!(
            e["CODE_FILE"].as_str().is_some_and(|f| f.ends_with(".rs")),
            "{e:#}"
        );
        assert!(e["CODE_LINE"].is_string(), "{e:#}");
    }
    assert_eq!(find("stopping")["PRIORITY"], "5");
}
