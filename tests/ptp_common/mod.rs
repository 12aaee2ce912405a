//! Shared helpers for the PTP real-peer tests (`mod ptp_common;`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use aes67_rig::NetnsPair;

/// Panics naming the missing peer program, if any (the tests are
/// `#[ignore = "needs root: …"]`; when run they must be able to run).
pub(crate) fn require_peers() {
    if let Some(why) = missing_peer() {
        panic!("PTP real-peer test cannot run: {why}");
    }
}

/// One PTP precision test at a time in a test binary: the software
/// timestamps of two tests sharing this 2-core machine disturb each other
/// (a ptp4l slave of our master measured 12.9 µs rms beside the holdover
/// test, 0.4-1.3 µs alone).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The rig of a real-peer test: the peers checked ([`require_peers`]), a
/// scratch directory and a namespace pair, and the guard that keeps the
/// test alone among this binary's PTP tests while it lives.
pub(crate) fn rig() -> (
    tempfile::TempDir,
    NetnsPair,
    std::sync::MutexGuard<'static, ()>,
) {
    let solo = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    require_peers();
    let dir = tempfile::tempdir().unwrap();
    (dir, NetnsPair::new().expect("netns pair"), solo)
}

fn missing_peer() -> Option<String> {
    for prog in ["ptp4l", "pmc", "setpriv"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {prog}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!(
                "{prog} missing (apt-get install linuxptp util-linux)"
            ));
        }
    }
    None
}

/// A child killed (and reaped) on drop.
pub(crate) struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The grandmaster config of the rig recipe (software timestamps, logSyncInterval −3).
pub(crate) const GM_CONF: &str = aes67_rig::PTP4L_GM_CONF;

/// A free-running (never adjusting) software-timestamp slave config.
pub(crate) fn slave_conf(uds: &Path) -> String {
    format!(
        "[global]\ndomainNumber 0\ntime_stamping software\ndelay_mechanism E2E\nnetwork_transport UDPv4\n\
slaveOnly 1\nfree_running 1\nuds_address {}\n",
        uds.display()
    )
}

/// Starts ptp4l in `ns` on `iface` with `conf` (written to `dir`), without
/// CAP_SYS_TIME so it can never steer this machine's clock.
pub(crate) fn ptp4l(ns: &str, iface: &str, conf: &str, dir: &Path, name: &str) -> Kill {
    Kill(aes67_rig::spawn_ptp4l(ns, iface, conf, dir, name).expect("spawn ptp4l"))
}

/// Polls ptp4l's TIME_STATUS_NP: `(master_offset ns, gmPresent, gmIdentity)`.
pub(crate) fn pmc_time_status(ns: &str, uds: &Path, client: &Path) -> Option<(i64, bool, String)> {
    aes67_rig::pmc_time_status(ns, uds, client)
}

/// Starts our PTP clock (`aes67 ptp …`, which calls
/// `aes67::engine::ptp`) in `ns` with `--json`; returns the child and a
/// channel of parsed status objects.
pub(crate) fn ours(
    ns: &str,
    args: &[&str],
) -> (Kill, std::sync::mpsc::Receiver<serde_json::Value>) {
    let mut child = NetnsPair::cmd_in(ns, env!("CARGO_BIN_EXE_aes67"))
        .arg("ptp")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ptp_harness");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (Kill(child), rx)
}

/// rms, max |x|, and the (p1, p50, p99) of a sample.
pub(crate) fn stats(v: &[f64]) -> (f64, f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    let rms = (s.iter().map(|x| x * x).sum::<f64>() / s.len() as f64).sqrt();
    let max = s.iter().map(|x| x.abs()).fold(0.0, f64::max);
    (rms, max, q(0.01), q(0.5), q(0.99))
}
