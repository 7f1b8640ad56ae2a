#!/usr/bin/env bash
# End-to-end benchmark: etcd 3.4 and rusd side by side, in one run, on 127.0.0.1 only.
#
#   bench/run-vs-etcd.sh                # full run: 2 rounds of 3 s cells, 1,000,000 keys
#   bench/run-vs-etcd.sh --quick        # 1 s cells, 100,000 keys (about 1 minute)
#   bench/run-vs-etcd.sh --against-etcd # sanity: a second etcd in rusd's place, ratios ~ 1
#
# What it does (see bench/README.md for how to read the table):
#   1. starts etcd and rusd from empty temp data dirs and times the first served Range;
#   2. runs the loadgen request matrix (Go clientv3; --loadgen cxx: rusd-loadgen, C++)
#      (put, serializable get, linearizable get, txn,
#      range of 1000 keys; 1 client and 64 clients over 8 connections), alternating between
#      the two servers cell by cell so that background load hits both alike;
#   3. loads N keys (32 B keys, 256 B values) into each, one after the other, and records
#      RSS (etcd's process; rusd = supervisor + frontend + raftd + stored);
#   4. stops both, then restarts each alone on its data and times the first Range that
#      returns the last loaded key; records RSS again;
#   5. prints etcd, rusd and rusd/etcd for every figure.
#
# Durability is the same on both sides: etcd runs with its defaults (WAL fsync per batch of
# proposals), rusd's raftd fdatasyncs its WAL per batch before anything is applied or
# acknowledged. Neither side gets --unsafe-no-fsync or similar.
#
# Everything it starts lives in one temp dir and is stopped by pid on exit (trap), success or
# failure; the temp dir is removed (on failure the server logs are first copied to
# /tmp/rusd-bench-logs.*). Each step is bounded by `timeout`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_name=run-vs-etcd
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

keys=1000000
duration=3s
warmup=300ms
keyspace=100000
rounds=2
starts=3
workloads=all
shapes=1x1,64x8
against_etcd=0
base_port="${BENCH_BASE_PORT:-}"
skip_matrix=0
skip_load=0
matrix_loadgen=go

usage() {
  cat <<EOF
usage: $0 [options]
  --quick              1 s cells, 1 round, --keys 100000, --keyspace 10000
  --keys N             keys in the load/RSS/restart phase (default $keys; 0 skips that phase)
  --duration D         measured time per matrix cell, Go duration (default $duration)
  --keyspace N         keys the matrix reads/overwrites (default $keyspace)
  --rounds N           run the matrix N times, report medians (default $rounds)
  --starts N           fresh (empty) starts to time, report the median (default $starts)
  --workloads LIST     subset of put,get-serializable,get-linearizable,txn,range-1000
  --shapes LIST        CLIENTSxCONNS list (default $shapes)
  --loadgen go|cxx     client of the request matrix: go = bench/loadgen (clientv3, what a Go
                       user sees), cxx = rusd-loadgen (lean C++ gRPC, so the cells measure the
                       servers more than the client); default go
  --no-matrix          skip the request matrix
  --against-etcd       run a second etcd where rusd would run (sanity check: ratios ~ 1)
  --base-port P        etcd uses P (client) and P+10 (peer), rusd P+1000 and P+1010
                       (default: free ports picked at random)
EOF
  common_usage
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) duration=1s; warmup=200ms; keys=100000; keyspace=10000; rounds=1 ;;
    --keys) keys="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --keyspace) keyspace="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --starts) starts="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --shapes) shapes="$2"; shift ;;
    --loadgen) matrix_loadgen="$2"; shift ;;
    --no-matrix) skip_matrix=1 ;;
    --against-etcd) against_etcd=1 ;;
    --base-port) base_port="$2"; shift ;;
    *) common_option "$@"; shift "$common_shift"; continue ;;
  esac
  shift
done
[[ "$keys" -gt 0 ]] || skip_load=1

# ---- binaries -------------------------------------------------------------------------
check_etcd

cand=rusd
if [[ $against_etcd -eq 1 ]]; then
  cand=etcd2
else
  check_rusd
fi

make_workdir rusd-bench

# ---- loadgen ---------------------------------------------------------------------------
build_loadgen
pick_matrix_loadgen "$matrix_loadgen"

# ---- servers ---------------------------------------------------------------------------
# Loopback ports: --base-port P gives etcd P/P+10 and the other system P+1000/P+1010;
# without it, free ports are picked at random from 20000-40000 (other engineers' tests and
# servers run on this machine too).
if [[ -n "$base_port" ]]; then
  cport[etcd]=$base_port; pport[etcd]=$((base_port + 10))
  cport[$cand]=$((base_port + 1000)); pport[$cand]=$((base_port + 1010))
