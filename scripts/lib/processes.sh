# Process helpers shared by scripts/bench.sh and scripts/soak.sh (sourced, not run). The caller
# defines log() and die().

is_mounted() {  # the mount point, as the 5th field of mountinfo
  awk -v mp="$1" '$5 == mp { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Waits up to $2 seconds for PID $1 (a child of this shell) to exit; TERM, then KILL, after.
stop_pid() {
  local pid=$1 grace=$2 i
  [[ -n $pid ]] || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

# Stops the daemons whose PIDs are given (children of this shell; empty ones are skipped):
# TERM, up to 10 s to exit, then KILL.
stop_daemons() {
  local pid
  for pid in "$@"; do
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    stop_pid "$pid" 10
  done
}

unmount_fuse() {  # mount point, daemon PID
  local mp=$1 pid=$2
  if [[ -n $mp ]] && is_mounted "$mp"; then
    fusermount3 -u "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  fi
  # mount.nighfs flushes what is buffered before it exits: give it time.
  stop_pid "$pid" 60
  if [[ -n $mp ]] && is_mounted "$mp"; then umount -l "$mp" 2>/dev/null || true; fi
}

# Starts nighfs-meta on a free loopback port with its state in $T/$META_NAME (default meta; its
# port file and log beside it) (file:// stores allowed
# under $T, more flags in $META_EXTRA_ARGS, split on spaces); sets META_PID and META_ADDR, and exports NIGHFS_ADMIN_TOKEN_FILE (the admin token
# nighfs-meta wrote) for the nighfs CLI. Needs META_BIN and T.
# Over TLS, as users run it: a lab CA in $T/tls; META_CA is the file clients must trust
# (nighfs --ca-file, mount.nighfs -o ca_file=).
start_meta() {
  local i name=${META_NAME:-meta}
  [[ -f $T/tls/server.pem ]] || "$CLI_BIN" configure init tls "$T/tls" >/dev/null
  META_CA=$T/tls/ca.pem
  # shellcheck disable=SC2086
  "$META_BIN" --listen 127.0.0.1:0 --port-file "$T/$name.port" --state-dir "$T/$name" \
    --tls-cert "$T/tls/server.pem" --tls-key "$T/tls/server.key" \
    --allow-file-root "$T" --gc-grace 5 ${META_EXTRA_ARGS:-} >"$T/$name.log" 2>&1 &
  META_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $T/$name.port ]] && break
    kill -0 "$META_PID" 2>/dev/null || die "nighfs-meta exited: $(tail -5 "$T/$name.log")"
    sleep 0.1
  done
  [[ -s $T/$name.port ]] || die "nighfs-meta did not start: $(tail -5 "$T/$name.log")"
  META_ADDR=127.0.0.1:$(<"$T/$name.port")
  export NIGHFS_ADMIN_TOKEN_FILE=$T/$name/admin.token
}

# Writes a write token for volume $1 to file $2 (mode 0600) for mount -o token_file=. Needs
# CLI_BIN, META_ADDR and start_meta's NIGHFS_ADMIN_TOKEN_FILE.
make_token() {
  "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create token --volume "$1" --access write \
    --out "$2" >/dev/null || die "cannot create a token for volume $1"
}

# A TCP port on 127.0.0.1 that was free a moment ago (for daemons without a --port-file).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for something to accept connections on 127.0.0.1:$1 while PID $3 lives.
wait_port() {
  local port=$1 secs=$2 pid=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Starts s3rver (scripts/setup.sh; S3RVER_BIN) on a free loopback port with its objects in $1 and
# bucket $2 made at start-up, preloading tests/blockstore/s3rver_fixes.js as the tests do (and
# the script $S3RVER_REQUIRE after it, if set). Sets S3RVER_PID and S3RVER_PORT. Needs REPO and T.
start_s3rver() {
  local dir=$1 bucket=$2
  mkdir -p "$dir"
  S3RVER_PORT=$(free_port)
  NODE_OPTIONS="--openssl-legacy-provider --require $REPO/tests/blockstore/s3rver_fixes.js${S3RVER_REQUIRE:+ --require $S3RVER_REQUIRE}" \
    "$S3RVER_BIN" -d "$dir" -a 127.0.0.1 -p "$S3RVER_PORT" --silent \
    --configure-bucket "$bucket" >>"$T/s3rver.log" 2>&1 &
  S3RVER_PID=$!
  wait_port "$S3RVER_PORT" 30 "$S3RVER_PID" || die "s3rver did not start: $(tail -5 "$T/s3rver.log")"
}

# Starts nighfs-relay (RELAY_BIN) in front of 127.0.0.1:$1, more flags after it (e.g.
# --delay-ms 15 --bandwidth 100M); runtime changes through $T/relay.ctl + SIGUSR1 (see
# tests/relay/relay_main.cc). Sets RELAY_PID and RELAY_PORT. Needs T. Several relays: give each
# a RELAY_NAME (default "relay"), its files are then $T/NAME.{port,ctl,log}.
start_relay() {
  local upstream=$1 name=${RELAY_NAME:-relay} i
  shift
  rm -f "$T/$name.port"
  "$RELAY_BIN" --upstream "127.0.0.1:$upstream" --port-file "$T/$name.port" \
    --control "$T/$name.ctl" "$@" >>"$T/$name.log" 2>&1 &
  RELAY_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $T/$name.port ]] && break
    kill -0 "$RELAY_PID" 2>/dev/null || die "nighfs-relay exited: $(tail -5 "$T/$name.log")"
    sleep 0.1
  done
  [[ -s $T/$name.port ]] || die "nighfs-relay did not start"
  RELAY_PORT=$(<"$T/$name.port")
}

