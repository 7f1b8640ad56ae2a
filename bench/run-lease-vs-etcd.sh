#!/usr/bin/env bash
# Lease benchmark: etcd 3.4 and rusd side by side, in one run, on 127.0.0.1 only.
#
#   bench/run-lease-vs-etcd.sh            # 2 rounds of 3 s per workload
#   bench/run-lease-vs-etcd.sh --quick    # 1 round of 1 s
#
# Workloads (bench/loadgen/lease.go), alternating between the two servers:
#   lease-keepalive         1,000 leases, each renewed on its own LeaseKeepAlive stream
#                           (1,000 streams over 8 connections), closed loop: keep-alives/s
#   lease-grant-put-revoke  64 clients over 8 connections: Grant, Put with the lease,
#                           Revoke, repeated: cycles/s
# Prints etcd, rusd and rusd/etcd (bench/README.md explains the table) and the load average.
# Same rules as run-vs-etcd.sh: default durability on both, everything started here is
# stopped by pid on exit, the temp dir is removed (logs kept on failure).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

duration=3s
warmup=300ms
rounds=2
leases=1000
streams=1000
clients=64
conns=8
rusd_bin="${RUSD_BIN:-}"
etcd_bin="${ETCD_BIN:-etcd}"
results_dir=""

usage() {
  cat <<EOF
usage: $0 [options]
  --quick            1 s per workload, 1 round
  --duration D       measured time per workload (default $duration)
  --rounds N         rounds; the report shows medians (default $rounds)
  --leases N         leases kept alive (default $leases)
  --streams N        keep-alive streams (default $streams)
  --clients N        grant+put+revoke clients (default $clients)
  --conns N          connections per server (default $conns)
  --rusd PATH        rusd binary (default build/bin/rusd)
  --etcd PATH        etcd 3.4 binary (default etcd on PATH)
  --results DIR      also write results.jsonl, report.txt and server logs to DIR
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=1s; warmup=200ms; rounds=1 ;;
    --duration) duration="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --leases) leases="$2"; shift ;;
    --streams) streams="$2"; shift ;;
    --clients) clients="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --rusd) rusd_bin="$2"; shift ;;
    --etcd) etcd_bin="$2"; shift ;;
    --results) results_dir="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '%s run-lease-vs-etcd: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v "$etcd_bin" >/dev/null || die "etcd not found ($etcd_bin)"
etcd_version="$("$etcd_bin" --version 2>/dev/null | sed -n 1p || true)"
[[ -n "$rusd_bin" ]] || rusd_bin="$repo/build/bin/rusd"
[[ -x "$rusd_bin" ]] || die "rusd binary not found (build it, or pass --rusd PATH)"

work="$(mktemp -d /tmp/rusd-lease-bench.XXXXXX)"
results="$work/results.jsonl"
: >"$results"
declare -A pid_of=()
step_pid=""

# bounded SECONDS CMD...: runs CMD under `timeout` in the background and waits for it, so a
# signal to this script interrupts the wait at once.
bounded() {
  local secs="$1"; shift
  timeout "$secs" "$@" &
  step_pid=$!
  local rc=0
  wait "$step_pid" || rc=$?
  step_pid=""
  return "$rc"
}

# Stops one server by pid: SIGTERM, up to 20 s, then SIGKILL (rusd's supervisor stops its
# children itself).
stop_server() {
  local sys="$1" pid="${pid_of[$1]:-}"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  unset "pid_of[$sys]"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$step_pid" ]]; then
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  for sys in "${!pid_of[@]}"; do stop_server "$sys"; done
  if [[ -n "$results_dir" ]]; then
    mkdir -p "$results_dir"
    cp -f "$results" "$work"/*.log "$results_dir"/ 2>/dev/null || true
    [[ -f "$work/report.txt" ]] && cp -f "$work/report.txt" "$results_dir"/
  fi
  if [[ $rc -ne 0 ]]; then
    local logs
    logs="$(mktemp -d /tmp/rusd-bench-logs.XXXXXX)"
    cp -f "$work"/*.log "$results" "$logs"/ 2>/dev/null || true
    log "server logs kept in $logs"
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building loadgen"
(cd "$here/loadgen" && timeout 300 go build -o "$work/loadgen" .) || die "go build of bench/loadgen failed"
lg="$work/loadgen"

# Free loopback ports picked at random from 20000-40000 (other engineers' servers run here).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
pick_port() {
  local p
  for p in $(shuf -i 20000-40000 -n 200); do
    port_free "$p" || continue
    [[ "$taken" == *" $p "* ]] && continue
    echo "$p"; return 0
  done
  die "no free loopback port found"
}
declare -A cport=()
for sys in etcd rusd; do
  cp="$(pick_port)"; taken+="$cp "
  pp="$(pick_port)"; taken+="$pp "
  cport[$sys]=$cp
  bin="$etcd_bin"
  [[ "$sys" == rusd ]] && bin="$rusd_bin"
  start="$(date +%s%N)"
  "$bin" --name "bench-$sys" --data-dir "$work/$sys.data" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "bench-$sys=http://127.0.0.1:$pp" </dev/null >>"$work/$sys.log" 2>&1 &
  pid_of[$sys]=$!
  log "started $sys (pid ${pid_of[$sys]}) on 127.0.0.1:$cp"
  bounded 60 "$lg" probe -target "$sys=127.0.0.1:$cp" -start-ns "$start" -timeout 30s \
    -name "fresh start" || die "$sys did not start; $(tail -n 20 "$work/$sys.log")"
done

dur_s="$(sed -E 's/^([0-9.]+)s$/\1/' <<<"$duration")"
[[ "$dur_s" =~ ^[0-9.]+$ ]] || dur_s=10
budget=$(awk -v r="$rounds" -v d="$dur_s" 'BEGIN{printf "%d", r*4*(d+10)+120}')
log "lease workloads: $rounds round(s), $duration each (bounded at ${budget}s)"
bounded "$budget" "$lg" lease -targets "etcd=127.0.0.1:${cport[etcd]},rusd=127.0.0.1:${cport[rusd]}" \
  -leases "$leases" -streams "$streams" -clients "$clients" -conns "$conns" \
  -duration "$duration" -warmup "$warmup" -rounds "$rounds" -out "$results" \
  || die "lease workloads failed"
loadavg="$(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "etcd: $etcd_version; rusd: $rusd_bin; $(nproc) cores; load average $loadavg"
"$lg" report -results "$results" -base etcd -cand rusd | tee "$work/report.txt"
