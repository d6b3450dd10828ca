#!/usr/bin/env bash
# Benchmarks nighfs side by side with the local disk, a null FUSE file system, and the FUSE file
# systems users would pick instead on the same object store (issue 14).
#
# Self-contained: builds what it needs, starts s3rver (one bucket) and a metadata server on free
# loopback ports with scratch state, creates two volumes (file:// in the scratch folder, and
# s3:// on the bucket), mounts each target in turn (nighfs on file://, nighfs straight to s3rver,
# s3fs and rclone mount on the same bucket, rclone with --vfs-cache-mode off and full), runs the
# same fio, metadata, small-file and tree workloads on each, measures the bucket's own ceiling
# (parallel PUT/GET of 4 MiB and 4 KiB objects through nighfs's S3 client), prints one markdown
# table and writes it into docs/BENCHMARKS.md (between the "bench:begin/end" markers; the
# hand-written analysis around them is kept). Every row checks the bytes it wrote (fio verify
# headers read back, small files and trees compared after a cold remount). Everything it started
# is unmounted and stopped by PID on exit, also on failure or Ctrl-C.
#
# Needs root (FUSE mounts, /proc/sys/vm/drop_caches), fio, jq, python3, fusermount3, and for the
# peers s3rver (scripts/setup.sh: .tools), s3fs and rclone (scripts/setup.sh installs them).
# Speed is reported here, never asserted in tests.
set -euo pipefail

ALL_TARGETS=local,nullfs,nighfs-file,nighfs-batched,nighfs-s3,s3fs,rclone-off,rclone-full,ceiling
ALL_ROWS=data,meta,small,tree
usage() {
  cat <<EOF
usage: scripts/bench.sh [options]
  --targets LIST    comma-separated, in this order in the table (default: all):
                    $ALL_TARGETS
                    ("nighfs" = nighfs-file,nighfs-batched,nighfs-s3; "rclone" =
                    rclone-off,rclone-full; nighfs-batched = file:// with a second
                    nighfs-meta run --namespace-sync=batched;
                    "peers" = s3fs,rclone-off,rclone-full)
  --rows LIST       workload groups (default: all): $ALL_ROWS
                    (data: fio; meta: create/stat/ls -l/rename/unlink; small: 4 KiB files;
                    tree: tar x/cp -a/read/rm -rf)
  --build-dir DIR   meson build folder (default: \$NIGHFS_BUILD_DIR, else REPO/build)
  --work-dir DIR    parent of the scratch folder; also the "local disk" tested (default: /work
                    if it exists, else the repo's parent)
  --out FILE        markdown file to update (default: REPO/docs/BENCHMARKS.md; '-' = don't)
  --size MIB        bytes per sequential fio file (default 256; 4 jobs write 4 x SIZE/4)
  --runtime S       bound of each sequential read job (default 20; writes are not bounded)
  --rand-runtime S  duration of each random 4 KiB job (default 10)
  --files N         files of the metadata rows (default 300)
  --small-files N   4 KiB files of the small-file rows (default 200)
  --tree-paths LIST paths of this repository (git pathspecs) in the tree of the tree rows
                    (default "." = every tracked file)
  --tree-extra LIST folders of /usr/include added to the tree (default ""; e.g. "linux")
  --ceiling-seconds S  duration of each PUT and GET phase of the store ceiling (default 5)
  --quick           --size 32 --runtime 3 --rand-runtime 3 --files 100 --small-files 50
                    --tree-paths "blockstore common meta mount" --tree-extra ""
                    --ceiling-seconds 2 (a smoke run)
  --note TEXT       a line added to the "Machine" section (e.g. what else ran meanwhile)
  --keep            leave the scratch folder (logs, fio JSON) in place
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
WORK_PARENT=/work
[[ -d $WORK_PARENT ]] || WORK_PARENT=$(dirname "$REPO")
OUT=$REPO/docs/BENCHMARKS.md
TARGET_LIST=$ALL_TARGETS
ROW_LIST=$ALL_ROWS
SIZE_MIB=256
RUNTIME=20
RAND_RUNTIME=10
NFILES=300
NSMALL=200
TREE_PATHS=.
TREE_EXTRA=""
CEIL_SECS=5
NOTE=""
KEEP=0
while (($#)); do
  case $1 in
    --targets) TARGET_LIST=$2; shift 2 ;;
    --rows) ROW_LIST=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --work-dir) WORK_PARENT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --size) SIZE_MIB=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --rand-runtime) RAND_RUNTIME=$2; shift 2 ;;
    --files) NFILES=$2; shift 2 ;;
    --small-files) NSMALL=$2; shift 2 ;;
    --tree-paths) TREE_PATHS=$2; shift 2 ;;
    --tree-extra) TREE_EXTRA=$2; shift 2 ;;
    --ceiling-seconds) CEIL_SECS=$2; shift 2 ;;
    --quick) SIZE_MIB=32 RUNTIME=3 RAND_RUNTIME=3 NFILES=100 NSMALL=50 CEIL_SECS=2
             TREE_PATHS="blockstore common meta mount" TREE_EXTRA=""; shift ;;
    --note) NOTE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$SIZE_MIB" "$RUNTIME" "$RAND_RUNTIME" "$NFILES" "$NSMALL" "$CEIL_SECS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: '$n' is not a positive integer" >&2; exit 2; }
