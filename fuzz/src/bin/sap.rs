//! AFL++ entry point of the `sap` target (see `aes67_fuzz::sap`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::sap(data));
}
