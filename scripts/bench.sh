#!/usr/bin/env bash
# Benchmarks nighfs side by side with the local disk and a null FUSE file system.
#
# Self-contained: builds what it needs, starts a metadata server on a free loopback port with a
# scratch state folder, creates a volume on a file:// store in the same scratch folder, mounts it
# and the null FUSE file system (tests/bench/nullfs.cc), runs fio and metadata workloads on all
# three, prints a markdown table and writes it into docs/BENCHMARKS.md (between the
# "bench:begin/end" markers; the hand-written analysis around them is kept). Everything it
# started is unmounted and stopped by PID on exit, also on failure or Ctrl-C.
#
# Needs root (FUSE mounts, /proc/sys/vm/drop_caches), fio, jq, fusermount3.
# Speed is reported here, never asserted in tests.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench.sh [options]
  --build-dir DIR   meson build folder (default: $NIGHFS_BUILD_DIR, else REPO/build)
  --work-dir DIR    parent of the scratch folder; also the "local disk" tested (default: /work
                    if it exists, else the repo's parent)
  --out FILE        markdown file to update (default: REPO/docs/BENCHMARKS.md; '-' = don't)
  --size MIB        bytes per fio file in MiB (default 1024)
  --runtime S       bound of each sequential fio job (default 20)
  --rand-runtime S  duration of each random 4 KiB fio job (default 10)
  --files N         files of the metadata workloads (default 5000)
  --quick           --size 256 --runtime 5 --rand-runtime 3 --files 1000 (a smoke run)
  --keep            leave the scratch folder (logs, fio JSON) in place
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
WORK_PARENT=/work
[[ -d $WORK_PARENT ]] || WORK_PARENT=$(dirname "$REPO")
OUT=$REPO/docs/BENCHMARKS.md
SIZE_MIB=1024
RUNTIME=20
RAND_RUNTIME=10
NFILES=5000
KEEP=0
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --work-dir) WORK_PARENT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --size) SIZE_MIB=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --rand-runtime) RAND_RUNTIME=$2; shift 2 ;;
    --files) NFILES=$2; shift 2 ;;
    --quick) SIZE_MIB=256 RUNTIME=5 RAND_RUNTIME=3 NFILES=1000; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$SIZE_MIB" "$RUNTIME" "$RAND_RUNTIME" "$NFILES"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: '$n' is not a positive integer" >&2; exit 2; }
done

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts and drop_caches)"
for tool in fio jq fusermount3 meson ninja pkg-config g++ tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------------------------------------
# State, and the cleanup that runs whatever happens.

T=""             # scratch folder
META_PID=""      # nighfs-meta
MOUNT_PID=""     # mount.nighfs
NULL_PID=""      # nullfs
NIGHFS_MNT=""
NULL_MNT=""

# is_mounted, stop_pid, unmount_fuse, start_meta, make_token
source "$REPO/scripts/lib/processes.sh"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  unmount_fuse "$NIGHFS_MNT" "$MOUNT_PID"
  unmount_fuse "$NULL_MNT" "$NULL_PID"
  if [[ -n $META_PID ]]; then
    kill -TERM "$META_PID" 2>/dev/null || true
    stop_pid "$META_PID" 10
  fi
  if [[ -n $T && -d $T ]]; then
    if ((KEEP)); then
      log "scratch folder kept: $T"
    elif ((rc != 0)); then
      # Keep the logs for the post-mortem, not the gigabytes of test data.
      rm -rf "$T/store" "$T/local" "$T/meta" "$T/src.tar" "$T/nullfs"
      log "failed; logs kept in $T"
    else
      rm -rf "$T"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Build.

log "building in $BUILD_DIR"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  meson setup "$BUILD_DIR" "$REPO" >/dev/null
fi
ninja -C "$BUILD_DIR" -j2 meta/nighfs-meta tools/nighfs mount/mount.nighfs >/dev/null
META_BIN=$BUILD_DIR/meta/nighfs-meta
CLI_BIN=$BUILD_DIR/tools/nighfs
MOUNT_BIN=$BUILD_DIR/mount/mount.nighfs

T=$(mktemp -d "$WORK_PARENT/nighfs-bench.XXXXXX")
if ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | grep -q '^tests/bench/nullfs:'; then
  ninja -C "$BUILD_DIR" -j2 tests/bench/nullfs >/dev/null
  NULLFS_BIN=$BUILD_DIR/tests/bench/nullfs
