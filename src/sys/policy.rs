//! The layering rules, checked over the source tree as a unit test:
//!
//! - `unsafe` code only in `src/sys/` and the BASS FFI module
//!   (`bass-plugin/src/ffi.rs`), and `allow(unsafe_code)` only where those
//!   are declared (clippy's `undocumented_unsafe_blocks`, denied in the
//!   workspace lints, checks each block's `// SAFETY:`);
//! - `cfg(target_os …)`, `cfg(windows)`, `cfg(unix)` only in `src/sys/` and
//!   the FFI module.

use std::path::{Path, PathBuf};

/// Files still carrying per-OS `cfg`s outside the platform layer (none).
const CFG_PENDING: &[&str] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(path relative to the workspace, line number, code without comments)`.
fn code_lines() -> Vec<(String, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("bass-plugin/src"), &mut files);
    let mut v = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("").to_string();
            v.push((rel.clone(), i + 1, code));
        }
    }
    v
}

fn is_platform_layer(path: &str) -> bool {
    path.starts_with("src/sys/") || path == "bass-plugin/src/ffi.rs"
}

#[test]
fn unsafe_only_in_the_platform_layer() {
    let this = "src/sys/policy.rs";
    let bad: Vec<_> = code_lines()
        .into_iter()
        .filter(|(p, _, _)| p != this && !is_platform_layer(p))
        .filter(|(p, _, c)| {
            let allow = c.contains("allow(unsafe_code)") || c.contains("expect(unsafe_code)");
            // The FFI module's declaration carries its allow.
            let ffi_decl = p == "bass-plugin/src/lib.rs";
            c.contains("unsafe {")
                || c.contains("unsafe fn")
                || c.contains("unsafe impl")
                || c.contains("unsafe extern")
                || (allow && !ffi_decl)
        })
        .map(|(p, n, c)| format!("{p}:{n}: {}", c.trim()))
        .collect();
    assert!(
        bad.is_empty(),
        "unsafe outside src/sys and ffi.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn os_cfgs_only_in_the_platform_layer() {
    let this = "src/sys/policy.rs";
    let bad: Vec<_> = code_lines()
        .into_iter()
        .filter(|(p, _, _)| {
            p != this && !is_platform_layer(p) && !CFG_PENDING.contains(&p.as_str())
        })
        .filter(|(_, _, c)| {
            c.contains("cfg")
                && (c.contains("target_os") || c.contains("windows") || c.contains("unix"))
        })
        .map(|(p, n, c)| format!("{p}:{n}: {}", c.trim()))
        .collect();
    assert!(
        bad.is_empty(),
        "per-OS cfg outside src/sys:\n{}",
        bad.join("\n")
    );
}
