#!/bin/sh
# Guest half of ci/qemu/run-ptp-hw.sh (issue 16 Proof 3): two igb NICs joined by a qemu hub.
#  phase 0: ptp4l -2 -H grandmaster on NIC 1 (masterOnly, free_running: its PHC is never
#           adjusted, so it is the truth);
#  phase 1: our slave on NIC 2 (ptp_harness hwtruth: Layer 2, hardware timestamps), its clock
#           and the grandmaster's PHC read at one CLOCK_MONOTONIC_RAW instant each second;
#  phase 2: a ptp4l -2 -H free_running slave on NIC 2; its raw master_offset (pmc) against the
#           true PHC2 - PHC1 (phc_ctl cmp of each against CLOCK_REALTIME, before and after).
# args: seconds per phase; 1 (default) or 0: with or without ci/qemu/igb-rx-latch.py;
#       the ptp_harness binary (default target/release/ptp_harness of this tree). Results: $AES67_WORK/{hwtruth.log,gm.log,slave.log,ptp4l_slave.txt}.
S=${1:-60}
LATCH=${2:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${3:-$ROOT/target/release/ptp_harness}
W=${AES67_WORK:-/tmp}
modprobe igb || exit 1
sleep 3
set --
for d in /sys/class/net/*; do
  [ "$(basename "$(readlink -f "$d/device/driver" 2>/dev/null)")" = igb ] && set -- "$@" "$(basename "$d")"
done
[ $# -ge 2 ] || { echo "GUEST: need two igb NICs, have: $*"; exit 1; }
GM=$1; SL=$2
phc() { basename "$(ls -d /sys/class/net/$1/device/ptp/ptp* 2>/dev/null | head -1)" | tr -dc 0-9; }
P1=$(phc "$GM"); P2=$(phc "$SL")
echo "GUEST: grandmaster $GM /dev/ptp$P1, slave $SL /dev/ptp$P2"
ip link set "$GM" up; ip link set "$SL" up
sleep 4
cat > /tmp/gm.conf <<C
[global]
domainNumber 0
priority1 1
clockClass 6
time_stamping hardware
delay_mechanism E2E
network_transport L2
logSyncInterval -3
masterOnly 1
free_running 1
tx_timestamp_timeout 100
C
ptp4l -i "$GM" -f /tmp/gm.conf -m > "$W/gm.log" 2>&1 &
GMPID=$!
sleep 2
# LATCH=0: without the qemu igb RX-latch shim (then no RX hardware stamp after the first).
if [ "$LATCH" = 1 ]; then
  pci() { basename "$(readlink -f /sys/class/net/$1/device)"; }
  python3 "$ROOT/ci/qemu/igb-rx-latch.py" 20 "$(pci "$GM")=1" "$(pci "$SL")" > "$W/latch.log" 2>&1 &
  LATCHPID=$!
fi
sleep 4
echo "GUEST: phase 1, our slave (${S} s)"
"$BIN" hwtruth --iface "$SL" --gm-phc "$P1" --seconds "$S" --settle-s 5 > "$W/hwtruth.log" 2>&1
echo "GUEST: hwtruth exit $?"
grep -E "HWSUMMARY|hwtruth:" "$W/hwtruth.log"
tail -n 3 "$W/hwtruth.log" | grep HWTRUTH
echo "GUEST: phase 2, ptp4l -2 -H free_running slave (${S} s)"
cat > /tmp/sl.conf <<C
[global]
domainNumber 0
time_stamping hardware
delay_mechanism E2E
network_transport L2
slaveOnly 1
free_running 1
tx_timestamp_timeout 100
uds_address /tmp/sl.uds
C
cmp() { phc_ctl "/dev/ptp$1" cmp 2>/dev/null | sed -n 's/.*is \(-\{0,1\}[0-9]*\)ns.*/\1/p'; }
# phc_ctl cmp prints CLOCK_REALTIME - PHC (linuxptp's sysoff): d = PHC1 - PHC2, truth = -d.
d0=$(( $(cmp "$P2") - $(cmp "$P1") ))
ptp4l -i "$SL" -f /tmp/sl.conf -m > "$W/slave.log" 2>&1 &
SLPID=$!
: > "$W/ptp4l_slave.txt"
i=0
while [ $i -lt "$S" ]; do
  sleep 1; i=$((i + 1))
  off=$(pmc -u -b 0 -s /tmp/sl.uds -i /tmp/pmc.sock 'GET TIME_STATUS_NP' 2>/dev/null | awk '/master_offset/ {print $2}')
  [ -n "$off" ] && echo "$i $off" >> "$W/ptp4l_slave.txt"
done
d1=$(( $(cmp "$P2") - $(cmp "$P1") ))
kill $SLPID $GMPID ${LATCHPID:-} 2>/dev/null; wait 2>/dev/null
cat "$W/latch.log"
echo "GUEST: true PHC$P2 - PHC$P1: $((-d0)) ns before, $((-d1)) ns after"
awk -v d0="$d0" -v d1="$d1" -v s="$S" '
  $1 > 10 && $2 != 0 { t = -(d0 + (d1 - d0) * $1 / s); e = $2 - t; n++; ss += e * e; sm += e; if (e < 0) e = -e; if (e > mx) mx = e }
  END { if (n) printf "PTP4L_SUMMARY {\"samples\":%d,\"rms_ns\":%.0f,\"max_ns\":%.0f,\"mean_ns\":%.0f}\n", n, sqrt(ss / n), mx, sm / n; else print "PTP4L_SUMMARY {\"samples\":0}" }' "$W/ptp4l_slave.txt"
grep -c "rx timestamp\|timed out\|fault" "$W/slave.log" | sed 's/^/GUEST: ptp4l slave warnings: /'
tail -n 5 "$W/slave.log"
grep -q '"samples":0' "$W/hwtruth.log" && exit 3
exit 0
