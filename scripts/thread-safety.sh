#!/usr/bin/env bash
# Compiles the whole tree with clang and -Wthread-safety -Werror=thread-safety, so every
# ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED annotation is checked. Build dir: build-clang.
# Needs clang (Debian 12: clang 14). Not part of scripts/setup.sh because the default test
# command does not need it; this script installs it when it is missing.
# Debian's abseil and protobuf are built with gcc; clang with libstdc++ links against them fine.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v clang++ >/dev/null 2>&1; then
  echo "thread-safety: installing clang"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends clang
fi
bash scripts/setup.sh
dir="${NIGHFS_CLANG_BUILD_DIR:-build-clang}"
# -Wthread-safety-beta is left out: it flags patterns the stable analysis accepts on purpose.
args="['-Wthread-safety', '-Werror=thread-safety']"
if [ ! -f "$dir/build.ninja" ]; then
  CXX=clang++ CC=clang meson setup "$dir" -Dcpp_args="$args" >/dev/null
else
  meson configure "$dir" -Dcpp_args="$args"
fi
# -k 0: report every annotation error in one run, not only the first file's.
ninja -C "$dir" -j"${NIGHFS_JOBS:-2}" -k 0
echo "thread-safety: ok (clang -Wthread-safety, whole tree in $dir)"
