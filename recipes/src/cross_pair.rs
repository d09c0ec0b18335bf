//! The original's second example (`examples/cross-server`): nodes without
//! WebSocket clients that only talk to each other.
//!
//! * [`install_say`] is `cserver.js`: a server-only node answering the
//!   cross-server event `say` with `{"msg": "Hi, this is server <name> ..."}`;
//! * [`run_sender`] is `sender.js`: it sends `say` without asking for
//!   replies, then with replies as a stream (the original's callback form:
//!   one item per reply, then possibly a timeout item), collected (the
//!   promise form), targeted at one node, broadcast with `except_self`, and
//!   at a node that does not exist, to show a timeout.
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::{cross_pair, Backbone};
//! use std::time::Duration;
//!
//! let backbone = Backbone::memory();
//! for name in ["serverA", "serverB"] {
//!     let node = backbone.builder(name).await?.websocket(false).build()?;
//!     cross_pair::install_say(&node)?;
//! }
//! let sender = backbone.builder("senderA").await?.websocket(false).build()?;
//! cross_pair::install_say(&sender)?;
//! let servers = vec!["serverA".to_owned(), "serverB".to_owned()];
//! crosswire_recipes::wait_for_nodes(&sender, &servers, Duration::from_secs(5)).await?;
//! let report = cross_pair::run_sender(&sender, &servers, Duration::from_secs(5), Duration::from_secs(1)).await?;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(()) }
//! ```

use crosswire::{CrossServerMessage, CrossServerResponse, CrossServerResult, Node};
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// The cross-server event of the example.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::cross_pair::SAY, "say");
/// ```
pub const SAY: &str = "say";

/// A node name that no node has: calls to it time out.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::cross_pair::{self, GHOST};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").websocket(false).build()?;
/// cross_pair::install_say(&node)?;
/// let call = node.emit_cross_server(cross_pair::SAY, &"hello")?.to([GHOST]);
/// let result = call.timeout(Duration::from_millis(100)).collect().await?;
/// assert!(!result.success);
/// assert_eq!(result.unresponded_count, 1);
/// # Ok(())
/// # }
/// ```
pub const GHOST: &str = "ghost-server";

/// Answers [`SAY`] on `node` (the original's `cserver.js` handler). The
/// message is logged; the reply goes back only when the sender asked for
/// one.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_recipes::cross_pair;
/// let node = crosswire::Node::builder().server_name("serverA").websocket(false).build()?;
/// cross_pair::install_say(&node)?;
/// let result = node.emit_cross_server(cross_pair::SAY, &"hello")?.collect().await?;
/// let reply = result.responses["serverA"].payload.clone().ok_or("no reply")?;
/// assert_eq!(reply["msg"], "Hi, this is server serverA responding to you");
/// # Ok(())
/// # }
/// ```
pub fn install_say(node: &Node) -> crosswire::Result<()> {
    node.on_cross_server(SAY, |node: Node, msg: CrossServerMessage| async move {
        let name = node.server_name();
        tracing::info!(
            node = %name,
            from = ?msg.sender_server,
            payload = %msg.payload,
            wants_reply = msg.callback_id.is_some(),
            "received say"
        );
        json!({ "msg": format!("Hi, this is server {name} responding to you") })
    })?;
    Ok(())
}

/// What [`run_sender`] got back, step by step (serialized in the original's
/// result shapes).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{cross_pair, Backbone};
/// use std::time::Duration;
/// let backbone = Backbone::memory();
/// let server = backbone.builder("serverA").await?.websocket(false).build()?;
/// let sender = backbone.builder("senderA").await?.websocket(false).build()?;
/// cross_pair::install_say(&server)?;
/// cross_pair::install_say(&sender)?;
/// server.ready().await;
/// sender.ready().await;
/// let servers = ["serverA".to_owned()];
/// let within = Duration::from_secs(5);
/// let report: cross_pair::SenderReport =
///     cross_pair::run_sender(&sender, &servers, within, Duration::from_millis(100)).await?;
/// assert_eq!(report.targeted.len(), 1);
/// assert!(report.promise.success);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct SenderReport {
    /// Callback form, targeted at the first server: one reply, remaining 0.
    pub targeted: Vec<CrossServerResponse>,
    /// Callback form, broadcast to every node including the sender,
    /// expecting `servers.len() + 1` replies: one item per reply, counting
    /// down to 0.
    pub broadcast: Vec<CrossServerResponse>,
    /// Promise form, broadcast with `except_self`, expecting one reply per
    /// server.
    pub promise: CrossServerResult,
    /// Promise form, targeted at every server and at [`GHOST`]: not
    /// successful, one reply missing, the others present.
    pub timed_out: CrossServerResult,
}

