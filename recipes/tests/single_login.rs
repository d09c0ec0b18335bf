//! FAQ 13: one login per user across the cluster, with a cross-server call
//! to find the older connection and a kick with 4012.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::Node;
use crosswire_client::ConnectorOptions;
use crosswire_recipes::client::Player;
use crosswire_recipes::single_login::{self, LoginStamp, Policy, SingleLogin};
use crosswire_recipes::{install_whoami, wait_for_live_nodes, Backbone, KICKED};
use support::*;

async fn nodes(backbone: &Backbone, policy: Policy, names: &[&str]) -> Vec<(Node, String)> {
    let mut out = Vec::new();
    for name in names {
        let node = backbone.builder(name).await.unwrap().build().unwrap();
        single_login::install(&node, SingleLogin::new(policy)).unwrap();
        install_whoami(&node).unwrap();
        let url = format!("ws://{}", node.listen("127.0.0.1:0").await.unwrap());
        out.push((node, url));
    }
    for (node, _) in &out {
        wait_for_live_nodes(node, names.len(), WAIT).await.unwrap();
    }
    out
}

#[tokio::test]
async fn a_second_login_on_another_node_kicks_the_first() {
    let report = single_login::demo(&Backbone::memory(), WAIT).await.unwrap();
    assert_eq!(report.first_closed.0, KICKED);
    assert_eq!(report.first_closed.1, "Kicked by concurrent login");
    assert_eq!(report.second_server.as_deref(), Some("n2"));
    assert_eq!(report.holders, ["n2"]);
}

#[tokio::test]
async fn the_newest_login_wins_across_three_nodes_and_on_one_node() {
    let backbone = Backbone::memory();
    let cluster = nodes(&backbone, Policy::KickOld, &["n1", "n2", "n3"]).await;
    let mut a = Player::connect(&cluster[0].1, "alice", WAIT).await.unwrap();
    let bob = Player::connect(&cluster[1].1, "bob", WAIT).await.unwrap();
    let mut b = Player::connect(&cluster[2].1, "alice", WAIT).await.unwrap();
    assert_eq!(a.closed(WAIT).await.unwrap().0, KICKED);
    // Back on n1: the n3 connection goes.
    let mut c = Player::connect(&cluster[0].1, "alice", WAIT).await.unwrap();
    assert_eq!(b.closed(WAIT).await.unwrap().0, KICKED);
    // Again on n1: the same node replaces its own connection.
    let d = Player::connect(&cluster[0].1, "alice", WAIT).await.unwrap();
    assert_eq!(c.closed(WAIT).await.unwrap().0, KICKED);
    // Other users are untouched, and alice is found exactly once.
    assert!(bob.request("whoami", &(), WAIT).await.is_ok());
    let holders = single_login::find_user(&cluster[1].0, "alice", WAIT)
        .await
        .unwrap();
    assert_eq!(holders, ["n1"]);
    assert_eq!(d.server(), Some("n1"));
}

#[tokio::test]
async fn an_older_login_is_never_kicked_by_a_stale_request() {
    let backbone = Backbone::memory();
    let cluster = nodes(&backbone, Policy::KickOld, &["n1", "n2"]).await;
    let alice = Player::connect(&cluster[0].1, "alice", WAIT).await.unwrap();
    // A kick request stamped before alice's login (e.g. a concurrent login
    // that lost the race) leaves her connected.
    let stale = LoginStamp {
        at_ms: 1,
        server: "n2".into(),
        seq: 0,
    };
    let kicked = single_login::kick_user(&cluster[1].0, "alice", &["n1".into()], &stale, WAIT)
        .await
        .unwrap();
    assert_eq!(kicked, 0);
    assert!(alice.request("whoami", &(), WAIT).await.is_ok());
    let holders = single_login::find_user(&cluster[1].0, "alice", WAIT)
        .await
        .unwrap();
    assert_eq!(holders, ["n1"]);
}

#[tokio::test]
async fn reject_new_refuses_the_second_login_with_4013() {
    let backbone = Backbone::memory();
    let cluster = nodes(&backbone, Policy::RejectNew, &["n1", "n2"]).await;
    let alice = Player::connect(&cluster[0].1, "alice", WAIT).await.unwrap();
    // On another node: the connection opens, then is closed before its
    // first event is handled.
    for (_, url) in cluster.iter().rev() {
        let options = ConnectorOptions::new(url.as_str()).param("id", "alice");
        let mut second = Player::open(options, "alice", WAIT).await.unwrap();
        let (code, _) = second.closed(WAIT).await.unwrap();
        assert_eq!(code, single_login::ALREADY_ONLINE);
    }
    // The first login is intact.
    assert!(alice.request("whoami", &(), WAIT).await.is_ok());
}
