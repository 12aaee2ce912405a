#!/usr/bin/env bash
# The package proof: builds aes67_<version>_amd64.deb with cargo-deb
# (metadata in Cargo.toml), installs it on this machine with dpkg, checks the
# files, the aes67 user and group, and `aes67 run --check` of the shipped
# /etc/aes67/aes67.toml, then removes and purges it and checks nothing is
# left. Needs root (dpkg). cargo-deb is installed by ci/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p aes67 --bin aes67
cargo build --release -p bass-aes67
deb=$(cargo deb --no-build -p aes67 | tail -1)
echo "deb: built $deb"
dpkg-deb --contents "$deb" | awk '{print $6}' | sort > target/deb-contents.txt
for f in ./usr/bin/aes67 ./usr/lib/systemd/system/aes67.service ./usr/lib/udev/rules.d/60-aes67.rules \
         ./etc/aes67/aes67.toml ./usr/share/doc/aes67/config.md ./usr/share/doc/aes67/nmos.md ./usr/lib/aes67/libbass_aes67.so \
         ./usr/include/aes67/bass_aes67.h; do
  grep -qx "$f" target/deb-contents.txt || { echo "deb: $f missing from $deb" >&2; exit 1; }
done
dpkg -i "$deb"
getent passwd aes67 >/dev/null || { echo "deb: user aes67 not created" >&2; exit 1; }
getent group aes67 >/dev/null || { echo "deb: group aes67 not created" >&2; exit 1; }
/usr/bin/aes67 run --check /etc/aes67/aes67.toml
dpkg -r aes67
[ ! -e /usr/bin/aes67 ] && [ ! -e /usr/lib/systemd/system/aes67.service ] \
  || { echo "deb: files left after dpkg -r" >&2; exit 1; }
dpkg --purge aes67
[ ! -e /etc/aes67/aes67.toml ] || { echo "deb: config left after purge" >&2; exit 1; }
! getent passwd aes67 >/dev/null || { echo "deb: user aes67 left after purge" >&2; exit 1; }
echo "deb: ok (installed, user created, config checks, removed and purged cleanly)"
