//! AFL++ entry point of the `bass_url` target (see `aes67_fuzz::bass_url`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::bass_url(data));
}
