//! Several nodes in one process on the in-memory bus: every send path across
//! nodes, cross-server calls, membership and subscriptions, in both codecs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../crosswire-test-support/suites/cross_node.rs"]
mod cross_node;

use common::*;
use crosswire::bus::MemoryHub;
use crosswire::protocol::envelope::Codec;
use crosswire::{CrossServerResponse, Node, NodeBuilder, RoomSend};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

struct Cluster {
    nodes: Vec<(Node, SocketAddr)>,
}

async fn cluster(n: usize, codec: Codec) -> Cluster {
    cluster_with(n, codec, |b| b).await
}

async fn cluster_with(n: usize, codec: Codec, f: impl Fn(NodeBuilder) -> NodeBuilder) -> Cluster {
    let hub = MemoryHub::new();
    let mut nodes = Vec::new();
    for i in 1..=n {
        let b = Node::builder()
            .server_name(format!("n{i}"))
            .codec(codec)
            .bus(hub.bus())
            .membership(Duration::from_millis(50), Duration::from_millis(400));
        nodes.push(start_binding(f(b)).await);
    }
    for (node, _) in &nodes {
        node.ready().await;
    }
    Cluster { nodes }
}

impl Cluster {
    fn node(&self, i: usize) -> &Node {
        &self.nodes[i].0
    }
    async fn client(&self, i: usize, id: &str) -> Ws {
        let (node, addr) = &self.nodes[i];
        connect_id(node, *addr, id).await
    }
}

