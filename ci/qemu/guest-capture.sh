#!/bin/sh
# Runs inside the qemu guest (ci/qemu/runvm.sh): the sender's ALSA capture source
# (issue 11) on a real kernel ALSA driver. Two loopback subdevices at once, one
# skewed +1001 ppm ("PCM Rate Shift 100000" = 99900) and one -999 ppm (100100):
# on each, GStreamer's audiotestsrc piped into aplay plays a 1 kHz tone into
# hw:Loopback,0,N, and `aes67 send --source alsa:hw:Loopback,1,N` captures it and
# sends it to loopback multicast (TTL 0, lo). ci/qemu/rtp_arrivals.py logs every
# packet's kernel arrival time, RTP timestamp and sequence number and records its
# payload (raw S24BE), to tmpfs, copied to the work share at the end.
# tests/capture_aloop.rs checks the files.
# usage: guest-capture.sh <aes67-binary> <seconds>
BIN=$1; SECS=$2
HERE=$(dirname "$(readlink -f "$0")")
modprobe snd-aloop pcm_substreams=2 || { echo "GUEST: modprobe snd-aloop failed"; exit 3; }
command -v gst-launch-1.0 >/dev/null || { echo "GUEST: no gst-launch-1.0"; exit 5; }
# code pages over 9p stall threads under tcg: run our binary from tmpfs
cp "$BIN" /dev/shm/aes67 && BIN=/dev/shm/aes67
ip link set lo multicast on 2>/dev/null
# receive buffers of seconds (the default 208 KiB cap is ~0.35 s of these streams): a
# receiver stalled by tcg must not drop packets the sender sent
sysctl -qw net.core.rmem_max=33554432 net.core.rmem_default=4194304 2>/dev/null
ip route add 239.0.0.0/8 dev lo 2>/dev/null
export GST_REGISTRY=$AES67_WORK/gst-registry.bin
SUB=0; PLAYERS=""; SENDERS=""; ARGS=""
for S in 99900 100100; do
  for d in 0 1; do
    amixer -q -c Loopback cset iface=PCM,name='PCM Rate Shift 100000',device=$d,subdevice=$SUB "$S" || exit 4
  done
  W=$AES67_WORK/cap-$S; G=239.255.67.$((70 + SUB))
  ARGS="$ARGS $G:5004=/dev/shm/cap-$S.ts"
  # The tone: audiotestsrc (not live: paced by the pipe) into aplay on the skewed
  # subdevice. The players stand in for another machine's sound card: they run
  # SCHED_FIFO above our sender's capture thread, which would otherwise starve them on
  # the guest's two emulated CPUs (a starved player underruns: gaps in the tone).
  chrt -f 80 sh -c "echo \$\$ > $W.tone.pid; exec gst-launch-1.0 -q audiotestsrc wave=sine freq=1000 volume=0.251 \
    ! audio/x-raw,format=S32LE,rate=48000,channels=2 ! fdsink fd=1" \
    | chrt -f 80 aplay -q -D hw:Loopback,0,$SUB -t raw -f S32_LE -c 2 -r 48000 --buffer-time=500000 \
    2> "$W.aplay.err" &
  PLAYERS="$PLAYERS $!"
  SUB=$((SUB + 1))
done
# Bad input: with the tone playing 2 ch at 48 kHz into the cable, the capture side
# refuses 4 channels and 44.1 kHz; each error must name the URL's field.
sleep 2
"$BIN" send "aes67://239.255.67.79:5004?iface=127.0.0.1&ch=4&rate=48000&enc=L24" --ttl 0 \
  --source alsa:hw:Loopback,1,0 --duration 1 > /dev/null 2> "$AES67_WORK/refuse-ch.err"
"$BIN" send "aes67://239.255.67.79:5004?iface=127.0.0.1&ch=2&rate=44100&enc=L24" --ttl 0 \
  --source alsa:hw:Loopback,1,0 --duration 1 > /dev/null 2> "$AES67_WORK/refuse-rate.err"
# the logger runs SCHED_FIFO 50: below our sender (60, 70), above anything else
chrt -f 50 /usr/bin/python3 "$HERE/rtp_arrivals.py" $((SECS + 20)) 127.0.0.1 $ARGS &
LOGGER=$!
sleep 3
SUB=0
for S in 99900 100100; do
  W=$AES67_WORK/cap-$S; G=239.255.67.$((70 + SUB))
  "$BIN" send "aes67://$G:5004?iface=127.0.0.1&ch=2&rate=48000&enc=L24" --ttl 0 \
    --source alsa:hw:Loopback,1,$SUB --packet-time-us 4000 --capture-period-ms 20 \
    --capture-buffer-ms 500 --capture-target-ms 300 --capture-resampler poly \
    --duration "$SECS" --json > "$W.json" 2> "$W.err" &
  SENDERS="$SENDERS $!"
  SUB=$((SUB + 1))
done
rc=0
for P in $SENDERS; do wait $P || rc=$?; done
kill -TERM $LOGGER; wait $LOGGER
for S in 99900 100100; do kill "$(cat "$AES67_WORK/cap-$S.tone.pid")" 2>/dev/null; done
wait $PLAYERS 2>/dev/null
# the recordings were written to tmpfs (9p writes stall under a loaded host) and are
# copied to the work share now
for S in 99900 100100; do
  cp /dev/shm/cap-$S.ts "$AES67_WORK/"; cp /dev/shm/cap-$S.ts.raw "$AES67_WORK/cap-$S.raw"
done
for S in 99900 100100; do
  echo "GUEST: capture at shift $S:"
  tail -2 "$AES67_WORK/cap-$S.err"
  tail -3 "$AES67_WORK/cap-$S.aplay.err" 2>/dev/null
done
echo "GUEST: aes67 send exit $rc"
exit $rc
