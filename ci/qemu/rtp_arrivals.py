#!/usr/bin/env python3
"""Logs and records every RTP packet of one or more multicast groups with its
kernel arrival time: ci/qemu/rtp_arrivals.py SECONDS IFACE_IP GROUP:PORT=FILE ...

Each FILE gets one 14-byte record per packet, little-endian: kernel receive time
(SO_TIMESTAMPNS, CLOCK_REALTIME ns, i64), RTP timestamp (u32), sequence number
(u16); FILE.raw gets the packets' payloads in arrival order (the audio, as sent:
no CSRCs or extensions are expected). Ends after SECONDS, or on SIGTERM (the
guest script sends it when the senders have finished), with every packet
already queued read first. The arrival times are the kernel's, so this logger's
own scheduling does not change them; its receive buffers hold seconds. Used by
the qemu capture test (ci/qemu/guest-capture.sh)."""
import select
import signal
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def main():
    secs = float(sys.argv[1])
    iface = sys.argv[2]
    socks = {}
    for spec in sys.argv[3:]:
        dest, path = spec.split("=", 1)
        group, port = dest.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((group, int(port)))
        mreq = socket.inet_aton(group) + socket.inet_aton(iface)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.setblocking(False)
        socks[s] = (open(path, "wb", buffering=1 << 16), open(path + ".raw", "wb", buffering=1 << 20))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + secs
    draining = False
    while True:
        r, _, _ = select.select(list(socks), [], [], 0.5)
        if draining and not r:
            break
        if (stop or time.monotonic() >= end) and not draining:
            # one more pass over whatever is queued, then stop
            draining = True
            r = list(socks)
        for s in r:
            while True:
                try:
                    data, anc, _, _ = s.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                if len(data) < 12:
                    continue
                t = 0
                for lvl, typ, val in anc:
                    if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, ns = struct.unpack("qq", val[:16])
                        t = sec * 1_000_000_000 + ns
                seq, ts = struct.unpack("!HI", data[2:8])
                log, raw = socks[s]
                log.write(struct.pack("<qIH", t, ts, seq))
                raw.write(data[12:])
    for log, raw in socks.values():
        log.close()
        raw.close()


if __name__ == "__main__":
    main()
