//! The node: one server of a crosswire cluster. It owns the sockets, the
//! socket-id registry, the room index and the event registries, and performs
//! every send.

use crate::bus::Bus;
use crate::cluster::{Cluster, Reason};
use crate::config::NodeConfig;
use crate::cross_server::PendingCalls;
use crate::error::{non_empty, EVENT_MSG, NAMESPACE_MSG, ROOM_ID_MSG, SOCKET_ID_MSG};
use crate::events::{is_reserved, system_handler, EventMap, HandlerId, Listeners, SystemHandler};
use crate::handler::{erase, ClientContext, CrossContext, ErasedHandler, Handler};
use crate::rooms::{Match, Rooms};
use crate::socket::{to_utf8, CloseRequest, Handshake, Socket};
use crate::stats::{Stats, StatsSnapshot};
use crate::ws::UpgradeHook;
use crate::{Error, Result};
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use crosswire_protocol::channels::Channels;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::WsRoute;
use crosswire_protocol::ids::CallbackIds;
use dashmap::DashMap;
use indexmap::IndexMap;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    pub(crate) config: NodeConfig,
    /// The application's state, by type ([`NodeBuilder::state`]).
    pub(crate) state: http::Extensions,
    pub(crate) channels: Channels,
    pub(crate) stats: Arc<Stats>,
    pub(crate) client_events: EventMap<dyn ErasedHandler<ClientContext>>,
    pub(crate) system: SystemEvents,
    /// Every open connection, by connection number.
    pub(crate) connections: DashMap<u64, Socket>,
    /// Socket ids bound with `set_user_socket`.
    /// Looked up once per recipient of every send: a fast, randomly seeded
    /// hasher rather than SipHash.
    pub(crate) bound: DashMap<String, Socket, foldhash::fast::RandomState>,
    pub(crate) rooms: RwLock<Rooms>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) upgrade_hook: Option<UpgradeHook>,
    pub(crate) shutting_down: AtomicBool,
    /// Cancelled when the node shuts down: stops listeners and the sweep.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks, so shutdown can wait for them.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// The bus side of the node, when it has a bus.
    pub(crate) cluster: Option<Arc<Cluster>>,
    pub(crate) cross_events: EventMap<dyn ErasedHandler<CrossContext>>,
    pub(crate) pending: PendingCalls,
    pub(crate) callback_ids: CallbackIdSource,
    pub(crate) members: DashMap<String, std::time::Instant>,
    pub(crate) custom_handler: RwLock<Option<Arc<CustomHandler>>>,
    pub(crate) auth: Option<Arc<crate::auth::AuthMessage>>,
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
            .field("connections", &self.inner.connections.len())
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

/// Builds a [`Node`]; every option starts at the original's default.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::{Node, SlowConsumerPolicy};
/// use std::time::Duration;
/// let node = Node::builder()
///     .server_name("edge-1")
///     .heartbeat("ping")
///     .server_ping_interval(Duration::from_secs(30))
///     .outbound_queue(256)
///     .slow_consumer(SlowConsumerPolicy::DropFrame)
///     .build()?;
/// assert_eq!(node.server_name(), "edge-1");
/// assert_eq!(node.config().outbound_queue, 256);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct NodeBuilder {
    config: NodeConfig,
    upgrade_hook: Option<UpgradeHook>,
    bus: Option<Arc<dyn Bus>>,
    callback_ids: Option<CallbackIdSource>,
    auth: Option<Arc<crate::auth::AuthMessage>>,
    state: http::Extensions,
}

