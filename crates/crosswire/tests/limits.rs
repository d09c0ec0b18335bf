//! Limits, authentication helpers and operations endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::auth::{query_token_hook, AuthenticatedUser};
use crosswire::{Node, SlowConsumerPolicy};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn connections_over_the_limit_are_closed_with_1013() {
    let (node, addr) = start(Node::builder().max_connections(2)).await;
    let _a = connect(addr, "").await;
    let _b = connect(addr, "").await;
    let mut c = connect(addr, "").await;
    assert_eq!(closed(&mut c).await, Some(1013));
    wait_until(|| node.connection_count() == 2).await;
    assert_eq!(node.stats().connections_refused, 1);
}

#[tokio::test]
async fn a_socket_over_the_rate_limit_is_closed_with_4004() {
    let (node, addr) = start(Node::builder().rate_limit(1.0, 5)).await;
    node.on(
        "e",
        |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| async {},
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    for _ in 0..20 {
        send_text(&mut ws, r#"{"event":"e","payload":1}"#).await;
    }
    assert_eq!(closed(&mut ws).await, Some(4004));
    assert_eq!(node.stats().rate_limit_closes, 1);
    // Within the limit nothing happens.
    let mut ok = connect(addr, "").await;
    for _ in 0..3 {
        send_text(&mut ok, r#"{"event":"e","payload":1}"#).await;
    }
    sync(&mut ok).await;
}

#[tokio::test]
async fn origins_not_allowed_are_refused_with_403() {
    let (_node, addr) = start(Node::builder().allowed_origins(["https://app.example"])).await;
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 403),
        e => panic!("{e:?}"),
    }
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap();
}

#[tokio::test]
async fn token_in_the_url_is_verified_at_upgrade() {
    let node = Node::builder()
        .on_upgrade(query_token_hook("token", |t| async move {
            (t == "good").then(|| "alice".to_owned())
        }))
        .build()
        .unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    node.on_connection(move |s, _| {
        let tx = tx.clone();
        async move { tx.send(s.data::<AuthenticatedUser>()).unwrap() }
    });
    for q in ["", "?token=", "?token=bad"] {
        match tokio_tungstenite::connect_async(format!("ws://{addr}/{q}"))
            .await
            .unwrap_err()
        {
            tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401, "{q}"),
            e => panic!("{e:?}"),
        }
    }
    let _ws = connect(addr, "?token=good").await;
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        Some(AuthenticatedUser("alice".into()))
    );
}

