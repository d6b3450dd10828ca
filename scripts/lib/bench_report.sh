# shellcheck shell=bash
# The report of scripts/bench.sh (sourced after the runs): the table, the machine, the exact
# commands, and the rewrite of the generated block of docs/BENCHMARKS.md. Reads bench.sh's
# TARGETS, ROW_ORDER, ROW_UNIT, ROW_LOWER, RESULT, NOTES and its sizes.

declare -A TARGET_TITLE=(
  [local]="Local disk" [nullfs]="nullfs (FUSE, stores nothing)" [nighfs-file]="nighfs file://"
  [nighfs-batched]="nighfs file://, names batched"
  [nighfs-s3]="nighfs → s3rver" [s3fs]="s3fs → s3rver" [rclone-off]="rclone off → s3rver"
  [rclone-full]="rclone full → s3rver" [ceiling]="s3rver ceiling (nighfs's S3 client)"
)
PEERS=(s3fs rclone-off rclone-full)

is_number() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

fmt() {  # value seconds?(0/1): three significant figures or so, seconds with two decimals
  local v=$1
  if ! is_number "$v"; then echo "$v"; return; fi
  if (($2)); then printf '%.2f' "$v"; return; fi
  if [[ $v =~ ^[0-9]+$ ]]; then echo "$v"; return; fi
  awk -v v="$v" 'BEGIN { if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v;
                         else printf "%.2f", v }'
}

# nighfs-s3 against the best of the peers that ran the row: > 1 means nighfs is better.
versus_peers() {
  local r=$1 n=${RESULT["$1|nighfs-s3"]:-} best="" p v
  is_number "$n" || { echo "–"; return; }
  for p in "${PEERS[@]}"; do
    v=${RESULT["$r|$p"]:-}
    is_number "$v" || continue
    if [[ -z $best ]]; then best=$v
    elif [[ -n ${ROW_LOWER[$r]} ]]; then best=$(awk -v a="$best" -v b="$v" 'BEGIN { print (b < a) ? b : a }')
    else best=$(awk -v a="$best" -v b="$v" 'BEGIN { print (b > a) ? b : a }'); fi
  done
  [[ -n $best ]] || { echo "–"; return; }
  awk -v n="$n" -v b="$best" -v lower="${ROW_LOWER[$r]}" 'BEGIN {
    if (n == 0 || b == 0) { print "–"; exit }
    printf "%.2f×", lower != "" ? b / n : n / b }'
}

row_title() {
  local r=$1
  case $r in
    "$ROW_CREATE" | "$ROW_STAT" | "$ROW_LS" | "$ROW_RENAME" | "$ROW_UNLINK") echo "$r ($NFILES files)" ;;
    "$ROW_SMALLW" | "$ROW_SMALLR") echo "$r ($NSMALL files)" ;;
    "$ROW_TARX" | "$ROW_CP" | "$ROW_TREAD" | "$ROW_RM") echo "$r ($SRC_FILES files, $SRC_MB MB)" ;;
    *) echo "$r" ;;
  esac
}

with_ratio() { has_target nighfs-s3 && { has_target s3fs || has_target rclone-off || has_target rclone-full; }; }

