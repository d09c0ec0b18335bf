//! Routing by host on the in-memory bus: which channel each message takes
//! (seen by a spy endpoint on the same bus), the directory through moves and
//! node departures, the conflict report of a mixed cluster, and the
//! cross-node suite every bus runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../crosswire-test-support/suites/cross_node.rs"]
mod cross_node;

use common::*;
use crosswire::bus::{Bus, BusMessage, MemoryBus, MemoryHub};
use crosswire::protocol::envelope::Codec;
use crosswire::{HealthStatus, Node, NodeBuilder, RoomSend, Routing};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

fn builder(hub: &MemoryHub, name: &str, routing: Routing) -> NodeBuilder {
    Node::builder()
        .server_name(name)
        .bus(hub.bus())
        .routing(routing)
        .membership(Duration::from_millis(50), Duration::from_millis(400))
}

async fn nodes(hub: &MemoryHub, n: usize) -> Vec<(Node, SocketAddr)> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        nodes.push(start_binding(builder(hub, &format!("n{i}"), Routing::ByHost)).await);
    }
    for (node, _) in &nodes {
        within(LIMIT, node.ready()).await;
    }
    for (node, _) in &nodes {
        eventually(LIMIT, "membership", || node.live_nodes().len() == n).await;
    }
    nodes
}

/// A bus endpoint that records what is published on the channels it watches.
struct Spy {
    _bus: MemoryBus,
    rx: mpsc::Receiver<BusMessage>,
}

impl Spy {
    async fn on(hub: &MemoryHub, channels: &[String]) -> Spy {
        let bus = hub.bus();
        let rx = bus.take_incoming().unwrap();
        for c in channels {
            bus.subscribe(c).await.unwrap();
        }
        Spy { _bus: bus, rx }
    }

    /// Channel → messages seen since the last call, membership traffic
    /// (on the shared bridge channel) left out.
    fn seen(&mut self) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        while let Ok(m) = self.rx.try_recv() {
            *seen.entry(m.channel.to_string()).or_default() += 1;
        }
        seen
    }
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

#[tokio::test]
async fn each_message_takes_the_channels_of_its_hosts_only() {
    let hub = MemoryHub::new();
    let nodes = nodes(&hub, 3).await;
    let node = |i: usize| &nodes[i].0;
    let mut a = connect_id(node(0), nodes[0].1, "a").await;
    let mut b = connect_id(node(1), nodes[1].1, "b").await;
    let mut c = connect_id(node(2), nodes[2].1, "c").await;
    // Every node knows where the other two ids are.
    for (n, _) in &nodes {
        eventually(LIMIT, "directory", || n.directory_size() == 2).await;
    }
    let watched: Vec<String> = [
        "ws:private_socket",
        "ws:chat",
        "csbp:ids:n1",
        "csbp:ids:n2",
        "csbp:ids:n3",
        "csbp:room:4:chat:r1",
        "csbp:node:n1",
        "csbp:node:n3",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut spy = Spy::on(&hub, &watched).await;

    // One id: its holder's channel, nothing shared.
    node(0).to_socket_id("b", "pm", &"hi").unwrap();
    assert_eq!(next_text(&mut b).await, r#"{"event":"pm","payload":"hi"}"#);
    assert_eq!(spy.seen(), counts(&[("csbp:ids:n2", 1)]));

    // Several ids: one message per holder, the unknown one shared.
    node(2)
        .to_socket_ids(&["a", "b", "ghost"], "pm", &[1, 2])
        .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"pm","payload":[1,2]}"#);
    assert_eq!(next_text(&mut b).await, r#"{"event":"pm","payload":[1,2]}"#);
    assert_eq!(
        spy.seen(),
        counts(&[
            ("csbp:ids:n1", 1),
            ("csbp:ids:n2", 1),
            ("ws:private_socket", 1)
        ])
    );

    // A room with members on n1 and n2: only they subscribe to it.
    node(0).join_room("chat", "r1", "a").unwrap();
    node(1).join_room("chat", "r1", "b").unwrap();
    for (n, _) in &nodes {
        within(LIMIT, n.ready()).await;
    }
    let room = "csbp:room:4:chat:r1".to_owned();
    assert!(node(0).subscribed_channels().contains(&room));
    assert!(node(1).subscribed_channels().contains(&room));
    assert!(!node(2).subscribed_channels().contains(&room));
    assert!(!node(0)
        .subscribed_channels()
        .contains(&"ws:chat".to_owned()));
    node(2)
        .broadcast_to_room("chat", "r1", "say", &"yo", RoomSend::new())
        .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"say","payload":"yo"}"#);
    assert_eq!(next_text(&mut b).await, r#"{"event":"say","payload":"yo"}"#);
    assert_eq!(spy.seen(), counts(&[("csbp:room:4:chat:r1", 1)]));

    // The last member leaves: the room's channel goes.
    node(1).leave_room("chat", "r1", "b").unwrap();
    within(LIMIT, node(1).ready()).await;
    assert!(!node(1).subscribed_channels().contains(&room));

    // A targeted call travels on the target's channel, its reply on the
    // caller's.
    node(2)
        .on_cross_server(
            "who",
            |_m: crosswire::CrossServerMessage, r: Option<crosswire::CrossReply>| async move {
                r.unwrap().send(&"n3").unwrap();
            },
        )
        .unwrap();
    let r = node(0)
        .emit_cross_server("who", &1)
        .unwrap()
        .to(["n3"])
        .collect()
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(r.responses["n3"].payload, Some(json!("n3")));
    assert_eq!(
        spy.seen(),
        counts(&[("csbp:node:n1", 1), ("csbp:node:n3", 1)])
    );
    nothing_more(&mut a).await;
    nothing_more(&mut b).await;
    nothing_more(&mut c).await;
    assert_eq!(node(0).routing_conflict(), None);
}

#[tokio::test]
async fn an_id_that_moves_gets_its_messages_once_whatever_the_directory_says() {
    let hub = MemoryHub::new();
    let nodes = nodes(&hub, 3).await;
    let node = |i: usize| &nodes[i].0;
    let mut a = connect_id(node(0), nodes[0].1, "a").await;
    eventually(LIMIT, "directory", || node(2).directory_size() == 1).await;
    assert_eq!(node(2).directory_lookup("a"), ["n1"]);
    // Sent at once after the move: n3's directory may still say n1, which
    // then passes it on.
    close_with(&mut a, 1000, "moving").await;
    eventually(LIMIT, "unbound", || node(0).get_socket("a").is_none()).await;
    let mut a = connect_id(node(1), nodes[1].1, "a").await;
    node(2).to_socket_id("a", "pm", &1).unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"pm","payload":1}"#);
    // Once the directory caught up, the message goes to n2 directly.
    eventually(LIMIT, "moved in the directory", || {
        node(2).directory_lookup("a") == ["n2"]
    })
    .await;
    let forwarded = node(0).stats().routed_forwarded;
    node(2).to_socket_id("a", "pm", &2).unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"pm","payload":2}"#);
    nothing_more(&mut a).await;
    assert_eq!(node(0).stats().routed_forwarded, forwarded);
}