done
((SIZE_MIB >= 4)) || { echo "bench.sh: --size must be at least 4 (MiB)" >&2; exit 2; }

TARGETS=()
for t in ${TARGET_LIST//,/ }; do
  case $t in
    nighfs) TARGETS+=(nighfs-file nighfs-batched nighfs-s3) ;;
    rclone) TARGETS+=(rclone-off rclone-full) ;;
    peers) TARGETS+=(s3fs rclone-off rclone-full) ;;
    local | nullfs | nighfs-file | nighfs-batched | nighfs-s3 | s3fs | rclone-off | rclone-full | ceiling)
      TARGETS+=("$t") ;;
    *) echo "bench.sh: unknown target '$t' (known: $ALL_TARGETS)" >&2; exit 2 ;;
  esac
done
((${#TARGETS[@]})) || { echo "bench.sh: no target" >&2; exit 2; }
declare -A ROWS_ON=()
for r in ${ROW_LIST//,/ }; do
  [[ ,$ALL_ROWS, == *,$r,* ]] || { echo "bench.sh: unknown row group '$r'" >&2; exit 2; }
  ROWS_ON[$r]=1
done
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
wants_s3() {
  local t
  for t in "${TARGETS[@]}"; do [[ $t != nighfs-s3 && $t != s3fs && $t != rclone-* && $t != ceiling ]] || return 0; done
  return 1
}
wants_meta() { has_target nighfs-file || has_target nighfs-s3; }

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts and drop_caches)"
for tool in fio jq python3 fusermount3 meson ninja pkg-config g++ tar curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh)"
done
if has_target s3fs; then command -v s3fs >/dev/null || die "s3fs is not installed (scripts/setup.sh)"; fi
if has_target rclone-off || has_target rclone-full; then
  command -v rclone >/dev/null || die "rclone is not installed (scripts/setup.sh)"
fi
S3RVER_BIN=${NIGHFS_TOOLS_DIR:-$REPO/.tools}/node_modules/.bin/s3rver
[[ -x $S3RVER_BIN ]] || S3RVER_BIN=/work/main/.tools/node_modules/.bin/s3rver
if wants_s3; then
  [[ -x $S3RVER_BIN ]] || die "s3rver is not installed (scripts/setup.sh, or set NIGHFS_TOOLS_DIR)"
fi

# ---------------------------------------------------------------------------------------------
# State, and the cleanup that runs whatever happens.

T=""             # scratch folder
META_PID=""      # nighfs-meta
BATCHED_META_PID=""  # the second nighfs-meta, --namespace-sync=batched (target nighfs-batched)
S3RVER_PID=""
BUCKET=nighfs-bench
FILES_PY=$REPO/scripts/lib/bench_files.py

# is_mounted, stop_pid, stop_daemons, unmount_fuse, start_meta, make_token, free_port, start_s3rver
source "$REPO/scripts/lib/processes.sh"
# DIR, MNT_PID, PEAK_KIB, mount_target, unmount_target, unmount_all, cold
source "$REPO/scripts/lib/bench_targets.sh"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  unmount_all
  stop_daemons "$META_PID" "$BATCHED_META_PID" "$S3RVER_PID"
  if [[ -n $T && -d $T ]]; then
    if ((KEEP)); then
      log "scratch folder kept: $T"
    elif ((rc != 0)); then
      # Keep the logs for the post-mortem, not the gigabytes of test data.
      rm -rf "$T/store" "$T/store-batched" "$T/local" "$T/meta" "$T/meta-batched" "$T/s3" \
        "$T/src.tar" "$T/rclone-cache" "$T/ref"
      log "failed; logs kept in $T"
    else
      rm -rf "$T"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_START=$SECONDS
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Build.

log "building in $BUILD_DIR"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  meson setup "$BUILD_DIR" "$REPO" >/dev/null
fi
NINJA_TARGETS=()
wants_meta && NINJA_TARGETS+=(meta/nighfs-meta tools/nighfs mount/mount.nighfs)
has_target nullfs && NINJA_TARGETS+=(tests/bench/nullfs)
has_target ceiling && NINJA_TARGETS+=(tests/relay/nighfs-store-bench)
((${#NINJA_TARGETS[@]} == 0)) || ninja -C "$BUILD_DIR" -j2 "${NINJA_TARGETS[@]}" >/dev/null
META_BIN=$BUILD_DIR/meta/nighfs-meta
CLI_BIN=$BUILD_DIR/tools/nighfs
MOUNT_BIN=$BUILD_DIR/mount/mount.nighfs
NULLFS_BIN=$BUILD_DIR/tests/bench/nullfs
STORE_BENCH_BIN=$BUILD_DIR/tests/relay/nighfs-store-bench

T=$(mktemp -d "$WORK_PARENT/nighfs-bench.XXXXXX")
mkdir -p "$T/fio" "$T/run"

# ---------------------------------------------------------------------------------------------
# The store, the metadata server, the volumes.

umask 077
printf 'AWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n' >"$T/creds"  # s3rver's defaults
umask 022
if wants_s3; then
  log "starting s3rver (bucket $BUCKET)"
  # scripts/lib/s3rver_bench_fixes.js: folders holding only folders listed as S3 lists them.
  S3RVER_REQUIRE=$REPO/scripts/lib/s3rver_bench_fixes.js start_s3rver "$T/s3" "$BUCKET"
  write_peer_configs
fi
S3_PARAMS="endpoint=http://127.0.0.1:${S3RVER_PORT:-0}&region=us-east-1"
S3_URL="s3://$BUCKET/nighfs?$S3_PARAMS"
if has_target nighfs-batched; then
  # Its own server (the mode is the server's) and store, started first: the main one's
  # start_meta then sets META_ADDR and NIGHFS_ADMIN_TOKEN_FILE for everything else.
  log "starting nighfs-meta --namespace-sync=batched"
  mkdir -p "$T/store-batched"
  META_NAME=meta-batched \
    META_EXTRA_ARGS="--credentials $T/creds --namespace-sync=batched ${NIGHFS_BENCH_META_ARGS:-}" \
    start_meta
  BATCHED_META_PID=$META_PID BATCHED_META_ADDR=$META_ADDR META_PID=""
  "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume file \
    --store "file://$T/store-batched" --block-size 4M >/dev/null || die "cannot create volume file"
  make_token file "$T/batched.token"
fi
if wants_meta; then
  log "starting nighfs-meta"
  mkdir -p "$T/meta" "$T/store"
  # NIGHFS_BENCH_META_ARGS: more nighfs-meta flags, to compare settings on the same build
  # (e.g. "--inline-max-bytes 0" against the default).
  META_EXTRA_ARGS="--credentials $T/creds ${NIGHFS_BENCH_META_ARGS:-}" start_meta
  if has_target nighfs-file; then
    "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume file \
      --store "file://$T/store" --block-size 4M >/dev/null || die "cannot create volume file"
    make_token file "$T/file.token"
  fi
  if has_target nighfs-s3; then
    "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume s3 \
      --store "$S3_URL" --block-size 4M >/dev/null || die "cannot create volume s3"
    make_token s3 "$T/s3.token"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Results. A cell is a number, or "error" with the reason in NOTES, or "n/a" when the row does
# not apply to the target (empty).

declare -A RESULT=()   # "row|target" -> number or "error"
NOTES=()
ROW_ORDER=()           # rows in table order
declare -A ROW_UNIT=() ROW_LOWER=() ROW_SEEN=()
row() {  # label unit [lower]: declares a row once, in order; "lower" = lower is better
  [[ -n ${ROW_SEEN[$1]:-} ]] && return 0
  ROW_SEEN[$1]=1
  ROW_ORDER+=("$1")
  ROW_UNIT[$1]=$2
  ROW_LOWER[$1]=${3:-}
}
set_result() {  # row target value
  RESULT["$1|$2"]=$3
  log "$2: $1: $3 ${ROW_UNIT[$1]}"
}
row_error() {  # row target message
  RESULT["$1|$2"]=error
  NOTES+=("$2, $1: $3")
  log "$2: $1: ERROR: $3"
}
# What each target's row failures say about nighfs: a nighfs error makes the exit status 3.
NIGHFS_ERRORS=0

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }

# ---------------------------------------------------------------------------------------------
# fio. Writes put a verification header in every 4 KiB (crc32c of the block, its offset);
# reads check them (--verify_fatal: the first bad block fails the job). nullfs stores nothing,
# so its reads are not checked.

SIZE="${SIZE_MIB}M"
PAR_SIZE="$((SIZE_MIB / 4))M"
# No verify state files (fio writes them into its working folder at exit).
FIO_COMMON=(--ioengine=psync --fallocate=none --group_reporting --output-format=json
            --verify_state_save=0)
FIO_WVERIFY="--verify=crc32c --verify_interval=4k --do_verify=0 --create_on_open=1"
FIO_RVERIFY="--verify=crc32c --verify_interval=4k --verify_fatal=1"
FIO_ROWS=()
declare -A FIO_ARGS=() FIO_UNIT=() FIO_COLD=() FIO_ONLY=()
fio_row() {  # label unit cold(0/1) args...
  local label=$1 unit=$2 c=$3
  shift 3
  FIO_ROWS+=("$label")
  FIO_UNIT[$label]=$unit
  FIO_COLD[$label]=$c
  FIO_ARGS[$label]="$*"
}
ROW_SEQW="Sequential write 1 MiB, 1 job, + fsync"
ROW_REF="Sequential write 4 MiB, fsync after each (local ceiling for the file:// store)"
ROW_RANDW="Random write 4 KiB, + fsync"
fio_row "$ROW_SEQW" MB/s 0 \
  --name=seq --filename=seq.dat --rw=write --bs=1M --size="$SIZE" --end_fsync=1 $FIO_WVERIFY
# The local disk under the durability regime of nighfs's file:// store (every 4 MiB block is
# fsynced before it counts): the ceiling for nighfs's writes on this machine.
fio_row "$ROW_REF" MB/s 0 \
  --name=ref --filename=ref.dat --rw=write --bs=4M --size="$SIZE" --fsync=1
FIO_ONLY[$ROW_REF]=local
fio_row "Sequential read 1 MiB, cold" MB/s 1 \
  --name=seq --filename=seq.dat --rw=read --bs=1M --size="$SIZE" --runtime="$RUNTIME" VERIFY
fio_row "Sequential read 1 MiB, warm" MB/s 0 \
  --name=seq --filename=seq.dat --rw=read --bs=1M --size="$SIZE" --runtime="$RUNTIME" \
  --invalidate=0 VERIFY
fio_row "Random read 4 KiB, cold start" IOPS 1 \
  --name=seq --filename=seq.dat --rw=randread --bs=4k --size="$SIZE" --runtime="$RAND_RUNTIME" \
  --time_based VERIFY
fio_row "$ROW_RANDW" IOPS 0 \
  --name=seq --filename=seq.dat --rw=randwrite --bs=4k --size="$SIZE" --runtime="$RAND_RUNTIME" \
  --time_based --end_fsync=1 $FIO_WVERIFY
fio_row "Sequential write 1 MiB, 4 jobs, + fsync" MB/s 0 \
  --name=par --numjobs=4 --rw=write --bs=1M --size="$PAR_SIZE" --end_fsync=1 $FIO_WVERIFY
ROW_PARR="Sequential read 1 MiB, 4 jobs, cold"
fio_row "$ROW_PARR" MB/s 1 \
  --name=par --numjobs=4 --rw=read --bs=1M --size="$PAR_SIZE" --runtime="$RUNTIME" VERIFY
# The file of the random writes, read back whole after the cold start of the 4-job read and
# checked (not a row: an error goes to the random-write row's cell).
FIO_CHECK_ARGS="--name=seq --filename=seq.dat --rw=read --bs=1M --size=$SIZE VERIFY"

ROW_WAMP="Random write 4 KiB: bytes uploaded ÷ bytes written"
# "UPLOADED WRITTEN" bytes of nighfs target $1's mount so far, from a status the mount wrote
# after this call (it writes one every 5 s).
store_traffic() {
  local since j i
  since=$(date +%s%N)
  for ((i = 0; i < 80; i++)); do
    j=$(NIGHFS_RUN_DIR=$T/run "$CLI_BIN" status --json "${DIR[$1]}" 2>/dev/null) || j='{}'
    if (($(jq -r '.updated_ns // 0' <<<"$j" 2>/dev/null || echo 0) > since)); then
      jq -r '.stats | "\(.bytes_uploaded // 0) \(.bytes_written // 0)"' <<<"$j"
      return
    fi
    sleep 0.1
  done
  echo "0 0"
}

fio_args() {  # target args-with-VERIFY-placeholder
  local v=$FIO_RVERIFY
  [[ $1 != nullfs ]] || v=""
  echo "${2//VERIFY/$v}"
}

# Runs one fio job on target $1: FIO_OUT is its JSON; returns 1 with the reason in FIO_ERROR.
run_fio_job() {  # target name args
  local t=$1 name=$2 args=$3 err
  FIO_OUT=$T/fio/$t.$name.json
  err=$T/fio/$t.$name.stderr
  # shellcheck disable=SC2086
  if ! (cd "$T/fio" && fio "${FIO_COMMON[@]}" --directory="${DIR[$t]}" $args) >"$FIO_OUT" 2>"$err"; then
    FIO_ERROR=$(grep -m1 -E 'verify failed|error|fio:' "$err" || tail -1 "$err")
    return 1
  fi
  if grep -q 'verify failed' "$err" || [[ $(jq '[.jobs[].error] | max' "$FIO_OUT" 2>/dev/null) != 0 ]]; then
    FIO_ERROR=$(grep -m1 -E 'verify failed|error' "$err" || echo "fio reported an error")
    return 1
  fi
}

data_rows() {
  local t=$1 label key out metric
  FIO_OUT="" FIO_ERROR=""
  for label in "${FIO_ROWS[@]}"; do
    [[ ${FIO_ONLY[$label]:-$t} == "$t" ]] || continue
    row "$label" "${FIO_UNIT[$label]}"
    [[ $label == "$ROW_RANDW" ]] && row "$ROW_WAMP" "×" lower
    ((FIO_COLD[$label])) && cold "$t"
    if [[ $label == "$ROW_PARR" && $t != nullfs && ${RESULT["$ROW_RANDW|$t"]:-error} != error ]]; then
      # The file the random writes changed, read back from the store and checked (by the way
      # of the cold start the next row needs anyway; the check reads another file).
      if ! run_fio_job "$t" check "$(fio_args "$t" "$FIO_CHECK_ARGS")"; then
        row_error "$ROW_RANDW" "$t" "read-back after the random writes: $FIO_ERROR"
      fi
    fi
    local before=""
    [[ $label == "$ROW_RANDW" && $t == nighfs-* ]] && before=$(store_traffic "$t")
    if ! run_fio_job "$t" "$(tr -c 'A-Za-z0-9' _ <<<"$label")" "$(fio_args "$t" "${FIO_ARGS[$label]}")"; then
      row_error "$label" "$t" "$FIO_ERROR"
      continue
    fi
    if [[ -n $before ]]; then
      # Write amplification: bytes the mount uploaded per byte the application wrote (the
      # mount's own counters, `nighfs status --json`, before and after the job).
      set_result "$ROW_WAMP" "$t" "$(awk -v a="$before" -v b="$(store_traffic "$t")" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        if (y[2] - x[2] <= 0) { print "error"; exit }
        printf "%.2f", (y[1] - x[1]) / (y[2] - x[2]) }')"
    fi
    out=$FIO_OUT
    case $label in *[Ww]rite*) key='write' ;; *) key='read' ;; esac
    if [[ ${FIO_UNIT[$label]} == IOPS ]]; then
      metric=$(jq "[.jobs[].$key.iops] | add" "$out")
    else
      metric=$(jq "[.jobs[].$key.bw_bytes] | add / 1e6" "$out")
    fi
    set_result "$label" "$t" "$(printf '%.1f' "$metric")"
  done
  rm -f "${DIR[$t]}"/seq.dat "${DIR[$t]}"/ref.dat "${DIR[$t]}"/par.*
}

# ---------------------------------------------------------------------------------------------
# Metadata. Rates are operations per second of wall time, one process each, one file at a time.

ROW_CREATE="Create + close empty file"
ROW_STAT="Stat (cold caches)"
ROW_LS="ls -l (cold caches)"
ROW_RENAME="Rename"
ROW_UNLINK="Unlink"
meta_rows() {
  local t=$1 d t0 t1 i n s
  local -a files
  for r in "$ROW_CREATE" "$ROW_STAT" "$ROW_LS" "$ROW_RENAME" "$ROW_UNLINK"; do row "$r" ops/s; done
  # nullfs has one flat directory (no mkdir, no rename): its files go in the root.
  if [[ $t == nullfs ]]; then d=${DIR[$t]}; else d=${DIR[$t]}/meta; mkdir "$d"; fi
  for ((i = 0; i < NFILES; i++)); do files+=("$d/f$i"); done

  t0=$EPOCHREALTIME
  n=0
  for f in "${files[@]}"; do : >"$f" || n=$((n + 1)); done
  t1=$EPOCHREALTIME
  if ((n == 0)); then
    set_result "$ROW_CREATE" "$t" "$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")"
  else
    row_error "$ROW_CREATE" "$t" "$n of $NFILES creates failed"
  fi

  cold "$t"
  t0=$EPOCHREALTIME
  s=$(stat -c %s -- "${files[@]}" 2>/dev/null | sort | uniq -c | awk '{ print $1 " x " $2 }') || true
  t1=$EPOCHREALTIME
  if [[ $s == "$NFILES x 0" ]]; then
    set_result "$ROW_STAT" "$t" "$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")"
  else
    row_error "$ROW_STAT" "$t" "stat saw sizes '$s', not $NFILES empty files"
  fi

  cold "$t"
  t0=$EPOCHREALTIME
  n=$(ls -l "$d" | grep -c ' f[0-9]*$' || true)
  t1=$EPOCHREALTIME
  if ((n == NFILES)); then
    set_result "$ROW_LS" "$t" "$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")"
  else
    row_error "$ROW_LS" "$t" "ls -l listed $n of the $NFILES files"
  fi

  if [[ $t != nullfs ]]; then
    if s=$(python3 "$FILES_PY" rename "$d" "$NFILES" 2>"$T/rename.err"); then
      set_result "$ROW_RENAME" "$t" "$(per_sec "$NFILES" "$s")"
      for ((i = 0; i < NFILES; i++)); do files[i]=$d/g$i; done
    else
      row_error "$ROW_RENAME" "$t" "$(tail -1 "$T/rename.err")"
    fi
  fi

  t0=$EPOCHREALTIME
  rm -f -- "${files[@]}" || true
  t1=$EPOCHREALTIME
  n=$(find "$d" -maxdepth 1 -name '[fg][0-9]*' | wc -l)
  if ((n == 0)); then
    set_result "$ROW_UNLINK" "$t" "$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")"
  else
    row_error "$ROW_UNLINK" "$t" "$n files still listed after rm"
  fi
  [[ $t == nullfs ]] || rm -rf "$d"
}

