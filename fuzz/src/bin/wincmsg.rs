//! AFL++ entry point of the `wincmsg` target (see `aes67_fuzz::wincmsg`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::wincmsg(data));
}
