//! The node: one server of a crosswire cluster. It owns the sockets, the
//! socket-id registry, the room index and the event registries, and performs
//! every send.

use crate::auth::UpgradeHook;
use crate::bus::Bus;
use crate::config::NodeConfig;
use crate::cross_server::PendingCalls;
use crate::error::{non_empty, EVENT_MSG};
use crate::events::{EventMap, HandlerId, Listeners, SystemHandler};
use crate::extract::{ErasedHandler, Handler, States};
use crate::local::Local;
use crate::socket::{CloseRequest, Handshake, Socket};
use crate::stats::{Stats, StatsSnapshot};
use crate::{Error, Result};
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use cluster::Cluster;
use crosswire_protocol::channels::Channels;
use crosswire_protocol::client::PushFrame;
use dashmap::DashMap;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod builder;
pub(crate) mod cluster;
mod context;
mod cross;
mod directory;
mod dispatch;
mod handlers;
mod presence;
mod queries;
mod recovery;
mod registry;
mod relay;
mod rooms;
mod sends;
mod session;
mod tasks;

pub use builder::NodeBuilder;
pub use context::{ClientContext, CrossContext};
pub use cross::{CrossReply, CrossServerEmit};
pub use directory::{DIRECTORY_EVENT, DIRECTORY_SYNC_EVENT};
pub use presence::{PRESENCE_EVENT, SYNC_EVENT};
pub use queries::{ClusterAnswer, ClusterQuery, ClusterSocket, DEFAULT_QUERY_TIMEOUT, QUERY_EVENT};
pub use sends::RoomSend;
pub use session::{CLAIM_EVENT, KICKED_CLOSE_CODE};

/// Why a connection closed, as the `close` event reports it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use futures_util::{SinkExt, StreamExt};
/// # let node = crosswire::Node::builder().server_name("n1").build()?;
/// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
/// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
/// # let socket = sockets.recv().await.ok_or("no connection")?;
/// use crosswire::CloseInfo;
/// use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
/// let (tx, mut closes) = tokio::sync::mpsc::unbounded_channel();
/// node.on_close(move |_socket, info: CloseInfo| {
///     let _ = tx.send(info);
///     async {}
/// });
/// client.close(Some(CloseFrame { code: CloseCode::from(4100), reason: "bye".into() })).await?;
/// let info = closes.recv().await.ok_or("no close")?;
/// assert_eq!(info, CloseInfo { code: 4100, reason: "bye".into() });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code the peer sent, or 1006 when the connection ended
    /// without a close frame (dropped, terminated, or timed out).
    pub code: u16,
    /// The close reason the peer sent.
    pub reason: String,
}

#[derive(Default)]
pub(crate) struct SystemEvents {
    pub(crate) connection: Listeners<SystemHandler<(Socket, Arc<Handshake>)>>,
    pub(crate) close: Listeners<SystemHandler<(Socket, CloseInfo)>>,
    pub(crate) error: Listeners<SystemHandler<(Socket, Arc<str>)>>,
    pub(crate) pong: Listeners<SystemHandler<(Socket, Bytes)>>,
    pub(crate) message: Listeners<SystemHandler<(Socket, Utf8Bytes)>>,
    pub(crate) client_ping: Listeners<SystemHandler<Socket>>,
    pub(crate) server_error: Listeners<SystemHandler<Arc<Error>>>,
    pub(crate) listening: Listeners<SystemHandler<SocketAddr>>,
    pub(crate) server_close: Listeners<SystemHandler<()>>,
}

impl SystemEvents {
    fn remove(&self, id: HandlerId) -> usize {
        let p = |h: HandlerId, _: Option<&str>| h == id;
        self.connection.remove_where(p)
            + self.close.remove_where(p)
            + self.error.remove_where(p)
            + self.pong.remove_where(p)
            + self.message.remove_where(p)
            + self.client_ping.remove_where(p)
            + self.server_error.remove_where(p)
            + self.listening.remove_where(p)
            + self.server_close.remove_where(p)
    }
}

