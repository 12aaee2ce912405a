//! Command-line errors: bad input names the field at fault and exits non-zero.

use std::process::Command;

fn aes67(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_aes67"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn bad_url_names_the_field() {
    let (code, err) = aes67(&[
        "play",
        "aes67://239.1.1.1?ch=0",
        "--output",
        "null",
        "--duration",
        "1",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid channel count 0 (allowed 1-64) in ch=0"),
        "{err}"
    );
    let (code, err) = aes67(&[
        "play",
        "aes67://239.1.1.1?iface=nonexistent0",
        "--output",
        "null",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("iface=nonexistent0"), "{err}");
}

#[test]
fn bad_output_and_missing_sdp_are_clear() {
    let (code, err) = aes67(&["play", "aes67://239.1.1.1", "--output", "mp3:x"]);
    assert_eq!(code, 1);
    assert!(err.contains("--output=mp3:x"), "{err}");
    let (code, err) = aes67(&["play", "aes67://239.1.1.1", "--output", "sim:abc"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid crystal error \"abc\" ppm in --output=sim:abc"),
        "{err}"
    );
    let (code, err) = aes67(&["play", "--sdp", "/nonexistent.sdp"]);
    assert_eq!(code, 1);
    assert!(err.contains("--sdp /nonexistent.sdp"), "{err}");
}

#[test]
fn alsa_without_a_card_suggests_wav() {
    // This machine class has no sound card; where one exists the check does not apply.
    if std::path::Path::new("/dev/snd/controlC0").exists() {
        return;
    }
    let (code, err) = aes67(&[
        "play",
        "aes67://127.0.0.1:5999",
        "--output",
        "alsa:default",
        "--duration",
        "1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("Use --output wav:FILE"), "{err}");
}
