//! AFL++ entry point of the `bass_config` target (see `aes67_fuzz::bass_config`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::bass_config(data));
}
