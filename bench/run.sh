#!/usr/bin/env bash
# crosswire vs Socket.IO 4 + @socket.io/redis-adapter, side by side, in one run.
#
#   bench/run.sh [--set single|cluster|all|history] [--cases "fanout1-max echo1 ..."] [--out DIR]
#
# Builds the crosswire bench server and the load generator (release), installs
# the peer's npm packages if needed, starts its own redis-server on a free
# loopback port, and for every case starts fresh nodes of each system in turn
# (crosswire first, then the peer), runs `loadgen`, and stops them. At the end
# it prints a table with the ratio crosswire / peer per figure (`loadgen
# compare`). Everything listens on 127.0.0.1 only.
#
# It exits non-zero, loudly, when a server does not start or a run breaks the
# contract (loss, duplicates, dropped connections, wrong replies), after
# printing the table of what did run. Runs where the load generator used more
# than 90 % of a core are flagged GENERATOR-BOUND; runs where other processes
# used more than 10 % of a core are flagged noisy.
#
# Cases:  single  = fanout1-max fanout1-40k echo1 rpc1 count1 conns1
#         cluster = fanout2-max unicast2-max unicast2-fixed rpc2 count2   (two nodes + Redis)
#                   and fanout2-max-json unicast2-max-json rpc2-json count2-json (crosswire's
#                   bus envelopes in JSON, bench-server --codec json; MessagePack otherwise)
#         (unicast2-fixed: both systems at the same rate, UNICAST_RATE, to compare latency)
#         nats = unicast2-max-nats fanout2-max-nats rpc2-nats (crosswire on a
#                nats-server, the peer on Redis)
#         rcluster = unicast2-max-rcluster fanout2-max-rcluster (crosswire on a
#                3-master Redis Cluster with sharded pub/sub, the peer on Redis)
#         traffic = traffic8-compat traffic8-host (crosswire only: 8 nodes on one
#                Redis, TRAFFIC_C clients in rooms of 2 placed at random, each
#                sending a room message and a unicast, TRAFFIC_RATE pairs/s in all;
#                bus messages received per node in the compatible mode and
#                routing by host)
#         http = http2-1k http2-max (crosswire only: two nodes on Redis, the
#                HTTP API on n1, 10 publishers POSTing room messages to it,
#                subscribers on both nodes; http2-1k: 100 subscribers at
#                1,000 requests/s for LOOP_SECS; http2-max: 10 subscribers,
#                the highest passing rate, the API's rate limit off)
#         history = fanout1-max fanout1-hist-plain fanout1-hist fanout1-40k fanout1-40k-hist
#                   fanout2-max fanout2-hist
#         (-hist: crosswire keeps the room's history, bench-server --history bench,
#         and every client opts into recovery, loadgen --recovery; -hist-plain: the
#         history is kept but no client opts in; fanout2-hist: two nodes with the
#         history in Redis; the peer runs as usual)
# Knobs (environment): STEP_SECS (5, seconds per fan-out step), FANOUT_N (1000),
# FANOUT_P (10), ECHO_C (50), LOOP_SECS (10), CONNS_N (19000), UNICAST_C (1000),
# UNICAST_RATE (5000 msgs/s),
# THREADS (2, generator threads), CARGO_TARGET_DIR, NODE (node binary).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SET=single
CASES=""
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --set) SET="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done

SINGLE_CASES="fanout1-max fanout1-40k echo1 rpc1 count1 conns1"
CLUSTER_CASES="fanout2-max unicast2-max unicast2-fixed rpc2 count2 fanout2-max-json unicast2-max-json rpc2-json count2-json"
if [ -z "$CASES" ]; then
  case "$SET" in
    single) CASES="$SINGLE_CASES" ;;
    cluster) CASES="$CLUSTER_CASES" ;;
    all) CASES="$SINGLE_CASES $CLUSTER_CASES" ;;
    nats) CASES="unicast2-max-nats fanout2-max-nats rpc2-nats" ;;
    rcluster) CASES="unicast2-max-rcluster fanout2-max-rcluster" ;;
    traffic) CASES="traffic8-compat traffic8-host" ;;
    http) CASES="http2-1k http2-max" ;;
    history) CASES="fanout1-max fanout1-hist-plain fanout1-hist fanout1-40k fanout1-40k-hist fanout2-max fanout2-hist" ;;
    *) echo "run.sh: --set single|cluster|all|nats|rcluster|traffic|http|history" >&2; exit 64 ;;
  esac
