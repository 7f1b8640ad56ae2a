#!/usr/bin/env bash
# Watch fan-out benchmark: etcd 3.4 and rusd in one run, on 127.0.0.1 only.
#
#   bench/run-watch-vs-etcd.sh             # 10,000 key watchers + 100 prefix watchers, 5 s phases
#   bench/run-watch-vs-etcd.sh --quick     # 2 s phases
#   bench/run-watch-vs-etcd.sh --loadgen go    # the Go loadgen instead of rusd-loadgen
#
# Per server (one after the other, each started fresh; the other is idle): `rusd-loadgen
# watch` (--loadgen cxx, the default: bench/loadgen_cxx, one C++ epoll thread) or `loadgen
# watch` (--loadgen go: bench/loadgen, grpc-go), the same load, checks, records and table,
# creates the watchers (distinct keys wb/00000.. over 100 streams on 10 connections, plus
# the prefix watchers on wb/, 10 per stream), then runs a steady phase (--rate puts/s, open
# loop) and a max phase (--putters closed-loop clients). Each put is delivered to its key's
# watcher and to every prefix watcher. Then a fanout phase: more prefix watchers (in all
# --fanout-prefix-watchers) and the max phase's load again, so that delivery rather than
# the put path takes the servers' CPU. Reported: events delivered/s, put-to-event latency
# p50/p99 (the put's own commit included), the memory that holds the watchers (VmRSS growth
# of etcd's process, of rusd-frontend) per 10,000 watchers, the server's CPU per delivered
# event (etcd; rusd's four processes), the loadgen's own CPU (per event, and in cores: its
# share of the machine), and rusd/etcd ratios. Records: results.jsonl (kept with --results).
#
# Everything it starts lives in one temp dir and is stopped by pid on exit (trap).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_name=run-watch-vs-etcd
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

duration=5s
watchers=10000
prefix_watchers=100
fanout_prefix_watchers=1000
rate=500
putters=16
watch_loadgen=cxx

usage() {
  cat <<EOF
usage: $0 [options]
  --quick              2 s phases
  --duration D         measured time per phase (default $duration)
  --watchers N         watchers on distinct keys (default $watchers)
  --prefix-watchers N  watchers on the common prefix (default $prefix_watchers)
  --fanout-prefix-watchers N  prefix watchers in the fanout phase (default
                       $fanout_prefix_watchers; 0: no fanout phase)
  --rate N             puts/s in the steady phase (default $rate)
  --putters N          closed-loop put clients in the max phase (default $putters)
  --loadgen cxx|go     client of the benchmark (default $watch_loadgen): cxx = rusd-loadgen
                       (C++, nghttp2, one thread: a quarter of the Go client's CPU per event,
                       see README), go = bench/loadgen (raw grpc-go watch streams, clientv3
                       putters)
EOF
  common_usage
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=2s ;;
    --duration) duration="$2"; shift ;;
    --watchers) watchers="$2"; shift ;;
    --prefix-watchers) prefix_watchers="$2"; shift ;;
    --fanout-prefix-watchers) fanout_prefix_watchers="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --putters) putters="$2"; shift ;;
    --loadgen) watch_loadgen="$2"; shift ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done


check_etcd
check_rusd

make_workdir rusd-watch-bench

build_loadgen
pick_matrix_loadgen "$watch_loadgen"  # sets mlg: $lg, or rusd-loadgen
pick_ports etcd rusd

# start_and_probe SYS: starts it and waits until it serves a Range.
start_and_probe() {
  local sys="$1" bin="$etcd_bin"
  [[ "$sys" == rusd ]] && bin="$rusd_bin"
  start_server "$sys" "$bin"
  bounded 60 "$lg" probe -target "$sys=127.0.0.1:${cport[$sys]}" -start-ns "${start_ns[$sys]}" \
    -timeout 50s -name start -out "$work/probe.jsonl" >/dev/null ||
    die "$sys did not start: $(tail -n 20 "$work/$sys.log")"
}

# The process that holds the watchers: etcd itself, rusd's frontend.
mem_pid() {
  local sys="$1"
  if [[ "$sys" == rusd ]]; then
    for k in $(ps -o pid= --ppid "${pid_of[rusd]}"); do
      [[ "$(cat "/proc/$k/comm" 2>/dev/null)" == rusd-frontend ]] && { echo "$k"; return 0; }
    done
    die "rusd-frontend not found among the children of ${pid_of[rusd]}"
  fi
  echo "${pid_of[$sys]}"
}

targets="" pids="" cpu_pids=""
for sys in etcd rusd; do
  start_and_probe "$sys"
  targets="$targets${targets:+,}$sys=127.0.0.1:${cport[$sys]}"
  pids="$pids${pids:+,}$sys=$(mem_pid "$sys")"
  cpu_pids="$cpu_pids${cpu_pids:+,}$sys=${pid_of[$sys]}"
done

log "watch fan-out: $watchers + $prefix_watchers watchers, $duration per phase ($watch_loadgen loadgen)"
timeout 900 "$mlg" watch -targets "$targets" -pids "$pids" -cpu-pids "$cpu_pids" -watchers "$watchers" \
  -prefix-watchers "$prefix_watchers" -fanout-prefix-watchers "$fanout_prefix_watchers" -duration "$duration" -rate "$rate" -putters "$putters" \
  -out "$results" | tee "$work/report.txt" || die "loadgen watch failed"
echo "loadgen: $watch_loadgen; etcd: $etcd_version; rusd: $rusd_bin ${rusd_args[*]}; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
