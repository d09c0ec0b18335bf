//! FAQ 12: cluster-wide statistics summed over the nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_recipes::stats::{self, Expect};
use crosswire_recipes::{wait_for_live_nodes, Backbone};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn room_counts_and_node_numbers_are_summed_over_the_cluster() {
    let report = stats::demo(&Backbone::memory(), WAIT).await.unwrap();

    // Players 1..=6 round-robin over ws1..ws3; 1, 2, 3, 5 in room 1000.
    assert!(report.room.complete);
    assert_eq!(report.room.missing, 0);
    assert_eq!(report.room.total, 4);
    let per_node: Vec<(&str, u64)> = report
        .room
        .per_node
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(per_node, [("ws1", 1), ("ws2", 2), ("ws3", 1)]);

    let ids: BTreeSet<&str> = report
        .members
        .socket_ids
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(ids, BTreeSet::from(["1", "2", "3", "5"]));
    assert!(report.members.complete);

    assert!(report.summary.complete);
    assert_eq!(report.summary.nodes.len(), 3);
    assert_eq!(report.summary.total.connections, 6);
    assert_eq!(report.summary.total.clients, 6);
    assert_eq!(report.summary.total.rooms, 3); // room 1000 exists on each node
    assert_eq!(report.summary.total.memberships, 4);
}

/// On tokio's paused clock: the nodes meet on the in-memory bus, so the
/// clock jumps straight to the timeout of the call one node too many.
#[tokio::test(start_paused = true)]
async fn a_node_that_does_not_answer_makes_the_result_incomplete() {
    let backbone = Backbone::memory();
    let a = backbone.builder("a").await.unwrap().build().unwrap();
    let b = backbone.builder("b").await.unwrap().build().unwrap();
    stats::install(&a).unwrap();
    stats::install(&b).unwrap();
    a.join_room("chat", "r", "x").unwrap();
    b.join_room("chat", "r", "y").unwrap();
    b.join_room("chat", "r", "z").unwrap();
    wait_for_live_nodes(&a, 2, WAIT).await.unwrap();

    let all = stats::room_member_count(&a, "chat", Some("r"), Expect::AllLive, WAIT)
        .await
        .unwrap();
    assert!(all.complete);
    assert_eq!(all.total, 3);

    // The original's way: a fixed count. One more than there are nodes.
    let more = stats::room_member_count(
        &a,
        "chat",
        Some("r"),
        Expect::Nodes(3),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert!(!more.complete);
    assert_eq!(more.missing, 1);
    assert_eq!(more.total, 3);

    // Every room of the namespace.
    b.join_room("chat", "other", "w").unwrap();
    let ns = stats::room_member_count(&a, "chat", None, Expect::AllLive, WAIT)
        .await
        .unwrap();
    assert_eq!(ns.total, 4);
}
