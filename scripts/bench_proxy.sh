#!/usr/bin/env bash
# Benchmarks nighfs-proxy (issue 12) against a simulated WAN: s3rver behind nighfs-relay
# (tests/relay) adding a round-trip time and a bandwidth cap, nighfs-meta, nighfs-proxy and
# two mounts on loopback, one through the proxy and one direct to the store. Side by side:
# a sequential write with fsync, small files created, a read cached in the proxy vs a read from
# the WAN store (which also proves every byte written through the proxy is in the store after
# the flush), peak RSS; then cached block PUT/GET throughput against the proxy with 1, 8 and 32
# streams beside raw loopback TCP (tests/relay/http_bench.cc). Prints markdown tables.
#
# Self-contained: builds what it needs, runs in a scratch folder, stops and unmounts what it
# started (by PID) on exit, also on failure or Ctrl-C. Needs root (FUSE, drop_caches), s3rver
# (scripts/setup.sh), curl, python3. Speed is reported here, never asserted in tests.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench_proxy.sh [options]
  --build-dir DIR    meson build folder (default: $NIGHFS_BUILD_DIR, else REPO/build)
  --work-dir DIR     parent of the scratch folder (default: /work if it exists, else the repo's parent)
  --size MIB         sequential file size in MiB (default 1024)
  --files N          small files created (default 1000)
  --rtt-ms MS        round trip added by the relay: MS/2 each way (default 30)
  --bandwidth B      relay cap per direction, bytes/s with K/M/G (default 100M = 100 MiB/s)
  --seconds S        duration of each PUT/GET/TCP stream run (default 5)
  --quick            --size 256 --files 200 --seconds 2 (a smoke run)
  --keep             leave the scratch folder (logs) in place
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
WORK_PARENT=/work
[[ -d $WORK_PARENT ]] || WORK_PARENT=$(dirname "$REPO")
SIZE_MIB=1024
NFILES=1000
RTT_MS=30
BANDWIDTH=100M
SECONDS_EACH=5
KEEP=0
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --work-dir) WORK_PARENT=$2; shift 2 ;;
    --size) SIZE_MIB=$2; shift 2 ;;
    --files) NFILES=$2; shift 2 ;;
    --rtt-ms) RTT_MS=$2; shift 2 ;;
    --bandwidth) BANDWIDTH=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --quick) SIZE_MIB=256 NFILES=200 SECONDS_EACH=2; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$SIZE_MIB" "$NFILES" "$RTT_MS" "$SECONDS_EACH"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench_proxy.sh: '$n' is not a non-negative integer" >&2; exit 2; }
done

