//! The HTTP API over real TCP: two nodes on the in-memory bus, the API served
//! by one of them, real WebSocket clients on both. Sends, calls, queries,
//! authentication, every error code, the rate limit, the metrics, and the
//! OpenAPI document against the routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use crosswire::bus::MemoryHub;
use crosswire::http_api::{HttpApiConfig, OPENAPI, ROUTES};
use crosswire::{Node, RoomSend};
use crosswire_cli::{ApiClient, ApiResponse};
use http::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

const TOKEN: &str = "test-token-1";
const OLD_TOKEN: &str = "test-token-0";

struct Two {
    a: (Node, SocketAddr),
    b: (Node, SocketAddr),
    api: SocketAddr,
}

/// Nodes `a` and `b` on one in-memory bus, each replying to the
/// cross-server event `where` with its name; the API on `a`.
async fn two(config: HttpApiConfig) -> Two {
    let hub = MemoryHub::new();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let builder = Node::builder()
            .server_name(name)
            .bus(hub.bus())
            .membership(Duration::from_millis(50), Duration::from_millis(400));
        let (node, addr) = start_binding(builder).await;
        node.ready().await;
        let me = name.to_owned();
        node.on_cross_server(
            "where",
            move |msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| {
                let me = me.clone();
                async move {
                    if let Some(r) = reply {
                        r.send(&json!({"node": me, "got": msg.payload})).unwrap();
                    }
                }
            },
        )
        .unwrap();
        nodes.push((node, addr));
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    wait_until(|| a.0.live_nodes().len() == 2 && b.0.live_nodes().len() == 2).await;
    let api = a.0.listen_http_api("127.0.0.1:0", config).await.unwrap();
    Two { a, b, api }
}

fn config() -> HttpApiConfig {
    HttpApiConfig::new([TOKEN, OLD_TOKEN])
}

fn client(api: SocketAddr) -> ApiClient {
    ApiClient::new(api.to_string(), TOKEN).timeout(WAIT)
}

async fn post(api: &mut ApiClient, path: &str, body: Value) -> ApiResponse {
    api.post(path, &body).await.unwrap()
}

