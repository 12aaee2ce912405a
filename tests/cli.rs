//! Command-line errors: bad input names the field at fault and exits non-zero.

use std::process::Command;

/// Runs `aes67 args…` and asserts it exits 1 with `needle` on stderr.
fn fails_with(args: &[&str], needle: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_aes67"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_url_names_the_field() {
    fails_with(
        &["play", "aes67://239.1.1.1?ch=0", "--output", "null"],
        "invalid channel count 0 (allowed 1-64) in ch=0",
    );
    fails_with(
        &[
            "play",
            "aes67://239.1.1.1?iface=nonexistent0",
            "--output",
            "null",
        ],
        "iface=nonexistent0",
    );
}

#[test]
fn bad_output_and_missing_sdp_are_clear() {
    fails_with(
        &["play", "aes67://239.1.1.1", "--output", "mp3:x"],
        "--output=mp3:x",
    );
    fails_with(
        &["play", "aes67://239.1.1.1", "--output", "sim:abc"],
        "invalid crystal error \"abc\" ppm in --output=sim:abc",
    );
    fails_with(
        &["play", "--sdp", "/nonexistent.sdp"],
        "--sdp /nonexistent.sdp",
    );
}

#[test]
fn alsa_without_a_card_suggests_wav() {
    // This machine class has no sound card; where one exists the check does not apply.
    if std::path::Path::new("/dev/snd/controlC0").exists() {
        return;
    }
    fails_with(
        &[
            "play",
            "aes67://127.0.0.1:5999",
            "--output",
            "alsa:default",
            "--duration",
            "1",
        ],
        "Use --output wav:FILE",
    );
}

/// `aes67 list`, `play sap:NAME` and `send --sap`: bad options name the
/// field and exit 1 before anything is opened or sent.
#[test]
fn bad_sap_options_name_the_field() {
    fails_with(
        &["list", "--timeout", "100000"],
        "invalid time 100000 s in --timeout (allowed 0-86400)",
    );
    fails_with(
        &["list", "--min-timeout=-1", "--once"],
        "in --min-timeout (allowed 0-604800)",
    );
    fails_with(
        &["list", "--iface", "nonexistent0", "--once"],
        "iface=nonexistent0",
    );
    fails_with(
        &["play", "sap:x", "--min-timeout=-1", "--output", "null"],
        "in --min-timeout",
    );
    fails_with(
        &[
            "send",
            "aes67://239.69.99.1?iface=127.0.0.1",
            "--sap",
            "--sap-interval",
            "0.5",
        ],
        "invalid SAP interval 0.5 s in --sap-interval (allowed 1-3600)",
    );
    fails_with(
        &[
            "send",
            "aes67://239.69.99.1?iface=127.0.0.1",
            "--sap",
            "--sap-ttl",
            "300",
        ],
        "invalid TTL 300 in --sap-ttl (allowed 0-255)",
    );
}
