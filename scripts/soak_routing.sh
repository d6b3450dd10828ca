#!/usr/bin/env bash
# Soak of proxy-group routing under jitter (issue 13): runs the jitter case of the routing
# end-to-end test (tests/e2e/routing_e2e_test.cc, RoutingE2eTest.JitterMakesNoSwitch) for a long
# time instead of CI's few seconds. Three proxy groups at 1, 1.5 and 30 ms RTT behind latency
# relays with ±30% jitter on every delay, a FUSE mount writing and reading throughout; it fails
# on the first route switch, on any application error or wrong byte.
#
#   scripts/soak_routing.sh [SECONDS]     (default 600: 10 minutes)
#
# Needs root and /dev/fuse. Builds what it needs in $NIGHFS_BUILD_DIR (default REPO/build).
# Ten minutes write about 3 GB (store and proxy caches) under $TMPDIR, removed at the end.
set -euo pipefail

SECS=${1:-600}
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || { echo "usage: scripts/soak_routing.sh [SECONDS]" >&2; exit 2; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${NIGHFS_BUILD_DIR:-$REPO/build}
[[ $(id -u) == 0 ]] || { echo "soak_routing.sh: run as root (FUSE mounts)" >&2; exit 1; }
[[ -f $BUILD_DIR/build.ninja ]] || meson setup "$BUILD_DIR" "$REPO" >/dev/null
ninja -C "$BUILD_DIR" -j2 meta/nighfs-meta tools/nighfs mount/mount.nighfs proxy/nighfs-proxy \
  tests/e2e/routing_e2e_test >/dev/null
echo "soak_routing: ${SECS} s of ±30% jitter, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
NIGHFS_BUILD_ROOT=$BUILD_DIR NIGHFS_SOURCE_ROOT=$REPO NIGHFS_ROUTING_JITTER_SECONDS=$SECS \
  "$BUILD_DIR/tests/e2e/routing_e2e_test" --gtest_filter=RoutingE2eTest.JitterMakesNoSwitch