log() { printf '[bench_proxy %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts and drop_caches)"
for tool in curl python3 fusermount3 meson ninja sha256sum dd; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
S3RVER_BIN=${NIGHFS_TOOLS_DIR:-$REPO/.tools}/node_modules/.bin/s3rver
[[ -x $S3RVER_BIN ]] || S3RVER_BIN=/work/main/.tools/node_modules/.bin/s3rver
[[ -x $S3RVER_BIN ]] || die "s3rver is not installed (scripts/setup.sh, or set NIGHFS_TOOLS_DIR)"

# ---------------------------------------------------------------------------------------------
# State, and the cleanup that runs whatever happens.

T=""
META_PID="" PROXY_PID="" RELAY_PID="" S3RVER_PID=""
declare -A MNT_PID=()  # mount point -> mount.nighfs PID

# is_mounted, stop_pid, unmount_fuse, start_meta, make_token, start_s3rver, start_relay,
# start_proxy, proxy_metric
source "$REPO/scripts/lib/processes.sh"

cleanup() {
  local rc=$? mp pid
  trap - EXIT INT TERM
  for mp in "${!MNT_PID[@]}"; do unmount_fuse "$mp" "${MNT_PID[$mp]}"; done
  for pid in "$PROXY_PID" "$META_PID" "$RELAY_PID" "$S3RVER_PID"; do
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    stop_pid "$pid" 10
  done
  finish_scratch "$rc" "$T" "$T/s3" "$T/proxy" "$T/src.bin" "$T/meta"
  exit "$rc"
}
on_exit cleanup
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Build.

log "building in $BUILD_DIR"
[[ -f $BUILD_DIR/build.ninja ]] || meson setup "$BUILD_DIR" "$REPO" >/dev/null
ninja -C "$BUILD_DIR" -j2 meta/nighfs-meta tools/nighfs mount/mount.nighfs proxy/nighfs-proxy \
  tests/relay/nighfs-relay tests/relay/nighfs-http-bench >/dev/null
META_BIN=$BUILD_DIR/meta/nighfs-meta
CLI_BIN=$BUILD_DIR/tools/nighfs
MOUNT_BIN=$BUILD_DIR/mount/mount.nighfs
PROXY_BIN=$BUILD_DIR/proxy/nighfs-proxy
RELAY_BIN=$BUILD_DIR/tests/relay/nighfs-relay
LOAD_BIN=$BUILD_DIR/tests/relay/nighfs-http-bench

T=$(mktemp -d "$WORK_PARENT/nighfs-bench-proxy.XXXXXX")
mkdir -p "$T/meta" "$T/run"

# ---------------------------------------------------------------------------------------------
# The WAN store, the metadata server, the proxy, the mounts.

BUCKET=nighfs-bench
umask 077
printf 'AWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n' >"$T/creds"
umask 022
log "starting s3rver behind nighfs-relay (+${RTT_MS} ms round trip, $BANDWIDTH/s each way)"
start_s3rver "$T/s3" "$BUCKET"
DELAY_MS=$(awk -v r="$RTT_MS" 'BEGIN { print r / 2 }')
start_relay "$S3RVER_PORT" --delay-ms "$DELAY_MS" --bandwidth "$BANDWIDTH"
# Baseline: the relay's added round trip, the fastest of 5 HEADs of the bucket through it.
WAN_RTT_MS=$(for _ in 1 2 3 4 5; do
  curl -s -o /dev/null -w '%{time_total}\n' -I "http://127.0.0.1:$RELAY_PORT/$BUCKET"
done | sort -n | head -1 | awk '{ printf "%.1f", $1 * 1000 }')

log "starting nighfs-meta and nighfs-proxy"
META_EXTRA_ARGS="--credentials $T/creds" start_meta
STORE="s3://$BUCKET/bench?endpoint=http://127.0.0.1:$RELAY_PORT&region=us-east-1"
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume bench --store "$STORE" \
  --block-size 4M >/dev/null || die "cannot create the volume"
make_token bench "$T/bench.token"
start_proxy --creds-file "$T/creds"

# mount_at MOUNTPOINT OPTIONS: mounts volume bench, waits until live.
mount_at() {
  local mp=$1 opts=$2 i
  mkdir -p "$mp"
  NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "bench@$META_ADDR" "$mp" -f \
    -o "ca_file=$META_CA,token_file=$T/bench.token,$opts" >>"$mp.log" 2>&1 &
  MNT_PID[$mp]=$!
  for ((i = 0; i < 300; i++)); do
    is_mounted "$mp" && return 0
    kill -0 "${MNT_PID[$mp]}" 2>/dev/null || die "mount.nighfs exited: $(tail -5 "$mp.log")"
    sleep 0.1
  done
  die "mount.nighfs did not mount $mp: $(tail -5 "$mp.log")"
}
declare -A PEAK_KIB=()  # mount point or "proxy" -> highest VmHWM seen
record_peak() {  # key pid
  local k
  k=$(awk '/^VmHWM:/ { print $2 }' "/proc/$2/status" 2>/dev/null || true)
  if [[ -n $k ]] && ((k > ${PEAK_KIB[$1]:-0})); then PEAK_KIB[$1]=$k; fi
}
unmount_at() {
  local mp=$1
  record_peak "$mp" "${MNT_PID[$mp]}"
  unmount_fuse "$mp" "${MNT_PID[$mp]}"
  unset "MNT_PID[$mp]"
}
# Remount (an empty block cache) and drop the page cache: the next read comes from below.
cold() {
  local mp=$1 opts=$2
  unmount_at "$mp"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  mount_at "$mp" "$opts"
}

PMNT=$T/mnt-proxy
DMNT=$T/mnt-direct
POPTS="proxy=$PROXY_ADDR"
DOPTS="credentials=$T/creds"
mount_at "$PMNT" "$POPTS"
mount_at "$DMNT" "$DOPTS"

declare -A RESULT  # "row|proxy" or "row|direct" -> number
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }

