#!/usr/bin/env bash
# Creates/s, stats/s and unlinks/s on a fresh nighfs mount, as root and as an unprivileged user
# (whose requests carry supplementary groups and get the server's permission checks). Every
# stat goes to the server (attr_timeout=0, entry_timeout=0). Also prints the CPU time
# nighfs-meta spent per operation (from /proc/PID/stat). Compare two builds:
#   scripts/create_stat_bench.sh BIN_DIR [N]
# BIN_DIR holds nighfs-meta, mount.nighfs and nighfs (e.g. build/meta, build/mount and
# build/tools copied together). With JOBS=J (> 1), a third run has J processes at once, N files
# each (concurrent writes: group commit). More nighfs-meta flags in $META_EXTRA_ARGS. With STRACE=FILE,
# `strace -c -f` counts nighfs-meta's futex and sync calls over both runs into FILE; with
# PERF=FILE, `perf record -g` samples nighfs-meta over both runs into FILE. Needs root
# and FUSE; stops what it started by PID on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$1" && pwd)
N=${2:-1000}
META_BIN=$BIN/nighfs-meta
CLI_BIN=$BIN/nighfs
log() { printf '[create_stat_bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
# is_mounted, stop_pid, unmount_fuse, start_meta, make_token
source "$REPO/scripts/lib/processes.sh"

T=$(mktemp -d /tmp/nighfs-bench.XXXXXX)
chmod 755 "$T"
META_PID=; MOUNT_PID=; STRACE_PID=; PERF_PID=
cleanup() {
  [[ -n $STRACE_PID ]] && kill -INT "$STRACE_PID" 2>/dev/null && wait "$STRACE_PID" || true
  [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" || true
  unmount_fuse "$T/mnt" "$MOUNT_PID"
  if [[ -n $META_PID ]]; then
    kill -TERM "$META_PID" 2>/dev/null || true
    stop_pid "$META_PID" 10
  fi
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/blocks" "$T/mnt"
start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume bench \
  --store "file://$T/blocks" >/dev/null
make_token bench "$T/bench.token"
NIGHFS_RUN_DIR=$T/run "$BIN/mount.nighfs" "bench@$META_ADDR" "$T/mnt" -f \
  -o "ca_file=$META_CA,token_file=$T/bench.token,attr_timeout=0,entry_timeout=0" \
  >"$T/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do is_mounted "$T/mnt" && break; sleep 0.1; done
is_mounted "$T/mnt" || die "mount.nighfs did not mount: $(tail -5 "$T/mount.log")"
mkdir -m 1777 "$T/mnt/d"
if [[ -n ${STRACE:-} ]]; then
  strace -c -f -e trace=futex,fsync,fdatasync -o "$STRACE" -p "$META_PID" 2>/dev/null &
  STRACE_PID=$!
  sleep 1  # attached to every thread
fi
if [[ -n ${PERF:-} ]]; then
  perf record -q -g -o "$PERF" -p "$META_PID" 2>/dev/null &
  PERF_PID=$!
  sleep 1
fi
run() {  # uid label jobs: `jobs` processes at once, N files each, in folders of their own
  setpriv --reuid="$1" --regid="$1" --groups=100,"$1" /usr/bin/python3 - "$T/mnt/d/$1.$3" "$N" \
    "$2" "$META_PID" "$3" <<'PY'
import multiprocessing as mp, os, sys, time
d, n, who, pid, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def cpu():  # utime + stime of nighfs-meta, in seconds
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
os.mkdir(d)
phases = [lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)),
          os.stat, os.unlink]
def worker(j, barrier):
    names = [f"{d}/{j}/f{i}" for i in range(n)]
    os.mkdir(f"{d}/{j}")
    for fn in phases:
        barrier.wait()
        for p in names: fn(p)
        barrier.wait()
barrier = mp.Barrier(jobs + 1)
procs = [mp.Process(target=worker, args=(j, barrier)) for j in range(jobs)]
for p in procs: p.start()
rates, cpu_us = [], []
for _ in phases:
    barrier.wait()  # all workers start the phase together...
    c, t = cpu(), time.monotonic()
    barrier.wait()  # ...and it ends when the last one is done
    rates.append(jobs * n / (time.monotonic() - t))
    cpu_us.append((cpu() - c) / (jobs * n) * 1e6)
for p in procs: p.join()
print(f"{who:8} creates/s {rates[0]:7.0f}   stats/s {rates[1]:7.0f}   unlinks/s {rates[2]:7.0f}   "
      f"nighfs-meta CPU us per create/stat/unlink {cpu_us[0]:.0f}/{cpu_us[1]:.0f}/{cpu_us[2]:.0f}")
PY
}
run 0 root 1
run 1001 user 1
OPS=$((6 * N))
if ((${JOBS:-1} > 1)); then
  run 0 "root x$JOBS" "$JOBS"
  OPS=$((OPS + 3 * N * JOBS))
fi
if [[ -n $STRACE_PID ]]; then
  kill -INT "$STRACE_PID"; wait "$STRACE_PID" || true; STRACE_PID=
  log "strace of nighfs-meta over $OPS operations (creates, stats, unlinks): $STRACE"
fi
if [[ -n $PERF_PID ]]; then
  kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=
  log "perf samples of nighfs-meta over $OPS operations: perf report -i $PERF"
fi
