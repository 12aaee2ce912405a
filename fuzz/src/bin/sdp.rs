//! AFL++ entry point of the `sdp` target (see `aes67_fuzz::sdp`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::sdp(data));
}
