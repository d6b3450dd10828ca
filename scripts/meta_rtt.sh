#!/usr/bin/env bash
# Metadata round trips per operation (issue 14): creates, stats and unlinks of N empty files in
# one folder of a fresh nighfs mount with the default attr/entry timeouts (1 s), `tar x`
# (then syncfs) of /usr/include/linux and `rm -rf` of it once the kernel's entries expired;
# then the metadata RPCs the mount sent per operation (per tree entry for tar and rm -rf), by
# method, counted on its sockets with strace.
#   scripts/meta_rtt.sh BIN_DIR [N]
# BIN_DIR holds nighfs-meta, mount.nighfs and nighfs (e.g. copies of build/meta/nighfs-meta,
# build/mount/mount.nighfs and build/tools/nighfs), so two builds compare side by side.
# The metadata server serves plain HTTP on loopback here (--insecure-plaintext) so that strace
# sees the request lines; rates are timed in a first pass without strace, RPCs counted in a
# second pass with it. Needs root, FUSE and strace; stops what it started by PID on exit.
# META_ARGS (words) go to nighfs-meta, e.g. META_ARGS=--namespace-sync=batched.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(cd "$1" && pwd)
N=${2:-1000}
log() { printf '[meta_rtt %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
source "$REPO/scripts/lib/processes.sh"
META_BIN=$BIN/nighfs-meta CLI_BIN=$BIN/nighfs MOUNT_BIN=$BIN/mount.nighfs
scratch_with_cleanup rtt
mkdir -p "$T/meta" "$T/store" "$MNT" "$T/run"
"$META_BIN" --listen 127.0.0.1:0 --port-file "$T/meta.port" --state-dir "$T/meta" \
  --insecure-plaintext --allow-file-root "$T" ${META_ARGS:-} >"$T/meta.log" 2>&1 &
META_PID=$!
for _ in $(seq 100); do [[ -s $T/meta.port ]] && break; sleep 0.1; done
[[ -s $T/meta.port ]] || die "nighfs-meta did not start: $(tail -3 "$T/meta.log")"
ADDR=http://127.0.0.1:$(<"$T/meta.port")
export NIGHFS_ADMIN_TOKEN_FILE=$T/meta/admin.token
"$CLI_BIN" --meta "$ADDR" configure create volume bench --store "file://$T/store" >/dev/null
"$CLI_BIN" --meta "$ADDR" configure create token --volume bench --access write --out "$T/tok" >/dev/null
NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "bench@$ADDR" "$MNT" -f -o "token_file=$T/tok" \
  >"$T/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do is_mounted "$MNT" && break; sleep 0.1; done
is_mounted "$MNT" || die "mount.nighfs did not mount: $(tail -3 "$T/mount.log")"

# run DIR [MARKS]: creates (O_EXCL), stats right after, stats once the kernel's caches expired
# (1.2 s), unlinks of N files in DIR; prints each rate. With MARKS, appends after each step
# the number of requests in the strace output so far.
count() { grep -c 'MetaService/' "$T/strace" 2>/dev/null || true; }
run() {
  local dir=$1 marks=${2:-}
  mkdir "$dir"
  [[ -z $marks ]] || echo "start $(count)" >"$marks"
  step() {  # name python-statement-on-p
    python3 -c "import os, time
t = time.monotonic()
for i in range($N): p = '$dir/f%d' % i; $2
print('$1/s %.0f' % ($N / (time.monotonic() - t)), end='  ')"
    [[ -z $marks ]] || { sleep 0.5; echo "$1 $(count)" >>"$marks"; }
  }
  step creates "os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))"
  step stats-warm "os.stat(p)"
  sleep 1.2
  [[ -z $marks ]] || echo "idle $(count)" >>"$marks"
  step stats-expired "os.stat(p)"
  step unlinks "os.unlink(p)"
  echo
}
log "timing $N files"
run "$MNT/timed"
TAR=$T/linux.tar
tar -cf "$TAR" -C /usr/include linux
ENTRIES=$(tar -tf "$TAR" | wc -l)
tree() {  # folder; prints seconds
  mkdir "$1"
  local t0=$EPOCHREALTIME
  tar -xf "$TAR" -C "$1"
  sync -f "$1"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}
echo "tar x + syncfs of $ENTRIES entries: $(tree "$MNT/tree1") s"
rmtree() {  # folder, after the kernel's entries of it expired; prints seconds
  sleep 1.2
  local t0=$EPOCHREALTIME
  rm -rf "$1"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}
echo "rm -rf of $ENTRIES entries: $(rmtree "$MNT/tree1") s"

# Counted: the same with strace on the mount's socket writes (each request line names its
# method), the trace cut between phases at its length then.
log "counting RPCs"
strace -f -qq -e trace=sendto,write,writev,sendmsg -s 80 -p "$MOUNT_PID" -o "$T/strace" &
STRACE_PID=$!
sleep 1
run "$MNT/counted" "$T/marks" >/dev/null
tree "$MNT/tree2" >/dev/null
sleep 0.5
echo "tar $(count)" >>"$T/marks"
rmtree "$MNT/tree2" >/dev/null
sleep 0.5
echo "rm-rf $(count)" >>"$T/marks"
kill -INT "$STRACE_PID" 2>/dev/null || true
wait "$STRACE_PID" 2>/dev/null || true
python3 - "$T/strace" "$T/marks" "$N" "$ENTRIES" <<'PY'
import re, sys, collections
lines = [m.group(1) for l in open(sys.argv[1], errors="replace")
         for m in [re.search(r'MetaService/(\w+)', l)] if m]
marks = [l.split() for l in open(sys.argv[2])]
n, entries = int(sys.argv[3]), int(sys.argv[4])
for (_, a), (ph, b) in zip(marks, marks[1:]):
    if ph == "idle":
        continue
    c = collections.Counter(lines[int(a):int(b)])
    n = entries if ph in ("tar", "rm-rf") else n
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(c.items()))
    print(f"{ph:9} RPCs per file {sum(c.values()) / n:.2f}  ({detail})")
PY
