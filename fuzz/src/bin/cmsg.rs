//! AFL++ entry point of the `cmsg` target (see `aes67_fuzz::cmsg`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::cmsg(data));
}
