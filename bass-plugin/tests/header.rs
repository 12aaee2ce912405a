//! The public C header `bass_aes67.h` compiles, and every id and value it
//! defines equals the add-on's own constants.

use bass_aes67::{config, stream};

#[test]
fn c_header_matches_the_implementation() {
    let dir = std::env::temp_dir().join(format!("bass-aes67-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("h.c");
    let names = [
        ("BASS_CONFIG_AES67_PT", config::PT),
        ("BASS_CONFIG_AES67_INTERFACE", config::INTERFACE),
        ("BASS_CONFIG_AES67_JITTER", config::JITTER),
        ("BASS_CONFIG_AES67_PTP_DOMAIN", config::PTP_DOMAIN),
        ("BASS_CONFIG_AES67_PTP_STATS", config::PTP_STATS),
        ("BASS_CONFIG_AES67_PTP_OFFSET", config::PTP_OFFSET),
        ("BASS_CONFIG_AES67_PTP_STATE", config::PTP_STATE),
        ("BASS_CONFIG_AES67_PTP_ENABLED", config::PTP_ENABLED),
        ("BASS_CONFIG_AES67_BUFFER_LEVEL", config::BUFFER_LEVEL),
        (
            "BASS_CONFIG_AES67_JITTER_UNDERRUNS",
            config::JITTER_UNDERRUNS,
        ),
        (
            "BASS_CONFIG_AES67_PACKETS_RECEIVED",
            config::PACKETS_RECEIVED,
        ),
        ("BASS_CONFIG_AES67_PACKETS_LATE", config::PACKETS_LATE),
        ("BASS_CONFIG_AES67_BUFFER_PACKETS", config::BUFFER_PACKETS),
        ("BASS_CONFIG_AES67_TARGET_PACKETS", config::TARGET_PACKETS),
        ("BASS_CONFIG_AES67_PACKET_TIME", config::PACKET_TIME),
        ("BASS_CONFIG_AES67_PTP_LOCKED", config::PTP_LOCKED),
        ("BASS_CONFIG_AES67_PTP_FREQ", config::PTP_FREQ),
        ("BASS_CONFIG_AES67_CLOCK_MODE", config::CLOCK_MODE),
        (
            "BASS_CONFIG_AES67_CLOCK_FALLBACK_TIMEOUT",
            config::CLOCK_FALLBACK_TIMEOUT,
        ),
        ("BASS_CONFIG_AES67_SAP_SESSIONS", config::SAP_SESSIONS),
        ("BASS_CTYPE_STREAM_AES67", stream::CTYPE_AES67),
        ("BASS_AES67_CLOCK_PTP", config::CLOCK_PTP),
        ("BASS_AES67_CLOCK_LIVEWIRE", config::CLOCK_LIVEWIRE),
        ("BASS_AES67_CLOCK_SYSTEM", config::CLOCK_SYSTEM),
        ("BASS_AES67_PTP_DISABLED", 0),
        ("BASS_AES67_PTP_LISTENING", 1),
        ("BASS_AES67_PTP_UNCALIBRATED", 2),
        ("BASS_AES67_PTP_SLAVE", 3),
    ];
    assert_eq!(
        names
            .iter()
            .filter(|(n, _)| n.starts_with("BASS_CONFIG"))
            .count(),
        config::ALL_IDS.len()
    );
    let mut c = String::from(
        "#define WINAPI\n\
         /* bass.h's types */\n\
         typedef unsigned char BYTE; typedef unsigned short WORD; typedef unsigned int DWORD;\n\
         typedef unsigned long long QWORD; typedef int BOOL;\n\
         #include \"bass_aes67.h\"\n#include <stdio.h>\n#include <stddef.h>\nint main(void) {\n  \
         (void)&BASS_AES67_GetLastErrorText; (void)&BASS_AES67_OutputCreate; (void)&BASS_AES67_OutputCreateEx;\n  \
         (void)&BASS_AES67_OutputStart; (void)&BASS_AES67_OutputStop; (void)&BASS_AES67_OutputGetStats;\n  \
         (void)&BASS_AES67_OutputIsRunning; (void)&BASS_AES67_OutputGetPPM; (void)&BASS_AES67_OutputFree;\n",
    );
    // The output structs: the seeds' 24-byte layout (bass-plugin/src/ffi.rs
    // asserts the same sizes for its #[repr(C)] copies).
    let layout = [
        ("sizeof(BASS_AES67_OUTPUT_CONFIG)", 24u32),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, port)", 4),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, iface)", 6),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, pt)", 10),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, channels)", 12),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, rate)", 16),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG, packet_time_us)", 20),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG_EX, encoding)", 24),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG_EX, ttl)", 28),
        ("offsetof(BASS_AES67_OUTPUT_CONFIG_EX, sap_name)", 32),
        ("sizeof(BASS_AES67_OUTPUT_CONFIG_EX)", 40),
        ("sizeof(BASS_AES67_OUTPUT_STATS)", 32),
    ];
    for (n, _) in &layout {
        c += &format!("  printf(\"{n} %lu\\n\", (unsigned long)({n}));\n");
    }
    for (n, _) in &names {
        c += &format!("  printf(\"{n} %lu\\n\", (unsigned long)({n}));\n");
    }
    c += "  return 0;\n}\n";
    std::fs::write(&src, c).unwrap();
    let exe = dir.join("h");
    let inc = concat!(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("cc")
        .args(["-Wall", "-Werror", "-I", inc, "-o"])
        .arg(&exe)
        .arg(&src)
        // The declared function is not linked: only its address is taken in dead code.
        .arg("-Wl,--unresolved-symbols=ignore-all")
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "header does not compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::process::Command::new(&exe).output().unwrap();
    let text = String::from_utf8(run.stdout).unwrap();
    for (n, v) in layout.iter().copied().chain(names.iter().copied()) {
        assert!(
            text.lines().any(|l| l == format!("{n} {v}")),
            "{n} should be {v}; header says:\n{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