fi

STEP_SECS="${STEP_SECS:-5}"
FANOUT_N="${FANOUT_N:-1000}"
TRAFFIC_C="${TRAFFIC_C:-2000}"
# crosswire's nodes share the machine's cores: each runs cores / nodes
# worker threads (at least one), as each Node.js peer runs one thread.
CORES="$(nproc)"
HTTP_TOKEN="bench-$RANDOM$RANDOM$RANDOM"
TRAFFIC_RATE="${TRAFFIC_RATE:-1000}"
FANOUT_P="${FANOUT_P:-10}"
ECHO_C="${ECHO_C:-50}"
LOOP_SECS="${LOOP_SECS:-10}"
CONNS_N="${CONNS_N:-19000}"
UNICAST_C="${UNICAST_C:-1000}"
UNICAST_RATE="${UNICAST_RATE:-5000}"
THREADS="${THREADS:-2}"
NODE="${NODE:-node}"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$TARGET/bench-results/$STAMP}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
FAILURES=()

say() { echo "== $*" >&2; }
fail() { echo "FAILED: $*" >&2; FAILURES+=("$*"); }

# ------------------------------------------------------------------ build
say "building bench-server and loadgen (release, target $TARGET)"
cargo build --release -p crosswire-bench --bins >&2
if [ ! -d bench/socketio/node_modules ]; then
  say "installing the peer's npm packages"
  (cd bench/socketio && npm ci --no-audit --no-fund >&2)
fi
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found" >&2; exit 1; }
command -v "$NODE" >/dev/null || { echo "run.sh: node not found" >&2; exit 1; }

# Servers and the generator may each hold up to ~19.9k sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open files limit: $(ulimit -n); cores: $(nproc); $(free -g | awk '/Mem:/{print $2" GiB memory"}')"

# ------------------------------------------------------------------ processes
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_ports() { "$BIN/loadgen" free-ports "$1"; }

# wait_listening PID LOG NAME: waits up to 30 s for a line with "listening".
wait_listening() {
  local pid="$1" log="$2" name="$3"
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "--- $log" >&2; tail -n 20 "$log" >&2 || true
      fail "$name did not start (exited; log $log)"
      return 1
    fi
    if grep -q listening "$log" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "--- $log" >&2; tail -n 20 "$log" >&2 || true
  fail "$name did not start within 30 s (log $log)"
  return 1
}

REDIS_PORT="$(free_ports 1)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --protected-mode yes > "$OUT/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
if ! redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  echo "FAILED: redis-server did not start (log $OUT/redis.log)" >&2
  exit 1
fi
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
say "redis-server on $REDIS_URL (pid $REDIS_PID)"

# The -nats cases run crosswire's nodes on a nats-server (the peer, which
# has no NATS adapter here, on Redis as usual).
NATS_URL=""
NATS_PID=""
case " $CASES " in
  *-nats*)
    command -v nats-server >/dev/null || { echo "run.sh: nats-server not found" >&2; exit 1; }
    NATS_PORT="$(free_ports 1)"
    nats-server -a 127.0.0.1 -p "$NATS_PORT" > "$OUT/nats.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    sleep 0.5
    NATS_URL="nats://127.0.0.1:$NATS_PORT"
    say "nats-server on $NATS_URL (pid $NATS_PID)"
    ;;
esac