log "making $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$T/src.bin"
SRC_SHA=$(sha256sum "$T/src.bin" | cut -d' ' -f1)
BLOB=$(head -c 3072 /dev/urandom | base64 -w0 | head -c 4096)

ROW_SEQ="Sequential write ${SIZE_MIB} MiB, 4 MiB writes, fsync (MiB/s)"
ROW_SMALL="Create $NFILES files of 4 KiB, one at a time, each closed (files/s)"
ROW_READ="Read ${SIZE_MIB} MiB, cold mount: proxy = from the proxy's cache, direct = from the WAN store (MiB/s)"

# workload TARGET MOUNTPOINT
workload() {
  local target=$1 mp=$2 t0 t1 i
  log "$target: sequential write"
  sync
  t0=$EPOCHREALTIME
  dd if="$T/src.bin" of="$mp/seq-$target.dat" bs=4M conv=fsync status=none
  t1=$EPOCHREALTIME
  RESULT["$ROW_SEQ|$target"]=$(rate "$SIZE_MIB" "$(elapsed "$t0" "$t1")")
  log "$target: ${RESULT["$ROW_SEQ|$target"]} MiB/s"
  log "$target: $NFILES small files"
  mkdir "$mp/small-$target"
  t0=$EPOCHREALTIME
  for ((i = 0; i < NFILES; i++)); do printf '%s' "$BLOB" >"$mp/small-$target/f$i"; done
  t1=$EPOCHREALTIME
  RESULT["$ROW_SMALL|$target"]=$(rate "$NFILES" "$(elapsed "$t0" "$t1")")
  log "$target: ${RESULT["$ROW_SMALL|$target"]} files/s"
}

workload proxy "$PMNT"
record_peak proxy "$PROXY_PID"
# The flush to the WAN store, timed from the end of the writes (part of it overlapped them).
log "waiting for the proxy to flush"
t0=$EPOCHREALTIME
for ((i = 0; i < 3600; i++)); do
  [[ $(proxy_metric nighfs_proxy_dirty_blocks) == 0 ]] && break
  kill -0 "$PROXY_PID" 2>/dev/null || die "nighfs-proxy exited: $(tail -5 "$T/proxy.log")"
  sleep 0.5
done
[[ $(proxy_metric nighfs_proxy_dirty_blocks) == 0 ]] || die "the proxy did not flush in 30 min"
FLUSH_S=$(elapsed "$t0" "$EPOCHREALTIME")
log "flushed ${FLUSH_S} s after the last write"

workload direct "$DMNT"

log "proxy: cold read (blocks from the proxy's disk cache)"
cold "$PMNT" "$POPTS"
t0=$EPOCHREALTIME
dd if="$PMNT/seq-proxy.dat" of=/dev/null bs=4M status=none
t1=$EPOCHREALTIME
RESULT["$ROW_READ|proxy"]=$(rate "$SIZE_MIB" "$(elapsed "$t0" "$t1")")
record_peak proxy "$PROXY_PID"
log "proxy: ${RESULT["$ROW_READ|proxy"]} MiB/s"

# The file written through the proxy, read by the direct mount from the WAN store: the read
# rate, and the proof that every byte reached the store.
log "direct: cold read from the WAN store of the file written through the proxy"
cold "$DMNT" "$DOPTS"
t0=$EPOCHREALTIME
GOT_SHA=$(dd if="$DMNT/seq-proxy.dat" bs=4M status=none | sha256sum | cut -d' ' -f1)
t1=$EPOCHREALTIME
RESULT["$ROW_READ|direct"]=$(rate "$SIZE_MIB" "$(elapsed "$t0" "$t1")")
log "direct: ${RESULT["$ROW_READ|direct"]} MiB/s"
if [[ $GOT_SHA == "$SRC_SHA" ]]; then IN_STORE="yes (sha256 of the direct read = source)"; else IN_STORE="NO: sha256 differs"; fi
# Small files too: one sample through the direct mount.
[[ $(cat "$DMNT/small-proxy/f$((NFILES - 1))") == "$BLOB" ]] || IN_STORE="NO: a small file differs"
# s3rver keeps each object as a file NAME._S3rver_object under its data folder.
STORE_OBJECTS=$(find "$T/s3/$BUCKET/bench/blk" -name '*._S3rver_object' 2>/dev/null | wc -l)
EXPECTED_OBJECTS=$((2 * ((SIZE_MIB + 3) / 4 + NFILES)))

