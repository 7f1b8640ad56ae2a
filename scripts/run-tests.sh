#!/usr/bin/env bash
# Runs rusd's whole test suite: brings the build up to date (incremental, -j2), then runs
# every test ctest knows (the gtest unit tests of each module and the Go end-to-end suite
# in tests/e2e, labelled e2e) and ends with ctest's summary line.
#
# Usage: scripts/run-tests.sh [extra ctest arguments, e.g. -L e2e or -R kv]
# Environment: BUILD_DIR (default build), BUILD_JOBS (default 2). Run scripts/setup.sh once first.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$REPO/$BUILD_DIR" ;; esac
BUILD_JOBS="${BUILD_JOBS:-2}"

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  echo "run-tests.sh: $BUILD_DIR is not configured; run scripts/setup.sh first" >&2
  exit 1
fi
export CCACHE_BASEDIR="$REPO"
echo "==> building (${BUILD_DIR#"$REPO"/}, -j$BUILD_JOBS)"
if ! cmake --build "$BUILD_DIR" -j "$BUILD_JOBS" >"$BUILD_DIR/run-tests-build.log" 2>&1; then
  echo "run-tests.sh: build failed; errors from $BUILD_DIR/run-tests-build.log:" >&2
  grep -E -A5 'error|FAILED' "$BUILD_DIR/run-tests-build.log" | head -n 60 >&2
  exit 1
fi
echo "==> ctest --test-dir ${BUILD_DIR#"$REPO"/} --output-on-failure $*"
exec ctest --test-dir "$BUILD_DIR" --output-on-failure "$@"
