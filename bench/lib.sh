# Shared by the bench/run-*-vs-etcd.sh scripts (sourced, not run): logging, bounded steps,
# free loopback ports, starting etcd or rusd with etcd's flags, stopping them by pid, and the
# exit trap that stops everything and removes the temp dir.
#
# The sourcing script sets, before calling these:
#   bench_name   its name, for log lines
#   work         its temp dir (servers' data dirs and logs live there)
#   etcd_bin, rusd_bin
# and optionally results (a JSON-lines file), results_dir (copy results and logs there on
# exit) and keep=1 (keep the temp dir). Then: `trap bench_cleanup EXIT; trap 'exit 130' INT TERM`
# (make_workdir does all of that).
#
# The options every script takes (--rusd, --etcd, --results, --keep, --help) are parsed here:
# source this file first, then in the script's own option loop let `common_option "$@"`
# handle whatever the script does not know (it shifts by common_shift, or stops on an
# unknown option). After parsing: check_etcd, check_rusd, make_workdir PREFIX.
#
# Every server started here is stopped by its pid on any exit: SIGTERM, then SIGKILL after
# 20 s; for rusd, any component that outlives the supervisor is killed by pid too.

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "${bench_name:-bench}" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

declare -A pid_of=() cport=() pport=() start_ns=()
rusd_bin="${RUSD_BIN:-}"
etcd_bin="${ETCD_BIN:-etcd}"
results_dir=""
keep=0
rusd_args=()  # --rusd-args: extra flags for every rusd this script starts

# The lines of the usage text for the options common_option handles.
common_usage() {
  cat <<USAGE
  --rusd PATH          rusd supervisor binary (default build/bin/rusd, then build-bench/bin/rusd)
  --etcd PATH          etcd 3.4 binary (default etcd on PATH)
  --results DIR        also write results.jsonl, report.txt and server logs to DIR
  --keep               keep the temp dir (data dirs, logs) instead of deleting it
  --rusd-args "ARGS"   extra flags for rusd (split on spaces), e.g.
                       --rusd-args --experimental-native-grpc
  --loadgen-bin PATH   rusd-loadgen binary for --loadgen cxx (default build/bin/rusd-loadgen)
USAGE
}

# common_option ARGS...: parses the option in $1 (with its value in $2) if it is one every
# script takes, and sets common_shift to the number of words it used; anything else is an
# unknown option: the script's usage, exit 2. -h/--help: usage, exit 0.
# (One word too few after --rusd and the like ends the script with bash's own message.)
common_option() {
  common_shift=2
  case "$1" in
    --rusd) rusd_bin="${2:?--rusd needs a path}" ;;
    --etcd) etcd_bin="${2:?--etcd needs a path}" ;;
    --results) results_dir="${2:?--results needs a directory}" ;;
    --keep) keep=1; common_shift=1 ;;
    --rusd-args) read -r -a rusd_args <<<"${2?--rusd-args needs a value}" ;;
    --loadgen-bin) cxx_loadgen_bin="${2:?--loadgen-bin needs a path}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
}

# check_etcd: etcd found (sets etcd_version; warns unless 3.4).
check_etcd() {
  command -v "$etcd_bin" >/dev/null || die "etcd not found ($etcd_bin)"
  etcd_version="$("$etcd_bin" --version 2>/dev/null | sed -n 1p || true)"
  [[ "$etcd_version" == *"3.4."* ]] || log "warning: expected etcd 3.4, got: $etcd_version"
}

# check_rusd: rusd (default build/bin/rusd of this repository, then build-bench/bin/rusd)
# with its three components beside it.
check_rusd() {
  if [[ -z "$rusd_bin" ]]; then
    local repo_dir b
    repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for b in "$repo_dir/build/bin/rusd" "$repo_dir/build-bench/bin/rusd"; do
      [[ -x "$b" ]] && { rusd_bin="$b"; break; }
    done
  fi
  [[ -x "$rusd_bin" ]] || die "rusd binary not found (build it, or pass --rusd PATH)"
  local c
  for c in rusd-frontend rusd-raftd rusd-stored; do
    [[ -x "$(dirname "$rusd_bin")/$c" ]] || die "$c not found beside $rusd_bin"
  done
}

