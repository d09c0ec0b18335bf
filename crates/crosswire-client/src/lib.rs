//! The Rust client of crosswire: [`Connector`], the port of the original
//! `WebSocketConnector` (websocket-cross-server-adapter), wire-compatible
//! with crosswire nodes and with the original Node.js server.
//!
//! * named events, fire-and-forget ([`Connector::emit`]) or with a reply
//!   ([`Connector::emit_with_callback`], a future; [`Connector::emit_then`],
//!   a callback), with a timeout and an "it is taking long" hook;
//! * events pushed by the node ([`Connector::on`]) and the connector's own
//!   lifecycle events ([`Connector::on_open`], ...), or everything as one
//!   stream ([`Connector::subscribe`]);
//! * the application heartbeat (ping string, pong timeout, close 4002);
//! * automatic reconnection with the original's schedule: a fast phase,
//!   exponential backoff with jitter up to a cap, an optional repeat limit.
//!
//! Wire formats come from [`crosswire_protocol`]: frames from
//! [`crosswire_protocol::client`], callback ids from
//! [`crosswire_protocol::ids::CallbackIds::client`], URL parameters from
//! [`crosswire_protocol::params::append_custom_params`].
//!
//! # Error codes
//!
//! Emits with a reply resolve to `Err(`[`EmitError`]`)` whose
//! [`code`](EmitError::code) is the original's `WS_NOT_OPEN` (not open when
//! emitted: nothing is sent) or `CALLBACK_TIMEOUT` (no reply in time), or
//! the new `DISCONNECTED`: the connection closed while the reply was
//! pending. Such callbacks fail **at once** when the connection closes for
//! whatever reason (node close, drop, pong timeout, reconnect, manual close)
//! instead of waiting for their timeout as in the original.
//!
//! # Close codes
//!
//! See [`close_code`]: 4001 manual close and 4002 pong timeout as in the
//! original; 4000 when [`Connector::reconnect`] closes an open connection
//! (the original sends 4001 there too, so a node cannot tell the two apart).
//!
//! # TLS
//!
//! `wss://` URLs need the `rustls` feature (rustls with the *ring* provider
//! and the webpki root certificates).
//!
//! ```no_run
//! use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let opts = ConnectorOptions {
//!         ping_interval: Duration::from_secs(5),
//!         ..ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1")
//!     };
//!     let c = Connector::new(opts)?;
//!     let mut events = c.subscribe();
//!     c.start();
//!     while let Some(ev) = events.recv().await {
//!         match ev {
//!             ClientEvent::Open => {
//!                 let reply = c.emit_with_callback("say", &json!({"text": "hi"})).await;
//!                 println!("reply: {reply:?}");
//!             }
//!             ClientEvent::Push { event, payload } => println!("{event}: {payload:?}"),
//!             ClientEvent::Close { code, .. } => {
//!                 println!("closed with {code}");
//!                 c.reconnect(false);
//!             }
//!             _ => {}
//!         }
//!     }
//!     Ok(())
//! }
//! ```

mod connector;
mod error;
mod event;
mod options;
mod task;

pub use connector::{Connector, EventStream, Listen, ReadyState, ReplyFuture, WeakConnector};
pub use crosswire_protocol;
pub use error::{error_code, ConnectorError, EmitError};
pub use event::{ClientEvent, EventKind, HandlerId, ReconnectInfo};
pub use options::{ConnectorOptions, EmitOptions};

/// What an emit with callback resolves to: the reply payload (`None` when
/// the node replied without a value) or why there is none.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("echo", |_socket, payload, reply| async move {
/// #     if let Some(reply) = reply {
/// #         let _ = reply.send(&payload);
/// #     }
/// # })?;
/// # node.on("shout", |socket, payload, _reply| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
/// # let mut events = c.subscribe();
/// # c.start();
/// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
/// use crosswire_client::ReplyResult;
/// let ok: ReplyResult = c.emit_with_callback("echo", &1).await;
/// assert_eq!(ok, Ok(Some(1.into())));
/// c.manual_close();
/// while !matches!(events.recv().await, Some(crosswire_client::ClientEvent::Close { .. })) {}
/// let err: ReplyResult = c.emit_with_callback("echo", &1).await;
/// assert_eq!(err.map_err(|e| e.code()), Err("WS_NOT_OPEN"));
/// # Ok(())
/// # }
/// ```
pub type ReplyResult = Result<Option<serde_json::Value>, EmitError>;

/// Close codes this client sends or reports.
///
/// # Examples
///
/// ```
/// use crosswire_client::close_code::*;
/// assert_eq!(GOING_AWAY, 1001);
/// assert_eq!(NO_STATUS, 1005);
/// assert_eq!(ABNORMAL, 1006);
/// assert_eq!(RECONNECT, 4000);
/// assert_eq!(MANUAL_CLOSE, 4001);
/// assert_eq!(PONG_TIMEOUT, 4002);
/// ```
pub mod close_code {
    /// The client goes away: every [`Connector`](crate::Connector) handle was dropped.
    pub const GOING_AWAY: u16 = 1001;
    /// Reported when the node's close frame carried no code.
    pub const NO_STATUS: u16 = 1005;
    /// Reported when the connection ended without a close frame (or the
    /// close handshake timed out); such a close reconnects automatically.
    pub const ABNORMAL: u16 = 1006;
    /// Sent when [`Connector::reconnect`](crate::Connector::reconnect)
    /// closes an open connection (reason `client reconnect`).
    pub const RECONNECT: u16 = 4000;
    /// Sent by [`Connector::manual_close`](crate::Connector::manual_close)
    /// (reason `client manual close`).
    pub const MANUAL_CLOSE: u16 = 4001;
    /// Sent when the heartbeat reply did not come in time (reason `pong timeout`).
    pub const PONG_TIMEOUT: u16 = 4002;
}
