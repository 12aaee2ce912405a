#!/bin/sh
# Guest script (qemu igb rig, see docs/ptp.md): exercises the PTP hardware
# path on an emulated igb NIC with a PHC. Run on the host with the qemu rig:
#   runvm.sh ci/ptp_qemu_phc_guest.sh $(nic_pair_args igb)
# BIN defaults to the debug ptp_harness of this worktree (host root is the guest root).
BIN=${BIN:-$(dirname "$0")/../target/debug/ptp_harness}
modprobe igb || exit 1
sleep 2
ip link set eth0 up
ip addr add 10.99.0.1/24 dev eth0
ip route add 224.0.0.0/4 dev eth0
sleep 4
command -v ethtool >/dev/null && ethtool -T eth0
"$BIN" hwcheck --iface eth0
