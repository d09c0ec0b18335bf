//! crosswire nodes on real Redis servers: the cross-node suite (every send
//! path across nodes, cross-server calls, cluster queries, a node crashing)
//! in both codecs, a Redis node killed during a stream of
//! room broadcasts, and byte compatibility with the original as a system test
//! (the test vectors of `docs/protocol.md` published raw into Redis, and a
//! node's own PUBLISHes compared with them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../crosswire-test-support/suites/cross_node.rs"]
mod cross_node;
#[path = "../../crosswire-protocol/tests/doc_vectors/mod.rs"]
mod doc_vectors;
mod support;

use crosswire::protocol::envelope::Codec;
use crosswire::{Node, NodeBuilder, RoomSend};
use crosswire_redis::{RedisBus, Strategy};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(10);

/// The bytes of test vector `name` of `docs/protocol.md` (§12) in `codec`.
fn vector(name: &str, codec: Codec) -> Vec<u8> {
    let v = doc_vectors::vector(name);
    match codec {
        Codec::Json => v.text("json").as_bytes().to_vec(),
        Codec::MsgPack => v.bytes("msgpack").to_vec(),
    }
}

/// The channel of test vector `name`.
fn channel_of(name: &str) -> &'static str {
    doc_vectors::vector(name).text("channel")
}

/// The client frame a routed vector carries (its `data` string).
fn frame_of(name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(doc_vectors::vector(name).text("json")).unwrap();
    v["data"].as_str().unwrap().to_owned()
}

struct Opts {
    codec: Codec,
    strategy: Strategy,
    redundant: bool,
}

/// A WebSocket node named `name` on the given Redis servers; binds `?id=`.
async fn ws_node(name: &str, servers: &[&RedisServer], o: &Opts) -> (Node, SocketAddr, RedisBus) {
    let mut cfg = config(servers, o.strategy);
    cfg.redundant = o.redundant;
    cfg.server_name = Some(name.to_owned());
    let bus = support::connect(cfg).await;
    let node = Node::builder()
        .server_name(name)
        .codec(o.codec)
        .bus(bus.clone())
        .membership(Duration::from_millis(100), Duration::from_millis(1000))
        .build()
        .unwrap();
    let n = node.clone();
    node.on_connection(move |socket, hs| {
        let n = n.clone();
        async move {
            if let Some(id) = hs.param("id") {
                n.set_user_socket(id, &socket).unwrap();
            }
        }
    });
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    within(LIMIT, node.ready()).await;
    (node, addr, bus)
}

async fn client(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = ws::connect(addr, &format!("?id={id}")).await;
    eventually(LIMIT, "socket bound", || node.get_socket(id).is_some()).await;
    ws
}

/// The cross-node suite's nodes: on two Redis servers (round robin), in
/// `codec`, announcing every 100 ms and dropped after 1 s of silence.
fn on_redis(
    servers: &[&RedisServer],
    codec: Codec,
) -> impl Fn(&str) -> BoxFuture<'static, NodeBuilder> {
    let template = config(servers, Strategy::RoundRobin);
    move |name: &str| -> BoxFuture<'static, NodeBuilder> {
        let mut cfg = template.clone();
        cfg.server_name = Some(name.to_owned());
        let name = name.to_owned();
        Box::pin(async move {
            Node::builder()
                .server_name(name)
                .codec(codec)
                .bus(support::connect(cfg).await)
                .membership(Duration::from_millis(100), Duration::from_millis(1000))
        })
    }
}

#[tokio::test]
async fn cross_node_suite_on_two_redis_msgpack() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    cross_node::run_all(on_redis(&[&r1, &r2], Codec::MsgPack)).await;
}

#[tokio::test]
async fn cross_node_suite_on_two_redis_routing_by_host() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    cross_node::run_all(cross_node::by_host(on_redis(&[&r1, &r2], Codec::MsgPack))).await;
}

#[tokio::test]
async fn cross_node_suite_on_two_redis_json() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    cross_node::run_all(on_redis(&[&r1, &r2], Codec::Json)).await;
}

/// What [`kill_during_stream`] observed.
struct StreamRun {
    /// Received copies per sequence number.
    counts: HashMap<u64, usize>,
    /// Publish failovers of n1's bus.
    failovers: u64,
    /// Health events seen.
    health_events: usize,
    /// n1's bus nodes at the end, in configuration order (r1, then r2).
    nodes: Vec<crosswire_redis::NodeStatus>,
    /// n1's health report at the end.
    health: crosswire::Health,
    /// n1's Prometheus text at the end.
    metrics: String,
}