table() {
  local r t line sep secs
  line="| Workload | Unit |"
  sep="|---|---|"
  for t in "${TARGETS[@]}"; do line+=" ${TARGET_TITLE[$t]} |"; sep+="---:|"; done
  if with_ratio; then line+=" nighfs → s3rver ÷ best peer |"; sep+="---:|"; fi
  echo "$line"
  echo "$sep"
  for r in "${ROW_ORDER[@]}"; do
    secs=0
    [[ ${ROW_UNIT[$r]} != seconds ]] || secs=1
    line="| $(row_title "$r") | ${ROW_UNIT[$r]} |"
    for t in "${TARGETS[@]}"; do line+=" $(fmt "${RESULT["$r|$t"]:-–}" "$secs") |"; done
    with_ratio && line+=" $(versus_peers "$r") |"
    echo "$line"
  done
  if ((${#NOTES[@]})); then
    echo
    echo "Errors (a cell marked \"error\" measured nothing; the first error of each):"
    echo
    for r in "${NOTES[@]}"; do echo "- $r"; done
  fi
}

commands() {
  local r t
  echo '```sh'
  echo "# Mounts (each target in turn; \"cold\" = syncfs, unmount, drop_caches, mount again on an"
  echo "# empty cache: rclone full waits for its uploads and its cache folder is emptied)"
  for t in "${TARGETS[@]}"; do
    case $t in
      local | ceiling) ;;
      *) t=$(mount_command "$t" "\$MNT"); t=${t//$T/\$T}; echo "${t//$REPO\//}" ;;
    esac
  done
  if has_target rclone-off || has_target rclone-full; then
    echo "# rclone.conf: [s3] type = s3, provider = Other, endpoint = http://127.0.0.1:PORT,"
    echo "# region = us-east-1, force_path_style = true, s3rver's keys (AWS_CA_BUNDLE unset for rclone)"
  fi
  echo "# fio, run once per target with DIR = its folder. VERIFY = $FIO_RVERIFY"
  echo "# (not on nullfs, which stores nothing)"
  for r in "${FIO_ROWS[@]}"; do
    echo "# $r$( ((FIO_COLD[$r])) && echo " (cold first)")$(
      [[ -n ${FIO_ONLY[$r]:-} ]] && echo " (${FIO_ONLY[$r]} only)")"
    echo "fio ${FIO_COMMON[*]} --directory=\$DIR ${FIO_ARGS[$r]}"
  done
  echo "# after the cold start of the 4-job read, the file of the random writes is read back whole and checked:"
  echo "fio ${FIO_COMMON[*]} --directory=\$DIR $FIO_CHECK_ARGS"
  cat <<EOF
# metadata: N=$NFILES files f0..f\$((N-1)) in DIR/meta, timed with \$EPOCHREALTIME
for f in "\${files[@]}"; do : > "\$f"; done          # create + close
cold; stat -c %s -- "\${files[@]}"                   # all N must be there, empty
cold; ls -l DIR/meta                                # all N must be listed
python3 scripts/lib/bench_files.py rename DIR/meta N  # f\$i -> g\$i, then the listing is checked
rm -f -- "\${files[@]}"                             # unlink; then none may be listed
# small files: M=$NSMALL files of 4 KiB (content derived from the index)
python3 scripts/lib/bench_files.py write DIR/small M 4096   # one at a time, each closed, + syncfs
cold; python3 scripts/lib/bench_files.py read DIR/small M 4096   # every file compared
# trees: src.tar = git archive --prefix=nighfs/ HEAD -- $TREE_PATHS$([[ -z $TREE_EXTRA ]] || echo " + /usr/include/{${TREE_EXTRA// /,}}")
tar -xf src.tar -C DIR/tree/x && sync -f DIR/tree
cp -a DIR/tree/x DIR/tree/y && sync -f DIR/tree   # an error (with its time) if cp fails; the copy is read next
cold; python3 scripts/lib/bench_files.py tree DIR/tree/y   # digest must equal the tar's
rm -rf DIR/tree
# store ceiling: for SIZE in 4194304 4096, THREADS in 1 8 (PUT for S s, then GET what was PUT)
build/tests/relay/nighfs-store-bench --store 's3://BUCKET/ceiling/SIZE-THREADS?endpoint=http://127.0.0.1:PORT&region=us-east-1' \\
  --credentials creds --threads THREADS --size SIZE --seconds $CEIL_SECS
EOF
  echo '```'
}

machine() {
  local cpu mem fstype buildtype t secs=""
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  fstype=$(findmnt -no FSTYPE,SOURCE -T "$T" | tr -s ' ')
  buildtype=$(meson introspect --buildoptions "$BUILD_DIR" 2>/dev/null |
              jq -r '.[] | select(.name == "buildtype") | .value' || echo unknown)
  for t in "${TARGETS[@]}"; do secs+="${secs:+, }$t ${TARGET_SECS[$t]:-?} s"; done
  cat <<EOF
- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nighfs commit $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo " (plus uncommitted work)"), meson buildtype \`$buildtype\`
- CPU: $(nproc) cores, $cpu; memory $mem; kernel $(uname -r)
- Local disk: \`$WORK_PARENT\` ($fstype); the file:// store, the metadata database, s3rver's folder and rclone's cache are on the same disk
- fio $(fio --version | sed 's/^fio-//'), libfuse $(pkg-config --modversion fuse3)$(
  ! wants_s3 || echo ", s3rver $(node -p "require('$(dirname "$(realpath "$S3RVER_BIN")")/../package.json').version" 2>/dev/null || echo '?') on node $(node --version 2>/dev/null)")$(
  ! has_target s3fs || echo ", s3fs $(s3fs --version 2>/dev/null | sed -n 's/.*File System V\([0-9.]*\).*/\1/p' | head -1)")$(
  { has_target rclone-off || has_target rclone-full; } && echo ", rclone $(rclone version 2>/dev/null | sed -n '1s/^rclone v//p')")
- nighfs: block size 4 MiB, mount defaults (cache_size 512 MiB, readahead 2 blocks, writeback_limit 256 MiB, attr/entry timeouts 1 s); metadata server on 127.0.0.1 (TLS) with SQLite in WAL mode, synchronous=FULL (\`--namespace-sync=always\`; "names batched": a second server with \`--namespace-sync=batched\`, namespace changes synced within 1 s, at data commits and fsync). The peers run with their defaults plus what the store needs (see the commands below)
- s3rver: one single-threaded node process on 127.0.0.1, bucket \`$BUCKET\` shared by every S3 target (each under its own prefix)
- Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine at the same time makes single runs noisy: compare within a run)$(
  [[ -z $NOTE ]] || printf '\n- %s' "$NOTE")
- Sizes: ${SIZE_MIB} MiB per sequential file (4 × $((SIZE_MIB / 4)) MiB for 4 jobs), sequential reads bounded at ${RUNTIME} s, random jobs ${RAND_RUNTIME} s; $NFILES files for metadata, $NSMALL small files, store ceiling ${CEIL_SECS} s per phase
- Run time: $((RUN_SECS / 60)) min $((RUN_SECS % 60)) s ($secs)
EOF
}

write_report() {
  local report
  [[ $OUT != - ]] || return 0
  report=$(
    echo "<!-- bench:begin: generated by scripts/bench.sh; edit outside these markers -->"
    echo "### Machine"
    echo
    machine
    echo
    echo "### Results"
    echo
    echo "Higher is better for MB/s, IOPS, ops/s, files/s and objects/s; lower for seconds and MiB."
    echo "MB = 10^6 bytes. Every row checked the bytes it wrote (\"error\" otherwise). The last"
    echo "column is nighfs → s3rver against the best of s3fs and rclone on the same row (> 1: nighfs"
    echo "is better). The ceiling rows are the bucket itself, through nighfs's S3 client."
    echo
    table
    echo
    echo "### Exact commands"
    echo
    commands
    echo "<!-- bench:end -->"
  )
  mkdir -p "$(dirname "$OUT")"
  if [[ -f $OUT ]] && grep -q '^<!-- bench:begin' "$OUT" && grep -q '^<!-- bench:end' "$OUT"; then
    REPORT=$report awk '
      /^<!-- bench:begin/ { print ENVIRON["REPORT"]; skip = 1; next }
      /^<!-- bench:end/ { skip = 0; next }
      !skip { print }' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
  else
    { echo "# nighfs benchmarks"; echo; echo "$report"; } >"$OUT"
  fi
  log "wrote $OUT"
}
