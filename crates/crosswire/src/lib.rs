//! # crosswire
//!
//! A distributed WebSocket framework: clients send named events (with
//! optional callbacks) to a [`Node`]; the node pushes events to every
//! socket, to socket ids, or to rooms grouped in namespaces; many nodes act
//! as one server through a bus. It speaks the wire protocol of the Node.js
//! library `websocket-cross-server-adapter`, so that library's browser
//! client works against a crosswire node unchanged.
//!
//! ## The model
//!
//! * A [`Node`] owns its connections ([`Socket`]s). The application binds
//!   a socket to one or more *socket ids* of its choosing
//!   ([`Node::set_user_socket`]); sends address ids, not connections.
//! * Client events are registered with [`Node::on`]; system events
//!   (connection, close, pong, ...) with their own methods, in a separate
//!   registry, so a client can never fire them.
//! * Every send encodes its frame once; each socket has a bounded outbound
//!   queue drained by its own writer, and a socket that cannot keep up is
//!   handled by the [`SlowConsumerPolicy`].
//!
//! ```no_run
//! use crosswire::{Node, RoomSend};
//!
//! #[tokio::main]
//! async fn main() -> crosswire::Result<()> {
//!     let node = Node::builder().server_name("n1").build()?;
//!     let n = node.clone();
//!     node.on_connection(move |socket, handshake| {
//!         let n = n.clone();
//!         async move {
//!             match handshake.param("id") {
//!                 Some(id) => { let _ = n.set_user_socket(id, &socket); }
//!                 None => socket.close(4011, "Auth failure"),
//!             }
//!         }
//!     });
//!     let n = node.clone();
//!     node.on("joinRoom", move |socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| {
//!         let n = n.clone();
//!         async move {
//!             let room = payload["room"].as_str().unwrap_or("lobby").to_owned();
//!             for id in socket.socket_ids() {
//!                 let _ = n.join_room("chat", &room, &id);
//!             }
//!             let _ = n.broadcast_to_room("chat", &room, "joined", &payload, RoomSend::new());
//!             if let Some(reply) = reply { let _ = reply.send(&true); }
//!         }
//!     })?;
//!     node.listen("127.0.0.1:9000").await?;
//!     tokio::signal::ctrl_c().await?;
//!     node.shutdown(std::time::Duration::from_secs(5)).await;
//!     Ok(())
//! }
//! ```

pub mod auth;
pub mod bus;
#[cfg(feature = "clap")]
pub mod cli;
mod cluster;
pub mod config;
pub mod cross_server;
pub mod error;
pub mod events;
pub mod handler;
mod listener;
pub mod node;
pub mod operators;
pub mod ops;
mod queue;
pub mod rooms;
pub mod signing;
pub mod socket;
pub mod stats;
pub mod ws;

pub use config::{NodeConfig, RateLimit};
pub use cross_server::{
    CrossReply, CrossServerCall, CrossServerMessage, CrossServerResponse, CrossServerResult,
    ReplyData,
};
pub use crosswire_protocol as protocol;
pub use error::{Error, Result};
pub use events::{HandlerId, Reply};
pub use handler::{Data, State};
pub use node::{CloseInfo, Node, NodeBuilder, RoomSend, WeakNode};
pub use ops::{Health, HealthStatus};
/// The metrics registry crate of [`Node::register_metrics`], re-exported so
/// that an application uses the same version.
pub use prometheus_client;
pub use rooms::Match;
pub use socket::{close_code, Handshake, SlowConsumerPolicy, Socket};
pub use stats::{HistogramSnapshot, StatsSnapshot, HANDLER_BUCKETS};
pub use ws::Refusal;

/// Support for crosswire's own benchmarks; not part of the public API.
#[doc(hidden)]
pub mod bench_support {
    use crate::node::Node;
    use crate::socket::{Handshake, Socket};
    use std::sync::Arc;

    /// Registers a socket without a network connection, bound to
    /// `socket_id`; [`drain`] empties its queue as a writer would.
    pub fn detached_socket(node: &Node, socket_id: &str) -> Socket {
        let inner = &node.inner;
        let conn_id = inner
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handshake = Arc::new(Handshake {
            uri: http::Uri::from_static("/"),
            params: Default::default(),
            headers: Default::default(),
            remote_addr: None,
            data: Default::default(),
        });
        let socket = Socket::new(node, conn_id, handshake, true);
        inner.connections.insert(conn_id, socket.clone());
        let _ = node.set_user_socket(socket_id, &socket);
        socket
    }

    /// Takes every queued frame of a detached socket; returns how many.
    pub fn drain(
        socket: &Socket,
        buf: &mut std::collections::VecDeque<axum::extract::ws::Utf8Bytes>,
    ) -> usize {
        buf.clear();
        socket.0.queue.try_take(buf);
        buf.len()
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
