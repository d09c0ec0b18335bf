#!/usr/bin/env bash
# The crosswire HTTP API from a shell, with curl: send to a room, to socket
# ids and to everyone, make a cross-server call, and read an error answer.
# See docs/http-api.md.
#
#   CROSSWIRE_API=127.0.0.1:8090 CROSSWIRE_TOKEN=... bash send.sh
#   bash send.sh --namespace chat --room lobby --ids u1,u2 --call-event ping
#
# Environment (each also a flag, the flag winning):
#   CROSSWIRE_API         HOST:PORT of a node's HTTP API (default 127.0.0.1:8090)
#   CROSSWIRE_TOKEN       a bearer token of the API (required)
#   CROSSWIRE_NAMESPACE   namespace of the room (default chat)
#   CROSSWIRE_ROOM        the room (default lobby)
#   CROSSWIRE_IDS         comma-separated socket ids (default u1,u2)
#   CROSSWIRE_CALL_EVENT  cross-server event a node's handler answers (default ping)
set -euo pipefail

api="${CROSSWIRE_API:-127.0.0.1:8090}"
namespace="${CROSSWIRE_NAMESPACE:-chat}"
room="${CROSSWIRE_ROOM:-lobby}"
ids="${CROSSWIRE_IDS:-u1,u2}"
call_event="${CROSSWIRE_CALL_EVENT:-ping}"

while [ $# -gt 0 ]; do
    case "$1" in
        --api) api="$2"; shift 2 ;;
        --namespace) namespace="$2"; shift 2 ;;
        --room) room="$2"; shift 2 ;;
        --ids) ids="$2"; shift 2 ;;
        --call-event) call_event="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
    esac
done

if [ -z "${CROSSWIRE_TOKEN:-}" ]; then
    echo "CROSSWIRE_TOKEN must hold a bearer token of the API" >&2
    exit 64
fi

base="http://${api}/api/v1"

# JSON string literal of $1 (escapes \ and "; names and ids are plain text).
json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# POST $2 (JSON) to route $1 and print the answer, which must be 2xx:
# --fail-with-body makes curl exit non-zero on an error answer (or none),
# still giving its JSON body, e.g.
#   {"error":{"code":"unauthorized","message":"the bearer token is not accepted"}}
# The token goes in a header read from stdin, so that it does not show in
# the process list.
post() {
    local answer
    if ! answer=$(printf 'Authorization: Bearer %s\n' "$CROSSWIRE_TOKEN" |
        curl --silent --show-error --fail-with-body \
            --header @- \
            --header 'Content-Type: application/json' \
            --data "$2" \
            "${base}/$1"); then
        echo "POST /api/v1/$1 failed: ${answer:-no answer from ${api}}" >&2
        exit 1
    fi
    echo "$answer"
}

# The room's members (but none excluded here) get {"event":"announcement",...}.
echo "== to the room ${namespace}/${room}"
post rooms/send "{\"namespace\":$(json_string "$namespace"),\"room\":$(json_string "$room"),\"event\":\"announcement\",\"payload\":{\"text\":\"Maintenance at 02:00 UTC\",\"from\":\"curl\"},\"exclude\":[]}"

# The sockets bound to these ids, on whichever node they are connected.
# Ids connected nowhere are dropped: the answer is {"ok":true} all the same.
id_list=""
IFS=',' read -r -a id_array <<<"$ids"
for id in "${id_array[@]}"; do
    id_list="${id_list:+$id_list,}$(json_string "$id")"
done
echo "== to the ids ${ids}"
post send "{\"ids\":[${id_list}],\"event\":\"notice\",\"payload\":{\"text\":\"Your export is ready\",\"from\":\"curl\"}}"

# Every socket of the cluster.
echo "== to everyone"
post broadcast '{"event":"news","payload":{"text":"v2 is out","from":"curl"}}'

# A cross-server call: every node's handler of the event may reply; the
# answer says whether the expected replies came ("completed") and lists them.
echo "== call ${call_event}"
post call "{\"event\":$(json_string "$call_event"),\"payload\":{\"from\":\"curl\"},\"expect\":\"all\",\"timeout_ms\":2000}"

# An error answer: no ids. Without --fail-with-body, read the status and the
# stable error code ("invalid_request" here) from the body.
echo "== an error answer"
answer=$(printf 'Authorization: Bearer %s\n' "$CROSSWIRE_TOKEN" |
    curl --silent --show-error \
        --header @- \
        --header 'Content-Type: application/json' \
        --data '{"ids":[],"event":"notice"}' \
        --write-out '\n%{http_code}' \
        "${base}/send")
status=${answer##*$'\n'}
body=${answer%$'\n'*}
echo "HTTP ${status}: ${body}"
case "$body" in
    *'"code":"invalid_request"'*) echo "refused as expected: invalid_request" ;;
    *) echo "unexpected answer" >&2; exit 1 ;;
esac