/// A request with a raw body and content type.
async fn raw(
    api: SocketAddr,
    token: Option<&str>,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(c) = content_type {
        head.push_str(&format!("Content-Type: {c}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.unwrap();
    // The node may answer (413) and close before taking all of a big body.
    let _ = stream.write_all(body.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = within(WAIT, stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = serde_json::from_str(http_body(&text)).unwrap_or(Value::Null);
    (status, body)
}

/// A bad request: token, method, path, content type, body, and the
/// status and error code expected.
type Case<'a> = (
    Option<&'a str>,
    Method,
    &'a str,
    Option<&'a str>,
    String,
    u16,
    &'a str,
);

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn sends_reach_sockets_on_every_node() {
    let t = two(config()).await;
    let mut api = client(t.api);
    let mut u1 = connect_id(&t.a.0, t.a.1, "u1").await;
    let mut u2 = connect_id(&t.b.0, t.b.1, "u2").await;
    let mut u3 = connect_id(&t.b.0, t.b.1, "u3").await;
    for (node, id) in [(&t.a.0, "u1"), (&t.b.0, "u2"), (&t.b.0, "u3")] {
        node.join_room("chat", "r1", id).unwrap();
        node.room_ready("chat", "r1").await;
    }

    let r = post(
        &mut api,
        "/api/v1/broadcast",
        json!({"event": "news", "payload": {"n": 1}}),
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"ok": true})));
    for ws in [&mut u1, &mut u2, &mut u3] {
        assert_eq!(next_text(ws).await, r#"{"event":"news","payload":{"n":1}}"#);
    }

    // No payload: the frame has none; an explicit null is kept.
    post(&mut api, "/api/v1/broadcast", json!({"event": "bare"})).await;
    post(
        &mut api,
        "/api/v1/broadcast",
        json!({"event": "nil", "payload": null}),
    )
    .await;
    for ws in [&mut u1, &mut u2, &mut u3] {
        assert_eq!(next_text(ws).await, r#"{"event":"bare"}"#);
        assert_eq!(next_text(ws).await, r#"{"event":"nil","payload":null}"#);
    }

    let r = post(
        &mut api,
        "/api/v1/send",
        json!({"ids": ["u2"], "event": "pm", "payload": "hi"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(next_text(&mut u2).await, r#"{"event":"pm","payload":"hi"}"#);

    let r = post(
        &mut api,
        "/api/v1/rooms/send",
        json!({"namespace": "chat", "room": "r1", "event": "say", "payload": [1, 2.5], "exclude": ["u3"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        next_text(&mut u1).await,
        r#"{"event":"say","payload":[1,2.5]}"#
    );
    assert_eq!(
        next_text(&mut u2).await,
        r#"{"event":"say","payload":[1,2.5]}"#
    );
    // u3 was excluded: the next frame it gets is a later one.
    t.b.0
        .broadcast_to_room("chat", "r1", "marker", &1, RoomSend::new().local_only())
        .unwrap();
    assert_eq!(
        next_text(&mut u3).await,
        r#"{"event":"marker","payload":1}"#
    );

    // local_only: only the sockets of the API's node.
    post(
        &mut api,
        "/api/v1/broadcast",
        json!({"event": "here", "local_only": true}),
    )
    .await;
    assert_eq!(next_text(&mut u1).await, r#"{"event":"here"}"#);
    t.b.0.broadcast_local("after", &0).unwrap();
    assert_eq!(
        next_text(&mut u2).await,
        r#"{"event":"marker","payload":1}"#
    );
    assert_eq!(next_text(&mut u2).await, r#"{"event":"after","payload":0}"#);
}

#[tokio::test]
async fn calls_collect_replies_and_report_what_is_missing() {
    let t = two(config()).await;
    let mut api = client(t.api);

    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "where", "payload": 7, "expect": "all"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["completed"], true);
    assert_eq!(r.body["missing"], 0);
    let mut from: Vec<&str> = r.body["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reply| {
            assert_eq!(reply["payload"]["got"], 7);
            reply["server"].as_str().unwrap()
        })
        .collect();
    from.sort();
    assert_eq!(from, ["a", "b"]);

    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "where", "payload": "x", "servers": ["b"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["replies"],
        json!([{"server": "b", "payload": {"node": "b", "got": "x"}}])
    );
    // A call carries a message: none, or null, is refused.
    let r = post(&mut api, "/api/v1/call", json!({"event": "where"})).await;
    assert_eq!((r.status, code(&r.body)), (400, "invalid_request"));
    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "where", "payload": null}),
    )
    .await;
    assert_eq!((r.status, code(&r.body)), (400, "invalid_request"));

    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "where", "payload": 1, "except_self": true, "expect": 1}),
    )
    .await;
    assert_eq!(r.body["replies"][0]["server"], "b");

    // Nobody handles it: the call times out and says so.
    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "nobody", "payload": 1, "servers": ["a", "b"], "timeout_ms": 200}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["completed"], false);
    assert_eq!(r.body["missing"], 2);
    assert_eq!(r.body["replies"], json!([]));

    let r = post(
        &mut api,
        "/api/v1/call",
        json!({"event": "where", "payload": 1, "servers": ["b", "zz"]}),
    )
    .await;
    assert_eq!((r.status, code(&r.body)), (404, "unknown_server"));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("zz"));
    assert_eq!(t.a.0.pending_cross_server_calls(), 0);
}

#[tokio::test]
async fn queries_and_health() {
    let t = two(HttpApiConfig::new([TOKEN]).admin_page(true)).await;
    let mut api = client(t.api);
    let _u1 = connect_id(&t.a.0, t.a.1, "u1").await;
    let _u2 = connect_id(&t.b.0, t.b.1, "u2").await;
    t.a.0.join_room("chat", "r1", "u1").unwrap();
    t.b.0.join_room("chat", "r1", "u2").unwrap();
    t.b.0.join_room("chat", "r2", "u2").unwrap();

    let r = api.get("/api/v1/nodes").await.unwrap();
    assert_eq!(r.body, json!({"node": "a", "nodes": ["a", "b"]}));

    let r = api.get("/api/v1/health").await.unwrap();
    assert_eq!((r.status, &r.body["status"]), (200, &json!("ok")));
    assert_eq!(r.body["connections"], 1);

    // Every node's health, as each reports it.
    let r = api.get("/api/v1/cluster").await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["partial"], false);
    for name in ["a", "b"] {
        let h = &r.body["nodes"][name];
        assert_eq!(
            (&h["node"], &h["status"], &h["connections"]),
            (&json!(name), &json!("ok"), &json!(1)),
            "{h}"
        );
        assert_eq!(h["bus"]["healthy"], true, "{h}");
    }

    // A namespace with rooms on the other node only is listed too.
    t.b.0.join_room("game", "g1", "u2").unwrap();
    let r = api.get("/api/v1/rooms").await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["namespaces"]["chat"], json!({"r1": 2, "r2": 1}));
    assert_eq!(r.body["namespaces"]["game"], json!({"g1": 1}));
    assert_eq!(r.body["partial"], false);
    let r = api.get("/api/v1/rooms?namespace=none").await.unwrap();
    assert_eq!(r.body["namespaces"], json!({"none": {}}));
    let r = api.get("/api/v1/rooms?namespace=").await.unwrap();
    assert_eq!((r.status, code(&r.body)), (400, "invalid_request"));
    let r = api.get("/api/v1/rooms?color=red").await.unwrap();
    assert_eq!((r.status, code(&r.body)), (400, "invalid_request"));

    let r = api.get("/api/v1/rooms/chat/r1").await.unwrap();
    let mut members: Vec<(String, String)> = r.body["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["node"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [("u1".into(), "a".into()), ("u2".into(), "b".into())]
    );
    assert_eq!(r.body["presence"], Value::Null, "chat keeps no presence");

    let r = api.get("/api/v1/sockets/u2").await.unwrap();
    assert_eq!(r.body["nodes"], json!(["b"]));
    let r = api
        .get("/api/v1/sockets/nobody?timeout_ms=500")
        .await
        .unwrap();
    assert_eq!(r.body["nodes"], json!([]));

    // The stats carry the counters and, once a second, a sample.
    let api_addr = t.api.to_string();
    eventually_async(WAIT, "a sample in the stats' series", || {
        let mut api = ApiClient::new(api_addr.clone(), TOKEN);
        async move {
            let stats = api.get("/api/v1/stats").await.unwrap().body;
            stats["series"].as_array().is_some_and(|s| !s.is_empty())
        }
    })
    .await;
    let stats = api.get("/api/v1/stats").await.unwrap().body;
    assert_eq!(stats["node"], "a");
    assert_eq!(stats["connections"], 1);
    assert!(stats["counters"]["http_api_requests.ok"].as_u64().unwrap() >= 8);
    assert_eq!(stats["series"][0]["connections"], 1);

    // The admin page is served (it holds no data: it asks for a token).
    let page = http_get(t.api, "/admin").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page
        .to_ascii_lowercase()
        .contains("content-security-policy"));
}

