#!/bin/sh
# PID 1 inside the guest after switch_root: runs the test script named by aes67.test=
# (with aes67.args= as its arguments, commas for spaces), stores its exit code in
# $aes67.work/rc and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /var/tmp 2>/dev/null; mount -t tmpfs tmpfs /var/log 2>/dev/null
ip link set lo up 2>/dev/null
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
WORK=$(arg aes67.work); T=$(arg aes67.test); A=$(arg aes67.args | tr ',' ' ')
echo "GUEST: up at $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r), running $T $A"
rc=2
if [ -n "$T" ]; then AES67_WORK=$WORK sh "$T" $A; rc=$?; fi
echo "GUEST: test exit $rc at $(cut -d' ' -f1 /proc/uptime) s"
echo "$rc" > "$WORK/rc"
sync
busybox poweroff -f