# The -rcluster cases run crosswire's nodes on a Redis Cluster of three
# masters (bench-server --redis-cluster), formed here with CLUSTER
# ADDSLOTSRANGE / MEET; the peer stays on the single redis-server.
RCLUSTER_URLS=""
RCLUSTER_PIDS=()
case " $CASES " in
  *-rcluster*)
    RC_DIR="$OUT/rcluster"
    mkdir -p "$RC_DIR"
    RC_PORTS=($(free_ports 6)) # three client ports, three cluster bus ports
    for i in 0 1 2; do
      redis-server --port "${RC_PORTS[$i]}" --cluster-port "${RC_PORTS[$((i + 3))]}" \
        --bind 127.0.0.1 --save "" --appendonly no --cluster-enabled yes \
        --cluster-config-file "nodes-${RC_PORTS[$i]}.conf" --dir "$RC_DIR" \
        > "$RC_DIR/${RC_PORTS[$i]}.log" 2>&1 &
      RCLUSTER_PIDS+=("$!")
      PIDS+=("$!")
    done
    for i in 0 1 2; do
      for _ in $(seq 1 100); do
        redis-cli -p "${RC_PORTS[$i]}" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
      done
    done
    redis-cli -p "${RC_PORTS[0]}" cluster addslotsrange 0 5460 > /dev/null
    redis-cli -p "${RC_PORTS[1]}" cluster addslotsrange 5461 10922 > /dev/null
    redis-cli -p "${RC_PORTS[2]}" cluster addslotsrange 10923 16383 > /dev/null
    for i in 1 2; do
      redis-cli -p "${RC_PORTS[0]}" cluster meet 127.0.0.1 "${RC_PORTS[$i]}" "${RC_PORTS[$((i + 3))]}" > /dev/null
    done
    rc_ok=0
    for _ in $(seq 1 300); do
      rc_ok=1
      for i in 0 1 2; do
        redis-cli -p "${RC_PORTS[$i]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || rc_ok=0
      done
      [ "$rc_ok" = 1 ] && break
      sleep 0.1
    done
    if [ "$rc_ok" != 1 ]; then
      echo "FAILED: the Redis Cluster did not reach cluster_state:ok within 30 s (logs $RC_DIR)" >&2
      exit 1
    fi
    RCLUSTER_URLS="redis://127.0.0.1:${RC_PORTS[0]},redis://127.0.0.1:${RC_PORTS[1]},redis://127.0.0.1:${RC_PORTS[2]}"
    say "redis cluster on $RCLUSTER_URLS (pids ${RCLUSTER_PIDS[*]})"
    ;;
esac

NODE_PIDS=()
NODE_URLS=()
NODE_PIDARGS=()
# start_nodes SYSTEM COUNT CASE: fresh nodes n1..nCOUNT; 0 on success.
start_nodes() {
  local system="$1" count="$2" case_="$3" i port log pid
  NODE_PIDS=(); NODE_URLS=(); NODE_PIDARGS=()
  local ports; ports=($(free_ports "$count"))
  for i in $(seq 1 "$count"); do
    port="${ports[$((i - 1))]}"
    log="$OUT/$case_.$system.n$i.log"
    local redis_args=() bus_args=()
    if [ "$count" -gt 1 ]; then redis_args=(--redis "$REDIS_URL" --nodes "$count"); fi
    bus_args=("${redis_args[@]}")
    if [ "${CROSSWIRE_BUS:-redis}" = nats ] && [ "$count" -gt 1 ]; then
      bus_args=(--nats "$NATS_URL" --nodes "$count")
    fi
    if [ "${CROSSWIRE_BUS:-redis}" = rcluster ] && [ "$count" -gt 1 ]; then
      bus_args=(--redis-cluster "$RCLUSTER_URLS" --nodes "$count")
    fi
    case "$system" in
      crosswire)
        local api_args=()
        if [ -n "${CROSSWIRE_HTTP:-}" ] && [ "$i" = 1 ]; then
          HTTP_API_ADDR="127.0.0.1:$(free_ports 1)"
          api_args=(--http-api "$HTTP_API_ADDR" --http-token "$HTTP_TOKEN" --http-rate-limit "$CROSSWIRE_HTTP")
        fi
        "$BIN/bench-server" --port "$port" --name "n$i" "${bus_args[@]}" "${api_args[@]}" \
        --worker-threads "$(( CORES / count > 0 ? CORES / count : 1 ))" ${CROSSWIRE_ARGS:-} > "$log" 2>&1 & ;;
      socketio) "$NODE" bench/socketio/server.js --port "$port" --name "n$i" "${redis_args[@]}" > "$log" 2>&1 & ;;
    esac
    pid=$!
    PIDS+=("$pid"); NODE_PIDS+=("$pid")
    NODE_URLS+=(--url "ws://127.0.0.1:$port")
    NODE_PIDARGS+=(--pid "n$i=$pid")
  done
  for i in $(seq 1 "$count"); do
    wait_listening "${NODE_PIDS[$((i - 1))]}" "$OUT/$case_.$system.n$i.log" "$system node n$i ($case_)" || return 1
  done
  if [ "$count" -gt 1 ]; then
    if [ "$system" = crosswire ] && [ "${CROSSWIRE_BUS:-redis}" = nats ]; then
      NODE_PIDARGS+=(--pid "nats=$NATS_PID")
    elif [ "$system" = crosswire ] && [ "${CROSSWIRE_BUS:-redis}" = rcluster ]; then
      for i in 0 1 2; do NODE_PIDARGS+=(--pid "redis-c$((i + 1))=${RCLUSTER_PIDS[$i]}"); done
    else
      NODE_PIDARGS+=(--pid "redis=$REDIS_PID")
    fi
    sleep 1 # let the nodes see each other through Redis
  fi
  return 0
}

