#!/usr/bin/env bash
# Where a replicated put's CPU goes: a three-node rusd cluster on 127.0.0.1, --ops puts
# (closed loop, --shape clients x connections) to the leader, and per process of every node
# (frontend, raftd, stored): CPU µs per put (perf stat task-clock), context switches and
# system calls per put, then the rings' messages and wake-ups, WAL fsyncs and committed
# entries per 1000 puts (the node's /metrics). Counts are steadier than ops/s on a loaded
# machine; a batch's size shows as fsyncs (or committed-ring messages) per put.
#
#   bench/cluster-cpu-per-put.sh                        # 30000 puts at 64/8
#   bench/cluster-cpu-per-put.sh --ops 50000 --syscalls futex,sendto,read,poll,fdatasync
#   bench/cluster-cpu-per-put.sh --rusd /work/main/build/bin/rusd   # a "before" build
#   bench/cluster-cpu-per-put.sh --record /tmp/prof   # + where: perf record per process,
#                                                    # top symbols in /tmp/prof/<proc>.top
#
# Needs perf (software events and syscall tracepoints only: works in VMs without PMU) and
# etcdctl (to find the leader). Everything started is stopped by pid on exit (bench/lib.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_name=cluster-cpu-per-put
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

ops=30000
shape=64x8
syscalls=""
record=""

usage() {
  cat <<USAGE
usage: $0 [options]
  --ops N              puts measured (default $ops)
  --shape CxN          clients x connections (default $shape)
  --syscalls LIST      also count these system calls per put (e.g. futex,sendto,fdatasync)
  --record DIR         also sample each process (perf record, 2 kHz cpu-clock, kernel call chains) and write
                       its hottest symbols to DIR/<node>.<process>.top
USAGE
  common_usage
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --ops) ops="$2"; shift ;;
    --shape) shape="$2"; shift ;;
    --syscalls) syscalls="$2"; shift ;;
    --record) record="$2"; shift ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done

check_rusd
command -v etcdctl >/dev/null || die "etcdctl not found (Debian's etcd-client)"
command -v perf >/dev/null || die "perf not found (Debian's linux-perf)"
make_workdir rusd-cpu-per-put
build_loadgen

pick_ports r-1 r-2 r-3
cluster=""
for i in 1 2 3; do cluster+="${cluster:+,}r-$i=http://127.0.0.1:${pport[r-$i]}"; done
for i in 1 2 3; do start_member "r-$i" "$rusd_bin" "r-$i" "$cluster"; done
eps="127.0.0.1:${cport[r-1]},127.0.0.1:${cport[r-2]},127.0.0.1:${cport[r-3]}"
leader=""
for _ in $(seq 1 300); do
  leader="$(etcdctl --endpoints="$eps" --command-timeout=1s endpoint status 2>/dev/null |
    awk -F', ' '$5 == "true" {print $1; exit}' || true)"
  [[ -n "$leader" ]] && break
  sleep 0.1
done
[[ -n "$leader" ]] || die "no leader within 30 s"
for i in 1 2 3; do [[ "127.0.0.1:${cport[r-$i]}" == "$leader" ]] && log "leader: r-$i ($leader)"; done

# The keyspace is written (and every process warmed) before anything is counted.
bounded 300 "$lg" matrix -targets "rusd=$leader" -workloads put -shapes "$shape" -ops 2000 \
  -keyspace 10000 -warmup 200ms >/dev/null || die "warm-up failed"

metrics() {
  local i
  for i in 1 2 3; do
    curl -s "http://127.0.0.1:${cport[r-$i]}/metrics" |
      grep -E '^(rusd_ring_(messages|wakeups)_total|rusd_raft_wal_fsyncs_total|rusd_raft_entries_committed_total)' |
      sed "s/^/r-$i /"
  done
}
events="task-clock,context-switches,raw_syscalls:sys_enter"
for s in ${syscalls//,/ }; do events+=",syscalls:sys_enter_$s"; done

metrics >"$work/metrics.before"
stat_pids=()
for i in 1 2 3; do
  for c in frontend raftd stored; do
    p="$(pgrep -P "${pid_of[r-$i]}" -x "rusd-$c")" || die "r-$i: no rusd-$c"
    perf stat -x, -e "$events" -p "$p" -o "$work/stat.r-$i.$c" 2>/dev/null &
    stat_pids+=($!)
    if [[ -n "$record" ]]; then
      mkdir -p "$record"
      perf record -q -g -F 2000 -e cpu-clock -p "$p" -o "$record/r-$i.$c.data" 2>/dev/null &
      stat_pids+=($!)
    fi
  done
done
bounded 600 "$lg" matrix -targets "rusd=$leader" -workloads put -shapes "$shape" -ops "$ops" \
  -keyspace 10000 -prepare=false -warmup 100ms -out "$results" || die "measured puts failed"
kill -INT "${stat_pids[@]}" 2>/dev/null || true
wait "${stat_pids[@]}" 2>/dev/null || true
metrics >"$work/metrics.after"
if [[ -n "$record" ]]; then
  for f in "$record"/*.data; do
    perf report -i "$f" --no-children -g none --sort dso,symbol --percent-limit 0.5 --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -60 >"${f%.data}.top" || true
  done
fi

echo
echo "3-node rusd ($rusd_bin), $ops puts at $shape to the leader $leader; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %12s %10s %14s\n' process "CPU us/put" "cs/put" "syscalls/put"
for f in "$work"/stat.*; do
  awk -F, -v ops="$ops" -v n="${f##*/stat.}" '
    $3 == "task-clock" {cpu = $1} $3 == "context-switches" {cs = $1}
    $3 == "raw_syscalls:sys_enter" {sc = $1}
    $3 ~ /^syscalls:sys_enter_/ {sub(/^syscalls:sys_enter_/, "", $3); each[$3] = $1}
    END {
      printf "%-18s %12.1f %10.2f %14.2f\n", n, cpu * 1000 / ops, cs / ops, sc / ops
      for (s in each) printf "  %-16s %35.3f\n", s, each[s] / ops
    }' "$f"
  awk -F, -v ops="$ops" '$3 == "task-clock" {print $1 * 1000 / ops}' "$f" >>"$work/cpu.sum"
done
awk '{t += $1} END {printf "%-18s %12.1f\n", "all nine", t}' "$work/cpu.sum"
echo
echo "per 1000 puts (node /metrics)"
paste -d' ' "$work/metrics.before" "$work/metrics.after" |
  awk -v ops="$ops" '{d = $6 - $3; if (d > 0) printf "%s %-50s %8.1f\n", $1, $2, d * 1000 / ops}'