/// Streams room broadcasts from n1 to a member on n2 while one of two Redis
/// nodes is frozen and then killed.
async fn kill_during_stream(redundant: bool) -> StreamRun {
    let r1 = RedisServer::start();
    let mut r2 = RedisServer::start();
    let o = Opts {
        codec: Codec::MsgPack,
        strategy: Strategy::RoundRobin,
        redundant,
    };
    let (n1, _, bus1) = ws_node("n1", &[&r1, &r2], &o).await;
    let (n2, addr2, bus2) = ws_node("n2", &[&r1, &r2], &o).await;
    let health = record_health(&bus1);
    let mut member = client(&n2, addr2, "m").await;
    n2.join_room("chat", "r", "m").unwrap();
    within(LIMIT, n2.ready()).await;

    const TOTAL: u64 = 600;
    let counts = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
    let sink = counts.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = member.next().await {
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(q) = v["payload"]["q"].as_u64() {
                    *sink.lock().unwrap().entry(q).or_insert(0) += 1;
                }
            }
        }
    });
    for q in 0..TOTAL {
        if q == TOTAL / 3 {
            // Freeze first so that publishes are in flight on it when it dies.
            r2.pause();
        }
        if q == TOTAL / 3 + 20 {
            r2.kill();
        }
        n1.broadcast_to_room("chat", "r", "tick", &json!({"q": q}), RoomSend::new())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Everything that can still arrive arrives within the publish timeouts.
    let expected = TOTAL as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counts.lock().unwrap().len() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The node comes back: it is resubscribed and used again.
    r2.restart();
    // Both ends must be back on the restarted node: a message published
    // there before the receiving node has resubscribed is lost in the
    // default mode (the redundant mode covers that window too).
    within(LIMIT, bus1.wait_for_publish_targets(2))
        .await
        .unwrap();
    within(LIMIT, bus2.wait_for_publish_targets(2))
        .await
        .unwrap();
    let before = bus1.nodes().iter().map(|n| n.published).collect::<Vec<_>>();
    for q in TOTAL..TOTAL + 20 {
        n1.broadcast_to_room("chat", "r", "tick", &json!({"q": q}), RoomSend::new())
            .unwrap();
    }
    eventually(LIMIT, "the restarted node carries traffic again", || {
        bus1.nodes()
            .iter()
            .zip(&before)
            .all(|(n, b)| n.published > *b)
    })
    .await;
    eventually(LIMIT, "after-restart messages delivered", || {
        (TOTAL..TOTAL + 20).all(|q| counts.lock().unwrap().contains_key(&q))
    })
    .await;
    reader.abort();
    let failovers = bus1.stats().publish_failovers;
    let events = health.lock().unwrap().len();
    let counts = counts.lock().unwrap().clone();
    StreamRun {
        counts,
        failovers,
        health_events: events,
        nodes: bus1.nodes(),
        health: n1.health(),
        metrics: n1.metrics_text(),
    }
}

#[tokio::test]
async fn kill9_redis_during_room_stream_redundant_mode_loses_and_duplicates_nothing() {
    let StreamRun {
        counts,
        health_events,
        ..
    } = kill_during_stream(true).await;
    let lost: Vec<u64> = (0..620).filter(|q| !counts.contains_key(q)).collect();
    let duplicated: Vec<u64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(q, _)| *q)
        .collect();
    println!(
        "redundant mode: lost {} duplicated {}",
        lost.len(),
        duplicated.len()
    );
    assert!(lost.is_empty(), "lost {lost:?}");
    assert!(duplicated.is_empty(), "duplicated {duplicated:?}");
    assert!(health_events > 0, "health callbacks fired");
}

