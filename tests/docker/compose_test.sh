#!/usr/bin/env bash
# The docker-compose cluster end to end (docs/deployment.md): brings up the repository's
# docker-compose.yml (three rusd containers from rusd:latest), then
#   1. waits until all three report healthy (GET /health in the image's healthcheck);
#   2. writes through node 1 and reads it back through node 3 (a linearizable read);
#   3. `etcdctl member list` shows three started members;
#   4. kills the leader's container (docker kill = SIGKILL to the whole node) and checks that
#      a write through a survivor succeeds within a few seconds (a new leader is elected);
#   5. starts the killed container again and checks it catches up: a serializable read (its
#      own store, no leader involved) sees the writes made while it was down;
#   6. `down` and `up` again: new containers on the same named volumes resume the cluster;
#   7. `down -v` removes containers, network and volumes (also on failure: trap).
# etcdctl runs inside the containers (the image carries it), so the host needs only docker
# and docker-compose; published ports are random, so it does not clash with a cluster of
# yours on 23791-23793. Exits 77 (ctest: skipped) when docker, the daemon or the image is
# missing: build the image with scripts/docker-image.sh.
#
# Usage: tests/docker/compose_test.sh      Environment: RUSD_IMAGE (default rusd:latest)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${RUSD_IMAGE:-rusd:latest}"
PROJECT="rusdtest$$"
SKIP=77

skip() { echo "SKIPPED: $*"; exit "$SKIP"; }
command -v docker >/dev/null || skip "docker is not installed"
if command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  skip "neither docker-compose nor 'docker compose' is available"
fi
docker info >/dev/null 2>&1 || skip "the Docker daemon does not answer (docker info)"
docker image inspect "$IMAGE" >/dev/null 2>&1 ||
  skip "image $IMAGE not found: build it with scripts/docker-image.sh"

# Warn (not fail) when the image was built from other binaries than build/bin's.
want=$(docker image inspect -f '{{ index .Config.Labels "org.rusd.binaries-sha256" }}' "$IMAGE")
bins=("$REPO"/build/bin/rusd{,-frontend,-raftd,-stored})
if [[ -n $want ]] && ls "${bins[@]}" >/dev/null 2>&1 &&
   [[ $(cat "${bins[@]}" | sha256sum | cut -c1-16) != "$want" ]]; then
  echo "note: $IMAGE was built from other binaries than build/bin (re-run scripts/docker-image.sh)"
fi

export RUSD_IMAGE="$IMAGE" RUSD1_PORT="" RUSD2_PORT="" RUSD3_PORT=""  # "" = a random host port
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$REPO/docker-compose.yml" "$@"; }

PASSED=0
FAILED=0
cleanup() {
  local rc=$?
  if ((rc != 0 && rc != SKIP)); then
    echo "--- last log lines of each node ---"
    compose logs --no-color --tail=40 2>&1 || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  echo "$PASSED passed, $FAILED failed"
}
trap cleanup EXIT
trap 'exit 143' INT TERM  # so a Ctrl-C or ctest's stop still runs the cleanup

check() {  # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"; PASSED=$((PASSED + 1))
  else
    echo "FAIL $name"; FAILED=$((FAILED + 1)); exit 1
  fi
}

cid() { compose ps -q "$1"; }
# etcdctl inside node N's container against its own client port; 3 s per request.
ctl() {
  local n=$1; shift
  docker exec "$(cid "rusd$n")" etcdctl --endpoints=127.0.0.1:2379 --command-timeout=3s "$@"
}
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$(cid "rusd$1")"; }

wait_healthy() {  # wait_healthy SECONDS NODE...
  local deadline=$((SECONDS + $1)); shift
  local n
  for n in "$@"; do
    until [[ $(health "$n") == healthy ]]; do
      ((SECONDS < deadline)) || { echo "rusd$n is $(health "$n") after the wait"; return 1; }
      sleep 1
    done
  done
}

echo "== compose project $PROJECT, image $IMAGE"
compose up -d >/dev/null 2>&1 || { compose up -d; exit 1; }
start=$SECONDS
check "all three nodes healthy" wait_healthy 90 1 2 3
echo "     (healthy after $((SECONDS - start)) s)"
port1=$(compose port rusd1 2379 | sed 's/.*://')
check "client port published on 127.0.0.1 ($port1)" \
  bash -c "exec 3<>/dev/tcp/127.0.0.1/$port1"

check "put through rusd1" test "$(ctl 1 put greeting hello)" == OK
check "get through rusd3 sees it" test "$(ctl 3 get greeting --print-value-only)" == hello

members=$(ctl 1 member list)
echo "$members" | sed 's/^/     /'
check "member list: 3 started members" \
  test "$(grep -c ', started, rusd[123], http://rusd[123]:2380, http://rusd[123]:2379' <<<"$members")" == 3

# The leader: the node whose own member ID equals the leader ID it reports.
leader=""
for n in 1 2 3; do
  fields=$(ctl "$n" endpoint status -w fields)
  id=$(awk -F' : ' '/"MemberID"/ {print $2}' <<<"$fields")
  lead=$(awk -F' : ' '/"Leader"/ {print $2}' <<<"$fields")
  [[ -n $id && $id == "$lead" ]] && leader=$n
