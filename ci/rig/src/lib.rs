//! Test and benchmark rigs: network namespaces joined by veth.
//!
//! Used by the integration tests and the benchmark harnesses (never by the
//! engine itself). Requires root. Names are unique per process and call, so
//! tests can run in parallel; everything is deleted on drop.
//!
//! Recipe: `docs/test-rigs.md`.

pub mod alloc;
pub mod qemu;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `gst-launch-1.0` arguments of a GStreamer AES67 sender up to its sink:
/// `wav` as L24/48000/2 in 1 ms packets, pt 96, ending with `!` (append
/// `udpsink …`).
pub fn gst_l24_1ms_pay_args(wav: &std::path::Path) -> Vec<String> {
    [
        "-q",
        "filesrc",
        &format!("location={}", wav.display()),
        "!",
        "wavparse",
        "!",
        "audioconvert",
        "!",
        "audio/x-raw,format=S24BE,rate=48000,channels=2,layout=interleaved",
        "!",
        "rtpL24pay",
        "pt=96",
        "min-ptime=1000000",
        "max-ptime=1000000",
        "!",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs a command, returning an error string with its stderr when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// Brings up one member of a rig inside namespace `ns`: loopback, `ip/24` on
/// `ifc` with multicast on, a route for 224.0.0.0/4, rp_filter off, room for
/// 1024 memberships and a 32 MiB rmem_max (where the kernel namespaces it).
fn member_up(ns: &str, ifc: &str, ip: &str) -> Result<(), String> {
    sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    sh(
        "ip",
        &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", ifc],
    )?;
    sh(
        "ip",
        &["-n", ns, "link", "set", ifc, "multicast", "on", "up"],
    )?;
    sh("ip", &["-n", ns, "route", "add", "224.0.0.0/4", "dev", ifc])?;
    for key in [
        "net.ipv4.conf.all.rp_filter=0".to_string(),
        "net.ipv4.conf.default.rp_filter=0".to_string(),
        format!("net.ipv4.conf.{ifc}.rp_filter=0"),
        "net.ipv4.igmp_max_memberships=1024".to_string(),
        "net.core.rmem_max=33554432".to_string(),
    ] {
        // rmem_max is not namespaced on every kernel; ignore failures of that one.
        let r = sh("ip", &["netns", "exec", ns, "sysctl", "-qw", &key]);
        if r.is_err() && !key.starts_with("net.core") {
            r?;
        }
    }
    Ok(())
}

/// Two network namespaces, `a` and `b`, joined by a veth pair.
///
/// Namespace `a` holds interface `if_a` with address `10.R.S.1/24`, namespace
/// `b` holds `if_b` with `10.R.S.2/24`; both have multicast on and a route
/// for 224.0.0.0/4, and rp_filter off.
#[derive(Debug)]
pub struct NetnsPair {
    /// Name of namespace A (the sender side by convention).
    pub a: String,
    /// Name of namespace B (the receiver side by convention).
    pub b: String,
    /// Interface name inside A.
    pub if_a: String,
    /// Interface name inside B.
    pub if_b: String,
    /// IPv4 address of `if_a`.
    pub ip_a: String,
    /// IPv4 address of `if_b`.
    pub ip_b: String,
}

impl NetnsPair {
    /// Creates the pair. Errors: any `ip`/`sysctl` failure (e.g. not root).
    pub fn new() -> Result<NetnsPair, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{:x}", pid & 0xffff, n);
        let a = format!("a67a{tag}");
        let b = format!("a67b{tag}");
        let if_a = format!("va{tag}");
        let if_b = format!("vb{tag}");
        // Subnet from pid and counter so parallel runs never collide.
        let s1 = 100 + (pid % 150) as u8 as u32;
        let s2 = n % 250;
        let ip_a = format!("10.{s1}.{s2}.1");
        let ip_b = format!("10.{s1}.{s2}.2");
        let pair = NetnsPair {
            a,
            b,
            if_a,
            if_b,
            ip_a,
            ip_b,
        };
        pair.setup()?;
        Ok(pair)
    }

    fn setup(&self) -> Result<(), String> {
        let NetnsPair {
            a,
            b,
            if_a,
            if_b,
            ip_a,
            ip_b,
        } = self;
        sh("ip", &["netns", "add", a])?;
        sh("ip", &["netns", "add", b])?;
        sh(
            "ip",
            &[
                "link", "add", if_a, "netns", a, "type", "veth", "peer", "name", if_b, "netns", b,
            ],
        )?;
        for (ns, ifc, ip) in [(a, if_a, ip_a), (b, if_b, ip_b)] {
            member_up(ns, ifc, ip)?;
        }
        Ok(())
    }

    /// A `Command` that runs `prog` inside namespace `ns`.
    pub fn cmd_in(ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

/// `n` network namespaces on one Ethernet segment: a Linux bridge in a hub
/// namespace, one veth per member. Member `i` is namespace `ns[i]` with
/// interface `ifs[i]` and address `ips[i]` (`10.R.S.(i+1)/24`); multicast is
/// on, flooded (no IGMP snooping), with a route for 224.0.0.0/4 and rp_filter
/// off. For rigs with a third party: a rogue grandmaster, a forger, several
/// senders.
#[derive(Debug)]
pub struct NetnsLan {
    hub: String,
    /// Member namespaces.
    pub ns: Vec<String>,
    /// Each member's interface.
    pub ifs: Vec<String>,
    /// Each member's IPv4 address.
    pub ips: Vec<String>,
}

impl NetnsLan {
    /// Creates `n` (1-200) members. Errors: any `ip`/`sysctl` failure (e.g. not root).
    pub fn new(n: usize) -> Result<NetnsLan, String> {
        assert!((1..=200).contains(&n), "1-200 members");
        let c = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{:x}", pid & 0xffff, c);
        let s1 = 100 + (pid % 150) as u8 as u32;
        let s2 = 250 - c % 250;
        let lan = NetnsLan {
            hub: format!("a67h{tag}"),
            ns: (0..n).map(|i| format!("a67m{tag}x{i}")).collect(),
            ifs: (0..n).map(|i| format!("vm{tag}x{i}")).collect(),
            ips: (0..n).map(|i| format!("10.{s1}.{s2}.{}", i + 1)).collect(),
        };
        lan.setup()?;
        Ok(lan)
    }

    fn setup(&self) -> Result<(), String> {
        let hub = &self.hub;
        sh("ip", &["netns", "add", hub])?;
        sh(
            "ip",
            &[
                "-n",
                hub,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        sh("ip", &["-n", hub, "link", "set", "br0", "up"])?;
        for (i, ((ns, ifc), ip)) in self.ns.iter().zip(&self.ifs).zip(&self.ips).enumerate() {
            let peer = format!("p{i}");
            sh("ip", &["netns", "add", ns])?;
            sh(
                "ip",
                &[
                    "link", "add", ifc, "netns", ns, "type", "veth", "peer", "name", &peer,
                    "netns", hub,
                ],
            )?;
            sh(
                "ip",
                &["-n", hub, "link", "set", &peer, "master", "br0", "up"],
            )?;
            member_up(ns, ifc, ip)?;
        }
        Ok(())
    }
}

impl Drop for NetnsLan {
    fn drop(&mut self) {
        for ns in self.ns.iter().chain([&self.hub]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` with the calling thread moved into network namespace `ns`, then
/// moves it back. Sockets created inside `f` stay in `ns`.
///
/// Errors: the namespace cannot be opened or entered (not root).
pub fn in_netns<T>(ns: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    use std::fs::File;
    let here = File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
    let target = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
    let out = f();
    nix::sched::setns(&here, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
    Ok(out)
}

/// True when the process runs as root (rig tests need it).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// ptp4l grandmaster configuration of the rig recipe: domain 0, software
/// timestamps, E2E over UDPv4, logSyncInterval −3 (8 Sync/s), master only,
/// `free_running 1` (it never adjusts any clock).
pub const PTP4L_GM_CONF: &str = "[global]\ndomainNumber 0\npriority1 1\nclockClass 6\ntime_stamping software\n\
delay_mechanism E2E\nnetwork_transport UDPv4\nlogSyncInterval -3\nmasterOnly 1\nfree_running 1\n";

/// Starts linuxptp's `ptp4l -S -i IFACE -f DIR/NAME.conf -m` in namespace
/// `ns`, logging to `DIR/NAME.log`, under `setpriv` without CAP_SYS_TIME (in
/// the inheritable and bounding sets), so it can never step or slew this
/// machine's clock whatever its configuration says.
///
/// Errors: the config or log file cannot be written, or the spawn fails.
pub fn spawn_ptp4l(
    ns: &str,
    iface: &str,
    conf: &str,
    dir: &std::path::Path,
    name: &str,
) -> Result<std::process::Child, String> {
    let cpath = dir.join(format!("{name}.conf"));
    std::fs::write(&cpath, conf).map_err(|e| format!("{}: {e}", cpath.display()))?;
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
    NetnsPair::cmd_in(ns, "setpriv")
        .args([
            "--inh-caps=-sys_time",
            "--bounding-set=-sys_time",
            "ptp4l",
            "-S",
            "-i",
            iface,
            "-f",
        ])
        .arg(&cpath)
        .arg("-m")
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("ptp4l: {e}"))
}

/// Asks a ptp4l in namespace `ns` (its `uds_address` is `uds`; `client` is a
/// free socket path for pmc) for TIME_STATUS_NP, with linuxptp's `pmc`:
/// `(master_offset ns, gmPresent, gmIdentity)`. `None` when pmc fails or
/// the answer lacks a field.
pub fn pmc_time_status(
    ns: &str,
    uds: &std::path::Path,
    client: &std::path::Path,
) -> Option<(i64, bool, String)> {
    let out = NetnsPair::cmd_in(ns, "pmc")
        .args(["-u", "-b", "0", "-s"])
        .arg(uds)
        .arg("-i")
        .arg(client)
        .arg("GET TIME_STATUS_NP")
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_string()))
    };
    Some((
        field("master_offset")?.parse().ok()?,
        field("gmPresent")? == "true",
        field("gmIdentity")?,
    ))
}