# ---------------------------------------------------------------------------------------------
# Small files: NSMALL files of 4 KiB written one at a time (each closed; syncfs at the end,
# timed), then read back cold and compared.

ROW_SMALLW="Write 4 KiB files (create, write, close; + syncfs)"
ROW_SMALLR="Read 4 KiB files, cold (each compared)"
small_rows() {
  local t=$1 d s
  row "$ROW_SMALLW" files/s
  row "$ROW_SMALLR" files/s
  if [[ $t == nullfs ]]; then d=${DIR[$t]}; else d=${DIR[$t]}/small; mkdir "$d"; fi
  if ! s=$(python3 "$FILES_PY" write "$d" "$NSMALL" 4096 2>"$T/small.err"); then
    row_error "$ROW_SMALLW" "$t" "$(tail -1 "$T/small.err")"
    return 0
  fi
  set_result "$ROW_SMALLW" "$t" "$(per_sec "$NSMALL" "$s")"
  cold "$t"
  if s=$(python3 "$FILES_PY" read "$d" "$NSMALL" 4096 $([[ $t != nullfs ]] || echo --no-check) \
         2>"$T/small.err"); then
    set_result "$ROW_SMALLR" "$t" "$(per_sec "$NSMALL" "$s")"
  else
    row_error "$ROW_SMALLR" "$t" "$(tail -1 "$T/small.err")"
  fi
  if [[ $t == nullfs ]]; then rm -f "$d"/s[0-9]*; else rm -rf "$d"; fi
}

