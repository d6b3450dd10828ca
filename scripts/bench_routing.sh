#!/usr/bin/env bash
# Benchmarks proxy-group routing (issue 13) on loopback: two proxy groups behind nighfs-relay
# (near: 2 members at 1 ms RTT; mid: 1 member at 10 ms RTT), a volume on a file:// store the
# mount can also reach directly, nighfs-meta and one FUSE mount with the default probe settings
# (probe_interval=1, probe_timeout=0.5) unless --mount-opts says otherwise. It measures and
# prints, as markdown:
#  - the routing cost per block request with and without groups (tests/proxyselect/proxyselect_bench);
#  - failover: kill -9 of every member of the selected group while an application writes 4 KiB
#    files one after another (python3, each op timestamped): the time to the first file stored
#    after the kill, the longest stall, the application's errors, and the switch time in
#    `nighfs status --json`; the same when every group dies (direct fallback);
#  - recovery: the time from the group's proxies answering /ping again to the mount routing
#    through it again (from status);
#  - the route switches under ±30% jitter on every relay over --jitter-seconds (goal 0).
#
# Self-contained: builds what it needs, runs in a scratch folder, stops and unmounts what it
# started (by PID) on exit, also on failure or Ctrl-C. Needs root (FUSE), python3, jq, curl.
# Speed is reported here, never asserted in tests.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench_routing.sh [options]
  --build-dir DIR       meson build folder (default: $NIGHFS_BUILD_DIR, else REPO/build)
  --work-dir DIR        parent of the scratch folder (default: /work if it exists, else the repo's parent)
  --trials N            failover/recovery trials (default 3)
  --jitter-seconds S    how long the jitter run lasts (default 60)
  --mount-opts OPTS     more mount options, e.g. probe_interval=0.2,probe_timeout=0.3
  --no-cost             skip proxyselect_bench (about 25 s of CPU)
  --quick               --trials 1 --jitter-seconds 10 (a smoke run)
  --keep                leave the scratch folder (logs) in place
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
WORK_PARENT=/work
[[ -d $WORK_PARENT ]] || WORK_PARENT=$(dirname "$REPO")
TRIALS=3
JITTER_SECONDS=60
MOUNT_OPTS=""
COST=1
KEEP=0
while (($#)); do
  case $1 in
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift 2 ;;
    --work-dir) WORK_PARENT=$2; shift 2 ;;
    --trials) TRIALS=$2; shift 2 ;;
    --jitter-seconds) JITTER_SECONDS=$2; shift 2 ;;
    --mount-opts) MOUNT_OPTS=$2; shift 2 ;;
    --no-cost) COST=0; shift ;;
    --quick) TRIALS=1 JITTER_SECONDS=10; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$TRIALS" "$JITTER_SECONDS"; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "bench_routing.sh: '$n' is not a positive integer" >&2; exit 2; }
done

log() { printf '[bench_routing %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts)"
for tool in curl python3 jq fusermount3 meson ninja; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------------------------------------
# State, and the cleanup that runs whatever happens.

T=""
META_PID="" MNT="" MNT_PID="" APP_PID=""
declare -A PPID_OF=() PPORT_OF=() RPID_OF=() RPORT_OF=()  # member name -> proxy/relay pid, port

# is_mounted, stop_pid, unmount_fuse, start_meta, make_token, start_relay, start_proxy, free_port
source "$REPO/scripts/lib/processes.sh"

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [[ -n $APP_PID ]] && { touch "$T/app.stop"; stop_pid "$APP_PID" 10; }
  [[ -n $MNT_PID ]] && unmount_fuse "$MNT" "$MNT_PID"
  for pid in "${PPID_OF[@]}" "${RPID_OF[@]}" "$META_PID"; do
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    stop_pid "$pid" 10
  done
  finish_scratch "$rc" "$T" "$T/blocks" "$T/meta" "$T"/p-*/
  exit "$rc"
}
on_exit cleanup
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Build.

log "building in $BUILD_DIR"
[[ -f $BUILD_DIR/build.ninja ]] || meson setup "$BUILD_DIR" "$REPO" >/dev/null
ninja -C "$BUILD_DIR" -j2 meta/nighfs-meta tools/nighfs mount/mount.nighfs proxy/nighfs-proxy \
  tests/relay/nighfs-relay tests/proxyselect/proxyselect_bench >/dev/null
