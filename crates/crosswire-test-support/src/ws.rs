//! A plain WebSocket client over TCP for tests, every read bounded by
//! [`WAIT`].

use crate::wait::{within, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `ws://ADDR/PATH` (`path` holds what follows the first slash, query
/// included: `""`, `"?id=u1"`, `"ws?id=1"`).
pub async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let url = format!("ws://{addr}/{path}");
    match within(WAIT, tokio_tungstenite::connect_async(url.as_str())).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!("cannot connect to {url}: {e}"),
    }
}

/// Sends one text frame.
pub async fn send_text(ws: &mut Ws, text: &str) {
    if let Err(e) = ws.send(Message::text(text)).await {
        panic!("cannot send {text:?}: {e}");
    }
}

/// The next text frame, skipping pings and pongs; fails the test on any other
/// frame, at the end of the stream, or when none comes within [`WAIT`].
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        match within(WAIT, ws.next()).await {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("expected a text frame, got {other:?}"),
            Some(Err(e)) => panic!("read error while waiting for a text frame: {e}"),
            None => panic!("the connection ended while waiting for a text frame"),
        }
    }
}

/// The next text frame, parsed as JSON.
pub async fn next_json(ws: &mut Ws) -> Value {
    let text = next_text(ws).await;
    match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(e) => panic!("not JSON ({e}): {text}"),
    }
}

/// Waits until the connection ends; the close code the server sent (`None`
/// when it ended without a close frame). Fails the test if it is still open
/// after [`WAIT`].
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    let mut code = None;
    loop {
        match within(WAIT, ws.next()).await {
            None | Some(Err(_)) => return code,
            // Keep reading after the close frame: that sends our reply and
            // lets the server finish the closing handshake at once.
            Some(Ok(Message::Close(frame))) => code = frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
        }
    }
}

/// Starts the closing handshake with `code` and `reason`.
pub async fn close_with(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if let Err(e) = ws.close(Some(frame)).await {
        panic!("cannot close with {code}: {e}");
    }
}

/// Sends the default heartbeat (an empty text frame, which a crosswire node
/// echoes) and returns once the echo came, skipping what arrives before it:
/// every earlier frame of this connection has been processed by then.
pub async fn sync(ws: &mut Ws) {
    send_text(ws, "").await;
    while !next_text(ws).await.is_empty() {}
}

/// Sends the default heartbeat and expects its echo as the very next text
/// frame: nothing else was queued for this connection.
pub async fn nothing_more(ws: &mut Ws) {
    send_text(ws, "").await;
    assert_eq!(
        next_text(ws).await,
        "",
        "a frame came before the heartbeat echo"
    );
}
