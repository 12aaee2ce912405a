//! PTP precision harness (not part of the product: `cargo run --release -p aes67-harness --bin ptp_harness -- …`).
//!
//! - `ptp_harness bench [--seconds S] [--out DIR]` (root, linuxptp; GStreamer's
//!   PTP clock too when /usr/bin/python3 has `gi` with GstNet): one ptp4l
//!   grandmaster (software timestamps, 8 Sync/s) in namespace A; in namespace
//!   B, at the same time: our clock (in-process, its `clock_minus_realtime`
//!   sampled at 10 Hz), a free-running ptp4l slave (raw master_offset via pmc
//!   TIME_STATUS_NP), and GstPtpClock (its time minus CLOCK_REALTIME). All
//!   share CLOCK_REALTIME with the master, so each figure is an error.
//!   Prints a table (rms, max, p1/p50/p99, time to lock), ratios, and the
//!   kernel software RX timestamp vs a user-space clock read after recv;
//!   writes `ptp_harness.svg` and `ptp_harness.json` to `--out`.
//! - `ptp_harness bench --lan [--log-sync N] [--load] [--runs R]` (issue 16's
//!   rig): a Linux bridge joining four namespaces: the ptp4l grandmaster
//!   (logSyncInterval N, default −3), our slave, a ptp4l free_running
//!   reference slave, and (with `--load`) our sender with 8 streams of
//!   8 ch / 125 µs (64 000 packets/s, AF41) multicast across the same bridge
//!   to a receiver in our slave's namespace. Prints one table per run and a
//!   summary line per run (`SUMMARY {json}`: our rms / max / lock after the
//!   first Sync on the wire, ptp4l's raw rms, their ratio, DSCP EF count of
//!   our Delay_Reqs), then the median ratio over the runs.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aes67::engine::ptp::{PtpOptions, Timestamping, run_with};
use aes67::engine::ptp_clock::PtpClockHandle;
use aes67::ptp::{ServoState, servo::ServoKind};
use aes67::sys::ptp as sys;
use aes67::units::Nanos;
use aes67_rig::{NetnsPair, in_netns, is_root};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hardware-path check on a NIC with a PHC (e.g. qemu igb): capabilities,
    /// SIOCSHWTSTAMP, PHC read + PTP_SYS_OFFSET_EXTENDED, hardware TX
    /// timestamps from the error queue. Exit 0 when all worked.
    Hwcheck {
        /// Interface with a PHC.
        #[arg(long)]
        iface: String,
    },
    /// Hardware end to end (issue 16 Proof 3, the qemu two-igb rig): our
    /// slave in-process on `--iface` with hardware timestamps over
    /// `--transport` (default l2), against a grandmaster whose PHC
    /// `/dev/ptp<gm-phc>` is on this host. Each second our clock and that
    /// PHC are both read at one CLOCK_MONOTONIC_RAW instant
    /// (PTP_SYS_OFFSET_EXTENDED): prints `HWTRUTH {json}` lines and a
    /// `HWSUMMARY {json}` (error rms/max after `--settle-s` of lock).
    Hwtruth {
        /// Interface of our slave (with a PHC).
        #[arg(long)]
        iface: String,
        /// The grandmaster's PHC index (its NIC on this host).
        #[arg(long)]
        gm_phc: i32,
        /// Seconds to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seconds of lock before errors are counted.
        #[arg(long, default_value_t = 5.0)]
        settle_s: f64,
        /// Transport (l2 or udp4).
        #[arg(long, default_value = "l2")]
        transport: String,
        /// Timestamping (hardware, auto, software).
        #[arg(long, default_value = "hardware")]
        timestamping: String,
    },
    /// Precision harness against ptp4l (and GstPtpClock).
    Bench {
        /// Seconds to measure after our clock locks.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Output directory for the SVG and JSON.
        #[arg(long, default_value = "target/ptp_harness")]
        out: PathBuf,
        /// Servo to measure.
        #[arg(long, default_value = "kalman")]
        servo: ServoKind,
        /// Linear-regression window, s.
        #[arg(long, default_value_t = 4.0)]
        window_s: f64,
        /// Bridge rig (issue 16): grandmaster, our slave, ptp4l reference
        /// slave (and load sender) in namespaces joined by a Linux bridge.
        #[arg(long)]
        lan: bool,
        /// Grandmaster logSyncInterval (`--lan`).
        #[arg(long, default_value_t = -3, allow_hyphen_values = true)]
        log_sync: i8,
        /// Audio load across the bridge (`--lan`): 8 streams of 8 ch / 125 µs.
        #[arg(long)]
        load: bool,
        /// Runs (`--lan`); the median ratio is printed.
        #[arg(long, default_value_t = 1)]
        runs: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Hwcheck { iface } => match hwcheck(&iface) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ptp_harness hwcheck: {e}");
                1
            }
        },
        Cmd::Hwtruth {
            iface,
            gm_phc,
            seconds,
            settle_s,
            transport,
            timestamping,
        } => match hwtruth(&iface, gm_phc, seconds, settle_s, &transport, &timestamping) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ptp_harness hwtruth: {e}");
                1
            }
        },
        Cmd::Bench {
            seconds,
            out,
            servo,
            lan: true,
            log_sync,
            load,
            runs,
            ..
        } => match lan_runs(seconds, &out, servo, log_sync, load, runs) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ptp_harness bench --lan: {e}");
                1
            }
        },
        Cmd::Bench {
            seconds,
            out,
            servo,
            window_s,
            ..
        } => match bench(seconds, &out, servo, window_s) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ptp_harness bench: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