META_BIN=$BUILD_DIR/meta/nighfs-meta
CLI_BIN=$BUILD_DIR/tools/nighfs
MOUNT_BIN=$BUILD_DIR/mount/mount.nighfs
PROXY_BIN=$BUILD_DIR/proxy/nighfs-proxy
RELAY_BIN=$BUILD_DIR/tests/relay/nighfs-relay
COST_BIN=$BUILD_DIR/tests/proxyselect/proxyselect_bench

T=$(mktemp -d "$WORK_PARENT/nighfs-bench-routing.XXXXXX")
mkdir -p "$T/meta" "$T/run" "$T/blocks"
cli() { "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" "$@"; }

# ---------------------------------------------------------------------------------------------
# Routing cost per block request (CPU only, in-memory member stores).

COST_OUT=""
if ((COST)); then
  log "routing cost per request (proxyselect_bench)"
  COST_OUT=$("$COST_BIN" 2>&1) || die "proxyselect_bench failed: $COST_OUT"
fi

# ---------------------------------------------------------------------------------------------
# nighfs-meta, the volume, the proxies behind their relays, the groups, the mount.

log "starting nighfs-meta, proxies and relays"
start_meta
cli configure create volume bench --store "file://$T/blocks" >/dev/null ||
  die "cannot create the volume"
make_token bench "$T/bench.token"

# start_member NAME RTT_MS: a relay adding RTT_MS/2 each way, then the proxy advertising it.
start_member() {
  local name=$1 rtt=$2 port
  port=${PPORT_OF[$name]:-$(free_port)}
  if [[ -z ${RPID_OF[$name]:-} ]]; then
    RELAY_NAME=r-$name start_relay "$port" --delay-ms "$(awk -v r="$rtt" 'BEGIN { print r / 2 }')"
    RPID_OF[$name]=$RELAY_PID
    RPORT_OF[$name]=$RELAY_PORT
  fi
  PROXY_NAME=p-$name PROXY_PORT=$port PROXY_ADVERTISE=127.0.0.1:${RPORT_OF[$name]} \
    start_proxy --no-writeback
  PPID_OF[$name]=$PROXY_PID
  PPORT_OF[$name]=$port
}
kill_member() {  # kill -9, as a crash
  kill -KILL "${PPID_OF[$1]}" 2>/dev/null || true
  wait "${PPID_OF[$1]}" 2>/dev/null || true
  PPID_OF[$1]=""
}
member_addr() { echo "127.0.0.1:${RPORT_OF[$1]}"; }
# relay_set NAME KEY=VALUE...: runtime change through the control file, waits until applied.
relay_set() {
  local name=$1 i
  shift
  rm -f "$T/r-$name.ctl.applied"
  printf '%s\n' "$@" >"$T/r-$name.ctl"
  kill -USR1 "${RPID_OF[$name]}"
  for ((i = 0; i < 100; i++)); do
    [[ -e $T/r-$name.ctl.applied ]] && return 0
    sleep 0.05
  done
  die "relay $name did not apply $*"
}

NEAR=(n1 n2)
MID=(m1)
for m in "${NEAR[@]}"; do start_member "$m" 1; done
for m in "${MID[@]}"; do start_member "$m" 10; done
group_id() { sed -n 's/^created proxy group \([0-9]*\)$/\1/p'; }
NEAR_ID=$(cli configure create proxy-group --provider-code lab --region-code near \
  --addresses "$(member_addr n1),$(member_addr n2)" | group_id)
MID_ID=$(cli configure create proxy-group --provider-code lab --region-code mid \
  --addresses "$(member_addr m1)" | group_id)
[[ -n $NEAR_ID && -n $MID_ID ]] || die "cannot create the proxy groups"
cli configure create volume-proxy-group --volume bench --proxy-group-id "$NEAR_ID" >/dev/null
cli configure create volume-proxy-group --volume bench --proxy-group-id "$MID_ID" >/dev/null
NEAR_NAME="$NEAR_ID lab/near"
MID_NAME="$MID_ID lab/mid"

