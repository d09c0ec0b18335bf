//! The Rust client of crosswire: [`Connector`], the port of the original
//! `WebSocketConnector` (websocket-cross-server-adapter), wire-compatible
//! with crosswire nodes and with the original Node.js server.
//!
//! * named events, fire-and-forget ([`Connector::emit`]) or with a reply:
//!   typed ([`Connector::request`], the reply deserialized into any type),
//!   raw ([`Connector::emit_with_callback`], a future of the JSON value;
//!   [`Connector::emit_then`], a callback), with a timeout and an "it is
//!   taking long" hook;
//! * events pushed by the node ([`Connector::on`]), whose handlers take the
//!   payload typed, the application [`State`] and the [`Connector`] as
//!   arguments (see [`Handler`]), or the raw `&serde_json::Value`; the
//!   connector's own lifecycle events ([`Connector::on_open`], ...); or
//!   everything as one stream ([`Connector::subscribe`]);
//! * the application heartbeat (ping string, pong timeout, close 4002);
//! * automatic reconnection with the original's schedule: a fast phase,
//!   exponential backoff with jitter up to a cap, an optional repeat limit;
//! * missed-message recovery, opt-in ([`ConnectorOptions::recovery()`]): after
//!   a reconnection, what was sent to its rooms while it was away, each
//!   message once and in order before anything new (marked, see [`Meta`]),
//!   or a report that it is not all there any more
//!   ([`Connector::on_recovery`]);
//! * room presence, opt-in ([`ConnectorOptions::presence()`]): the members of
//!   the rooms the node puts the connection in, over the whole cluster, with
//!   every join and leave ([`Connector::on_presence`],
//!   [`Connector::presence_members`]).
//!
//! Wire formats come from [`crosswire_protocol`]: frames from
//! [`crosswire_protocol::client`], callback ids from
//! [`crosswire_protocol::ids::CallbackIds::client`], URL parameters from
//! [`crosswire_protocol::params::append_custom_params`].
//!
//! # Typed handlers and replies
//!
//! ```no_run
//! use crosswire_client::{Connector, ConnectorOptions, State};
//! use serde::{Deserialize, Serialize};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! #[derive(Deserialize)]
//! struct RoomMessage {
//!     from: String,
//!     text: String,
//! }
//! #[derive(Serialize)]
//! struct JoinRoom<'a> {
//!     #[serde(rename = "roomId")]
//!     room_id: &'a str,
//! }
//! #[derive(Deserialize, Debug)]
//! struct Joined {
//!     members: u32,
//! }
//! #[derive(Default)]
//! struct App {
//!     messages: AtomicU64,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1");
//!     let c = Connector::builder(options).state(Arc::new(App::default())).build()?;
//!     // The payload typed, the state, and a handle to answer with: the
//!     // handler captures nothing, so it never keeps the connector alive.
//!     c.on("roomMessage", |msg: RoomMessage, State(app): State<Arc<App>>, c: Connector| {
//!         app.messages.fetch_add(1, Ordering::Relaxed);
//!         println!("{}: {}", msg.from, msg.text);
//!         let _ = c.emit("seen", &msg.from);
//!     })?;
//!     // The untyped form still sees every payload as JSON.
//!     c.on("serverTime", |payload: &serde_json::Value| println!("time: {payload}"))?;
//!     let mut events = c.subscribe();
//!     c.start();
//!     while events.recv().await != Some(crosswire_client::ClientEvent::Open) {}
//!     // The reply deserialized into `Joined`, or an `EmitError`.
//!     let joined: Joined = c.request("joinRoom", &JoinRoom { room_id: "lobby" }).await?;
//!     println!("{joined:?}; {} payloads refused so far", c.rejected_payloads());
//!     Ok(())
//! }
//! ```
//!
//! A pushed payload that does not deserialize into a handler's type never
//! reaches that handler: it is logged (`tracing`, `warn`) and counted by
//! [`Connector::rejected_payloads`]. A reply that does not deserialize gives
//! [`EmitError::Decode`] (`DECODE_ERROR`).
//!
//! # Error codes
//!
//! Emits with a reply resolve to `Err(`[`EmitError`]`)` whose
//! [`code`](EmitError::code) is the original's `WS_NOT_OPEN` (not open when
//! emitted: nothing is sent) or `CALLBACK_TIMEOUT` (no reply in time), or
//! the new `DISCONNECTED`: the connection closed while the reply was
//! pending, or `DECODE_ERROR` (typed forms: the reply did not fit the
//! type). Such callbacks fail **at once** when the connection closes for
//! whatever reason (node close, drop, pong timeout, reconnect, manual close)
//! instead of waiting for their timeout as in the original.
//!
//! # Close codes
//!
//! See [`close_code`]: 4001 manual close and 4002 pong timeout as in the
//! original; 4000 when [`Connector::reconnect`] closes an open connection
//! (the original sends 4001 there too, so a node cannot tell the two apart).
//!
//! # Recovery
//!
//! With [`ConnectorOptions::recovery()`] on, against a crosswire node whose
//! namespace keeps a history (`NodeBuilder::history`), the connector holds
//! the last position it received in every room and resumes from them on
//! every reconnection: when the node puts it back in a room, the messages
//! it missed come first, each once, in order, marked as recovered, then a
//! report for that room ([`ClientEvent::Recovery`]).
//!
//! ```no_run
//! use crosswire_client::{Connector, ConnectorOptions, Meta, RecoveryStatus};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let options = ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1").recovery(true);
//!     let c = Connector::new(options)?;
//!     c.on("say", |text: String, meta: Meta| {
//!         let mark = if meta.recovered { " (sent while you were away)" } else { "" };
//!         println!("{text}{mark}");
//!     })?;
//!     c.on_recovery(|report| match report.recovery {
//!         RecoveryStatus::Incomplete => {
//!             println!("{}: some messages are lost ({:?}): reload", report.room, report.reason)
//!         }
//!         RecoveryStatus::Complete => println!("{}: {} recovered", report.room, report.recovered),
//!         RecoveryStatus::None => {}
//!     });
//!     let mut events = c.subscribe();
//!     c.start();
//!     while events.recv().await.is_some() {} // handlers run meanwhile
//!     Ok(())
//! }
//! ```
//!
//! # TLS
//!
//! `wss://` URLs need the `rustls` feature (rustls with the *ring* provider
//! and the webpki root certificates).
//!
//! # Events as a stream
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

mod builder;
pub mod close_code;
mod command;
mod connector;
mod emit;
mod error;
mod event;
mod handler;
mod listen;
mod options;
mod recovery;
mod registry;
mod reply;
mod shared;
mod stream;
mod task;

pub use builder::ConnectorBuilder;
pub use connector::{Connector, WeakConnector};
pub use crosswire_protocol;
pub use crosswire_protocol::history::{GapReason, Joined, Position, RecoveryStatus, RoomPosition};
pub use crosswire_protocol::presence::{Member, Op as PresenceOp};
pub use error::{error_code, ConnectorError, EmitError};
pub use event::{ClientEvent, EventKind, HandlerId, PresenceReport, ReconnectInfo};
pub use handler::{FromEvent, Handler, State};
pub use listen::Listen;
pub use options::{ConnectorOptions, EmitOptions};
pub use recovery::Meta;
pub use reply::{DecodedReply, ReplyFuture, ReplyResult};
pub use shared::ReadyState;
pub use stream::EventStream;

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