stop_nodes() {
  local p
  for p in "${NODE_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]:-}"; do
    [ -z "$p" ] && continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  NODE_PIDS=()
}

# run_case CASE NODES LOADGEN-ARGS...: runs the case against both systems.
run_case() {
  local case_="$1" count="$2"; shift 2
  local system proto rc
  for system in ${SYSTEMS:-crosswire socketio}; do
    proto=original; [ "$system" = socketio ] && proto=socketio
    say "$case_: $system ($count node(s))"
    if ! start_nodes "$system" "$count" "$case_"; then
      stop_nodes
      continue
    fi
    set +e
    local extra=()
    [ "$system" = crosswire ] && extra=(${CROSSWIRE_LOADGEN_ARGS:-})
    local after=() # options of the scenario's subcommand
    if [ "$system" = crosswire ] && [ -n "${CROSSWIRE_HTTP:-}" ]; then
      after=(--http-api "$HTTP_API_ADDR" --http-token "$HTTP_TOKEN")
    fi
    "$BIN/loadgen" --proto "$proto" "${NODE_URLS[@]}" "${NODE_PIDARGS[@]}" "${extra[@]}" \
      --threads "$THREADS" --system "$system" --case "$case_" "$@" "${after[@]}" \
      > "$OUT/$case_.$system.out" 2> "$OUT/$case_.$system.err"
    rc=$?
    set -e
    cat "$OUT/$case_.$system.out" | grep -v '^{' >&2 || true
    tail -n 1 "$OUT/$case_.$system.out" | grep '^{' >> "$RESULTS" || true
    if [ "$rc" -ne 0 ]; then
      tail -n 5 "$OUT/$case_.$system.err" >&2 || true
      fail "$case_ on $system: loadgen exited $rc (see $OUT/$case_.$system.out)"
    fi
    stop_nodes
  done
}

