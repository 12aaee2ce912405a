#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine of this kind (Debian bookworm,
# root) for the tests (`./ci/test.sh`): through ci/setup-demo.sh, the demo's
# packages and everything the tests, their rigs and peers need.
set -euo pipefail
PKGS=(
  alsa-utils                            # aplay/arecord
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good  # AES67 peer
  linuxptp                              # ptp4l/pmc peer
  nftables iproute2 util-linux          # netns rigs, loss injection, setpriv
  sox                                   # signal generation/analysis in rigs
  mingw-w64 wine64 wine                 # bass-plugin: Windows cross-build (x86_64-pc-windows-gnu) and wine test
  gir1.2-gstreamer-1.0 python3-gi       # GstPtpClock peer in the PTP precision harness
  prometheus curl                       # the service: a real Prometheus scraping us, promtool
  systemd udev                          # systemd-analyze verify (unit), udevadm (rules)
)
"$(dirname "$0")/setup-demo.sh" "${PKGS[@]}"
# The BASS add-on's Windows build and wine test need the mingw target.
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
# The package proof (ci/deb.sh) builds the .deb with cargo-deb; installed once.
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
