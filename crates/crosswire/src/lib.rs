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
//! use crosswire::{Data, Node, Socket};
//!
//! #[derive(serde::Deserialize)]
//! struct Join { room: String }
//!
//! #[tokio::main]
//! async fn main() -> crosswire::Result<()> {
//!     let node = Node::builder().server_name("n1").build()?;
//!     node.on_connection(|socket, handshake| async move {
//!         match (socket.node(), handshake.param("id")) {
//!             (Some(node), Some(id)) => { let _ = node.set_user_socket(id, &socket); }
//!             _ => socket.close(4011, "Auth failure"),
//!         }
//!     });
//!     // The payload arrives typed; the return value is the reply.
//!     node.on("joinRoom", |node: Node, socket: Socket, Data(join): Data<Join>| async move {
//!         for id in socket.socket_ids() {
//!             node.join_room("chat", &join.room, &id)?;
//!         }
//!         node.to_room("chat", &join.room).emit("joined", &socket.socket_ids())?;
//!         Ok::<_, crosswire::Error>(true)
//!     })?;
//!     node.listen("127.0.0.1:9000").await?;
//!     tokio::signal::ctrl_c().await?;
//!     node.shutdown(std::time::Duration::from_secs(5)).await;
//!     Ok(())
//! }
//! ```
//!
//! ## Inside
//!
//! The modules form layers, each using only those below it:
//!
//! * the wire ([`protocol`]), [`config`], [`error`], the counters
//!   ([`stats`]), the bounded outbound queue, the room index ([`rooms`]),
//!   the [`bus`] trait and its in-memory bus;
//! * [`Socket`] (one connection's queue and state; it reaches its node
//!   through an opaque weak pointer), [`events`] (listener registries and
//!   [`Reply`]), [`auth`], [`cross_server`] (call results and the table of
//!   pending calls), the handler machinery ([`handler`]), and local
//!   delivery (one type that owns the node's connections, bound ids and
//!   rooms and writes frames to them; it knows nothing of the bus);
//! * [`node`]: the [`Node`] composes them — the handler registries, the
//!   sends (local delivery, then the relay to other nodes), the bus side
//!   (subscriptions, the receive loop, membership), cross-server calls, and
//!   the interface the transport uses (a socket for a new connection, the
//!   handling of a text frame);
//! * [`ws`] and the listener: the WebSocket transport (upgrade, one task
//!   per connection, the accept loop), which asks the node only through
//!   that interface; [`operators`] and [`ops`] (health, metrics).

pub mod auth;
pub mod bus;
mod catch_up;
#[cfg(feature = "clap")]
pub mod cli;
pub mod config;
pub mod cross_server;
pub mod error;
pub mod events;
mod extract;
pub mod handler;
pub mod history;
pub mod http_api;
mod listener;
mod local;
pub mod node;
pub mod operators;
pub mod ops;
mod queue;
pub mod rooms;
pub mod signing;
pub mod socket;
pub mod stats;
pub mod ws;

pub use auth::Refusal;
pub use config::SlowConsumerPolicy;
#[cfg(feature = "tls")]
pub use config::TlsConfig;
pub use config::{NodeConfig, RateLimit, Routing};
pub use cross_server::{
    CrossServerCall, CrossServerMessage, CrossServerResponse, CrossServerResult, ReplyData,
};
pub use crosswire_protocol as protocol;
pub use error::{Error, Result};
pub use events::{HandlerId, Reply};
pub use handler::{Data, State};
pub use node::{
    CloseInfo, ClusterAnswer, ClusterQuery, ClusterSocket, CrossReply, CrossServerEmit, Node,
    NodeBuilder, RoomSend, WeakNode, CLAIM_EVENT, DEFAULT_QUERY_TIMEOUT, DIRECTORY_EVENT,
    DIRECTORY_SYNC_EVENT, KICKED_CLOSE_CODE, PRESENCE_EVENT, QUERY_EVENT, SYNC_EVENT,
};
pub use ops::{Health, HealthStatus};
/// The metrics registry crate of [`Node::register_metrics`], re-exported so
/// that an application uses the same version.
pub use prometheus_client;
pub use rooms::Match;
pub use socket::{close_code, Handshake, Socket};
pub use stats::{HistogramSnapshot, StatsSnapshot, HANDLER_BUCKETS};

/// Support for crosswire's own benchmarks; not part of the public API.
#[doc(hidden)]
pub mod bench_support {
    use crate::node::Node;
    use crate::socket::{Handshake, Socket};
    use std::sync::Arc;

    /// Registers a socket without a network connection, bound to
    /// `socket_id`; [`drain`] empties its queue as a writer would.
    pub fn detached_socket(node: &Node, socket_id: &str) -> Socket {
        let handshake = Arc::new(Handshake {
            uri: http::Uri::from_static("/"),
            params: Default::default(),
            headers: Default::default(),
            remote_addr: None,
            data: Default::default(),
        });
        let socket = node.open_socket(handshake);
        let _ = node.set_user_socket(socket_id, &socket);
        socket
    }

    /// Takes every queued frame of a detached socket; returns how many.
    pub fn drain(
        socket: &Socket,
        buf: &mut std::collections::VecDeque<axum::extract::ws::Utf8Bytes>,
    ) -> usize {
        buf.clear();
        socket.queue().try_take(buf);
        buf.len()
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
