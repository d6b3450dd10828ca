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

unmount_fuse() {  # mount point, daemon PID
  local mp=$1 pid=$2
  if [[ -n $mp ]] && is_mounted "$mp"; then
    fusermount3 -u "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  fi
  # mount.nighfs flushes what is buffered before it exits: give it time.
  stop_pid "$pid" 60
  if [[ -n $mp ]] && is_mounted "$mp"; then umount -l "$mp" 2>/dev/null || true; fi
}

# Starts nighfs-meta on a free loopback port with its state in $T/meta (file:// stores allowed
# under $T); sets META_PID and META_ADDR, and exports NIGHFS_ADMIN_TOKEN_FILE (the admin token
# nighfs-meta wrote) for the nighfs CLI. Needs META_BIN and T.
# Over TLS, as users run it: a lab CA in $T/tls; META_CA is the file clients must trust
# (nighfs --ca-file, mount.nighfs -o ca_file=).
start_meta() {
  local i
  [[ -f $T/tls/server.pem ]] || "$CLI_BIN" configure init tls "$T/tls" >/dev/null
  META_CA=$T/tls/ca.pem
  "$META_BIN" --listen 127.0.0.1:0 --port-file "$T/meta.port" --state-dir "$T/meta" \
    --tls-cert "$T/tls/server.pem" --tls-key "$T/tls/server.key" \
    --allow-file-root "$T" --gc-grace 5 >"$T/meta.log" 2>&1 &
  META_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s $T/meta.port ]] && break
    kill -0 "$META_PID" 2>/dev/null || die "nighfs-meta exited: $(tail -5 "$T/meta.log")"
    sleep 0.1
  done
  [[ -s $T/meta.port ]] || die "nighfs-meta did not start: $(tail -5 "$T/meta.log")"
  META_ADDR=127.0.0.1:$(<"$T/meta.port")
  export NIGHFS_ADMIN_TOKEN_FILE=$T/meta/admin.token
}

# Writes a write token for volume $1 to file $2 (mode 0600) for mount -o token_file=. Needs
# CLI_BIN, META_ADDR and start_meta's NIGHFS_ADMIN_TOKEN_FILE.
make_token() {
  "$CLI_BIN" --meta "$META_ADDR" --ca-file "$META_CA" configure create token --volume "$1" --access write \
    --out "$2" >/dev/null || die "cannot create a token for volume $1"
}
