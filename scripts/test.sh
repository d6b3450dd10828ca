#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test: unit tests, the block-store conformance
# suites against s3rver and Azurite, and the end-to-end tests on real FUSE mounts.
# Then every fuzz target (fuzz/) runs for NIGHFS_FUZZ_SECONDS (default 10) in build-fuzz-ci
# (scripts/fuzz.sh); a crash fails the run. NIGHFS_SKIP_FUZZ=1 leaves it out.
# Extra arguments go to `meson test` (e.g. --suite unit).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
bash scripts/setup.sh
bash scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
# One closing line counting every test case (gtest cases inside each executable).
python3 - "$top/build/meson-logs/testlog.junit.xml" <<'PY' || true
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print(f"(no junit log: {e})"); sys.exit(0)
passed = failed = skipped = 0
for suite in root.iter('testsuite'):
    cases = list(suite.iter('testcase'))
    for c in cases:
        if c.find('failure') is not None or c.find('error') is not None: failed += 1
        elif c.find('skipped') is not None: skipped += 1
        else: passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
if [ "${NIGHFS_SKIP_FUZZ:-0}" != "1" ]; then
  # -O0 in a build dir of its own: it compiles in less than half the time of the -O1 that
  # long runs use, which matters more than speed for a short run. On 2 cores the build takes
  # about 2.5 min and the runs 40 s (2 at a time).
  NIGHFS_SKIP_SETUP=1 NIGHFS_FUZZ_BUILD_DIR=build-fuzz-ci bash scripts/fuzz.sh --optimization 0 \
    --seconds "${NIGHFS_FUZZ_SECONDS:-10}" || status=1
fi
exit $status
