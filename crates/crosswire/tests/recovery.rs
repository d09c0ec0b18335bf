//! Missed-message recovery over real WebSocket connections: positions on
//! room messages for opted-in clients (others get the original's frames,
//! byte for byte), the replay of what a client missed when it comes back (to
//! the same node or another), and the cases where recovery must say it is
//! incomplete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::bus::MemoryHub;
use crosswire::history::HistoryConfig;
use crosswire::{Node, NodeBuilder};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// A node keeping the history of namespace `chat`; a connection with `?id=`
/// is bound to it and joins room `r1`.
async fn node(builder: NodeBuilder) -> (Node, SocketAddr) {
    let (node, addr) = start(builder).await;
    node.on_connection(|socket, hs| async move {
        let (Some(node), Some(id)) = (socket.node(), hs.param("id")) else {
            return;
        };
        node.set_user_socket(id, &socket).unwrap();
        node.join_room("chat", "r1", id).unwrap();
    });
    (node, addr)
}

fn chat(builder: NodeBuilder, config: HistoryConfig) -> NodeBuilder {
    builder.history("chat", config)
}

/// Nodes `n1`, `n2`, ... keeping the history of `chat` on one in-memory bus.
async fn cluster(hub: &MemoryHub, count: usize) -> Vec<(Node, SocketAddr)> {
    let mut nodes = Vec::new();
    for i in 1..=count {
        let builder = Node::builder().server_name(format!("n{i}")).bus(hub.bus());
        nodes.push(node(chat(builder, HistoryConfig::default())).await);
    }
    nodes
}

fn resume(epoch: &str, offset: u64) -> String {
    percent_encode(&json!([["chat", "r1", epoch, offset]]).to_string())
}

/// Connects an opted-in client as `id` and reads its `_cw_joined` frame.
async fn join(node: &Node, addr: SocketAddr, id: &str, resume: Option<String>) -> (Ws, Value) {
    let mut path = format!("?id={id}&cwRecovery=1");
    if let Some(r) = resume {
        path.push_str("&cwResume=");
        path.push_str(&r);
    }
    let mut ws = connect(addr, &path).await;
    wait_until(|| node.get_socket(id).is_some()).await;
    let mut recovered = Vec::new();
    loop {
        let frame = next_json(&mut ws).await;
        if frame["event"] == "_cw_joined" {
            let mut joined = frame["payload"].clone();
            joined["frames"] = Value::Array(recovered);
            return (ws, joined);
        }
        recovered.push(frame);
    }
}

async fn send(node: &Node, n: u64) {
    node.to_room("chat", "r1").emit("m", &n).unwrap();
}

/// Drops a client's connection and waits until its node let go of its id.
async fn drop_client(node: &Node, ws: Ws, id: &str) {
    drop(ws);
    wait_until(|| node.get_socket(id).is_none()).await;
}