else
  # tests/bench is not wired into tests/meson.build yet: build the helper directly.
  NULLFS_BIN=$T/nullfs
  # shellcheck disable=SC2046
  g++ -std=c++20 -O2 -D_FILE_OFFSET_BITS=64 -I"$REPO" -o "$NULLFS_BIN" "$REPO/tests/bench/nullfs.cc" \
    $(pkg-config --cflags --libs fuse3 absl_synchronization) -pthread
fi

# ---------------------------------------------------------------------------------------------
# Start the metadata server, the volume, the mounts.

LOCAL_DIR=$T/local
NIGHFS_MNT=$T/mnt-nighfs
NULL_MNT=$T/mnt-null
mkdir -p "$LOCAL_DIR" "$NIGHFS_MNT" "$NULL_MNT" "$T/meta" "$T/store" "$T/run" "$T/fio"

log "starting nighfs-meta"
start_meta
"$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create volume bench --store "file://$T/store" \
  --block-size 4M >/dev/null
make_token bench "$T/bench.token"

mount_nighfs() {
  NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "bench@$META_ADDR" "$NIGHFS_MNT" -f \
    -o "ca_file=$META_CA,token_file=$T/bench.token" >>"$T/mount.log" 2>&1 &
  MOUNT_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    is_mounted "$NIGHFS_MNT" && return 0
    kill -0 "$MOUNT_PID" 2>/dev/null || die "mount.nighfs exited: $(tail -5 "$T/mount.log")"
    sleep 0.1
  done
  die "mount.nighfs did not mount: $(tail -5 "$T/mount.log")"
}
# The highest VmHWM of any mount.nighfs this run started (each remount is a new process).
PEAK_RSS_KIB=0
record_peak_rss() {
  local k
  k=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MOUNT_PID/status" 2>/dev/null || true)
  if [[ -n $k ]] && ((k > PEAK_RSS_KIB)); then PEAK_RSS_KIB=$k; fi
}
unmount_nighfs() {
  record_peak_rss
  unmount_fuse "$NIGHFS_MNT" "$MOUNT_PID"
  MOUNT_PID=""
}

log "mounting nighfs and nullfs"
mount_nighfs
"$NULLFS_BIN" "$NULL_MNT" >"$T/nullfs.log" 2>&1 &
NULL_PID=$!
for ((i = 0; i < 100; i++)); do
  is_mounted "$NULL_MNT" && break
  kill -0 "$NULL_PID" 2>/dev/null || die "nullfs exited: $(tail -5 "$T/nullfs.log")"
  sleep 0.1
done
is_mounted "$NULL_MNT" || die "nullfs did not mount"

TARGETS=(local nullfs nighfs)
declare -A DIR=([local]=$LOCAL_DIR [nullfs]=$NULL_MNT [nighfs]=$NIGHFS_MNT)
declare -A RESULT  # "row|target" -> number

# Empties every cache between a write and a "cold" read: the page cache (and dentries and
# inodes) and, for nighfs, its own block cache, which lives as long as the mount.
cold() {
  local target=$1
  sync
  echo 3 >/proc/sys/vm/drop_caches
  if [[ $target == nighfs ]]; then
    unmount_nighfs
    mount_nighfs
  fi
}

# ---------------------------------------------------------------------------------------------
# fio.

SIZE="${SIZE_MIB}M"
PAR_SIZE="$((SIZE_MIB / 4))M"
FIO_COMMON=(--ioengine=psync --fallocate=none --group_reporting --output-format=json)
# Each workload: row label, unit, fio arguments ($DIR is the target's folder).
FIO_ROWS=()
declare -A FIO_ARGS FIO_UNIT FIO_COLD FIO_ONLY
fio_row() {  # label unit cold(0/1) args...
  local label=$1 unit=$2 c=$3
  shift 3
  FIO_ROWS+=("$label")
  FIO_UNIT[$label]=$unit
  FIO_COLD[$label]=$c
  FIO_ARGS[$label]="$*"
}
fio_row "Sequential write 1 MiB, 1 job, + fsync" MB/s 0 \
  --name=seq --filename=seq.dat --rw=write --bs=1M --size="$SIZE" --runtime="$RUNTIME" --end_fsync=1