for c in $CASES; do
  case "$c" in
    fanout1-max) run_case "$c" 1 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    fanout1-40k) run_case "$c" 1 fanout -n "$FANOUT_N" -p "$FANOUT_P" --rate 40 --duration 10 ;;
    fanout1-hist) CROSSWIRE_ARGS="--history bench" CROSSWIRE_LOADGEN_ARGS="--recovery" \
      run_case "$c" 1 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    fanout1-hist-plain) CROSSWIRE_ARGS="--history bench" \
      run_case "$c" 1 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    fanout1-40k-hist) CROSSWIRE_ARGS="--history bench" CROSSWIRE_LOADGEN_ARGS="--recovery" \
      run_case "$c" 1 fanout -n "$FANOUT_N" -p "$FANOUT_P" --rate 40 --duration 10 ;;
    unicast2-max-nats) CROSSWIRE_BUS=nats \
      run_case "$c" 2 unicast -c "$UNICAST_C" --find-max --rate 2000 --duration "$STEP_SECS" ;;
    fanout2-max-nats) CROSSWIRE_BUS=nats \
      run_case "$c" 2 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    rpc2-nats) CROSSWIRE_BUS=nats run_case "$c" 2 rpc -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    unicast2-max-rcluster) CROSSWIRE_BUS=rcluster \
      run_case "$c" 2 unicast -c "$UNICAST_C" --find-max --rate 2000 --duration "$STEP_SECS" ;;
    fanout2-max-rcluster) CROSSWIRE_BUS=rcluster \
      run_case "$c" 2 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    fanout2-hist) CROSSWIRE_ARGS="--history bench" CROSSWIRE_LOADGEN_ARGS="--recovery" \
      run_case "$c" 2 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    traffic8-compat)
      SYSTEMS=crosswire CROSSWIRE_ARGS="--routing compatible" \
        run_case "$c" 8 traffic -c "$TRAFFIC_C" --room-size 2 --rate "$TRAFFIC_RATE" --duration "$LOOP_SECS" ;;
    traffic8-host)
      SYSTEMS=crosswire CROSSWIRE_ARGS="--routing by-host" \
        run_case "$c" 8 traffic -c "$TRAFFIC_C" --room-size 2 --rate "$TRAFFIC_RATE" --duration "$LOOP_SECS" ;;
    http2-1k) SYSTEMS=crosswire CROSSWIRE_HTTP=2000:4000 \
        run_case "$c" 2 fanout -n 100 -p 10 --rate 1000 --duration "$LOOP_SECS" ;;
    http2-max) SYSTEMS=crosswire CROSSWIRE_HTTP=off \
        run_case "$c" 2 fanout -n 10 -p 10 --find-max --rate 1000 --duration "$STEP_SECS" ;;
    echo1) run_case "$c" 1 echo -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    rpc1) run_case "$c" 1 rpc -c "$ECHO_C" --duration 5 --warmup 1 ;;
    count1) run_case "$c" 1 count -c "$ECHO_C" --duration 5 --warmup 1 ;;
    conns1) run_case "$c" 1 conns -n "$CONNS_N" --settle 3 --hold 5 ;;
    fanout2-max-json) CROSSWIRE_ARGS="--codec json" \
      run_case "$c" 2 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    unicast2-max-json) CROSSWIRE_ARGS="--codec json" \
      run_case "$c" 2 unicast -c "$UNICAST_C" --find-max --rate 2000 --duration "$STEP_SECS" ;;
    rpc2-json) CROSSWIRE_ARGS="--codec json" run_case "$c" 2 rpc -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    count2-json) CROSSWIRE_ARGS="--codec json" run_case "$c" 2 count -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    fanout2-max) run_case "$c" 2 fanout -n "$FANOUT_N" -p "$FANOUT_P" --find-max --rate 10 --duration "$STEP_SECS" ;;
    unicast2-max) run_case "$c" 2 unicast -c "$UNICAST_C" --find-max --rate 2000 --duration "$STEP_SECS" ;;
    unicast2-fixed) run_case "$c" 2 unicast -c "$UNICAST_C" --rate "$UNICAST_RATE" --duration "$LOOP_SECS" ;;
    rpc2) run_case "$c" 2 rpc -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    count2) run_case "$c" 2 count -c "$ECHO_C" --duration "$LOOP_SECS" --warmup 2 ;;
    *) fail "unknown case $c" ;;
  esac
done

echo
echo "Results: $OUT (results.jsonl, per-run .out/.err, server logs)"
echo
set +e
"$BIN/loadgen" compare "$RESULTS" | tee "$OUT/table.md"
cmp_rc=${PIPESTATUS[0]}
set -e
if [ "${#FAILURES[@]}" -gt 0 ] || [ "$cmp_rc" -ne 0 ]; then
  echo
  for f in "${FAILURES[@]:-}"; do [ -n "$f" ] && echo "FAILED: $f"; done
  echo "run.sh: FAILED (see above)" >&2
  exit 1
fi
echo "run.sh: all runs met the contract"
