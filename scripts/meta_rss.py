#!/usr/bin/env python3
"""Memory of nighfs-meta under slow uploads (issue 10, item 5).

Starts NIGHFS_META (a nighfs-meta binary) on a free loopback port with a fresh state folder,
opens N connections that each announce a 64 MiB request body, send 60 MiB of it and stall,
then prints the server's resident size before and after. Unbounded, RSS grows by everything
received; with the body budget (--max-buffered-mib, default 128) by at most the budget.

  scripts/meta_rss.py build/meta/nighfs-meta [N] [extra nighfs-meta flags...]
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BODY = 64 << 20
SENT = 60 << 20
CHUNK = b"m" * (1 << 20)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


def sender(port, sent):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)  # the server stopped reading: stall here
    try:
        s.sendall(b"POST /nighfs.meta.v1.MetaService/Lookup HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/proto\r\nContent-Length: %d\r\n\r\n" % BODY)
        n = 0
        while n < SENT:
            s.sendall(CHUNK)
            n += len(CHUNK)
            sent.append(len(CHUNK))
    except OSError:
        pass
    return s


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    extra = sys.argv[3:]
    with tempfile.TemporaryDirectory() as state:
        port_file = os.path.join(state, "port")
        proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--state-dir", state,
                                 "--port-file", port_file, "--log-level", "warning",
                                 # Raw HTTP senders: TLS would only add noise to the figure.
                                 "--insecure-plaintext"] + extra)
        try:
            for _ in range(200):
                if os.path.exists(port_file):
                    break
                time.sleep(0.05)
            port = int(open(port_file).read())
            time.sleep(0.5)
            before = rss_mib(proc.pid)
            sent, socks, threads = [], [], []
            for _ in range(n):
                t = threading.Thread(target=lambda: socks.append(sender(port, sent)))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            time.sleep(0.5)
            after = rss_mib(proc.pid)
            print(f"{os.path.basename(binary)}: RSS {before} MiB idle, {after} MiB with {n} "
                  f"stalled 64 MiB uploads ({sum(sent) >> 20} MiB sent)")
            for s in socks:
                s.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
