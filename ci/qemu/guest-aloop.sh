#!/bin/sh
# Runs inside the qemu guest (see run-aloop.sh): loads snd-aloop and, for each
# "PCM Rate Shift 100000" value, runs the guest half of tests/playout_aloop.rs:
# our steered playout thread plays a media-clock tone to hw:Loopback,0,0 while a
# reader records hw:Loopback,1,0. usage: guest-aloop.sh <test-exe> <seconds> [shifts...]
EXE=$1; SECS=$2; shift 2
SHIFTS=${*:-"99900 100100 100000"}
modprobe snd-aloop pcm_substreams=1 || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
setshift() { # both ends of cable 0 (device 0 and 1, subdevice 0)
  amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=0,subdevice=0 "$1" &&
  amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=1,subdevice=0 "$1"
}
rc=0
for s in $SHIFTS; do
  setshift "$s" || { echo "GUEST: cannot set rate shift $s"; rc=4; continue; }
  echo "GUEST: shift $s: $(amixer -c Loopback cget iface=PCM,name='PCM Rate Shift 100000',device=0,subdevice=0 | grep ': values')"
  AES67_ALOOP_SHIFT=$s AES67_ALOOP_SECONDS=$SECS "$EXE" --ignored --exact guest_aloop_playout --nocapture --test-threads=1
  r=$?
  echo "GUEST: shift $s exit $r"
  [ $r -ne 0 ] && rc=1
done
exit $rc