#[tokio::test]
async fn kill9_redis_during_room_stream_default_mode_fails_over() {
    let run = kill_during_stream(false).await;
    let (counts, failovers) = (&run.counts, run.failovers);
    let lost = (0..600).filter(|q| !counts.contains_key(q)).count();
    let duplicated = counts.values().filter(|n| **n > 1).count();
    // Recorded, not asserted: single-copy publishing can lose what the dying
    // node had accepted (see docs/compatibility.md).
    println!("default mode: failovers {failovers} lost {lost} duplicated {duplicated}");
    assert!(failovers > 0, "publishes failed over to the healthy node");
    assert!(run.health_events > 0, "health callbacks fired");

    // Failovers per Redis node: only the frozen and killed one (r2) lost
    // publishes to the other, and the per-node counts add up to the total.
    let [r1, r2] = &run.nodes[..] else {
        panic!("two nodes: {:?}", run.nodes)
    };
    assert_eq!(r1.failovers, 0, "{r1:?}");
    assert_eq!(r2.failovers, failovers, "{r2:?}");
    // The same figures in the health report and the metrics.
    let bus = run.health.bus.as_ref().unwrap();
    let reported: Vec<(&str, u64)> = bus
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.failovers))
        .collect();
    assert_eq!(
        reported,
        [(r1.url.as_str(), 0), (r2.url.as_str(), failovers)]
    );
    assert!(
        run.metrics
            .contains("# TYPE crosswire_bus_node_failovers_total counter"),
        "{}",
        run.metrics
    );
    for (n, expected) in [(r1, 0), (r2, failovers)] {
        let line = format!(
            "crosswire_bus_node_failovers_total{{node=\"n1\",bus_node=\"{}\"}} {expected}\n",
            n.url
        );
        assert!(run.metrics.contains(&line), "no {line} in\n{}", run.metrics);
    }
    // The existing per-node metrics are still there.
    for name in [
        "crosswire_bus_node_healthy",
        "crosswire_bus_node_published_total",
    ] {
        assert!(
            run.metrics
                .contains(&format!("{name}{{node=\"n1\",bus_node=\"{}\"}}", r2.url)),
            "no {name} in\n{}",
            run.metrics
        );
    }
}

