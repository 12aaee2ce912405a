#!/usr/bin/env bash
# ci/qemu/runvm.sh <guest-script> [args...]: boot the Debian 6.12 kernel under qemu (tcg)
# with the host root read-only over 9p and run one guest script; exit with its exit code.
# env: MEM (MiB, default 768), SMP (default 2), TIMEOUT (s, default 900), LOG (serial log),
#      WORK (read-write share dir, default a fresh temp dir), AES67_QEMU_CACHE (see setup.sh),
#      QEMU_EXTRA (more qemu arguments, split on spaces: e.g. NICs, see run-ptp-hw.sh),
#      KAPPEND (more kernel command line, e.g. iomem=relaxed).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TEST=$(readlink -f "$1"); shift
ARGS=$(IFS=,; echo "$*")
out=$("$HERE/setup.sh") || { echo "runvm: setup failed" >&2; exit 97; }
KPKG=$(echo "$out" | sed -n 's/^KPKG=//p'); INITRD=$(echo "$out" | sed -n 's/^INITRD=//p')
KVER=$(ls "$KPKG/lib/modules")
WORK=${WORK:-$(mktemp -d /tmp/aes67-qemu.XXXXXX)}
mkdir -p "$WORK"; rm -f "$WORK/rc"
LOG=${LOG:-$WORK/serial.log}
timeout --foreground "${TIMEOUT:-900}" qemu-system-x86_64 \
  -machine q35,accel=tcg -cpu max -smp "${SMP:-2}" -m "${MEM:-768}" \
  -nodefaults -no-user-config -display none -no-reboot -serial stdio -monitor none \
  -kernel "$KPKG/boot/vmlinuz-$KVER" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=4 panic=-1 aes67.work=$WORK aes67.init=$HERE/guest-init.sh aes67.test=$TEST aes67.args=$ARGS ${KAPPEND:-}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$KPKG/lib/modules",mount_tag=modules,security_model=none,readonly=on \
  -virtfs local,path="$WORK",mount_tag=work,security_model=none \
  ${QEMU_EXTRA:-} </dev/null 2>&1 | tee "$LOG"
rc=$(cat "$WORK/rc" 2>/dev/null || echo 99)
echo "runvm: guest exit $rc (log $LOG)"
exit "$rc"
