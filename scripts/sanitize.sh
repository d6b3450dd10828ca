#!/usr/bin/env bash
# Builds nighfs with gcc under sanitizers and runs every test suite (unit, cloud, e2e) there:
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) in build-asan
#   tsan: ThreadSanitizer in build-tsan
#   all:  both (default)
# The e2e tests start nighfs-meta and mount.nighfs from the same build dir, so the daemons run
# sanitized too. Every process writes its reports to BUILD/meson-logs/sanitizers/<tool>.<pid>
# (log_path); the run fails if `meson test` fails or if any report file is non-empty, so a
# report from a daemon that a test killed still fails the run.
# Extra arguments go to `meson test` (e.g. `scripts/sanitize.sh asan --suite unit`).
# Env: NIGHFS_JOBS (default 2), NIGHFS_TIMEOUT_MULTIPLIER (default 4), NIGHFS_SKIP_SETUP=1,
# NIGHFS_SANITIZE_TARGETS="tests/common/common_test ..." (build only these; name the matching
# tests for meson test too).
# Exceptions forced by libraries: tests/sanitizers/*.supp (one comment per entry) and
# tests/sanitizers/absl_tsan_shim.cc (TSan annotations for Debian's uninstrumented abseil).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
mode="${1:-all}"
case "$mode" in
  asan|tsan|all) [ $# -gt 0 ] && shift ;;
  -*) mode=all ;;
  *) echo "usage: $0 [asan|tsan|all] [meson test args...]" >&2; exit 2 ;;
esac
jobs="${NIGHFS_JOBS:-2}"
supp="$top/tests/sanitizers"
[ "${NIGHFS_SKIP_SETUP:-0}" = "1" ] || bash scripts/setup.sh

# configure DIR SANITIZERS [extra meson options]
configure() {
  local dir="$1" san="$2"; shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    # ccache (shared with ./build and other worktrees) when present: a sanitized tree is ~130
    # compiles, an hour on a busy 2-core machine without it.
    local cc=gcc cxx=g++
    if command -v ccache >/dev/null 2>&1; then cc="ccache gcc" cxx="ccache g++"; fi
    CC="$cc" CXX="$cxx" meson setup "$dir" -Db_sanitize="$san" "$@" >/dev/null || return 1
  fi
}

# Prints every sanitizer report in LOGDIR; returns 1 if there is one.
check_reports() {
  local logdir="$1" found=0 f
  for f in "$logdir"/*; do
    [ -s "$f" ] || continue
    found=1
    echo "=== sanitizer report: $f"
    cat "$f"
  done
  return $found
}

# run_suite DIR NAME [meson test args]: builds DIR, then tests it with the *_OPTIONS already
# exported and $preload (if set) as LD_PRELOAD of the test run only.
run_suite() {
  local dir="$1" name="$2"; shift 2
  local start=$SECONDS status=0
  # NIGHFS_SANITIZE_TARGETS (ninja targets) builds only those, to iterate on a few tests.
  # shellcheck disable=SC2086
  ninja -C "$dir" -j"$jobs" ${NIGHFS_SANITIZE_TARGETS:-} || return 1
  echo "sanitize: $name: meson test in $dir"
  LD_PRELOAD="${preload:-}${LD_PRELOAD:+:$LD_PRELOAD}" \
    meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" \
    --timeout-multiplier "${NIGHFS_TIMEOUT_MULTIPLIER:-4}" "$@" || status=$?
  if ! check_reports "$logdir"; then
    echo "sanitize: $name: sanitizer reports above (files in $logdir)"
    status=1
  fi
  # gcc 12's ASan+UBSan runtime writes UBSan reports to stderr even with log_path set
  # (checked: LSan honours it, UBSan does not), so also look in the captured test output.
  # halt_on_error=1 makes the process exit 1 as well; a daemon's report is in its own log.
  if grep -n -E "runtime error:|ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer" \
       "$dir/meson-logs/testlog.txt"; then
    echo "sanitize: $name: sanitizer reports in $dir/meson-logs/testlog.txt"
    status=1
  fi
  echo "sanitize: $name: $([ $status -eq 0 ] && echo clean || echo FAILED) in $((SECONDS - start)) s"
  return $status
}

new_logdir() {
  logdir="$top/$1/meson-logs/sanitizers"
  rm -rf "$logdir"
  mkdir -p "$logdir"
}

run_asan() (
  configure build-asan address,undefined -Db_lundef=false || exit 1
  new_logdir build-asan
  # halt_on_error for UBSan: gcc recovers from UB by default, which would let a test pass.
  export ASAN_OPTIONS="log_path=$logdir/asan:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$logdir/ubsan:print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
  run_suite build-asan asan "$@"
)

run_tsan() (
  configure build-tsan thread || exit 1
  new_logdir build-tsan
  # The shim is not instrumented and needs only abseil's headers (see its header comment).
  shim="$top/build-tsan/libabsl_tsan_shim.so"
  if [ ! -f "$shim" ] || [ "$supp/absl_tsan_shim.cc" -nt "$shim" ]; then
    g++ -std=c++20 -O2 -shared -fPIC -o "$shim" "$supp/absl_tsan_shim.cc" \
      $(pkg-config --cflags absl_synchronization) -ldl || exit 1
  fi
  preload="$shim"
  # The shim must make abseil's locks visible: a lock-only program must be clean under it.
  check="$top/build-tsan/absl_tsan_shim_check"
  g++ -std=c++20 -O1 -g -fsanitize=thread -o "$check" "$supp/absl_tsan_shim_check.cc" \
    $(pkg-config --cflags --libs absl_synchronization) || exit 1
  if ! LD_PRELOAD="$shim" TSAN_OPTIONS="exitcode=66" "$check"; then
    echo "sanitize: tsan: $supp/absl_tsan_shim.cc does not cover this abseil (see above)" >&2
    exit 1
  fi
  export TSAN_OPTIONS="log_path=$logdir/tsan:halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions=$supp/tsan.supp"
  run_suite build-tsan tsan "$@"
)

status=0
case "$mode" in
  asan) run_asan "$@" || status=1 ;;
  tsan) run_tsan "$@" || status=1 ;;
  all)
    run_asan "$@" || status=1
    run_tsan "$@" || status=1
    ;;
esac
exit $status