else
  pick_ports etcd "$cand"
fi
for sys in etcd "$cand"; do
  for p in "${cport[$sys]}" "${pport[$sys]}"; do
    port_free "$p" || die "port 127.0.0.1:$p is in use (pick another --base-port)"
  done
done
port_of() { echo "${cport[$1]}"; }

# start_sys SYS: starts etcd or the candidate on its ports and data dir (bench/lib.sh).
start_sys() {
  local bin="$etcd_bin"
  [[ "$1" == rusd ]] && bin="$rusd_bin"
  start_server "$1" "$bin"
}

# probe SYS LABEL [extra loadgen flags]: time from spawn to first successful Range.
probe() {
  local sys="$1" label="$2"; shift 2
  bounded 150 "$lg" probe -target "$sys=127.0.0.1:$(port_of "$sys")" -start-ns "${start_ns[$sys]}" \
    -timeout 120s -name "$label" -out "$results" "$@" \
    || die "$sys did not serve a Range ($label); last log lines:
$(tail -n 20 "$work/$sys.log")"
}

rss() {
  local sys="$1" label="$2" children=()
  [[ "$sys" == rusd ]] && children=(-children)
  "$lg" rss -system "$sys" -pid "${pid_of[$sys]}" "${children[@]}" -name "$label" -out "$results" \
    || die "could not read memory of $sys"
}

report() {
  "$lg" report -results "$results" -base etcd -cand "$cand" | tee "$work/report.txt"
}

# ---- 1. fresh start ------------------------------------------------------------------------
# etcd's first election on a fresh single-member cluster fires after a random 100 ms - 1 s
# (election timeout randomised, ticks fast-forwarded), so one sample says little: take the
# median of --starts fresh starts, each on a new empty data dir.
for sys in etcd "$cand"; do
  for i in $(seq 1 "$starts"); do
    start_sys "$sys"
    probe "$sys" "fresh, empty data dir"
    if [[ $i -lt $starts ]]; then
      stop_server "$sys"
      rm -rf "${work:?}/$sys.data"
    fi
  done
done

# ---- 2. request matrix ---------------------------------------------------------------------
if [[ $skip_matrix -eq 0 ]]; then
  ncells=$(( $(tr ',' '\n' <<<"$workloads" | wc -l) * $(tr ',' '\n' <<<"$shapes" | wc -l) ))
  [[ "$workloads" == all ]] && ncells=$(( 5 * $(tr ',' '\n' <<<"$shapes" | wc -l) ))
  dur_s="$(sed -E 's/^([0-9.]+)s$/\1/' <<<"$duration")"
  [[ "$dur_s" =~ ^[0-9.]+$ ]] || dur_s=10
  budget=$(awk -v r="$rounds" -v n="$ncells" -v d="$dur_s" 'BEGIN{printf "%d", r*2*n*(d+3)+240}')
  log "request matrix: $rounds round(s) of $ncells cells x 2 systems, $duration each (bounded at ${budget}s)"
  bounded "$budget" "$mlg" matrix -targets "etcd=127.0.0.1:$(port_of etcd),$cand=127.0.0.1:$(port_of "$cand")" \
    -workloads "$workloads" -shapes "$shapes" -duration "$duration" -warmup "$warmup" \
    -keyspace "$keyspace" -rounds "$rounds" -pids "etcd=${pid_of[etcd]},$cand=${pid_of[$cand]}" \
    -out "$results" || die "request matrix failed"
fi

# ---- 3. load N keys, RSS ---------------------------------------------------------------------
if [[ $skip_load -eq 0 ]]; then
  for sys in etcd "$cand"; do
    bounded 900 "$lg" load -targets "$sys=127.0.0.1:$(port_of "$sys")" -keys "$keys" -out "$results" \
      || die "loading $keys keys into $sys failed; last log lines:
$(tail -n 20 "$work/$sys.log")"
  done
  sleep 2 # let background flushes settle before reading memory
  for sys in etcd "$cand"; do rss "$sys" "after loading $keys keys"; done

  # ---- 4. restart each alone, time to first Range that sees the data -----------------------
  for sys in etcd "$cand"; do stop_server "$sys"; done
  for sys in etcd "$cand"; do
    sleep 1
    start_sys "$sys"
    probe "$sys" "restart with $keys keys" -want-loaded "$keys"
    sleep 1
    rss "$sys" "after restart with $keys keys"
    stop_server "$sys"
  done
fi

# ---- 5. table ----------------------------------------------------------------------------------
echo
echo "etcd: $etcd_version; $cand: ${rusd_bin:-$etcd_bin}; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
report