impl NodeBuilder {
    /// Starts from a whole configuration (e.g. read from TOML).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let mut config = crosswire::NodeConfig::default();
    /// config.server_name = "from-file".into();
    /// config.heartbeat = "hb".into();
    /// let node = crosswire::Node::builder().config(config).build()?;
    /// assert_eq!(node.server_name(), "from-file");
    /// assert_eq!(node.config().heartbeat, "hb");
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// The node's cluster-unique name (`serverName`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("eu-1").build()?;
    /// assert_eq!(node.server_name(), "eu-1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.config.server_name = name.into();
        self
    }

    /// The application heartbeat string (`heartbeatStr`, default empty).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().heartbeat("ping").build()?;
    /// assert_eq!(node.config().heartbeat, "ping");
    /// # Ok(())
    /// # }
    /// ```
    pub fn heartbeat(mut self, heartbeat: impl Into<String>) -> Self {
        self.config.heartbeat = heartbeat.into();
        self
    }

    /// Period of the protocol ping / liveness sweep (`serverPingInterval`, 20 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_ping_interval(Duration::from_secs(5)).build()?;
    /// assert_eq!(node.config().server_ping_interval, Duration::from_secs(5));
    /// # Ok(())
    /// # }
    /// ```
    pub fn server_ping_interval(mut self, every: Duration) -> Self {
        self.config.server_ping_interval = every;
        self
    }

    /// Longest stay in the background (`enterBackgroundCloseTime`, 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().enter_background_close_time(Duration::from_secs(60)).build()?;
    /// assert_eq!(node.config().enter_background_close_time, Duration::from_secs(60));
    /// # Ok(())
    /// # }
    /// ```
    pub fn enter_background_close_time(mut self, after: Duration) -> Self {
        self.config.enter_background_close_time = after;
        self
    }

    /// Largest inbound frame in bytes (default 1 MiB); bigger ones close the
    /// socket with 1009.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().max_frame_size(64 * 1024).build()?;
    /// assert_eq!(node.config().max_frame_size, 65_536);
    /// assert!(crosswire::Node::builder().max_frame_size(0).build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// Largest bus message in bytes (default 2 MiB): bigger publishes are
    /// refused with [`Error::BusMessageTooLarge`], bigger received messages
    /// dropped. Keep it well under Redis's pub/sub output buffer limit
    /// (`client-output-buffer-limit pubsub`, 32 MiB hard by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{bus::MemoryHub, Error};
    /// let node = crosswire::Node::builder()
    ///     .bus(MemoryHub::new().bus())
    ///     .max_bus_message_size(1024)
    ///     .build()?;
    /// assert_eq!(node.config().max_bus_message_size, 1024);
    /// let big = "x".repeat(2000);
    /// assert!(matches!(node.publish_raw("jobs", &serde_json::json!({"big": big})), Err(Error::BusMessageTooLarge { max: 1024, .. })));
    /// assert!(crosswire::Node::builder().max_bus_message_size(0).build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_bus_message_size(mut self, bytes: usize) -> Self {
        self.config.max_bus_message_size = bytes;
        self
    }

    /// Most cross-server calls waiting for replies at once (default
    /// 10 000); more are refused with [`Error::TooManyPendingCalls`] and
    /// counted (`crosswire_cross_server_calls_refused_total`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Error;
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").max_pending_cross_server_calls(1).build()?;
    /// let _first = node.emit_cross_server("slow", &1)?.timeout(Duration::from_secs(60)).stream()?;
    /// let second = node.emit_cross_server("slow", &1)?.stream();
    /// assert!(matches!(second, Err(Error::TooManyPendingCalls { limit: 1 })));
    /// assert_eq!(node.stats().cross_server_calls_refused, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_pending_cross_server_calls(mut self, calls: usize) -> Self {
        self.config.max_pending_cross_server_calls = calls;
        self
    }

    /// Most client events of one socket whose handlers are still running
    /// (default 64). At the bound the node stops reading that socket's
    /// frames until one of them ends: the client is slowed down, nothing is
    /// dropped. Handlers that finish without waiting never count.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().max_handlers_per_socket(8).build()?;
    /// assert_eq!(node.config().max_handlers_per_socket, 8);
    /// assert!(crosswire::Node::builder().max_handlers_per_socket(0).build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_handlers_per_socket(mut self, handlers: usize) -> Self {
        self.config.max_handlers_per_socket = handlers;
        self
    }

    /// Bound of each socket's outbound queue, in frames (default 1024; see
    /// [`NodeConfig::outbound_queue`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().outbound_queue(64).build()?;
    /// assert_eq!(node.config().outbound_queue, 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn outbound_queue(mut self, frames: usize) -> Self {
        self.config.outbound_queue = frames;
        self
    }

    /// Bound of each socket's outbound queue, in bytes (default 4 MiB; see
    /// [`NodeConfig::outbound_queue_bytes`]). Frames count until they are
    /// written to the WebSocket; over the bound the
    /// [`slow_consumer`](NodeBuilder::slow_consumer) policy applies. A single
    /// frame bigger than the bound is still sent when nothing else waits.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().outbound_queue_bytes(512 * 1024).build()?;
    /// assert_eq!(node.config().outbound_queue_bytes, 512 * 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn outbound_queue_bytes(mut self, bytes: usize) -> Self {
        self.config.outbound_queue_bytes = bytes;
        self
    }

    /// Read buffer of each connection in bytes (default 1 KiB; see
    /// [`NodeConfig::read_buffer_size`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().read_buffer_size(8 * 1024).build()?;
    /// assert_eq!(node.config().read_buffer_size, 8 * 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.read_buffer_size = bytes;
        self
    }

    /// What to do with a socket whose outbound queue is full (default: close
    /// it with 4003).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::SlowConsumerPolicy;
    /// let node = crosswire::Node::builder().slow_consumer(SlowConsumerPolicy::DropFrame).build()?;
    /// assert_eq!(node.config().slow_consumer, SlowConsumerPolicy::DropFrame);
    /// # Ok(())
    /// # }
    /// ```
    pub fn slow_consumer(mut self, policy: crate::SlowConsumerPolicy) -> Self {
        self.config.slow_consumer = policy;
        self
    }

    /// The bus that connects this node to the others (e.g. a
    /// [`MemoryHub`](crate::bus::MemoryHub) endpoint, or `RedisBus` from
    /// crosswire-redis). Without one the node is a cluster of one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let hub = MemoryHub::new();
    /// let node = crosswire::Node::builder().bus(hub.bus()).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels(), ["csbp:server_bridge", "ws:broadcast", "ws:private_socket"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bus(mut self, bus: impl Bus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// Like [`bus`](Self::bus), for a bus already in an `Arc`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::{Bus, MemoryHub};
    /// use std::sync::Arc;
    /// let bus: Arc<dyn Bus> = Arc::new(MemoryHub::new().bus());
    /// let node = crosswire::Node::builder().bus_arc(bus).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bus_arc(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Bus codec (MessagePack by default; JSON like the original with
    /// `enableRedisDataCompression: false`). Identical on every node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::protocol::envelope::Codec;
    /// let node = crosswire::Node::builder().codec(Codec::Json).build()?;
    /// assert_eq!(node.config().codec, Codec::Json);
    /// # Ok(())
    /// # }
    /// ```
    pub fn codec(mut self, codec: crosswire_protocol::envelope::Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Room namespaces subscribed at start and never auto-unsubscribed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder()
    ///     .bus(MemoryHub::new().bus())
    ///     .preset_room_namespaces(["lobby"])
    ///     .build()?;
    /// node.ready().await;
    /// assert!(node.subscribed_channels().contains(&"ws:lobby".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn preset_room_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.preset_room_namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Whether namespace channels are unsubscribed when they empty (default true).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).auto_unsubscribe(false).build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.leave_room("chat", "r1", "u1")?;
    /// node.ready().await;
    /// // The namespace channel stays subscribed although its last room is gone.
    /// assert!(node.subscribed_channels().contains(&"ws:chat".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn auto_unsubscribe(mut self, on: bool) -> Self {
        self.config.auto_unsubscribe = on;
        self
    }

    /// Channels delivered to the custom channel handler.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder()
    ///     .bus(MemoryHub::new().bus())
    ///     .custom_channels(["jobs"])
    ///     .build()?;
    /// node.ready().await;
    /// assert!(node.subscribed_channels().contains(&"jobs".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn custom_channels<I, S>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.custom_channels = channels.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the node serves WebSocket clients (default true). A node
    /// without is a pure cross-server node (the original's "game server").
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).websocket(false).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels(), ["csbp:server_bridge"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn websocket(mut self, on: bool) -> Self {
        self.config.websocket = on;
        self
    }

    /// How often the node announces itself, and after how long a silent
    /// node is dropped from [`Node::live_nodes`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder()
    ///     .membership(Duration::from_millis(500), Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(node.config().announce_interval, Duration::from_millis(500));
    /// assert_eq!(node.config().member_timeout, Duration::from_secs(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn membership(mut self, announce_every: Duration, drop_after: Duration) -> Self {
        self.config.announce_interval = announce_every;
        self.config.member_timeout = drop_after;
        self
    }

    /// Most connections this node holds; more are closed with 1013.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().max_connections(10_000).build()?;
    /// assert_eq!(node.config().max_connections, Some(10_000));
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = Some(max);
        self
    }

    /// Limits each socket to `per_second` client events (bursts of `burst`);
    /// a socket over the limit is closed with 4004.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().rate_limit(20.0, 40).build()?;
    /// let limit = node.config().rate_limit.ok_or(crosswire::Error::Config("no limit".into()))?;
    /// assert_eq!((limit.per_second, limit.burst), (20.0, 40));
    /// # Ok(())
    /// # }
    /// ```
    pub fn rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.config.rate_limit = Some(crate::config::RateLimit { per_second, burst });
        self
    }

    /// Origins allowed to connect (`Origin` header); others get HTTP 403.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder()
    ///     .allowed_origins(["https://app.example.com"])
    ///     .build()?;
    /// assert_eq!(node.config().allowed_origins, ["https://app.example.com"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Gives the node the application's state: every handler can take it as
    /// a [`State<S>`](crate::handler::State) argument, and any code with the
    /// node can read it with [`Node::state`]. Call once per type (a second
    /// value of the same type replaces the first); keep it cheap to clone
    /// (each handler call gets a clone), e.g. a struct of `Arc`s.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// #[derive(Clone)]
    /// struct Motd(&'static str);
    /// let node = crosswire::Node::builder().state(Motd("welcome")).build()?;
    /// assert_eq!(node.state::<Motd>().map(|m| m.0), Some("welcome"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, state: S) -> Self {
        self.state.insert(state);
        self
    }

    /// Also lets a browser connect from a page of this node's own host: an
    /// `Origin` whose `host[:port]` is the request's `Host` is allowed beside
    /// [`allowed_origins`](NodeBuilder::allowed_origins). Requests without an
    /// `Origin` (programs, not browsers) stay allowed. This blocks
    /// cross-site WebSocket hijacking by other sites' pages.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    /// let node = crosswire::Node::builder().same_origin(true).build()?;
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let mut request = format!("ws://{addr}/").into_client_request()?;
    /// request.headers_mut().insert("origin", "https://evil.example".parse()?);
    /// assert!(tokio_tungstenite::connect_async(request).await.is_err());
    /// let mut request = format!("ws://{addr}/").into_client_request()?;
    /// request.headers_mut().insert("origin", format!("http://{addr}").parse()?);
    /// assert!(tokio_tungstenite::connect_async(request).await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn same_origin(mut self, on: bool) -> Self {
        self.config.same_origin = on;
        self
    }

    /// How long a new connection has to send its complete HTTP request head
    /// (default 10 s); a silent or dripping connection is dropped then.
    /// Applies to [`Node::listen`] and [`Node::serve`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tokio::io::AsyncReadExt;
    /// let node = crosswire::Node::builder()
    ///     .handshake_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// // A connection that never sends its request is closed.
    /// let mut silent = tokio::net::TcpStream::connect(addr).await?;
    /// let mut buf = [0u8; 1];
    /// assert_eq!(silent.read(&mut buf).await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Largest HTTP request head in bytes (default 16 KiB, at least 8 KiB);
    /// a bigger head is refused with 431.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    /// let node = crosswire::Node::builder().max_handshake_size(8 * 1024).build()?;
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let mut request = format!("ws://{addr}/").into_client_request()?;
    /// request.headers_mut().insert("x-pad", "a".repeat(10_000).parse()?);
    /// match tokio_tungstenite::connect_async(request).await {
    ///     Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
    ///         assert_eq!(response.status(), 431)
    ///     }
    ///     other => panic!("expected 431, got {other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.config.max_handshake_size = bytes;
        self
    }

    /// Most connections waiting for their upgrade at once (default 4096); a
    /// new connection pushes out the oldest waiting one.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().max_pending_handshakes(1000).build()?;
    /// assert_eq!(node.config().max_pending_handshakes, 1000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_pending_handshakes(mut self, max: usize) -> Self {
        self.config.max_pending_handshakes = max;
        self
    }

    /// File descriptors kept free of connections below the process's limit
    /// (default 256), for the rest of the process: other listeners (e.g.
    /// `/metrics` on its own port), bus connections, files.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().fd_reserve(1024).build()?;
    /// assert_eq!(node.config().fd_reserve, 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fd_reserve(mut self, descriptors: usize) -> Self {
        self.config.fd_reserve = descriptors;
        self
    }

    /// The request headers each socket keeps after its upgrade (names, any
    /// case); the others are dropped once the upgrade hook has run. By
    /// default every header is kept up to
    /// [`kept_header_bytes`](NodeBuilder::kept_header_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().keep_headers(["User-Agent"]).build()?;
    /// let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_connection(move |socket, _| {
    ///     let _ = tx.send(socket);
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// let socket = sockets.recv().await.ok_or("no connection")?;
    /// assert!(socket.handshake().headers.get("sec-websocket-key").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.keep_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Most bytes of request headers each socket keeps when no
    /// [`keep_headers`](NodeBuilder::keep_headers) are named (default
    /// 4 KiB): headers past the budget are dropped once the upgrade hook has
    /// run, so a socket's memory does not grow with its handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().kept_header_bytes(1024).build()?;
    /// assert_eq!(node.config().kept_header_bytes, 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn kept_header_bytes(mut self, bytes: usize) -> Self {
        self.config.kept_header_bytes = bytes;
        self
    }

    /// Requires each socket to authenticate with a client event `event`
    /// within `timeout` (the FAQ's "auth message after connecting"). Until it
    /// does, the socket receives no broadcasts and its other frames are
    /// dropped; `verify` gets the event's payload and returns the socket id
    /// to bind, or `None` to refuse. A socket that does not authenticate in
    /// time is closed with 4005; a refused one with 4011. The reply of the
    /// auth event is `{"ok":true}` or `{"ok":false}`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder()
    ///     .auth_message("auth", Duration::from_secs(5), |payload| async move {
    ///         // Look the token up; return the user id it belongs to.
    ///         payload["token"].as_str().filter(|t| *t == "secret").map(|_| "u1".to_owned())
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn auth_message<F, Fut>(mut self, event: &str, timeout: Duration, verify: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.auth = Some(Arc::new(crate::auth::AuthMessage {
            event: event.to_owned(),
            timeout,
            verify: Box::new(move |v| Box::pin(verify(v))),
        }));
        self
    }

    /// Signs every bus message with `secret` and refuses unsigned, forged or
    /// replayed ones (see [`crate::signing`]). Every node of the cluster needs
    /// the same secret; original Node.js nodes cannot take part.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).bus_secret("s3cret").build()?;
    /// assert_eq!(node.config().bus_secret.as_deref(), Some("s3cret"));
    /// assert!(crosswire::Node::builder().bus_secret("").build().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bus_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.bus_secret = Some(secret.into());
        self
    }

    /// Replaces the cross-server callback id generator (for tests that
    /// compare published bytes with fixed vectors).
    #[doc(hidden)]
    pub fn callback_id_source(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.callback_ids = Some(Box::new(f));
        self
    }

    /// An async hook run before each WebSocket upgrade; it sees the path,
    /// query and headers and may refuse with an HTTP status. Authentication
    /// belongs here.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use crosswire::{Node, Refusal};
    /// use http::StatusCode;
    /// # fn f() -> crosswire::Result<()> {
    /// let node = Node::builder()
    ///     .on_upgrade(|req| async move {
    ///         match req.param("token") {
    ///             Some("secret") => Ok(()),
    ///             _ => Err(Refusal::new(StatusCode::UNAUTHORIZED, "bad token")),
    ///         }
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn on_upgrade<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<Handshake>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), crate::Refusal>> + Send + 'static,
    {
        self.upgrade_hook = Some(Arc::new(move |h| Box::pin(hook(h))));
        self
    }

    /// Builds the node. Must be called inside a Tokio runtime (the node starts
    /// its liveness sweep).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// assert_eq!(node.server_name(), "n1");
    /// assert!(matches!(
    ///     crosswire::Node::builder().server_name("").build(),
    ///     Err(crosswire::Error::Config(_))
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<Node> {
        let config = self.config;
        let channels = Channels::new(&config.bridge_prefix, &config.ws_prefix)?;
        if config.server_ping_interval.is_zero() {
            return Err(Error::Config(
                "server_ping_interval must be positive".into(),
            ));
        }
        if config.max_frame_size == 0 || config.outbound_queue == 0 || config.read_buffer_size == 0
        {
            return Err(Error::Config(
                "max_frame_size, outbound_queue and read_buffer_size must be positive".into(),
            ));
        }
        if config.max_handshake_size < crate::listener::MIN_HEAD_BUFFER {
            return Err(Error::Config(
                "max_handshake_size must be at least 8 KiB".into(),
            ));
        }
        if config.handshake_timeout.is_zero() || config.max_pending_handshakes == 0 {
            return Err(Error::Config(
                "handshake_timeout and max_pending_handshakes must be positive".into(),
            ));
        }
        if config.max_bus_message_size == 0
            || config.max_pending_cross_server_calls == 0
            || config.max_handlers_per_socket == 0
        {
            return Err(Error::Config(
                "max_bus_message_size, max_pending_cross_server_calls and max_handlers_per_socket must be positive".into(),
            ));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("Node::build must be called inside a Tokio runtime".into())
        })?;
        if config.server_name.is_empty() {
            return Err(Error::Config(
                "server_name must be a non-empty string".into(),
            ));
        }
        let mut presets = Vec::new();
        for ns in &config.preset_room_namespaces {
            presets.push(channels.preset_namespace(ns)?);
        }
        let signer = match &config.bus_secret {
            Some(secret) => Some(
                crate::signing::Signer::new(secret.as_bytes(), config.bus_replay_window)
                    .ok_or_else(|| Error::Config("bus_secret must not be empty".into()))?,
            ),
            None => None,
        };
        if config.bus_secret.as_deref() == Some("") {
            return Err(Error::Config("bus_secret must not be empty".into()));
        }
        let stats = Arc::new(Stats::default());
        let cluster = self
            .bus
            .map(|bus| Arc::new(Cluster::new(bus, &config, signer, stats.clone())));
        let callback_ids = self.callback_ids.unwrap_or_else(|| {
            let ids = CallbackIds::server(&config.server_name);
            Box::new(move || ids.next())
        });
        let incoming = match &cluster {
            Some(c) => Some(c.bus.take_incoming().ok_or_else(|| {
                Error::Config(
                    "the bus is already used by another node: give each node its own endpoint"
                        .into(),
                )
            })?),
            None => None,
        };
        let pending = PendingCalls::new(config.max_pending_cross_server_calls);
        let inner = Arc::new(NodeInner {
            config,
            channels,
            stats,
            client_events: EventMap::default(),
            system: SystemEvents::default(),
            connections: DashMap::new(),
            bound: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            rooms: RwLock::new(Rooms::default()),
            next_conn: AtomicU64::new(1),
            upgrade_hook: self.upgrade_hook,
            state: self.state,
            shutting_down: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            cluster,
            cross_events: EventMap::default(),
            pending,
            callback_ids,
            members: DashMap::new(),
            custom_handler: RwLock::new(None),
            auth: self.auth,
        });
        handle.spawn(liveness_sweep(
            Arc::downgrade(&inner),
            inner.shutdown.clone(),
        ));
        if let (Some(cluster), Some(rx)) = (&inner.cluster, incoming) {
            let ch = &inner.channels;
            cluster.want(ch.bridge(), Reason::Core, true);
            if inner.config.websocket {
                for p in &presets {
                    cluster.want(p, Reason::Preset, true);
                }
                cluster.want(ch.private_socket(), Reason::Core, true);
                cluster.want(ch.broadcast(), Reason::Core, true);
            }
            for c in &inner.config.custom_channels {
                cluster.want(c, Reason::Custom, true);
            }
            handle.spawn(cluster.clone().reconcile(inner.shutdown.clone()));
            handle.spawn(crate::cluster::receive_loop(
                Arc::downgrade(&inner),
                rx,
                inner.shutdown.clone(),
            ));
            handle.spawn(announcer(Arc::downgrade(&inner), inner.shutdown.clone()));
        }
        Ok(Node { inner })
    }
}

