//! The original's third example (`examples/ws-cross-server`): several
//! WebSocket nodes acting as one server, a "boss" that pushes to every
//! node's clients, and a program with many clients.
//!
//! * [`install_ws_node`] is `wsserver.js`: binds `?id=` (4011 without),
//!   `joinRoom` puts the client in room `chat/<roomId>`, and `command`
//!   performs a push on the client's behalf (so the original's `boss.js`, a
//!   WebSocket client, works against it unchanged);
//! * [`run_boss`] is the boss as a **server-only node** (no WebSocket): it
//!   pushes `say` to everyone, to one player, to a group of players and to a
//!   room, wherever they are connected;
//! * [`connect_clients`] is `clients.js`: players spread over the nodes,
//!   some of them in rooms.
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::{cluster, Backbone};
//! use std::time::Duration;
//!
//! let backbone = Backbone::memory();
//! let mut urls = Vec::new();
//! for name in ["ws1", "ws2", "ws3"] {
//!     let node = backbone.builder(name).await?.preset_room_namespaces([cluster::NAMESPACE]).build()?;
//!     cluster::install_ws_node(&node)?;
//!     urls.push(format!("ws://{}", node.listen("127.0.0.1:0").await?));
//! }
//! let players = cluster::connect_clients(&urls, 12, &[("3", "1000"), ("4", "1001")], Duration::from_secs(5)).await?;
//! let boss = backbone.builder("boss").await?.websocket(false).build()?;
//! cluster::run_boss(&boss, &cluster::original_script(), Duration::ZERO).await?;
//! # let _ = players; Ok(()) }
//! ```

use crate::client::Player;
use crate::{bind_query_id, install_whoami, Result};
use crosswire::{Node, Socket};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The room namespace of the example.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::cluster::NAMESPACE, "chat");
/// ```
pub const NAMESPACE: &str = "chat";

/// The event every push of the example uses.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::cluster::SAY, "say");
/// ```
pub const SAY: &str = "say";

/// One push of the boss (the original's `command` actions).
///
/// # Examples
///
/// ```
/// use crosswire_recipes::cluster::Push;
/// let push = Push::ToPlayer { id: "13".into(), msg: "hi".into() };
/// let expected = serde_json::json!({"action": "toPlayer", "toPlayerId": "13", "msg": "hi"});
/// assert_eq!(serde_json::to_value(&push).unwrap(), expected);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Push {
    /// To every connected client of every node.
    Broadcast {
        /// The text.
        msg: String,
    },
    /// To one player, wherever it is connected.
    ToPlayer {
        /// The player.
        #[serde(rename = "toPlayerId")]
        id: String,
        /// The text.
        msg: String,
    },
    /// To several players, wherever they are connected.
    ToPlayers {
        /// The players.
        #[serde(rename = "toPlayerIds")]
        ids: Vec<String>,
        /// The text.
        msg: String,
    },
    /// To the members of room `chat/<room>` on every node.
    ToRoom {
        /// The room id.
        #[serde(rename = "roomId")]
        room: String,
        /// The text.
        msg: String,
    },
}