pub(crate) struct NodeInner {
    pub(in crate::node) config: NodeConfig,
    /// The application's state, by type ([`NodeBuilder::state`]).
    pub(in crate::node) state: States,
    pub(in crate::node) channels: Channels,
    pub(in crate::node) stats: Arc<Stats>,
    pub(in crate::node) client_events: EventMap<dyn ErasedHandler<ClientContext>>,
    pub(in crate::node) system: SystemEvents,
    /// Connections, bound socket ids and rooms of this node.
    pub(in crate::node) local: Local,
    /// The room history, when a namespace keeps one.
    pub(in crate::node) history: Option<crate::history::SharedHistory>,
    pub(in crate::node) upgrade_hook: Option<UpgradeHook>,
    pub(in crate::node) shutting_down: AtomicBool,
    /// Cancelled when the node shuts down: stops listeners and the sweep.
    pub(in crate::node) shutdown: CancellationToken,
    /// Tracks connection tasks, so shutdown can wait for them.
    pub(in crate::node) tasks: tokio_util::task::TaskTracker,
    /// The bus side of the node, when it has a bus.
    pub(in crate::node) cluster: Option<Arc<Cluster>>,
    pub(in crate::node) cross_events: EventMap<dyn ErasedHandler<CrossContext>>,
    pub(in crate::node) pending: Arc<PendingCalls>,
    pub(in crate::node) callback_ids: CallbackIdSource,
    pub(in crate::node) members: DashMap<String, std::time::Instant>,
    /// Logins, for one session per id.
    pub(in crate::node) sessions: session::Sessions,
    /// The cluster's room presence, as this node knows it.
    pub(in crate::node) presence: presence::Presence,
    /// Which node holds which socket id (routing by host).
    pub(in crate::node) directory: directory::Directory,
    /// Why this node's cluster mixes routing modes, once it saw it.
    pub(in crate::node) routing_conflict: parking_lot::Mutex<Option<String>>,
    /// Senders seen on the bus that have not announced themselves yet, with
    /// when they were first seen (routing by host).
    pub(in crate::node) unannounced: DashMap<String, std::time::Instant>,
    pub(in crate::node) custom_handler: RwLock<Option<Arc<CustomHandler>>>,
    pub(in crate::node) auth: Option<Arc<crate::auth::AuthMessage>>,
}

pub(crate) type CallbackIdSource = Box<dyn Fn() -> String + Send + Sync>;
pub(crate) type CustomHandler =
    dyn Fn(String, Value) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync;

/// One server of a crosswire cluster (the original's
/// `WebSocketCrossServerAdapter`). Cheap to clone: clones share the node.
///
/// # Examples
///
/// ```no_run
/// use crosswire::Node;
/// # async fn run() -> crosswire::Result<()> {
/// let node = Node::builder().server_name("n1").build()?;
/// node.on("say", |socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
///     if let Some(reply) = reply {
///         let _ = reply.send(&serde_json::json!({"echo": payload}));
///     }
/// })?;
/// let addr = node.listen("127.0.0.1:9000").await?;
/// println!("listening on {addr}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("server_name", &self.inner.config.server_name)
            .field("connections", &self.inner.local.connection_count())
            .finish()
    }
}

/// A [`Node`] handle that does not keep the node alive; see
/// [`Node::downgrade`].
///
/// # Examples
///
/// ```
/// # fn main() -> crosswire::Result<()> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// let weak: crosswire::WeakNode = node.downgrade();
/// assert_eq!(weak.upgrade().map(|n| n.server_name().to_owned()), Some("n1".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WeakNode(Weak<NodeInner>);

impl std::fmt::Debug for WeakNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakNode").finish_non_exhaustive()
    }
}

impl WeakNode {
    /// The node, while it is alive.
    ///
    /// # Examples
    ///
    /// See [`WeakNode`].
    pub fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}
