#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine of this kind (Debian bookworm,
# root) for the tests (`./ci/test.sh`): the demo's packages (ci/setup-demo.sh),
# then everything the tests, their rigs and peers need.
set -euo pipefail
"$(dirname "$0")/setup-demo.sh"
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  alsa-utils                            # aplay/arecord
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good  # AES67 peer
  linuxptp                              # ptp4l/pmc peer
  nftables iproute2 util-linux          # netns rigs, loss injection, setpriv
  sox                                   # signal generation/analysis in rigs
  mingw-w64 wine64 wine                 # bass-plugin: Windows cross-build (x86_64-pc-windows-gnu) and wine test
  gir1.2-gstreamer-1.0 python3-gi       # GstPtpClock peer in the PTP precision harness
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "ci/setup.sh: cargo (rustup) is required" >&2; exit 1; }
# The BASS add-on's Windows build and wine test need the mingw target.
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
