//! FAQ 1, "client → WebSocket server → logic server, and the callback back":
//! a matchmaking chain.
//!
//! 1. The client emits `matchRequest {"mode": "ranked"}` with a callback.
//! 2. The WebSocket node it is connected to ([`install_gateway`]) forwards
//!    the request to the logic node with a targeted cross-server call, adding
//!    who is asking, and replies to the client with the logic node's answer
//!    (or with `{"error": ...}` when the logic node did not answer in time —
//!    before the client's own callback timeout).
//! 3. The logic node ([`install_logic`], a server-only node, the FAQ's
//!    `gameServer`) pairs players per mode: the first one gets
//!    `{"status": "waiting"}`, the second `{"status": "matched", ...}` — and
//!    the first one, who is waiting on some other node, gets the push
//!    `matchFound`, sent by the logic node straight to its socket id.
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::{matchmaking, Backbone};
//! use std::time::Duration;
//!
//! let backbone = Backbone::memory();
//! let game = backbone.builder("gameServer").await?.websocket(false).build()?;
//! matchmaking::install_logic(&game)?;
//! let ws = backbone.builder("ws1").await?.build()?;
//! crosswire_recipes::bind_query_id(&ws);
//! matchmaking::install_gateway(&ws, "gameServer", Duration::from_secs(3))?;
//! ws.listen("127.0.0.1:9001").await?;
//! # Ok(()) }
//! ```

use crate::client::Player;
use crate::{bind_query_id, install_whoami, Backbone, RecipeError, Result};
use crosswire::{Node, Socket};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The client event, and the cross-server event it is forwarded as.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::matchmaking::MATCH_REQUEST, "matchRequest");
/// ```
pub const MATCH_REQUEST: &str = "matchRequest";

/// The push a waiting player gets when an opponent is found.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::matchmaking::MATCH_FOUND, "matchFound");
/// ```
pub const MATCH_FOUND: &str = "matchFound";

/// The WebSocket side: forwards every `matchRequest` of a client to
/// `logic_server` as `{"player": <socket id>, "data": <client payload>}` and
/// replies to the client with the logic node's reply payload. When the logic
/// node does not answer within `timeout`, the client gets
/// `{"error": "matchmaking unavailable"}`; a client without a socket id gets
/// `{"error": "not logged in"}`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire::bus::MemoryHub;
/// use crosswire_recipes::{bind_query_id, client::Player, install_whoami, matchmaking};
/// use serde_json::json;
/// use std::time::Duration;
/// let hub = MemoryHub::new();
/// let game = crosswire::Node::builder().server_name("game").bus(hub.bus()).websocket(false).build()?;
/// matchmaking::install_logic(&game)?;
/// let ws = crosswire::Node::builder().server_name("ws1").bus(hub.bus()).build()?;
/// bind_query_id(&ws);
/// install_whoami(&ws)?;
/// let within = Duration::from_secs(5);
/// matchmaking::install_gateway(&ws, "game", within)?;
/// let url = format!("ws://{}", ws.listen("127.0.0.1:0").await?);
/// game.ready().await;
/// ws.ready().await;
/// let p1 = Player::connect(&url, "p1", within).await?;
/// let reply = p1.request(matchmaking::MATCH_REQUEST, &json!({"mode": "ranked"}), within).await?;
/// assert_eq!(reply, Some(json!({"status": "waiting", "mode": "ranked"})));
/// # Ok(())
/// # }
/// ```
pub fn install_gateway(
    node: &Node,
    logic_server: impl Into<String>,
    timeout: Duration,
) -> crosswire::Result<()> {
    let logic: Arc<str> = logic_server.into().into();
    node.on(
        MATCH_REQUEST,
        move |node: Node, socket: Socket, payload: Value| {
            let logic = logic.clone();
            async move {
                match socket.socket_ids().into_iter().next() {
                    None => json!({ "error": "not logged in" }),
                    Some(player) => forward(&node, &logic, &player, payload, timeout).await,
                }
            }
        },
    )?;
    Ok(())
}

