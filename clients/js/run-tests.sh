#!/usr/bin/env bash
# Tests of the JavaScript client (clients/js) and the browser tests of the chat
# demo and of the HTTP API's admin page (examples/chat/browser-test). Installs
# what they need when it is missing (Node.js, redis-server, chromium from
# Debian; npm packages from the lock files; never a browser download), builds
# the two Rust binaries they run, then runs them.
#
#   clients/js/run-tests.sh              everything
#   clients/js/run-tests.sh --no-browser the client tests only
#   clients/js/run-tests.sh --browser    the browser tests only
#
# Honours CARGO_TARGET_DIR. Exits non-zero if any test fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLIENT="$ROOT/clients/js"
BROWSER="$ROOT/examples/chat/browser-test"

run_client=1
run_browser=1
case "${1:-}" in
    --no-browser) run_browser=0 ;;
    --browser) run_client=0 ;;
    "") ;;
    *) echo "usage: $0 [--no-browser | --browser]" >&2; exit 2 ;;
esac

log() { printf '\n==> %s\n' "$*"; }

apt_updated=0
need_pkg() { # need_pkg <command or file> <debian package>
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
        if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
        # Without recommended packages: chromium's would add Mesa's GL
        # drivers, printer set-up and a notification daemon, none of which
        # a headless test uses.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    fi
}

# npm ci when node_modules is missing or older than the lock file.
npm_install() { # npm_install <dir>
    local dir="$1"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    fi
}

log "tools"
need_pkg node nodejs
need_pkg npm npm
need_pkg redis-server redis-server
if [ "$run_browser" = 1 ]; then need_pkg /usr/bin/chromium chromium; fi
node --version

log "building the test binaries (js-test-server, chat)"
(cd "$ROOT" && cargo build --quiet -p crosswire-examples --bin js-test-server --bin chat)
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
export CROSSWIRE_JS_TEST_SERVER_BIN="$TARGET/debug/js-test-server"
export CROSSWIRE_CHAT_BIN="$TARGET/debug/chat"

# Node 20 has its built-in WebSocket behind a flag; later versions by default.
NODE_WS_FLAG=()
if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    if node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
        NODE_WS_FLAG=(--experimental-websocket)
    fi
fi

status=0
if [ "$run_client" = 1 ]; then
    log "client: dist/ up to date with src/"
    (cd "$CLIENT" && node build.mjs --check)
    log "client tests (node --test, against a crosswire node)"
    npm_install "$CLIENT"
    (cd "$CLIENT" && node "${NODE_WS_FLAG[@]}" --test --test-concurrency=1 --test-timeout=30000 \
        test/api.test.mjs test/defects.test.mjs test/recovery.test.mjs test/presence.test.mjs test/package.test.mjs) || status=1
fi

if [ "$run_browser" = 1 ]; then
    log "browser test of the chat (headless chromium, two chat nodes on redis)"
    npm_install "$BROWSER"
    (cd "$BROWSER" && node --test --test-timeout=180000 chat.test.mjs) || status=1
    log "browser test of the admin page (headless chromium, two chat nodes with the HTTP API)"
    (cd "$BROWSER" && node --test --test-timeout=180000 admin.test.mjs) || status=1
    echo "screenshots: $ROOT/target/screenshots/"
fi

exit "$status"
