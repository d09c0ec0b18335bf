#!/usr/bin/env bash
# Soak runs against crosswire's bench server: a slow consumer and a reconnect
# storm, each beside a steady fan-out whose receivers must not notice.
#
#   bench/soak.sh [--out DIR] [--only slow|storm]
#
# Builds bench-server and loadgen (release), then for each scenario starts a
# fresh bench-server on free loopback ports (WebSocket and /metrics), runs
# `loadgen slow` or `loadgen storm` against it with --pid (RSS) and --metrics,
# and stops it. Prints each report; exits 1 if a scenario failed its criteria
# (or a server did not start), 0 otherwise.
#
#   slow:  N receivers + S clients that never read, one room, P publishers at
#          RATE msgs/s with PAD filler bytes per message, for SLOW_SECS.
#          Pass: receivers lose/duplicate nothing, p99 < 50 ms, server RSS peak
#          - start <= SLOW_MAX_RSS_MIB, every slow socket closed by the server.
#   storm: N receivers, P publishers at RATE; K clients connect and drop at
#          once (half abruptly, half with a close frame), ROUNDS rounds.
#          Pass: receivers lose/duplicate nothing, p99 < 50 ms, server RSS
#          after - baseline <= STORM_MAX_RSS_MIB (the high-water mark the
#          allocator keeps), after the last round - after the first <=
#          STORM_MAX_GROWTH_MIB (no growth round after round), the server's connection and
#          socket-id gauges back to the steady clients.
#
# Knobs (environment): N (1000), P (10), RATE (100), S (10), PAD (4096),
# SLOW_SECS (30), SLOW_MAX_RSS_MIB (64), K (5000), ROUNDS (5), HOLD (1),
# STORM_MAX_RSS_MIB (64), STORM_MAX_GROWTH_MIB (16), THREADS (2), CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT=""
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done

N="${N:-1000}"
P="${P:-10}"
RATE="${RATE:-100}"
S="${S:-10}"
PAD="${PAD:-4096}"
SLOW_SECS="${SLOW_SECS:-30}"
SLOW_MAX_RSS_MIB="${SLOW_MAX_RSS_MIB:-64}"
K="${K:-5000}"
ROUNDS="${ROUNDS:-5}"
HOLD="${HOLD:-1}"
STORM_MAX_RSS_MIB="${STORM_MAX_RSS_MIB:-64}"
STORM_MAX_GROWTH_MIB="${STORM_MAX_GROWTH_MIB:-16}"
THREADS="${THREADS:-2}"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$TARGET/soak-results/$STAMP}"
mkdir -p "$OUT"
FAILED=()

say() { echo "== $*" >&2; }

say "building bench-server and loadgen (release, target $TARGET)"
cargo build --release -p crosswire-bench --bins >&2

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

# Starts a fresh bench-server; sets SERVER_PID, WS_PORT, METRICS_PORT.
start_server() {
  local name="$1" ports
  ports="$("$BIN/loadgen" free-ports 2)"
  WS_PORT="$(echo "$ports" | sed -n 1p)"
  METRICS_PORT="$(echo "$ports" | sed -n 2p)"
  local log="$OUT/server-$name.log"
  "$BIN/bench-server" --port "$WS_PORT" --metrics-port "$METRICS_PORT" --name n1 >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if grep -q listening "$log" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "bench-server did not start (see $log)" >&2
  return 1
}

run_case() {
  local name="$1"; shift
  if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then
    return 0
  fi
  say "$name: starting a fresh bench-server"
  if ! start_server "$name"; then
    FAILED+=("$name: server did not start")
    return 0
  fi
  say "$name: loadgen $name $* ($(uptime | sed 's/.*load average/load average/'))"
  local rc=0
  "$BIN/loadgen" --url "ws://127.0.0.1:$WS_PORT" --pid "server=$SERVER_PID" \
    --metrics "http://127.0.0.1:$METRICS_PORT/metrics" --threads "$THREADS" \
    --system crosswire --case "soak-$name" "$name" "$@" \
    > >(tee "$OUT/$name.txt") 2> "$OUT/$name.err" || rc=$?
  stop_server
  if [ "$rc" -ne 0 ]; then
    FAILED+=("$name: loadgen exit $rc (see $OUT/$name.txt)")
  fi
}

run_case slow -n "$N" -p "$P" --rate "$RATE" -s "$S" --pad "$PAD" \
  --duration "$SLOW_SECS" --max-rss-growth-mib "$SLOW_MAX_RSS_MIB" --require-closed
run_case storm -n "$N" -p "$P" --rate "$RATE" -k "$K" --rounds "$ROUNDS" \
  --hold "$HOLD" --max-rss-after-mib "$STORM_MAX_RSS_MIB" --max-rss-growth-mib "$STORM_MAX_GROWTH_MIB"

say "reports in $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
  for f in "${FAILED[@]}"; do
    echo "FAILED: $f" >&2
  done
  exit 1
fi
say "all soak runs met their criteria"
