//! AFL++ entry point of the `url` target (see `aes67_fuzz::url`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::url(data));
}
