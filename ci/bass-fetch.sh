#!/usr/bin/env bash
# Fetches the real BASS 2.4.17 binaries for tests (never committed: BASS is
# not ours to redistribute). Downloads the modpybass2 0.5.8 wheel from PyPI
# into ci/.cache/bass (gitignored), extracts libbass.so and bass.dll (x64),
# verifies their sha256, and prints the directory holding them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${BASS_CACHE:-$root/ci/.cache/bass}"
out="$cache/x64"
mkdir -p "$out"
whl="$cache/modpybass2-0.5.8-py3-none-any.whl"
if [ ! -f "$whl" ]; then
  if command -v pip >/dev/null; then pip=(pip); else pip=(python3 -m pip); fi
  "${pip[@]}" download --no-deps --quiet --disable-pip-version-check modpybass2==0.5.8 -d "$cache" >&2
fi
check() { echo "$2  $out/$1" | sha256sum -c --quiet >/dev/null 2>&1; }
SO=7a0f4500cc3c022bf2e3874f8b197899a41208af3160c69f165526a750ac5412
DLL=4c92a8c9ef753e79840aa8d625c1426095dd0eb1f611750ddc62463b9bd1df42
if ! check libbass.so $SO || ! check bass.dll $DLL; then
  python3 - "$whl" "$out" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in ("libbass.so", "bass.dll"):
    with open(f"{sys.argv[2]}/{n}", "wb") as f:
        f.write(z.read(f"modpybass/lib/x64/{n}"))
PY
  check libbass.so $SO || { echo "bass-fetch: libbass.so sha256 mismatch" >&2; exit 1; }
  check bass.dll $DLL || { echo "bass-fetch: bass.dll sha256 mismatch" >&2; exit 1; }
fi
echo "$out"
