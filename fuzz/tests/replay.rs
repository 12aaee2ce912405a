//! Replays every committed input through its harness: `corpus/TARGET/*` (the
//! seeds and what fuzzing kept) and `regressions/TARGET/*` (every crash or
//! hang found, kept forever). This is CI's fuzz smoke under plain
//! `cargo test`; `ci/fuzz.sh` runs the real coverage-guided fuzzer.
//!
//! A regression whose fix is pending elsewhere is listed in [`PENDING`] and
//! replayed by its own `#[ignore]`d test instead.

use std::path::{Path, PathBuf};

/// Regression inputs whose fix is pending (file name under `regressions/`).
/// They are skipped by `replay_all` and each has an ignored test below.
const PENDING: &[&str] = &[];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.') || n == "README.txt")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `harness` on every file of `dirs`; returns (files run, failures).
fn replay(target: &str, harness: aes67_fuzz::Harness, dirs: &[&str]) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut failed = Vec::new();
    for d in dirs {
        for f in files(&root().join(d).join(target)) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if PENDING.contains(&name.as_str()) {
                continue;
            }
            let data = std::fs::read(&f).unwrap();
            n += 1;
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failed.push(f.display().to_string());
            }
        }
    }
    (n, failed)
}

#[test]
fn replay_all() {
    let mut failed = Vec::new();
    for (t, h) in aes67_fuzz::TARGETS {
        let (n, f) = replay(t, *h, &["corpus", "regressions"]);
        eprintln!("{t}: {n} inputs replayed, {} failed", f.len());
        assert!(
            n >= 3 || cfg!(not(target_os = "linux")) && *t == "cmsg",
            "{t}: corpus has only {n} inputs"
        );
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "inputs that fail their harness: {failed:#?}"
    );
}

/// Every target has a corpus directory and a regressions directory.
#[test]
fn every_target_has_dirs() {
    for (t, _) in aes67_fuzz::TARGETS {
        assert!(root().join("corpus").join(t).is_dir(), "corpus/{t}");
        assert!(
            root().join("regressions").join(t).is_dir(),
            "regressions/{t}"
        );
    }
}

/// Random inputs (a fixed xorshift stream) through every harness: the
/// harnesses themselves accept any bytes.
#[test]
fn harnesses_accept_random_bytes() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (_, h) in aes67_fuzz::TARGETS {
        for len in 0..300usize {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            h(&v);
        }
    }
}

/// The session seeds drive the port to SLAVE with a clock map, so the fuzzer
/// mutates from a synchronised port (servo and delay paths covered).
#[test]
fn ptp_port_session_seeds_reach_slave() {
    for name in [
        "seed-slave-two-step-20s",
        "seed-default-one-step-12s",
        "seed-pi-servo-two-step-10s",
    ] {
        let data = std::fs::read(root().join("corpus/ptp_port").join(name)).unwrap();
        let (state, map) = aes67_fuzz::ptp_port_run(&data);
        eprintln!("{name}: {state:?}, clock map {map}");
        assert_eq!(state, aes67::ptp::port::PortState::Slave, "{name}");
        assert!(map, "{name}: no clock map");
    }
}

/// The CI smoke of every target beyond its corpus: seeded mutations of each
/// corpus input (bit flips, interesting bytes, truncation, chunk duplication
/// and deletion, splices of two inputs), about 1.5 s per target under plain
/// `cargo test`. Not coverage-guided (that is `ci/fuzz.sh`), but every run
/// drives each harness with tens of thousands of new inputs; a panic is saved
/// under the system temp dir and named in the failure, ready to become a
/// regression input.
#[test]
fn corpus_mutation_smoke() {
    use std::time::{Duration, Instant};
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x40, 0x20];
    let mut failed = Vec::new();
    for (t, h) in aes67_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = files(&root().join("corpus").join(t))
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        if seeds.is_empty() {
            continue;
        }
        let end = Instant::now() + Duration::from_millis(1500);
        let mut runs = 0u64;
        while Instant::now() < end {
            let mut v = seeds[rnd(seeds.len())].clone();
            for _ in 0..1 + rnd(4) {
                match rnd(6) {
                    0 if !v.is_empty() => {
                        let i = rnd(v.len());
                        v[i] ^= 1 << rnd(8);
                    }
                    1 if !v.is_empty() => {
                        let i = rnd(v.len());
                        v[i] = INTERESTING[rnd(INTERESTING.len())];
                    }
                    2 => v.truncate(rnd(v.len() + 1)),
                    3 if !v.is_empty() && v.len() < 1 << 16 => {
                        let (a, n) = (rnd(v.len()), 1 + rnd(64));
                        let chunk: Vec<u8> = v[a..(a + n).min(v.len())].to_vec();
                        let at = rnd(v.len() + 1);
                        v.splice(at..at, chunk);
                    }
                    4 if !v.is_empty() => {
                        let a = rnd(v.len());
                        let b = (a + 1 + rnd(64)).min(v.len());
                        v.drain(a..b);
                    }
                    _ => {
                        let other = &seeds[rnd(seeds.len())];
                        let cut = rnd(v.len() + 1);
                        v.truncate(cut);
                        v.extend_from_slice(&other[rnd(other.len() + 1)..]);
                    }
                }
            }
            runs += 1;
            if std::panic::catch_unwind(|| h(&v)).is_err() {
                let p = std::env::temp_dir().join(format!("aes67-fuzz-smoke-{t}-{runs}"));
                std::fs::write(&p, &v).unwrap();
                failed.push(format!("{t}: {}", p.display()));
                break;
            }
        }
        eprintln!("{t}: {runs} mutated inputs");
        assert!(runs >= 100, "{t}: only {runs} inputs in the time budget");
    }
    assert!(failed.is_empty(), "mutated inputs that panic: {failed:#?}");
}
