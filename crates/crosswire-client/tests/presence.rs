//! Room presence from the client's side, over real sockets to a real node
//! with presence on namespace `chat`: the connector gets the room's members
//! when its id joins, then every join and leave, keeps them, and never hands
//! the node's presence frames to handlers of pushed events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire::Node;
use crosswire_client::{Connector, ConnectorOptions, PresenceOp, PresenceReport};
use std::time::Duration;
use tokio::sync::mpsc;

async fn node() -> String {
    let node = Node::builder()
        .server_name("n1")
        .presence("chat")
        .build()
        .unwrap();
    node.on_connection(|socket, hs| async move {
        let (Some(node), Some(id)) = (socket.node(), hs.param("id")) else {
            return;
        };
        node.set_user_socket(id, &socket).unwrap();
        node.join_room("chat", "lobby", id).unwrap();
    });
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    // The node lives as long as the test.
    std::mem::forget(node);
    format!("ws://{addr}")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<PresenceReport>) -> PresenceReport {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a presence report in time")
        .expect("open")
}

#[tokio::test]
async fn members_joins_and_leaves_are_reported_and_kept() {
    let url = node().await;
    let ann = Connector::new(
        ConnectorOptions::new(&url)
            .param("id", "ann")
            .presence(true),
    )
    .unwrap();
    let (tx, mut reports) = mpsc::unbounded_channel();
    ann.on_presence(move |r| {
        let _ = tx.send(r.clone());
    });
    let (leak_tx, mut leaks) = mpsc::unbounded_channel::<String>();
    for event in ["_cw_presence", "_cw_presence_state"] {
        let leak_tx = leak_tx.clone();
        ann.on(event, move || {
            let _ = leak_tx.send(event.to_owned());
        })
        .unwrap();
    }
    ann.start();
    let first = next(&mut reports).await;
    assert_eq!(first.change, None);
    assert_eq!(
        first
            .members
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["ann"]
    );
    let bob = Connector::new(ConnectorOptions::new(&url).param("id", "bob")).unwrap();
    bob.start();
    let joined = next(&mut reports).await;
    let (op, member) = joined.change.clone().unwrap();
    assert_eq!(
        (op, member.id.as_str(), member.node.as_str()),
        (PresenceOp::Join, "bob", "n1")
    );
    let ids: Vec<String> = ann
        .presence_members("chat", "lobby")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["ann", "bob"]);
    bob.manual_close();
    let left = next(&mut reports).await;
    assert_eq!(
        left.change.map(|(op, m)| (op, m.id)),
        Some((PresenceOp::Leave, "bob".to_owned()))
    );
    assert_eq!(left.members.len(), 1);
    assert!(
        leaks.try_recv().is_err(),
        "presence frames reached handlers of pushed events"
    );
    ann.manual_close();
}
