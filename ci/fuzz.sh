#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ through cargo-afl, on the stable toolchain.
#
#   ci/fuzz.sh TARGET SECONDS     fuzz one target (see fuzz/src/lib.rs, TARGETS)
#   ci/fuzz.sh all SECONDS        every target in turn, SECONDS each
#   ci/fuzz.sh list               the target names
#
# Builds fuzz/ with `cargo afl build --release --features afl` (instrumented,
# in its own target dir, target/afl, so the normal build cache is untouched),
# seeds AFL++ with fuzz/corpus/TARGET, runs it for SECONDS, then prints the
# executions done, exec/s, crashes and hangs from AFL++'s fuzzer_stats and
# exits non-zero on any crash or hang (the inputs are left in
# target/afl/out/TARGET/default/{crashes,hangs}: copy them to
# fuzz/regressions/TARGET/ and they are replayed by `cargo test`).
#
# cargo-afl is installed on first use (`cargo install cargo-afl`, which also
# builds AFL++; ~3 min). Environment: FUZZ_JOBS (default 1) fuzzer
# processes per target (one main, the rest secondaries); FUZZ_OUT (default
# target/afl/out) output dir; FUZZ_KEEP=1 keeps an old output dir (resume);
# FUZZ_TIMEOUT_MS (default 2000) per-input time limit (over it = a hang);
# FUZZ_EXECS=N stops each fuzzer after about N executions (AFL++ -E), before
# SECONDS if it gets there first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
targets=(rtp jitter ptp_msg ptp_port sdp url cmsg wincmsg bass_url bass_config sap)

usage() { echo "usage: $0 TARGET|all|list SECONDS" >&2; exit 2; }
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
[ $# -eq 2 ] || usage
target=$1 secs=$2
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || usage
if [ "$target" = all ]; then
  rc=0
  for t in "${targets[@]}"; do "$0" "$t" "$secs" || rc=1; done
  exit $rc
fi
printf '%s\n' "${targets[@]}" | grep -qx "$target" || { echo "fuzz.sh: unknown target $target (ci/fuzz.sh list)" >&2; exit 2; }

if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-afl (builds AFL++)" >&2
  cargo install cargo-afl --locked --version 0.18.2 >&2
fi
# AFL++ itself (cargo install normally builds it; this covers a new toolchain).
cargo afl config --build >/dev/null 2>&1 || true

export CARGO_TARGET_DIR="$root/target/afl"
mkdir -p "$CARGO_TARGET_DIR"
blog="$CARGO_TARGET_DIR/build-$target.log"
cargo afl build --release --features afl -p aes67-fuzz --bin "$target" >"$blog" 2>&1 \
  || { tail -40 "$blog" >&2; echo "fuzz.sh: build of $target failed (log: $blog)" >&2; exit 1; }
bin="$CARGO_TARGET_DIR/release/$target"

out="${FUZZ_OUT:-$CARGO_TARGET_DIR/out}/$target"
[ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$out"
mkdir -p "$out"
in="$root/fuzz/corpus/$target"
[ "${FUZZ_KEEP:-0}" = 1 ] && [ -d "$out/default" ] && in=-

# A shared machine: no CPU binding, no core_pattern or cpufreq demands, no UI.
export AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_QUIET=1 AFL_SKIP_CRASHES=0 AFL_FAST_CAL=1
jobs=${FUZZ_JOBS:-1}
tmo=${FUZZ_TIMEOUT_MS:-2000}
limit=()
[ -n "${FUZZ_EXECS:-}" ] && limit=(-E "$FUZZ_EXECS")
pids=()
for ((j = 1; j < jobs; j++)); do
  cargo afl fuzz -S "s$j" "${limit[@]}" -V "$secs" -t "$tmo" -i "$in" -o "$out" "$bin" >"$out/s$j.log" 2>&1 &
  pids+=($!)
done
name=default
[ "$jobs" -gt 1 ] && name=main
if [ "$jobs" -gt 1 ]; then mflag=(-M main); else mflag=(); fi
set +e
cargo afl fuzz "${mflag[@]}" "${limit[@]}" -V "$secs" -t "$tmo" -i "$in" -o "$out" "$bin" >"$out/fuzz.log" 2>&1
frc=$?
set -e
for p in "${pids[@]}"; do wait "$p" || true; done

stat() { sed -n "s/^$1 *: *//p" "$2" | head -1; }
execs=0 crashes=0 hangs=0 runtime=0 found=0
for s in "$out"/*/fuzzer_stats; do
  [ -f "$s" ] || continue
  found=1
  execs=$((execs + $(stat execs_done "$s")))
  crashes=$((crashes + $(stat saved_crashes "$s")))
  hangs=$((hangs + $(stat saved_hangs "$s")))
  r=$(stat run_time "$s"); [ "${r:-0}" -gt "$runtime" ] && runtime=$r
done
if [ "$found" = 0 ]; then
  echo "fuzz.sh: $target: afl-fuzz produced no fuzzer_stats (exit $frc); log:" >&2
  tail -30 "$out/fuzz.log" >&2
  exit 1
fi
rate=$(( runtime > 0 ? execs / runtime : execs ))
edges=$(stat edges_found "$out/$name/fuzzer_stats")
total=$(stat total_edges "$out/$name/fuzzer_stats")
printf 'fuzz %-12s seconds=%s execs=%s exec/s=%s crashes=%s hangs=%s edges=%s/%s\n' \
  "$target" "$runtime" "$execs" "$rate" "$crashes" "$hangs" "$edges" "$total"
if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then
  echo "fuzz.sh: $target: inputs in $out/*/crashes and $out/*/hangs" >&2
  ls "$out"/*/crashes "$out"/*/hangs >&2 2>/dev/null || true
  exit 1
fi
