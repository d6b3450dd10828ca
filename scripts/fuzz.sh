#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer + UndefinedBehaviorSanitizer)
# in build-fuzz and runs each for a bounded time on its checked-in seed corpus:
#
#   bash scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]
#
# --seconds N  time per target (default 60); scripts/test.sh runs 10, a long run 600 or more
# --jobs J     targets run at once (default NIGHFS_JOBS, else 2); each uses one core
# --optimization 0|1|2|3  of the fuzz build (default 1); 0 compiles in less than half the
#              time and runs about half as many inputs a second: what a short CI run wants
# TARGET       any of the targets below (default: all)
#
# Exits 1 if any target finds a crash, a leak, a timeout or an out-of-memory, and prints the
# input that did it and the command that replays it. What the fuzzer learns (new corpus
# entries, crash inputs) stays in build-fuzz/fuzz-work/<target>/, never in the source tree;
# to keep a crash as a regression test, copy its input to fuzz/regressions/<target>/ (see
# fuzz/README.md).
# Env: NIGHFS_FUZZ_BUILD_DIR (default build-fuzz), NIGHFS_SKIP_SETUP=1 (do not install clang).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"

all_targets=(meta_rpc http_request s3_xml azure_xml connect_error store_config mount_status)
seconds=60
opt=1
jobs="${NIGHFS_JOBS:-2}"
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --optimization) opt="$2"; shift 2 ;;
    --optimization=*) opt="${1#*=}"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
        echo "fuzz: no target '$1' (targets: ${all_targets[*]})" >&2; exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz: --seconds wants a count" >&2; exit 2; }
[[ $jobs =~ ^[0-9]+$ && $jobs -gt 0 ]] || { echo "fuzz: --jobs wants a count" >&2; exit 2; }
[[ $opt =~ ^[0-3]$ ]] || { echo "fuzz: --optimization wants 0 to 3" >&2; exit 2; }

# Per target: the longest input (bytes) and the dictionary (fuzz/dict/), if any.
max_len() {
  case "$1" in
    s3_xml|azure_xml|mount_status) echo 8192 ;;
    store_config) echo 2048 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case "$1" in
    s3_xml|azure_xml) echo fuzz/dict/xml.dict ;;
    *) [ -f "fuzz/dict/$1.dict" ] && echo "fuzz/dict/$1.dict" || true ;;
  esac
}

if [ "${NIGHFS_SKIP_SETUP:-0}" != "1" ] && \
   { ! command -v clang++ >/dev/null 2>&1 || \
     ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; }; then
  bash scripts/setup.sh  # installs clang and libFuzzer (libclang-rt-14-dev)
fi

dir="${NIGHFS_FUZZ_BUILD_DIR:-build-fuzz}"
build_start=$SECONDS
if [ ! -f "$dir/build.ninja" ]; then
  # -O1 (libFuzzer's advice) compiles faster than -O2 at little cost in executions per second.
  CXX=clang++ CC=clang meson setup "$dir" -Dfuzz=true -Doptimization="$opt" >/dev/null
elif [ "$(meson introspect --buildoptions "$dir" | python3 -c 'import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "optimization"))')" != "$opt" ]; then
  meson configure "$dir" -Doptimization="$opt" >/dev/null
fi
ninja -C "$dir" -j"${NIGHFS_JOBS:-2}" fuzz
echo "fuzz: built the targets in $((SECONDS - build_start)) s"

work="$top/$dir/fuzz-work"
symbolizer=""
for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do [ -x "$s" ] && symbolizer="$s"; done
# detect_leaks: a leak per input is a bug too. The UBSan options make UB abort with a stack.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:handle_abort=1${symbolizer:+:external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# run_target NAME: runs one target for $seconds; its log is $work/NAME/log.
run_target() {
  local t="$1" w="$work/$1" d
  mkdir -p "$w/corpus" "$w/artifacts"
  local seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  d="$(dict "$t")"
  # The first folder receives what the fuzzer finds; the checked-in seeds are only read.
  # -timeout: one input taking longer is a hang (the targets' own waits end within 10 s).
  "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 -close_fd_mask=0 \
    -artifact_prefix="$w/artifacts/" ${d:+-dict=$d} \
    "$w/corpus" "${seeds[@]}" >"$w/log" 2>&1
}

# Starts up to $jobs targets at once; waits for all.
declare -A pids status
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "fuzz: $t for ${seconds} s"
  run_target "$t" &
  pids[$t]=$!
  running=$((running + 1))
done
failed=0
for t in "${targets[@]}"; do
  if wait "${pids[$t]}"; then status[$t]=ok; else status[$t]=FAILED; failed=1; fi
done

printf '%-14s %-7s %10s %8s %8s %8s\n' target result execs exec/s cov corpus
for t in "${targets[@]}"; do
  log="$work/$t/log"
  # libFuzzer's final stats: "stat::number_of_executed_units: N", "stat::average_exec_per_sec: N"
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  printf '%-14s %-7s %10s %8s %8s %8s\n' "$t" "${status[$t]}" "${execs:--}" "${rate:--}" \
    "${cov:--}" "${corp:--}"
done
for t in "${targets[@]}"; do
  [ "${status[$t]}" = ok ] && continue
  log="$work/$t/log"
  echo "=== fuzz: $t failed; the end of $log:"
  tail -60 "$log"
  for a in "$work/$t/artifacts"/*; do
    [ -f "$a" ] || continue
    echo "fuzz: input: $a"
    echo "fuzz: replay: $dir/fuzz/fuzz_$t $a"
  done
done
exit $failed