/// Announces the node on the bridge channel every `announce_interval`
/// (membership; the original ignores these messages).
async fn announcer(node: Weak<NodeInner>, stop: CancellationToken) {
    let (every, cluster) = match node.upgrade() {
        Some(n) => (n.config.announce_interval, n.cluster.clone()),
        None => return,
    };
    if let Some(cluster) = cluster {
        let bridge = node.upgrade().map(|n| n.channels.bridge().to_owned());
        if let Some(bridge) = bridge {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = cluster.wait_confirmed(&bridge, true) => {}
            }
        }
    }
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(inner) = node.upgrade() else { return };
        Node { inner }.announce(crate::cross_server::MEMBER_EVENT);
    }
}

/// Every `server_ping_interval`: terminate sockets too long in the background
/// or that missed the previous ping, and ping the rest (PROTOCOL.md A.7).
async fn liveness_sweep(node: Weak<NodeInner>, stop: CancellationToken) {
    let every = match node.upgrade() {
        Some(n) => n.config.server_ping_interval,
        None => return,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(node) = node.upgrade() else { return };
        let limit = node.config.enter_background_close_time;
        for entry in node.connections.iter() {
            let socket = entry.value();
            if socket.background_for().is_some_and(|d| d > limit) {
                Stats::incr(&node.stats.background_terminations);
                tracing::debug!(socket = socket.id(), "background too long: terminating");
                socket.terminate();
            } else if !socket.0.alive.swap(false, Ordering::AcqRel) {
                Stats::incr(&node.stats.liveness_terminations);
                tracing::debug!(socket = socket.id(), "missed pong: terminating");
                socket.terminate();
            } else {
                socket.request_ping();
            }
        }
    }
}