MNT=$T/mnt
mkdir -p "$MNT"
OPTS="ca_file=$META_CA,token_file=$T/bench.token${MOUNT_OPTS:+,$MOUNT_OPTS}"
NIGHFS_RUN_DIR=$T/run "$MOUNT_BIN" "bench@$META_ADDR" "$MNT" -f -o "$OPTS" >>"$T/mount.log" 2>&1 &
MNT_PID=$!
for ((i = 0; i < 300; i++)); do
  is_mounted "$MNT" && break
  kill -0 "$MNT_PID" 2>/dev/null || die "mount.nighfs exited: $(tail -5 "$T/mount.log")"
  sleep 0.1
done
is_mounted "$MNT" || die "mount.nighfs did not mount"

status_json() { NIGHFS_RUN_DIR=$T/run "$CLI_BIN" status --json "$MNT" 2>/dev/null || echo '{}'; }
selected() { status_json | jq -r '.routing.selected_group // ""'; }
# wait_selected NAME SECONDS: polls status every 20 ms until NAME is selected ("" = direct).
wait_selected() {
  local want=$1 secs=$2 i
  for ((i = 0; i < secs * 50; i++)); do
    [[ $(selected) == "$want" ]] && return 0
    sleep 0.02
  done
  return 1
}
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) / 1e6 }'; }
# The time of the last switch to $1 ("" = direct), ns; 0 if none.
switch_ns() {
  status_json | jq -r --arg to "$1" \
    '[.routing.switches[]? | select((.to // "") == $to) | (.time_ns | tonumber)] | max // 0'
}

log "waiting for the near group"
wait_selected "$NEAR_NAME" 30 || die "the near group was not selected: $(status_json | jq -r .routing.text)"

# ---------------------------------------------------------------------------------------------
# The application: 4 KiB files written one after another, each op timestamped.

cat >"$T/app.py" <<'PY'
import os, sys, time
mnt, log_path, stop = sys.argv[1], sys.argv[2], sys.argv[3]
data = os.urandom(4096)
os.makedirs(os.path.join(mnt, "app"), exist_ok=True)
with open(log_path, "w", buffering=1) as log:
    i = 0
    while not os.path.exists(stop):
        path = os.path.join(mnt, "app", "f%d" % (i % 2000))
        t0 = time.time_ns()
        err = 0
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            err = e.errno
        log.write("%d %d %d\n" % (t0, time.time_ns(), err))
        i += 1
        time.sleep(0.005)
PY
rm -f "$T/app.stop"
python3 "$T/app.py" "$MNT" "$T/app.log" "$T/app.stop" &
APP_PID=$!
sleep 2

# app_after T0 WINDOW_END: from the app's log, "first_ok_ms max_stall_ms errors ops" for the ops
# after T0 (the first op completed successfully after T0, measured from T0; the longest op that
# overlapped the window; failed ops in the window).
app_after() {
  awk -v t0="$1" -v t1="$2" '
    $2 >= t0 && $1 <= t1 {
      ops++
      if ($3 != 0) errs++
      if ($2 - $1 > stall) stall = $2 - $1
      if ($3 == 0 && $1 >= t0 && (first == "" || $2 < first)) first = $2
    }
    END { printf "%.0f %.0f %d %d\n", (first == "" ? -1 : (first - t0) / 1e6), stall / 1e6, errs, ops }
  ' "$T/app.log"
}

# ---------------------------------------------------------------------------------------------
# Failover and recovery trials.

declare -a ROWS=()
for ((k = 1; k <= TRIALS; k++)); do
  log "trial $k: kill -9 the near group"
  wait_selected "$NEAR_NAME" 30 || die "near group not selected before trial $k"
  sleep 1
  t0=$(now_ns)
  for m in "${NEAR[@]}"; do kill_member "$m"; done
  wait_selected "$MID_NAME" 30 || die "the mid group did not take over: $(status_json | jq -r .routing.text)"
  seen=$(ms "$t0" "$(now_ns)")
  sleep 3
  sw=$(switch_ns "$MID_NAME")
  read -r first stall errs ops < <(app_after "$t0" "$(now_ns)")
  log "trial $k: restarting the near group"
  for m in "${NEAR[@]}"; do start_member "$m" 1; done
  t1=$(now_ns)  # the proxies answer /ping (start_proxy waited for it)
  wait_selected "$NEAR_NAME" 60 || die "the near group did not come back: $(status_json | jq -r .routing.text)"
  back_seen=$(ms "$t1" "$(now_ns)")
  back_sw=$(switch_ns "$NEAR_NAME")
  ROWS+=("| $k | $first | $stall | $errs / $ops | $(ms "$t0" "$sw") | $seen | $(ms "$t1" "$back_sw") | $back_seen |")
