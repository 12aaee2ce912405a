//! `aes67 list`, `play sap:NAME` and `send --sap`: bad options name the
//! field and exit 1 before anything is opened or sent.

use std::process::Command;

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
