//! Presence, one session per id and cluster-wide queries on real Redis
//! servers, with real WebSocket clients: members of a room seen from every
//! node with join and leave events, a second login kicking the first with
//! 4012 (and simultaneous logins ending with one session, the same
//! everywhere), and queries that merge every node's answer exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::Node;
use crosswire_redis::{RedisBus, Strategy};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const LIMIT: Duration = Duration::from_secs(15);

/// Node `name` on the Redis servers, with presence on namespace `chat` and
/// one session per id; a connection with `?id=` is bound (with `?name=` as
/// its info) and joins room `r1`.
async fn node(name: &str, servers: &[&RedisServer]) -> (Node, SocketAddr, RedisBus) {
    let mut cfg = config(servers, Strategy::RoundRobin);
    cfg.server_name = Some(name.to_owned());
    let bus = support::connect(cfg).await;
    let node = Node::builder()
        .server_name(name)
        .bus(bus.clone())
        .membership(Duration::from_millis(100), Duration::from_millis(1000))
        .presence("chat")
        .one_session_per_id(true)
        .build()
        .unwrap();
    let n = node.clone();
    node.on_connection(move |socket, hs| {
        let n = n.clone();
        async move {
            if let Some(id) = hs.param("id") {
                if let Some(name) = hs.param("name") {
                    socket.set_info(&json!({ "name": name })).unwrap();
                }
                n.set_user_socket(id, &socket).unwrap();
                if hs.param("room") != Some("no") {
                    n.join_room("chat", "r1", id).unwrap();
                }
            }
        }
    });
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    within(LIMIT, node.ready()).await;
    (node, addr, bus)
}

async fn cluster(servers: &[&RedisServer], count: usize) -> Vec<(Node, SocketAddr, RedisBus)> {
    let mut nodes = Vec::new();
    for i in 1..=count {
        nodes.push(node(&format!("n{i}"), servers).await);
    }
    for (n, _, _) in &nodes {
        eventually(LIMIT, "every node sees the others", || {
            n.live_nodes().len() == count
        })
        .await;
    }
    nodes
}

/// The next frame of `event`, skipping others.
async fn next_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let f = next_json(ws).await;
        if f["event"] == event {
            return f["payload"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_members_are_seen_from_every_node_with_join_and_leave_events() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let nodes = cluster(&[&r1, &r2], 3).await;
    let a1 = nodes[0].1;
    let a2 = nodes[1].1;
    // Ann on n1 asks for presence; Bob is on n2.
    let mut ann = ws::connect(a1, "?id=ann&name=Ann&cwPresence=1").await;
    let state = next_event(&mut ann, "_cw_presence_state").await;
    assert_eq!(state["room"], "r1");
    let bob = ws::connect(a2, "?id=bob&name=Bob").await;
    let change = next_event(&mut ann, "_cw_presence").await;
    assert_eq!(change["op"], "join", "{change}");
    assert_eq!(
        change["member"],
        json!({"id": "bob", "node": "n2", "info": {"name": "Bob"}})
    );
    for (n, _, _) in &nodes {
        eventually(LIMIT, "both members everywhere", || {
            n.presence_count("chat", "r1") == 2
        })
        .await;
    }
    let members = nodes[2].0.presence_members("chat", "r1");
    let seen: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.id.as_str(), m.node.as_str()))
        .collect();
    assert_eq!(seen, [("ann", "n1"), ("bob", "n2")]);
    // Bob's connection ends: every node drops him, Ann is told.
    drop(bob);
    let change = next_event(&mut ann, "_cw_presence").await;
    assert_eq!(
        (change["op"].as_str(), change["member"]["id"].as_str()),
        (Some("leave"), Some("bob"))
    );
    for (n, _, _) in &nodes {
        eventually(LIMIT, "bob gone everywhere", || {
            n.presence_count("chat", "r1") == 1
        })
        .await;
    }
    // A node that starts later learns the members at once.
    let (n4, _, _b4) = node("n4", &[&r1, &r2]).await;
    eventually(LIMIT, "the newcomer knows ann", || {
        n4.presence_count("chat", "r1") == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_elsewhere_closes_the_first_with_4012() {
    let r1 = RedisServer::start();
    let nodes = cluster(&[&r1], 2).await;
    let (n1, a1) = (&nodes[0].0, nodes[0].1);
    let (n2, a2) = (&nodes[1].0, nodes[1].1);
    let mut first = ws::connect(a1, "?id=u1&room=no").await;
    eventually(LIMIT, "bound on n1", || n1.get_socket("u1").is_some()).await;
    let _second = ws::connect(a2, "?id=u1&room=no").await;
    assert_eq!(closed(&mut first).await, Some(4012));
    eventually(LIMIT, "unbound on n1", || n1.get_socket("u1").is_none()).await;
    assert!(n2.get_socket("u1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_logins_on_two_nodes_end_with_one_session_the_same_everywhere() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let nodes = cluster(&[&r1, &r2], 2).await;
    let (n1, a1) = (nodes[0].0.clone(), nodes[0].1);
    let (n2, a2) = (nodes[1].0.clone(), nodes[1].1);
    const USERS: usize = 300;
    let mut tasks = Vec::new();
    for (addr, tag) in [(a1, 1), (a2, 2)] {
        tasks.push(tokio::spawn(async move {
            let mut conns = Vec::new();
            for u in 0..USERS {
                conns.push((
                    u,
                    tag,
                    ws::connect(addr, &format!("?id=u{u}&room=no")).await,
                ));
            }
            conns
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.extend(t.await.unwrap());
    }
    // Settle: every user has exactly one bound socket in the cluster.
    eventually(LIMIT, "one session per user", || {
        (0..USERS).all(|u| {
            let id = format!("u{u}");
            n1.get_socket(&id).is_some() as u8 + n2.get_socket(&id).is_some() as u8 == 1
        })
    })
    .await;
    // The sockets that lost were closed with 4012, and only those.
    let mut kept = HashSet::new();
    let mut open = Vec::new();
    for (u, tag, mut ws) in conns {
        let id = format!("u{u}");
        let holder = if n1.get_socket(&id).is_some() { 1 } else { 2 };
        if holder == tag {
            kept.insert(u);
            open.push(ws);
        } else {
            assert_eq!(closed(&mut ws).await, Some(4012), "u{u} on n{tag}");
        }
    }
    assert_eq!(kept.len(), USERS);
    // Both nodes agree on where each user is.
    let located = n2.query().locate("u7").await.unwrap();
    assert!(!located.partial);
    assert_eq!(located.value.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_query_over_three_nodes_returns_the_exact_set() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let nodes = cluster(&[&r1, &r2], 3).await;
    let mut expected = HashSet::new();
    for i in 0..10_000 {
        let (n, _, _) = &nodes[i % 3];
        let id = format!("m{i}");
        n.join_room("game", "big", &id).unwrap();
        expected.insert((id, n.server_name().to_owned()));
    }
    let answer = nodes[0]
        .0
        .query()
        .timeout(Duration::from_secs(5))
        .room_sockets("game", "big")
        .await
        .unwrap();
    assert!(!answer.partial, "{:?}", answer.missing);
    assert_eq!(answer.answered, ["n1", "n2", "n3"]);
    let got: HashSet<(String, String)> = answer.value.into_iter().map(|s| (s.id, s.node)).collect();
    assert_eq!(got, expected);
    let counts = nodes[1].0.query().room_counts("game").await.unwrap();
    assert_eq!(counts.value["big"], 10_000);
}
