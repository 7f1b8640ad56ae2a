#!/usr/bin/env bash
# Watch fan-out benchmark: etcd 3.4 and rusd in one run, on 127.0.0.1 only.
#
#   bench/run-watch-vs-etcd.sh             # 10,000 key watchers + 100 prefix watchers, 5 s phases
#   bench/run-watch-vs-etcd.sh --quick     # 2 s phases
#
# Per server (one after the other, each started fresh; the other is idle): `loadgen watch`
# creates the watchers (distinct keys wb/00000.. over 100 streams on 10 connections, plus
# the prefix watchers on wb/, 10 per stream), then runs a steady phase (--rate puts/s, open
# loop) and a max phase (--putters closed-loop clients). Each put is delivered to its key's
# watcher and to every prefix watcher. Reported: events delivered/s, put-to-event latency
# p50/p99 (the put's own commit included), the memory that holds the watchers (VmRSS growth
# of etcd's process, of rusd-frontend) per 10,000 watchers, the server's CPU per delivered
# event (etcd; rusd's four processes), and rusd/etcd ratios.
#
# Everything it starts lives in one temp dir and is stopped by pid on exit (trap).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

duration=5s
watchers=10000
prefix_watchers=100
rate=500
putters=16
keep=0
rusd_bin="${RUSD_BIN:-}"
etcd_bin="${ETCD_BIN:-etcd}"

usage() {
  cat <<EOF
usage: $0 [options]
  --quick              2 s phases
  --duration D         measured time per phase (default $duration)
  --watchers N         watchers on distinct keys (default $watchers)
  --prefix-watchers N  watchers on the common prefix (default $prefix_watchers)
  --rate N             puts/s in the steady phase (default $rate)
  --putters N          closed-loop put clients in the max phase (default $putters)
  --rusd PATH          rusd supervisor binary (default build/bin/rusd)
  --etcd PATH          etcd binary (default: etcd on PATH; must be 3.4)
  --keep               keep the temp dir
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=2s ;;
    --duration) duration="$2"; shift ;;
    --watchers) watchers="$2"; shift ;;
    --prefix-watchers) prefix_watchers="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --putters) putters="$2"; shift ;;
    --rusd) rusd_bin="$2"; shift ;;
    --etcd) etcd_bin="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '%s run-watch-vs-etcd: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v "$etcd_bin" >/dev/null || die "etcd not found ($etcd_bin)"
etcd_version="$("$etcd_bin" --version 2>/dev/null | sed -n 1p || true)"
[[ -n "$rusd_bin" ]] || rusd_bin="$repo/build/bin/rusd"
[[ -x "$rusd_bin" ]] || die "rusd binary not found (build it, or pass --rusd PATH)"

work="$(mktemp -d /tmp/rusd-watch-bench.XXXXXX)"
declare -A pid_of=()

stop_server() {
  local sys="$1" pid="${pid_of[$1]:-}"
  [[ -n "$pid" ]] || return 0
  local kids
  kids="$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ' | tr '\n' ' ' || true)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true; done
  unset "pid_of[$sys]"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for sys in "${!pid_of[@]}"; do stop_server "$sys"; done
  if [[ $keep -eq 1 ]]; then
    log "temp dir kept: $work"
  else
    [[ $rc -ne 0 ]] && cp -f "$work"/*.log /tmp/ 2>/dev/null && log "server logs copied to /tmp"
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building loadgen"
(cd "$here/loadgen" && timeout 300 go build -o "$work/loadgen" .) || die "go build of bench/loadgen failed"
lg="$work/loadgen"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
used=" "
pick_port() {
  local p
  for p in $(shuf -i 20000-40000 -n 200); do
    port_free "$p" || continue
    [[ "$used" == *" $p "* ]] && continue
    used="$used$p "
    echo "$p"; return 0
  done
  die "no free loopback port found"
}

declare -A cport=()
start_server() {
  local sys="$1" bin="$etcd_bin" cp pp
  [[ "$sys" == rusd ]] && bin="$rusd_bin"
  cp="$(pick_port)"; pp="$(pick_port)"
  cport[$sys]=$cp
  local start_ns
  start_ns="$(date +%s%N)"
  "$bin" --name "bench-$sys" --data-dir "$work/$sys.data" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "bench-$sys=http://127.0.0.1:$pp" </dev/null >>"$work/$sys.log" 2>&1 &
  pid_of[$sys]=$!
  timeout 60 "$lg" probe -target "$sys=127.0.0.1:$cp" -start-ns "$start_ns" -timeout 50s \
    -name start -out "$work/probe.jsonl" >/dev/null || die "$sys did not start: $(tail -n 20 "$work/$sys.log")"
  log "started $sys (pid ${pid_of[$sys]}) on 127.0.0.1:$cp"
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
  start_server "$sys"
  targets="$targets${targets:+,}$sys=127.0.0.1:${cport[$sys]}"
  pids="$pids${pids:+,}$sys=$(mem_pid "$sys")"
  cpu_pids="$cpu_pids${cpu_pids:+,}$sys=${pid_of[$sys]}"
done

log "watch fan-out: $watchers + $prefix_watchers watchers, $duration per phase"
timeout 900 "$lg" watch -targets "$targets" -pids "$pids" -cpu-pids "$cpu_pids" -watchers "$watchers" \
  -prefix-watchers "$prefix_watchers" -duration "$duration" -rate "$rate" -putters "$putters" \
  -out "$work/watch.jsonl" | tee "$work/report.txt" || die "loadgen watch failed"
echo "etcd: $etcd_version; rusd: $rusd_bin; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