# ---------------------------------------------------------------------------------------------
# Trees: this repository's tracked files (TREE_PATHS) plus folders of /usr/include
# (TREE_EXTRA). The copy is read back cold and its digest compared with the tar's own.

SRC_TAR=$T/src.tar
make_tree() {
  local d
  # shellcheck disable=SC2086
  git -C "$REPO" archive --format=tar --prefix=nighfs/ HEAD -- $TREE_PATHS >"$SRC_TAR"
  for d in $TREE_EXTRA; do tar -rf "$SRC_TAR" -C /usr/include "$d"; done
  SRC_FILES=$(tar -tf "$SRC_TAR" | grep -vc '/$')
  SRC_MB=$(awk -v b="$(stat -c %s "$SRC_TAR")" 'BEGIN { printf "%.1f", b / 1e6 }')
  mkdir -p "$T/ref"
  tar -xf "$SRC_TAR" -C "$T/ref"
  read -r _ SRC_REGULAR SRC_DIGEST < <(python3 "$FILES_PY" tree "$T/ref" "$T/tree.ref")
  rm -rf "$T/ref"
}
ROW_TARX="tar x (then syncfs)"
ROW_CP="cp -a of the tree (then syncfs)"
ROW_TREAD="Read the copy, cold (sha256 of every file)"
ROW_RM="rm -rf of both trees"
tree_rows() {
  local t=$1 d t0 t1 secs files digest
  for r in "$ROW_TARX" "$ROW_CP" "$ROW_TREAD" "$ROW_RM"; do row "$r" seconds lower; done
  d=${DIR[$t]}/tree
  mkdir -p "$d/x"
  t0=$EPOCHREALTIME
  if ! tar -xf "$SRC_TAR" -C "$d/x" 2>"$T/tree.err"; then
    row_error "$ROW_TARX" "$t" "$(head -1 "$T/tree.err")"
    rm -rf "$d"
    return 0
  fi
  sync -f "$d"
  t1=$EPOCHREALTIME
  set_result "$ROW_TARX" "$t" "$(elapsed "$t0" "$t1")"
  t0=$EPOCHREALTIME
  if cp -a "$d/x" "$d/y" 2>"$T/tree.err" && sync -f "$d"; then
    t1=$EPOCHREALTIME
    set_result "$ROW_CP" "$t" "$(elapsed "$t0" "$t1")"
  else
    # cp goes on after a file it cannot copy whole (rclone 1.60 answers listxattr with EIO, so
    # cp -a cannot preserve its ACLs): the error, with the time it took; the next row still
    # checks what was copied.
    t1=$EPOCHREALTIME
    local why
    why="cp -a exited with an error after $(printf '%.2f' "$(elapsed "$t0" "$t1")") s, $(grep -c . "$T/tree.err") messages, the first: $(head -1 "$T/tree.err")"
    row_error "$ROW_CP" "$t" "$why"
  fi
  if [[ -d $d/y ]]; then
    cold "$t"
    if read -r secs files digest < <(python3 "$FILES_PY" tree "$d/y" "$T/tree.got" 2>"$T/tree.err") &&
       [[ $files == "$SRC_REGULAR" && $digest == "$SRC_DIGEST" ]]; then
      set_result "$ROW_TREAD" "$t" "$secs"
    else
      row_error "$ROW_TREAD" "$t" "the copy read back differs from the tar: ${files:-0} of $SRC_REGULAR files; first difference (< tar, > copy): $(
        diff "$T/tree.ref" "$T/tree.got" 2>/dev/null | grep -m1 '^[<>]' | sed 's/^\([<>]\) [0-9a-f]*  /\1 /')$(head -1 "$T/tree.err")"
    fi
  fi
  t0=$EPOCHREALTIME
  rm -rf "$d" 2>"$T/tree.err"
  t1=$EPOCHREALTIME
  if [[ ! -e $d ]]; then
    set_result "$ROW_RM" "$t" "$(elapsed "$t0" "$t1")"
  else
    row_error "$ROW_RM" "$t" "the tree is still there: $(head -1 "$T/tree.err")"
  fi
}

