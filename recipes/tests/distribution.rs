//! FAQ 13: users sent to nodes by consistent hashing land on the node the
//! ring names, and the cluster reaches them there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_recipes::client::Player;
use crosswire_recipes::hashring::HashRing;
use crosswire_recipes::{cluster, Backbone};
use std::collections::HashMap;
use support::*;

#[tokio::test]
async fn players_connect_where_the_ring_says() {
    let backbone = Backbone::memory();
    let mut names = HashMap::new();
    let mut nodes = Vec::new();
    for name in ["ws1", "ws2", "ws3"] {
        let node = backbone.builder(name).await.unwrap().build().unwrap();
        cluster::install_ws_node(&node).unwrap();
        let url = format!("ws://{}", node.listen("127.0.0.1:0").await.unwrap());
        names.insert(url.clone(), name);
        nodes.push((node, url));
    }
    let ring = HashRing::new(nodes.iter().map(|(_, url)| url.clone()));

    let mut players = Vec::new();
    for i in 0..30 {
        let id = format!("user-{i}");
        let url = ring.node_for(&id).unwrap();
        let player = Player::connect(url, &id, WAIT).await.unwrap();
        assert_eq!(player.server(), Some(names[url]), "{id}");
        players.push(player);
    }
    // Every node got some of them.
    for (node, _) in &nodes {
        assert!(node.client_count() > 0, "{} got nobody", node.server_name());
    }
    // And any node reaches any of them.
    nodes[0].0.to_socket_id("user-7", "pm", &"hi").unwrap();
    assert_eq!(
        players[7].wait_push("pm", WAIT).await.unwrap(),
        serde_json::json!("hi")
    );
}
