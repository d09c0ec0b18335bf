//! Handlers that take what they ask for, and reply with what they return.
//!
//! A handler of a client event or of a cross-server event is an async
//! function (or closure) whose arguments are **extractors** and whose output
//! becomes the **reply**:
//!
//! | argument | client events | cross-server events | what it is |
//! |---|---|---|---|
//! | [`Data<T>`] | ✓ | ✓ | the payload deserialized into any `T: DeserializeOwned`; a payload that does not fit never reaches the handler |
//! | [`serde_json::Value`] | ✓ | ✓ | the payload as is |
//! | [`State<S>`] | ✓ | ✓ | the application's state given to [`NodeBuilder::state`](crate::NodeBuilder::state) |
//! | [`Node`](crate::Node) | ✓ | ✓ | the node (the handler does not keep it: nothing is captured) |
//! | [`Socket`](crate::Socket) | ✓ | | the sending socket |
//! | `Option<`[`Reply`](crate::Reply)`>` | ✓ | | the reply handle, to reply later or more than once (the return value is then not sent) |
//! | [`CrossServerMessage`](crate::CrossServerMessage) | | ✓ | the whole message (sender, targets, payload) |
//! | `Option<`[`CrossReply`](crate::CrossReply)`>` | | ✓ | the reply handle of a cross-server call |
//!
//! What the handler returns ([`IntoReply`]): `()` and `None` send nothing; a
//! [`Value`](serde_json::Value), a [`Data<T>`] or `Ok(T)` of a `Result<T, E>` is sent as the
//! reply when the sender asked for one; `Err(e)` is sent as the error reply
//! `{"error": {"code": "...", "message": "..."}}` (see [`ReplyError`]). A
//! payload that does not deserialize gets the error reply with code
//! `"bad_payload"` and is counted (`crosswire_frames_dropped_total{reason="bad_payload"}`).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crosswire::handler::{Data, State};
//! use crosswire::{Node, Socket};
//! use serde::Deserialize;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! #[derive(Clone, Default)]
//! struct App { calls: Arc<AtomicU64> }
//!
//! let app = App::default();
//! let node = Node::builder().state(app.clone()).build()?;
//! node.on("add", |Data(add): Data<Add>, State(app): State<App>| async move {
//!     app.calls.fetch_add(1, Ordering::Relaxed);
//!     Ok::<_, String>(add.a + add.b)
//! })?;
//! node.on("whoami", |socket: Socket| async move { Data(socket.socket_ids()) })?;
//! # let addr = node.listen("127.0.0.1:0").await?;
//! # use futures_util::{SinkExt, StreamExt};
//! # let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
//! # ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"event":"add","payload":{"a":2,"b":3},"callbackId":"1"}"#)).await?;
//! # let reply = ws.next().await.ok_or("closed")??.into_text()?;
//! # assert!(reply.contains("\"payload\":5"), "{reply}");
//! # ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"event":"add","payload":{"a":"x"},"callbackId":"2"}"#)).await?;
//! # let reply = ws.next().await.ok_or("closed")??.into_text()?;
//! # assert!(reply.contains("bad_payload"), "{reply}");
//! # assert_eq!(app.calls.load(Ordering::Relaxed), 1);
//! # Ok(())
//! # }
//! ```

pub use crate::extract::{
    Context, Data, FromContext, Handler, IntoReply, Rejection, ReplyError, State, States,
    BAD_PAYLOAD,
};
pub use crate::node::{ClientContext, CrossContext};