/// Options of [`Node::broadcast_to_room`].
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
/// use crosswire::RoomSend;
/// node.set_user_socket("u1", &socket)?;
/// node.join_room("chat", "r1", "u1")?;
/// node.join_room("chat", "r1", "u2")?;
/// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().exclude(["u2"]).local_only().destroy())?;
/// let text = client.next().await.ok_or("closed")??.into_text()?;
/// assert_eq!(text.as_str(), r#"{"event":"say","payload":"hi"}"#);
/// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 0); // destroyed
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RoomSend {
    exclude: Vec<String>,
    local_only: bool,
    destroy: bool,
}

impl RoomSend {
    /// Default options: no exclusions, relayed to every node, room kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::RoomSend;
    /// let node = crosswire::Node::builder().build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new())?;
    /// assert!(node.is_joined_room("u1", "chat", Some("r1")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Socket ids that must not receive the frame (`excludeSocketIds`).
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
    /// use crosswire::RoomSend;
    /// node.set_user_socket("u1", &socket)?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.broadcast_to_room("chat", "r1", "a", &1, RoomSend::new().exclude(["u1"]))?;
    /// node.broadcast_to_room("chat", "r1", "b", &2, RoomSend::new())?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"b","payload":2}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn exclude<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Only this node's members (`localOnly`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{bus::MemoryHub, RoomSend};
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// // Delivered to this node's members only, nothing is published.
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().local_only())?;
    /// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }

    /// Remove the room on this node after sending (`roomDstroy`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{Match, RoomSend};
    /// let node = crosswire::Node::builder().build()?;
    /// node.join_room("game", "g1", "u1")?;
    /// node.broadcast_to_room("game", "g1", "over", &"u1 wins", RoomSend::new().destroy())?;
    /// assert_eq!(node.room_count("game", Match::Exact), 0);
    /// assert!(!node.is_joined_room("u1", "game", None));
    /// # Ok(())
    /// # }
    /// ```
    pub fn destroy(mut self) -> Self {
        self.destroy = true;
        self
    }
}

