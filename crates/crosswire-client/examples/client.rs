//! The original's client example, in Rust: connects with an id, says hello
//! through a callback and through a future, joins room `lobby`, prints what
//! the node pushes and the heartbeat latency, and reconnects when the server
//! restarts.
//!
//! ```text
//! cargo run -p crosswire-examples --bin single-server        # in one terminal
//! cargo run -p crosswire-client --example client -- ws://127.0.0.1:9000 u1
//! ```
//!
//! Stop the server (Ctrl-C: it closes with 1001) and start it again: the
//! client's `close` listener asks for a reconnection, the failed attempts
//! retry on the backoff schedule, and the client rejoins the room once the
//! server is back. Ctrl-C in the client closes it with 4001.

use crosswire_client::{Connector, ConnectorOptions, EmitOptions};
use serde_json::json;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:9000".into());
    let id = args.next().unwrap_or_else(|| "u1".into());

    let options = ConnectorOptions {
        ping_interval: Duration::from_secs(5),
        fast_reconnect_interval: Duration::from_secs(1),
        reconnect_max_interval: Duration::from_secs(10),
        ..ConnectorOptions::new(url).param("id", id)
    };
    let c = Connector::new(options)?;
    println!("connecting to {}", c.url());

    // Pushes from the node.
    c.on("serverTime", |p: &serde_json::Value| {
        println!("push serverTime: {p}")
    })?;
    c.on("roomMessage", |p: &serde_json::Value| {
        println!("push roomMessage: {p}")
    })?;

    // Lifecycle.
    c.on_pong(|latency| println!("heartbeat latency: {latency:?}"));
    c.on_pong_timeout(|| println!("heartbeat reply missing: closing with 4002"));
    c.on_error(|e| println!("error: {e}"));
    c.on_reconnect(|r| println!("reconnection attempt {} in {:?}", r.attempt, r.delay));
    c.on_repeat_limit(|limit| println!("gave up after {limit} attempts"));
    let weak = c.downgrade();
    c.on_close(move |code, reason| {
        println!("closed: {code} {reason:?}");
        // The node refused us (auth failure, kicked by a second login):
        // reconnecting would loop. Anything else: try again.
        if matches!(code, 4011 | 4012) {
            return;
        }
        if let Some(c) = weak.upgrade() {
            c.reconnect(false);
        }
    });

    let weak = c.downgrade();
    c.on_open(move || {
        println!("open");
        let Some(c) = weak.upgrade() else { return };
        // The callback form: runs on the connector's task.
        c.emit_then(
            "say",
            &json!({ "text": "hello through a callback" }),
            EmitOptions::new()
                .pending_timeout(Duration::from_millis(500))
                .on_pending(|| println!("say: the reply is late...")),
            |reply| match reply {
                Ok(payload) => println!("say replied (callback): {}", show(payload)),
                Err(e) => println!("say failed (callback): {} {e}", e.code()),
            },
        );
        // The future form.
        tokio::spawn(async move {
            match c
                .emit_with_callback("say", &json!({ "text": "hello through a future" }))
                .await
            {
                Ok(payload) => println!("say replied (future): {}", show(payload)),
                Err(e) => println!("say failed (future): {} {e}", e.code()),
            }
            match c
                .emit_with_callback("joinRoom", &json!({ "roomId": "lobby" }))
                .await
            {
                Ok(payload) => println!("joinRoom replied: {}", show(payload)),
                Err(e) => println!("joinRoom failed: {} {e}", e.code()),
            }
        });
    });

    c.start();
    tokio::signal::ctrl_c().await?;
    c.manual_close();
    // Give the close frame a moment to leave.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// A reply payload as JSON text.
fn show(payload: Option<serde_json::Value>) -> String {
    payload.map_or_else(|| "(no value)".into(), |p| p.to_string())
}
