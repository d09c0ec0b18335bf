//! Building a node: [`NodeBuilder`], its settings and validation.

use super::cluster::Reason;
use super::tasks::{announcer, liveness_sweep};
use super::*;
use crosswire_protocol::ids::CallbackIds;

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
    state: crate::extract::States,
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

    /// Serves `wss://` (feature `tls`): [`Node::listen`] and [`Node::serve`]
    /// then accept TLS connections only. The TLS handshake counts against
    /// [`handshake_timeout`](NodeBuilder::handshake_timeout) and
    /// [`max_pending_handshakes`](NodeBuilder::max_pending_handshakes) like the
    /// request head that follows it; failed handshakes are counted in
    /// `crosswire_handshakes_failed_total{reason="tls"}`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::config::TlsConfig;
    /// use std::sync::Arc;
    /// // A self-signed certificate for the example; a real node reads its
    /// // certificate authority's PEM files (`TlsConfig::from_pem_files`).
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// let tls = TlsConfig::from_pem(
    ///     cert.cert.pem().as_bytes(),
    ///     cert.signing_key.serialize_pem().as_bytes(),
    /// )?;
    /// let node = crosswire::Node::builder().tls(tls).build()?;
    /// let addr = node.listen("127.0.0.1:0").await?;
    ///
    /// // A client that trusts that certificate.
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(cert.cert.der().clone())?;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let client = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let connector = tokio_tungstenite::Connector::Rustls(Arc::new(client));
    /// let url = format!("wss://localhost:{}/", addr.port());
    /// let (_ws, _) =
    ///     tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
    ///         .await?;
    /// while node.connection_count() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::config::TlsConfig) -> Self {
        self.config.tls = Some(tls);
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

    /// Keeps a history of the rooms of namespace `ns`, so that clients that
    /// opted into recovery get what they missed when they come back
    /// ([`crate::history`], docs/protocol.md §10.3). Needs no bus or a bus
    /// that keeps a history (the in-memory bus, the Redis bus); building
    /// fails otherwise, and with [`bus_secret`](Self::bus_secret) on the
    /// Redis bus.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// use crosswire::history::HistoryConfig;
    /// let node = crosswire::Node::builder()
    ///     .history("chat", HistoryConfig::default())
    ///     .build()?;
    /// assert!(node.config().history.contains_key("chat"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(mut self, ns: impl Into<String>, config: crate::history::HistoryConfig) -> Self {
        self.config.history.insert(ns.into(), config);
        self
    }

    /// Shares the membership of the rooms of namespace `ns` with the whole
    /// cluster (room presence): [`Node::presence_members`] and
    /// [`Node::presence_count`] answer from any node, clients that connect
    /// with `cwPresence=1` get the members of the rooms they join and every
    /// change (docs/protocol.md §10.4), and the members of a node that dies
    /// leave within its membership timeout. Every node that has members in
    /// the namespace must have it on.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().presence("chat").build()?;
    /// assert!(node.config().presence.contains("chat"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn presence(mut self, ns: impl Into<String>) -> Self {
        self.config.presence.insert(ns.into());
        self
    }

    /// How room and socket-id messages travel between nodes (see
    /// [`Routing`](crate::Routing)); default the original's way. Every node
    /// of the cluster must use the same; original nodes cannot take part in
    /// [`Routing::ByHost`](crate::Routing::ByHost), and preset room
    /// namespaces mean nothing there (rooms are subscribed one by one).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{bus::MemoryHub, Routing};
    /// let node = crosswire::Node::builder()
    ///     .server_name("n1")
    ///     .bus(MemoryHub::new().bus())
    ///     .routing(Routing::ByHost)
    ///     .build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.ready().await;
    /// assert_eq!(
    ///     node.subscribed_channels(),
    ///     ["csbp:ids:n1", "csbp:node:n1", "csbp:room:4:chat:r1", "csbp:server_bridge", "ws:broadcast", "ws:private_socket"]
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn routing(mut self, routing: crate::Routing) -> Self {
        self.config.routing = routing;
        self
    }

    /// One session per socket id across the cluster: when an id is bound
    /// ([`Node::set_user_socket`]) on any node, its earlier sockets on every
    /// node are closed with 4012 ([`KICKED_CLOSE_CODE`](crate::KICKED_CLOSE_CODE):
    /// the original's client does not reconnect after it). Two bindings of
    /// one id at the same moment on two nodes end with the same one kept
    /// everywhere (the later by wall clock, then by node name). Every node
    /// of the cluster must have it on.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().one_session_per_id(true).build()?;
    /// assert!(node.config().one_session);
    /// # Ok(())
    /// # }
    /// ```
    pub fn one_session_per_id(mut self, on: bool) -> Self {
        self.config.one_session = on;
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
        let channels = Channels::new(&config.bridge_prefix, &config.ws_prefix)?
            .routed(config.routing == crate::Routing::ByHost);
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
        if config.max_handshake_size < crate::config::MIN_HEAD_BUFFER {
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
        if let Some(c) = (config.custom_channels.iter()).find(|c| channels.is_routing_channel(c)) {
            if channels.is_routed() {
                return Err(Error::Config(format!(
                    "custom channel {c} takes a name routing by host uses"
                )));
            }
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
        for (ns, h) in &config.history {
            if ns.is_empty() || h.max_messages == 0 || h.max_age.is_zero() {
                return Err(Error::Config(
                    "a history needs a non-empty namespace, max_messages and max_age".into(),
                ));
            }
        }
        let history = if config.history.is_empty() {
            None
        } else {
            match &self.bus {
                None => Some(crate::history::SharedHistory::Memory(Arc::default())),
                Some(bus) => Some(bus.history().ok_or_else(|| {
                    Error::Config(
                        "room history needs a bus that keeps one (the in-memory or the \
                         Redis bus); this bus does not"
                            .into(),
                    )
                })?),
            }
        };
        if matches!(history, Some(crate::history::SharedHistory::Backend(_)))
            && config.bus_secret.is_some()
        {
            // The store assigns the position inside the envelope, after the
            // node signed it.
            return Err(Error::Config(
                "room history kept by the bus cannot be combined with bus_secret (signed \
                 envelopes)"
                    .into(),
            ));
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
        let pending = Arc::new(PendingCalls::new(config.max_pending_cross_server_calls));
        let inner = Arc::new(NodeInner {
            config,
            channels,
            stats,
            client_events: EventMap::default(),
            system: SystemEvents::default(),
            local: Local::new(),
            history,
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
            sessions: Default::default(),
            presence: Default::default(),
            directory: Default::default(),
            routing_conflict: Default::default(),
            unannounced: DashMap::new(),
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
            if ch.is_routed() {
                // Its own channel for the cross-server events addressed to
                // it and the replies to its calls.
                cluster.want(
                    &ch.node_bridge(&inner.config.server_name),
                    Reason::Core,
                    true,
                );
            }
            if inner.config.websocket {
                if ch.is_routed() {
                    // Rooms are subscribed one by one: presets mean nothing.
                    cluster.want(
                        &ch.node_sockets(&inner.config.server_name),
                        Reason::Core,
                        true,
                    );
                } else {
                    for p in &presets {
                        cluster.want(p, Reason::Preset, true);
                    }
                }
                cluster.want(ch.private_socket(), Reason::Core, true);
                cluster.want(ch.broadcast(), Reason::Core, true);
            }
            for c in &inner.config.custom_channels {
                cluster.want(c, Reason::Custom, true);
            }
            handle.spawn(cluster.clone().reconcile(inner.shutdown.clone()));
            handle.spawn(super::cluster::receive_loop(
                Arc::downgrade(&inner),
                rx,
                inner.shutdown.clone(),
            ));
            handle.spawn(announcer(Arc::downgrade(&inner), inner.shutdown.clone()));
        }
        let node = Node { inner };
        node.install_queries()?;
        node.install_sessions()?;
        node.install_presence()?;
        node.install_directory()?;
        Ok(node)
    }
}
