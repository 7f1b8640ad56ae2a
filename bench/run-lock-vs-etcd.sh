#!/usr/bin/env bash
# Lock hand-over latency: etcd 3.4 and rusd side by side, in one run, on 127.0.0.1 only.
#
#   bench/run-lock-vs-etcd.sh                       # 50 hand-overs per server
#   bench/run-lock-vs-etcd.sh --base OLD/rusd       # also an older rusd build, as rusd-base
#
# Two clients take turns holding one v3lock lock (bench/loadgen/lock.go): the time from the
# holder's Unlock to the waiter's Lock returning. Prints min/median/p90/max per server.
# --settle (default 200 ms) is how long the waiter waits before the Unlock: etcd moves a
# watcher that starts in the past into its synced set only every 100 ms, so with less than
# that its hand-over measures its watch sync loop (~70 ms at 30 ms), not the lock.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_name=run-lock-vs-etcd
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

n=50
settle=200ms
base_bin=""

usage() {
  cat <<EOF
usage: $0 [options]
  --n N              hand-overs per server (default $n)
  --settle D         how long the waiter waits before the Unlock (default $settle)
  --base PATH        also an older rusd build, measured as rusd-base
EOF
  common_usage
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --n) n="$2"; shift ;;
    --settle) settle="$2"; shift ;;
    --base) base_bin="$2"; shift ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done

check_etcd
check_rusd
make_workdir rusd-lock-bench

build_loadgen
systems=(etcd rusd)
[[ -n "$base_bin" ]] && systems+=(rusd-base)
pick_ports "${systems[@]}"
targets=""
for sys in "${systems[@]}"; do
  bin="$etcd_bin"
  [[ "$sys" == rusd ]] && bin="$rusd_bin"
  [[ "$sys" == rusd-base ]] && bin="$base_bin"
  start_server "$sys" "$bin"
  bounded 60 "$lg" probe -target "$sys=127.0.0.1:${cport[$sys]}" -start-ns "${start_ns[$sys]}" \
    -timeout 30s -name "fresh start" || die "$sys did not start; $(tail -n 20 "$work/$sys.log")"
  targets+="${targets:+,}$sys=127.0.0.1:${cport[$sys]}"
done
bounded $((n * 3 + 120)) "$lg" lockhandover -targets "$targets" -n "$n" -settle "$settle" || die "lockhandover failed"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