# ---------------------------------------------------------------------------------------------
# The store's ceiling: nighfs-store-bench (nighfs's own S3 client) PUTs objects from 1 and 8
# threads for CEIL_SECS, then GETs them back for as long, each GET compared byte for byte.

ceiling_rows() {
  local t=ceiling size label th line unit field prefix
  for size in 4194304 4096; do
    for th in 1 8; do
      if ((size == 4096)); then label="4 KiB objects"; unit=objects/s; field=objects/s
      else label="4 MiB objects"; unit=MB/s; field=MB/s; fi
      row "Store ceiling: PUT $label, $th thread$( ((th == 1)) || echo s)" "$unit"
      row "Store ceiling: GET $label, $th thread$( ((th == 1)) || echo s) (each compared)" "$unit"
      prefix=ceiling/$size-$th
      if ! "$STORE_BENCH_BIN" --store "s3://$BUCKET/$prefix?$S3_PARAMS" --credentials "$T/creds" \
           --threads "$th" --size "$size" --seconds "$CEIL_SECS" >"$T/ceiling.out" 2>"$T/ceiling.err"; then
        NOTES+=("ceiling, $label, $th threads: $(tail -1 "$T/ceiling.err")")
      fi
      while read -r line; do
        local op v
        op=$(sed -n 's/^op=\([a-z]*\) .*/\1/p' <<<"$line")
        v=$(tr ' ' '\n' <<<"$line" | sed -n "s|^$field=||p")
        [[ -n $op && -n $v ]] || continue
        if [[ $op == put ]]; then
          set_result "Store ceiling: PUT $label, $th thread$( ((th == 1)) || echo s)" "$t" "$v"
        else
          set_result "Store ceiling: GET $label, $th thread$( ((th == 1)) || echo s) (each compared)" "$t" "$v"
        fi
      done <"$T/ceiling.out"
      if grep -q 'errors=[1-9]' "$T/ceiling.out" || [[ ! -s $T/ceiling.out ]]; then
        NOTES+=("ceiling, $label, $th threads: requests failed: $(tail -1 "$T/ceiling.err")")
      fi
    done
  done
}