async fn forward(node: &Node, logic: &str, player: &str, data: Value, timeout: Duration) -> Value {
    let request = json!({ "player": player, "data": data });
    let call = match node.emit_cross_server(MATCH_REQUEST, &request) {
        Ok(call) => call.to([logic]).timeout(timeout).collect().await,
        Err(e) => Err(e),
    };
    match call {
        Ok(result) if result.success => result
            .responses
            .get(logic)
            .and_then(|r| r.payload.clone())
            .unwrap_or(Value::Null),
        Ok(_) => json!({ "error": "matchmaking unavailable" }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Players waiting for an opponent, by mode. (A std mutex is enough: it is
/// never held across an `.await`.)
#[derive(Default)]
struct Queue {
    waiting: Mutex<HashMap<String, String>>,
    matches: AtomicU64,
}

/// The logic side (the FAQ's `gameServer`): answers the cross-server event
/// `matchRequest` (see the module documentation).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::matchmaking::{self, MATCH_REQUEST};
/// use serde_json::json;
/// let game = crosswire::Node::builder().server_name("game").websocket(false).build()?;
/// matchmaking::install_logic(&game)?;
/// let ask = |player: &str| json!({"player": player, "data": {"mode": "ranked"}});
/// let first = game.emit_cross_server(MATCH_REQUEST, &ask("p1"))?.collect().await?;
/// assert_eq!(first.responses["game"].payload, Some(json!({"status": "waiting", "mode": "ranked"})));
/// let second = game.emit_cross_server(MATCH_REQUEST, &ask("p2"))?.collect().await?;
/// let reply = second.responses["game"].payload.clone().ok_or("no reply")?;
/// assert_eq!((reply["status"].as_str(), reply["opponent"].as_str()), (Some("matched"), Some("p1")));
/// # Ok(())
/// # }
/// ```
pub fn install_logic(node: &Node) -> crosswire::Result<()> {
    let queue = Arc::new(Queue::default());
    node.on_cross_server(MATCH_REQUEST, move |node: Node, payload: Value| {
        let queue = queue.clone();
        async move { decide(&node, &queue, &payload) }
    })?;
    Ok(())
}

fn decide(node: &Node, queue: &Queue, request: &Value) -> Value {
    let Some(player) = request.get("player").and_then(Value::as_str) else {
        return json!({ "error": "bad request" });
    };
    let mode = request
        .pointer("/data/mode")
        .and_then(Value::as_str)
        .unwrap_or("casual")
        .to_owned();
    let opponent = {
        let mut waiting = queue.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.get(&mode) {
            Some(other) if other != player => waiting.remove(&mode),
            Some(_) => None,
            None => {
                waiting.insert(mode.clone(), player.to_owned());
                None
            }
        }
    };
    let Some(opponent) = opponent else {
        return json!({ "status": "waiting", "mode": mode });
    };
    let n = queue.matches.fetch_add(1, Ordering::Relaxed) + 1;
    let match_id = format!("{}-{mode}-{n}", node.server_name());
    // The waiting player is connected to some WebSocket node: reach it by
    // its socket id, from this node that has no WebSocket at all.
    let found =
        json!({ "status": "matched", "matchId": match_id, "mode": mode, "opponent": player });
    if let Err(e) = node.to_socket_id(&opponent, MATCH_FOUND, &found) {
        tracing::warn!(error = %e, %opponent, "cannot notify the waiting player");
    }
    json!({ "status": "matched", "matchId": match_id, "mode": mode, "opponent": opponent })
}

/// What [`demo`] saw.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{matchmaking, Backbone};
/// use std::time::Duration;
/// let report: matchmaking::DemoReport = matchmaking::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.first_reply["status"], "waiting");
/// assert_eq!(report.second_reply["opponent"], "p1");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// The first player's callback reply (`waiting`).
    pub first_reply: Value,
    /// The second player's callback reply (`matched`).
    pub second_reply: Value,
    /// The push the first player got (`matchFound`).
    pub first_push: Value,
}

/// The whole chain in one process: a logic node `gameServer`, two WebSocket
/// nodes `ws1` and `ws2` on free loopback ports, player `p1` on `ws1` and
/// `p2` on `ws2`, both asking for a ranked match.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{matchmaking, Backbone};
/// use std::time::Duration;
/// let report = matchmaking::demo(&Backbone::memory(), Duration::from_secs(5)).await?;
/// assert_eq!(report.first_push["status"], "matched");
/// assert_eq!(report.first_push["opponent"], "p2");
/// # Ok(())
/// # }
/// ```
pub async fn demo(backbone: &Backbone, within: Duration) -> Result<DemoReport> {
    let game = backbone
        .builder("gameServer")
        .await?
        .websocket(false)
        .build()?;
    install_logic(&game)?;
    let mut urls = Vec::new();
    let mut gateways = Vec::new();
    for name in ["ws1", "ws2"] {
        let node = backbone.builder(name).await?.build()?;
        bind_query_id(&node);
        install_whoami(&node)?;
        install_gateway(&node, "gameServer", within)?;
        urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
        gateways.push(node);
    }
    for node in &gateways {
        node.ready().await;
        crate::wait_for_nodes(node, &["gameServer".to_owned()], within).await?;
    }
    let mut p1 = Player::connect(&urls[0], "p1", within).await?;
    let p2 = Player::connect(&urls[1], "p2", within).await?;
    let ranked = json!({ "mode": "ranked" });
    let first_reply = p1
        .request(MATCH_REQUEST, &ranked, within)
        .await?
        .ok_or_else(|| RecipeError::Unexpected("empty reply".into()))?;
    let second_reply = p2
        .request(MATCH_REQUEST, &ranked, within)
        .await?
        .ok_or_else(|| RecipeError::Unexpected("empty reply".into()))?;
    let first_push = p1.wait_push(MATCH_FOUND, within).await?;
    for node in gateways.iter().chain([&game]) {
        node.shutdown(Duration::from_millis(500)).await;
    }
    Ok(DemoReport {
        first_reply,
        second_reply,
        first_push,
    })
}
