# shellcheck shell=bash
# The file systems scripts/bench.sh compares (sourced, not run): how each is mounted, made cold
# and unmounted, and the peak RSS of its FUSE daemon. The caller defines log() and die(), sources
# processes.sh, and sets T (scratch folder) and, for the targets it selected: NULLFS_BIN;
# MOUNT_BIN, META_ADDR, META_CA (start_meta) and the volumes "file" and "s3" with their tokens in
# $T/file.token and $T/s3.token; S3RVER_PORT, BUCKET and the S3 credentials in $T/creds.
#
# Targets:
#   local        a folder on the local disk ($T/local)
#   nullfs       tests/bench/nullfs: stores nothing, the FUSE ceiling
#   nighfs-file  mount.nighfs on a file:// store in $T/store
#   nighfs-batched  mount.nighfs on a file:// store in $T/store-batched, through a second
#                nighfs-meta run with --namespace-sync=batched (BATCHED_META_ADDR, token in
#                $T/batched.token)
#   nighfs-s3    mount.nighfs straight to s3rver (s3://BUCKET/nighfs)
#   s3fs         s3fs-fuse on BUCKET:/s3fs
#   rclone-off   rclone mount s3:BUCKET/rclone-off --vfs-cache-mode off
#   rclone-full  rclone mount s3:BUCKET/rclone-full --vfs-cache-mode full (acknowledges from its
#                local cache, uploads later: "cold" waits for the uploads first)

declare -A DIR=()       # target -> folder the workloads run in
declare -A MNT_PID=()   # target -> FUSE daemon PID while mounted
declare -A PEAK_KIB=()  # target -> highest VmHWM of its daemons
declare -A RC_PORT=()   # rclone target -> its remote-control port (upload queue)

is_fuse_target() { [[ $1 != local ]]; }

# Writes the peers' configuration: the s3fs password file and the rclone remote "s3", both with
# the credentials in $T/creds (s3rver's defaults).
write_peer_configs() {
  local key secret
  key=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$T/creds")
  secret=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$T/creds")
  (umask 077
   echo "$key:$secret" >"$T/s3fs.passwd"
   cat >"$T/rclone.conf" <<EOF
[s3]
type = s3
provider = Other
access_key_id = $key
secret_access_key = $secret
endpoint = http://127.0.0.1:$S3RVER_PORT
region = us-east-1
force_path_style = true
EOF
  )
}

# The command line that mounts target $1 at $2 in the foreground (also printed in the report).
# NIGHFS_BENCH_MOUNT_OPTS: more -o options for the nighfs mounts (e.g. readahead=8), to compare
# settings on the same build.
mount_command() {
  local t=$1 mp=$2 extra=${NIGHFS_BENCH_MOUNT_OPTS:+,$NIGHFS_BENCH_MOUNT_OPTS}
  case $t in
    nullfs) echo "$NULLFS_BIN $mp" ;;
    nighfs-file)
      echo "$MOUNT_BIN file@$META_ADDR $mp -f -o ca_file=$META_CA,token_file=$T/file.token$extra" ;;
    nighfs-batched)
      echo "$MOUNT_BIN file@$BATCHED_META_ADDR $mp -f -o ca_file=$META_CA,token_file=$T/batched.token$extra" ;;
    nighfs-s3)
      echo "$MOUNT_BIN s3@$META_ADDR $mp -f -o ca_file=$META_CA,token_file=$T/s3.token,credentials=$T/creds$extra" ;;
    s3fs)
      echo "s3fs $BUCKET:/s3fs $mp -f -o passwd_file=$T/s3fs.passwd,url=http://127.0.0.1:$S3RVER_PORT,use_path_request_style" ;;
    rclone-off)
      echo "rclone --config $T/rclone.conf mount s3:$BUCKET/rclone-off $mp --vfs-cache-mode off --cache-dir $T/rclone-cache/rclone-off" ;;
    rclone-full)
      echo "rclone --config $T/rclone.conf mount s3:$BUCKET/rclone-full $mp --vfs-cache-mode full --cache-dir $T/rclone-cache/rclone-full --rc --rc-no-auth --rc-addr 127.0.0.1:${RC_PORT[$t]}" ;;
    *) die "no mount command for target $t" ;;
  esac
}

