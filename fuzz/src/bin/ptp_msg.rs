//! AFL++ entry point of the `ptp_msg` target (see `aes67_fuzz::ptp_msg`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::ptp_msg(data));
}
