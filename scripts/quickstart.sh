#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a mounted nighfs volume on the embedded default:
# nighfs-meta with its SQLite database and a local-folder block store, all under one state
# folder (default ./state), and volume "demo" mounted at <state>/mnt. The server speaks TLS with
# a lab CA made on the first run under <state>/tls (nighfs configure init tls); the mount and
# the CLI trust that CA (-o ca_file=, --ca-file).
#   bash scripts/quickstart.sh          set up, build, start, create, mount
#   bash scripts/quickstart.sh stop     unmount and stop the metadata server
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
state="$(realpath -m "${NIGHFS_STATE:-$top/state}")"
port="${NIGHFS_PORT:-7420}"
meta="127.0.0.1:$port"
mnt="$state/mnt"
tls="$state/tls"
ca="$tls/ca.pem"

stop() {
  if grep -qs " $mnt fuse" /proc/mounts; then
    fusermount3 -u "$mnt" && echo "unmounted $mnt"
  fi
  if [ -f "$state/meta.pid" ] && kill -0 "$(cat "$state/meta.pid")" 2>/dev/null; then
    kill "$(cat "$state/meta.pid")"
    echo "stopped nighfs-meta (pid $(cat "$state/meta.pid"))"
  fi
  rm -f "$state/meta.pid"
}

if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

NIGHFS_SKIP_NPM=1 bash "$top/scripts/setup.sh"
bash "$top/scripts/build.sh" >/dev/null
bin="$top/build"
mkdir -p "$state/meta" "$state/blocks" "$mnt"
if [ ! -f "$tls/server.pem" ]; then
  "$bin/tools/nighfs" configure init tls "$tls" >/dev/null
  echo "made a lab CA and a server certificate in $tls"
fi
cli=("$bin/tools/nighfs" --meta "$meta" --ca-file "$ca")

if [ -f "$state/meta.pid" ] && kill -0 "$(cat "$state/meta.pid")" 2>/dev/null; then
  echo "nighfs-meta already running (pid $(cat "$state/meta.pid"))"
else
  # Writes the admin token to $state/meta/admin.token (0600) on its first start; file://
  # stores only under $state/blocks.
  nohup "$bin/meta/nighfs-meta" --listen "$meta" --state-dir "$state/meta" \
    --tls-cert "$tls/server.pem" --tls-key "$tls/server.key" \
    --allow-file-root "$state/blocks" >>"$state/meta.log" 2>&1 &
  echo $! >"$state/meta.pid"
  for _ in $(seq 1 100); do
    curl -sf --cacert "$ca" "https://$meta/healthz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$state/meta.pid")" 2>/dev/null || { cat "$state/meta.log"; exit 1; }
    sleep 0.1
  done
  echo "nighfs-meta listening on https://$meta (pid $(cat "$state/meta.pid"), database $state/meta/meta.db)"
fi

# Administration needs the admin token; the mount gets a volume token of its own.
export NIGHFS_ADMIN_TOKEN_FILE="$state/meta/admin.token"
for _ in $(seq 1 50); do [ -s "$NIGHFS_ADMIN_TOKEN_FILE" ] && break; sleep 0.1; done
if ! "${cli[@]}" configure list volumes | grep -q '^demo '; then
  "${cli[@]}" configure create volume demo --store "file://$state/blocks"
fi
token="$state/demo-write.token"
if [ ! -s "$token" ]; then
  "${cli[@]}" configure create token --volume demo --access write \
    --name quickstart --out "$token"
fi

if grep -qs " $mnt fuse" /proc/mounts; then
  echo "demo is already mounted at $mnt"
else
  "$bin/mount/mount.nighfs" "demo@$meta" "$mnt" -o "ca_file=$ca,log_file=$state/mount.log,token_file=$token"
fi

cat <<MSG

nighfs volume "demo" is mounted at:
  $mnt

Use it like any folder:
  cp -a /usr/share/doc/bash $mnt/ && ls -l $mnt/bash
  $bin/tools/nighfs status                      # transport (TLS), routes and why, cache stats
Administer it (configure commands need the admin token and the lab CA):
  export NIGHFS_META=$meta NIGHFS_CA_FILE=$ca NIGHFS_ADMIN_TOKEN_FILE=$state/meta/admin.token
  $bin/tools/nighfs configure list volumes
  $bin/tools/nighfs configure create token --volume demo --access read --path /sub --out FILE
Unmount and stop:
  fusermount3 -u $mnt      (or: umount $mnt)
  bash scripts/quickstart.sh stop
Logs: $state/meta.log, $state/mount.log
Credentials (mode 0600): admin token $state/meta/admin.token, volume token $token
MSG