/// The protocol's test vectors, PUBLISHed raw into Redis by a stranger,
/// reach the node's sockets as the original's nodes would deliver them.
async fn raw_vectors_reach_sockets(codec: Codec) {
    let r = RedisServer::start();
    let o = Opts {
        codec,
        strategy: Strategy::Random,
        redundant: false,
    };
    let (node, addr, _bus) = ws_node("serverB", &[&r], &o).await;
    let mut u42 = client(&node, addr, "u42").await;
    let mut u1 = client(&node, addr, "u1").await;
    let mut u2 = client(&node, addr, "u2").await;
    let mut u9 = client(&node, addr, "u9").await;
    node.join_room("chat", "r1", "u1").unwrap();
    node.join_room("chat", "r1", "u9").unwrap();
    node.join_room("ws:game", "g7", "u2").unwrap();
    within(LIMIT, node.ready()).await;
    let raw = redis::Client::open(r.url()).unwrap();
    let conn = raw.get_multiplexed_async_connection().await.unwrap();
    let publish = |name: &'static str| {
        let channel = channel_of(name);
        let bytes = vector(name, codec);
        let mut conn = conn.clone();
        async move {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(bytes)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    publish("V5").await;
    for ws in [&mut u42, &mut u1, &mut u2, &mut u9] {
        assert_eq!(next_text(ws).await, frame_of("V5"));
    }
    publish("V6").await;
    assert_eq!(next_text(&mut u42).await, frame_of("V6"));
    publish("V7").await;
    assert_eq!(next_text(&mut u1).await, frame_of("V7"));
    assert_eq!(next_text(&mut u2).await, frame_of("V7"));
    publish("V8").await;
    assert_eq!(next_text(&mut u1).await, frame_of("V8"));
    publish("V9").await;
    assert_eq!(next_text(&mut u2).await, frame_of("V9"));
    for ws in [&mut u42, &mut u1, &mut u2, &mut u9] {
        nothing_more(ws).await; // u9 was excluded from V8
    }
    // V2 is a broadcast call from serverA: this node answers it (V4).
    node.on_cross_server(
        "chat",
        |m: crosswire::CrossServerMessage, r: Option<crosswire::CrossReply>| async move {
            assert_eq!(m.payload, json!({"text": "hi"}));
            r.unwrap().send(&json!({"ok": true})).unwrap();
        },
    )
    .unwrap();
    let tap = Tap::new(&r, channel_of("V4")).await;
    publish("V2").await;
    let v4 = vector("V4", codec);
    eventually(LIMIT, "V4 reply published", || tap.contains(&v4)).await;
}

#[tokio::test]
async fn raw_protocol_vectors_reach_sockets_msgpack() {
    raw_vectors_reach_sockets(Codec::MsgPack).await;
}

#[tokio::test]
async fn raw_protocol_vectors_reach_sockets_json() {
    raw_vectors_reach_sockets(Codec::Json).await;
}

/// A node named serverA with the fixed callback id publishes exactly the
/// bytes of the protocol's test vectors.
async fn own_publishes_match_vectors(codec: Codec) {
    let r = RedisServer::start();
    let mut cfg = config(&[&r], Strategy::Random);
    cfg.server_name = Some("serverA".into());
    let bus = support::connect(cfg).await;
    let node = Node::builder()
        .server_name("serverA")
        .codec(codec)
        .bus(bus)
        .callback_id_source(|| "erverA-m0abcdef-k3x9-1".to_owned())
        .build()
        .unwrap();
    within(LIMIT, node.ready()).await;
    let taps = [
        (
            "csbp:server_bridge",
            Tap::new(&r, "csbp:server_bridge").await,
        ),
        ("ws:broadcast", Tap::new(&r, "ws:broadcast").await),
        ("ws:private_socket", Tap::new(&r, "ws:private_socket").await),
        ("ws:chat", Tap::new(&r, "ws:chat").await),
        ("ws:game", Tap::new(&r, "ws:game").await),
    ];
    node.emit_cross_server("chat", &json!({"text": "hi"}))
        .unwrap()
        .to(["serverB"])
        .send()
        .unwrap();
    let _v2 = node
        .emit_cross_server("chat", &json!({"text": "hi"}))
        .unwrap()
        .except_self()
        .stream()
        .unwrap();
    let v3 = node.clone();
    let v3 = tokio::spawn(async move {
        v3.emit_cross_server("chat", &json!({"text": "hi"}))
            .unwrap()
            .to(["serverB"])
            .timeout(Duration::from_millis(200))
            .collect()
            .await
    });
    node.broadcast("news", &json!({"n": 1})).unwrap();
    node.to_socket_id("u42", "pm", &"hello").unwrap();
    node.to_socket_ids(&["u1", "u2"], "pm", &[1, 2]).unwrap();
    node.broadcast_to_room(
        "chat",
        "r1",
        "say",
        &json!({"t": "yo"}),
        RoomSend::new().exclude(["u9"]),
    )
    .unwrap();
    node.broadcast_to_room(
        "ws:game",
        "g7",
        "start",
        &serde_json::Value::Null,
        RoomSend::new(),
    )
    .unwrap();
    for name in ["V1", "V2", "V3", "V5", "V6", "V7", "V8", "V9"] {
        let channel = channel_of(name);
        let bytes = vector(name, codec);
        let tap = &taps.iter().find(|t| t.0 == channel).unwrap().1;
        eventually(LIMIT, name, || tap.contains(&bytes)).await;
    }
    let _ = v3.await;
}

#[tokio::test]
async fn own_publishes_match_protocol_vectors_msgpack() {
    own_publishes_match_vectors(Codec::MsgPack).await;
}

#[tokio::test]
async fn own_publishes_match_protocol_vectors_json() {
    own_publishes_match_vectors(Codec::Json).await;
}

/// A node that shuts down says goodbye over Redis (its queued publishes,
/// the leave announcement included, reach Redis before the bus closes), and
/// the node's health reports every Redis node.
#[tokio::test]
async fn shutdown_announces_leave_over_redis_and_health_reports_redis_nodes() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        let mut cfg = config(&[&r1, &r2], Strategy::RoundRobin);
        cfg.server_name = Some(name.into());
        let bus = support::connect(cfg).await;
        // A member timeout far beyond the test: only the leave message can
        // remove n2 in time.
        let node = Node::builder()
            .server_name(name)
            .bus(bus)
            .membership(Duration::from_millis(100), Duration::from_secs(600))
            .build()
            .unwrap();
        within(LIMIT, node.ready()).await;
        nodes.push(node);
    }
    eventually(LIMIT, "both members known", || {
        nodes[0].live_nodes().len() == 2
    })
    .await;
    let health = nodes[0].health();
    assert_eq!(health.status, crosswire::HealthStatus::Ok);
    let bus = health.bus.unwrap();
    assert_eq!(bus.nodes.len(), 2);
    assert!(bus.healthy && bus.nodes.iter().all(|n| n.healthy));
    nodes[1].shutdown(Duration::from_secs(2)).await;
    eventually(LIMIT, "n2 left", || nodes[0].live_nodes() == ["n1"]).await;
}
