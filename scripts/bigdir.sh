#!/usr/bin/env bash
# One big folder (issue 14): N empty files created in one folder of a fresh nighfs mount
# (file:// store, TLS, as users run it), then `ls -f` (names only), `ls -l` with the kernel's
# attribute cache cold (every entry stat'ed), `find -type f | wc -l`, and `rm -rf`; each timed,
# with the peak RSS of the mount and of nighfs-meta. The same on a local-disk folder for scale.
#   scripts/bigdir.sh [--build-dir DIR] [N]      (N = 100000 by default)
# Needs root and FUSE; stops what it started by PID on exit.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO/build
if [[ ${1:-} == --build-dir ]]; then BUILD=$(cd "$2" && pwd); shift 2; fi
N=${1:-100000}
log() { printf '[bigdir %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
source "$REPO/scripts/lib/processes.sh"
META_BIN=$BUILD/meta/nighfs-meta CLI_BIN=$BUILD/tools/nighfs MOUNT_BIN=$BUILD/mount/mount.nighfs
scratch_with_cleanup bigdir
mkdir -p "$T/meta" "$T/store" "$MNT" "$T/run" "$T/local"
start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume big \
  --store "file://$T/store" >/dev/null
make_token big "$T/tok"
NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "big@$META_ADDR" "$MNT" -f \
  -o "token_file=$T/tok,ca_file=$META_CA" >"$T/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do is_mounted "$MNT" && break; sleep 0.1; done
is_mounted "$MNT" || die "mount.nighfs did not mount: $(tail -3 "$T/mount.log")"

hwm() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
timed() {  # label command...: prints "label s"
  local label=$1 t0=$EPOCHREALTIME
  shift
  "$@" >/dev/null
  awk -v l="$label" -v a="$t0" -v b="$EPOCHREALTIME" -v n="$N" \
    'BEGIN { printf "%-9s %7.2f s  %7.0f entries/s\n", l, b - a, n / (b - a) }'
}
run() {  # folder
  local d=$1/big
  mkdir "$d"
  timed create python3 -c "import os
for i in range($N): os.close(os.open('$d/f%06d' % i, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))"
  sleep 1.2  # the kernel's attribute and entry caches (1 s) expire
  timed "ls -f" ls -f "$d"
  sleep 1.2
  timed "ls -l" ls -l "$d"
  sleep 1.2
  timed find find "$d" -type f
  [[ $(find "$d" -type f | wc -l) -eq $N ]] || die "find does not see $N files in $d"
  timed "rm -rf" rm -rf "$d"
}
log "$N files on a local disk ($T/local)"
echo "local disk:"
run "$T/local"
log "$N files on nighfs"
echo "nighfs (file:// store):"
run "$MNT"
echo "peak RSS: mount.nighfs $(hwm "$MOUNT_PID") MiB, nighfs-meta $(hwm "$META_PID") MiB"
