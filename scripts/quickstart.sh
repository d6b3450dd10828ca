#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a mounted nighfs volume on the embedded default:
# nighfs-meta with its SQLite database and a local-folder block store, all under one state
# folder (default ./state), and volume "demo" mounted at <state>/mnt.
#   bash scripts/quickstart.sh          set up, build, start, create, mount
#   bash scripts/quickstart.sh stop     unmount and stop the metadata server
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
state="$(realpath -m "${NIGHFS_STATE:-$top/state}")"
port="${NIGHFS_PORT:-7420}"
meta="127.0.0.1:$port"
mnt="$state/mnt"

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

if [ -f "$state/meta.pid" ] && kill -0 "$(cat "$state/meta.pid")" 2>/dev/null; then
  echo "nighfs-meta already running (pid $(cat "$state/meta.pid"))"
else
  # Writes the admin token to $state/meta/admin.token (0600) on its first start; file://
  # stores only under $state/blocks.
  nohup "$bin/meta/nighfs-meta" --listen "$meta" --state-dir "$state/meta" \
    --allow-file-root "$state/blocks" >>"$state/meta.log" 2>&1 &
  echo $! >"$state/meta.pid"
  for _ in $(seq 1 100); do
    curl -sf "http://$meta/healthz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$state/meta.pid")" 2>/dev/null || { cat "$state/meta.log"; exit 1; }
    sleep 0.1
  done
  echo "nighfs-meta listening on $meta (pid $(cat "$state/meta.pid"), database $state/meta/meta.db)"
fi

# Administration needs the admin token; the mount gets a volume token of its own.
export NIGHFS_ADMIN_TOKEN_FILE="$state/meta/admin.token"
for _ in $(seq 1 50); do [ -s "$NIGHFS_ADMIN_TOKEN_FILE" ] && break; sleep 0.1; done
if ! "$bin/tools/nighfs" --meta "$meta" configure list volumes | grep -q '^demo '; then
  "$bin/tools/nighfs" --meta "$meta" configure create volume demo --store "file://$state/blocks"
fi
token="$state/demo-write.token"
if [ ! -s "$token" ]; then
  "$bin/tools/nighfs" --meta "$meta" configure create token --volume demo --access write \
    --name quickstart --out "$token"
fi

if grep -qs " $mnt fuse" /proc/mounts; then
  echo "demo is already mounted at $mnt"
else
  "$bin/mount/mount.nighfs" "demo@$meta" "$mnt" -o "log_file=$state/mount.log,token_file=$token"
fi

cat <<MSG

nighfs volume "demo" is mounted at:
  $mnt

Use it like any folder:
  cp -a /usr/share/doc/bash $mnt/ && ls -l $mnt/bash
  $bin/tools/nighfs --meta $meta status        # how the mount routes and why, cache stats
Unmount and stop:
  fusermount3 -u $mnt      (or: umount $mnt)
  bash scripts/quickstart.sh stop
Logs: $state/meta.log, $state/mount.log
Credentials (mode 0600): admin token $state/meta/admin.token, volume token $token
  (more: NIGHFS_ADMIN_TOKEN_FILE=$state/meta/admin.token $bin/tools/nighfs --meta $meta \\
         configure create token --volume demo --access read --path /sub --out FILE)
MSG
