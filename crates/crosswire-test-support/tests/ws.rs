//! The WebSocket helpers against a small tokio-tungstenite server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::*;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A server that echoes text frames (and, like a crosswire node, the empty
/// heartbeat), pings before each echo, and closes with 4011 on "bye".
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    if text.as_str() == "bye" {
                        let frame = CloseFrame {
                            code: CloseCode::from(4011),
                            reason: "bye".into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                    } else {
                        let _ = ws.send(Message::Ping(Default::default())).await;
                        let _ = ws.send(Message::Text(text)).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn text_frames_skip_pings_and_the_close_code_is_reported() {
    let addr = echo_server().await;
    let mut ws = connect(addr, "?id=1").await;
    send_text(&mut ws, r#"{"n":1}"#).await;
    assert_eq!(next_json(&mut ws).await["n"], 1);
    send_text(&mut ws, "a").await;
    sync(&mut ws).await;
    send_text(&mut ws, "b").await;
    assert_eq!(next_text(&mut ws).await, "b");
    nothing_more(&mut ws).await;
    send_text(&mut ws, "bye").await;
    assert_eq!(closed(&mut ws).await, Some(4011));
}

#[tokio::test]
#[should_panic(expected = "a frame came before the heartbeat echo")]
async fn nothing_more_fails_when_a_frame_was_queued() {
    let addr = echo_server().await;
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, "queued").await;
    nothing_more(&mut ws).await;
}