# The local disk under the durability regime of nighfs's file:// store (every 4 MiB block is
# fsynced before it counts): the ceiling for nighfs's writes on this machine.
fio_row "Sequential write 4 MiB, fsync after each (local ceiling for the file:// store)" MB/s 0 \
  --name=ref --filename=ref.dat --rw=write --bs=4M --size="$SIZE" --runtime="$RUNTIME" --fsync=1
FIO_ONLY["Sequential write 4 MiB, fsync after each (local ceiling for the file:// store)"]=local
fio_row "Sequential read 1 MiB, cold" MB/s 1 \
  --name=seq --filename=seq.dat --rw=read --bs=1M --size="$SIZE" --runtime="$RUNTIME"
fio_row "Sequential read 1 MiB, warm" MB/s 0 \
  --name=seq --filename=seq.dat --rw=read --bs=1M --size="$SIZE" --runtime="$RUNTIME" --invalidate=0
fio_row "Random read 4 KiB, cold start" IOPS 1 \
  --name=seq --filename=seq.dat --rw=randread --bs=4k --size="$SIZE" --runtime="$RAND_RUNTIME" \
  --time_based
fio_row "Random write 4 KiB, + fsync" IOPS 0 \
  --name=seq --filename=seq.dat --rw=randwrite --bs=4k --size="$SIZE" --runtime="$RAND_RUNTIME" \
  --time_based --end_fsync=1
fio_row "Sequential write 1 MiB, 4 jobs, + fsync" MB/s 0 \
  --name=par --numjobs=4 --rw=write --bs=1M --size="$PAR_SIZE" --runtime="$RUNTIME" --end_fsync=1
fio_row "Sequential read 1 MiB, 4 jobs, cold" MB/s 1 \
  --name=par --numjobs=4 --rw=read --bs=1M --size="$PAR_SIZE" --runtime="$RUNTIME"

run_fio() {  # target label
  local target=$1 label=$2 out key metric
  out=$T/fio/$target.$(echo "$label" | tr -c 'A-Za-z0-9' _).json
  ((FIO_COLD[$label])) && cold "$target"
  # shellcheck disable=SC2086
  fio "${FIO_COMMON[@]}" --directory="${DIR[$target]}" ${FIO_ARGS[$label]} >"$out" \
    2>>"$T/fio/stderr.log" || die "fio failed ($target, $label): $(tail -3 "$T/fio/stderr.log")"
  case $label in *[Ww]rite*) key="write" ;; *) key="read" ;; esac
  if [[ ${FIO_UNIT[$label]} == IOPS ]]; then
    metric=$(jq ".jobs[0].$key.iops" "$out")
  else
    metric=$(jq ".jobs[0].$key.bw_bytes / 1e6" "$out")
  fi
  RESULT["$label|$target"]=$(printf '%.0f' "$metric")
  log "$target: $label: ${RESULT["$label|$target"]} ${FIO_UNIT[$label]}"
}

for target in "${TARGETS[@]}"; do
  for label in "${FIO_ROWS[@]}"; do
    [[ ${FIO_ONLY[$label]:-$target} == "$target" ]] || continue
    run_fio "$target" "$label"
  done
  rm -f "${DIR[$target]}"/seq.dat "${DIR[$target]}"/ref.dat "${DIR[$target]}"/par.*
done

# ---------------------------------------------------------------------------------------------
# Metadata and trees. Rates are operations per second of wall time, one process each.

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

META_ROWS=("Create + close empty file" "Stat (cold caches)" "ls -l (cold caches)" "Unlink")
meta_bench() {
  local target=$1 d t0 t1 i
  local -a files
  # nullfs has one flat directory (no mkdir): its files go in the root.
  if [[ $target == nullfs ]]; then d=${DIR[$target]}; else d=${DIR[$target]}/meta; mkdir "$d"; fi
  for ((i = 0; i < NFILES; i++)); do files+=("$d/f$i"); done

  t0=$EPOCHREALTIME
  for f in "${files[@]}"; do : >"$f"; done
  t1=$EPOCHREALTIME
  RESULT["Create + close empty file|$target"]=$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")

  # Cold: no dentry, inode or FUSE attribute cache (entry/attr timeouts are 1 s).
  sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1.2
  t0=$EPOCHREALTIME
  stat -c %i -- "${files[@]}" >/dev/null
  t1=$EPOCHREALTIME
  RESULT["Stat (cold caches)|$target"]=$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")

  sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1.2
  t0=$EPOCHREALTIME
  ls -l "$d" >/dev/null
  t1=$EPOCHREALTIME
  RESULT["ls -l (cold caches)|$target"]=$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")

  t0=$EPOCHREALTIME
  rm -f -- "${files[@]}"
  t1=$EPOCHREALTIME
  RESULT["Unlink|$target"]=$(per_sec "$NFILES" "$(elapsed "$t0" "$t1")")
  [[ $target == nullfs ]] || rmdir "$d"
  for row in "${META_ROWS[@]}"; do log "$target: $row: ${RESULT["$row|$target"]} ops/s"; done
}
for target in "${TARGETS[@]}"; do meta_bench "$target"; done

