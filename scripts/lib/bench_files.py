#!/usr/bin/env python3
"""File workloads of scripts/bench.sh that need one process for many operations.

Each command times itself (the interpreter's start-up is not part of the figure), prints
"SECONDS [more]" on stdout, checks what it did, and exits 1 with the reason on stderr if the
check fails:

  rename DIR N          f0..f{N-1} -> g0..g{N-1}; then DIR must list g0..g{N-1} (and no f*)
  write DIR N SIZE      s0..s{N-1}, SIZE bytes each, content derived from the index; then
                        syncfs(DIR), inside the timing
  read DIR N SIZE [--no-check]
                        reads s0..s{N-1} whole and compares each with what "write" wrote
  tree DIR [LIST]       reads every regular file under DIR; prints "SECONDS FILES DIGEST", the
                        digest of the sorted "sha256  path" lines (written to LIST if given),
                        compared by the caller
"""
import ctypes
import hashlib
import os
import sys
import time


def small_content(i, size):
    block = hashlib.sha256(str(i).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def syncfs(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs " + path)
    finally:
        os.close(fd)


def fail(msg):
    print("bench_files: " + msg, file=sys.stderr)
    sys.exit(1)


def cmd_rename(d, n):
    t0 = time.perf_counter()
    for i in range(n):
        os.rename(f"{d}/f{i}", f"{d}/g{i}")
    took = time.perf_counter() - t0
    names = set(os.listdir(d))
    want = {f"g{i}" for i in range(n)}
    if not want <= names:
        fail(f"after rename, {len(want - names)} of the new names are missing")
    stale = [x for x in names if x.startswith("f") and x[1:].isdigit()]
    if stale:
        fail(f"after rename, {len(stale)} old names are still listed (e.g. {stale[0]})")
    print(f"{took:.6f}")


def cmd_write(d, n, size):
    t0 = time.perf_counter()
    for i in range(n):
        fd = os.open(f"{d}/s{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = small_content(i, size)
            if os.write(fd, data) != len(data):
                fail(f"short write to {d}/s{i}")
        finally:
            os.close(fd)
    syncfs(d)
    print(f"{time.perf_counter() - t0:.6f}")


def cmd_read(d, n, size, check):
    bad = []
    t0 = time.perf_counter()
    for i in range(n):
        with open(f"{d}/s{i}", "rb") as f:
            data = f.read()
        if check and data != small_content(i, size):
            bad.append(i)
        elif len(data) != size:
            bad.append(i)
    took = time.perf_counter() - t0
    if bad:
        fail(f"{len(bad)} of {n} files read back wrong (first: s{bad[0]})")
    print(f"{took:.6f}")


def cmd_tree(d, list_path):
    t0 = time.perf_counter()
    entries = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            entries.append((os.path.relpath(path, d), h.hexdigest()))
    took = time.perf_counter() - t0
    entries.sort()
    lines = "".join(f"{h}  {p}\n" for p, h in entries)
    if list_path:
        with open(list_path, "w") as f:
            f.write(lines)
    digest = hashlib.sha256(lines.encode()).hexdigest()
    print(f"{took:.6f} {len(entries)} {digest}")


def main(argv):
    if len(argv) >= 3 and argv[0] == "rename":
        cmd_rename(argv[1], int(argv[2]))
    elif len(argv) == 4 and argv[0] == "write":
        cmd_write(argv[1], int(argv[2]), int(argv[3]))
    elif len(argv) in (4, 5) and argv[0] == "read":
        cmd_read(argv[1], int(argv[2]), int(argv[3]), argv[4:] != ["--no-check"])
    elif len(argv) in (2, 3) and argv[0] == "tree":
        cmd_tree(argv[1], argv[2] if len(argv) == 3 else None)
    else:
        fail("usage: rename DIR N | write DIR N SIZE | read DIR N SIZE [--no-check] | tree DIR [LIST]")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as e:
        fail(str(e))
