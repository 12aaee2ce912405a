#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: set-up, then every test.
# The rig tests (network namespaces, GStreamer, ptp4l, qemu) need root: they are
# `#[ignore = "needs root: …"]` and run here through --include-ignored; as
# non-root they fail (run `cargo test` without it to see them reported ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
cargo test --release --workspace -- --include-ignored --test-threads=2
