#!/bin/sh
# Runs inside the qemu guest (ci/qemu/runvm.sh): the guest half of
# tests/service_aloop.rs. Loads snd-aloop and runs the test binary's `guest_vanish`,
# which starts `aes67 run` with a receiver playing to hw:Loopback,0,0 and another
# stream, unbinds the snd_aloop card while it plays, binds it again, and checks
# the service through its status socket and metrics.
# usage: guest-vanish.sh <test-exe> <aes67-binary>
EXE=$1; BIN=$2
# run from tmpfs, not over 9p (page faults over 9p stall threads under tcg)
cp "$EXE" /dev/shm/service_aloop && cp "$BIN" /dev/shm/aes67 || { echo "GUEST: cannot copy the binaries"; exit 3; }
modprobe snd-aloop || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
echo "GUEST: snd_aloop devices: $(ls /sys/bus/platform/drivers/snd_aloop/ | grep snd_aloop | tr '\n' ' ')"
ip link set lo multicast on 2>/dev/null
ip route add 239.0.0.0/8 dev lo 2>/dev/null
AES67_VANISH_BIN=/dev/shm/aes67 /dev/shm/service_aloop --ignored --exact guest_vanish \
  --nocapture --test-threads=1 > "$AES67_WORK/vanish.log" 2>&1
rc=$?
cat "$AES67_WORK/vanish.log"
echo "GUEST: service stderr (last lines):"
tail -15 "$AES67_WORK/vanish-service.err" 2>/dev/null
echo "GUEST: guest_vanish exit $rc"
exit $rc