#[tokio::test]
async fn a_node_that_goes_takes_its_ids_out_of_the_directory() {
    let hub = MemoryHub::new();
    let nodes = nodes(&hub, 2).await;
    let _b = connect_id(&nodes[1].0, nodes[1].1, "b").await;
    eventually(LIMIT, "directory", || nodes[0].0.directory_size() == 1).await;
    nodes[1].0.shutdown(Duration::from_millis(200)).await;
    eventually(LIMIT, "forgotten", || nodes[0].0.directory_size() == 0).await;
    // A newcomer gets the survivors' lists.
    let _a = connect_id(&nodes[0].0, nodes[0].1, "a").await;
    let (late, _) = start_binding(builder(&hub, "n9", Routing::ByHost)).await;
    eventually(LIMIT, "synced", || late.directory_size() == 1).await;
}

#[tokio::test]
async fn a_mixed_cluster_is_reported_on_both_sides() {
    let hub = MemoryHub::new();
    let (routed, _) = start(builder(&hub, "r1", Routing::ByHost)).await;
    let (compat, _) = start(builder(&hub, "c1", Routing::Compatible)).await;
    for n in [&routed, &compat] {
        eventually(LIMIT, "conflict", || n.routing_conflict().is_some()).await;
        assert_eq!(n.health().status, HealthStatus::Degraded);
    }
    let why = routed.routing_conflict().unwrap();
    assert!(why.contains("c1") && why.contains("compatible"), "{why}");
    assert!(routed.stats().routing_conflicts >= 1);
}

#[tokio::test]
async fn a_sender_that_never_announces_itself_is_reported() {
    let hub = MemoryHub::new();
    let (routed, _) = start(builder(&hub, "r1", Routing::ByHost).codec(Codec::Json)).await;
    within(LIMIT, routed.ready()).await;
    // What an original node publishes: a cross-server event, no membership.
    let legacy = hub.bus();
    let event =
        br#"{"data":{"event":"hello","senderServer":"legacy","payload":1,"targetServer":[]}}"#;
    let _ = legacy
        .publish("csbp:server_bridge", bytes::Bytes::from_static(event))
        .await;
    eventually(LIMIT, "conflict", || routed.routing_conflict().is_some()).await;
    assert!(routed.routing_conflict().unwrap().contains("legacy"));
}

#[tokio::test]
async fn routing_channel_names_are_refused_as_custom_channels() {
    let hub = MemoryHub::new();
    let err = builder(&hub, "n1", Routing::ByHost)
        .custom_channels(["csbp:ids:n2"])
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("routing by host"), "{err}");
    let node = builder(&hub, "n1", Routing::ByHost).build().unwrap();
    assert!(node.subscribe("csbp:room:1:x:y").await.is_err());
    assert!(node.subscribe("jobs").await.is_ok());
}

/// The cross-node suite every bus runs, routing by host.
async fn suite(codec: Codec) {
    cross_node::run_all(cross_node::by_host(cross_node::on_memory(
        MemoryHub::new(),
        codec,
    )))
    .await;
}

#[tokio::test]
async fn cross_node_suite_routing_by_host_msgpack() {
    suite(Codec::MsgPack).await;
}

#[tokio::test]
async fn cross_node_suite_routing_by_host_json() {
    suite(Codec::Json).await;
}