# make_workdir PREFIX: the temp dir (work), an empty results file in it (results), and the
# traps that stop everything on exit.
make_workdir() {
  work="$(mktemp -d "/tmp/$1.XXXXXX")"
  results="$work/results.jsonl"
  : >"$results"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
step_pid=""
ports_used=" "

# bounded SECONDS CMD...: runs CMD under `timeout`, in the background, and waits for it. A
# signal to the script interrupts `wait` at once (a foreground child would delay the trap
# until it finished); bench_cleanup then stops the step by its pid.
bounded() {
  local secs="$1"; shift
  timeout "$secs" "$@" &
  step_pid=$!
  local rc=0
  wait "$step_pid" || rc=$?
  step_pid=""
  return "$rc"
}

# Loopback ports picked at random from 20000-40000 (other engineers' tests and servers run
# on the same machine), never one handed out before in this run.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  for p in $(shuf -i 20000-40000 -n 200); do
    port_free "$p" || continue
    [[ "$ports_used" == *" $p "* ]] && continue
    ports_used+="$p "
    echo "$p"; return 0
  done
  die "no free loopback port found"
}

# pick_ports SYS...: a free client and peer port for each system, in cport[] and pport[].
# (Not through $(...) per system: ports_used must survive in this shell.)
pick_ports() {
  local sys
  for sys in "$@"; do
    cport[$sys]="$(pick_port)"; ports_used+="${cport[$sys]} "
    pport[$sys]="$(pick_port)"; ports_used+="${pport[$sys]} "
  done
}

# build_loadgen: builds bench/loadgen into the temp dir; sets lg.
build_loadgen() {
  log "building loadgen"
  (cd "$(dirname "${BASH_SOURCE[0]}")/loadgen" && timeout 300 go build -o "$work/loadgen" .) ||
    die "go build of bench/loadgen failed"
  lg="$work/loadgen"
}

# pick_matrix_loadgen KIND: sets mlg, the program that runs the request matrix's cells
# (`matrix` subcommand, same flags and records for both): "go" = the Go loadgen ($lg, call
# build_loadgen first), "cxx" = rusd-loadgen (bench/loadgen_cxx; the C++ gRPC client built
# with rusd: beside --rusd, else this repository's build/bin or build-bench/bin, or
# --loadgen-bin PATH). Loading keys, start-up probes, RSS and failover always use $lg.
pick_matrix_loadgen() {
  case "$1" in
    go) mlg="$lg" ;;
    cxx)
      if [[ -z "${cxx_loadgen_bin:-}" ]]; then
        local repo_dir b
        repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
        # Beside --rusd first: the same build as the server under test (a repository's own
        # build/ may be older and lack a mode the script needs).
        for b in "$(dirname "${rusd_bin:-.}")/rusd-loadgen" "$repo_dir/build/bin/rusd-loadgen" \
          "$repo_dir/build-bench/bin/rusd-loadgen"; do
          [[ -x "$b" ]] && { cxx_loadgen_bin="$b"; break; }
        done
      fi
      [[ -x "${cxx_loadgen_bin:-}" ]] || die "rusd-loadgen not found (ninja -C build rusd-loadgen, or --loadgen-bin PATH)"
      mlg="$cxx_loadgen_bin" ;;
    *) die "--loadgen must be go or cxx, not $1" ;;
  esac
  log "load generator: $1 ($mlg)"
}

