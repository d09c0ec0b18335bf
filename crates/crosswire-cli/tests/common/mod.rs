//! A real node for the command line's and the examples' tests: WebSocket
//! clients bound to their `?id=`, the HTTP API on its own port.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

// The crosswire crate's own test node (ids bound from `?id=`).
#[path = "../../../crosswire/tests/common/mod.rs"]
mod binding;

use crosswire::http_api::HttpApiConfig;
use crosswire::Node;
use crosswire_test_support::{connect, wait_until, Ws};
use std::net::SocketAddr;

/// A node named `n1` on loopback ports.
pub struct TestNode {
    pub node: Node,
    /// Its WebSocket endpoint.
    pub ws: SocketAddr,
    /// Its HTTP API, accepting `token`.
    pub api: SocketAddr,
}

impl TestNode {
    /// Starts the node; it binds each WebSocket client to its `?id=` and
    /// refuses one without (4011).
    pub async fn start(token: &str) -> TestNode {
        let (node, ws) = binding::start_binding(Node::builder().server_name("n1")).await;
        let api = node
            .listen_http_api("127.0.0.1:0", HttpApiConfig::new([token]))
            .await
            .unwrap();
        TestNode { node, ws, api }
    }

    /// A WebSocket client bound to `id`, once the node has bound it.
    pub async fn client(&self, id: &str) -> Ws {
        let ws = connect(self.ws, &format!("?id={id}")).await;
        wait_until(|| self.node.get_socket(id).is_some()).await;
        ws
    }
}
