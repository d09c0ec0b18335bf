//! The original's cross-server example: server-only nodes answering `say`,
//! and a sender using every form of cross-server call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::{CrossServerResponse, Node};
use crosswire_recipes::{cross_pair, wait_for_nodes, Backbone};
use serde_json::json;
use std::time::Duration;
use support::*;
use tokio::sync::mpsc;

/// On tokio's paused clock: the nodes meet on the in-memory bus, so the
/// clock jumps straight to the timeout of the call to a missing target.
#[tokio::test(start_paused = true)]
async fn the_sender_gets_every_result_shape() {
    let backbone = Backbone::memory();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for name in ["serverA", "serverB"] {
        let node = backbone
            .builder(name)
            .await
            .unwrap()
            .websocket(false)
            .build()
            .unwrap();
        cross_pair::install_say(&node).unwrap();
        // Observe deliveries without replying (a reply would count).
        let tx = seen_tx.clone();
        node.on_cross_server(
            cross_pair::SAY,
            move |node: Node, msg: crosswire::CrossServerMessage| {
                let me = node.server_name().to_owned();
                let _ = tx.send((me, msg.payload, msg.callback_id.is_some()));
                async {}
            },
        )
        .unwrap();
        servers.push(node);
    }
    let sender: Node = backbone
        .builder("senderA")
        .await
        .unwrap()
        .websocket(false)
        .build()
        .unwrap();
    cross_pair::install_say(&sender).unwrap();
    let names = vec!["serverA".to_owned(), "serverB".to_owned()];
    wait_for_nodes(&sender, &names, WAIT).await.unwrap();

    let report = bounded(cross_pair::run_sender(
        &sender,
        &names,
        WAIT,
        Duration::from_millis(300),
    ))
    .await
    .unwrap();

    // 1. The fire-and-forget broadcast reached both servers, without a reply
    //    handle (deliveries of the later steps are observed too: skip them).
    let first_payload = json!({"content": "Hi everyone, I am senderA"});
    let mut reached = Vec::new();
    while reached.len() < 2 {
        let (server, payload, wants_reply) = bounded(seen.recv()).await.unwrap();
        if payload == first_payload {
            assert!(!wants_reply);
            reached.push(server);
        }
    }
    reached.sort();
    assert_eq!(reached, ["serverA", "serverB"]);

    // 2. Targeted: one reply from serverA, nothing more expected.
    assert_eq!(report.targeted.len(), 1);
    match &report.targeted[0] {
        CrossServerResponse::Reply { data, remaining } => {
            assert_eq!(data.sender_server, "serverA");
            assert_eq!(*remaining, 0);
            assert_eq!(
                data.payload,
                Some(json!({"msg": "Hi, this is server serverA responding to you"}))
            );
        }
        other => panic!("expected a reply, got {other:?}"),
    }

    // 3. Broadcast with 3 expected replies: counts down 2, 1, 0; the sender answered too.
    let remaining: Vec<usize> = report
        .broadcast
        .iter()
        .map(|r| match r {
            CrossServerResponse::Reply { remaining, .. } => *remaining,
            other => panic!("expected replies only, got {other:?}"),
        })
        .collect();
    assert_eq!(remaining, [2, 1, 0]);
    let mut repliers: Vec<String> = report
        .broadcast
        .iter()
        .filter_map(|r| match r {
            CrossServerResponse::Reply { data, .. } => Some(data.sender_server.clone()),
            _ => None,
        })
        .collect();
    repliers.sort();
    assert_eq!(repliers, ["senderA", "serverA", "serverB"]);

    // 4. Promise form, except self: both servers, not the sender.
    assert!(report.promise.success);
    let keys: Vec<&String> = report.promise.responses.keys().collect();
    assert_eq!(keys.len(), 2);
    assert!(!report.promise.responses.contains_key("senderA"));

    // 5. A missing target: not successful, one missing, the others present.
    assert!(!report.timed_out.success);
    assert_eq!(report.timed_out.unresponded_count, 1);
    assert_eq!(report.timed_out.responses.len(), 2);
    let shape = serde_json::to_value(&report.timed_out).unwrap();
    assert_eq!(shape["message"], "Cross-server callback timed out.");
    assert_eq!(shape["unrespondedCount"], 1);

    // Nothing is left pending on the sender.
    assert_eq!(sender.pending_cross_server_calls(), 0);
}
