//! Our sender's SDP against an independent checker: AMWA sdpoker (RFC 4566,
//! RFC 4570, RFC 7273, ST 2110-10/-30 rules), `--audioOnly --should`, must
//! report no errors, with a PTP reference clock and with `localmac=`, for
//! every format the sender offers.
//!
//! sdpoker is unpacked by `ci/setup.sh` (from `../shared/peers/nmos-testing`)
//! into `/tmp/nmos-testing`; `SDPOKER` overrides the path.

use std::net::Ipv4Addr;
use std::process::Command;

use aes67::media::session::{RefClock, SenderSdp, check_format};
use aes67::media::stream::{Encoding, StreamConfig};
use aes67::ptp::msg::ClockIdentity;

fn sdpoker() -> String {
    let p = std::env::var("SDPOKER").unwrap_or_else(|_| "/tmp/nmos-testing/bin/sdpoker".into());
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} missing: run ci/setup.sh (it unpacks sdpoker)"
    );
    p
}

/// Runs sdpoker on `sdp`; returns (exit success, output).
fn poke(sdp: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.sdp");
    std::fs::write(&f, sdp).unwrap();
    let out = Command::new(sdpoker())
        .args(["--audioOnly", "--should"])
        .arg(&f)
        .output()
        .expect("run sdpoker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn desc(enc: Encoding, ch: u16, rate: u32, ptime_us: u32, refclk: RefClock) -> SenderSdp {
    let mut c = StreamConfig::new("239.69.11.1".parse().unwrap(), 5004);
    c.encoding = enc;
    c.channels = ch;
    c.sample_rate = rate;
    c.ttl = Some(32);
    c.name = Some("aes67 sender test".into());
    let frames = check_format(&c, ptime_us).unwrap();
    SenderSdp {
        stream: c,
        frames,
        origin: Ipv4Addr::new(192, 168, 11, 5),
        session_id: 1_700_000_011,
        version: 1,
        refclk,
        mediaclk_offset: 0,
        channel_order: (ch == 2).then(|| "SMPTE2110.(ST)".to_string()),
    }
}

#[test]
fn sdpoker_finds_no_errors_with_and_without_ptp() {
    let ptp = RefClock::Ptp {
        gm: ClockIdentity([0x00, 0x1d, 0xc1, 0xff, 0xfe, 0x0a, 0xbc, 0xde]),
        domain: 0,
    };
    let mac = RefClock::LocalMac([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    let mut n = 0;
    for refclk in [ptp, mac] {
        for (enc, ch, rate, pt) in [
            (Encoding::L24, 2, 48_000, 1000),
            (Encoding::L16, 2, 48_000, 1000),
            (Encoding::L24, 8, 48_000, 125),
            (Encoding::L24, 2, 48_000, 5000),
            (Encoding::L24, 2, 96_000, 1000),
            (Encoding::L24, 64, 48_000, 125),
        ] {
            let sdp = desc(enc, ch, rate, pt, refclk).render();
            let (ok, out) = poke(&sdp);
            assert!(ok, "sdpoker errors:\n{out}\non:\n{sdp}");
            n += 1;
        }
        // 44.1 kHz is optional in AES67 (§7.1) but outside ST 2110-30
        // (§6.2.1), whose rule sdpoker applies: that is its one error.
        let sdp = desc(Encoding::L24, 2, 44_100, 1000, refclk).render();
        assert!(sdp.contains("a=ptime:1.08843537\r\n"), "{sdp}");
        let (ok, out) = poke(&sdp);
        assert!(!ok);
        assert!(
            out.contains("Found 1 error") && out.contains("'L24/44100', as per ST 2110-30"),
            "{out}"
        );
    }
    assert_eq!(n, 12);
}

/// The checker is live: an SDP without source-filter and with a session-level
/// ts-refclk (today's old output) is refused.
#[test]
fn sdpoker_refuses_a_broken_sdp() {
    let good = desc(
        Encoding::L24,
        2,
        48_000,
        1000,
        RefClock::LocalMac([2, 0, 0, 0, 0, 1]),
    )
    .render();
    let bad = good.replace("a=mediaclk:direct=0\r\n", "");
    let (ok, out) = poke(&bad);
    assert!(!ok, "sdpoker accepted an SDP without mediaclk:\n{out}");
}
