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
bench_name=run-lease-vs-etcd
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

duration=3s
warmup=300ms
rounds=2
leases=1000
streams=1000
clients=64
conns=8
workloads=lease-keepalive,lease-grant-put-revoke

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
  --workloads LIST   comma-separated subset of $workloads
EOF
  common_usage
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
    --workloads) workloads="$2"; shift ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done


check_etcd
check_rusd

make_workdir rusd-lease-bench

build_loadgen
pick_ports etcd rusd
for sys in etcd rusd; do
  bin="$etcd_bin"
  [[ "$sys" == rusd ]] && bin="$rusd_bin"
  start_server "$sys" "$bin"
  bounded 60 "$lg" probe -target "$sys=127.0.0.1:${cport[$sys]}" -start-ns "${start_ns[$sys]}" \
    -timeout 30s -name "fresh start" || die "$sys did not start; $(tail -n 20 "$work/$sys.log")"
done

dur_s="$(sed -E 's/^([0-9.]+)s$/\1/' <<<"$duration")"
[[ "$dur_s" =~ ^[0-9.]+$ ]] || dur_s=10
budget=$(awk -v r="$rounds" -v d="$dur_s" 'BEGIN{printf "%d", r*4*(d+10)+120}')
log "lease workloads: $rounds round(s), $duration each (bounded at ${budget}s)"
bounded "$budget" "$lg" lease -targets "etcd=127.0.0.1:${cport[etcd]},rusd=127.0.0.1:${cport[rusd]}" \
  -leases "$leases" -streams "$streams" -clients "$clients" -conns "$conns" \
  -duration "$duration" -warmup "$warmup" -rounds "$rounds" -out "$results" \
  -pids "etcd=${pid_of[etcd]},rusd=${pid_of[rusd]}" -workloads "$workloads" \
  || die "lease workloads failed"
loadavg="$(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "etcd: $etcd_version; rusd: $rusd_bin; $(nproc) cores; load average $loadavg"
"$lg" report -results "$results" -base etcd -cand rusd | tee "$work/report.txt"
