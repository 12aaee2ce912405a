#!/usr/bin/env bash
# ci/qemu/run-aloop.sh <test-exe> [seconds-per-shift, default 300] [shifts...]
# Boots the Debian 6.12 kernel under qemu (tcg) with snd-aloop and runs the guest half
# of tests/playout_aloop.rs for PCM Rate Shift 99900 (+1001 ppm), 100100 (-999 ppm) and
# 100000, all at once on three loopback subdevices. Sets the rig up on first use (ci/qemu/setup.sh). Exit code: the guest's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXE=$(readlink -f "$1"); SECS=${2:-300}; shift $(( $# >= 2 ? 2 : $# ))
n=$(( $# > 0 ? $# : 3 ))
# the shifts run at once (one loopback subdevice each): guest boot + play time, device
# open/settle and the tone check, with margin for a loaded host.
export TIMEOUT=${TIMEOUT:-$(( 300 + SECS + n * 120 ))}
exec "$HERE/runvm.sh" "$HERE/guest-aloop.sh" "$EXE" "$SECS" "$@"
