//! Runs one target on files and prints the time each took:
//! `cargo run --release -p aes67-fuzz --example run_one -- TARGET FILE...`
//! (for triaging a crash or hang from `ci/fuzz.sh`).
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: run_one TARGET FILE...");
    let (_, h) = aes67_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("unknown target {target}"));
    for f in args {
        let data = std::fs::read(&f).unwrap();
        let t = std::time::Instant::now();
        h(&data);
        println!("{f}: {} bytes, {:?}", data.len(), t.elapsed());
    }
}