struct Dir(PathBuf);
impl Dir {
    fn path(&self) -> &Path {
        &self.0
    }
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const GM_CONF: &str = aes67_rig::PTP4L_GM_CONF;

fn ptp4l(ns: &str, iface: &str, conf: &str, dir: &Path, name: &str) -> Result<Kill, String> {
    aes67_rig::spawn_ptp4l(ns, iface, conf, dir, name).map(Kill)
}

fn pmc(ns: &str, uds: &Path, client: &Path) -> Option<(i64, bool)> {
    aes67_rig::pmc_time_status(ns, uds, client).map(|(o, gm, _)| (o, gm))
}

const GST_PY: &str = r#"
import sys, time, gi
gi.require_version('Gst', '1.0'); gi.require_version('GstNet', '1.0')
from gi.repository import Gst, GstNet
Gst.init(None)
if not GstNet.ptp_init(GstNet.PTP_CLOCK_ID_NONE, [sys.argv[1]]):
    print("ERR ptp_init", flush=True); sys.exit(1)
c = GstNet.PtpClock.new("ptp", 0)
# Before wait_for_sync returns, get_time() is not PTP time.
if not c.wait_for_sync(90 * Gst.SECOND):
    print("ERR no sync", flush=True); sys.exit(1)
while True:
    t = c.get_time(); r = time.clock_gettime_ns(time.CLOCK_REALTIME)
    print("%d %d %d" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC), 1 if c.is_synced() else 0, t - r), flush=True)
    time.sleep(0.1)
"#;

fn gst_available() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstNet','1.0'); from gi.repository import GstNet"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[derive(Default, Clone)]
struct Series {
    name: &'static str,
    /// (t s since start, error ns)
    pts: Vec<(f64, f64)>,
    first_sync_s: Option<f64>,
    lock_s: Option<f64>,
}

impl Series {
    /// Samples our clock at `t` (s since start): notes its first Sync and its lock,
    /// and, once locked, its error against CLOCK_REALTIME. Returns true on the
    /// sample that first sees it locked.
    fn sample_ours(&mut self, handle: &PtpClockHandle, t: f64) -> bool {
        let st = handle.servo_state();
        if st != ServoState::Unlocked && self.first_sync_s.is_none() && handle.snapshot().is_some()
        {
            self.first_sync_s = Some(t);
        }
        if !matches!(st, ServoState::Locked | ServoState::LockedStable) {
            return false;
        }
        let first = self.lock_s.is_none();
        if first {
            self.lock_s = Some(t);
        }
        if let Some(e) = handle.clock_minus_realtime() {
            self.pts.push((t, e.as_ns() as f64));
        }
        first
    }
}

fn quantiles(v: &[f64]) -> Option<(f64, f64, f64, f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    let rms = (s.iter().map(|x| x * x).sum::<f64>() / s.len() as f64).sqrt();
    let max = s.iter().map(|x| x.abs()).fold(0.0, f64::max);
    Some((rms, max, q(0.01), q(0.5), q(0.99), s.len() as f64))
}