# ---------------------------------------------------------------------------------------------
# Streams: cached GET and PUT of 4 MiB blocks against the proxy, and raw loopback TCP.

declare -A STREAM  # "op|n" -> MiB/s
ID=$((1 << 44))
for n in 1 8 32; do
  for op in put get; do
    log "proxy $op, $n stream(s)"
    out=$("$LOAD_BIN" "$op" --url "$PROXY_URL/bench" --token-file "$T/bench.token" --ca-file "$META_CA" \
      --streams "$n" --size $((4 << 20)) --seconds "$SECONDS_EACH" --id-base "$ID" 2>>"$T/load.log") ||
      log "proxy $op with $n streams had errors (see $T/load.log)"
    STREAM["$op|$n"]=$(sed -n 's/.*MiB\/s=\([0-9.]*\).*/\1/p' <<<"$out")
    ID=$((ID + (1 << 36)))
  done
  out=$("$LOAD_BIN" tcp --streams "$n" --size $((4 << 20)) --seconds "$SECONDS_EACH")
  STREAM["tcp|$n"]=$(sed -n 's/.*MiB\/s=\([0-9.]*\).*/\1/p' <<<"$out")
  record_peak proxy "$PROXY_PID"
done
for mp in "${!MNT_PID[@]}"; do record_peak "$mp" "${MNT_PID[$mp]}"; done

# ---------------------------------------------------------------------------------------------
# Report.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "n/a"; else printf "%.1f×", a / b }'; }
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.0f", k / 1024 }'; }
echo
echo "WAN: s3rver behind nighfs-relay, +$RTT_MS ms round trip ($DELAY_MS ms each way; a HEAD through it took $WAN_RTT_MS ms), $BANDWIDTH/s each way. nighfs-meta, nighfs-proxy (TLS, default flags) and both mounts on loopback; block size 4 MiB."
echo
echo "| Workload | Through the proxy | Direct to the WAN store | Proxy ÷ direct |"
echo "|---|---:|---:|---:|"
for row in "$ROW_SEQ" "$ROW_SMALL" "$ROW_READ"; do
  echo "| $row | ${RESULT["$row|proxy"]} | ${RESULT["$row|direct"]} | $(ratio "${RESULT["$row|proxy"]}" "${RESULT["$row|direct"]}") |"
done
echo "| Flush to the WAN store after the proxy's last write (s) | $FLUSH_S | n/a | |"
echo "| Every byte written through the proxy in the store after the flush | $IN_STORE | | |"
echo "| Peak RSS, mount.nighfs (MiB) | $(mib "${PEAK_KIB[$PMNT]:-}") | $(mib "${PEAK_KIB[$DMNT]:-}") | |"
echo "| Peak RSS, nighfs-proxy (MiB) | $(mib "${PEAK_KIB[proxy]:-}") | n/a | |"
echo
echo "Block objects in the store after both workloads: $STORE_OBJECTS (expected $EXPECTED_OBJECTS: 2 × ($SIZE_MIB MiB / 4 MiB + $NFILES))."
echo
echo "Cached 4 MiB block requests against nighfs-proxy (HTTPS, keep-alive; GETs of blocks PUT just before), beside raw loopback TCP (MiB/s):"
echo
echo "| Streams | PUT via proxy | GET via proxy (cached) | Raw loopback TCP |"
echo "|---:|---:|---:|---:|"
for n in 1 8 32; do
  echo "| $n | ${STREAM["put|$n"]:-err} | ${STREAM["get|$n"]:-err} | ${STREAM["tcp|$n"]:-err} |"
done
echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$REPO" rev-parse --short HEAD); $(date -u '+%Y-%m-%d %H:%M UTC')"
