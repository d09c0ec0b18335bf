//! Every send path and every room query over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::protocol::client::PushFrame;
use crosswire::{Match, Node, RoomSend};
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn broadcast_reaches_every_socket_bound_or_not() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut a = connect_id(&node, addr, "a").await;
    let mut b = connect_id(&node, addr, "b").await;
    node.broadcast("news", &json!({"n": 1})).unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await, r#"{"event":"news","payload":{"n":1}}"#);
    }
    node.broadcast_local("x", &1).unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"x","payload":1}"#);
    node.broadcast_frame(&PushFrame::encode::<()>("bc", None).unwrap(), false);
    assert_eq!(next_text(&mut a).await, r#"{"event":"bc"}"#);
    assert_eq!(next_text(&mut b).await, r#"{"event":"x","payload":1}"#);
}

#[tokio::test]
async fn to_socket_id_and_ids_reach_only_their_targets() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut a = connect_id(&node, addr, "a").await;
    let mut b = connect_id(&node, addr, "b").await;
    let mut c = connect_id(&node, addr, "c").await;
    node.to_socket_id("b", "pm", &"hello").unwrap();
    assert_eq!(
        next_text(&mut b).await,
        r#"{"event":"pm","payload":"hello"}"#
    );
    node.to_socket_ids(&["a", "c", "", "ghost"], "pm", &[1, 2])
        .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"pm","payload":[1,2]}"#);
    assert_eq!(next_text(&mut c).await, r#"{"event":"pm","payload":[1,2]}"#);
    // b got nothing more: its next frame is the heartbeat echo.
    sync(&mut b).await;
    assert!(node.to_socket_id("", "pm", &1).is_err());
    assert!(node.to_socket_id("a", "", &1).is_err());
}

#[tokio::test]
async fn broadcast_to_room_with_exclusions_local_only_and_destroy() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut a = connect_id(&node, addr, "a").await;
    let mut b = connect_id(&node, addr, "b").await;
    let mut c = connect_id(&node, addr, "c").await;
    node.join_room("chat", "r1", "a").unwrap();
    node.join_room("chat", "r1", "b").unwrap();
    node.join_room("chat", "r2", "c").unwrap();
    node.broadcast_to_room(
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
    sync(&mut b).await;
    sync(&mut c).await;
    node.broadcast_to_room(
        "chat",
        "r1",
        "end",
        &1,
        RoomSend::new().local_only().destroy(),
    )
    .unwrap();
    assert_eq!(next_text(&mut a).await, r#"{"event":"end","payload":1}"#);
    assert_eq!(next_text(&mut b).await, r#"{"event":"end","payload":1}"#);
    assert_eq!(node.room_ids("chat", Match::Exact), vec!["r2"]);
    assert!(!node.is_joined_room("a", "chat", None));
}

#[tokio::test]
async fn long_exclusion_lists_are_exact_not_substring() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut ws = connect_id(&node, addr, "u1").await;
    node.join_room("g", "1", "u1").unwrap();
    // "u10".."u19" contain "u1" as a substring; none of them is "u1".
    let exclude: Vec<String> = (10..20).map(|i| format!("u{i}")).collect();
    node.broadcast_to_room("g", "1", "e", &1, RoomSend::new().exclude(exclude))
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"event":"e","payload":1}"#);
}

#[tokio::test]
async fn every_room_query() {
    let node = Node::builder().build().unwrap();
    node.join_room("game", "g1", "a").unwrap();
    node.join_room("game", "g1", "b").unwrap();
    node.join_room("game", "g2", "a").unwrap();
    node.join_room("game2", "x", "c").unwrap();
    node.join_room("chat", "c1", "a").unwrap();

    assert_eq!(
        node.socket_count_in_room("game", Some("g1"), Match::Exact),
        2
    );
    assert_eq!(
        node.socket_count_in_room("game", Some("g"), Match::Prefix),
        3
    );
    assert_eq!(node.socket_count_in_room("game", None, Match::Exact), 3);
    assert_eq!(node.socket_count_in_room("nope", None, Match::Exact), 0);

    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    assert_eq!(
        node.room_socket_ids("game", Some("g1"), Match::Exact),
        ids(&["a", "b"])
    );
    assert_eq!(
        node.room_socket_ids("game", None, Match::Exact),
        ids(&["a", "b"])
    );
    assert!(node.room_socket_ids("nope", None, Match::Exact).is_empty());

    let joined = node.joined_rooms("a", None).unwrap();
    assert_eq!(joined["game"], vec!["g1", "g2"]);
    assert_eq!(joined["chat"], vec!["c1"]);
    let joined = node.joined_rooms("a", Some("ga")).unwrap();
    assert_eq!(joined.keys().collect::<Vec<_>>(), vec!["game"]);
    assert!(node.joined_rooms("", None).is_err());

    assert!(node.is_joined_room("a", "game", Some("g2")));
    assert!(!node.is_joined_room("b", "game", Some("g2")));
    assert!(node.is_joined_room("b", "game", None));
    assert!(!node.is_joined_room("a", "gam", None)); // exact namespace, not prefix

    assert_eq!(node.room_count("game", Match::Exact), 2);
    assert_eq!(node.room_count("game", Match::Prefix), 3);
    assert_eq!(node.room_ids("game", Match::Exact), vec!["g1", "g2"]);
    assert_eq!(node.room_ids("game", Match::Prefix), vec!["g1", "g2", "x"]);

    node.leave_room("game", "g1", "a").unwrap();
    assert_eq!(
        node.socket_count_in_room("game", Some("g1"), Match::Exact),
        1
    );
    node.remove_room("game", "g1");
    assert_eq!(node.room_ids("game", Match::Exact), vec!["g2"]);
    assert!(node.join_room("", "r", "a").is_err());
    assert!(node.join_room("ns", "", "a").is_err());
    assert!(node.join_room("ns", "r", "").is_err());
}

#[tokio::test]
async fn namespaces_colliding_with_internal_channels_are_refused() {
    let node = Node::builder().build().unwrap();
    for ns in [
        "broadcast",
        "private_socket",
        "ws:broadcast",
        "ws:private_socket",
    ] {
        assert!(node.join_room(ns, "r", "a").is_err(), "{ns}");
        assert!(
            node.broadcast_to_room(ns, "r", "e", &1, RoomSend::new())
                .is_err(),
            "{ns}"
        );
    }
}

#[tokio::test]
async fn remove_user_socket_leaves_rooms_and_unbinds() {
    let (node, addr) = start_binding(Node::builder()).await;
    let _ws = connect_id(&node, addr, "a").await;
    node.join_room("chat", "r1", "a").unwrap();
    assert_eq!(node.client_count(), 1);
    node.remove_user_socket("a").unwrap();
    assert_eq!(node.client_count(), 0);
    assert!(node.get_socket("a").is_none());
    assert!(node.room_namespaces().is_empty());
    // Calling it again (e.g. from a close handler) is harmless.
    node.remove_user_socket("a").unwrap();
}
