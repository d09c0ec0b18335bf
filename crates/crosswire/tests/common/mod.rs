//! Test support: a real node on a free loopback port and real WebSocket
//! clients over TCP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crosswire::{Node, NodeBuilder};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait in a test: a failure, not a sleep.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

pub async fn connect(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/{query}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

/// Connects with `?id=<id>` and waits until the node has bound it.
pub async fn connect_id(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = connect(addr, &format!("?id={id}")).await;
    wait_until(|| node.get_socket(id).is_some()).await;
    ws
}

/// Polls a condition on the node's state (no fixed sleeps: bounded by WAIT).
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// The next text frame (skipping pings/pongs).
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time")
            .expect("stream ended")
            .expect("read error");
        match msg {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).unwrap()
}

/// Waits for the connection to close; returns the close code the server
/// sent (None if it ended without a close frame).
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    let mut code = None;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("not closed in time")
        {
            None | Some(Err(_)) => return code,
            // Keep reading after the close frame: that sends our reply and
            // lets the server finish the closing handshake at once.
            Some(Ok(Message::Close(frame))) => code = frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
        }
    }
}

pub async fn close_with(ws: &mut Ws, code: u16, reason: &str) {
    ws.close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
    .await
    .unwrap();
}

/// Sends a frame that the server answers, and returns once the answer came:
/// proves every earlier frame of this connection was processed.
pub async fn sync(ws: &mut Ws) {
    send_text(ws, "").await; // heartbeat, echoed by a default node
    loop {
        if next_text(ws).await.is_empty() {
            return;
        }
    }
}
