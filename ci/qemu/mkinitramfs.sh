#!/usr/bin/env bash
# ci/qemu/mkinitramfs.sh <unpacked-kernel-package-dir> <out.cpio.gz>
# A minimal initramfs: busybox-static, the kernel modules needed to mount the host root
# over virtio-9p with a tmpfs overlay (resolved by the host's kmod against the guest
# module tree), and ci/qemu/initramfs-init.sh as /init.
set -euo pipefail
PKG=$(readlink -f "$1"); OUT=$(readlink -m "$2")
KVER=$(ls "$PKG/lib/modules")
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,proc,sys,dev,lower,upper,newroot,mods}
cp /bin/busybox "$W/bin/busybox"
: > "$W/mods/order"
modprobe -d "$PKG" -S "$KVER" --show-depends -a virtio_pci 9pnet_virtio 9p overlay 2>/dev/null |
  awk '$1 == "insmod" && !seen[$2]++ {print $2}' |
  while read -r ko; do
    name=$(basename "$ko"); name=${name%.xz}; name=${name%.zst}
    case "$ko" in
      *.xz) xz -dc "$ko" >"$W/mods/$name" ;;
      *.zst) zstd -qdc "$ko" >"$W/mods/$name" ;;
      *) cp "$ko" "$W/mods/$name" ;;
    esac
    echo "$name" >>"$W/mods/order"
  done
install -m 755 "$HERE/initramfs-init.sh" "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT"
echo "initramfs $OUT ($(du -h "$OUT" | cut -f1)): $(tr '\n' ' ' <"$W/mods/order")"
