//! The qemu guest rig (`ci/qemu/runvm.sh`, docs/test-rigs.md): boots the guest,
//! runs one guest script in it with a work folder shared with the host, and
//! returns what the guest printed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// One guest run's outcome.
pub struct GuestRun {
    /// `runvm.sh` (and so the guest script) exited 0.
    pub ok: bool,
    /// Everything the guest and `runvm.sh` printed on stdout.
    pub stdout: String,
}

/// Runs `ROOT/ci/qemu/runvm.sh ROOT/ci/qemu/SCRIPT ARGS…` with `WORK=work` (the
/// folder the guest sees as `$AES67_WORK`), `TIMEOUT=timeout_s` and `env`, and
/// prints the stdout lines holding any of `show` (with the last 40 lines of
/// stdout and all of stderr when the run failed). `root` is the repository
/// (`env!("CARGO_MANIFEST_DIR")`).
///
/// Panics when `runvm.sh` cannot be started.
pub fn run_guest<A: AsRef<OsStr>>(
    root: &str,
    script: &str,
    args: &[A],
    work: &Path,
    timeout_s: u64,
    env: &[(&str, String)],
    show: &[&str],
) -> GuestRun {
    let mut cmd = Command::new(format!("{root}/ci/qemu/runvm.sh"));
    cmd.arg(format!("{root}/ci/qemu/{script}"))
        .args(args)
        .env("WORK", work)
        .env("TIMEOUT", timeout_s.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ci/qemu/runvm.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in stdout
        .lines()
        .filter(|l| show.iter().any(|s| l.contains(s)))
    {
        println!("{l}");
    }
    let ok = out.status.success();
    if !ok {
        let tail: Vec<&str> = stdout.lines().rev().take(40).collect();
        println!("guest run failed ({}); its last lines:", out.status);
        for l in tail.iter().rev() {
            println!("  {l}");
        }
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    GuestRun { ok, stdout }
}
