//! FAQ 4 and 5: a Redis node added at runtime on every node (then the
//! original Redis node killed: traffic goes on through the new one), and a
//! WebSocket node joining a running cluster, on the in-memory bus and on
//! real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_recipes::client::Player;
use crosswire_recipes::scaling;
use crosswire_recipes::stats::{self, Expect};
use crosswire_recipes::{wait_for_live_nodes, Backbone};
use serde_json::json;
use support::*;

#[tokio::test]
async fn a_redis_node_added_at_runtime_carries_the_traffic_when_the_first_dies() {
    let mut r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let config = redis_config(&[&r1]);
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        nodes.push(scaling::redis_node(name, &config, WAIT).await.unwrap());
    }
    for (node, _, _) in &nodes {
        wait_for_live_nodes(node, 3, WAIT).await.unwrap();
    }
    let mut p2 = Player::connect(&format!("ws://{}", nodes[1].1), "p2", WAIT)
        .await
        .unwrap();

    let outcome = scaling::add_redis_everywhere(&nodes[0].0, &r2.url(), WAIT, 3)
        .await
        .unwrap();
    assert!(outcome.missing.is_empty(), "{outcome:?}");
    assert_eq!(outcome.confirmed.len(), 3);
    assert!(outcome.confirmed.values().all(|n| *n == 2), "{outcome:?}");
    for (_, _, bus) in &nodes {
        let status = bus.nodes();
        assert_eq!(status.len(), 2);
        assert!(status.iter().all(|n| n.publish_target));
    }
    // Asking again changes nothing (idempotent).
    let again = scaling::add_redis_everywhere(&nodes[0].0, &r2.url(), WAIT, 1)
        .await
        .unwrap();
    assert!(again.missing.is_empty());
    assert!(nodes.iter().all(|(_, _, bus)| bus.node_count() == 2));

    // The first Redis node dies: everything goes through the added one.
    r1.kill();
    for (_, _, bus) in &nodes {
        eventually(WAIT, "the added Redis node alone takes publishes", || {
            bus.nodes().iter().filter(|n| n.publish_target).count() == 1
        })
        .await;
    }
    nodes[0].0.broadcast("news", &json!({"via": "r2"})).unwrap();
    assert_eq!(
        p2.wait_push("news", WAIT).await.unwrap(),
        json!({"via": "r2"})
    );
    let summary = stats::cluster_summary(&nodes[2].0, Expect::Nodes(3), WAIT)
        .await
        .unwrap();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.total.connections, 1);
}

async fn a_node_joins_a_running_cluster(backbone: Backbone) {
    let demo = scaling::demo_join(&backbone, WAIT).await.unwrap();
    assert_eq!(demo.before, ["n1", "n2"]);
    assert_eq!(demo.after, ["n1", "n2", "n3"]);
    assert_eq!(demo.pushed, json!({"from": "n1"}));
    assert_eq!(demo.room_message["msg"], "hello from n3");
    assert!(demo.lobby.complete);
    assert_eq!(demo.lobby.total, 2);
    assert_eq!(demo.lobby.per_node.get("n3"), Some(&1));
}

#[tokio::test]
async fn a_node_joins_a_running_cluster_on_the_memory_bus() {
    a_node_joins_a_running_cluster(Backbone::memory()).await;
}

#[tokio::test]
async fn a_node_joins_a_running_cluster_on_two_redis_nodes() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    a_node_joins_a_running_cluster(Backbone::Redis(redis_config(&[&r1, &r2]))).await;
}
