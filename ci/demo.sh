#!/usr/bin/env bash
# Runs the main job with its embedded default: `aes67 demo` (in-process sender
# of a test tone to a loopback multicast group, the receiver, ALSA default or a
# WAV file when there is no sound card). Extra arguments go to `aes67 demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup-demo.sh
cargo build --release --bin aes67
exec ./target/release/aes67 demo "$@"
