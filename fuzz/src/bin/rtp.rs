//! AFL++ entry point of the `rtp` target (see `aes67_fuzz::rtp`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::rtp(data));
}