impl Push {
    /// The action name, as in the original (`broadcast`, `toPlayer`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::cluster::Push;
    /// assert_eq!(Push::Broadcast { msg: "hi".into() }.action(), "broadcast");
    /// assert_eq!(Push::ToRoom { room: "1000".into(), msg: "hi".into() }.action(), "toRoom");
    /// ```
    pub fn action(&self) -> &'static str {
        match self {
            Push::Broadcast { .. } => "broadcast",
            Push::ToPlayer { .. } => "toPlayer",
            Push::ToPlayers { .. } => "toPlayers",
            Push::ToRoom { .. } => "toRoom",
        }
    }

    /// The text.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::cluster::Push;
    /// assert_eq!(Push::ToPlayers { ids: vec!["3".into()], msg: "hi".into() }.msg(), "hi");
    /// ```
    pub fn msg(&self) -> &str {
        match self {
            Push::Broadcast { msg }
            | Push::ToPlayer { msg, .. }
            | Push::ToPlayers { msg, .. }
            | Push::ToRoom { msg, .. } => msg,
        }
    }

    /// Reads a `command` payload of the original (`{"action":"toPlayer",
    /// "msg":..., "toPlayerId":...}`); `None` when it is not one.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::cluster::Push;
    /// let p = Push::from_command(&serde_json::json!({"action": "toRoom", "msg": "hi", "roomId": "1000"}));
    /// assert_eq!(p, Some(Push::ToRoom { room: "1000".into(), msg: "hi".into() }));
    /// ```
    pub fn from_command(v: &Value) -> Option<Push> {
        let msg = v
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let text = |key: &str| -> Option<String> {
            match v.get(key)? {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        match v.get("action")?.as_str()? {
            "broadcast" => Some(Push::Broadcast { msg }),
            "toPlayer" => Some(Push::ToPlayer {
                id: text("toPlayerId")?,
                msg,
            }),
            "toPlayers" => {
                let ids = v
                    .get("toPlayerIds")?
                    .as_array()?
                    .iter()
                    .filter_map(|id| match id {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                Some(Push::ToPlayers { ids, msg })
            }
            "toRoom" => Some(Push::ToRoom {
                room: text("roomId")?,
                msg,
            }),
            _ => None,
        }
    }

    /// Performs the push from `node` (any node: with or without WebSocket).
    /// Clients receive `say` with `{"action": ..., "msg": ...}`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{client::Player, cluster};
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("ws1").build()?;
    /// cluster::install_ws_node(&node)?;
    /// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
    /// let within = Duration::from_secs(5);
    /// let mut p = Player::connect(&url, "u1", within).await?;
    /// cluster::Push::ToPlayer { id: "u1".into(), msg: "hi".into() }.send(&node)?;
    /// let said = p.wait_push(cluster::SAY, within).await?;
    /// assert_eq!(said, serde_json::json!({"action": "toPlayer", "msg": "hi"}));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&self, node: &Node) -> crosswire::Result<()> {
        let payload = json!({ "action": self.action(), "msg": self.msg() });
        match self {
            Push::Broadcast { .. } => node.to_all().emit(SAY, &payload),
            Push::ToPlayer { id, .. } => node.to_socket_id(id, SAY, &payload),
            Push::ToPlayers { ids, .. } => node.to_socket_ids(ids, SAY, &payload),
            Push::ToRoom { room, .. } => node.to_room(NAMESPACE, room.as_str()).emit(SAY, &payload),
        }
    }

    /// Whether player `id`, in room `room` (if any), receives this push.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::cluster::Push;
    /// let push = Push::ToRoom { room: "1000".into(), msg: "hi".into() };
    /// assert!(push.reaches("7", Some("1000")));
    /// assert!(!push.reaches("7", None));
    /// assert!(Push::Broadcast { msg: "hi".into() }.reaches("7", None));
    /// ```
    pub fn reaches(&self, id: &str, room: Option<&str>) -> bool {
        match self {
            Push::Broadcast { .. } => true,
            Push::ToPlayer { id: to, .. } => to == id,
            Push::ToPlayers { ids, .. } => ids.iter().any(|to| to == id),
            Push::ToRoom { room: to, .. } => room == Some(to.as_str()),
        }
    }
}

/// The boss's script of the original `boss.js`: a broadcast, player 13,
/// players 3, 10, 25 and 37, and room 1000.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::cluster::{original_script, Push};
/// let script = original_script();
/// assert_eq!(script.len(), 4);
/// assert!(script[2].reaches("25", None));
/// assert_eq!(script[3], Push::ToRoom { room: "1000".into(), msg: "Hello room players".into() });
/// ```
pub fn original_script() -> Vec<Push> {
    vec![
        Push::Broadcast {
            msg: "Hello every one".into(),
        },
        Push::ToPlayer {
            id: "13".into(),
            msg: "Hello player 13".into(),
        },
        Push::ToPlayers {
            ids: ["3", "10", "25", "37"].map(String::from).to_vec(),
            msg: "Hello group players".into(),
        },
        Push::ToRoom {
            room: "1000".into(),
            msg: "Hello room players".into(),
        },
    ]
}

/// Makes `node` a WebSocket node of the example (`wsserver.js`): binds
/// `?id=` ([`bind_query_id`]), answers `whoami` ([`install_whoami`]), and
/// handles the client events `joinRoom` and `command`.
///
/// `joinRoom {"roomId": "1000"}` replies once the node's subscription to the
/// room's namespace is confirmed, so a push to the room sent after the reply
/// reaches the new member from any node. (Nodes built with
/// `preset_room_namespaces([NAMESPACE])` are subscribed from the start, as
/// FAQ 11 recommends for predictable namespaces.)
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{client::Player, cluster};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// cluster::install_ws_node(&node)?;
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let mut p = Player::connect(&url, "7", within).await?;
/// let joined = p.request("joinRoom", &serde_json::json!({"roomId": "1000"}), within).await?;
/// assert_eq!(joined, Some(serde_json::json!({"msg": "Successfully joined the roomId:1000"})));
/// let command = serde_json::json!({"action": "toRoom", "roomId": "1000", "msg": "hello"});
/// p.request("command", &command, within).await?;
/// assert_eq!(p.wait_push(cluster::SAY, within).await?["msg"], "hello");
/// # Ok(())
/// # }
/// ```
pub fn install_ws_node(node: &Node) -> crosswire::Result<()> {
    bind_query_id(node);
    install_whoami(node)?;

    node.on(
        "joinRoom",
        |node: Node, socket: Socket, payload: Value| async move {
            let room = match payload.get("roomId") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(x)) => Some(x.to_string()),
                _ => None,
            };
            let ids = socket.socket_ids();
            match (room, ids.first()) {
                (Some(room), Some(id)) => match node.join_room(NAMESPACE, &room, id) {
                    Ok(()) => {
                        node.ready().await;
                        tracing::info!(node = %node.server_name(), %id, %room, "joined");
                        json!({ "msg": format!("Successfully joined the roomId:{room}") })
                    }
                    Err(e) => json!({ "msg": format!("Failed to join the room: {e}") }),
                },
                _ => json!({ "msg": "Failed to join the room" }),
            }
        },
    )?;

    node.on("command", |node: Node, payload: Value| async move {
        match Push::from_command(&payload) {
            Some(push) => match push.send(&node) {
                Ok(()) => json!({
                    "msg": format!("Message sent successfully [action:{}] ", push.action())
                }),
                Err(e) => json!({ "msg": format!("Failed to send message: {e}") }),
            },
            None => json!({ "msg": "Unknown action type" }),
        }
    })?;
    Ok(())
}

