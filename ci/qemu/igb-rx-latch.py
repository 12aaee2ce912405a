#!/usr/bin/env python3
"""Test-rig shim for qemu 10's igb emulation (guest side, root; not part of the product).

qemu's igb latches one RX PTP timestamp (TSYNCRXCTL.VALID) and frees the latch only when
RXSATRH is read; Linux's igb driver (82576 path) reads RXSTMPL/RXSTMPH and never RXSATRH,
so after the first stamped frame no other is stamped. qemu also stamps only the one
messageType in TSYNCRXCFG[15:8] (the driver writes 0 there: Sync) where the real 82576
in EVENT_V2 mode stamps every event message. This shim, for each NIC given as
PCI_ADDR[=MSGTYPE]: sets TSYNCRXCFG[15:8] = MSGTYPE when given (e.g. 1 = Delay_Req on the
grandmaster's NIC), and frees the latch when it has been VALID for HOLD_MS (the driver has
read the stamp by then; the next PTP event frame on that NIC comes >= 100 ms later).
Usage: igb-rx-latch.py HOLD_MS PCI_ADDR[=MSGTYPE]...  Runs until killed.
"""
import ctypes, mmap, os, signal, sys, time

TSYNCRXCTL, TSYNCRXCFG, RXSATRH = 0xB620, 0x5F50, 0xB630
hold = float(sys.argv[1]) / 1e3
nics = []
for a in sys.argv[2:]:
    addr, _, mt = a.partition("=")
    fd = os.open(f"/sys/bus/pci/devices/{addr}/resource0", os.O_RDWR | os.O_SYNC)
    m = mmap.mmap(fd, 0x10000, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    nics.append([addr, m, int(mt) if mt else None, None, 0])
# One aligned 32-bit load/store per access (MMIO registers).
def rd(m, o): return ctypes.c_uint32.from_buffer(m, o).value
def wr(m, o, v): ctypes.c_uint32.from_buffer(m, o).value = v
print("igb-rx-latch:", [(n[0], n[2]) for n in nics], flush=True)
def done(*_):
    print("igb-rx-latch: latches freed", [(n[0], n[4]) for n in nics], flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    now = time.monotonic()
    for n in nics:
        addr, m, mt, since, freed = n
        if mt is not None:
            cfg = rd(m, TSYNCRXCFG)
            if (cfg >> 8) & 0xFF != mt:
                wr(m, TSYNCRXCFG, (cfg & ~0xFF00) | (mt << 8))
        if rd(m, TSYNCRXCTL) & 1:
            if since is None:
                n[3] = now
            elif now - since >= hold:
                rd(m, RXSATRH)
                n[3] = None
                n[4] += 1
        else:
            n[3] = None
    time.sleep(0.002)