impl Node {
    /// A builder with the original's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().build()?;
    /// assert_eq!(node.server_name(), "crosswire");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// A handle that does not keep the node alive (for a closure or task
    /// that should end with the node rather than hold it).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// let weak = node.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(node);
    /// assert!(weak.upgrade().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// A clone of the application's state of type `S`, given to
    /// [`NodeBuilder::state`]; `None` when the node has none of that type.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().state(42u32).build()?;
    /// assert_eq!(node.state::<u32>(), Some(42));
    /// assert_eq!(node.state::<String>(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.inner.state.get::<S>()
    }

    /// Every application state given to [`NodeBuilder::state`], by type.
    ///
    /// # Examples
    ///
    /// See [`States`].
    pub fn states(&self) -> &States {
        &self.inner.state
    }

    /// The node's name (`getServerName`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n7").build()?;
    /// assert_eq!(node.server_name(), "n7");
    /// # Ok(())
    /// # }
    /// ```
    pub fn server_name(&self) -> &str {
        &self.inner.config.server_name
    }

    /// The node's configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().heartbeat("ping").build()?;
    /// assert_eq!(node.config().heartbeat, "ping");
    /// assert_eq!(node.config().server_ping_interval, std::time::Duration::from_secs(20));
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The node's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// assert_eq!(node.stats().connections_accepted, 1);
    /// client.send("not json".into()).await?;
    /// while node.stats().frames_dropped_invalid == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.stats().frames_received, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    // ----- lifecycle ---------------------------------------------------------

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// assert!(!node.is_shut_down());
    /// node.shutdown(std::time::Duration::from_millis(100)).await;
    /// assert!(node.is_shut_down());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Stops the node: refuses new connections, closes every socket with 1001,
    /// waits for the connections to end (at most `grace`, then drops the
    /// rest), releases the listening port and fires `server-close`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// # let node = crosswire::Node::builder().server_name("n1").build()?;
    /// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
    /// # let socket = sockets.recv().await.ok_or("no connection")?;
    /// node.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert_eq!(node.connection_count(), 0);
    /// assert!(!socket.is_open());
    /// assert!(node.listen("127.0.0.1:0").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self, grace: Duration) {
        if self.inner.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.announce(crate::cross_server::MEMBER_LEAVE_EVENT);
        self.inner.shutdown.cancel();
        let mut sockets = Vec::new();
        self.inner
            .local
            .for_each_connection(|s| sockets.push(s.clone()));
        for socket in &sockets {
            socket.request_close(CloseRequest::Close {
                code: crate::close_code::GOING_AWAY,
                reason: "server shutting down".into(),
                drain: true,
            });
        }
        self.inner.tasks.close();
        let deadline = tokio::time::Instant::now() + grace;
        // Let pending cross-server calls finish or time out, within the grace.
        while !self.inner.pending.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if tokio::time::timeout_at(deadline, self.inner.tasks.wait())
            .await
            .is_err()
        {
            self.inner.local.for_each_connection(Socket::terminate);
            self.inner.tasks.wait().await;
        }
        if let Some(cluster) = self.cluster() {
            cluster.bus.close().await;
        }
        for h in self.inner.system.server_close.take_for_dispatch() {
            crate::events::run_detached(h(())).await;
        }
    }
}

fn encode<T: Serialize + ?Sized>(event: &str, payload: &T) -> Result<PushFrame> {
    non_empty(event, EVENT_MSG)?;
    Ok(PushFrame::encode(event, Some(payload))?)
}

impl Node {
    /// A new socket of this node (not yet registered), with the node's queue
    /// bounds and slow-consumer policy.
    pub(crate) fn new_socket(
        &self,
        conn_id: u64,
        handshake: Arc<Handshake>,
        authenticated: bool,
    ) -> Socket {
        let owner: Weak<dyn std::any::Any + Send + Sync> = Arc::downgrade(&self.inner) as _;
        Socket::new(
            &self.inner.config,
            self.inner.stats.clone(),
            owner,
            conn_id,
            handshake,
            authenticated,
        )
    }
}

/// The socket's way back to its node (the socket holds its owner as an
/// opaque weak pointer, so that it does not depend on the node).
impl Socket {
    /// The node this socket belongs to, while it runs: lets a system-event
    /// handler reach the node (and its state) without capturing it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_connection(|socket, hs| async move {
    ///     let Some(node) = socket.node() else { return };
    ///     if let Some(id) = hs.param("id") {
    ///         let _ = node.set_user_socket(id, &socket);
    ///     }
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=u1")).await?;
    /// while node.get_socket("u1").is_none() {
    ///     tokio::task::yield_now().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn node(&self) -> Option<Node> {
        let inner = self.owner()?.downcast::<NodeInner>().ok()?;
        Some(Node { inner })
    }

    /// A clone of the node's application state of type `S` (see
    /// [`NodeBuilder::state`](crate::NodeBuilder::state)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(Clone)]
    /// struct Greeting(&'static str);
    /// let node = crosswire::Node::builder().state(Greeting("hello")).build()?;
    /// node.on_connection(|socket, _| async move {
    ///     if let Some(Greeting(text)) = socket.state::<Greeting>() {
    ///         let _ = socket.emit("greeting", &text);
    ///     }
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// use futures_util::StreamExt;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"greeting","payload":"hello"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.node().and_then(|n| n.state::<S>())
    }
}