mount_target() {
  local t=$1 mp i
  if [[ $t == local ]]; then
    DIR[$t]=$T/local
    mkdir -p "${DIR[$t]}"
    return 0
  fi
  mp=$T/mnt-$t
  DIR[$t]=$mp
  mkdir -p "$mp"
  [[ $t != rclone-full || -n ${RC_PORT[$t]:-} ]] || RC_PORT[$t]=$(free_port)
  local -a cmd
  read -r -a cmd <<<"$(mount_command "$t" "$mp")"
  # rclone refuses a custom CA bundle with its HTTP transport ("LoadCustomCABundleError"); the
  # store is plain HTTP on loopback, so AWS_CA_BUNDLE is dropped for it.
  NIGHFS_RUN_DIR=$T/run env -u AWS_CA_BUNDLE "${cmd[@]}" >>"$T/$t.log" 2>&1 &
  MNT_PID[$t]=$!
  for ((i = 0; i < 300; i++)); do
    is_mounted "$mp" && return 0
    kill -0 "${MNT_PID[$t]}" 2>/dev/null || die "$t exited: $(tail -5 "$T/$t.log")"
    sleep 0.1
  done
  die "$t did not mount: $(tail -5 "$T/$t.log")"
}

record_peak_rss() {
  local t=$1 k
  [[ -n ${MNT_PID[$t]:-} ]] || return 0
  k=$(awk '/^VmHWM:/ { print $2 }' "/proc/${MNT_PID[$t]}/status" 2>/dev/null || true)
  if [[ -n $k ]] && ((k > ${PEAK_KIB[$t]:-0})); then PEAK_KIB[$t]=$k; fi
}

# rclone --vfs-cache-mode full acknowledges writes from its cache and uploads them later (after
# --vfs-write-back, 5 s): waits until nothing is queued or uploading (up to 30 minutes).
wait_rclone_uploads() {
  local t=$1 start=$SECONDS stats n
  while ((SECONDS - start < 1800)); do
    stats=$(curl -sf -X POST "http://127.0.0.1:${RC_PORT[$t]}/vfs/stats" 2>/dev/null) ||
      die "$t: no answer from its remote control: $(tail -3 "$T/$t.log")"
    n=$(jq '.diskCache.uploadsInProgress + .diskCache.uploadsQueued' <<<"$stats")
    if ((n == 0)); then
      ((SECONDS - start < 2)) || log "$t: waited $((SECONDS - start)) s for its uploads"
      return 0
    fi
    sleep 0.5
  done
  die "$t: uploads still pending after 30 minutes"
}

unmount_target() {
  local t=$1
  is_fuse_target "$t" || return 0
  [[ -n ${MNT_PID[$t]:-} ]] || return 0
  record_peak_rss "$t"
  [[ $t != rclone-full ]] || wait_rclone_uploads "$t"
  unmount_fuse "${DIR[$t]}" "${MNT_PID[$t]}"
  unset "MNT_PID[$t]"
}

unmount_all() {
  local t
  for t in "${!MNT_PID[@]}"; do unmount_target "$t"; done
}

drop_caches() { echo 3 >/proc/sys/vm/drop_caches; }

# Makes the next access to target $1 come from its store: the page cache (and dentries and
# inodes) dropped and, for daemons that cache on their own (nighfs's block cache, s3fs's stat
# cache, rclone's directory and file caches), the daemon restarted on an empty cache. syncfs of
# the target only: a global sync could wait on other people's stopped FUSE mounts.
cold() {
  local t=$1
  sync -f "${DIR[$t]}"
  case $t in
    local | nullfs) drop_caches ;;
    *)
      unmount_target "$t"
      [[ $t != rclone-* ]] || rm -rf "$T/rclone-cache/$t"
      drop_caches
      mount_target "$t"
      ;;
  esac
  # nullfs's attribute and entry timeouts (1 s, as nighfs's) run out; a fresh mount has none.
  [[ $t != nullfs ]] || sleep 1.2
}