/// A set of excluded ids that is cheap for both short and long lists.
enum Exclusions<'a> {
    Few(&'a [String]),
    Many(HashSet<&'a str>),
}

impl<'a> Exclusions<'a> {
    fn new(ids: &'a [String]) -> Self {
        if ids.len() <= 8 {
            Exclusions::Few(ids)
        } else {
            Exclusions::Many(ids.iter().map(String::as_str).collect())
        }
    }

    fn contains(&self, id: &str) -> bool {
        match self {
            Exclusions::Few(ids) => ids.iter().any(|x| x == id),
            Exclusions::Many(set) => set.contains(id),
        }
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
        self.inner.state.get::<S>().cloned()
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

    // ----- client events -------------------------------------------------

    fn add_client_handler(
        &self,
        event: &str,
        handler: Arc<dyn ErasedHandler<ClientContext>>,
        once: bool,
        tag: Option<String>,
    ) -> Result<HandlerId> {
        non_empty(event, EVENT_MSG)?;
        if is_reserved(event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        Ok(self.inner.client_events.add(event, handler, once, tag))
    }

    /// Registers a handler for client event `event` (`onWebSocketEvent`).
    /// Handlers run in registration order for each frame; they may be async,
    /// and a slow one never holds up the socket's next frames.
    ///
    /// Fails for an empty name and for reserved names such as `close`: system
    /// events have their own methods ([`on_connection`](Self::on_connection), ...).
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
    /// use crosswire::handler::Data;
    /// node.on("add", |Data(numbers): Data<Vec<i64>>| async move {
    ///     Ok::<_, String>(numbers.iter().sum::<i64>())
    /// })?;
    /// client.send(r#"{"event":"add","payload":[1,2,3],"callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"payload":6,"callbackId":"c-1"}"#);
    /// assert!(node.on("close", || async {}).is_err()); // reserved
    /// # Ok(())
    /// # }
    /// ```
    pub fn on<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(event, erase(self, handler)?, false, None)
    }

    /// Like [`on`](Self::on), with a tag for [`off_tag`](Self::off_tag).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_tagged("say", "chat-plugin", || async {})?;
    /// node.on_tagged("say", "audit", || async {})?;
    /// assert_eq!(node.off_tag("say", "chat-plugin"), 1);
    /// assert_eq!(node.off_all("say"), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_tagged<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        tag: impl Into<String>,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(event, erase(self, handler)?, false, Some(tag.into()))
    }

    /// Registers a handler that runs for the next frame of `event` only
    /// (`onceWebSocketEvent`).
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
    /// node.once("hello", || async { Ok::<_, String>("first") })?;
    /// client.send(r#"{"event":"hello","callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"payload":"first","callbackId":"c-1"}"#);
    /// assert_eq!(node.off_all("hello"), 0); // already removed
    /// # Ok(())
    /// # }
    /// ```
    pub fn once<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(event, erase(self, handler)?, true, None)
    }

    /// Removes one handler, of a client, system or cross-server event.
    /// Returns whether it existed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let client_event = node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// let system_event = node.on_connection(|_, _| async {});
    /// assert!(node.off_handler(client_event));
    /// assert!(node.off_handler(system_event));
    /// assert!(!node.off_handler(client_event));
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_handler(&self, id: HandlerId) -> bool {
        let removed = self.inner.client_events.remove_where(None, |h, _| h == id)
            + self.inner.cross_events.remove_where(None, |h, _| h == id)
            + self.inner.system.remove(id);
        removed > 0
    }

    /// Removes the handlers of `event` registered with `tag`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_tagged("say", "plugin", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// assert_eq!(node.off_tag("say", "plugin"), 1);
    /// assert_eq!(node.off_tag("say", "plugin"), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_tag(&self, event: &str, tag: &str) -> usize {
        self.inner
            .client_events
            .remove_where(Some(event), |_, t| t == Some(tag))
    }

    /// Removes every handler of client event `event`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// node.on_tagged("say", "t", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// assert_eq!(node.off_all("say"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_all(&self, event: &str) -> usize {
        self.inner
            .client_events
            .remove_where(Some(event), |_, _| true)
    }

    // ----- system events -------------------------------------------------

    /// A client completed the handshake. Frames from it are dispatched once
    /// every connection handler has finished, so binding the socket id here
    /// (see [`set_user_socket`](Self::set_user_socket)) happens before its
    /// first event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let n = node.clone();
    /// node.on_connection(move |socket, handshake| {
    ///     let n = n.clone();
    ///     async move {
    ///         match handshake.param("id") {
    ///             Some(id) => {
    ///                 let _ = n.set_user_socket(id, &socket);
    ///             }
    ///             None => socket.close(crosswire::close_code::AUTH_FAILED, "no id"),
    ///         }
    ///     }
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=u1")).await?;
    /// while node.get_socket("u1").is_none() {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.client_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_connection<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Arc<Handshake>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, r)| f(s, r));
        self.inner.system.connection.add(h, false, None)
    }

    /// A socket closed, for any reason. Runs before the node unbinds the
    /// socket's ids and removes them from their rooms.
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
    /// let (tx, mut closes) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_close(move |socket, info| {
    ///     let _ = tx.send((socket.id(), info.code));
    ///     async {}
    /// });
    /// let id = socket.id();
    /// client.close(None).await?;
    /// assert_eq!(closes.recv().await, Some((id, 1005)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_close<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, CloseInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, c)| f(s, c));
        self.inner.system.close.add(h, false, None)
    }

    /// A socket failed (a protocol or I/O error).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_error(|socket, error| async move {
    ///     eprintln!("socket {} failed: {error}", socket.id());
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_error<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Arc<str>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, e)| f(s, e));
        self.inner.system.error.add(h, false, None)
    }

    /// A protocol pong arrived (with its payload).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_pong(|socket, payload| async move {
    ///     println!("socket {} answered the ping ({} bytes)", socket.id(), payload.len());
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, p)| f(s, p));
        self.inner.system.pong.add(h, false, None)
    }

    /// After every inbound text (or UTF-8 binary) frame was handled,
    /// heartbeats and dropped frames included.
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
    /// let (tx, mut texts) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_message(move |_socket, text| {
    ///     let _ = tx.send(text.to_string());
    ///     async {}
    /// });
    /// client.send("anything".into()).await?;
    /// assert_eq!(texts.recv().await.as_deref(), Some("anything"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_message<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Utf8Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, t)| f(s, t));
        self.inner.system.message.add(h, false, None)
    }

    /// A heartbeat frame arrived (just before it is echoed).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// let node = crosswire::Node::builder().heartbeat("ping").build()?;
    /// let (tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_client_ping(move |socket| {
    ///     let _ = tx.send(socket.id());
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// client.send("ping".into()).await?;
    /// assert!(pings.recv().await.is_some());
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), "ping"); // echoed
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_client_ping<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .client_ping
            .add(system_handler(f), false, None)
    }

    /// The endpoint failed (e.g. accepting a connection).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_server_error(|error| async move {
    ///     eprintln!("endpoint failed: {error}");
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_server_error<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Arc<Error>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .server_error
            .add(system_handler(f), false, None)
    }

    /// [`listen`](Self::listen) bound its address.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let (tx, mut bound) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_listening(move |addr| {
    ///     let _ = tx.send(addr);
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// assert_eq!(bound.recv().await, Some(addr));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_listening<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .listening
            .add(system_handler(f), false, None)
    }

    /// The node shut down (`ws-server-close`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let closed = Arc::new(AtomicBool::new(false));
    /// let flag = closed.clone();
    /// node.on_server_close(move || {
    ///     flag.store(true, Ordering::SeqCst);
    ///     async {}
    /// });
    /// node.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert!(closed.load(Ordering::SeqCst));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_server_close<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .server_close
            .add(system_handler(move |()| f()), false, None)
    }

    // ----- socket registry -----------------------------------------------

    /// Binds `socket_id` to `socket` (`setUserSocket`). Returns the socket the
    /// id was bound to before, if another one: it is neither closed nor
    /// otherwise touched, so the caller decides (e.g. close it with 4012).
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
    /// assert_eq!(node.set_user_socket("u1", &socket)?, None);
    /// assert_eq!(node.get_socket("u1").as_ref(), Some(&socket));
    /// assert_eq!(socket.socket_ids(), ["u1"]);
    /// // Binding the same id to the same socket again changes nothing.
    /// assert_eq!(node.set_user_socket("u1", &socket)?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_user_socket(&self, socket_id: &str, socket: &Socket) -> Result<Option<Socket>> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let previous = self
            .inner
            .bound
            .insert(socket_id.to_owned(), socket.clone());
        if let Some(prev) = &previous {
            if prev == socket {
                return Ok(None);
            }
            prev.0.bound_ids.lock().retain(|id| id != socket_id);
        }
        socket.0.bound_ids.lock().push(socket_id.to_owned());
        Ok(previous)
    }

    /// Unbinds `socket_id` and removes it from every room
    /// (`removeUserSocket`). The socket itself stays open.
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
    /// node.set_user_socket("u1", &socket)?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.remove_user_socket("u1")?;
    /// assert!(node.get_socket("u1").is_none());
    /// assert!(!node.is_joined_room("u1", "chat", None));
    /// assert!(socket.is_open());
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_user_socket(&self, socket_id: &str) -> Result<()> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        if let Some((_, socket)) = self.inner.bound.remove(socket_id) {
            socket.0.bound_ids.lock().retain(|id| id != socket_id);
        }
        self.leave_all_rooms(socket_id);
        Ok(())
    }

    /// The socket bound to `socket_id` (`getSocketInstance`).
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
    /// assert!(node.get_socket("u1").is_none());
    /// node.set_user_socket("u1", &socket)?;
    /// assert_eq!(node.get_socket("u1").map(|s| s.id()), Some(socket.id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_socket(&self, socket_id: &str) -> Option<Socket> {
        self.inner.bound.get(socket_id).map(|s| s.clone())
    }

    /// Number of bound socket ids (`getSocketClientCount`).
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
    /// assert_eq!(node.client_count(), 0);
    /// node.set_user_socket("u1", &socket)?;
    /// node.set_user_socket("u1-tab2", &socket)?;
    /// assert_eq!(node.client_count(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_count(&self) -> usize {
        self.inner.bound.len()
    }

    /// Number of open connections, bound or not.
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
    /// assert_eq!(node.connection_count(), 1);
    /// assert_eq!(node.client_count(), 0); // connected, not bound
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.inner.connections.len()
    }

    /// Called when a connection ended: unbind the ids it still owns and
    /// remove them from their rooms.
    pub(crate) fn release(&self, socket: &Socket) {
        self.inner.connections.remove(&socket.id());
        let ids = std::mem::take(&mut *socket.0.bound_ids.lock());
        for id in ids {
            if self
                .inner
                .bound
                .remove_if(&id, |_, s| s == socket)
                .is_some()
            {
                self.leave_all_rooms(&id);
            }
        }
    }

    // ----- rooms -----------------------------------------------------------

    fn check_room_args(&self, ns: &str, room: &str) -> Result<()> {
        non_empty(ns, NAMESPACE_MSG)?;
        non_empty(room, ROOM_ID_MSG)?;
        // Rejects namespaces that would map onto the broadcast or private
        // channels (a defect of the original).
        self.inner.channels.room_namespace(ns)?;
        Ok(())
    }

    /// Adds `socket_id` to room `room` of namespace `ns` (`joinRoom`).
    /// Membership belongs to the id; it need not be bound to a socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("chat", "r1", "u2")?;
    /// assert_eq!(node.socket_count_in_room("chat", Some("r1"), crosswire::Match::Exact), 2);
    /// assert!(node.join_room("chat", "", "u1").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_room(&self, ns: &str, room: &str, socket_id: &str) -> Result<()> {
        self.check_room_args(ns, room)?;
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let mut rooms = self.inner.rooms.write();
        if rooms.join(ns, room, socket_id) {
            // First room of this namespace here: subscribe its channel. Done
            // under the room lock so subscription changes follow room changes
            // in order.
            self.namespace_changed(ns, true);
        }
        Ok(())
    }

    /// A namespace got its first room (`created`) or lost its last one.
    fn namespace_changed(&self, ns: &str, created: bool) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        if !created && !self.inner.config.auto_unsubscribe {
            return;
        }
        if let Ok(channel) = self.inner.channels.room_namespace(ns) {
            cluster.want(&channel, Reason::Room, created);
        }
    }

    /// Removes `socket_id` from a room (`leaveRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.leave_room("chat", "r1", "u1")?;
    /// assert!(!node.is_joined_room("u1", "chat", Some("r1")));
    /// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_room(&self, ns: &str, room: &str, socket_id: &str) -> Result<()> {
        non_empty(ns, NAMESPACE_MSG)?;
        non_empty(room, ROOM_ID_MSG)?;
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let mut rooms = self.inner.rooms.write();
        if rooms.leave(ns, room, socket_id) {
            self.namespace_changed(ns, false);
        }
        Ok(())
    }

    /// Deletes a room on this node with all its memberships (`removeRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("chat", "r1", "u2")?;
    /// node.remove_room("chat", "r1");
    /// assert!(node.room_ids("chat", crosswire::Match::Exact).is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_room(&self, ns: &str, room: &str) {
        let mut rooms = self.inner.rooms.write();
        if rooms.remove_room(ns, room) {
            self.namespace_changed(ns, false);
        }
    }

    fn leave_all_rooms(&self, socket_id: &str) {
        let mut rooms = self.inner.rooms.write();
        for ns in rooms.leave_all(socket_id) {
            self.namespace_changed(&ns, false);
        }
    }

    /// Number of memberships in the selected rooms (`getSocketCountInRoom`):
    /// `room` `None` selects every room of `ns`; with [`Match::Prefix`], every
    /// room whose id starts with `room`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game", "eu-1", "u1")?;
    /// node.join_room("game", "eu-2", "u2")?;
    /// node.join_room("game", "us-1", "u3")?;
    /// assert_eq!(node.socket_count_in_room("game", Some("eu-1"), Match::Exact), 1);
    /// assert_eq!(node.socket_count_in_room("game", Some("eu-"), Match::Prefix), 2);
    /// assert_eq!(node.socket_count_in_room("game", None, Match::Exact), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn socket_count_in_room(&self, ns: &str, room: Option<&str>, matching: Match) -> usize {
        self.inner.rooms.read().socket_count(ns, room, matching)
    }

    /// The distinct socket ids in the selected rooms (`getRoomSocketIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game", "g1", "u1")?;
    /// node.join_room("game", "g2", "u1")?;
    /// node.join_room("game", "g2", "u2")?;
    /// let mut ids: Vec<String> = node.room_socket_ids("game", None, Match::Exact).into_iter().collect();
    /// ids.sort();
    /// assert_eq!(ids, ["u1", "u2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_socket_ids(
        &self,
        ns: &str,
        room: Option<&str>,
        matching: Match,
    ) -> HashSet<String> {
        self.inner.rooms.read().socket_ids(ns, room, matching)
    }

    /// The rooms `socket_id` is in, by namespace, optionally only namespaces
    /// starting with `ns_prefix` (`getJoinedRooms`). A copy: changing it does
    /// not change the node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("game", "g1", "u1")?;
    /// let rooms = node.joined_rooms("u1", None)?;
    /// assert_eq!(rooms["chat"], ["r1"]);
    /// assert_eq!(rooms["game"], ["g1"]);
    /// assert_eq!(node.joined_rooms("u1", Some("ga"))?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn joined_rooms(
        &self,
        socket_id: &str,
        ns_prefix: Option<&str>,
    ) -> Result<IndexMap<String, Vec<String>>> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        Ok(self.inner.rooms.read().joined_rooms(socket_id, ns_prefix))
    }

    /// Whether `socket_id` is in room `room` of `ns`, or with `None` in any
    /// room of exactly `ns` (`isJoinedRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// assert!(node.is_joined_room("u1", "chat", Some("r1")));
    /// assert!(node.is_joined_room("u1", "chat", None));
    /// assert!(!node.is_joined_room("u1", "chat", Some("r2")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_joined_room(&self, socket_id: &str, ns: &str, room: Option<&str>) -> bool {
        self.inner.rooms.read().is_joined(socket_id, ns, room)
    }

    /// Number of rooms in `ns`, or in every namespace starting with `ns`
    /// (`getRoomCount`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game:eu", "g1", "u1")?;
    /// node.join_room("game:us", "g2", "u2")?;
    /// assert_eq!(node.room_count("game:eu", Match::Exact), 1);
    /// assert_eq!(node.room_count("game:", Match::Prefix), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_count(&self, ns: &str, matching: Match) -> usize {
        self.inner.rooms.read().room_count(ns, matching)
    }

    /// Room ids of `ns` in creation order, or of every namespace starting with
    /// `ns` (`getRoomIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "b", "u1")?;
    /// node.join_room("chat", "a", "u1")?;
    /// assert_eq!(node.room_ids("chat", Match::Exact), ["b", "a"]); // creation order
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_ids(&self, ns: &str, matching: Match) -> Vec<String> {
        self.inner.rooms.read().room_ids(ns, matching)
    }

    /// Namespaces with at least one room on this node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("game", "g1", "u1")?;
    /// let mut namespaces = node.room_namespaces();
    /// namespaces.sort();
    /// assert_eq!(namespaces, ["chat", "game"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_namespaces(&self) -> Vec<String> {
        self.inner
            .rooms
            .read()
            .namespaces()
            .map(str::to_owned)
            .collect()
    }

    // ----- sending ---------------------------------------------------------

    /// Sends `event` with `payload` to every connected socket of every node
    /// (`broadcast`), bound to an id or not.
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
    /// node.broadcast("news", &serde_json::json!({"n": 1}))?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"news","payload":{"n":1}}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        let frame = encode(event, payload)?;
        self.broadcast_frame(&frame, false);
        Ok(())
    }

    /// Like [`broadcast`](Self::broadcast) for this node's sockets only.
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
    /// node.broadcast_local("local-news", &1)?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"local-news","payload":1}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_local<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        let frame = encode(event, payload)?;
        self.broadcast_frame(&frame, true);
        Ok(())
    }

    /// Broadcasts an encoded frame (see [`PushFrame`], e.g. for an event
    /// without payload).
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
    /// use crosswire::protocol::client::PushFrame;
    /// let frame = PushFrame::encode::<()>("refresh", None)?;
    /// node.broadcast_frame(&frame, false);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"refresh"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_frame(&self, frame: &PushFrame, local_only: bool) {
        let text = to_utf8(frame);
        for entry in self.inner.connections.iter() {
            let socket = entry.value();
            if socket.is_authenticated() {
                let _ = socket.push(text.clone());
            }
        }
        if !local_only {
            self.relay_broadcast(frame);
        }
    }

    /// Sends to the socket bound to `socket_id`, on this node or any other
    /// (`toSocketId`).
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
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_id("u1", "pm", &"hello")?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"pm","payload":"hello"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_id<T: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        event: &str,
        payload: &T,
    ) -> Result<()> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        let frame = encode(event, payload)?;
        self.to_socket_id_frame(socket_id, &frame);
        Ok(())
    }

    /// [`to_socket_id`](Self::to_socket_id) with an encoded frame.
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
    /// use crosswire::protocol::client::PushFrame;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_id_frame("u1", &PushFrame::encode("pm", Some(&1))?);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"pm","payload":1}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_id_frame(&self, socket_id: &str, frame: &PushFrame) {
        if !self.push_to_bound(socket_id, &to_utf8(frame)) {
            self.relay_to_sockets(&[socket_id], frame);
        }
    }

    /// Queues `text` for the open socket bound to `socket_id` on this node;
    /// false when there is none.
    pub(crate) fn push_to_bound(&self, socket_id: &str, text: &Utf8Bytes) -> bool {
        match self.inner.bound.get(socket_id) {
            Some(socket) if socket.is_open() => {
                let _ = socket.push(text.clone());
                true
            }
            _ => false,
        }
    }

    /// Sends to the sockets bound to `socket_ids`, wherever they are
    /// (`toSocketIds`): local ones directly, the rest in one relay message.
    /// Empty ids are skipped.
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
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_ids(&["u1", "offline-user"], "invite", &"game-7")?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"invite","payload":"game-7"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_ids<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        socket_ids: &[S],
        event: &str,
        payload: &T,
    ) -> Result<()> {
        let frame = encode(event, payload)?;
        self.to_socket_ids_frame(socket_ids, &frame);
        Ok(())
    }

    /// Sends event `event` to those of `socket_ids` bound on this node only
    /// (nothing goes on the bus).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let node = crosswire::Node::builder().build()?;
    /// node.to_local_socket_ids(&["u1"], "note", &"only here")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_local_socket_ids<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        socket_ids: &[S],
        event: &str,
        payload: &T,
    ) -> Result<()> {
        let text = to_utf8(&encode(event, payload)?);
        for id in socket_ids {
            self.push_to_bound(id.as_ref(), &text);
        }
        Ok(())
    }

    /// [`to_socket_ids`](Self::to_socket_ids) with an encoded frame.
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
    /// use crosswire::protocol::client::PushFrame;
    /// node.set_user_socket("u1", &socket)?;
    /// node.to_socket_ids_frame(&["u1", ""], &PushFrame::encode::<()>("tick", None)?);
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"tick"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_socket_ids_frame<S: AsRef<str>>(&self, socket_ids: &[S], frame: &PushFrame) {
        let text = to_utf8(frame);
        let mut remote: Vec<&str> = Vec::new();
        for id in socket_ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| !id.is_empty())
        {
            if !self.push_to_bound(id, &text) {
                remote.push(id);
            }
        }
        if !remote.is_empty() {
            self.relay_to_sockets(&remote, frame);
        }
    }

    /// Sends to every member of room `room` of namespace `ns` on every node,
    /// except the excluded ids (`broadcastToRoom`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(node: crosswire::Node) -> crosswire::Result<()> {
    /// use crosswire::RoomSend;
    /// node.broadcast_to_room("chat", "r1", "say", &"hi", RoomSend::new().exclude(["u9"]))?;
    /// # Ok(()) }
    /// ```
    pub fn broadcast_to_room<T: Serialize + ?Sized>(
        &self,
        ns: &str,
        room: &str,
        event: &str,
        payload: &T,
        options: RoomSend,
    ) -> Result<()> {
        self.check_room_args(ns, room)?;
        let frame = encode(event, payload)?;
        self.broadcast_to_room_frame(ns, room, &frame, options)
    }

    /// [`broadcast_to_room`](Self::broadcast_to_room) with an encoded frame.
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
    /// use crosswire::protocol::client::PushFrame;
    /// use crosswire::RoomSend;
    /// node.set_user_socket("u1", &socket)?;
    /// node.join_room("chat", "r1", "u1")?;
    /// let frame = PushFrame::encode("say", Some(&"hi"))?;
    /// node.broadcast_to_room_frame("chat", "r1", &frame, RoomSend::new())?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), frame.as_str());
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_to_room_frame(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: RoomSend,
    ) -> Result<()> {
        self.check_room_args(ns, room)?;
        self.deliver_to_room(ns, Some(room), frame, &options.exclude);
        if options.destroy {
            self.remove_room(ns, room);
        }
        if !options.local_only {
            self.relay_room(ns, room, frame, options.exclude);
        }
        Ok(())
    }

    /// Writes `frame` to the local members of one room (or, with `None`, of
    /// every room of the namespace), skipping `exclude`.
    pub(crate) fn deliver_to_room(
        &self,
        ns: &str,
        room: Option<&str>,
        frame: &PushFrame,
        exclude: &[String],
    ) {
        let text = to_utf8(frame);
        let exclusions = Exclusions::new(exclude);
        let rooms = self.inner.rooms.read();
        let send = |id: &str| {
            if !exclusions.contains(id) {
                self.push_to_bound(id, &text);
            }
        };
        match room {
            Some(room) => {
                if let Some(members) = rooms.members(ns, room) {
                    members.iter().for_each(|id| send(id));
                }
            }
            None => rooms.for_each_member_of_namespace(ns, send),
        }
    }

    // ----- relaying to other nodes (the bus plugs in here) ------------------

    fn relay_broadcast(&self, frame: &PushFrame) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let route = WsRoute::Broadcast {
            data: frame.clone(),
            sender_server: self.server_name().to_owned(),
        };
        cluster.publish_route(self.inner.channels.broadcast(), &route);
    }

    fn relay_to_sockets(&self, socket_ids: &[&str], frame: &PushFrame) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let route = match socket_ids {
            [one] => WsRoute::Socket {
                data: frame.clone(),
                socket_id: (*one).to_owned(),
                sender_server: self.server_name().to_owned(),
            },
            many => WsRoute::Sockets {
                data: frame.clone(),
                socket_ids: many.iter().map(|s| (*s).to_owned()).collect(),
                sender_server: self.server_name().to_owned(),
            },
        };
        cluster.publish_route(self.inner.channels.private_socket(), &route);
    }

    fn relay_room(&self, ns: &str, room: &str, frame: &PushFrame, exclude: Vec<String>) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let Ok(channel) = self.inner.channels.room_namespace(ns) else {
            return;
        };
        let route = WsRoute::Room {
            data: frame.clone(),
            room_namespace: ns.to_owned(),
            room_id: Some(room.to_owned()),
            sender_server: self.server_name().to_owned(),
            exclude_socket_ids: exclude,
        };
        cluster.publish_route(&channel, &route);
    }

    // ----- bus channels --------------------------------------------------------

    /// Waits until the node's bus subscriptions match what it needs (core
    /// channels, presets, customs, joined namespaces). Immediate without a bus.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels().len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.wait_settled().await;
        }
    }

    /// Subscribes to a custom channel (`manualSubscribe`); resolves once the
    /// bus confirmed it. Its messages go to the custom channel handler.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.subscribe("jobs").await?;
    /// assert!(node.subscribed_channels().contains(&"jobs".to_owned()));
    /// let standalone = crosswire::Node::builder().build()?;
    /// assert!(standalone.subscribe("jobs").await.is_err()); // no bus
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, channel: &str) -> Result<()> {
        non_empty(channel, "The channel must be a non-empty string")?;
        let cluster = self
            .cluster()
            .ok_or_else(|| Error::Bus("the node has no bus".into()))?;
        cluster.want(channel, Reason::Manual, true);
        cluster.wait_confirmed(channel, true).await;
        Ok(())
    }

    /// Drops a manual subscription (`manualUnsubscribe`). The channel stays
    /// subscribed while the node still needs it for another reason (a
    /// joined namespace, a preset): internal channels cannot be removed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.subscribe("jobs").await?;
    /// node.unsubscribe("jobs").await?;
    /// assert!(!node.subscribed_channels().contains(&"jobs".to_owned()));
    /// // Internal channels stay.
    /// node.unsubscribe("ws:broadcast").await?;
    /// assert!(node.subscribed_channels().contains(&"ws:broadcast".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unsubscribe(&self, channel: &str) -> Result<()> {
        non_empty(channel, "The channel must be a non-empty string")?;
        let cluster = self
            .cluster()
            .ok_or_else(|| Error::Bus("the node has no bus".into()))?;
        cluster.want(channel, Reason::Manual, false);
        if !cluster.is_wanted(channel) {
            cluster.wait_confirmed(channel, false).await;
        }
        Ok(())
    }

    /// Channels this node is subscribed to (confirmed by the bus), sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().bus(MemoryHub::new().bus()).build()?;
    /// node.ready().await;
    /// assert_eq!(node.subscribed_channels(), ["csbp:server_bridge", "ws:broadcast", "ws:private_socket"]);
    /// assert!(crosswire::Node::builder().build()?.subscribed_channels().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribed_channels(&self) -> Vec<String> {
        self.cluster().map(|c| c.subscribed()).unwrap_or_default()
    }

    /// Sets the handler of messages on custom channels
    /// (`setCustomChannelHandler`), replacing any previous one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// b.set_custom_channel_handler(move |channel, message| {
    ///     let _ = tx.send((channel, message));
    ///     async {}
    /// });
    /// b.subscribe("jobs").await?;
    /// a.publish_raw("jobs", &serde_json::json!({"id": 7}))?;
    /// let (channel, message) = received.recv().await.ok_or(crosswire::Error::Shutdown)?;
    /// assert_eq!(channel, "jobs");
    /// assert_eq!(message, serde_json::json!({"id": 7}));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_custom_channel_handler<F, Fut>(&self, handler: F)
    where
        F: Fn(String, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: Arc<CustomHandler> = Arc::new(move |c, v| Box::pin(handler(c, v)));
        *self.inner.custom_handler.write() = Some(h);
    }

    /// Removes the custom channel handler (`removeCustomChannelHandler`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// b.set_custom_channel_handler(|_channel, _message| async {});
    /// b.remove_custom_channel_handler();
    /// b.subscribe("jobs").await?;
    /// a.publish_raw("jobs", &serde_json::json!({"id": 7}))?;
    /// while b.stats().bus_dropped_unhandled == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_custom_channel_handler(&self) {
        *self.inner.custom_handler.write() = None;
    }

    /// Publishes `message` as is on `channel` with the cluster codec
    /// (`publishRedisMessage`); nothing is added to it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// b.subscribe("metrics").await?;
    /// let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    /// b.set_custom_channel_handler(move |_channel, message| {
    ///     let _ = tx.send(message);
    ///     async {}
    /// });
    /// a.publish_raw("metrics", &serde_json::json!({"cpu": 0.5}))?;
    /// assert_eq!(received.recv().await, Some(serde_json::json!({"cpu": 0.5})));
    /// assert!(a.publish_raw("metrics", &[1, 2]).is_err()); // not an object
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_raw<T: Serialize + ?Sized>(&self, channel: &str, message: &T) -> Result<()> {
        non_empty(channel, "channel must be a non-empty string")?;
        let cluster = self
            .cluster()
            .ok_or_else(|| Error::Bus("the node has no bus".into()))?;
        let value = serde_json::to_value(message)?;
        if !value.is_object() {
            return Err(Error::InvalidArgument("message must be an object"));
        }
        let bytes = crosswire_protocol::envelope::encode_value(&value, cluster.codec)
            .map_err(|e| Error::Bus(e.to_string()))?;
        cluster.publish_raw(channel, bytes)
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
        let sockets: Vec<Socket> = self
            .inner
            .connections
            .iter()
            .map(|e| e.value().clone())
            .collect();
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
            for socket in self.inner.connections.iter() {
                socket.value().terminate();
            }
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