# start_server SYS BIN: spawns BIN as a one-member cluster named bench-SYS on cport[SYS] and
# pport[SYS], with its data dir in the temp dir (created on first start, reused after) and
# its own log; records its pid in pid_of[SYS] and the spawn time in start_ns[SYS].
start_server() {
  local sys="$1" bin="$2" cp="${cport[$1]}" pp="${pport[$1]}"
  local args=(
    --name "bench-$sys"
    --data-dir "$work/$sys.data"
    --listen-client-urls "http://127.0.0.1:$cp"
    --advertise-client-urls "http://127.0.0.1:$cp"
    --listen-peer-urls "http://127.0.0.1:$pp"
    --initial-advertise-peer-urls "http://127.0.0.1:$pp"
    --initial-cluster "bench-$sys=http://127.0.0.1:$pp"
  )
  [[ "$bin" == "$rusd_bin" ]] && args+=("${rusd_args[@]}")
  start_ns[$sys]="$(date +%s%N)"
  # stdin from /dev/null so that a server never reads the terminal.
  "$bin" "${args[@]}" </dev/null >>"$work/$sys.log" 2>&1 &
  pid_of[$sys]=$!
  log "started $sys (pid ${pid_of[$sys]}) on 127.0.0.1:$cp"
}

# start_member KEY BIN NAME INITIAL_CLUSTER: spawns BIN as member NAME of a cluster bootstrapped
# with INITIAL_CLUSTER (name=url,...) on cport[KEY] and pport[KEY], data dir and log named by
# KEY in the temp dir; pid in pid_of[KEY], spawn time in start_ns[KEY].
start_member() {
  local key="$1" bin="$2" name="$3" cluster="$4" cp="${cport[$1]}" pp="${pport[$1]}"
  local extra=()
  [[ "$bin" == "$rusd_bin" ]] && extra=("${rusd_args[@]}")
  start_ns[$key]="$(date +%s%N)"
  "$bin" --name "$name" --data-dir "$work/$key.data" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$cluster" --initial-cluster-state new "${extra[@]}" </dev/null >>"$work/$key.log" 2>&1 &
  pid_of[$key]=$!
  # Members are SIGKILLed on purpose (failover): out of the job table, bash neither reports
  # them as "Killed" nor needs a wait; stop_server still finds them by pid.
  disown "${pid_of[$key]}"
  log "started $key (pid ${pid_of[$key]}) on 127.0.0.1:$cp"
}

# Stops one server by pid: SIGTERM, up to 20 s, then SIGKILL. For rusd the supervisor stops
# its children; any child still alive afterwards (by the pids seen before) is killed too.
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
  if kill -0 "$pid" 2>/dev/null; then
    log "$sys (pid $pid) ignored SIGTERM for 20 s; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for k in $kids; do
    if kill -0 "$k" 2>/dev/null; then
      log "$sys child $k outlived its supervisor; killing"
      kill -KILL "$k" 2>/dev/null || true
    fi
  done
  unset "pid_of[$sys]"
}

# The EXIT trap: stops the running step and every server, copies results and logs where
# asked, keeps the server logs of a failed run, removes the temp dir (unless keep=1).
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$step_pid" ]]; then
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  local sys
  for sys in "${!pid_of[@]}"; do stop_server "$sys"; done
  if [[ -n "${results_dir:-}" ]]; then
    mkdir -p "$results_dir"
    cp -f "${results:-/dev/null}" "$work"/*.log "$results_dir"/ 2>/dev/null || true
    [[ -f "$work/report.txt" ]] && cp -f "$work/report.txt" "$results_dir"/
  fi
  if [[ "${keep:-0}" -eq 1 ]]; then
    log "temp dir kept: $work"
  else
    if [[ $rc -ne 0 ]]; then
      # Keep what explains the failure (server logs, records), not the data dirs.
      local logs
      logs="$(mktemp -d /tmp/rusd-bench-logs.XXXXXX)"
      cp -f "$work"/*.log "$work"/*.jsonl "$logs"/ 2>/dev/null || true
      log "server logs kept in $logs"
    fi
    rm -rf "$work"
  fi
  exit $rc
}