done

log "every group dies: direct fallback"
wait_selected "$NEAR_NAME" 30 || die "near group not selected"
sleep 1
t0=$(now_ns)
for m in "${NEAR[@]}" "${MID[@]}"; do kill_member "$m"; done
wait_selected "" 30 || die "the mount did not go direct: $(status_json | jq -r .routing.text)"
direct_seen=$(ms "$t0" "$(now_ns)")
sleep 3
direct_sw=$(switch_ns "")
read -r d_first d_stall d_errs d_ops < <(app_after "$t0" "$(now_ns)")
for m in "${NEAR[@]}" "${MID[@]}"; do start_member "$m" "$([[ $m == m* ]] && echo 10 || echo 1)"; done
t1=$(now_ns)
wait_selected "$NEAR_NAME" 60 || die "the near group did not come back after direct"
d_back_seen=$(ms "$t1" "$(now_ns)")
d_back_sw=$(switch_ns "$NEAR_NAME")

# ---------------------------------------------------------------------------------------------
# Jitter.

log "±30% jitter on every relay for $JITTER_SECONDS s"
sleep 2
for m in "${NEAR[@]}" "${MID[@]}"; do relay_set "$m" jitter-pct=30; done
j0=$(now_ns)
sel_before=$(selected)
sleep "$JITTER_SECONDS"
JITTER_SWITCHES=$(status_json | jq -r --arg t "$j0" \
  '[.routing.switches[]? | select((.time_ns | tonumber) > ($t | tonumber))] | length')
sel_after=$(selected)
read -r _ j_stall j_errs j_ops < <(app_after "$j0" "$(now_ns)")
touch "$T/app.stop"
stop_pid "$APP_PID" 10
APP_PID=""
ALL_ERRS=$(awk '$3 != 0 { n++ } END { print n + 0 }' "$T/app.log")
ALL_OPS=$(wc -l <"$T/app.log")
PROBE=$(status_json | jq -r '"probe_interval \(.routing.probe_interval_us | tonumber / 1e6) s, probe_timeout \(.routing.probe_timeout_us | tonumber / 1e6) s"')

# ---------------------------------------------------------------------------------------------
# Report.

cat <<EOF
Setup: group "near" = 2 nighfs-proxy behind nighfs-relay at 1 ms RTT, group "mid" = 1 at 10 ms
RTT, a file:// volume the mount can also reach directly; nighfs-meta, proxies (TLS,
--no-writeback) and one mount on loopback; mount $PROBE${MOUNT_OPTS:+ (-o $MOUNT_OPTS)}.
Application: one writer of 4 KiB files (open, write, close; each close stores a block through
the route in use), 5 ms apart.

| Trial | Kill -9 near group → first file stored (ms) | Longest op (ms) | App errors / ops | Switch near→mid in status (ms after kill) | Seen in status (ms) | Near back: switch (ms after its proxies answer /ping) | Seen in status (ms) |
|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")

Every group killed (direct fallback): first file stored $d_first ms after the kill, longest op
$d_stall ms, $d_errs errors in $d_ops ops; switch to direct $(ms "$t0" "$direct_sw") ms after the
kill (seen in status after $direct_seen ms). All back: near group selected again
$(ms "$t1" "$d_back_sw") ms after the proxies answered (seen after $d_back_seen ms).

±30% jitter on every relay for $JITTER_SECONDS s: **$JITTER_SWITCHES switches** (selected before:
"$sel_before", after: "$sel_after"), longest op $j_stall ms, $j_errs errors in $j_ops ops.

Application errors over the whole run: $ALL_ERRS in $ALL_OPS ops.
EOF
if [[ -n $COST_OUT ]]; then
  printf '\nRouting cost per block request (build/tests/proxyselect/proxyselect_bench):\n\n'
  printf '```\n%s\n```\n' "$COST_OUT"
fi
printf '\nMachine: %s cores; load at start %s, at end %s; commit %s; %s\n' "$(nproc)" \
  "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')" "$(date -u '+%Y-%m-%d %H:%M UTC')"