#[tokio::test]
async fn an_opted_in_client_gets_what_it_missed_once_in_order_and_others_see_the_original_frames() {
    let (node, addr) = node(chat(Node::builder(), HistoryConfig::default())).await;
    let mut plain = connect_id(&node, addr, "p").await;
    let (mut a, joined) = join(&node, addr, "a", None).await;
    assert_eq!(joined["recovery"], "none");
    assert_eq!(joined["offset"], 0);
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        send(&node, n).await;
    }
    for n in 1..=3u64 {
        assert_eq!(
            next_text(&mut plain).await,
            format!(r#"{{"event":"m","payload":{n}}}"#)
        );
        assert_eq!(
            next_text(&mut a).await,
            format!(
                r#"{{"event":"m","payload":{n},"cwPos":{{"ns":"chat","room":"r1","epoch":"{epoch}","offset":{n}}}}}"#
            )
        );
    }
    drop_client(&node, a, "a").await;
    for n in 4..=6 {
        send(&node, n).await;
    }
    let (mut a, joined) = join(&node, addr, "a", Some(resume(&epoch, 3))).await;
    assert_eq!(joined["recovery"], "complete", "{joined}");
    assert_eq!(joined["recovered"], 3);
    assert_eq!(joined["offset"], 6);
    let frames = joined["frames"].as_array().unwrap();
    let payloads: Vec<_> = frames.iter().map(|f| f["payload"].clone()).collect();
    assert_eq!(payloads, [json!(4), json!(5), json!(6)]);
    assert!(frames.iter().all(|f| f["cwRecovered"] == true));
    send(&node, 7).await;
    let live = next_json(&mut a).await;
    assert_eq!(
        (live["payload"].clone(), live["cwPos"]["offset"].clone()),
        (json!(7), json!(7))
    );
    assert!(live.get("cwRecovered").is_none());
    // The plain client got every message once, as the original would send it.
    for n in 4..=7u64 {
        assert_eq!(
            next_text(&mut plain).await,
            format!(r#"{{"event":"m","payload":{n}}}"#)
        );
    }
    nothing_more(&mut a).await;
    nothing_more(&mut plain).await;
}

#[tokio::test]
async fn a_client_that_moves_to_another_node_recovers_messages_sent_from_both() {
    let hub = MemoryHub::new();
    let mut nodes = cluster(&hub, 2).await.into_iter();
    let (n1, addr1) = nodes.next().unwrap();
    let (n2, addr2) = nodes.next().unwrap();
    // A member on each node, so that both subscribe to the namespace.
    let _p1 = connect_id(&n1, addr1, "p1").await;
    let _p2 = connect_id(&n2, addr2, "p2").await;
    n1.ready().await;
    n2.ready().await;
    let (a, joined) = join(&n1, addr1, "a", None).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    drop_client(&n1, a, "a").await;
    for n in 1..=20 {
        send(if n % 2 == 0 { &n1 } else { &n2 }, n).await;
    }
    let (mut a, joined) = join(&n2, addr2, "a", Some(resume(&epoch, 0))).await;
    assert_eq!(joined["recovery"], "complete", "{joined}");
    let got: Vec<u64> = joined["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["payload"].as_u64().unwrap())
        .collect();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    send(&n1, 21).await;
    assert_eq!(next_json(&mut a).await["cwPos"]["offset"], 21);
    nothing_more(&mut a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_absence_replays_at_the_clients_pace_in_order_with_live_messages_after() {
    // 5 s away from a 1,000 msgs/s room: 5,000 messages to replay, five
    // times the outbound queue's 1,024 frames; more are sent while it
    // replays. Written all at once they would close the socket as a slow
    // consumer (4003).
    let config = HistoryConfig::new(20_000, Duration::from_secs(60));
    let (node, addr) = node(chat(Node::builder(), config)).await;
    let (a, joined) = join(&node, addr, "a", None).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    drop_client(&node, a, "a").await;
    for n in 1..=5_000 {
        send(&node, n).await;
    }
    let sender = {
        let node = node.clone();
        tokio::spawn(async move {
            for n in 5_001..=6_000u64 {
                send(&node, n).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let (mut a, joined) = join(&node, addr, "a", Some(resume(&epoch, 0))).await;
    assert_eq!(joined["recovery"], "complete", "{}", joined["recovery"]);
    let frames = joined["frames"].as_array().unwrap();
    assert!(frames.len() >= 5_000, "{}", frames.len());
    assert_eq!(joined["recovered"], frames.len());
    assert_eq!(joined["offset"], frames.len());
    let mut expected = 1u64;
    for f in frames {
        assert_eq!(f["payload"], expected);
        assert_eq!(f["cwPos"]["offset"], expected);
        expected += 1;
    }
    sender.await.unwrap();
    while expected <= 6_000 {
        let live = next_json(&mut a).await;
        assert_eq!(live["payload"], expected, "{live}");
        assert!(live.get("cwRecovered").is_none());
        expected += 1;
    }
    nothing_more(&mut a).await;
}

#[tokio::test]
async fn messages_lost_on_the_bus_are_filled_in_from_the_history_when_the_next_arrives() {
    // A receive queue of 4 messages: a burst overflows it and the rest is
    // dropped (and counted) on the way to n2.
    let hub = MemoryHub::with_limits(4, 1 << 20);
    let mut nodes = cluster(&hub, 2).await.into_iter();
    let (n1, _) = nodes.next().unwrap();
    let (n2, addr2) = nodes.next().unwrap();
    let (mut a, _) = join(&n2, addr2, "a", None).await;
    n2.ready().await;
    // No await point in the burst: n2 reads nothing until it is over.
    for n in 1..=50u64 {
        n1.to_room("chat", "r1").emit("m", &n).unwrap();
    }
    for expected in 1..=4u64 {
        assert_eq!(next_json(&mut a).await["payload"], expected);
    }
    send(&n1, 51).await;
    for expected in 5..=51u64 {
        let frame = next_json(&mut a).await;
        assert_eq!(
            (frame["payload"].clone(), frame["cwPos"]["offset"].clone()),
            (json!(expected), json!(expected))
        );
    }
    nothing_more(&mut a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_two_nodes_reach_an_opted_in_client_on_a_third_in_order_once() {
    let hub = MemoryHub::new();
    let mut nodes = cluster(&hub, 3).await.into_iter();
    let (n1, _) = nodes.next().unwrap();
    let (n2, _) = nodes.next().unwrap();
    let (n3, addr3) = nodes.next().unwrap();
    let (mut a, _) = join(&n3, addr3, "a", None).await;
    n3.ready().await;
    const EACH: u64 = 500;
    let senders = [n1, n2].map(|node| {
        tokio::spawn(async move {
            for i in 0..EACH {
                send(&node, i).await;
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    });
    for sender in senders {
        sender.await.unwrap();
    }
    for expected in 1..=2 * EACH {
        let frame = next_json(&mut a).await;
        assert_eq!(frame["cwPos"]["offset"], expected, "{frame}");
    }
    nothing_more(&mut a).await;
}

#[tokio::test]
async fn recovery_is_incomplete_when_the_history_no_longer_holds_what_was_missed() {
    let config = HistoryConfig::new(2, Duration::from_secs(60));
    let (node, addr) = node(chat(Node::builder(), config)).await;
    let (a, joined) = join(&node, addr, "a", None).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    drop_client(&node, a, "a").await;
    for n in 1..=5 {
        send(&node, n).await;
    }
    // Away for 5 messages, the room keeps 2: nothing is sent again.
    let (a, joined) = join(&node, addr, "a", Some(resume(&epoch, 0))).await;
    assert_eq!(
        (joined["recovery"].clone(), joined["reason"].clone()),
        (json!("incomplete"), json!("too_old"))
    );
    assert_eq!(joined["frames"], json!([]));
    assert_eq!(joined["offset"], 5);
    drop_client(&node, a, "a").await;
    // A position of another epoch (a history that was lost) means nothing.
    let (a, joined) = join(&node, addr, "a", Some(resume("0123456789abcdef", 5))).await;
    assert_eq!(
        (joined["recovery"].clone(), joined["reason"].clone()),
        (json!("incomplete"), json!("epoch_changed"))
    );
    assert_eq!(joined["frames"], json!([]));
    // Exactly at the window's edge: 4 and 5 are held, so from 3 it recovers.
    drop(a);
    wait_until(|| node.get_socket("a").is_none()).await;
    let (mut a2, joined) = join(&node, addr, "a", Some(resume(&epoch, 3))).await;
    assert_eq!(joined["recovery"], "complete");
    assert_eq!(joined["recovered"], 2);
    nothing_more(&mut a2).await;
    let stats = node.stats();
    assert_eq!(stats.recoveries_complete, 1);
    assert_eq!(stats.recoveries_incomplete, 2);
}

#[tokio::test]
async fn excluded_ids_do_not_get_the_message_back_on_recovery() {
    let (node, addr) = node(chat(Node::builder(), HistoryConfig::default())).await;
    let (a, joined) = join(&node, addr, "a", None).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    drop_client(&node, a, "a").await;
    node.to_room("chat", "r1")
        .except(["a"])
        .emit("m", &1)
        .unwrap();
    send(&node, 2).await;
    let (_a, joined) = join(&node, addr, "a", Some(resume(&epoch, 0))).await;
    let payloads: Vec<_> = joined["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["payload"].clone())
        .collect();
    assert_eq!(payloads, [json!(2)]);
}

#[tokio::test]
async fn a_node_with_history_refuses_a_bus_that_keeps_none() {
    struct NoHistory;
    impl crosswire::bus::Bus for NoHistory {
        fn publish(
            &self,
            _: &str,
            _: bytes::Bytes,
        ) -> futures_util::future::BoxFuture<'static, Result<(), crosswire::bus::BusError>>
        {
            Box::pin(async { Ok(()) })
        }
        fn subscribe(
            &self,
            _: &str,
        ) -> futures_util::future::BoxFuture<'static, Result<(), crosswire::bus::BusError>>
        {
            Box::pin(async { Ok(()) })
        }
        fn unsubscribe(
            &self,
            _: &str,
        ) -> futures_util::future::BoxFuture<'static, Result<(), crosswire::bus::BusError>>
        {
            Box::pin(async { Ok(()) })
        }
        fn take_incoming(&self) -> Option<tokio::sync::mpsc::Receiver<crosswire::bus::BusMessage>> {
            None
        }
    }
    let built = Node::builder()
        .bus(NoHistory)
        .history("chat", HistoryConfig::default())
        .build();
    assert!(
        matches!(&built, Err(crosswire::Error::Config(m)) if m.contains("history")),
        "{built:?}"
    );
}
