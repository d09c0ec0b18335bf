//! The original's WebSocket + cross-server example: three WebSocket nodes,
//! a server-only boss pushing to everyone, to players and to a room, and
//! players spread over the nodes — on the in-memory bus and on real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::Node;
use crosswire_recipes::client::Player;
use crosswire_recipes::cluster::{self, Push};
use crosswire_recipes::Backbone;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const ROOMS: &[(&str, &str)] = &[
    ("3", "1000"),
    ("13", "1000"),
    ("20", "1000"),
    ("21", "1001"),
    ("37", "1002"),
];

async fn ws_nodes(backbone: &Backbone) -> (Vec<Node>, Vec<String>) {
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for name in ["ws1", "ws2", "ws3"] {
        let node = backbone
            .builder(name)
            .await
            .unwrap()
            .preset_room_namespaces([cluster::NAMESPACE])
            .build()
            .unwrap();
        cluster::install_ws_node(&node).unwrap();
        urls.push(format!(
            "ws://{}",
            node.listen("127.0.0.1:0").await.unwrap()
        ));
        bounded(node.ready()).await;
        nodes.push(node);
    }
    (nodes, urls)
}

/// Reads each player's `say` pushes up to the `done` marker and checks they
/// are exactly the pushes of `script` that reach it, in order.
async fn check_deliveries(players: &mut [Player], script: &[Push]) {
    for p in players.iter_mut() {
        let room = ROOMS.iter().find(|(id, _)| *id == p.id()).map(|(_, r)| *r);
        let expected: Vec<String> = script
            .iter()
            .filter(|push| push.reaches(p.id(), room) && push.msg() != "done")
            .map(|push| push.msg().to_owned())
            .collect();
        let mut got = Vec::new();
        loop {
            let payload = p.wait_push(cluster::SAY, WAIT).await.unwrap();
            let msg = payload["msg"].as_str().unwrap().to_owned();
            if msg == "done" {
                break;
            }
            got.push(msg);
        }
        assert_eq!(got, expected, "player {} (room {room:?})", p.id());
    }
}

async fn boss_reaches_every_node(backbone: Backbone) {
    let (nodes, urls) = ws_nodes(&backbone).await;
    let mut players = cluster::connect_clients(&urls, 40, ROOMS, WAIT)
        .await
        .unwrap();
    // Players are spread round-robin and report their node.
    assert_eq!(players[0].server(), Some("ws1"));
    assert_eq!(players[1].server(), Some("ws2"));
    assert_eq!(players[2].server(), Some("ws3"));

    let boss = backbone
        .builder("boss")
        .await
        .unwrap()
        .websocket(false)
        .build()
        .unwrap();
    bounded(boss.ready()).await;
    let mut script = cluster::original_script();
    script.push(Push::Broadcast { msg: "done".into() });
    let run = cluster::run_boss(&boss, &script, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(run.pushes, 5);
    check_deliveries(&mut players, &script).await;

    drop(players);
    for node in nodes.iter().chain([&boss]) {
        node.shutdown(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn boss_reaches_every_node_on_the_memory_bus() {
    boss_reaches_every_node(Backbone::memory()).await;
}

#[tokio::test]
async fn boss_reaches_every_node_on_redis() {
    let redis = RedisServer::start();
    boss_reaches_every_node(Backbone::Redis(redis_config(&[&redis]))).await;
}

/// The original's boss is a WebSocket client sending `command`s: that works too.
#[tokio::test]
async fn commands_from_a_client_push_across_nodes() {
    let backbone = Backbone::memory();
    let (_nodes, urls) = ws_nodes(&backbone).await;
    let mut players = cluster::connect_clients(&urls, 13, ROOMS, WAIT)
        .await
        .unwrap();
    let boss = Player::connect(&urls[0], "555", WAIT).await.unwrap();

    let commands = [
        json!({"action": "toPlayer", "msg": "Hello player 13 ", "toPlayerId": "13"}),
        json!({"action": "toPlayers", "msg": "group", "toPlayerIds": ["3", 10]}),
        json!({"action": "toRoom", "msg": "room", "roomId": 1000}),
        json!({"action": "broadcast", "msg": "done"}),
    ];
    for c in &commands {
        let reply = boss.request("command", c, WAIT).await.unwrap().unwrap();
        let action = c["action"].as_str().unwrap();
        assert_eq!(
            reply["msg"],
            format!("Message sent successfully [action:{action}] ")
        );
    }
    let unknown = boss
        .request("command", &json!({"action": "dance"}), WAIT)
        .await
        .unwrap();
    assert_eq!(unknown, Some(json!({"msg": "Unknown action type"})));

    let script: Vec<Push> = commands
        .iter()
        .map(|c| Push::from_command(c).unwrap())
        .collect();
    check_deliveries(&mut players, &script).await;

    // joinRoom without a room id fails politely.
    let reply = players[0]
        .request("joinRoom", &Value::Null, WAIT)
        .await
        .unwrap();
    assert_eq!(reply, Some(json!({"msg": "Failed to join the room"})));
}
