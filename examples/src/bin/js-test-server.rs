//! A crosswire node for the JavaScript client's tests (`clients/js/test`).
//!
//! Listens on a free port of 127.0.0.1, prints `LISTENING <addr>` on stdout
//! and serves until its standard input closes (the test process ended) or
//! Ctrl-C. A client connecting with `?id=...` is bound to that socket id;
//! with `&join=ns/room,ns/room` that id also joins those rooms.
//!
//! Namespaces `chat` (the default history) and `short` (2 messages) keep a
//! history for missed-message recovery (`cwRecovery`, docs/protocol.md
//! §10.3); other namespaces keep none.
//!
//! Client events (all answer through the callback when one is given):
//!
//! | event | payload | effect |
//! | --- | --- | --- |
//! | `echo` | any | replies with the payload |
//! | `echoEmpty` | any | replies without a value |
//! | `replyTwice` | any | replies `"first"`, then `"second"` |
//! | `delayedEcho` | `{ms, payload}` | replies with `payload` after `ms` |
//! | `noReply` | any | never replies |
//! | `whoami` | any | replies `{params, path}` of the handshake |
//! | `push` | `{event, payload}` | pushes that event to this socket, then replies |
//! | `pushRaw` | `{frames: [text]}` | sends these raw text frames, then replies |
//! | `kick` | `{code, reason}` | closes the socket with that code |
//! | `terminate` | any | drops the connection without a close frame |
//! | `closeInfo` | `{id}` | replies `{code, reason}` of the last close of socket id `id` (waits up to 2 s), or `null` |
//! | `joinRoom` | `{ns, room}` | this socket's id joins the room; replies `{ok}` |
//! | `leaveRoom` | `{ns, room}` | this socket's id leaves the room; replies `{ok}` |
//! | `toRoom` | `{ns, room, event, payload}` | sends the event to the room (every node); replies `{ok}` |

use crosswire::handler::State;
use crosswire::history::HistoryConfig;
use crosswire::protocol::client::PushFrame;
use crosswire::{Node, Reply, Socket};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

#[derive(Default)]
struct Closes {
    by_id: Mutex<HashMap<String, (u16, String)>>,
    changed: Notify,
}

impl Closes {
    fn map(&self) -> MutexGuard<'_, HashMap<String, (u16, String)>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_for(&self, id: &str, within: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if let Some(found) = self.map().get(id).cloned() {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

fn str_field<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str)
}

/// `{"ok": true}`, or `{"ok": false, "error"}` with the node's refusal.
fn outcome(result: crosswire::Result<()>) -> Value {
    match result {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    }
}

/// Adds (or removes) the first id bound to `socket` to the room named by
/// `payload`'s `ns` and `room`.
fn room_membership(node: &Node, socket: &Socket, payload: &Value, join: bool) -> Value {
    let (Some(ns), Some(room)) = (str_field(payload, "ns"), str_field(payload, "room")) else {
        return json!({ "ok": false, "error": "ns and room are required" });
    };
    let Some(id) = socket.socket_ids().into_iter().next() else {
        return json!({ "ok": false, "error": "connect with ?id= first" });
    };
    outcome(if join {
        node.join_room(ns, room, &id)
    } else {
        node.leave_room(ns, room, &id)
    })
}

/// The node's application state: the closes seen so far.
type SharedCloses = Arc<Closes>;

