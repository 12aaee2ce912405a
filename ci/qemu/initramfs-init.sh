#!/bin/busybox sh
# /init of the aes67 test initramfs: host / read-only over virtio-9p (tag hostroot) under a
# tmpfs overlay, guest kernel modules over 9p (tag modules), a read-write 9p share (tag
# work) for results at the path given by aes67.work=; then switch_root and run
# aes67.init= (ci/qemu/guest-init.sh) as PID 1.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "initramfs: insmod $m failed"; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
WORK=$(arg aes67.work); INIT=$(arg aes67.init)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /lower || { echo "initramfs: 9p root failed"; poweroff -f; }
mount -t tmpfs -o size=512m tmpfs /upper; mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || { echo "initramfs: overlay failed"; poweroff -f; }
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev
mount -t tmpfs tmpfs /newroot/tmp; mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/usr/lib/modules "/newroot$WORK"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 modules /newroot/usr/lib/modules || echo "initramfs: modules mount failed"
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=524288 work "/newroot$WORK" || echo "initramfs: work mount failed"
exec switch_root /newroot /bin/sh "$INIT"
