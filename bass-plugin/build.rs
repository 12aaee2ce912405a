//! Sets `cfg(engine)` when the aes67 engine is linked: always off Windows,
//! and on Windows with the `windows-engine` feature.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(engine)");
    let windows = std::env::var_os("CARGO_CFG_WINDOWS").is_some();
    if !windows || std::env::var_os("CARGO_FEATURE_WINDOWS_ENGINE").is_some() {
        println!("cargo::rustc-cfg=engine");
    }
}
