#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: set-up, then every test.
# The rig tests (network namespaces, GStreamer, ptp4l) need root.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
cargo test --release --workspace -- --test-threads=2