# A source tree: this repository's tracked files plus some system headers (a few thousand
# small files, tens of MB), so that the times are long enough to compare.
SRC_TAR=$T/src.tar
git -C "$REPO" archive --format=tar --prefix=nighfs/ HEAD >"$SRC_TAR"
tar -rf "$SRC_TAR" -C /usr/include linux boost/asio
SRC_FILES=$(tar -tf "$SRC_TAR" | wc -l)
SRC_MB=$(awk -v b="$(stat -c %s "$SRC_TAR")" 'BEGIN { printf "%.1f", b / 1e6 }')
TREE_ROWS=("tar x (then syncfs)" "cp -a of the tree (then syncfs)" "rm -rf of the tree")
tree_bench() {
  local target=$1 d t0 t1
  d=${DIR[$target]}/tree
  mkdir -p "$d/x"
  t0=$EPOCHREALTIME
  tar -xf "$SRC_TAR" -C "$d/x"
  sync -f "$d"
  t1=$EPOCHREALTIME
  RESULT["tar x (then syncfs)|$target"]=$(elapsed "$t0" "$t1")
  t0=$EPOCHREALTIME
  cp -a "$d/x" "$d/y"
  sync -f "$d"
  t1=$EPOCHREALTIME
  RESULT["cp -a of the tree (then syncfs)|$target"]=$(elapsed "$t0" "$t1")
  t0=$EPOCHREALTIME
  rm -rf "$d"
  t1=$EPOCHREALTIME
  RESULT["rm -rf of the tree|$target"]=$(elapsed "$t0" "$t1")
  for row in "${TREE_ROWS[@]}"; do log "$target: $row: ${RESULT["$row|$target"]} s"; done
}
# nullfs has no directories: the tree workloads are local disk vs nighfs only.
for target in local nighfs; do tree_bench "$target"; done

# ---------------------------------------------------------------------------------------------
# Report.

ratio() {  # nighfs / local for rates; local / nighfs for times: >1 means nighfs is faster
  awk -v a="$1" -v b="$2" 'BEGIN { num = "^[0-9]+([.][0-9]+)?$";
    if (a !~ num || b !~ num || a == 0 || b == 0) print "n/a"; else printf "%.2f×", a / b }'
}
table() {
  local row
  [[ -z $MOUNT_PID ]] || record_peak_rss
  echo "| Workload | Unit | Local disk | nullfs (FUSE) | nighfs | nighfs ÷ local |"
  echo "|---|---|---:|---:|---:|---:|"
  for row in "${FIO_ROWS[@]}"; do
    echo "| $row | ${FIO_UNIT[$row]} | ${RESULT["$row|local"]:-n/a} |" \
         "${RESULT["$row|nullfs"]:-n/a} | ${RESULT["$row|nighfs"]:-n/a} |" \
         "$(ratio "${RESULT["$row|nighfs"]:-}" "${RESULT["$row|local"]:-}") |"
  done
  for row in "${META_ROWS[@]}"; do
    echo "| $row ($NFILES files) | ops/s | ${RESULT["$row|local"]} | ${RESULT["$row|nullfs"]} |" \
         "${RESULT["$row|nighfs"]} | $(ratio "${RESULT["$row|nighfs"]}" "${RESULT["$row|local"]}") |"
  done
  for row in "${TREE_ROWS[@]}"; do
    printf '| %s (%s files, %s MB) | seconds | %.2f | n/a | %.2f | %s |\n' "$row" "$SRC_FILES" \
      "$SRC_MB" "${RESULT["$row|local"]}" "${RESULT["$row|nighfs"]}" \
      "$(ratio "${RESULT["$row|local"]}" "${RESULT["$row|nighfs"]}")"
  done
  echo
  echo "mount.nighfs peak RSS (VmHWM, highest of every mount in this run):" \
       "$((PEAK_RSS_KIB / 1024)) MiB; budget cache + writeback + 128 MiB = 896 MiB with the defaults."
}