# ---------------------------------------------------------------------------------------------
# Run: each target mounted in turn, every selected row group on it, then unmounted (which also
# records its daemon's peak RSS).

ROW_RSS="Peak RSS of the FUSE daemon (VmHWM, highest of its mounts)"
declare -A TARGET_SECS=()
[[ -z ${ROWS_ON[tree]:-} ]] || make_tree
for t in "${TARGETS[@]}"; do
  start=$SECONDS
  log "=== $t (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [[ $t == ceiling ]]; then
    ceiling_rows
  else
    mount_target "$t"
    [[ -z ${ROWS_ON[data]:-} ]] || data_rows "$t"
    [[ -z ${ROWS_ON[meta]:-} ]] || meta_rows "$t"
    [[ -z ${ROWS_ON[small]:-} ]] || small_rows "$t"
    [[ -z ${ROWS_ON[tree]:-} || $t == nullfs ]] || tree_rows "$t"
    unmount_target "$t"
    if is_fuse_target "$t"; then
      row "$ROW_RSS" MiB lower
      set_result "$ROW_RSS" "$t" "$((${PEAK_KIB[$t]:-0} / 1024))"
    fi
  fi
  TARGET_SECS[$t]=$((SECONDS - start))
done
for key in "${!RESULT[@]}"; do
  [[ ${RESULT[$key]} == error && ${key#*|} == nighfs-* ]] && NIGHFS_ERRORS=$((NIGHFS_ERRORS + 1))
done
RUN_SECS=$((SECONDS - RUN_START))

# ---------------------------------------------------------------------------------------------
# Report.

# scripts/lib/bench_report.sh: table, commands, machine, write_report
source "$REPO/scripts/lib/bench_report.sh"
echo
table
echo
write_report
log "done in $((RUN_SECS / 60)) min $((RUN_SECS % 60)) s"
if ((NIGHFS_ERRORS)); then
  log "$NIGHFS_ERRORS nighfs row(s) failed: see the notes under the table"
  exit 3
fi
