//! `aes67 send` refuses bad input before it opens a socket, with an error
//! naming the field: payload over 1440 bytes (and how many channels fit),
//! packet time, source, stdin format, a missing file, a bad address.
//! Nothing is sent by these tests.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_aes67");

/// Runs `aes67 send ARGS`; returns (exit code, stderr).
fn send(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("send").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refusals_name_the_field() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["aes67://239.69.11.20?ch=11"],
            &["in ch=11", "at most 10 channels of L24 fit in 48 frames"],
        ),
        (
            &[
                "aes67://239.69.11.20?ch=64&enc=L16",
                "--packet-time-us",
                "5000",
            ],
            &["in ch=64", "at most 3 channels of L16"],
        ),
        (
            &["aes67://239.69.11.20", "--packet-time-us", "100"],
            &["--packet-time-us", "125-5000"],
        ),
        (
            &["aes67://239.69.11.20", "--source", "mic"],
            &["in --source"],
        ),
        (
            &["aes67://239.69.11.20", "--source", "tone:0"],
            &["tone frequency", "in --source"],
        ),
        (
            &[
                "aes67://239.69.11.20",
                "--source",
                "file:/nonexistent/a.flac",
            ],
            &["--source=file:/nonexistent/a.flac"],
        ),
        (
            &[
                "aes67://239.69.11.20",
                "--source",
                "stdin",
                "--format",
                "s8",
            ],
            &["--format"],
        ),
        (
            &[
                "aes67://239.69.11.20",
                "--source",
                "stdin",
                "--rate",
                "1000",
            ],
            &["in --rate"],
        ),
        (
            &[
                "aes67://239.69.11.20",
                "--source",
                "stdin",
                "--channels",
                "0",
            ],
            &["in --channels"],
        ),
        (&["aes67://0.0.0.0"], &["group=0.0.0.0"]),
        (&["aes67://239.69.11.20?rate=22050"], &["rate=22050"]),
        (&["aes67://239.69.11.20", "--dscp", "64"], &["--dscp"]),
    ];
    for (args, wants) in cases {
        let (code, err) = send(args);
        assert_ne!(code, 0, "{args:?} accepted");
        for w in *wants {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
    }
}
