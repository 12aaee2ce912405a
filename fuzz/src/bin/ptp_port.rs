//! AFL++ entry point of the `ptp_port` target (see `aes67_fuzz::ptp_port`).
fn main() {
    afl::fuzz!(|data: &[u8]| aes67_fuzz::ptp_port(data));
}