done
check "a leader is found" test -n "$leader"
echo "     leader: rusd$leader"
survivors=()
for n in 1 2 3; do [[ $n == "$leader" ]] || survivors+=("$n"); done

# In-container bash, so retry loops and timings do not pay a `docker exec` per attempt.
in_node() { local n=$1; shift; docker exec "$(cid "rusd$n")" bash -c "$@"; }

now_ms() { date +%s%3N; }  # the containers share the host's clock
kill_ms=$(now_ms)
docker kill "$(cid "rusd$leader")" >/dev/null
killed_ms=$(now_ms)  # docker kill returns once the container is dead
# A write through a survivor, retried every 0.1 s until the new leader takes it (etcdctl
# fails with "no leader" or a timeout meanwhile) for at most 10 s. Prints when it started,
# when it succeeded (or "timeout") and how many attempts it took. (The clock starts in the
# container: on a loaded machine `docker exec` alone can take seconds.)
read -r try_ms accepted_ms attempts < <(in_node "${survivors[0]}" '
  start=$(date +%s%3N); n=1
  until [[ $(etcdctl --command-timeout=2s put after-kill 1 2>/dev/null) == OK ]]; do
    (( $(date +%s%3N) - start < 10000 )) || { echo "$start timeout $n"; exit 0; }
    sleep 0.1; n=$((n + 1))
  done
  echo "$start $(date +%s%3N) $n"')
check "write through rusd${survivors[0]} succeeds after killing rusd$leader" \
  test "$accepted_ms" != timeout
echo "     (docker kill took $((killed_ms - kill_ms)) ms; the first attempt began" \
  "$((try_ms - killed_ms)) ms after it returned; accepted at attempt $attempts," \
  "$((accepted_ms - try_ms)) ms later)"
# The election itself, from the survivor's log: the last leader it learned of, against the
# moment the killed container died (docker's FinishedAt; docker kill itself can take many
# seconds on a loaded machine). etcd's default election timeout is 1 s; allow 10 s.
died=$(docker inspect -f '{{.State.FinishedAt}}' "$(cid "rusd$leader")")
died_ms=$(date -d "$died" +%s%3N)
elected=$(docker logs "$(cid "rusd${survivors[0]}")" 2>&1 |
  grep -E 'raft: (leader|follower) at term [0-9]+, leader [0-9a-f]{16}$' |
  grep -v 'leader 0000000000000000$' | tail -n 1)
echo "     rusd${survivors[0]}: $elected"
elected_ms=$(date -d "${elected%%Z *}Z" +%s%3N 2>/dev/null || echo 0)
check "a new leader within 10 s of the kill ($((elected_ms - died_ms)) ms after rusd$leader died)" \
  test "$elected_ms" -gt "$died_ms" -a "$((elected_ms - died_ms))" -lt 10000

in_node "${survivors[1]}" '
  for i in $(seq 1 20); do etcdctl put "while-down/$i" "v$i" >/dev/null || exit 1; done'
check "20 more writes through rusd${survivors[1]}, all visible through rusd${survivors[0]}" \
  test "$(ctl "${survivors[0]}" get --prefix while-down/ --keys-only | grep -c while-down/)" == 20
check "the killed container stays down (docker kill is a manual stop)" \
  test "$(docker inspect -f '{{.State.Running}}' "$(cid "rusd$leader")")" == false

started_ms=$(now_ms)
docker start "$(cid "rusd$leader")" >/dev/null
# Serializable reads: rusdN answers from its own store, so this is its own state. Prints
# the time it first had the last write made while it was down.
caught_ms=$(in_node "$leader" '
  until [[ $(etcdctl --command-timeout=2s get while-down/20 --consistency=s \
             --print-value-only 2>/dev/null) == v20 ]]; do
    (( $(date +%s%3N) - '"$started_ms"' < 60000 )) || { echo timeout; exit 0; }
    sleep 0.2
  done
  date +%s%3N')
check "restarted rusd$leader catches up within 60 s (serializable read of the last write)" \
  test "$caught_ms" != timeout
echo "     (caught up $((caught_ms - started_ms)) ms after docker start)"
check "restarted rusd$leader keeps the data written before the kill" \
  test "$(ctl "$leader" get greeting --consistency=s --print-value-only)" == hello
check "restarted rusd$leader healthy again" wait_healthy 60 "$leader"
check "member list still shows 3 started members" \
  test "$(ctl "$leader" member list | grep -c ', started, ')" == 3

# The named volumes carry the cluster over new containers (new IP addresses too).
compose down >/dev/null 2>&1
compose up -d >/dev/null 2>&1
check "after down and up (volumes kept): all three healthy again" wait_healthy 90 1 2 3
check "after down and up: the data is still there (read through rusd2)" \
  test "$(ctl 2 get while-down/7 --print-value-only)" == v7

compose down -v --remove-orphans >/dev/null 2>&1
left=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)
check "down -v removed the volumes" test "$left" == 0
