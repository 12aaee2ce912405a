#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: set-up, then every test.
# The rig tests (network namespaces, GStreamer, ptp4l, qemu) need root: they are
# `#[ignore = "needs root: …"]` and run here through --include-ignored; as
# non-root they fail (run `cargo test` without it to see them reported ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
# issue 17: the qemu snd-aloop boot of tests/play_aloop.rs also plays an external sender
# (GStreamer in the guest) at +1001 and -999 ppm at once for this many seconds, with a stall.
export AES67_PLAY_EXT_SECONDS=${AES67_PLAY_EXT_SECONDS:-300}
# issue 11: tests/capture_aloop.rs captures snd-aloop at +1001 and -999 ppm at once for this many
# seconds (docs/test-rigs.md, "ALSA capture in the qemu snd-aloop guest").
export AES67_CAPTURE_SECONDS=${AES67_CAPTURE_SECONDS:-300}
cargo test --release --workspace -- --include-ignored --test-threads=2
# The package: build the .deb, dpkg -i, user created, config checks, dpkg -r/purge clean.
./ci/deb.sh
# Fuzz smoke: the corpus and regression replay of every fuzz target runs
# above (fuzz/tests/replay.rs). A live AFL++ run per target is opt-in, as it
# installs cargo-afl and builds AFL++ (~3-5 min) plus the instrumented targets:
# FUZZ_SMOKE_SECONDS=20 ./ci/test.sh runs `ci/fuzz.sh all 20` (docs/fuzzing.md).
if [ "${FUZZ_SMOKE_SECONDS:-0}" -gt 0 ]; then
  ./ci/fuzz.sh all "$FUZZ_SMOKE_SECONDS"
fi
