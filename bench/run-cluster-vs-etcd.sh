#!/usr/bin/env bash
# Three-node clusters: etcd 3.4 and rusd side by side, in one run, on 127.0.0.1 only.
#
#   bench/run-cluster-vs-etcd.sh            # 2 rounds of 3 s cells, 20 leader kills
#   bench/run-cluster-vs-etcd.sh --quick    # 1 round of 1 s cells, 5 leader kills
#   bench/run-cluster-vs-etcd.sh --no-matrix --kills 20   # failover only
#
# 1. Request matrix against each cluster's leader (bench/loadgen matrix, or rusd-loadgen with
#    --loadgen cxx; cells alternating
#    between the two clusters): put at 1 client and at 64 clients over 8 connections, and
#    linearizable get at 64/8: ops/s, p50, p99, server CPU per op (all three members).
# 2. Failover, --kills times per cluster: SIGKILL of the leader's whole node (for rusd the
#    supervisor and its components), then the time until a Put through a surviving member
#    is acknowledged (that needs a new leader); the killed node is restarted and rejoins
#    before the next kill. Reported as p50 / p99 / max against 3 x the election timeout
#    (both clusters run with the default 100 ms heartbeat and 1000 ms election timeout).
# Prints etcd, rusd and rusd/etcd (bench/README.md explains the table) and the load average.
# Default durability on both; everything started is stopped by pid on exit (bench/lib.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_name=run-cluster-vs-etcd
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

duration=3s
warmup=300ms
rounds=2
kills=20
matrix=1
matrix_loadgen=go
election_ms=1000  # etcd's default --election-timeout, which both clusters run with

usage() {
  cat <<USAGE
usage: $0 [options]
  --quick          1 s cells, 1 round, 5 kills
  --duration D     measured time per cell (default $duration)
  --rounds N       matrix rounds; the table shows medians (default $rounds)
  --kills N        leader kills per cluster (default $kills; 0: none)
  --loadgen go|cxx     client of the request matrix: go = bench/loadgen (clientv3, what a Go
                       user sees), cxx = rusd-loadgen (lean C++ gRPC, so the cells measure the
                       servers more than the client); default go
  --no-matrix      skip the request matrix
USAGE
  common_usage
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=1s; warmup=200ms; rounds=1; kills=5 ;;
    --duration) duration="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --kills) kills="$2"; shift ;;
    --loadgen) matrix_loadgen="$2"; shift ;;
    --no-matrix) matrix=0 ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done


check_etcd
check_rusd
command -v etcdctl >/dev/null || die "etcdctl not found (Debian's etcd-client)"

make_workdir rusd-cluster-bench

build_loadgen
pick_matrix_loadgen "$matrix_loadgen"

systems=(etcd rusd)
bin_of() { if [[ "$1" == rusd ]]; then echo "$rusd_bin"; else echo "$etcd_bin"; fi; }
endpoints() { local sys="$1" i eps=""; for i in 1 2 3; do eps+="${eps:+,}127.0.0.1:${cport[$sys-$i]}"; done; echo "$eps"; }

for sys in "${systems[@]}"; do
  pick_ports "$sys-1" "$sys-2" "$sys-3"
  cluster=""
  for i in 1 2 3; do cluster+="${cluster:+,}$sys-$i=http://127.0.0.1:${pport[$sys-$i]}"; done
  for i in 1 2 3; do start_member "$sys-$i" "$(bin_of "$sys")" "$sys-$i" "$cluster"; done
  eval "cluster_of_$sys=\$cluster"
done

# leader_key SYS: the KEY (sys-i) of the member that leads now, waiting up to 30 s for one.
leader_key() {
  local sys="$1" ep i
  for _ in $(seq 1 300); do
    ep="$(etcdctl --endpoints="$(endpoints "$sys")" --command-timeout=1s endpoint status 2>/dev/null |
      awk -F', ' '$5 == "true" {print $1; exit}')"
    if [[ -n "$ep" ]]; then
      for i in 1 2 3; do
        [[ "$ep" == "127.0.0.1:${cport[$sys-$i]}" ]] && { echo "$sys-$i"; return 0; }
      done
    fi
    sleep 0.1
  done
  die "$sys: no leader within 30 s; $(tail -n 20 "$work/$sys-1.log")"
}

# ---- 1. request matrix against each leader -------------------------------------------------
if [[ "$matrix" -eq 1 ]]; then
  targets="" pids=""
  for sys in "${systems[@]}"; do
    l="$(leader_key "$sys")"
    targets+="${targets:+,}$sys=127.0.0.1:${cport[$l]}"
    pids+="${pids:+,}$sys=${pid_of[$sys-1]}+${pid_of[$sys-2]}+${pid_of[$sys-3]}"
    log "$sys leader: $l"
  done
  dur_s="$(sed -E 's/^([0-9.]+)s$/\1/' <<<"$duration")"
  [[ "$dur_s" =~ ^[0-9.]+$ ]] || dur_s=10
  budget=$(awk -v r="$rounds" -v d="$dur_s" 'BEGIN{printf "%d", r*2*4*(d+3)+240}')
  log "request matrix: $rounds round(s), $duration cells (bounded at ${budget}s)"
  bounded "$budget" "$mlg" matrix -targets "$targets" -workloads put,get-linearizable \
    -shapes 1x1,64x8 -duration "$duration" -warmup "$warmup" -keyspace 10000 -rounds "$rounds" \
    -pids "$pids" -out "$results" || die "request matrix failed"
fi

# ---- 2. failover ----------------------------------------------------------------------------
# loadgen connects to a survivor and writes once, then SIGKILLs the leader's whole node (for
# rusd the supervisor and its components) itself, so the clock starts at the kill, and Puts
# with a 100 ms deadline until one is acknowledged. The killed member is restarted and must
# serve a linearizable Range (it rejoined the cluster) before the next kill.
budget_failover="$((3 * election_ms))ms"
log "failover: $kills leader kills per cluster (acceptance: p99 within $budget_failover)"
for k in $(seq 1 "$kills"); do
  for sys in "${systems[@]}"; do
    l="$(leader_key "$sys")"
    survivor="$sys-1"
    [[ "$survivor" == "$l" ]] && survivor="$sys-2"
    kids="$(ps -o pid= --ppid "${pid_of[$l]}" 2>/dev/null | tr -d ' ' | paste -sd, || true)"
    bounded 60 "$lg" failover -target "$sys=127.0.0.1:${cport[$survivor]}" \
      -kill "${pid_of[$l]}${kids:+,$kids}" -budget "$budget_failover" -timeout 30s \
      -out "$results" || die "$sys: no write acknowledged after killing $l"
    wait "${pid_of[$l]}" 2>/dev/null || true
    unset "pid_of[$l]"
    eval "cluster=\$cluster_of_$sys"
    start_member "$l" "$(bin_of "$sys")" "$l" "$cluster"
    bounded 60 "$lg" probe -target "$sys=127.0.0.1:${cport[$l]}" -timeout 50s \
      >/dev/null 2>&1 || die "$sys: restarted $l does not serve; $(tail -n 20 "$work/$l.log")"
  done
done

echo
echo "3-node clusters. etcd: $etcd_version; rusd: $rusd_bin; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$lg" report -results "$results" -base etcd -cand rusd | tee "$work/report.txt"
