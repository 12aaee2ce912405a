//! AFL++ entry point of the `jitter` target (see `aes67_fuzz::jitter`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::jitter(data));
}
