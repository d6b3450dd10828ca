#!/usr/bin/env bash
# Peak RSS of one nighfs mount per workload phase (issue 14's memory budget): a SIZE file on a
# fresh s3rver bucket through mount defaults, written, read cold, read at random, then written
# at random (the phase that outgrew the budget before TrimIfBloated), with a remount and
# dropped caches before each cold phase, as scripts/bench.sh does. Prints VmHWM per phase and
# the mount's memory counters (`nighfs status --json`) sampled during the random writes.
#   scripts/rss_phases.sh [--build-dir DIR] [SIZE_MIB]     (SIZE_MIB = 1024 by default)
# Needs root, FUSE, fio, jq and s3rver (scripts/setup.sh); stops what it started by PID on exit.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build
if [[ ${1:-} == --build-dir ]]; then BUILD=$(cd "$2" && pwd); shift 2; fi
SIZE=${1:-1024}
log() { printf '[rss_phases %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
source "$REPO/scripts/lib/processes.sh"
META_BIN=$BUILD/meta/nighfs-meta CLI_BIN=$BUILD/tools/nighfs MOUNT_BIN=$BUILD/mount/mount.nighfs
S3RVER_BIN=${S3RVER_BIN:-$REPO/.tools/node_modules/.bin/s3rver}
[[ -x $S3RVER_BIN ]] || die "s3rver is not installed (scripts/setup.sh)"
T=$(mktemp -d "${TMPDIR:-/tmp}/nighfs-rss.XXXXXX")
MNT=$T/mnt
mkdir -p "$MNT"
S3RVER_PID= META_PID= MOUNT_PID= POLL_PID=
cleanup() {
  trap - EXIT
  [[ -z $POLL_PID ]] || { kill "$POLL_PID" 2>/dev/null || true; wait "$POLL_PID" 2>/dev/null || true; }
  unmount_fuse "$MNT" "$MOUNT_PID"
  stop_daemons "$META_PID" "$S3RVER_PID"
  rm -rf "$T"
}
trap cleanup EXIT
(umask 077; printf 'AWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n' >"$T/creds")
start_s3rver "$T/s3" rss
META_EXTRA_ARGS="--credentials $T/creds" start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume rss \
  --store "s3://rss/v?endpoint=http://127.0.0.1:$S3RVER_PORT&region=us-east-1" >/dev/null
make_token rss "$T/tok"
mount_it() {
  NIGHFS_RUN_DIR=$T "$MOUNT_BIN" "rss@$META_ADDR" "$MNT" -f \
    -o "ca_file=$META_CA,token_file=$T/tok,credentials=$T/creds" >>"$T/mount.log" 2>&1 &
  MOUNT_PID=$!
  for _ in $(seq 100); do is_mounted "$MNT" && return 0; sleep 0.1; done
  die "mount.nighfs did not mount: $(tail -3 "$T/mount.log")"
}
remount() {
  unmount_fuse "$MNT" "$MOUNT_PID"
  echo 3 >/proc/sys/vm/drop_caches
  mount_it
}
hwm() { awk '/VmHWM/ { printf "%d MiB", $2 / 1024 }' "/proc/$MOUNT_PID/status"; }
F=(--ioengine=psync --fallocate=none "--directory=$MNT" --name=seq --filename=seq.dat
   --bs=1M "--size=${SIZE}M" --output-format=terse)
mount_it
fio "${F[@]}" --rw=write --end_fsync=1 >/dev/null
echo "write $SIZE MiB, 1 MiB requests: peak $(hwm)"
remount
fio "${F[@]}" --rw=read --runtime=20 >/dev/null
echo "cold read: peak $(hwm)"
remount
fio "${F[@]}" --rw=randread --bs=4k --runtime=10 --time_based >/dev/null
echo "cold random 4 KiB reads, 10 s: peak $(hwm)"
(while sleep 0.5; do
   NIGHFS_RUN_DIR=$T "$CLI_BIN" status --json "$MNT" 2>/dev/null |
     jq -c '.memory | with_entries(.value |= ((tonumber / 1048576) | floor))' || true
 done) >"$T/memory.log" &
POLL_PID=$!
fio "${F[@]}" --rw=randwrite --bs=4k --runtime=10 --time_based --end_fsync=1 >/dev/null
echo "then random 4 KiB writes, 10 s: peak $(hwm)"
kill "$POLL_PID" 2>/dev/null || true
wait "$POLL_PID" 2>/dev/null || true
POLL_PID=
echo "memory (MiB) sampled during the random writes, distinct samples:"
sort -u "$T/memory.log"
