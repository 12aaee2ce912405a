//! The Windows build under wine with the REAL bass.dll (BASS 2.4.17 x64,
//! fetched and sha256-checked by ci/bass-fetch.sh, never committed).
//!
//! Cross-builds `bass_aes67.dll` (`cargo build --target x86_64-pc-windows-gnu
//! -p bass-aes67`, its own target dir so it never waits on this test's
//! build lock), builds the C test host `ci/bass-wine/host.c` and the
//! TEST-ONLY `bcryptprimitives.dll` shim (wine 8 lacks ProcessPrng; real
//! Windows 10+ has it; never shipped) with mingw-w64, and runs the host with
//! `wine`. Needs the packages `mingw-w64 wine64 wine` (ci/setup.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Builds the DLL, the host and the shim; returns the directory holding
/// host.exe, bass.dll, bass_aes67.dll and bcryptprimitives.dll.
pub fn wine_dir() -> PathBuf {
    for tool in ["wine", "x86_64-w64-mingw32-gcc"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
            "{tool} is missing: run ci/setup.sh (packages mingw-w64 wine64 wine)"
        );
    }
    let root = repo_root();
    let target = root.join("target/wine");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--target", "x86_64-pc-windows-gnu", "-p", "bass-aes67"]));
    let dll = target.join("x86_64-pc-windows-gnu/release/bass_aes67.dll");
    let dir = target.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let bass = PathBuf::from(
        run(Command::new("bash").arg(root.join("ci/bass-fetch.sh"))).lines().last().unwrap().trim(),
    );
    std::fs::copy(bass.join("bass.dll"), dir.join("bass.dll")).unwrap();
    std::fs::copy(&dll, dir.join("bass_aes67.dll")).unwrap();
    let src = root.join("ci/bass-wine");
    run(Command::new("x86_64-w64-mingw32-gcc").args(["-O2", "-o"]).arg(dir.join("host.exe")).arg(src.join("host.c")));
    run(Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(src.join("processprng-shim.c"))
        .arg("-ladvapi32"));
    dir
}

/// Runs `wine host.exe args...` in `dir` with a private prefix.
pub fn wine(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("wine")
        .current_dir(dir)
        .arg("host.exe")
        .args(args)
        .env("WINEPREFIX", dir.join("prefix"))
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .output()
        .expect("wine");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn windows_dll_under_wine_with_real_bass() {
    let dir = wine_dir();
    let (ok, out) = wine(&dir, &[]);
    eprintln!("{out}");
    assert!(ok && out.contains("\nALL OK"), "wine host failed:\n{out}");
    assert!(out.contains("ok   BASS_GetVersion 02041100"));
    assert!(out.contains("ok   config proc removed after unload"));
}
