//! Test support: real crosswire nodes on loopback ports and helpers to read
//! a connector's event stream with bounded waits (the waits themselves come
//! from crosswire-test-support).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use crosswire_test_support::*;

use crosswire::{Node, NodeBuilder};
use crosswire_client::{ClientEvent, ConnectorOptions, EventStream};
use std::net::SocketAddr;
use std::time::Duration;

pub async fn start(builder: NodeBuilder) -> (Node, SocketAddr) {
    let node = builder.build().unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    (node, addr)
}

pub async fn start_default() -> (Node, SocketAddr) {
    start(Node::builder()).await
}

/// Starts a node on `addr`, retrying while the port is still held by a
/// node that is going away (bounded by WAIT).
pub async fn start_on(builder: impl Fn() -> NodeBuilder, addr: SocketAddr) -> Node {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let node = builder().build().unwrap();
        match node.listen(addr).await {
            Ok(_) => return node,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot listen on {addr} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Options for tests: ms-scale reconnection, deterministic delays, no
/// heartbeat unless a test asks for one.
pub fn opts(addr: SocketAddr) -> ConnectorOptions {
    ConnectorOptions {
        ping_interval: Duration::from_secs(3600),
        pong_timeout: Duration::from_secs(5),
        fast_reconnect_threshold: 3,
        fast_reconnect_interval: Duration::from_millis(20),
        reconnect_max_interval: Duration::from_millis(200),
        jitter: false,
        close_timeout: Duration::from_secs(2),
        ..ConnectorOptions::new(format!("ws://{addr}/"))
    }
}

/// The next event, whatever it is.
pub async fn next(events: &mut EventStream) -> ClientEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("event stream ended")
}

/// The next lifecycle event other than `message` (pushes are skipped too).
pub async fn next_lifecycle(events: &mut EventStream) -> ClientEvent {
    loop {
        let ev = next(events).await;
        if !matches!(ev, ClientEvent::Message(_) | ClientEvent::Push { .. }) {
            return ev;
        }
    }
}

/// Skips events until one matches `pred`; returns it.
pub async fn wait_for(
    events: &mut EventStream,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    loop {
        let ev = next(events).await;
        if pred(&ev) {
            return ev;
        }
    }
}

pub async fn wait_open(events: &mut EventStream) {
    wait_for(events, |e| matches!(e, ClientEvent::Open)).await;
}

/// A node whose `connection` event reports each new socket, and whose
/// `close` event reports (code, reason).
pub struct Observed {
    pub node: Node,
    pub addr: SocketAddr,
    pub sockets: tokio::sync::mpsc::UnboundedReceiver<crosswire::Socket>,
    pub closes: tokio::sync::mpsc::UnboundedReceiver<(u16, String)>,
}

pub async fn start_observed(builder: NodeBuilder) -> Observed {
    let (node, addr) = start(builder).await;
    let (stx, sockets) = tokio::sync::mpsc::unbounded_channel();
    node.on_connection(move |socket, _hs| {
        let _ = stx.send(socket);
        async {}
    });
    let (ctx, closes) = tokio::sync::mpsc::unbounded_channel();
    node.on_close(move |_socket, info| {
        let _ = ctx.send((info.code, info.reason));
        async {}
    });
    Observed {
        node,
        addr,
        sockets,
        closes,
    }
}