async fn every_send_path_crosses_nodes(codec: Codec) {
    let c = cluster(3, codec).await;
    let mut a = c.client(0, "a").await;
    let mut b = c.client(1, "b").await;
    let mut d = c.client(2, "d").await;

    c.node(0).broadcast("news", &json!({"n": 1})).unwrap();
    for ws in [&mut a, &mut b, &mut d] {
        assert_eq!(next_text(ws).await, r#"{"event":"news","payload":{"n":1}}"#);
    }
    c.node(1).to_socket_id("d", "pm", &"hello").unwrap();
    assert_eq!(
        next_text(&mut d).await,
        r#"{"event":"pm","payload":"hello"}"#
    );
    c.node(2)
        .to_socket_ids(&["a", "b", "d", "ghost"], "multi", &[1, 2])
        .unwrap();
    for ws in [&mut a, &mut b, &mut d] {
        assert_eq!(next_text(ws).await, r#"{"event":"multi","payload":[1,2]}"#);
    }

    for (i, id) in [(0, "a"), (1, "b"), (2, "d")] {
        c.node(i).join_room("chat", "r1", id).unwrap();
    }
    for (node, _) in &c.nodes {
        node.ready().await;
    }
    c.node(0)
        .broadcast_to_room(
            "chat",
            "r1",
            "say",
            &json!({"t": "yo"}),
            RoomSend::new().exclude(["b"]),
        )
        .unwrap();
    assert_eq!(
        next_text(&mut a).await,
        r#"{"event":"say","payload":{"t":"yo"}}"#
    );
    assert_eq!(
        next_text(&mut d).await,
        r#"{"event":"say","payload":{"t":"yo"}}"#
    );
    // local only: nothing crosses.
    c.node(0).broadcast_local("local", &1).unwrap();
    c.node(0)
        .broadcast_to_room("chat", "r1", "localroom", &1, RoomSend::new().local_only())
        .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"local","payload":1}"#);
    assert_eq!(
        next_text(&mut a).await,
        r#"{"event":"localroom","payload":1}"#
    );
    // b and d got nothing of the above: the next frame each sees is this one.
    c.node(2).broadcast("after", &0).unwrap();
    assert_eq!(next_text(&mut b).await, r#"{"event":"after","payload":0}"#);
    assert_eq!(next_text(&mut d).await, r#"{"event":"after","payload":0}"#);
}

#[tokio::test]
async fn every_send_path_crosses_nodes_msgpack() {
    every_send_path_crosses_nodes(Codec::MsgPack).await;
}

#[tokio::test]
async fn every_send_path_crosses_nodes_json() {
    every_send_path_crosses_nodes(Codec::Json).await;
}

/// The cross-node suite every bus runs (send paths, cross-server calls,
/// cluster queries, a node crashing), on the memory bus.
async fn cross_node_suite(codec: Codec) {
    cross_node::run_all(cross_node::on_memory(MemoryHub::new(), codec)).await;
}

#[tokio::test]
async fn cross_node_suite_msgpack() {
    cross_node_suite(Codec::MsgPack).await;
}

#[tokio::test]
async fn cross_node_suite_json() {
    cross_node_suite(Codec::Json).await;
}

async fn answer_with_name(c: &Cluster) {
    for (node, _) in &c.nodes {
        let name = node.server_name().to_owned();
        node.on_cross_server(
            "who",
            move |msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| {
                let name = name.clone();
                async move {
                    if let Some(r) = reply {
                        r.send(&json!({"from": name, "got": msg.payload})).unwrap();
                    }
                }
            },
        )
        .unwrap();
    }
}

#[tokio::test]
async fn cross_server_targeted_broadcast_and_except_self() {
    for codec in [Codec::MsgPack, Codec::Json] {
        let c = cluster(3, codec).await;
        answer_with_name(&c).await;
        // Targeted: one reply per target.
        let r = c
            .node(0)
            .emit_cross_server("who", &1)
            .unwrap()
            .to(["n2", "n3"])
            .collect()
            .await
            .unwrap();
        assert!(r.success);
        assert_eq!(r.responses.keys().collect::<Vec<_>>().len(), 2);
        assert_eq!(
            r.responses["n2"].payload,
            Some(json!({"from": "n2", "got": 1}))
        );
        // Targeted at itself only: handled locally.
        let r = c
            .node(0)
            .emit_cross_server("who", &2)
            .unwrap()
            .to(["n1"])
            .collect()
            .await
            .unwrap();
        assert!(r.success);
        assert!(r.responses.contains_key("n1"));
        // Broadcast expecting all three (self included).
        let r = c
            .node(1)
            .emit_cross_server("who", &3)
            .unwrap()
            .expect(3)
            .collect()
            .await
            .unwrap();
        assert!(r.success, "{r:?}");
        assert_eq!(r.responses.len(), 3);
        // except_self: only the two others answer.
        let r = c
            .node(1)
            .emit_cross_server("who", &4)
            .unwrap()
            .except_self()
            .expect(2)
            .collect()
            .await
            .unwrap();
        assert!(r.success);
        assert!(!r.responses.contains_key("n2"));
    }
}

#[tokio::test]
async fn cross_server_stream_gives_each_reply_then_ends() {
    let c = cluster(3, Codec::MsgPack).await;
    answer_with_name(&c).await;
    let mut call = c
        .node(0)
        .emit_cross_server("who", &1)
        .unwrap()
        .expect(3)
        .stream()
        .unwrap();
    let mut remaining = Vec::new();
    while let Some(item) = call.next().await {
        match item {
            CrossServerResponse::Reply { remaining: n, .. } => remaining.push(n),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    assert_eq!(c.node(0).pending_cross_server_calls(), 0);
}

/// On tokio's paused clock: the nodes talk over the in-memory bus only, so
/// the clock jumps straight to each call's timeout.
#[tokio::test(start_paused = true)]
async fn cross_server_partial_responses_at_timeout() {
    let c = cluster(3, Codec::MsgPack).await;
    // Only n2 answers.
    c.node(1)
        .on_cross_server(
            "q",
            |_m: crosswire::CrossServerMessage, r: Option<crosswire::CrossReply>| async move {
                r.unwrap().send(&"n2").unwrap()
            },
        )
        .unwrap();
    let r = bounded(
        c.node(0)
            .emit_cross_server("q", &1)
            .unwrap()
            .expect(3)
            .timeout(Duration::from_millis(200))
            .collect(),
    )
    .await
    .unwrap();
    assert!(!r.success);
    assert_eq!(r.unresponded_count, 2);
    assert_eq!(r.responses.len(), 1);
    let shape = serde_json::to_value(&r).unwrap();
    assert_eq!(shape["message"], "Cross-server callback timed out.");
    assert_eq!(shape["unrespondedCount"], 2);
    // Stream form: one reply, then the timeout item.
    let mut call = c
        .node(0)
        .emit_cross_server("q", &1)
        .unwrap()
        .expect(2)
        .timeout(Duration::from_millis(200))
        .stream()
        .unwrap();
    assert!(bounded(call.next()).await.unwrap().is_success());
    match bounded(call.next()).await.unwrap() {
        CrossServerResponse::Timeout { unresponded, .. } => assert_eq!(unresponded, 1),
        other => panic!("{other:?}"),
    }
    assert!(bounded(call.next()).await.is_none());
}

/// On tokio's paused clock (in-memory bus only).
#[tokio::test(start_paused = true)]
async fn defect_03_delete_cross_server_callback_really_cancels() {
    let c = cluster(2, Codec::MsgPack).await;
    let mut call = c
        .node(0)
        .emit_cross_server("nobody-answers", &1)
        .unwrap()
        .timeout(Duration::from_millis(100))
        .stream()
        .unwrap();
    let id = call.callback_id().to_owned();
    assert!(c.node(0).delete_cross_server_callback(&id));
    assert!(!c.node(0).delete_cross_server_callback(&id));
    // The stream ends without a timeout item, and nothing crashes later.
    assert!(bounded(call.next()).await.is_none());
    tokio::time::sleep(Duration::from_millis(150)).await; // past the old timer
    assert_eq!(c.node(0).pending_cross_server_calls(), 0);
}

#[tokio::test]
async fn membership_join_and_leave() {
    let c = cluster(3, Codec::MsgPack).await;
    wait_until(|| c.node(0).live_nodes() == ["n1", "n2", "n3"]).await;
    answer_with_name(&c).await;
    let r = c
        .node(0)
        .emit_cross_server("who", &1)
        .unwrap()
        .expect_all()
        .collect()
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(r.responses.len(), 3);
    c.node(2).shutdown(Duration::from_secs(1)).await;
    wait_until(|| c.node(0).live_nodes() == ["n1", "n2"]).await;
    let r = c
        .node(0)
        .emit_cross_server("who", &1)
        .unwrap()
        .expect_all()
        .collect()
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(r.responses.len(), 2);
}

#[tokio::test]
async fn namespace_subscriptions_follow_rooms_including_rejoin_after_last_leave() {
    let c = cluster(2, Codec::MsgPack).await;
    let n1 = c.node(0);
    assert!(!n1.subscribed_channels().contains(&"ws:chat".to_owned()));
    n1.join_room("chat", "r1", "a").unwrap();
    n1.ready().await;
    assert!(n1.subscribed_channels().contains(&"ws:chat".to_owned()));
    n1.leave_room("chat", "r1", "a").unwrap();
    n1.ready().await;
    assert!(!n1.subscribed_channels().contains(&"ws:chat".to_owned()));
    // Leave then join at once: must end subscribed.
    n1.join_room("chat", "r1", "a").unwrap();
    n1.leave_room("chat", "r1", "a").unwrap();
    n1.join_room("chat", "r1", "a").unwrap();
    n1.ready().await;
    assert!(n1.subscribed_channels().contains(&"ws:chat".to_owned()));
}

#[tokio::test]
async fn presets_are_never_auto_unsubscribed() {
    let c = cluster_with(1, Codec::MsgPack, |b| b.preset_room_namespaces(["lobby"])).await;
    let n1 = c.node(0);
    assert!(n1.subscribed_channels().contains(&"ws:lobby".to_owned()));
    n1.join_room("lobby", "r", "a").unwrap();
    n1.leave_room("lobby", "r", "a").unwrap();
    n1.ready().await;
    assert!(n1.subscribed_channels().contains(&"ws:lobby".to_owned()));
}

#[tokio::test]
async fn custom_channels_and_raw_publish() {
    let c = cluster_with(2, Codec::MsgPack, |b| b.custom_channels(["my:custom"])).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (node, _) in &c.nodes {
        let tx = tx.clone();
        let name = node.server_name().to_owned();
        node.set_custom_channel_handler(move |channel, value| {
            let tx = tx.clone();
            let name = name.clone();
            async move { tx.send((name, channel, value)).unwrap() }
        });
    }
    let msg = json!({"kind": "x", "n": -5, "f": 0.5});
    c.node(0).publish_raw("my:custom", &msg).unwrap();
    // Both nodes get it, the publisher too (no senderServer in it).
    let mut got = [
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
    ];
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0], ("n1".into(), "my:custom".into(), msg.clone()));
    assert_eq!(got[1].0, "n2");
    // A manual subscription works the same way.
    c.node(1).subscribe("other").await.unwrap();
    c.node(0)
        .publish_raw("other", &json!({"senderServer": "n1"}))
        .unwrap();
    c.node(0).publish_raw("other", &json!({"k": 1})).unwrap();
    let (name, channel, value) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((name.as_str(), channel.as_str()), ("n2", "other"));
    assert_eq!(value, json!({"senderServer": "n1"})); // not own for n2
    let (name, _, value) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((name.as_str(), value), ("n2", json!({"k": 1})));
    c.node(1).unsubscribe("other").await.unwrap();
    assert!(!c
        .node(1)
        .subscribed_channels()
        .contains(&"other".to_owned()));
}

#[tokio::test]
async fn server_only_node_answers_cross_server_events() {
    let hub = MemoryHub::new();
    let logic = Node::builder()
        .server_name("logic")
        .websocket(false)
        .bus(hub.bus())
        .build()
        .unwrap();
    logic
        .on_cross_server(
            "match",
            |m: crosswire::CrossServerMessage, r: Option<crosswire::CrossReply>| async move {
                r.unwrap().send(&json!({"matched": m.payload})).unwrap()
            },
        )
        .unwrap();
    let (ws_node, addr) = start_binding(Node::builder().server_name("ws1").bus(hub.bus())).await;
    logic.ready().await;
    ws_node.ready().await;
    assert!(!logic
        .subscribed_channels()
        .contains(&"ws:broadcast".to_owned()));
    // FAQ 1's chain: client -> ws node -> logic node -> back to the client.
    let n = ws_node.clone();
    ws_node
        .on(
            "findMatch",
            move |_s: crosswire::Socket, p: serde_json::Value, reply: Option<crosswire::Reply>| {
                let n = n.clone();
                async move {
                    let r = n
                        .emit_cross_server("match", &p)
                        .unwrap()
                        .to(["logic"])
                        .collect()
                        .await
                        .unwrap();
                    reply.unwrap().send(&r.responses["logic"].payload).unwrap();
                }
            },
        )
        .unwrap();
    let mut ws = connect_id(&ws_node, addr, "p1").await;
    send_text(
        &mut ws,
        r#"{"event":"findMatch","payload":{"mode":"duel"},"callbackId":"c1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":{"matched":{"mode":"duel"}},"callbackId":"c1"}"#
    );
}

#[tokio::test]
async fn garbage_on_the_bus_is_dropped_and_counted() {
    let hub = MemoryHub::new();
    let (node, addr) = start_binding(Node::builder().server_name("n1").bus(hub.bus())).await;
    let mut ws = connect_id(&node, addr, "a").await;
    node.join_room("chat", "r", "a").unwrap();
    node.ready().await;
    let stranger = hub.bus();
    use crosswire::bus::Bus;
    for channel in [
        "csbp:server_bridge",
        "ws:broadcast",
        "ws:private_socket",
        "ws:chat",
    ] {
        for junk in [&b"\xc1\xff"[..], b"", b"\x81\xa4data\x05", b"{\"data\":1}"] {
            let _ = stranger
                .publish(channel, bytes::Bytes::copy_from_slice(junk))
                .await;
        }
    }
    // A forged reply for an unknown callback id.
    let forged = crosswire::protocol::envelope::encode_bridge(
        &crosswire::protocol::envelope::BridgeMessage::Reply(
            crosswire::protocol::envelope::BridgeReply {
                sender_server: "evil".into(),
                callback_id: "n1-x-y-1".into(),
                payload: None,
            },
        ),
        None,
        Codec::MsgPack,
    )
    .unwrap();
    let _ = stranger.publish("csbp:server_bridge", forged.into()).await;
    wait_until(|| {
        node.stats().bus_dropped_invalid >= 16 && node.stats().cross_replies_unknown == 1
    })
    .await;
    node.broadcast("still", &1).unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"event":"still","payload":1}"#);
}

/// A node that dies without saying goodbye (no leave message) drops out of
/// `live_nodes` once `member_timeout` passes without an announcement.
#[tokio::test]
async fn a_silent_node_drops_out_after_the_member_timeout() {
    let hub = MemoryHub::new();
    let node = Node::builder()
        .server_name("n1")
        .bus(hub.bus())
        .membership(Duration::from_millis(50), Duration::from_millis(300))
        .build()
        .unwrap();
    node.ready().await;
    // A "node" that announces itself once, then goes silent (as if killed).
    let ghost = hub.bus();
    let announce = crosswire::protocol::envelope::encode_bridge(
        &crosswire::protocol::envelope::BridgeMessage::Event(
            crosswire::protocol::envelope::BridgeEvent {
                event: crosswire::cross_server::MEMBER_EVENT.into(),
                sender_server: Some("ghost".into()),
                payload: Some(json!({"v": 1})),
                target_server: vec![],
                callback_id: None,
                key_order: Default::default(),
            },
        ),
        None,
        Codec::MsgPack,
    )
    .unwrap();
    use crosswire::bus::Bus;
    ghost
        .publish("csbp:server_bridge", announce.into())
        .await
        .unwrap();
    wait_until(|| node.live_nodes() == ["ghost", "n1"]).await;
    let seen = std::time::Instant::now();
    wait_until(|| node.live_nodes() == ["n1"]).await;
    assert!(seen.elapsed() >= Duration::from_millis(200));
}

/// With a shared secret, nodes talk; unsigned, forged and replayed messages
/// are refused (a stranger with bus access can neither forge nor replay).
#[tokio::test]
async fn signed_bus_refuses_forged_and_replayed_messages() {
    use crosswire::bus::{Bus, BusMessage};
    let hub = MemoryHub::new();
    let (n1, _a1) = start_binding(
        Node::builder()
            .server_name("n1")
            .bus(hub.bus())
            .bus_secret("s3cret"),
    )
    .await;
    let (n2, a2) = start_binding(
        Node::builder()
            .server_name("n2")
            .bus(hub.bus())
            .bus_secret("s3cret"),
    )
    .await;
    n1.ready().await;
    n2.ready().await;
    let mut ws = connect_id(&n2, a2, "u").await;
    // A spy records what n1 publishes on the broadcast channel.
    let spy = hub.bus();
    let mut spy_rx = spy.take_incoming().unwrap();
    spy.subscribe("ws:broadcast").await.unwrap();
    n1.broadcast("news", &1).unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"event":"news","payload":1}"#);
    let captured: BusMessage = tokio::time::timeout(WAIT, spy_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Replaying the captured signed message is refused.
    spy.publish("ws:broadcast", captured.payload.clone())
        .await
        .unwrap();
    // An unsigned (original-format) message is refused.
    let unsigned = crosswire::protocol::envelope::encode_ws_route(
        &crosswire::protocol::envelope::WsRoute::Broadcast {
            data: crosswire::protocol::client::PushFrame::encode("forged", Some(&1)).unwrap(),
            sender_server: "n1".into(),
        },
        None,
        Codec::MsgPack,
    )
    .unwrap();
    spy.publish("ws:broadcast", unsigned.into()).await.unwrap();
    // A node with another secret cannot talk to them.
    let (other, _) = start_binding(
        Node::builder()
            .server_name("n3")
            .bus(hub.bus())
            .bus_secret("other"),
    )
    .await;
    other.ready().await;
    other.broadcast("intruder", &1).unwrap();
    wait_until(|| {
        let s = n2.stats();
        s.bus_dropped_replayed >= 1 && s.bus_dropped_unsigned >= 2
    })
    .await;
    n1.broadcast("after", &2).unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"event":"after","payload":2}"#);
}

/// On tokio's paused clock (in-memory bus only): a call that waited for its
/// timeout instead of succeeding at once would run into the bound first.
#[tokio::test(start_paused = true)]
async fn off_handler_removes_cross_server_handlers_and_a_call_with_nobody_to_ask_succeeds() {
    let c = cluster(1, Codec::MsgPack).await;
    let n1 = c.node(0);
    let id = n1
        .on_cross_server(
            "q",
            |_m: crosswire::CrossServerMessage, r: Option<crosswire::CrossReply>| async move {
                r.unwrap().send(&1).unwrap()
            },
        )
        .unwrap();
    let r = n1
        .emit_cross_server("q", &1)
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(r.success);
    assert!(n1.off_handler(id));
    assert!(!n1.off_handler(id));
    let r = bounded(
        n1.emit_cross_server("q", &1)
            .unwrap()
            .timeout(Duration::from_millis(100))
            .collect(),
    )
    .await
    .unwrap();
    assert!(!r.success, "the handler is gone, nobody answers");
    // Alone and except_self: nobody to wait for, success at once (no timeout).
    let r = bounded(
        n1.emit_cross_server("q", &1)
            .unwrap()
            .except_self()
            .expect_all()
            .timeout(Duration::from_secs(60))
            .collect(),
    )
    .await
    .unwrap();
    assert!(r.success && r.responses.is_empty());
}