# Starts nighfs-proxy (PROXY_BIN) on a free loopback port in front of the volumes of META_ADDR:
# TLS with start_meta's lab files, a proxy token of its own ($T/proxy.token, made as admin),
# its cache and journal in $T/proxy; more flags in "$@" (--creds-file F, --sync, ...). Sets
# PROXY_PID, PROXY_ADDR (HOST:PORT, what mounts take as -o proxy=) and PROXY_URL (https://...).
# Needs PROXY_BIN, CLI_BIN, META_ADDR, META_CA (start_meta) and T. Several proxies: give each a
# PROXY_NAME (default "proxy": folders in $T/NAME, log $T/NAME.log) and an empty PROXY_PORT;
# PROXY_ADVERTISE (default its own HOST:PORT) is the address it advertises, e.g. its relay's.
start_proxy() {
  local port name=${PROXY_NAME:-proxy} i
  mkdir -p "$T/$name/disk"
  if [[ ! -s $T/proxy.token ]]; then
    "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create token --access proxy \
      --out "$T/proxy.token" >/dev/null || die "cannot create a proxy token"
  fi
  port=${PROXY_PORT:-$(free_port)}
  "$PROXY_BIN" --listen "127.0.0.1:$port" --advertise "${PROXY_ADVERTISE:-127.0.0.1:$port}" \
    --meta "$META_ADDR" --meta-token-file "$T/proxy.token" --ca-file "$META_CA" \
    --tls-cert "$T/tls/server.pem" --tls-key "$T/tls/server.key" \
    --disk-folder "$T/$name/disk" "$@" >>"$T/$name.log" 2>&1 &
  PROXY_PID=$!
  PROXY_PORT=$port
  PROXY_ADDR=127.0.0.1:$port
  PROXY_URL=https://127.0.0.1:$port
  for ((i = 0; i < 200; i++)); do
    curl -sf --cacert "$META_CA" "$PROXY_URL/ping" >/dev/null 2>&1 && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || die "nighfs-proxy exited: $(tail -5 "$T/$name.log")"
    sleep 0.1
  done
  die "nighfs-proxy did not answer /ping: $(tail -5 "$T/$name.log")"
}

# One sample of nighfs-proxy's /metrics: the sum of metric $1's samples ("" if absent).
proxy_metric() {
  curl -sf --cacert "$META_CA" "$PROXY_URL/metrics" |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF; found = 1 } END { if (found) print s }'
}

# on_exit FN: runs FN when the script exits, also after Ctrl-C or SIGTERM (which exit 130 and
# 143, so FN sees a failure). FN should start with `trap - EXIT INT TERM`.
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# finish_scratch RC DIR [BULK...]: the end of a script's scratch folder DIR: kept whole with
# KEEP=1; after a failure (RC != 0) its logs are kept and only the BULK paths (stores, caches)
# are removed; after success it is removed. Uses the script's `log`.
finish_scratch() {
  local rc=$1 dir=$2
  shift 2
  [[ -n $dir && -d $dir ]] || return 0
  if ((${KEEP:-0})); then
    log "scratch folder kept: $dir"
  elif ((rc != 0)); then
    (($# == 0)) || rm -rf "$@"
    log "failed; logs kept in $dir"
  else
    rm -rf "$dir"
  fi
}

# A scratch folder for one meta server and one mount: sets T (mktemp -d /tmp/nighfs-$1.XXXXXX,
# mode 755 so FUSE callers can reach it), MNT=$T/mnt, empty META_PID and MOUNT_PID, and an EXIT
# trap that unmounts MNT, stops META_PID and removes T. For the small measuring scripts
# (meta_rtt.sh, bigdir.sh); the benchmarks have their own, longer, cleanups.
scratch_with_cleanup() {
  T=$(mktemp -d "/tmp/nighfs-$1.XXXXXX")
  chmod 755 "$T"
  META_PID= MOUNT_PID= MNT=$T/mnt
  trap scratch_cleanup EXIT
}
scratch_cleanup() {
  unmount_fuse "$MNT" "$MOUNT_PID"
  if [[ -n $META_PID ]]; then kill -TERM "$META_PID" 2>/dev/null || true; stop_pid "$META_PID" 10; fi
  rm -rf "$T"
}
