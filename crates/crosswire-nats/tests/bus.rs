//! crosswire nodes on a real `nats-server`: every send path across nodes,
//! cross-server calls and membership, and a server restarted mid-stream
//! (the bus reconnects, subscribes again, counts the reconnection; what was
//! published while it was away is lost, as core NATS says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire::bus::Bus;
use crosswire::{Node, RoomSend};
use crosswire_nats::{NatsBus, NatsBusConfig};
use crosswire_test_support::{eventually, next_text, within, NatsServer, Ws};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

async fn bus(server: &NatsServer, name: &str) -> NatsBus {
    let mut config = NatsBusConfig::new([server.url()]);
    config.name = Some(name.to_owned());
    NatsBus::connect(config).await.unwrap()
}

/// Node `name` on the NATS bus; a connection with `?id=` is bound.
async fn node(server: &NatsServer, name: &str) -> (Node, SocketAddr, NatsBus) {
    let bus = bus(server, name).await;
    let node = Node::builder()
        .server_name(name)
        .bus(bus.clone())
        .membership(Duration::from_millis(100), Duration::from_millis(1000))
        .build()
        .unwrap();
    node.on_connection(|socket, hs| async move {
        if let (Some(node), Some(id)) = (socket.node(), hs.param("id")) {
            node.set_user_socket(id, &socket).unwrap();
        }
    });
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    within(LIMIT, node.ready()).await;
    (node, addr, bus)
}

async fn client(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = crosswire_test_support::ws::connect(addr, &format!("?id={id}")).await;
    eventually(LIMIT, "socket bound", || node.get_socket(id).is_some()).await;
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_path_and_cross_server_calls_cross_nodes() {
    let server = NatsServer::start();
    let (n1, a1, _b1) = node(&server, "n1").await;
    let (n2, a2, _b2) = node(&server, "n2").await;
    let mut a = client(&n1, a1, "a").await;
    let mut b = client(&n2, a2, "b").await;
    n1.broadcast("news", &json!({"n": 1})).unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await, r#"{"event":"news","payload":{"n":1}}"#);
    }
    n1.to_socket_id("b", "pm", &"hello").unwrap();
    assert_eq!(
        next_text(&mut b).await,
        r#"{"event":"pm","payload":"hello"}"#
    );
    n2.to_socket_ids(&["a", "b"], "multi", &[1, 2]).unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await, r#"{"event":"multi","payload":[1,2]}"#);
    }
    n1.join_room("chat", "r.1", "a").unwrap();
    n2.join_room("chat", "r.1", "b").unwrap();
    within(LIMIT, n1.ready()).await;
    within(LIMIT, n2.ready()).await;
    n2.broadcast_to_room("chat", "r.1", "say", &"yo", RoomSend::new().exclude(["b"]))
        .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"say","payload":"yo"}"#);
    // Cross-server calls and membership.
    eventually(LIMIT, "members", || n1.live_nodes().len() == 2).await;
    n2.on_cross_server(
        "double",
        |msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
            if let (Some(n), Some(reply)) = (msg.payload.as_i64(), reply) {
                let _ = reply.send(&(n * 2));
            }
        },
    )
    .unwrap();
    let result = n1
        .emit_cross_server("double", &21)
        .unwrap()
        .to(["n2"])
        .collect()
        .await
        .unwrap();
    assert_eq!(result.responses["n2"].payload, Some(json!(42)));
    let counts = n1.query().room_counts("chat").await.unwrap();
    assert!(!counts.partial);
    assert_eq!(counts.value["r.1"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_reconnected_to_and_resubscribed_with_the_loss_counted() {
    let mut server = NatsServer::start();
    let (n1, _a1, b1) = node(&server, "n1").await;
    let (n2, a2, b2) = node(&server, "n2").await;
    let mut b = client(&n2, a2, "b").await;
    n1.to_socket_id("b", "m", &1).unwrap();
    assert_eq!(next_text(&mut b).await, r#"{"event":"m","payload":1}"#);
    server.restart();
    // Both buses come back (the client reconnects and subscribes again).
    eventually(LIMIT, "reconnected", || {
        b1.health().healthy && b2.health().healthy && b2.health().reconnects >= 1
    })
    .await;
    // Messages flow again; the ones published while away may be lost.
    let mut n = 2;
    let got = loop {
        n1.to_socket_id("b", "m", &n).unwrap();
        match tokio::time::timeout(Duration::from_millis(200), next_text(&mut b)).await {
            Ok(text) => break text,
            Err(_) => n += 1,
        }
        assert!(n < 100, "no message after the restart");
    };
    assert!(got.starts_with(r#"{"event":"m","payload":"#), "{got}");
}

#[tokio::test]
async fn subjects_escape_what_nats_reserves() {
    assert_eq!(crosswire_nats::subject("ws:broadcast"), "cw.ws:broadcast");
    assert_eq!(
        crosswire_nats::subject("a.b*c>d~e f"),
        "cw.a~2Eb~2Ac~3Ed~7Ee~20f"
    );
}
