#!/bin/sh
# Runs inside the qemu guest (ci/qemu/runvm.sh): the whole engine on a real
# kernel ALSA driver. `aes67 demo` sends a 1 kHz tone on the guest's loopback
# and plays it through the drift-compensated playout thread to
# hw:Loopback,0,0, whose clock is skewed by "PCM Rate Shift 100000"; arecord
# records hw:Loopback,1,0. usage: guest-play.sh <aes67-binary> <seconds> <shift>
BIN=$1; SECS=$2; SHIFT=$3
modprobe snd-aloop pcm_substreams=1 || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
for d in 0 1; do
  amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=$d,subdevice=0 "$SHIFT" || exit 4
done
arecord -q -D hw:Loopback,1,0 -f S32_LE -c 2 -r 48000 -d $((SECS + 4)) "$AES67_WORK/rec.wav" &
REC=$!
"$BIN" demo --duration "$SECS" --output alsa:hw:Loopback,0,0 --resampler poly \
  --alsa-period-ms 20 --alsa-buffer-ms 500 --playout-target-ms 750 --json \
  > "$AES67_WORK/play.json" 2> "$AES67_WORK/play.err"
rc=$?
wait $REC
echo "GUEST: aes67 demo exit $rc"
tail -3 "$AES67_WORK/play.err"
exit $rc
