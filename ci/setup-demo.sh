#!/usr/bin/env bash
# One-time, idempotent set-up for the demo (`./ci/demo.sh`) on a fresh machine
# of this kind (Debian bookworm, root): the ALSA library the engine links
# against and pkg-config, which the alsa crate's build uses to find it.
# Extra arguments are more packages to install with them (ci/setup.sh).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(libasound2-dev pkg-config "$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/setup-demo.sh: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "ci/setup-demo.sh: cargo (rustup) is required" >&2; exit 1; }