/// The boss (`boss.js`, as a server-only node): performs each push of
/// `script` from `boss`, waiting `pause` between two (pacing for people
/// watching the clients; nothing waits on it).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{client::Player, cluster, Backbone};
/// use std::time::Duration;
/// let backbone = Backbone::memory();
/// let ws = backbone.builder("ws1").await?.build()?;
/// cluster::install_ws_node(&ws)?;
/// let url = format!("ws://{}", ws.listen("127.0.0.1:0").await?);
/// let boss = backbone.builder("boss").await?.websocket(false).build()?;
/// ws.ready().await;
/// boss.ready().await;
/// let within = Duration::from_secs(5);
/// let mut p = Player::connect(&url, "13", within).await?;
/// let script = [cluster::Push::ToPlayer { id: "13".into(), msg: "hi 13".into() }];
/// let run = cluster::run_boss(&boss, &script, Duration::ZERO).await?;
/// assert_eq!(run.pushes, 1);
/// assert_eq!(p.wait_push(cluster::SAY, within).await?["msg"], "hi 13");
/// # Ok(())
/// # }
/// ```
pub async fn run_boss(boss: &Node, script: &[Push], pause: Duration) -> Result<BossRun> {
    for (i, push) in script.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        push.send(boss)?;
        tracing::info!(action = push.action(), msg = push.msg(), "boss pushed");
    }
    Ok(BossRun {
        pushes: script.len(),
    })
}

/// What [`run_boss`] did.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{client::Player, cluster, Backbone};
/// use std::time::Duration;
/// let backbone = Backbone::memory();
/// let ws = backbone.builder("ws1").await?.build()?;
/// cluster::install_ws_node(&ws)?;
/// let url = format!("ws://{}", ws.listen("127.0.0.1:0").await?);
/// let boss = backbone.builder("boss").await?.websocket(false).build()?;
/// ws.ready().await;
/// boss.ready().await;
/// let within = Duration::from_secs(5);
/// let mut p = Player::connect(&url, "13", within).await?;
/// let run = cluster::run_boss(&boss, &cluster::original_script(), Duration::ZERO).await?;
/// assert_eq!(run, cluster::BossRun { pushes: 4 });
/// assert_eq!(p.wait_push(cluster::SAY, within).await?["msg"], "Hello every one");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BossRun {
    /// Pushes performed.
    pub pushes: usize,
}

/// Connects players `1..=total` round-robin over `urls` (`clients.js`) and
/// puts the players of `rooms` (player id, room id) in their room. Returns
/// once every player is bound and every room join was confirmed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire::Match;
/// use crosswire_recipes::cluster;
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// cluster::install_ws_node(&node)?;
/// let urls = vec![format!("ws://{}", node.listen("127.0.0.1:0").await?)];
/// let players = cluster::connect_clients(&urls, 3, &[("2", "1000")], Duration::from_secs(5)).await?;
/// assert_eq!(players.len(), 3);
/// assert_eq!(node.client_count(), 3);
/// let members = node.room_socket_ids(cluster::NAMESPACE, Some("1000"), Match::Exact);
/// assert_eq!(members.into_iter().collect::<Vec<_>>(), ["2"]);
/// # Ok(())
/// # }
/// ```
pub async fn connect_clients(
    urls: &[String],
    total: usize,
    rooms: &[(&str, &str)],
    within: Duration,
) -> Result<Vec<Player>> {
    let mut players = Vec::with_capacity(total);
    if urls.is_empty() {
        return Ok(players);
    }
    for i in 1..=total {
        let url = &urls[(i - 1) % urls.len()];
        let id = i.to_string();
        let player = Player::connect(url, &id, within).await?;
        if let Some((_, room)) = rooms.iter().find(|(p, _)| *p == id) {
            let answer = player
                .request("joinRoom", &json!({ "roomId": room }), within)
                .await?;
            tracing::info!(player = %id, ?answer, "joinRoom");
        }
        players.push(player);
    }
    Ok(players)
}
