#!/bin/sh
# Runs inside the qemu guest (ci/qemu/runvm.sh): the whole engine on a real
# kernel ALSA driver. `aes67 demo` sends a 1 kHz tone on the guest's loopback
# and plays it through the drift-compensated playout thread to
# hw:Loopback,0,0, whose clock is skewed by "PCM Rate Shift 100000"; arecord
# records hw:Loopback,1,0.
# usage: guest-play.sh <aes67-binary> <seconds> <shift> [<ext-seconds>]
# With <ext-seconds> > 0 (issue 17) the same boot then plays an external sender,
# a GStreamer pipeline (audiotestsrc ! rtpL24pay ! udpsink, 4 ms packets, loopback
# multicast 239.255.67.68:5006), with `aes67 play` for <ext-seconds> at each of the
# shifts 99900 (+1001 ppm) and 100100 (-999 ppm) at once (loopback subdevices 0 and 1),
# and SIGSTOPs both receivers for 300 ms half-way (times in ext-<shift>.stall: start and stall,
# and in ext.gst-start: the sender's start 3 s after the receivers', s of CLOCK_REALTIME).
BIN=$1; SECS=$2; SHIFT=$3; EXT=${4:-0}
# run the binary from tmpfs: code pages faulted over 9p under tcg stall threads at start-up
cp "$BIN" /dev/shm/aes67 && BIN=/dev/shm/aes67
modprobe snd-aloop pcm_substreams=2 || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
shift_to() {
  for d in 0 1; do
    amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=$d,subdevice=0 "$1" || exit 4
  done
}
shift_to "$SHIFT"
arecord -q -D hw:Loopback,1,0 -f S32_LE -c 2 -r 48000 -d $((SECS + 4)) "$AES67_WORK/rec.wav" &
REC=$!
"$BIN" demo --duration "$SECS" --output alsa:hw:Loopback,0,0 --resampler poly \
  --alsa-period-ms 20 --alsa-buffer-ms 500 --playout-target-ms 750 --json \
  > "$AES67_WORK/play.json" 2> "$AES67_WORK/play.err"
rc=$?
wait $REC
echo "GUEST: aes67 demo exit $rc"
tail -3 "$AES67_WORK/play.err"
[ "$rc" = 0 ] || exit $rc
[ "$EXT" -gt 0 ] 2>/dev/null || exit 0

command -v gst-launch-1.0 >/dev/null || { echo "GUEST: no gst-launch-1.0"; exit 5; }
ip link set lo multicast on 2>/dev/null
ip route add 239.0.0.0/8 dev lo 2>/dev/null
# the host root is read-only: keep GStreamer's plugin registry in the work share, and
# build it before the timed runs (a plugin scan under tcg takes a while)
export GST_REGISTRY=$AES67_WORK/gst-registry.bin
gst-inspect-1.0 rtpL24pay > /dev/null 2>&1 || { echo "GUEST: GStreamer has no rtpL24pay"; exit 5; }
# Two receivers at once, then one GStreamer sender: shift 99900 on loopback subdevice 0
# and 100100 on subdevice 1 (each subdevice has its own PCM Rate Shift), both SIGSTOPped
# for 300 ms half-way. The receivers start first and wait for the stream, as a playout
# box does: two processes starting (mlockall, ALSA set-up) under tcg would otherwise
# starve the sender's first seconds. The sender and the recorders stand in for other
# machines, so they run SCHED_FIFO above our threads: the two receivers' real-time
# threads must not starve them on the guest's two emulated CPUs (a starved sender
# sends in bursts, which no receiver can play without a gap).
PIDS=""; RECS=""; SUB=0
for S in 99900 100100; do
  for d in 0 1; do
    amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=$d,subdevice=$SUB "$S" || exit 4
  done
  W=$AES67_WORK/ext-$S
  chrt -f 80 arecord -q -D hw:Loopback,1,$SUB -f S32_LE -c 2 -r 48000 -d $((EXT + 4)) "$W.wav" &
  RECS="$RECS $!"
  date +%s.%N > "$W.stall"
  "$BIN" play "aes67://239.255.67.68:5006?iface=127.0.0.1&ch=2&rate=48000&enc=L24" \
    --duration "$EXT" --output alsa:hw:Loopback,0,$SUB --resampler poly \
    --alsa-period-ms 20 --alsa-buffer-ms 500 --playout-target-ms 750 --json \
    > "$W.json" 2> "$W.err" &
  PIDS="$PIDS $!"
  SUB=$((SUB + 1))
done
sleep 3
date +%s.%N > "$AES67_WORK/ext.gst-start"
chrt -f 80 gst-launch-1.0 -q audiotestsrc is-live=true wave=sine freq=1000 volume=0.251 \
  ! audio/x-raw,format=S24BE,rate=48000,channels=2 \
  ! rtpL24pay pt=96 mtu=1500 min-ptime=4000000 max-ptime=4000000 \
  ! udpsink host=239.255.67.68 port=5006 multicast-iface=lo ttl-mc=0 auto-multicast=true sync=true \
  > "$AES67_WORK/ext.gst.err" 2>&1 &
GST=$!
sleep $((EXT / 2 - 3))
for S in 99900 100100; do date +%s.%N >> "$AES67_WORK/ext-$S.stall"; done
kill -STOP $PIDS; sleep 0.3; kill -CONT $PIDS
rc=0
for P in $PIDS; do wait $P || rc=$?; done
for R in $RECS; do wait $R; done
kill $GST 2>/dev/null; wait $GST 2>/dev/null
for S in 99900 100100; do
  echo "GUEST: external sender, shift $S:"
  tail -3 "$AES67_WORK/ext-$S.err"
done
echo "GUEST: aes67 play exit $rc"
exit $rc
