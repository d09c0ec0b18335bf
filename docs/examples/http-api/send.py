#!/usr/bin/env python3
"""The crosswire HTTP API from Python (standard library only): send to a
room, to socket ids and to everyone, make a cross-server call, and read an
error answer. See docs/http-api.md.

    CROSSWIRE_API=127.0.0.1:8090 CROSSWIRE_TOKEN=... python3 send.py
    python3 send.py --namespace chat --room lobby --ids u1,u2 --call-event ping

Environment (each also a flag, the flag winning): CROSSWIRE_API (HOST:PORT,
default 127.0.0.1:8090), CROSSWIRE_TOKEN (required), CROSSWIRE_NAMESPACE
(default chat), CROSSWIRE_ROOM (default lobby), CROSSWIRE_IDS
(comma-separated, default u1,u2), CROSSWIRE_CALL_EVENT (default ping).
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


class ApiError(Exception):
    """An error answer of the API: its HTTP status and stable code."""

    def __init__(self, status, code, message):
        super().__init__(f"error {code}: {message} (HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


class Api:
    """A node's HTTP API at http://HOST:PORT/api/v1/."""

    def __init__(self, addr, token, timeout=10.0):
        self.base = f"http://{addr}/api/v1"
        self.token = token
        self.timeout = timeout

    def request(self, method, route, body=None):
        """The JSON answer of a 2xx; raises ApiError on an error answer and
        urllib.error.URLError when the node cannot be reached."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/{route}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
                raise ApiError(e.code, err["code"], err["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(e.code, "http_error", raw.decode(errors="replace")) from None

    def post(self, route, body):
        return self.request("POST", route, body)

    def get(self, route):
        return self.request("GET", route)


def send_to_room(api, namespace, room, event, payload, exclude=()):
    """The room's members get the event, but the excluded ids."""
    return api.post("rooms/send", {
        "namespace": namespace, "room": room, "event": event,
        "payload": payload, "exclude": list(exclude),
    })


def send_to_ids(api, ids, event, payload):
    """The sockets bound to these ids, wherever they are connected (ids
    connected nowhere are dropped, without an error)."""
    return api.post("send", {"ids": list(ids), "event": event, "payload": payload})


def broadcast(api, event, payload, local_only=False):
    """Every socket of the cluster (or of the serving node only)."""
    return api.post("broadcast", {"event": event, "payload": payload, "local_only": local_only})


def call(api, event, payload, expect="all", timeout_ms=2000):
    """A cross-server call: the replies, and whether every expected one came."""
    return api.post("call", {
        "event": event, "payload": payload, "expect": expect, "timeout_ms": timeout_ms,
    })


def show(answer):
    """Prints an answer as JSON."""
    print(json.dumps(answer))


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", default=env("CROSSWIRE_API", "127.0.0.1:8090"))
    p.add_argument("--namespace", default=env("CROSSWIRE_NAMESPACE", "chat"))
    p.add_argument("--room", default=env("CROSSWIRE_ROOM", "lobby"))
    p.add_argument("--ids", default=env("CROSSWIRE_IDS", "u1,u2"))
    p.add_argument("--call-event", default=env("CROSSWIRE_CALL_EVENT", "ping"))
    args = p.parse_args()
    token = env("CROSSWIRE_TOKEN")
    if not token:
        print("CROSSWIRE_TOKEN must hold a bearer token of the API", file=sys.stderr)
        return 64
    api = Api(args.api, token)
    ids = [i for i in args.ids.split(",") if i]

    try:
        print(f"== to the room {args.namespace}/{args.room}")
        show(send_to_room(api, args.namespace, args.room, "announcement",
                          {"text": "Maintenance at 02:00 UTC", "from": "python"}))
        print(f"== to the ids {','.join(ids)}")
        show(send_to_ids(api, ids, "notice", {"text": "Your export is ready", "from": "python"}))
        print("== to everyone")
        show(broadcast(api, "news", {"text": "v2 is out", "from": "python"}))
        print(f"== call {args.call_event}")
        answer = call(api, args.call_event, {"from": "python"})
        for reply in answer["replies"]:
            print(f"{reply['server']}: {json.dumps(reply['payload'])}")
        print("completed" if answer["completed"] else f"not completed: {answer['missing']} missing")
    except ApiError as e:
        print(e, file=sys.stderr)
        return 1
    except urllib.error.URLError as e:
        print(f"cannot reach {args.api}: {e.reason}", file=sys.stderr)
        return 1

    # An error answer: no ids. Its code is stable; the message is for people.
    print("== an error answer")
    try:
        send_to_ids(api, [], "notice", None)
        print("unexpected: the empty send was accepted", file=sys.stderr)
        return 1
    except ApiError as e:
        print(e)
        if e.code != "invalid_request":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
