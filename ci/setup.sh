#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine of this kind (Debian bookworm,
# root) for the tests (`./ci/test.sh`): through ci/setup-demo.sh, the demo's
# packages and everything the tests, their rigs and peers need.
set -euo pipefail
PKGS=(
  alsa-utils                            # aplay/arecord
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good  # AES67 peer; lamemp3enc (MP3 test file)
  linuxptp                              # ptp4l/pmc peer
  nftables iproute2 util-linux          # netns rigs, loss injection, setpriv
  sox                                   # signal generation/analysis in rigs
  mingw-w64 wine64 wine                 # bass-plugin: Windows cross-build (x86_64-pc-windows-gnu) and wine test
  gir1.2-gstreamer-1.0 python3-gi       # GstPtpClock peer in the PTP precision harness
  prometheus curl                       # the service: a real Prometheus scraping us, promtool
  systemd udev                          # systemd-analyze verify (unit), udevadm (rules), systemd-journald + journalctl (journald log test)
  nodejs python3-venv                   # sdpoker (node) and the nmos-testing venv
)
"$(dirname "$0")/setup-demo.sh" "${PKGS[@]}"
# The BASS add-on's Windows build and wine test need the mingw target.
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
# The package proof (ci/deb.sh) builds the .deb with cargo-deb; installed once.
cargo deb --version >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
# sdpoker (AMWA's SDP checker, run by tests/sdp_sdpoker.rs and the sender's
# netns tests), unpacked offline from the shared peers beside this clone into
# /tmp/nmos-testing; the script is idempotent.
NMOS_SETUP="$(cd "$(dirname "$0")/../.." && pwd)/shared/peers/nmos-testing/setup.sh"
if [ -x "$NMOS_SETUP" ] || [ -f "$NMOS_SETUP" ]; then
  bash "$NMOS_SETUP" /tmp/nmos-testing >/dev/null
else
  echo "ci/setup.sh: $NMOS_SETUP not found: sdpoker tests will fail" >&2
fi
# PipeWire 1.4 (module-rtp-sap, rtp-sink, rtp-source) from bookworm-backports:
# the SAP and AES67 peer of tests/sap_peers.rs (bookworm's own 0.3.65 is too old).
if ! dpkg-query -W -f='${Version}' pipewire-bin 2>/dev/null | grep -q '^1\.[4-9]'; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "${uri:-http://deb.debian.org/debian}" > /etc/apt/sources.list.d/aes67-backports.sources
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
    -t bookworm-backports pipewire pipewire-bin libspa-0.2-modules >/dev/null
fi
