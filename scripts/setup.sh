#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for rusd and builds it:
#   1. installs the Debian packages rusd builds with (toolchain-notes.md) plus etcd 3.4
#      (etcd-server, etcd-client) for etcdctl and the comparison tests;
#   2. configures a Release build in build/ with Ninja (ccache is used when installed);
#   3. builds with -j2.
# Safe to re-run: installed packages are skipped, the build is incremental.
#
# Usage: scripts/setup.sh [--start] [--no-apt] [--help]
#   --start    then start one node in the foreground: build/bin/rusd with its data in
#              ./default.etcd and clients on http://localhost:2379 (Ctrl-C stops it)
#   --no-apt   do not touch packages (no root needed; they must be installed already)
# Environment: BUILD_DIR (default build), BUILD_JOBS (default 2), BUILD_TARGETS (default all).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$REPO/$BUILD_DIR" ;; esac
BUILD_JOBS="${BUILD_JOBS:-2}"
BUILD_TARGETS="${BUILD_TARGETS:-all}"
START=0
APT=1

for arg in "$@"; do
  case "$arg" in
    --start) START=1 ;;
    --no-apt) APT=0 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libboost-dev libspdlog-dev prometheus-cpp-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libnghttp2-dev
  etcd-server etcd-client
  prometheus  # the e2e metrics test scrapes rusd with a real Prometheus; promtool lints /metrics
)

step() { printf '==> %s\n' "$*"; }
LOG_DIR="$BUILD_DIR"
mkdir -p "$LOG_DIR"

# Runs a command with its output in a log file; on failure shows the log's tail.
quiet() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    echo "setup.sh: '$*' failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

# ---- 1. packages ----
if [[ $APT == 1 ]]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    step "packages: all ${#PACKAGES[@]} installed"
  else
    SUDO=()
    if [[ $(id -u) != 0 ]]; then
      command -v sudo >/dev/null || { echo "setup.sh: run as root (or with sudo) to install: ${missing[*]}" >&2; exit 1; }
      SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    step "apt-get update"
    quiet "$LOG_DIR/setup-apt.log" "${SUDO[@]}" apt-get update
    step "apt-get install ${missing[*]}"
    quiet "$LOG_DIR/setup-apt.log" "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    # Debian's etcd-server starts a system etcd on :2379 where systemd runs; rusd wants it.
    if [[ -d /run/systemd/system ]] && systemctl is-enabled etcd >/dev/null 2>&1; then
      step "disabling the system etcd service (it would hold port 2379)"
      "${SUDO[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
  fi
else
  step "packages: skipped (--no-apt)"
fi

# Go (for tests/e2e and bench/loadgen) is not a Debian 12 package in a usable version
# (bookworm has 1.19; clientv3 3.5.17 needs >= 1.22): the machines carry it in /usr/local/go.
GO=$(command -v go || true)
[[ -z $GO && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
if [[ -n $GO ]]; then
  step "go: $("$GO" env GOVERSION) ($GO)"
else
  echo "setup.sh: warning: no Go toolchain found; the e2e tests will not be registered" >&2
fi

# ---- 2. configure ----
export CCACHE_BASEDIR="$REPO"
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  step "configuring a Release build in ${BUILD_DIR#"$REPO"/} (Ninja$(command -v ccache >/dev/null && echo ', ccache'))"
  quiet "$LOG_DIR/setup-configure.log" cmake -G Ninja -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
else
  step "build directory ${BUILD_DIR#"$REPO"/} already configured"
fi

# ---- 3. build ----
# Ninja's "[done/total]" lines go to a log; one line per 10% goes to the terminal.
step "building ($BUILD_TARGETS, -j$BUILD_JOBS); log: ${BUILD_DIR#"$REPO"/}/setup-build.log"
start_s=$SECONDS
set +e
# shellcheck disable=SC2086  # BUILD_TARGETS is a word list
cmake --build "$BUILD_DIR" -j "$BUILD_JOBS" --target $BUILD_TARGETS 2>&1 |
  tee "$LOG_DIR/setup-build.log" |
  awk -v last=-10 'match($0, /^\[([0-9]+)\/([0-9]+)\]/) {
      split(substr($0, 2, RLENGTH - 2), a, "/"); pct = int(100 * a[1] / a[2]);
      if (pct >= last + 10 || a[1] == a[2]) { printf "    %3d%%  [%s/%s]\n", pct, a[1], a[2]; last = pct; fflush() }
    }'
rc=${PIPESTATUS[0]}
set -e
if [[ $rc != 0 ]]; then
  echo "setup.sh: build failed; errors from $LOG_DIR/setup-build.log:" >&2
  grep -E -A5 'error|FAILED' "$LOG_DIR/setup-build.log" | head -n 60 >&2
  exit 1
fi
nbin=0
for f in "$BUILD_DIR"/bin/rusd*; do [[ -x $f ]] && nbin=$((nbin + 1)); done
step "built in $((SECONDS - start_s)) s: $nbin rusd binaries in ${BUILD_DIR#"$REPO"/}/bin"

# ---- 4. optionally start one node ----
if [[ $START == 1 ]]; then
  [[ -x $BUILD_DIR/bin/rusd ]] || { echo "setup.sh: $BUILD_DIR/bin/rusd was not built" >&2; exit 1; }
  step "starting rusd: data in ./default.etcd, clients on http://localhost:2379"
  cd "$REPO"
  exec "$BUILD_DIR/bin/rusd" --name default --data-dir default.etcd \
    --listen-client-urls http://localhost:2379 --advertise-client-urls http://localhost:2379
fi
