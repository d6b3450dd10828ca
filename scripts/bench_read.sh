#!/bin/bash
# The read rows of scripts/bench.sh (issue 14: ranged reads and the read cache), alone, plus a
# scan-resistance check, on a fresh nighfs-meta and file:// volume under /work set up as
# bench.sh does. Root. Prints "name value" lines.
#   scripts/bench_read.sh [BIN_DIR [nullfs]]
# BIN_DIR: a meson build folder (default REPO/build) or a folder holding copies of
# nighfs-meta, nighfs, mount.nighfs (and nullfs), e.g. to compare two builds in one session.
# "nullfs" also runs the warm sequential and random rows on nullfs.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$REPO/build}; WITH_NULL=${2:-}
if [[ -x $BIN/mount/mount.nighfs ]]; then  # a build folder
  META_BIN=$BIN/meta/nighfs-meta CLI_BIN=$BIN/tools/nighfs MOUNT_BIN=$BIN/mount/mount.nighfs
  NULLFS_BIN=$BIN/tests/bench/nullfs
else
  META_BIN=$BIN/nighfs-meta CLI_BIN=$BIN/nighfs MOUNT_BIN=$BIN/mount.nighfs NULLFS_BIN=$BIN/nullfs
fi
log() { printf '[rr %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
source "$REPO/scripts/lib/processes.sh"
T=$(mktemp -d /work/nighfs-rr.XXXXXX)
META_PID="" MOUNT_PID="" NULL_PID=""
MNT=$T/mnt; NULL_MNT=$T/null
cleanup() {
  unmount_fuse "$MNT" "$MOUNT_PID"
  unmount_fuse "$NULL_MNT" "$NULL_PID"
  [[ -n $META_PID ]] && { kill -TERM "$META_PID" 2>/dev/null || true; stop_pid "$META_PID" 10; }
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$MNT" "$NULL_MNT" "$T/meta" "$T/store" "$T/run"
start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume bench --store "file://$T/store" --block-size 4M >/dev/null
make_token bench "$T/bench.token"
mount_nighfs() {
  NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "bench@$META_ADDR" "$MNT" -f -o "ca_file=$META_CA,token_file=$T/bench.token" >>"$T/mount.log" 2>&1 &
  MOUNT_PID=$!
  for ((i = 0; i < 300; i++)); do is_mounted "$MNT" && return 0; sleep 0.1; done
  die "no mount"
}
remount() { sync; echo 3 >/proc/sys/vm/drop_caches; unmount_fuse "$MNT" "$MOUNT_PID"; MOUNT_PID=""; mount_nighfs; }
FIO=(fio --ioengine=psync --fallocate=none --group_reporting --output-format=json)
bw() { jq '.jobs[0].read.bw_bytes / 1e6 | floor'; }
iops() { jq '.jobs[0].read.iops | floor'; }
mount_nighfs
D=$MNT
"${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=write --bs=1M --size=1024M --runtime=60 --end_fsync=1 >/dev/null
"${FIO[@]}" --directory=$D --name=hot --filename=hot.dat --rw=write --bs=1M --size=256M --runtime=60 --end_fsync=1 >/dev/null
remount
echo "seq_read_cold_MBps $("${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=read --bs=1M --size=1024M --runtime=20 | bw)"
echo "seq_read_warm_MBps $("${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=read --bs=1M --size=1024M --runtime=20 --invalidate=0 | bw)"
remount
echo "rand_read_4k_cold_IOPS $("${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=randread --bs=4k --size=1024M --runtime=10 --time_based | iops)"
# Scan resistance: hot.dat read twice (two opens), then a 1 GiB scan, then random 4 KiB
# reads of hot.dat with the kernel page cache dropped (only the mount's cache can serve them).
remount
cat $D/hot.dat >/dev/null; cat $D/hot.dat >/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "hot_rand_4k_before_scan_IOPS $("${FIO[@]}" --directory=$D --name=hot --filename=hot.dat --rw=randread --bs=4k --size=256M --runtime=5 --time_based --direct=1 | iops)"
cat $D/seq.dat >/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "hot_rand_4k_after_scan_IOPS $("${FIO[@]}" --directory=$D --name=hot --filename=hot.dat --rw=randread --bs=4k --size=256M --runtime=5 --time_based --direct=1 | iops)"
if [[ -n $WITH_NULL ]]; then
  "$NULLFS_BIN" "$NULL_MNT" >"$T/nullfs.log" 2>&1 &
  NULL_PID=$!
  for ((i = 0; i < 100; i++)); do is_mounted "$NULL_MNT" && break; sleep 0.1; done
  D=$NULL_MNT
  "${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=write --bs=1M --size=1024M --runtime=20 --end_fsync=1 >/dev/null
  echo "nullfs_seq_read_warm_MBps $("${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=read --bs=1M --size=1024M --runtime=20 --invalidate=0 | bw)"
  echo "nullfs_rand_read_4k_IOPS $("${FIO[@]}" --directory=$D --name=seq --filename=seq.dat --rw=randread --bs=4k --size=1024M --runtime=10 --time_based | iops)"
fi
