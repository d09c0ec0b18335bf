//! The original's first example, in Rust: one WebSocket node, no Redis.
//!
//! * a client connects with `?id=...`, which becomes its socket id; without
//!   it the node closes the connection with 4011;
//! * `say` answers through the client's callback;
//! * `joinRoom` puts the client in a room of namespace `chat` and tells the room;
//! * every 10 s the node broadcasts the time to everyone and a message to
//!   room `chat/lobby`.
//!
//! ```text
//! cargo run -p crosswire-examples --bin single-server
//! ```
//! then connect with any WebSocket client, e.g. the original's browser client
//! with `url: "ws://127.0.0.1:9000"` and `customParams: {id: "u1"}`.

use crosswire::{Node, Socket};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::main]
async fn main() -> crosswire::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    let node = Node::builder().server_name("single-server").build()?;

    node.on_connection(|socket, handshake| async move {
        let Some(node) = socket.node() else { return };
        match handshake.param("id") {
            Some(id) if !id.is_empty() => {
                if let Some(old) = node.set_user_socket(id, &socket).ok().flatten() {
                    old.close(4012, "Kicked by concurrent login");
                }
                tracing::info!(%id, path = ?handshake.path(), "client connected");
            }
            _ => socket.close(4011, "Auth failure"),
        }
    });

    node.on_close(|socket, info| async move {
        tracing::info!(ids = ?socket.socket_ids(), code = info.code, reason = %info.reason, "client closed");
    });

    node.on("say", |socket: Socket, payload: Value| async move {
        tracing::info!(ids = ?socket.socket_ids(), %payload, "say");
        json!({ "ok": true, "echo": payload })
    })?;

    // `roomId` is optional (and anything but a string means the lobby), so
    // the payload is read as it is rather than as a typed `Data<T>`.
    node.on(
        "joinRoom",
        |node: Node, socket: Socket, payload: Value| async move {
            let room = payload
                .get("roomId")
                .and_then(Value::as_str)
                .unwrap_or("lobby")
                .to_owned();
            for id in socket.socket_ids() {
                if node.join_room("chat", &room, &id).is_ok() {
                    let text = json!({ "text": format!("{id} joined {room}") });
                    let _ = node
                        .to_room("chat", room.as_str())
                        .emit("roomMessage", &text);
                }
            }
            json!({ "joined": room })
        },
    )?;

    let addr = node.listen(("127.0.0.1", port)).await?;
    println!("crosswire single-server listening on ws://{addr}/?id=YOUR_ID");

    let n = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let _ = n.to_all().emit("serverTime", &json!({ "now": now }));
            let _ = n
                .to_room("chat", "lobby")
                .emit("roomMessage", &json!({ "text": "hello lobby" }));
        }
    });

    tokio::signal::ctrl_c().await?;
    node.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