fn register(node: &Node) -> crosswire::Result<()> {
    node.on("echo", |payload: Value| async move { payload })?;
    // Replies without a value, or twice: these take the reply handle.
    node.on("echoEmpty", |reply: Option<Reply>| async move {
        if let Some(reply) = reply {
            let _ = reply.send_empty();
        }
    })?;
    node.on("replyTwice", |reply: Option<Reply>| async move {
        if let Some(reply) = reply {
            let _ = reply.send(&"first");
            let _ = reply.send(&"second");
        }
    })?;
    node.on("delayedEcho", |payload: Value| async move {
        let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        payload.get("payload").cloned().unwrap_or(Value::Null)
    })?;
    node.on("noReply", || async {})?;
    node.on("whoami", |socket: Socket| async move {
        serde_json::to_value(&socket.handshake().params).unwrap_or(Value::Null)
    })?;
    node.on("push", |socket: Socket, payload: Value| async move {
        let event = str_field(&payload, "event").unwrap_or_default();
        let sent = socket.emit(event, payload.get("payload").unwrap_or(&Value::Null));
        json!({ "ok": sent.is_ok() })
    })?;
    node.on("pushRaw", |socket: Socket, payload: Value| async move {
        let frames = payload.get("frames").and_then(Value::as_array);
        for frame in frames.into_iter().flatten().filter_map(Value::as_str) {
            let _ = socket.send_frame(&PushFrame::from_text(frame));
        }
        json!({ "ok": true })
    })?;
    node.on("kick", |socket: Socket, payload: Value| async move {
        let code = payload
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (4000..=4999).contains(c) || *c == 1000)
            .unwrap_or(4010);
        let reason = str_field(&payload, "reason").unwrap_or("kicked");
        socket.close(code, reason);
    })?;
    node.on("terminate", |socket: Socket| async move {
        socket.terminate();
    })?;
    node.on(
        "joinRoom",
        |node: Node, socket: Socket, payload: Value| async move {
            room_membership(&node, &socket, &payload, true)
        },
    )?;
    node.on(
        "leaveRoom",
        |node: Node, socket: Socket, payload: Value| async move {
            room_membership(&node, &socket, &payload, false)
        },
    )?;
    node.on("toRoom", |node: Node, payload: Value| async move {
        let (Some(ns), Some(room), Some(event)) = (
            str_field(&payload, "ns"),
            str_field(&payload, "room"),
            str_field(&payload, "event"),
        ) else {
            return json!({ "ok": false, "error": "ns, room and event are required" });
        };
        let data = payload.get("payload").unwrap_or(&Value::Null);
        outcome(node.to_room(ns, room).emit(event, data))
    })?;
    node.on(
        "closeInfo",
        |State(closes): State<SharedCloses>, payload: Value| async move {
            let id = str_field(&payload, "id").unwrap_or_default();
            let found = closes.wait_for(id, Duration::from_secs(2)).await;
            found.map_or(
                Value::Null,
                |(code, reason)| json!({ "code": code, "reason": reason }),
            )
        },
    )?;

    node.on_connection(|socket, handshake| async move {
        let Some(node) = socket.node() else { return };
        let Some(id) = handshake.param("id").filter(|id| !id.is_empty()) else {
            return;
        };
        if let Some(name) = handshake.param("name") {
            let _ = socket.set_info(&serde_json::json!({ "name": name }));
        }
        let _ = node.set_user_socket(id, &socket);
        let rooms = handshake.param("join").unwrap_or_default();
        for (ns, room) in rooms.split(',').filter_map(|r| r.split_once('/')) {
            if let Err(e) = node.join_room(ns, room, id) {
                tracing::warn!(error = %e, ns, room, "join refused");
            }
        }
    });
    node.on_close(|socket, info| async move {
        let Some(closes) = socket.state::<SharedCloses>() else {
            return;
        };
        {
            let mut map = closes.map();
            for id in socket.socket_ids() {
                map.insert(id, (info.code, info.reason.clone()));
            }
        }
        closes.changed.notify_waiters();
    });
    Ok(())
}

#[tokio::main]
async fn main() -> crosswire::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let node = Node::builder()
        .server_name("js-test-server")
        .server_ping_interval(Duration::from_secs(60))
        .state(SharedCloses::default())
        .history("chat", HistoryConfig::default())
        .presence("lobby")
        .history(
            "short",
            HistoryConfig {
                max_messages: 2,
                ..HistoryConfig::default()
            },
        )
        .build()?;
    register(&node)?;
    let addr = node.listen("127.0.0.1:0").await?;
    println!("LISTENING {addr}");

    // Serve until stdin closes (the test process is gone) or Ctrl-C.
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.shutdown(Duration::from_millis(500)).await;
    Ok(())
}
