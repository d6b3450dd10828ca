#!/usr/bin/env bash
# Installs every Debian 12 package nighfs needs to build, run and test.
# Idempotent: safe to run on every CI run. Run as root (or with sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential pkg-config meson ninja-build
  libfuse3-dev fuse3
  libcurl4-openssl-dev libssl-dev
  libprotobuf-dev protobuf-compiler
  libabsl-dev libcli11-dev
  libgtest-dev libgmock-dev
  libsqlite3-dev
  libboost-dev libboost-system-dev
  attr git tar python3 fio curl
  # gcc's sanitizer runtimes for scripts/sanitize.sh (b_sanitize=address,undefined / thread)
  libasan8 libubsan1 libtsan2
  # clang 14 with libFuzzer and its sanitizer runtimes for scripts/fuzz.sh (fuzz/), which
  # scripts/test.sh runs; libclang-rt-14-dev is only a Recommends of clang, so it is named
  # here. llvm-14 brings llvm-symbolizer, for readable stacks in crash reports.
  clang libclang-rt-14-dev llvm-14
  # the peers scripts/bench.sh mounts on the same s3rver bucket as nighfs (issue 14), and jq
  # for its fio JSON
  s3fs rclone jq
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Object-store emulators for the S3 and Azure tests (npm registry).
if [ "${NIGHFS_SKIP_NPM:-0}" != "1" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends nodejs npm
  fi
  top="$(cd "$(dirname "$0")/.." && pwd)"
  tooldir="${NIGHFS_TOOLS_DIR:-$top/.tools}"
  if [ ! -x "$tooldir/node_modules/.bin/s3rver" ] || [ ! -x "$tooldir/node_modules/.bin/azurite-blob" ]; then
    echo "setup: installing s3rver and azurite into $tooldir"
    mkdir -p "$tooldir"
    (cd "$tooldir" && npm install --no-audit --no-fund --loglevel=error s3rver@3 azurite@3 >/dev/null)
  fi
fi
echo "setup: ok"