fn auth_node() -> crosswire::NodeBuilder {
    Node::builder().auth_message("auth", Duration::from_millis(300), |p| async move {
        match p["token"].as_str() {
            Some("t1") => Some("u1".to_owned()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn auth_message_gates_events_and_broadcasts() {
    let (node, addr) = start(auth_node()).await;
    node.on(
        "e",
        |_s: crosswire::Socket, _p: serde_json::Value, r: Option<crosswire::Reply>| async move {
            r.unwrap().send(&"handled").unwrap()
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    // Not authenticated: events are dropped, broadcasts skip it.
    send_text(&mut ws, r#"{"event":"e","payload":1,"callbackId":"x"}"#).await;
    node.broadcast("news", &1).unwrap();
    sync(&mut ws).await; // the heartbeat echo comes first: nothing else was sent
    assert_eq!(node.stats().frames_dropped_unauthenticated, 1);
    send_text(
        &mut ws,
        r#"{"event":"auth","payload":{"token":"t1"},"callbackId":"a"}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"payload": {"ok": true}, "callbackId": "a"})
    );
    assert!(node.get_socket("u1").is_some());
    send_text(&mut ws, r#"{"event":"e","payload":1,"callbackId":"x"}"#).await;
    assert_eq!(next_json(&mut ws).await["payload"], "handled");
    node.broadcast("news", &2).unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"event":"news","payload":2}"#);
    // Past the timeout it stays open.
    tokio::time::sleep(Duration::from_millis(400)).await;
    sync(&mut ws).await;
}

#[tokio::test]
async fn unauthenticated_sockets_are_closed_4005_and_bad_tokens_4011() {
    let (_node, addr) = start(auth_node()).await;
    let mut late = connect(addr, "").await;
    let mut bad = connect(addr, "").await;
    send_text(
        &mut bad,
        r#"{"event":"auth","payload":{"token":"nope"},"callbackId":"a"}"#,
    )
    .await;
    assert_eq!(next_json(&mut bad).await["payload"], json!({"ok": false}));
    assert_eq!(closed(&mut bad).await, Some(4011));
    assert_eq!(closed(&mut late).await, Some(4005));
}

#[tokio::test]
async fn metrics_and_health_routes() {
    let node = Node::builder().server_name("ops").build().unwrap();
    node.on(
        "fast",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send(&"fast").unwrap();
            }
        },
    )
    .unwrap();
    // Replies, then keeps running: the histogram times the whole handler.
    node.on(
        "slow",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send(&"slow").unwrap();
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        },
    )
    .unwrap();
    node.on_cross_server(
        "count",
        |_m: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
            if let Some(r) = reply {
                r.send(&1).unwrap();
            }
        },
    )
    .unwrap();
    let app = axum::Router::new()
        .route("/ws", node.ws_route())
        .route("/metrics", node.metrics_route())
        .route("/health", node.health_route());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ws = connect(addr, "ws").await;
    send_text(&mut ws, "not json").await;
    for (event, id) in [("fast", "1"), ("fast", "2"), ("slow", "3")] {
        send_text(
            &mut ws,
            &format!(r#"{{"event":"{event}","payload":0,"callbackId":"{id}"}}"#),
        )
        .await;
        assert_eq!(next_json(&mut ws).await["payload"], event);
    }
    sync(&mut ws).await;
    node.emit_cross_server("count", &json!({}))
        .unwrap()
        .expect(1)
        .collect()
        .await
        .unwrap();
    // The slow handler ends 30 ms after its reply; the cross-server handler
    // after its reply too.
    wait_until(|| {
        let s = node.stats();
        s.client_handler_seconds.count == 3 && s.cross_server_handler_seconds.count == 1
    })
    .await;
    let metrics = http_get(addr, "/metrics").await;
    assert!(
        metrics.contains("crosswire_connections{node=\"ops\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("crosswire_frames_dropped_total{node=\"ops\",reason=\"invalid\"} 1"));
    // The handler histogram: type, every bucket, sum and count, both kinds.
    assert!(
        metrics.contains("# TYPE crosswire_handler_seconds histogram"),
        "{metrics}"
    );
    let value = |series: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        line[series.len()..].trim().parse().unwrap()
    };
    let client = r#"node="ops",kind="client""#;
    let bucket = |le: &str| {
        value(&format!(
            "crosswire_handler_seconds_bucket{{{client},le=\"{le}\"}}"
        ))
    };
    for le in [
        "0.0001", "0.0005", "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5",
    ] {
        let _ = bucket(le);
    }
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        value(&format!("crosswire_handler_seconds_count{{{client}}}")),
        3.0
    );
    // The slow handler took at least 30 ms: it is above the 10 ms bucket,
    // and the sum counts its asynchronous part.
    assert!(bucket("0.01") <= 2.0, "{metrics}");
    assert!(value(&format!("crosswire_handler_seconds_sum{{{client}}}")) >= 0.03);
    let cross = r#"node="ops",kind="cross_server""#;
    assert_eq!(
        value(&format!("crosswire_handler_seconds_count{{{cross}}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "crosswire_handler_seconds_bucket{{{cross},le=\"+Inf\"}}"
        )),
        1.0
    );
    let health: serde_json::Value = serde_json::from_str(
        http_get(addr, "/health")
            .await
            .split("\r\n\r\n")
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 1);
}

#[tokio::test]
async fn frames_larger_than_the_read_buffer_arrive_whole() {
    let (node, addr) = start(Node::builder().read_buffer_size(64)).await;
    node.on("len", |s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
        let text = payload.as_str().unwrap_or_default().len();
        let hs = s.handshake();
        let seen = json!({
            "len": text,
            "path": hs.uri.path(),
            "id": hs.param("id"),
            "agent": hs.headers.get("user-agent").and_then(|v| v.to_str().ok()),
        });
        reply.unwrap().send(&seen).unwrap();
    })
    .unwrap();
    let mut req = format!("ws://{addr}/room/a?id=u1")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("user-agent", "limits-test/1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let big = "x".repeat(200_000);
    let frame = json!({"event": "len", "payload": big, "callbackId": "c1"}).to_string();
    send_text(&mut ws, &frame).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["callbackId"], "c1");
    assert_eq!(
        reply["payload"],
        json!({"len": 200_000, "path": "/room/a", "id": "u1", "agent": "limits-test/1"})
    );
}

#[tokio::test]
async fn a_zero_read_buffer_is_refused() {
    let err = Node::builder().read_buffer_size(0).build().unwrap_err();
    assert!(err.to_string().contains("read_buffer_size"), "{err}");
}

#[tokio::test]
async fn listening_on_a_port_in_use_fails_with_an_io_error() {
    let (_node, addr) = start(Node::builder()).await;
    let other = Node::builder().build().unwrap();
    match other.listen(addr).await {
        Err(crosswire::Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
        r => panic!("{r:?}"),
    }
    // Names resolve; the node then serves on the bound address.
    let third = Node::builder().build().unwrap();
    let bound = third.listen("localhost:0").await.unwrap();
    let mut ws = connect(bound, "").await;
    sync(&mut ws).await;
}

/// Byte bound of the outbound queues in the tests below.
const QUEUE_BYTES: usize = 256 * 1024;

/// Pushes 64 KiB frames to the socket bound as `id` (a client that does not
/// read) until `done`; returns how many were pushed and the most bytes and
/// frames its queue ever held.
async fn flood_until(
    node: &Node,
    id: &str,
    mut done: impl FnMut(&Node) -> bool,
) -> (usize, usize, usize) {
    let socket = node.get_socket(id).unwrap();
    let payload = "x".repeat(64 * 1024);
    let (mut pushed, mut most_bytes, mut most_frames) = (0, 0, 0);
    while !done(node) {
        assert!(pushed < 1024, "the byte bound never applied");
        let _ = node.to_socket_id(id, "big", &payload);
        pushed += 1;
        most_bytes = most_bytes.max(socket.queued_bytes());
        most_frames = most_frames.max(socket.queued());
        // Lets the connection task write what the kernel takes.
        tokio::task::yield_now().await;
    }
    (pushed, most_bytes, most_frames)
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_4003_at_the_byte_bound() {
    let (node, addr) = start_binding(Node::builder().outbound_queue_bytes(QUEUE_BYTES)).await;
    let mut stalled = connect_id(&node, addr, "slow").await; // does not read yet
    let (pushed, most_bytes, most_frames) =
        flood_until(&node, "slow", |n| n.stats().slow_consumer_closes > 0).await;
    // The frame bound (1024) was far away: the bytes closed it.
    assert!(most_bytes <= QUEUE_BYTES, "{most_bytes} bytes queued");
    assert!(
        most_frames <= QUEUE_BYTES / (64 * 1024),
        "{most_frames} frames queued"
    );
    assert!(pushed < 1024, "{pushed} frames pushed");
    assert_eq!(node.stats().slow_consumer_closes, 1);
    assert_eq!(node.stats().frames_dropped_slow, 0);
    // Reading now, the client gets what the kernel held, then 4003.
    assert_eq!(closed(&mut stalled).await, Some(4003));
    wait_until(|| node.connection_count() == 0).await;
}

#[tokio::test]
async fn the_drop_policy_drops_frames_over_the_byte_bound() {
    let (node, addr) = start_binding(
        Node::builder()
            .outbound_queue_bytes(QUEUE_BYTES)
            .slow_consumer(SlowConsumerPolicy::DropFrame),
    )
    .await;
    let mut stalled = connect_id(&node, addr, "slow").await;
    let (pushed, most_bytes, _) =
        flood_until(&node, "slow", |n| n.stats().frames_dropped_slow > 0).await;
    assert!(most_bytes <= QUEUE_BYTES, "{most_bytes} bytes queued");
    assert!(pushed < 1024, "{pushed} frames pushed");
    assert_eq!(node.stats().slow_consumer_closes, 0);
    let socket = node.get_socket("slow").unwrap();
    assert!(socket.is_open());
    // Once the client reads, the socket works again: `sync` reads every
    // frame still queued, then the echo of its heartbeat.
    sync(&mut stalled).await;
    assert_eq!(socket.queued_bytes(), 0);
}

#[tokio::test]
async fn a_frame_bigger_than_the_byte_bound_reaches_a_reading_client() {
    let (node, addr) = start_binding(Node::builder().outbound_queue_bytes(1024)).await;
    let mut ws = connect_id(&node, addr, "u").await;
    let payload = "y".repeat(200_000);
    for round in 0..2 {
        node.to_socket_id("u", "big", &json!([round, payload]))
            .unwrap();
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["payload"][0], json!(round));
        assert_eq!(frame["payload"][1].as_str().map(str::len), Some(200_000));
    }
    assert_eq!(node.stats().slow_consumer_closes, 0);
    assert_eq!(node.stats().frames_dropped_slow, 0);
}

/// With `max_handlers_per_socket` handlers of a socket still waiting, the
/// node reads no further frame of that socket (nothing is dropped: it is
/// read once a handler ends); other sockets are served meanwhile.
#[tokio::test]
async fn a_socket_with_its_handlers_all_waiting_is_not_read() {
    let (node, addr) = start(Node::builder().max_handlers_per_socket(2)).await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let g = gate.clone();
    node.on(
        "wait",
        move |_s: crosswire::Socket, p: serde_json::Value, _r: Option<crosswire::Reply>| {
            let (gate, tx) = (g.clone(), tx.clone());
            async move {
                let _ = tx.send(p);
                let _ = gate.acquire().await.map(|p| p.forget());
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    for i in 1..=3 {
        send_text(&mut ws, &format!(r#"{{"event":"wait","payload":{i}}}"#)).await;
    }
    send_text(&mut ws, "").await; // heartbeat, echoed once read
    assert_eq!(started.recv().await, Some(json!(1)));
    assert_eq!(started.recv().await, Some(json!(2)));
    wait_until(|| node.stats().frames_received == 2).await;

    // Another socket is served at once.
    let mut other = connect(addr, "").await;
    sync(&mut other).await;
    assert_eq!(
        node.stats().frames_received,
        3,
        "only the other socket's heartbeat"
    );
    assert!(started.try_recv().is_err(), "the third frame was not read");

    gate.add_permits(1);
    assert_eq!(started.recv().await, Some(json!(3)));
    gate.add_permits(2);
    assert_eq!(
        next_text(&mut ws).await,
        "",
        "the heartbeat after them is read"
    );
    assert_eq!(node.stats().frames_received, 5);
}
