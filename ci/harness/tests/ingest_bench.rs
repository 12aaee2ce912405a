//! Short CI version of the ingest benchmark harness (`src/bin/ingest_bench.rs`):
//! real multicast streams between two network namespaces, received by our
//! product receive path (`Receiver::start_group`: one ingest thread for all
//! streams, over io_uring and over recvmmsg) and by bare io_uring (batched
//! and not) and recvmmsg loops. Asserts correctness,
//! not timing: every packet sent is accounted for, as received by us or as
//! a socket-buffer drop counted by the kernel (`Udp RcvbufErrors`), every
//! sequence gap we saw is explained by such a drop, and interleaved garbage
//! datagrams are all delivered and counted as malformed.

use std::process::Command;

#[derive(serde::Deserialize, Debug)]
struct Row {
    config: String,
    receiver: String,
    sent: u64,
    received: u64,
    socket_drops: u64,
    lost_by_us: u64,
    malformed: u64,
    garbage_sent: u64,
    fallback: Option<String>,
}

#[test]
#[ignore = "needs root: network namespaces"]
fn every_packet_accounted_for_per_backend() {
    let uring = aes67::sys::uring::probe().is_ok();
    if !uring {
        eprintln!("io_uring unavailable: checking recvmmsg only");
    }
    let receivers = if uring {
        "engine,engine-recvmmsg,uring,uring-nobatch,recvmmsg"
    } else {
        "engine-recvmmsg,recvmmsg"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_ingest_bench"))
        .args([
            "--configs",
            "4x2x1000,2x8x125",
            "--receivers",
            receivers,
            "--secs",
            "2",
            "--garbage-every",
            "20",
            "--json",
        ])
        .output()
        .expect("run ingest_bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ingest_bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Row> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), if uring { 10 } else { 4 }, "{stdout}");
    for r in &rows {
        eprintln!("{r:?}");
        assert!(r.sent > 1000, "{r:?}");
        assert_eq!(
            r.received + r.socket_drops,
            r.sent,
            "unaccounted packets: {r:?}"
        );
        assert!(
            r.lost_by_us <= r.socket_drops,
            "gaps not explained by socket drops: {r:?}"
        );
        // Garbage datagrams (1 per stream every 20 packet times) are received,
        // counted as malformed, and never disturb the RTP streams.
        assert!(r.garbage_sent > 0, "{r:?}");
        assert!(
            r.malformed <= r.garbage_sent && r.malformed + r.socket_drops >= r.garbage_sent,
            "{r:?}"
        );
        assert!(r.fallback.is_none(), "{r:?}");
        if r.receiver.starts_with("uring") {
            assert!(uring, "uring row although probe failed: {r:?}");
        }
    }
    let wanted: &[&str] = if uring {
        &[
            "engine (uring)",
            "engine (recvmmsg)",
            "uring (batch 250 µs)",
            "uring",
            "recvmmsg",
        ]
    } else {
        &["engine (recvmmsg)", "recvmmsg"]
    };
    for &want in wanted {
        assert_eq!(
            rows.iter().filter(|r| r.receiver == want).count(),
            2,
            "{want}: {stdout}"
        );
    }
    assert!(rows.iter().any(|r| r.config == "N=2 8ch 125us"));
}
