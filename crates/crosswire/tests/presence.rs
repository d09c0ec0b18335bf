//! Presence, one session per id and cluster queries on the in-memory bus
//! (the embedded default), over real WebSocket connections: the members of a
//! room seen from every node, a node that shuts down taking its members
//! with it, a second login closing the first with 4012, queries merging
//! every node's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::bus::MemoryHub;
use crosswire::Node;
use std::net::SocketAddr;
use std::time::Duration;

async fn nodes(n: usize) -> Vec<(Node, SocketAddr)> {
    let hub = MemoryHub::new();
    let mut nodes = Vec::new();
    for i in 1..=n {
        let b = Node::builder()
            .server_name(format!("n{i}"))
            .bus(hub.bus())
            .presence("chat")
            .one_session_per_id(true)
            .membership(Duration::from_millis(50), Duration::from_millis(400));
        nodes.push(start_binding(b).await);
    }
    for (node, _) in &nodes {
        node.ready().await;
    }
    for (node, _) in &nodes {
        wait_until(|| node.live_nodes().len() == n).await;
    }
    nodes
}

#[tokio::test]
async fn room_members_are_known_on_every_node_and_leave_with_their_node() {
    let ns = nodes(3).await;
    let _ann = connect_id(&ns[0].0, ns[0].1, "ann").await;
    let _bob = connect_id(&ns[1].0, ns[1].1, "bob").await;
    ns[0].0.join_room("chat", "r1", "ann").unwrap();
    ns[1].0.join_room("chat", "r1", "bob").unwrap();
    for (node, _) in &ns {
        wait_until(|| node.presence_count("chat", "r1") == 2).await;
    }
    let counts = ns[2].0.query().room_counts("chat").await.unwrap();
    assert!(!counts.partial);
    assert_eq!(counts.value["r1"], 2);
    // n2 shuts down: its member leaves everywhere at once (its goodbye).
    ns[1].0.shutdown(Duration::from_millis(100)).await;
    for (node, _) in [&ns[0], &ns[2]] {
        wait_until(|| node.presence_count("chat", "r1") == 1).await;
    }
    assert_eq!(ns[2].0.presence_members("chat", "r1")[0].id, "ann");
}

#[tokio::test]
async fn a_second_login_on_another_node_closes_the_first_with_4012() {
    let ns = nodes(2).await;
    let mut first = connect_id(&ns[0].0, ns[0].1, "u1").await;
    let _second = connect_id(&ns[1].0, ns[1].1, "u1").await;
    assert_eq!(closed(&mut first).await, Some(4012));
    wait_until(|| ns[0].0.get_socket("u1").is_none()).await;
    let located = ns[0].0.query().locate("u1").await.unwrap();
    assert_eq!(located.value, ["n2"]);
}
