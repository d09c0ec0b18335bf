//! Test support: a real node on a free loopback port, and the workspace's
//! WebSocket clients and bounded waits (crosswire-test-support).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use crosswire_test_support::*;

use crosswire::{Node, NodeBuilder};
use std::net::SocketAddr;

pub async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.build().unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    (node, addr)
}

/// A node that binds `?id=` as the socket id (refusing with 4011 without it).
pub async fn start_binding(builder: NodeBuilder) -> (Node, SocketAddr) {
    let (node, addr) = start(builder).await;
    let n = node.clone();
    node.on_connection(move |socket, hs| {
        let n = n.clone();
        async move {
            match hs.param("id") {
                Some(id) => {
                    n.set_user_socket(id, &socket).unwrap();
                }
                None => socket.close(4011, "Auth failure"),
            }
        }
    });
    (node, addr)
}

/// Connects with `?id=<id>` and waits until the node has bound it.
pub async fn connect_id(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = connect(addr, &format!("?id={id}")).await;
    wait_until(|| node.get_socket(id).is_some()).await;
    ws
}
