#!/usr/bin/env bash
# Memory soak of a nighfs mount: writes, reads back (verifying every byte) and deletes files for
# --duration seconds in several parallel streams of big and small files, samples the mount's
# RSS, and fails if its peak (VmHWM) exceeds cache + writeback + 128 MiB (issue 10, item 4).
#
# Self-contained like scripts/bench.sh: starts nighfs-meta on a free loopback port and a mount
# of a volume on a file:// store, all in a scratch folder; everything it started is unmounted
# and stopped by PID on exit, also on failure or Ctrl-C. Not part of the fast test suite.
#
#   --dd N       instead of the mixed load, run N parallel `dd` of --dd-mib MiB each (the
#                "4 x 1 GiB at once" figure: --dd 4 --dd-mib 1024) and report the peak RSS.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/soak.sh [options]
  --build-dir DIR   meson build folder (default: $NIGHFS_BUILD_DIR, else REPO/build)
  --work-dir DIR    parent of the scratch folder (default: /work if it exists, else /tmp)
  --duration S      seconds of load (default 600)
  --streams N       parallel writer/reader streams (default 4)
  --cache MIB       cache_size of the mount (default 512)
  --writeback MIB   writeback_limit of the mount (default 256)
  --dd N            run N parallel dd writers instead of the mixed load
  --dd-mib MIB      bytes per dd writer (default 1024)
  --keep            leave the scratch folder in place
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
WORK_PARENT=/work
[[ -d $WORK_PARENT ]] || WORK_PARENT=/tmp
DURATION=600
STREAMS=4
CACHE_MIB=512
WB_MIB=256
DD=0
DD_MIB=1024
KEEP=0
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --work-dir) WORK_PARENT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --cache) CACHE_MIB=$2; shift 2 ;;
    --writeback) WB_MIB=$2; shift 2 ;;
    --dd) DD=$2; shift 2 ;;
    --dd-mib) DD_MIB=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$DURATION" "$STREAMS" "$CACHE_MIB" "$WB_MIB" "$DD_MIB"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: '$n' is not a positive integer" >&2; exit 2; }
done

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts)"

T=""
META_PID=""
MOUNT_PID=""
SAMPLER_PID=""
MNT=""
LOAD_PIDS=()

# is_mounted, stop_pid, unmount_fuse, start_meta, make_token
source "$REPO/scripts/lib/processes.sh"

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${LOAD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [[ -n $SAMPLER_PID ]] && { kill -TERM "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  unmount_fuse "$MNT" "$MOUNT_PID"
  [[ -n $META_PID ]] && { kill -TERM "$META_PID" 2>/dev/null || true; stop_pid "$META_PID" 10; }
  if [[ -n $T && -d $T ]]; then
    if ((KEEP)) || ((rc != 0)); then
      rm -rf "$T/store"
      log "logs kept in $T"
    else
      rm -rf "$T"
    fi
  fi
  exit "$rc"
}
on_exit cleanup

ninja -C "$BUILD_DIR" -j2 meta/nighfs-meta tools/nighfs mount/mount.nighfs >/dev/null
META_BIN=$BUILD_DIR/meta/nighfs-meta
CLI_BIN=$BUILD_DIR/tools/nighfs
MOUNT_BIN=$BUILD_DIR/mount/mount.nighfs

T=$(mktemp -d "$WORK_PARENT/nighfs-soak.XXXXXX")
MNT=$T/mnt
mkdir -p "$MNT" "$T/meta" "$T/store" "$T/run"

start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume soak --store "file://$T/store" \
  --block-size 4M >/dev/null
make_token soak "$T/soak.token"

NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "soak@$META_ADDR" "$MNT" -f \
  -o "ca_file=$META_CA,cache_size=$CACHE_MIB,writeback_limit=$WB_MIB,token_file=$T/soak.token" >>"$T/mount.log" 2>&1 &
MOUNT_PID=$!
for ((i = 0; i < 300; i++)); do
  is_mounted "$MNT" && break
  kill -0 "$MOUNT_PID" 2>/dev/null || die "mount.nighfs exited: $(tail -5 "$T/mount.log")"
  sleep 0.1
done
is_mounted "$MNT" || die "mount.nighfs did not mount"

LIMIT_KIB=$(((CACHE_MIB + WB_MIB + 128) * 1024))
kib_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Samples RSS every second into rss.log (time, VmRSS KiB, VmHWM KiB).
(
  while kill -0 "$MOUNT_PID" 2>/dev/null; do
    echo "$(date +%s) $(kib_of "$MOUNT_PID" VmRSS) $(kib_of "$MOUNT_PID" VmHWM)" >>"$T/rss.log"
    sleep 1
  done
) &
SAMPLER_PID=$!

# One stream: until the deadline, write a big file (64-256 MiB) and a burst of small files
# (4-200 KiB) from a seeded generator, read each back and compare, delete them.
stream() {
  local id=$1 deadline=$2 n=0 dir=$MNT/s$1 src=$T/src$1
  mkdir -p "$dir"
  while (($(date +%s) < deadline)); do
    n=$((n + 1))
    local mib=$((64 + (RANDOM % 4) * 64))
    # Incompressible content; the local copy is what the mount's copy is compared with.
    head -c $((mib << 20)) /dev/urandom >"$src"
    cp "$src" "$dir/big"
    cmp "$src" "$dir/big" || { log "stream $id: big file $n differs"; return 1; }
    local k
    for ((k = 0; k < 50; k++)); do
      head -c $((4096 + RANDOM * 6)) "$src" >"$dir/small$k"
    done
    for ((k = 0; k < 50; k++)); do
      cmp -n "$(stat -c %s "$dir/small$k")" "$src" "$dir/small$k" ||
        { log "stream $id: small file $k differs"; return 1; }
    done
    rm -f "$dir"/small* "$dir/big"
  done
  rm -f "$src"
}

START=$(date +%s)
if ((DD > 0)); then
  log "dd: $DD x $DD_MIB MiB in parallel"
  for ((s = 0; s < DD; s++)); do
    dd if=/dev/zero of="$MNT/dd$s" bs=1M count="$DD_MIB" status=none &
    LOAD_PIDS+=($!)
  done
else
  log "soak: $STREAMS streams for $DURATION s"
  for ((s = 0; s < STREAMS; s++)); do
    stream "$s" $((START + DURATION)) &
    LOAD_PIDS+=($!)
  done
fi
FAILED=0
for p in "${LOAD_PIDS[@]}"; do wait "$p" || FAILED=1; done
LOAD_PIDS=()
((FAILED == 0)) || die "a load stream failed (see above)"
((DD > 0)) && rm -f "$MNT"/dd*
sleep 3  # a few idle samples: memory given back?

HWM=$(kib_of "$MOUNT_PID" VmHWM)
IDLE=$(kib_of "$MOUNT_PID" VmRSS)
log "load took $(($(date +%s) - START)) s"
log "mount.nighfs peak RSS (VmHWM): $((HWM / 1024)) MiB; idle RSS after: $((IDLE / 1024)) MiB;" \
  "limit: $((LIMIT_KIB / 1024)) MiB (cache $CACHE_MIB + writeback $WB_MIB + 128)"
STATUS=$(ls "$T/run"/*.json 2>/dev/null | head -1)
[[ -n $STATUS ]] && log "status memory: $(jq -c '.memory // {}' "$STATUS" 2>/dev/null)"
((HWM <= LIMIT_KIB)) || die "peak RSS $((HWM / 1024)) MiB is over the limit $((LIMIT_KIB / 1024)) MiB"
log "ok"