/// The original's `sender.js`: every way of sending [`SAY`] (see
/// [`SenderReport`]). `servers` are the nodes answering `say` (the sender
/// answers too, see [`install_say`]); `timeout` bounds each answerable call
/// and `ghost_wait` is how long the last, unanswerable call waits.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{cross_pair, Backbone};
/// use std::time::Duration;
/// let backbone = Backbone::memory();
/// let server = backbone.builder("serverA").await?.websocket(false).build()?;
/// let sender = backbone.builder("senderA").await?.websocket(false).build()?;
/// cross_pair::install_say(&server)?;
/// cross_pair::install_say(&sender)?;
/// server.ready().await;
/// sender.ready().await;
/// let servers = ["serverA".to_owned()];
/// let within = Duration::from_secs(5);
/// let report = cross_pair::run_sender(&sender, &servers, within, Duration::from_millis(100)).await?;
/// assert_eq!(report.broadcast.len(), 2); // serverA and the sender itself
/// assert_eq!(report.timed_out.unresponded_count, 1); // the ghost
/// assert!(report.timed_out.responses.contains_key("serverA"));
/// # Ok(())
/// # }
/// ```
pub async fn run_sender(
    sender: &Node,
    servers: &[String],
    timeout: Duration,
    ghost_wait: Duration,
) -> crosswire::Result<SenderReport> {
    let me = sender.server_name();

    // 1. Fire and forget, to every node (`emitCrossServer` without callback).
    sender
        .emit_cross_server(
            SAY,
            &json!({ "content": format!("Hi everyone, I am {me}") }),
        )?
        .send()?;

    // 2. Callback form, one target: the stream yields each reply as it comes.
    let mut targeted = Vec::new();
    if let Some(first) = servers.first() {
        let mut call = sender
            .emit_cross_server(SAY, &json!({ "content": format!("Hi {first}, I am {me}") }))?
            .to([first.clone()])
            .timeout(timeout)
            .stream()?;
        while let Some(item) = call.next().await {
            targeted.push(item);
        }
    }

    // 3. Callback form, broadcast (this node included), N replies expected.
    let mut broadcast = Vec::new();
    let mut call = sender
        .emit_cross_server(
            SAY,
            &json!({ "content": format!("Hi everyone, I am {me}, please respond with your callback.") }),
        )?
        .expect(servers.len() + 1)
        .timeout(timeout)
        .stream()?;
    while let Some(item) = call.next().await {
        broadcast.push(item);
    }

    // 4. Promise form, broadcast to the others only.
    let promise = sender
        .emit_cross_server(
            SAY,
            &json!({ "content": format!("Hi everyone, I am {me}, please respond for the promise.") }),
        )?
        .except_self()
        .expect(servers.len())
        .timeout(timeout)
        .collect()
        .await?;

    // 5. A target that does not exist: the call resolves at its timeout with
    //    the replies that came and the number missing.
    let mut targets: Vec<String> = servers.to_vec();
    targets.push(GHOST.to_owned());
    let timed_out = sender
        .emit_cross_server(SAY, &json!({ "content": "is anyone there?" }))?
        .to(targets)
        .timeout(ghost_wait)
        .collect()
        .await?;

    Ok(SenderReport {
        targeted,
        broadcast,
        promise,
        timed_out,
    })
}
