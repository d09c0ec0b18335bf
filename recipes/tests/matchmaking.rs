//! FAQ 1: client → WebSocket node → logic node → callback to the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_recipes::client::Player;
use crosswire_recipes::{bind_query_id, install_whoami, matchmaking, Backbone};
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn two_players_on_two_nodes_are_matched_by_the_logic_node() {
    let report = matchmaking::demo(&Backbone::memory(), WAIT).await.unwrap();
    assert_eq!(
        report.first_reply,
        json!({"status": "waiting", "mode": "ranked"})
    );
    assert_eq!(report.second_reply["status"], "matched");
    assert_eq!(report.second_reply["opponent"], "p1");
    assert_eq!(report.second_reply["matchId"], "gameServer-ranked-1");
    // The waiting player was told on its own node, by the logic node.
    assert_eq!(report.first_push["status"], "matched");
    assert_eq!(report.first_push["opponent"], "p2");
    assert_eq!(report.first_push["matchId"], report.second_reply["matchId"]);
}

#[tokio::test]
async fn the_client_gets_an_error_when_the_logic_node_is_missing() {
    let backbone = Backbone::memory();
    let ws = backbone.builder("ws1").await.unwrap().build().unwrap();
    bind_query_id(&ws);
    install_whoami(&ws).unwrap();
    matchmaking::install_gateway(&ws, "gameServer", Duration::from_millis(200)).unwrap();
    let addr = ws.listen("127.0.0.1:0").await.unwrap();
    let p = Player::connect(&format!("ws://{addr}"), "p1", WAIT)
        .await
        .unwrap();
    // The gateway answers before the client's own (longer) callback timeout.
    let reply = p
        .request(matchmaking::MATCH_REQUEST, &json!({"mode": "ranked"}), WAIT)
        .await
        .unwrap();
    assert_eq!(reply, Some(json!({"error": "matchmaking unavailable"})));
}
