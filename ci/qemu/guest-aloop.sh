#!/bin/sh
# Runs inside the qemu guest (see run-aloop.sh): loads snd-aloop and, for each
# "PCM Rate Shift 100000" value at once, each on its own loopback subdevice (cable),
# runs the guest half of tests/playout_aloop.rs: our steered playout thread plays a
# media-clock tone to hw:Loopback,0,N while a reader records hw:Loopback,1,N.
# usage: guest-aloop.sh <test-exe> <seconds> [shifts...]
EXE=$1; SECS=$2; shift 2
# run the binary from tmpfs: code pages faulted over 9p under tcg stall threads at start-up
cp "$EXE" /dev/shm/aes67-exe && EXE=/dev/shm/aes67-exe
SHIFTS=${*:-"99900 100100 100000"}
set -- $SHIFTS
modprobe snd-aloop pcm_substreams=$# || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
setshift() { # both ends of cable $2 (device 0 and 1, subdevice $2)
  amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=0,subdevice=$2 "$1" &&
  amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=1,subdevice=$2 "$1"
}
rc=0; sub=0; pids=""
for s in $SHIFTS; do
  setshift "$s" $sub || { echo "GUEST: cannot set rate shift $s"; rc=4; continue; }
  echo "GUEST: shift $s on subdevice $sub: $(amixer -c Loopback cget iface=PCM,name='PCM Rate Shift 100000',device=0,subdevice=$sub | grep ': values')"
  AES67_ALOOP_SHIFT=$s AES67_ALOOP_SUB=$sub AES67_ALOOP_SECONDS=$SECS \
    "$EXE" --ignored --exact guest_aloop_playout --nocapture --test-threads=1 > "$AES67_WORK/aloop-$s.log" 2>&1 &
  pids="$pids $!:$s"
  sub=$((sub + 1))
done
for ps in $pids; do
  wait "${ps%%:*}"; r=$?
  cat "$AES67_WORK/aloop-${ps#*:}.log"
  echo "GUEST: shift ${ps#*:} exit $r"
  [ $r -ne 0 ] && rc=1
done
exit $rc
