#!/usr/bin/env bash
# [LATCH=0] [BIN=ptp_harness] ci/qemu/run-ptp-hw.sh [seconds per phase, default 60]: issue 16 Proof 3, PTP with hardware
# timestamps end to end in qemu (tcg). One guest, two emulated igb NICs (each on its own
# PCIe root port, joined by qemu hub 0). ptp4l -2 -H (Layer 2, hardware stamps, free-running
# PHC) is grandmaster on the first; on the second, in turn: our slave (ptp_harness hwtruth:
# `--transport l2 --timestamping hardware`, in-process), then a ptp4l -2 -H free_running slave.
# Truth is the grandmaster's PHC read directly in the same guest (guest-ptp-hw.sh). qemu's igb
# frees its RX-stamp latch only on an RXSATRH read, which Linux never does, and stamps one
# messageType only: ci/qemu/igb-rx-latch.py works around both in the guest (LATCH=0: without). Needs
# target/release/ptp_harness built (cargo build --release -p aes67-harness). Serialised with
# the other qemu runs by flock /tmp/qemu.lock. Exit code: the guest's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:-60}
nic() {
  echo "-netdev hubport,id=n0,hubid=0 -netdev hubport,id=n1,hubid=0 \
 -device pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1,addr=0x10 \
 -device pcie-root-port,id=rp1,bus=pcie.0,chassis=2,slot=2,addr=0x11 \
 -device igb,bus=rp0,netdev=n0,mac=52:54:00:12:34:01 -device igb,bus=rp1,netdev=n1,mac=52:54:00:12:34:02"
}
export QEMU_EXTRA="$(nic)"
# The latch shim maps the igb's BAR0 through sysfs while the driver holds it: Debian's
# CONFIG_IO_STRICT_DEVMEM refuses that (EINVAL) unless iomem=relaxed.
export KAPPEND="iomem=relaxed"
export TIMEOUT=${TIMEOUT:-$(( 300 + 3 * SECS ))}
exec flock /tmp/qemu.lock "$HERE/runvm.sh" "$HERE/guest-ptp-hw.sh" "$SECS" "${LATCH:-1}" "${BIN:-}"
