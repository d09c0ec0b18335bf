//! crosswire nodes on a real `nats-server`: the cross-node suite (every send
//! path across nodes, cross-server calls, cluster queries, a node crashing)
//! in both codecs, and a server restarted mid-stream
//! (the bus reconnects, subscribes again, counts the reconnection; what was
//! published while it was away is lost, as core NATS says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../crosswire-test-support/suites/cross_node.rs"]
mod cross_node;

use crosswire::bus::Bus;
use crosswire::protocol::envelope::Codec;
use crosswire::{Node, NodeBuilder};
use crosswire_nats::{NatsBus, NatsBusConfig};
use crosswire_test_support::{eventually, next_text, within, NatsServer, Ws};
use futures_util::future::BoxFuture;
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

/// The cross-node suite's nodes: on `server`, in `codec`, announcing every
/// 100 ms and dropped after 1 s of silence.
fn on_nats(server: &NatsServer, codec: Codec) -> impl Fn(&str) -> BoxFuture<'static, NodeBuilder> {
    let url = server.url();
    move |name: &str| -> BoxFuture<'static, NodeBuilder> {
        let mut config = NatsBusConfig::new([url.clone()]);
        config.name = Some(name.to_owned());
        let name = name.to_owned();
        Box::pin(async move {
            Node::builder()
                .server_name(name)
                .codec(codec)
                .bus(NatsBus::connect(config).await.unwrap())
                .membership(Duration::from_millis(100), Duration::from_millis(1000))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_suite_on_nats_msgpack() {
    let server = NatsServer::start();
    cross_node::run_all(on_nats(&server, Codec::MsgPack)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_suite_on_nats_routing_by_host() {
    let server = NatsServer::start();
    cross_node::run_all(cross_node::by_host(on_nats(&server, Codec::MsgPack))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_suite_on_nats_json() {
    let server = NatsServer::start();
    cross_node::run_all(on_nats(&server, Codec::Json)).await;
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