#[tokio::test]
async fn bad_input_gets_clear_codes_and_is_counted() {
    let t = two(config().max_body_bytes(1024)).await;
    let api = t.api;
    let json = Some("application/json");
    let send = "/api/v1/broadcast";

    let cases: Vec<Case<'_>> = vec![
        (
            None,
            Method::POST,
            send,
            json,
            r#"{"event":"x"}"#.into(),
            401,
            "unauthorized",
        ),
        (
            Some("wrong"),
            Method::POST,
            send,
            json,
            r#"{"event":"x"}"#.into(),
            401,
            "unauthorized",
        ),
        (
            Some("test-token-"),
            Method::GET,
            "/api/v1/nodes",
            None,
            String::new(),
            401,
            "unauthorized",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            r#"{"event":"#.into(),
            400,
            "invalid_json",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            "not json".into(),
            400,
            "invalid_json",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            r#"{"event":"x","colour":1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            r#"{"event":""}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            r#"{"event":5}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            r#"[]"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            Some("text/plain"),
            r#"{"event":"x"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            None,
            r#"{"event":"x"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            Some(TOKEN),
            Method::POST,
            send,
            json,
            format!(r#"{{"event":"x","payload":"{}"}}"#, "y".repeat(4096)),
            413,
            "body_too_large",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/send",
            json,
            r#"{"ids":[],"event":"x"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/send",
            json,
            r#"{"ids":[""],"event":"x"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/rooms/send",
            json,
            r#"{"namespace":"chat","room":"","event":"x"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/rooms/send",
            json,
            r#"{"namespace":"broadcast","room":"r","event":"x"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/call",
            json,
            r#"{"event":"where","payload":1,"timeout_ms":3600000}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/call",
            json,
            r#"{"event":"where","payload":1,"expect":0}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/call",
            json,
            r#"{"event":"where","payload":1,"expect":"most"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::POST,
            "/api/v1/call",
            json,
            r#"{"event":"where","payload":1,"servers":["b"],"expect":1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            Some(TOKEN),
            Method::GET,
            "/api/v1/nope",
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            None,
            Method::GET,
            "/",
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            Some(TOKEN),
            Method::GET,
            send,
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            Some(TOKEN),
            Method::DELETE,
            "/api/v1/nodes",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (token, method, path, content_type, body, status, expected) in &cases {
        let (got, answer) = raw(api, *token, method.clone(), path, *content_type, body).await;
        assert_eq!(
            (got, code(&answer)),
            (*status, *expected),
            "{method} {path} {body:.60}: {answer}"
        );
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // The rotated-out token still works; the node still serves.
    let mut old = ApiClient::new(api.to_string(), OLD_TOKEN).timeout(WAIT);
    assert_eq!(old.get("/api/v1/nodes").await.unwrap().status, 200);
    let mut u1 = connect_id(&t.a.0, t.a.1, "u1").await;
    let r = post(
        &mut client(api),
        "/api/v1/broadcast",
        json!({"event": "still"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(next_text(&mut u1).await, r#"{"event":"still"}"#);

    let stats = t.a.0.stats();
    assert_eq!(stats.http_api_unauthorized, 3);
    assert_eq!(stats.http_api_invalid_json, 2);
    assert_eq!(stats.http_api_invalid_request, 12);
    assert_eq!(stats.http_api_unsupported_media_type, 2);
    assert_eq!(stats.http_api_body_too_large, 1);
    assert_eq!(stats.http_api_not_found, 2);
    assert_eq!(stats.http_api_method_not_allowed, 2);
    assert_eq!(stats.http_api_ok, 2);
    let metrics = t.a.0.metrics_text();
    assert!(
        metrics.contains(r#"crosswire_http_api_requests_total{node="a",code="unauthorized"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_the_node_keeps_serving() {
    let t = two(config().rate_limit(20.0, 20)).await;
    let mut u1 = connect_id(&t.a.0, t.a.1, "u1").await;
    let mut api = client(t.api);
    let mut limited = 0;
    let mut ok = 0;
    for _ in 0..200 {
        let r = api.get("/api/v1/nodes").await.unwrap();
        match (r.status, code(&r.body)) {
            (200, _) => ok += 1,
            (429, "rate_limited") => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(limited >= 100, "{limited} of 200 limited ({ok} served)");
    assert_eq!(t.a.0.stats().http_api_rate_limited, limited);
    // Unauthenticated requests do not use up the budget of the others.
    let mut stranger = ApiClient::new(t.api.to_string(), "nope").timeout(WAIT);
    assert_eq!(stranger.get("/api/v1/nodes").await.unwrap().status, 401);
    // Clients of the WebSocket endpoint are not affected, and the API serves
    // again as its budget refills.
    t.a.0.broadcast("ws", &1).unwrap();
    assert_eq!(next_text(&mut u1).await, r#"{"event":"ws","payload":1}"#);
    let api_addr = t.api.to_string();
    eventually_async(WAIT, "the API serving again", || {
        let mut api = ApiClient::new(api_addr.clone(), TOKEN);
        async move {
            let r = api
                .post("/api/v1/broadcast", &json!({"event": "again"}))
                .await
                .unwrap();
            assert!(matches!(r.status, 200 | 429), "{r:?}");
            r.status == 200
        }
    })
    .await;
    assert_eq!(next_text(&mut u1).await, r#"{"event":"again"}"#);
}

#[tokio::test]
async fn the_api_is_not_reachable_from_the_websocket_endpoint() {
    let t = two(config()).await;
    // The WebSocket endpoint serves upgrades only: no API route there.
    let answer = http_get(t.a.1, "/api/v1/nodes").await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("\"nodes\""), "{answer}");
    // And a WebSocket upgrade on the API's address is refused.
    let url = format!("ws://{}/api/v1/nodes", t.api);
    assert!(tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err());
}

/// Paths of the OpenAPI document with sample values for their parameters.
fn sample_path(path: &str) -> String {
    path.replace("{namespace}", "chat")
        .replace("{room}", "r1")
        .replace("{id}", "u1")
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes() {
    let t = two(config()).await;
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(described, routes);

    // Every described route is served: anything but not_found and
    // method_not_allowed (a POST with an empty object is refused as
    // invalid_request by the route itself).
    let mut api = client(t.api);
    for (method, path) in &routes {
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST).then(|| Bytes::from_static(b"{}"));
        let r = api
            .request(method.clone(), &sample_path(path), body)
            .await
            .unwrap();
        assert!(
            !matches!(code(&r.body), "not_found" | "method_not_allowed"),
            "{method} {path}: {:?}",
            r.body
        );
        if method == Method::POST {
            assert_eq!(
                (r.status, code(&r.body)),
                (400, "invalid_request"),
                "{path}"
            );
        } else {
            assert_eq!(r.status, 200, "{method} {path}: {:?}", r.body);
        }
    }
    let served = api.get("/api/v1/openapi.json").await.unwrap().body;
    assert_eq!(served, doc);
    // Every error code the API answers with is in the document's enum.
    let codes =
        &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
    for c in [
        "unauthorized",
        "invalid_json",
        "invalid_request",
        "body_too_large",
        "unsupported_media_type",
        "not_found",
        "method_not_allowed",
        "unknown_server",
        "rate_limited",
        "unavailable",
        "too_many_calls",
        "internal",
    ] {
        assert!(codes.as_array().unwrap().contains(&json!(c)), "{c}");
    }
}

#[tokio::test]
async fn a_shut_down_node_answers_unavailable() {
    let node = Node::builder().server_name("a").build().unwrap();
    // Served apart from the node's own listener, so that it outlives the
    // node's shutdown.
    let router = node.http_api(config()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut api = client(api);
    assert_eq!(
        post(&mut api, "/api/v1/broadcast", json!({"event": "x"}))
            .await
            .status,
        200
    );
    node.shutdown(Duration::from_millis(100)).await;
    let r = post(&mut api, "/api/v1/broadcast", json!({"event": "x"})).await;
    assert_eq!((r.status, code(&r.body)), (503, "unavailable"));
    let r = api.get("/api/v1/health").await.unwrap();
    assert_eq!((r.status, &r.body["status"]), (503, &json!("unavailable")));
    assert_eq!(node.stats().http_api_unavailable, 1);
}

#[tokio::test]
async fn the_api_listener_bounds_what_a_connection_holds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::builder()
        .server_name("a")
        .handshake_timeout(Duration::from_millis(300))
        .max_handshake_size(8192)
        .build()
        .unwrap();
    let api = node.listen_http_api("127.0.0.1:0", config()).await.unwrap();

    // A client that never completes its request head is dropped.
    let mut slow = tokio::net::TcpStream::connect(api).await.unwrap();
    slow.write_all(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = within(WAIT, slow.read_to_end(&mut rest)).await;
    wait_until(|| node.stats().handshakes_timed_out == 1).await;

    // A head above the bound is refused.
    let big = format!(
        "GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(16_384)
    );
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let _ = stream.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = within(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A well-behaved client is served on the same listener.
    let r = client(api).get("/api/v1/nodes").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_message_the_bus_would_refuse_is_refused_before_any_socket_gets_it() {
    let hub = MemoryHub::new();
    let (node, addr) = start_binding(
        Node::builder()
            .server_name("a")
            .bus(hub.bus())
            .max_bus_message_size(64 * 1024),
    )
    .await;
    node.ready().await;
    let api = node.listen_http_api("127.0.0.1:0", config()).await.unwrap();
    let mut u1 = connect_id(&node, addr, "u1").await;
    let mut api = client(api);
    let big = "x".repeat(64 * 1024);
    let r = post(
        &mut api,
        "/api/v1/broadcast",
        json!({"event": "big", "payload": big}),
    )
    .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (413, "body_too_large"),
        "{:?}",
        r.body
    );
    let r = post(
        &mut api,
        "/api/v1/send",
        json!({"ids": ["u1"], "event": "big", "payload": big}),
    )
    .await;
    assert_eq!((r.status, code(&r.body)), (413, "body_too_large"));
    // Nothing reached the socket: the next frame is a later one.
    post(&mut api, "/api/v1/broadcast", json!({"event": "small"})).await;
    assert_eq!(next_text(&mut u1).await, r#"{"event":"small"}"#);
}
