#!/usr/bin/env bash
# ci/qemu/setup.sh: one-time, idempotent set-up of the qemu guest rig used by the
# real-kernel ALSA tests (snd-aloop). Debian bookworm, root, Debian registry only.
#
#  - qemu-system-x86 10.x from bookworm-backports (tcg; KVM on this host kind cannot
#    run stock kernels);
#  - the Debian 6.12 kernel (linux-image-6.12-amd64 from bookworm-security), fetched with
#    `apt-get download`, unpacked with `dpkg -x`, module index built with `depmod -b`;
#  - a busybox-static initramfs carrying only the virtio/9p/overlay modules.
#
# env: AES67_QEMU_CACHE  where kernel and initramfs live (default /var/cache/aes67-qemu)
# prints "KPKG=<dir>" and "INITRD=<file>" on its last lines.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
C=${AES67_QEMU_CACHE:-/var/cache/aes67-qemu}
KMETA=${AES67_QEMU_KMETA:-linux-image-6.12-amd64}
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

need_update=0
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" > /etc/apt/sources.list.d/aes67-backports.sources
  need_update=1
fi
TOOLS=(busybox-static cpio kmod xz-utils zstd alsa-utils)
missing=()
for p in "${TOOLS[@]}"; do have "$p" || missing+=("$p"); done
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null; then
  v=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)
  [ "${v:-0}" -ge 8 ] && qemu_ok=1
fi
if [ $need_update = 1 ] || [ $qemu_ok = 0 ] || [ ${#missing[@]} -gt 0 ] || ! apt-cache show "$KMETA" >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
fi
[ $qemu_ok = 1 ] || "${APT[@]}" install -t bookworm-backports qemu-system-x86 >/dev/null
[ ${#missing[@]} -eq 0 ] || "${APT[@]}" install "${missing[@]}" >/dev/null

mkdir -p "$C/pkgs" "$C/k"
KPKG_NAME=$(apt-cache depends "$KMETA" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$KPKG_NAME" ] || { echo "ci/qemu/setup.sh: cannot resolve $KMETA" >&2; exit 1; }
cd "$C/pkgs"
ls "${KPKG_NAME}"_*.deb >/dev/null 2>&1 || apt-get -q download "$KPKG_NAME" >/dev/null
DEB=$(ls "${KPKG_NAME}"_*.deb | head -1)
KDIR="$C/k/$(basename "$DEB" .deb)"
if [ ! -f "$KDIR/.ok" ]; then
  rm -rf "$KDIR"; mkdir -p "$KDIR"; dpkg -x "$DEB" "$KDIR"
  depmod -b "$KDIR" "$(ls "$KDIR/lib/modules")"
  touch "$KDIR/.ok"
fi
KVER=$(ls "$KDIR/lib/modules")
INITRD="$C/initrd-$KVER.cpio.gz"
if [ ! -f "$INITRD" ] || [ "$HERE/initramfs-init.sh" -nt "$INITRD" ]; then
  "$HERE/mkinitramfs.sh" "$KDIR" "$INITRD" >&2
fi
echo "KPKG=$KDIR"
echo "INITRD=$INITRD"
