#!/usr/bin/env bash
# Creates/s, stats/s and unlinks/s on a fresh nighfs mount, as root and as an unprivileged user
# (whose requests carry supplementary groups and get the server's permission checks). Every
# stat goes to the server (attr_timeout=0, entry_timeout=0). Compare two builds:
#   scripts/create_stat_bench.sh BIN_DIR [N]
# BIN_DIR holds nighfs-meta, mount.nighfs and nighfs (e.g. build/meta, build/mount and
# build/tools copied together). Needs root and FUSE; stops what it started by PID on exit.
set -euo pipefail
BIN=$(cd "$1" && pwd)
N=${2:-1000}
WORK=$(mktemp -d /tmp/nighfs-bench.XXXXXX)
chmod 755 "$WORK"
META_PID=; MOUNT_PID=
cleanup() {
  if mountpoint -q "$WORK/mnt" 2>/dev/null; then fusermount3 -u "$WORK/mnt" || umount -l "$WORK/mnt"; fi
  [[ -n $MOUNT_PID ]] && wait "$MOUNT_PID" 2>/dev/null || true
  [[ -n $META_PID ]] && kill "$META_PID" 2>/dev/null && wait "$META_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/state" "$WORK/blocks" "$WORK/mnt"
"$BIN/nighfs-meta" --listen "127.0.0.1:$PORT" --state-dir "$WORK/state" >"$WORK/meta.log" 2>&1 &
META_PID=$!
for _ in $(seq 100); do "$BIN/nighfs" --meta "127.0.0.1:$PORT" configure list volumes >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/nighfs" --meta "127.0.0.1:$PORT" configure create volume bench --store "file://$WORK/blocks" >/dev/null
"$BIN/mount.nighfs" "bench@127.0.0.1:$PORT" "$WORK/mnt" -f -o attr_timeout=0,entry_timeout=0 >"$WORK/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do mountpoint -q "$WORK/mnt" && break; sleep 0.1; done
mkdir -m 1777 "$WORK/mnt/d"
run() {  # user label
  setpriv --reuid="$1" --regid="$1" --groups=100,"$1" /usr/bin/python3 - "$WORK/mnt/d/$1" "$N" "$2" <<'PY'
import os, sys, time
d, n, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.mkdir(d)
names = [f"{d}/f{i}" for i in range(n)]
def timed(fn):
    t = time.monotonic()
    for p in names: fn(p)
    return n / (time.monotonic() - t)
c = timed(lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)))
s = timed(os.stat)
u = timed(os.unlink)
print(f"{who:6} creates/s {c:7.0f}   stats/s {s:7.0f}   unlinks/s {u:7.0f}")
PY
}
run 0 root
run 1001 user