commands() {
  local row
  echo '```sh'
  echo "# fio, run once per target with DIR = the local folder, the nullfs mount, the nighfs mount"
  for row in "${FIO_ROWS[@]}"; do
    echo "# $row$( ((FIO_COLD[$row])) && echo " (after: sync; echo 3 > /proc/sys/vm/drop_caches; nighfs also remounted)")$(
      [[ -n ${FIO_ONLY[$row]:-} ]] && echo " (${FIO_ONLY[$row]} only)")"
    echo "fio ${FIO_COMMON[*]} --directory=\$DIR ${FIO_ARGS[$row]}"
  done
  cat <<EOF
# metadata: N=$NFILES files f0..f\$((N-1)) in DIR/meta, timed with \$EPOCHREALTIME
for f in "\${files[@]}"; do : > "\$f"; done                  # create + close
sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1.2          # then: stat -c %i -- "\${files[@]}"
sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1.2          # then: ls -l DIR/meta
rm -f -- "\${files[@]}"                                     # unlink
# trees: src.tar = git archive --prefix=nighfs/ HEAD + /usr/include/{linux,boost/asio}
tar -xf src.tar -C DIR/tree/x && sync -f DIR/tree
cp -a DIR/tree/x DIR/tree/y && sync -f DIR/tree
rm -rf DIR/tree
EOF
  echo '```'
}

machine() {
  local cpu mem fstype buildtype
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  fstype=$(findmnt -no FSTYPE,SOURCE -T "$T" | tr -s ' ')
  buildtype=$(meson introspect --buildoptions "$BUILD_DIR" 2>/dev/null |
              jq -r '.[] | select(.name == "buildtype") | .value' || echo unknown)
  cat <<EOF
- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nighfs commit $(git -C "$REPO" rev-parse --short HEAD) (plus uncommitted work), meson buildtype \`$buildtype\`
- CPU: $(nproc) cores, $cpu; memory $mem; kernel $(uname -r)
- Local disk: \`$WORK_PARENT\` ($fstype); the nighfs store (file://) and the metadata database are on the same disk
- fio $(fio --version | sed 's/^fio-//'), libfuse $(pkg-config --modversion fuse3)
- nighfs: block size 4 MiB, mount defaults (cache_size 512 MiB, readahead 2 blocks, writeback_limit 256 MiB, attr/entry timeouts 1 s); metadata server on 127.0.0.1 with SQLite in WAL mode, synchronous=FULL
- Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine at the same time makes single runs noisy: compare within a run)
- Sizes: ${SIZE_MIB} MiB per sequential file (4 × $((SIZE_MIB / 4)) MiB for 4 jobs); sequential jobs bounded at ${RUNTIME} s, random jobs run ${RAND_RUNTIME} s
EOF
}

REPORT=$(
  echo "<!-- bench:begin: generated by scripts/bench.sh; edit outside these markers -->"
  echo "### Machine"
  echo
  machine
  echo
  echo "### Results"
  echo
  echo "Higher is better for MB/s, IOPS and ops/s; lower for seconds. The last column is"
  echo "nighfs's rate as a fraction of the local disk's (for times: local time ÷ nighfs time)."
  echo
  table
  echo
  echo "### Exact commands"
  echo
  commands
  echo "<!-- bench:end -->"
)
echo
table
echo
if [[ $OUT != - ]]; then
  mkdir -p "$(dirname "$OUT")"
  if [[ -f $OUT ]] && grep -q '^<!-- bench:begin' "$OUT" && grep -q '^<!-- bench:end' "$OUT"; then
    REPORT=$REPORT awk '
      /^<!-- bench:begin/ { print ENVIRON["REPORT"]; skip = 1; next }
      /^<!-- bench:end/ { skip = 0; next }
      !skip { print }' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
  else
    { echo "# nighfs benchmarks"; echo; echo "$REPORT"; } >"$OUT"
  fi
  log "wrote $OUT"
fi