/// Kernel software RX timestamps vs CLOCK_REALTIME read in user space right
/// after `recvmsg` returns: 2000 datagrams A → B at 1 kHz.
fn rx_timestamp_precision(net: &NetnsPair) -> Result<Vec<f64>, String> {
    let rx = in_netns(&net.b, || {
        std::net::UdpSocket::bind(format!("{}:45999", net.ip_b))
    })?
    .map_err(|e| e.to_string())?;
    sys::enable_rx_sw_timestamps(std::os::fd::AsRawFd::as_raw_fd(&rx))
        .map_err(|e| e.to_string())?;
    let tx = in_netns(&net.a, || {
        std::net::UdpSocket::bind(format!("{}:0", net.ip_a))
    })?
    .map_err(|e| e.to_string())?;
    let dst = format!("{}:45999", net.ip_b);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let sender = std::thread::spawn(move || {
        for _ in 0..2000 {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let _ = tx.send_to(&[0u8; 64], &dst);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut d = Vec::new();
    let mut buf = [0u8; 256];
    let fd = std::os::fd::AsRawFd::as_raw_fd(&rx);
    let t0 = Instant::now();
    while d.len() < 2000 && t0.elapsed() < Duration::from_secs(10) {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&rx),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16));
        while let Ok(Some((_, Some(aes67::sys::RxTimestamp::Software(k)), _))) =
            sys::recv_ts(fd, &mut buf, false, false)
        {
            let user = aes67::sys::clock::realtime_now_ns();
            d.push((user - k) as f64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    Ok(d)
}

fn bench(seconds: u64, out: &Path, servo: ServoKind, window_s: f64) -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespaces)".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    // ptp4l configs, logs and sockets of this run (kept for inspection).
    let dirp = out.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&dirp).map_err(|e| format!("{}: {e}", dirp.display()))?;
    let dir = Dir(dirp);
    let net = NetnsPair::new()?;
    let _gm = ptp4l(&net.a, &net.if_a, GM_CONF, dir.path(), "gm")?;
    let uds = dir.path().join("slave.uds");
    let client = dir.path().join("pmc.sock");
    let slave_conf = format!(
        "[global]\ndomainNumber 0\ntime_stamping software\ndelay_mechanism E2E\nnetwork_transport UDPv4\n\
slaveOnly 1\nfree_running 1\nuds_address {}\n",
        uds.display()
    );
    let start = Instant::now();
    let _sl = ptp4l(&net.b, &net.if_b, &slave_conf, dir.path(), "slave")?;
    // Ours, in-process, in namespace B.
    let handle = PtpClockHandle::new();
    let stop = Arc::new(AtomicBool::new(false));
    let args = PtpOptions {
        slave_only: true,
        servo,
        timestamping: Timestamping::Software,
        servo_window: Nanos::from_secs_f64(window_s),
        ..PtpOptions::new(net.if_b.clone())
    };
    let (h2, s2, ns_b) = (handle.clone(), stop.clone(), net.b.clone());
    let ours =
        std::thread::spawn(move || in_netns(&ns_b, || run_with(&args, &h2, &s2, &mut |_| {})));
    // GstPtpClock, when available.
    let gst_lines = if gst_available() {
        let py = dir.path().join("gstptp.py");
        std::fs::write(&py, GST_PY).map_err(|e| e.to_string())?;
        let mut c = NetnsPair::cmd_in(&net.b, "/usr/bin/python3")
            .arg(&py)
            .arg(&net.if_b)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let so = c.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for l in BufReader::new(so).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Some((Kill(c), rx))
    } else {
        eprintln!(
            "GstPtpClock: skipped (/usr/bin/python3 lacks gi GstNet; apt-get install gir1.2-gstreamer-1.0 python3-gi)"
        );
        None
    };
    let mut s_ours = Series {
        name: "aes67 (ours)",
        ..Default::default()
    };
    let mut s_ptp4l = Series {
        name: "ptp4l raw (free_running)",
        ..Default::default()
    };
    let mut s_gst = Series {
        name: "GstPtpClock",
        ..Default::default()
    };
    let mut last_pmc = Instant::now() - Duration::from_secs(1);
    let mut last_ptp4l: Option<i64> = None;
    let hard_end = start + Duration::from_secs(seconds + 40);
    let mut end = hard_end;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let t = start.elapsed().as_secs_f64();
        if s_ours.sample_ours(&handle, t) {
            end = (Instant::now() + Duration::from_secs(seconds)).min(hard_end);
        }
        if last_pmc.elapsed() >= Duration::from_millis(250) {
            last_pmc = Instant::now();
            if let Some((off, present)) = pmc(&net.b, &uds, &client)
                && present
                && off != 0
            {
                s_ptp4l.first_sync_s.get_or_insert(t);
                // master_offset changes only when ptp4l takes a new sample.
                if last_ptp4l != Some(off) {
                    s_ptp4l.pts.push((t, off as f64));
                    last_ptp4l = Some(off);
                }
            }
        }
        if let Some((_, rx)) = &gst_lines {
            for l in rx.try_iter() {
                let f: Vec<i64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if f.len() == 3 && f[1] == 1 {
                    s_gst.first_sync_s.get_or_insert(t);
                    s_gst.pts.push((t, f[2] as f64));
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ours.join();
    let rxd = rx_timestamp_precision(&net)?;
    // Table: ours from its lock; the others after 10 s of sync (they have no lock signal).
    let settle = |s: &Series| -> Vec<f64> {
        let from = s
            .lock_s
            .or(s.first_sync_s.map(|f| f + 10.0))
            .unwrap_or(f64::MAX);
        s.pts.iter().filter(|p| p.0 >= from).map(|p| p.1).collect()
    };
    let mut report = Vec::new();
    println!(
        "\n{:<26} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "clock", "n", "rms ns", "max ns", "p1 ns", "p50 ns", "p99 ns", "lock s"
    );
    let mut rms_of = std::collections::HashMap::new();
    for s in [&s_ours, &s_ptp4l, &s_gst] {
        let v = settle(s);
        let lock = match (s.first_sync_s, s.lock_s) {
            (Some(f), Some(l)) => format!("{:.2}", l - f),
            (Some(_), None) => "n/a".into(),
            _ => "-".into(),
        };
        if let Some((rms, max, p1, p50, p99, n)) = quantiles(&v) {
            println!(
                "{:<26} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>12}",
                s.name, n, rms, max, p1, p50, p99, lock
            );
            rms_of.insert(s.name, rms);
            report.push(serde_json::json!({"clock": s.name, "n": n, "rms_ns": rms, "max_ns": max, "p1_ns": p1, "p50_ns": p50, "p99_ns": p99,
                "first_sync_s": s.first_sync_s, "lock_s": s.lock_s}));
        } else {
            println!("{:<26} {:>6}", s.name, "no data");
        }
    }
    let ours_rms = rms_of.get("aes67 (ours)").copied();
    if let (Some(o), Some(p)) = (ours_rms, rms_of.get("ptp4l raw (free_running)")) {
        println!("ours / ptp4l raw rms = {:.2} (goal ≤ 0.5)", o / p);
    }
    if let (Some(o), Some(g)) = (ours_rms, rms_of.get("GstPtpClock")) {
        println!("GstPtpClock / ours rms = {:.1} (goal ≥ 10)", g / o);
    }
    if let (Some(f), Some(l)) = (s_ours.first_sync_s, s_ours.lock_s) {
        println!("our lock after first Sync: {:.2} s (goal ≤ 3 s)", l - f);
    }
    if let Some((rms, max, p1, p50, p99, n)) = quantiles(&rxd) {
        let mean = rxd.iter().sum::<f64>() / rxd.len() as f64;
        let sd = (rxd.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rxd.len() as f64).sqrt();
        println!(
            "kernel sw RX timestamp → user-space CLOCK_REALTIME after recv ({n} datagrams): mean {mean:.0} ns sd {sd:.0} ns \
p1/p50/p99 {p1:.0}/{p50:.0}/{p99:.0} ns max {max:.0} ns (rms {rms:.0}); hardware timestamps: none on this kernel (no PHC)"
        );
        report.push(serde_json::json!({"rx_user_minus_kernel_ns": {"n": n, "mean": mean, "sd": sd, "p1": p1, "p50": p50, "p99": p99, "max": max}}));
    }
    let svg = plot(&[&s_ours, &s_ptp4l, &s_gst]);
    std::fs::write(out.join("ptp_harness.svg"), svg).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(out.join("ptp_harness.json")).map_err(|e| e.to_string())?;
    let _ = writeln!(f, "{}", serde_json::Value::Array(report));
    let mut f =
        std::fs::File::create(out.join("ptp_harness_series.csv")).map_err(|e| e.to_string())?;
    for ser in [&s_ours, &s_ptp4l, &s_gst] {
        for p in &ser.pts {
            let _ = writeln!(f, "{},{:.3},{:.0}", ser.name, p.0, p.1);
        }
    }
    println!(
        "wrote {}/ptp_harness.svg and ptp_harness.json",
        out.display()
    );
    Ok(())
}

/// `runs` LAN runs; prints each and the median ratio.
fn lan_runs(
    seconds: u64,
    out: &Path,
    servo: ServoKind,
    log_sync: i8,
    load: bool,
    runs: u32,
) -> Result<(), String> {
    let mut ratios = Vec::new();
    for i in 0..runs.max(1) {
        let dir = out.join(format!(
            "lan-{}{}-{i}",
            log_sync,
            if load { "-load" } else { "" }
        ));
        let r = bench_lan(seconds, &dir, servo, log_sync, load)?;
        if let Some(x) = r["ratio"].as_f64() {
            ratios.push(x);
        }
        println!("SUMMARY {r}");
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    if let Some(m) = ratios.get(ratios.len() / 2) {
        println!(
            "median ours/ptp4l raw rms over {} runs (logSyncInterval {log_sync}, load {load}): {m:.2}; all {ratios:.2?}",
            ratios.len()
        );
    }
    Ok(())
}

/// The multicast group and port of load stream `i`.
fn load_group(i: usize) -> (std::net::Ipv4Addr, u16) {
    (
        std::net::Ipv4Addr::new(239, 69, 16, i as u8 + 1),
        5400 + 2 * i as u16,
    )
}

/// One bridge run (see the module doc); returns the summary as JSON.
fn bench_lan(
    seconds: u64,
    out: &Path,
    servo: ServoKind,
    log_sync: i8,
    load: bool,
) -> Result<serde_json::Value, String> {
    use aes67::engine::sender::{RtpClock, SendClock, SendStream, Sender, SenderOptions};
    use aes67::engine::source::ToneSource;
    use aes67::media::stream::StreamConfig;
    if !is_root() {
        return Err("needs root (network namespaces)".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let dir = Dir(out.to_path_buf());
    // 0 grandmaster, 1 ours (+ load receiver), 2 ptp4l slave, 3 load sender / Sync watcher.
    let lan = aes67_rig::NetnsLan::new(4)?;
    let nft = |ns: &str, args: &str| -> Result<String, String> {
        let o = NetnsPair::cmd_in(ns, "nft")
            .args(args.split_whitespace())
            .output()
            .map_err(|e| format!("nft: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "nft {args}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // DSCP of our Delay_Reqs, counted where they arrive (the grandmaster).
    nft(&lan.ns[0], "add table inet p16")?;
    nft(
        &lan.ns[0],
        "add chain inet p16 c { type filter hook input priority 0 ; }",
    )?;
    nft(
        &lan.ns[0],
        &format!(
            "add rule inet p16 c ip saddr {} udp dport 319 ip dscp ef counter",
            lan.ips[1]
        ),
    )?;
    nft(
        &lan.ns[0],
        &format!(
            "add rule inet p16 c ip saddr {} udp dport 319 counter",
            lan.ips[1]
        ),
    )?;
    // First Sync on the wire, seen from namespace 3.
    let watch = in_netns(&lan.ns[3], || -> std::io::Result<std::net::UdpSocket> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], 319)).into())?;
        let ip: std::net::Ipv4Addr = lan.ips[3].parse().expect("ip");
        s.join_multicast_v4(&std::net::Ipv4Addr::new(224, 0, 1, 129), &ip)?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(s.into())
    })?
    .map_err(|e| format!("Sync watcher: {e}"))?;
    let start = Instant::now();
    let first_sync = Arc::new(std::sync::Mutex::new(None::<f64>));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (fs, st) = (first_sync.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut b = [0u8; 128];
            while !st.load(Ordering::Relaxed) {
                if let Ok(n) = watch.recv(&mut b)
                    && n >= 34
                    && b[0] & 0x0f == 0
                {
                    fs.lock()
                        .expect("lock")
                        .get_or_insert(start.elapsed().as_secs_f64());
                    break;
                }
            }
        })
    };
    // Load first, so every Sync crosses a loaded bridge.
    let (sender, rx_count, rx_thread) = if load {
        let socks = in_netns(&lan.ns[1], || {
            (0..8)
                .map(|i| {
                    let (g, p) = load_group(i);
                    let mut c = StreamConfig::new(g.into(), p);
                    c.iface = Some(lan.ifs[1].clone());
                    c.channels = 8;
                    aes67::sys::socket::open_stream_socket(&c)
                })
                .collect::<Result<Vec<_>, _>>()
        })?
        .map_err(|e| format!("load receiver: {e}"))?;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c2, st) = (count.clone(), stop.clone());
        let rx = std::thread::spawn(move || {
            let Ok(o) = aes67::sys::open_source(aes67::sys::IngestKind::Recvmmsg, socks) else {
                eprintln!("load receiver: open_source failed");
                return;
            };
            let mut src = o.source;
            while !st.load(Ordering::Relaxed) {
                let _ = src.poll(50, &mut |_, _| {
                    c2.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let ip: std::net::Ipv4Addr = lan.ips[3].parse().map_err(|e| format!("{e}"))?;
        let sender = in_netns(&lan.ns[3], || {
            let streams = (0..8)
                .map(|i| {
                    let (g, p) = load_group(i);
                    let mut c = StreamConfig::new(g.into(), p);
                    c.channels = 8;
                    SendStream {
                        stream: c,
                        frames: 6,
                        iface: ip,
                        ttl: 1,
                        dscp: 34,
                        mediaclk_offset: 0,
                        ssrc: 0x1600 + i as u32,
                        source: Box::new(ToneSource::new(48_000, 8, 24, 440.0 + i as f64, -12.0)),
                    }
                })
                .collect();
            Sender::start(
                streams,
                SenderOptions::new(SendClock::Monotonic(RtpClock::Arbitrary)),
            )
        })?
        .map_err(|e| format!("load sender: {e}"))?;
        (Some(sender), Some(count), Some(rx))
    } else {
        (None, None, None)
    };
    let load_t0 = Instant::now();
    let gm_conf = GM_CONF.replace("logSyncInterval -3", &format!("logSyncInterval {log_sync}"));
    let _gm = ptp4l(&lan.ns[0], &lan.ifs[0], &gm_conf, dir.path(), "gm")?;
    let uds = dir.path().join("slave.uds");
    let client = dir.path().join("pmc.sock");
    let slave_conf = format!(
        "[global]\ndomainNumber 0\ntime_stamping software\ndelay_mechanism E2E\nnetwork_transport UDPv4\n\
slaveOnly 1\nfree_running 1\nuds_address {}\n",
        uds.display()
    );
    let _sl = ptp4l(&lan.ns[2], &lan.ifs[2], &slave_conf, dir.path(), "slave")?;
    let handle = PtpClockHandle::new();
    let args = PtpOptions {
        slave_only: true,
        servo,
        timestamping: Timestamping::Software,
        ..PtpOptions::new(lan.ifs[1].clone())
    };
    let (h2, s2, ns1) = (handle.clone(), stop.clone(), lan.ns[1].clone());
    let ours =
        std::thread::spawn(move || in_netns(&ns1, || run_with(&args, &h2, &s2, &mut |_| {})));
    let mut s_ours = Series {
        name: "aes67 (ours)",
        ..Default::default()
    };
    let mut s_ptp4l = Series {
        name: "ptp4l raw (free_running)",
        ..Default::default()
    };
    let mut last_pmc = Instant::now() - Duration::from_secs(1);
    let mut last_ptp4l: Option<i64> = None;
    let hard_end = start + Duration::from_secs(seconds + 60);
    let mut end = hard_end;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        let t = start.elapsed().as_secs_f64();
        if s_ours.sample_ours(&handle, t) {
            end = (Instant::now() + Duration::from_secs(seconds)).min(hard_end);
        }
        if last_pmc.elapsed() >= Duration::from_millis(250) {
            last_pmc = Instant::now();
            if let Some((off, present)) = pmc(&lan.ns[2], &uds, &client)
                && present
                && off != 0
            {
                s_ptp4l.first_sync_s.get_or_insert(t);
                if last_ptp4l != Some(off) {
                    s_ptp4l.pts.push((t, off as f64));
                    last_ptp4l = Some(off);
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ours.join();
    let _ = watcher.join();
    let (sent, received) = match (sender, rx_count, rx_thread) {
        (Some(s), Some(c), Some(r)) => {
            let st = s.stop();
            let _ = r.join();
            let sent: u64 = st.iter().map(|x| x.packets_sent).sum();
            (sent, c.load(Ordering::Relaxed))
        }
        _ => (0, 0),
    };
    let load_pps = sent as f64 / load_t0.elapsed().as_secs_f64();
    let counters = nft(&lan.ns[0], "list table inet p16")?;
    let count = |with_ef: bool| -> u64 {
        counters
            .lines()
            .filter(|l| l.contains("counter") && l.contains("dscp") == with_ef)
            .find_map(|l| {
                l.split("packets ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let (ef, all) = (count(true), count(false));
    // Ours from its lock; ptp4l's after 10 s of sync (it has no lock signal).
    let settle = |s: &Series| -> Vec<f64> {
        let from = s
            .lock_s
            .or(s.first_sync_s.map(|f| f + 10.0))
            .unwrap_or(f64::MAX);
        s.pts.iter().filter(|p| p.0 >= from).map(|p| p.1).collect()
    };
    let q_ours = quantiles(&settle(&s_ours)).ok_or("ours: no samples (never locked)")?;
    let q_ptp4l = quantiles(&settle(&s_ptp4l)).ok_or("ptp4l: no samples")?;
    let wire_sync = *first_sync.lock().expect("lock");
    let lock_after = match (wire_sync, s_ours.lock_s) {
        (Some(f), Some(l)) => Some(l - f),
        _ => None,
    };
    println!(
        "\nbridge run: logSyncInterval {log_sync}, servo {servo:?}, load {}",
        if load {
            format!("{load_pps:.0} packets/s sent, {received} received in our namespace")
        } else {
            "none".into()
        }
    );
    println!(
        "{:<26} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "clock", "n", "rms ns", "max ns", "p1 ns", "p50 ns", "p99 ns"
    );
    for (name, q) in [(s_ours.name, q_ours), (s_ptp4l.name, q_ptp4l)] {
        println!(
            "{:<26} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            name, q.5, q.0, q.1, q.2, q.3, q.4
        );
    }
    let ratio = q_ours.0 / q_ptp4l.0;
    println!(
        "ours / ptp4l raw rms = {ratio:.2}; our lock {} s after the first Sync on the wire; \
our Delay_Reqs DSCP EF {ef}/{all}",
        lock_after.map(|l| format!("{l:.2}")).unwrap_or("-".into())
    );
    let svg = plot(&[&s_ours, &s_ptp4l]);
    std::fs::write(out.join("ptp_harness.svg"), svg).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "log_sync": log_sync, "load": load, "servo": servo,
        "ours_rms_ns": q_ours.0, "ours_max_ns": q_ours.1, "ptp4l_rms_ns": q_ptp4l.0,
        "ratio": ratio, "lock_after_first_sync_s": lock_after,
        "delay_req_ef": ef, "delay_req_all": all,
        "load_pps": load_pps, "load_received": received,
    }))
}

/// An SVG with the error over time (top) and a histogram (bottom), µs.
fn plot(series: &[&Series]) -> String {
    let colors = ["#1f77b4", "#d62728", "#2ca02c"];
    let (w, h) = (900.0, 300.0);
    let all: Vec<&(f64, f64)> = series.iter().flat_map(|s| s.pts.iter()).collect();
    let t1 = all.iter().map(|p| p.0).fold(1.0, f64::max);
    // y range from the first two (ours, ptp4l) so their detail shows; the
    // rest is clipped to it (GstPtpClock is 100× larger).
    let lim = series
        .iter()
        .take(2)
        .filter_map(|s| {
            quantiles(&s.pts.iter().map(|p| p.1).collect::<Vec<_>>())
                .map(|q| q.2.abs().max(q.4.abs()))
        })
        .fold(1_000.0, f64::max)
        * 2.0;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{}' font-family='sans-serif' font-size='12'>\n",
        2.0 * h + 60.0
    );
    s += &format!(
        "<text x='10' y='15'>clock error vs CLOCK_REALTIME over time; y range ±{:.1} µs (values beyond are clipped)</text>\n",
        lim / 1e3
    );
    s += &format!(
        "<line x1='50' y1='{}' x2='{w}' y2='{}' stroke='#999'/>\n",
        20.0 + h / 2.0,
        20.0 + h / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let pts: String = ser
            .pts
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1} ",
                    50.0 + p.0 / t1 * (w - 60.0),
                    20.0 + h / 2.0 - (p.1.clamp(-lim, lim) / lim) * (h / 2.0)
                )
            })
            .collect();
        s += &format!(
            "<polyline fill='none' stroke='{}' stroke-width='1' points='{pts}'/>\n",
            colors[i % 3]
        );
        s += &format!(
            "<text x='{}' y='{}' fill='{}'>{}</text>\n",
            60 + 200 * i,
            2.0 * h + 50.0,
            colors[i % 3],
            ser.name
        );
    }
    // Histogram: 80 bins over ±lim.
    let y0 = h + 40.0;
    s += &format!(
        "<text x='10' y='{}'>histogram of error, ±{:.1} µs</text>\n",
        y0 - 5.0,
        lim / 1e3
    );
    for (i, ser) in series.iter().enumerate() {
        let mut bins = [0usize; 80];
        for p in &ser.pts {
            let b = (((p.1 / lim) + 1.0) / 2.0 * 80.0).floor().clamp(0.0, 79.0) as usize;
            bins[b] += 1;
        }
        let m = *bins.iter().max().unwrap_or(&1).max(&1) as f64;
        let pts: String = bins
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                format!(
                    "{:.1},{:.1} ",
                    50.0 + (k as f64 + 0.5) / 80.0 * (w - 60.0),
                    y0 + h - c as f64 / m * (h - 10.0)
                )
            })
            .collect();
        s += &format!(
            "<polyline fill='none' stroke='{}' stroke-width='1.5' points='{pts}'/>\n",
            colors[i % 3]
        );
    }
    s += "</svg>\n";
    s
}

fn hwcheck(iface: &str) -> Result<(), String> {
    let info = sys::ts_info(iface).map_err(|e| format!("ETHTOOL_GET_TS_INFO: {e}"))?;
    println!(
        "ts_info {iface}: so_timestamping {:#x} phc_index {} tx_types {:#x} rx_filters {:#x}; hardware_capable {}",
        info.so_timestamping,
        info.phc_index,
        info.tx_types,
        info.rx_filters,
        info.hardware_capable()
    );
    let phc = sys::Phc::open(info.phc_index, false)
        .map_err(|e| format!("open /dev/ptp{}: {e}", info.phc_index))?;
    let a = phc.now_ns().map_err(|e| format!("PHC read: {e}"))?;
    std::thread::sleep(Duration::from_millis(200));
    let b = phc.now_ns().map_err(|e| format!("PHC read: {e}"))?;
    println!("PHC {} ticks: {} ns in 200 ms", phc.path(), b - a);
    for (name, id) in [
        ("CLOCK_REALTIME", libc::CLOCK_REALTIME),
        ("CLOCK_MONOTONIC_RAW", libc::CLOCK_MONOTONIC_RAW),
    ] {
        match phc.correlate(9, id) {
            Ok(c) => println!(
                "PTP_SYS_OFFSET_EXTENDED vs {name}: phc−sys {} ns, window {} ns",
                c.phc_ns - c.sys_ns,
                c.window_ns
            ),
            Err(e) => println!("PTP_SYS_OFFSET_EXTENDED vs {name}: {e}"),
        }
    }
    let filt = sys::enable_hw_timestamping(iface).map_err(|e| format!("SIOCSHWTSTAMP: {e}"))?;
    println!("SIOCSHWTSTAMP: rx_filter applied {filt}");
    let mut socks = sys::PtpSockets::open(iface, true).map_err(|e| format!("sockets: {e}"))?;
    println!("sockets mode {:?}", socks.mode);
    let mut got = 0;
    let mut buf = [0u8; 512];
    for i in 0..5u32 {
        let id = socks
            .send_event(&[0u8; 44])
            .map_err(|e| format!("send: {e}"))?;
        let t0 = Instant::now();
        let mut found = None;
        while t0.elapsed() < Duration::from_millis(500) && found.is_none() {
            if let Ok(Some((_, ts, tid))) = sys::recv_ts(
                std::os::fd::AsRawFd::as_raw_fd(&socks.event),
                &mut buf,
                true,
                true,
            ) {
                found = Some((ts, tid));
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        println!("TX {i} (OPT_ID {id}): {found:?}");
        if let Some((Some(aes67::sys::RxTimestamp::Hardware(_)), Some(t))) = found
            && t == id
        {
            got += 1;
        }
    }
    if socks.mode != sys::TsMode::Hardware || got == 0 {
        return Err(format!(
            "hardware mode {:?}, {got}/5 hardware TX timestamps",
            socks.mode
        ));
    }
    println!("hwcheck OK: {got}/5 hardware TX timestamps matched by OPT_ID");
    Ok(())
}

/// `ptp_harness hwtruth`: see [`Cmd::Hwtruth`].
fn hwtruth(
    iface: &str,
    gm_phc: i32,
    seconds: u64,
    settle_s: f64,
    transport: &str,
    timestamping: &str,
) -> Result<(), String> {
    let gm = sys::Phc::open(gm_phc, false).map_err(|e| format!("/dev/ptp{gm_phc}: {e}"))?;
    let mut opts = PtpOptions::new(iface);
    opts.slave_only = true;
    opts.transport = transport.parse()?;
    opts.timestamping = timestamping.parse()?;
    opts.duration = Some(Nanos::from_secs(seconds as i64));
    let handle = PtpClockHandle::new();
    let stop = AtomicBool::new(false);
    let mut errs: Vec<f64> = Vec::new();
    let mut last = serde_json::Value::Null;
    let h2 = handle.clone();
    run_with(&opts, &handle, &stop, &mut |st| {
        let c = gm.correlate(9, libc::CLOCK_MONOTONIC_RAW);
        let ours = c.as_ref().ok().and_then(|c| {
            h2.local_to_ptp(aes67::ptp::LocalNs::from_ns(c.sys_ns))
                .map(|p| (p.as_nanos() - c.phc_ns as i128) as f64)
        });
        let locked = matches!(st.port.servo, ServoState::Locked | ServoState::LockedStable);
        let locked_for = st.port.locked_for_s.unwrap_or(0.0);
        if let (Some(e), true) = (ours, locked && locked_for >= settle_s) {
            errs.push(e);
        }
        let v = serde_json::json!({
            "t_s": st.uptime.as_secs_f64(),
            "state": st.port.state.name(),
            "servo": st.port.servo.name(),
            "err_ns": ours,
            "gm_window_ns": c.as_ref().ok().map(|c| c.window_ns),
            "rx_timestamps": st.timestamps,
            "hardware": st.hardware_timestamps,
            "rx_stamps": st.rx_stamps,
            "mean_path_delay_ns": st.port.mean_path_delay.map(|d| d.as_ns()),
            "offset_from_master_ns": st.port.offset_from_master.map(|d| d.as_ns()),
            "tx_timestamp_failures": st.port.counters.tx_timestamp_failures,
            "delay_resp": st.port.counters.delay_resp,
            "frame_drops": st.frame_drops,
        });
        println!("HWTRUTH {v}");
        let _ = std::io::stdout().flush();
        last = v;
    })?;
    let summary = if errs.is_empty() {
        serde_json::json!({"samples": 0, "last": last})
    } else {
        let rms = (errs.iter().map(|x| x * x).sum::<f64>() / errs.len() as f64).sqrt();
        let max = errs.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        serde_json::json!({"samples": errs.len(), "rms_ns": rms, "max_ns": max, "mean_ns": mean, "last": last})
    };
    println!("HWSUMMARY {summary}");
    Ok(())
}
