//! `aes67 monitor`: two real `aes67 send` processes (1 ms / 2 ch and 125 µs
//! / 8 ch) on loopback multicast, monitored by one `aes67 monitor` process
//! (one ingest thread); every stream's final JSON counters are checked.
//! Bad input names the stream at fault.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_aes67");

#[test]
fn monitor_two_streams_on_one_thread() {
    let urls = [
        "aes67://239.255.67.91:5110?iface=127.0.0.1",
        "aes67://239.255.67.92:5112?iface=127.0.0.1&ch=8",
    ];
    let senders: Vec<_> = [(urls[0], "1000"), (urls[1], "125")]
        .iter()
        .map(|(u, pt)| {
            Command::new(BIN)
                .args([
                    "send",
                    u,
                    "--ttl",
                    "0",
                    "--duration",
                    "6",
                    "--packet-time-us",
                    pt,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let out = Command::new(BIN)
        .args(["monitor", urls[0], urls[1], "--duration", "4", "--json"])
        .args(["--link-offset-ms", "20"])
        .output()
        .unwrap();
    for mut s in senders {
        let _ = s.wait();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("monitoring 2 stream(s) on one ingest thread"),
        "{stderr}"
    );
    let finals: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["final"] == true)
        .collect();
    assert_eq!(finals.len(), 2, "{stderr}");
    let want = [(3000u64, 48u64), (24000, 6)];
    for (i, v) in finals.iter().enumerate() {
        assert_eq!(v["stream"], i as u64, "{v}");
        let pkts = v["packets"].as_u64().unwrap();
        // ≥ 3.5 s of a 1 ms and a 125 µs stream (the senders start first).
        assert!(pkts * 8 >= want[i].0 * 7, "stream {i}: {v}");
        assert_eq!(v["packet_frames"], want[i].1, "{v}");
        for k in [
            "lost",
            "late",
            "malformed",
            "duplicates",
            "ring_overflow_frames",
        ] {
            assert_eq!(v[k], 0, "stream {i} {k}: {v}");
        }
    }
}

#[test]
fn monitor_bad_input_names_the_stream() {
    let o = Command::new(BIN)
        .args([
            "monitor",
            "aes67://239.1.1.1:5004",
            "aes67://239.1.1.2?ch=0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("aes67://239.1.1.2?ch=0") && err.contains("ch=0"),
        "{err}"
    );
    let o = Command::new(BIN).args(["monitor"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("one or more stream URLs"));
}
