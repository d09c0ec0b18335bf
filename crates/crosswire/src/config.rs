//! Node configuration, with the original's defaults.

use crosswire_protocol::envelope::Codec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::TlsConfig;

/// Default largest inbound frame: 1 MiB (the original accepts 100 MiB).
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_MAX_FRAME_SIZE;
/// assert_eq!(DEFAULT_MAX_FRAME_SIZE, 1 << 20);
/// assert_eq!(crosswire::NodeConfig::default().max_frame_size, DEFAULT_MAX_FRAME_SIZE);
/// ```
pub const DEFAULT_MAX_FRAME_SIZE: usize = 1024 * 1024;
/// Default bound of each socket's outbound queue, in frames.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_OUTBOUND_QUEUE;
/// assert_eq!(DEFAULT_OUTBOUND_QUEUE, 1024);
/// assert_eq!(crosswire::NodeConfig::default().outbound_queue, DEFAULT_OUTBOUND_QUEUE);
/// ```
pub const DEFAULT_OUTBOUND_QUEUE: usize = 1024;
/// Default bound of each socket's outbound queue, in bytes: 4 MiB.
///
/// Four frames of the default [`DEFAULT_MAX_FRAME_SIZE`] fit, so a client
/// that reads at a normal pace is not closed by a short burst of the
/// largest frames, while a client that stops reading pins at most this
/// much (plus the one frame the WebSocket is writing): 1,000 such clients
/// hold about 4 GiB rather than the ~1 GiB each that 1024 frames of 1 MiB
/// allowed. Frames of under 4 KiB on average reach the frame bound
/// ([`DEFAULT_OUTBOUND_QUEUE`]) first.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_OUTBOUND_QUEUE_BYTES;
/// assert_eq!(DEFAULT_OUTBOUND_QUEUE_BYTES, 4 << 20);
/// assert_eq!(crosswire::NodeConfig::default().outbound_queue_bytes, DEFAULT_OUTBOUND_QUEUE_BYTES);
/// ```
pub const DEFAULT_OUTBOUND_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Default read buffer of each connection: 1 KiB.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_READ_BUFFER_SIZE;
/// assert_eq!(DEFAULT_READ_BUFFER_SIZE, 1024);
/// assert_eq!(crosswire::NodeConfig::default().read_buffer_size, DEFAULT_READ_BUFFER_SIZE);
/// ```
pub const DEFAULT_READ_BUFFER_SIZE: usize = 1024;
/// Default largest bus message: 2 MiB.
///
/// A client frame (at most [`DEFAULT_MAX_FRAME_SIZE`], 1 MiB) relayed to
/// other nodes grows by its envelope (names, ids, routing fields), so the
/// bus must carry somewhat more than 1 MiB. Redis's default pub/sub output
/// buffer limit (`client-output-buffer-limit pubsub 32mb 8mb 60`)
/// disconnects a subscriber that falls 32 MiB behind, or 8 MiB behind for
/// 60 s: at 2 MiB a burst of 16 maximum-size messages fits under the hard
/// limit, where 16 MiB messages broke it with two.
///
/// # Examples
///
/// ```
/// use crosswire::config::{DEFAULT_MAX_BUS_MESSAGE_SIZE, DEFAULT_MAX_FRAME_SIZE};
/// assert_eq!(DEFAULT_MAX_BUS_MESSAGE_SIZE, 2 << 20);
/// assert!(DEFAULT_MAX_BUS_MESSAGE_SIZE > DEFAULT_MAX_FRAME_SIZE);
/// assert_eq!(crosswire::NodeConfig::default().max_bus_message_size, DEFAULT_MAX_BUS_MESSAGE_SIZE);
/// ```
pub const DEFAULT_MAX_BUS_MESSAGE_SIZE: usize = 2 * 1024 * 1024;
/// Default bound of the cross-server calls a node waits on at once: 10 000.
///
/// A pending call costs about 2.8 KB of heap, the calling client-event
/// handler included (heap profile of an rpc flood: 28 MB at 10 000
/// pending calls), so the bound caps them near 30 MB. A
/// healthy cluster stays far below it: pending calls are rate × reply
/// latency, and 10 000 carries 10 000 calls/s at a full second of
/// latency, or 2 000 calls/s to nodes that never answer (5 s timeout).
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS;
/// assert_eq!(DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS, 10_000);
/// assert_eq!(
///     crosswire::NodeConfig::default().max_pending_cross_server_calls,
///     DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS
/// );
/// ```
pub const DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS: usize = 10_000;
/// Default bound of one socket's client events whose handlers are still
/// running: 64.
///
/// A handler that finishes without waiting holds no slot; only handlers
/// that wait (on a cross-server call, a database, ...) do. An interactive
/// client has a few such requests outstanding; 64 leaves room for
/// pipelining while capping what one connection makes the node hold.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_MAX_HANDLERS_PER_SOCKET;
/// assert_eq!(DEFAULT_MAX_HANDLERS_PER_SOCKET, 64);
/// assert_eq!(crosswire::NodeConfig::default().max_handlers_per_socket, DEFAULT_MAX_HANDLERS_PER_SOCKET);
/// ```
pub const DEFAULT_MAX_HANDLERS_PER_SOCKET: usize = 64;

/// Default time a connection has to send its complete HTTP request head
/// (the upgrade request): 10 s.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_HANDSHAKE_TIMEOUT;
/// assert_eq!(DEFAULT_HANDSHAKE_TIMEOUT, std::time::Duration::from_secs(10));
/// assert_eq!(crosswire::NodeConfig::default().handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest HTTP request head (request line and headers): 16 KiB.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_MAX_HANDSHAKE_SIZE;
/// assert_eq!(DEFAULT_MAX_HANDSHAKE_SIZE, 16 * 1024);
/// assert_eq!(crosswire::NodeConfig::default().max_handshake_size, DEFAULT_MAX_HANDSHAKE_SIZE);
/// ```
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 16 * 1024;
/// Default most connections waiting for their upgrade at once: 4096.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_MAX_PENDING_HANDSHAKES;
/// assert_eq!(DEFAULT_MAX_PENDING_HANDSHAKES, 4096);
/// assert_eq!(crosswire::NodeConfig::default().max_pending_handshakes, DEFAULT_MAX_PENDING_HANDSHAKES);
/// ```
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 4096;
/// Default file descriptors kept free of connections: 256.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_FD_RESERVE;
/// assert_eq!(DEFAULT_FD_RESERVE, 256);
/// assert_eq!(crosswire::NodeConfig::default().fd_reserve, DEFAULT_FD_RESERVE);
/// ```
pub const DEFAULT_FD_RESERVE: usize = 256;
/// Default bytes of request headers a socket keeps for its life: 4 KiB.
///
/// # Examples
///
/// ```
/// use crosswire::config::DEFAULT_KEPT_HEADER_BYTES;
/// assert_eq!(DEFAULT_KEPT_HEADER_BYTES, 4096);
/// assert_eq!(crosswire::NodeConfig::default().kept_header_bytes, DEFAULT_KEPT_HEADER_BYTES);
/// ```
pub const DEFAULT_KEPT_HEADER_BYTES: usize = 4096;

/// What a node does with a socket whose outbound queue is full (it holds
/// its bound of frames or of bytes).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::SlowConsumerPolicy;
/// assert_eq!(SlowConsumerPolicy::default(), SlowConsumerPolicy::Close);
/// let policy: SlowConsumerPolicy = serde_json::from_str(r#""drop-frame""#)?;
/// let node = crosswire::Node::builder().slow_consumer(policy).build()?;
/// assert_eq!(node.config().slow_consumer, SlowConsumerPolicy::DropFrame);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Close the socket with [`close_code::SLOW_CONSUMER`](crate::close_code::SLOW_CONSUMER) (4003). The client
    /// reconnects and resynchronises; nothing is silently lost.
    #[default]
    Close,
    /// Drop the frame that did not fit and keep the socket (counted in the
    /// node's statistics). For feeds where a newer frame supersedes an older one.
    DropFrame,
}

/// How much history a namespace keeps per room.
///
/// # Examples
///
/// ```
/// use crosswire::history::HistoryConfig;
/// use std::time::Duration;
/// let c = HistoryConfig::default();
/// assert_eq!((c.max_messages, c.max_age), (1000, Duration::from_secs(300)));
/// let c: HistoryConfig = serde_json::from_str(r#"{"max_messages":50,"max_age":60000}"#)?;
/// assert_eq!(c.max_age, Duration::from_secs(60));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Most messages kept per room (at least 1).
    pub max_messages: usize,
    /// How long a message is kept (milliseconds in serialized form). A room
    /// idle this long forgets its history and its epoch.
    #[serde(with = "ms")]
    pub max_age: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_messages: 1000,
            max_age: Duration::from_secs(300),
        }
    }
}

impl HistoryConfig {
    /// A configuration keeping `max_messages` per room for `max_age`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::history::HistoryConfig;
    /// let c = HistoryConfig::new(100, std::time::Duration::from_secs(30));
    /// assert_eq!(c.max_messages, 100);
    /// ```
    pub fn new(max_messages: usize, max_age: Duration) -> Self {
        HistoryConfig {
            max_messages,
            max_age,
        }
    }
}

/// The smallest head buffer of the HTTP server (hyper refuses less): the
/// floor of [`NodeConfig::max_handshake_size`]'s buffer.
pub(crate) const MIN_HEAD_BUFFER: usize = 8 * 1024;

/// Everything a [`Node`](crate::Node) is built from. All durations are in
/// milliseconds when read from TOML or JSON (`server_ping_interval_ms`, ...).
///
/// # Examples
///
/// ```
/// let config: crosswire::NodeConfig = toml_like();
/// # fn toml_like() -> crosswire::NodeConfig {
/// #   serde_json::from_str(r#"{"server_name":"n1","heartbeat":"ping","server_ping_interval_ms":5000}"#).unwrap()
/// # }
/// assert_eq!(config.server_ping_interval, std::time::Duration::from_secs(5));
/// assert_eq!(config.enter_background_close_time, std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// Cluster-unique name of the node (the original's `serverName`).
    pub server_name: String,
    /// The application heartbeat string echoed back to clients (`heartbeatStr`,
    /// default empty).
    pub heartbeat: String,
    /// Period of the protocol ping and liveness sweep (`serverPingInterval`,
    /// default 20 s).
    #[serde(rename = "server_ping_interval_ms", with = "ms")]
    pub server_ping_interval: Duration,
    /// How long a socket may stay in the background before it is terminated
    /// (`enterBackgroundCloseTime`, default 10 s).
    #[serde(rename = "enter_background_close_time_ms", with = "ms")]
    pub enter_background_close_time: Duration,
    /// Largest inbound frame in bytes; bigger frames close the socket with 1009.
    pub max_frame_size: usize,
    /// Bound of each socket's outbound queue, in frames (default 1024).
    /// Frames count from when they are queued until they are written to the
    /// WebSocket.
    pub outbound_queue: usize,
    /// Bound of each socket's outbound queue, in bytes (default 4 MiB, see
    /// [`DEFAULT_OUTBOUND_QUEUE_BYTES`]), counted as
    /// [`outbound_queue`](Self::outbound_queue) is. Over either bound the
    /// [`slow_consumer`](Self::slow_consumer) policy applies. A single frame
    /// bigger than this bound is still queued when nothing else is waiting,
    /// so a frame of any size can be sent to a client that reads.
    pub outbound_queue_bytes: usize,
    /// Read buffer of each connection, in bytes, and the most one read
    /// takes from the kernel. Every idle connection holds it, so it is small
    /// by default (1 KiB); a bigger frame grows it while it is read. Raise
    /// it when most frames are large.
    pub read_buffer_size: usize,
    /// What to do with a socket whose outbound queue is full (in frames or
    /// in bytes).
    pub slow_consumer: SlowConsumerPolicy,
    /// Prefix of the cross-server bridge channel (`bridgePrefix`, default `csbp:`).
    pub bridge_prefix: String,
    /// Prefix of the WebSocket routing channels (`wsPrefix`, default `ws:`).
    pub ws_prefix: String,
    /// Bus codec, identical on every node of a cluster
    /// (`enableRedisDataCompression`: MessagePack by default, or JSON).
    pub codec: Codec,
    /// Whether this node serves WebSocket clients. A node without (the
    /// original's "pure cross-server" role) does not subscribe to the
    /// socket routing channels.
    pub websocket: bool,
    /// Room namespaces subscribed at start and never auto-unsubscribed
    /// (`presetRoomNamespaces`).
    pub preset_room_namespaces: Vec<String>,
    /// Unsubscribe a namespace channel when this node's last room in it goes
    /// (`autoUnsubscribe`, default true).
    pub auto_unsubscribe: bool,
    /// Channels delivered to the custom channel handler (`customChannels`).
    pub custom_channels: Vec<String>,
    /// Largest bus message this node publishes or decodes (default 2 MiB,
    /// [`DEFAULT_MAX_BUS_MESSAGE_SIZE`]): a bigger publish is refused with
    /// [`Error::BusMessageTooLarge`](crate::Error::BusMessageTooLarge), a
    /// bigger received message is dropped; both are counted.
    pub max_bus_message_size: usize,
    /// Most cross-server calls waiting for replies at once (default 10 000,
    /// [`DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS`]); more are refused with
    /// [`Error::TooManyPendingCalls`](crate::Error::TooManyPendingCalls).
    pub max_pending_cross_server_calls: usize,
    /// Most client events of one socket whose handlers are still running
    /// (default 64, [`DEFAULT_MAX_HANDLERS_PER_SOCKET`]). At the bound the
    /// node reads no more frames from that socket until one ends
    /// (backpressure: nothing is dropped).
    pub max_handlers_per_socket: usize,
    /// How often this node announces itself to the cluster (membership).
    #[serde(rename = "announce_interval_ms", with = "ms")]
    pub announce_interval: Duration,
    /// After how long without an announcement a node is considered gone.
    #[serde(rename = "member_timeout_ms", with = "ms")]
    pub member_timeout: Duration,
    /// Most connections this node holds; more are closed at once with 1013
    /// (try again later). `None`: no limit.
    pub max_connections: Option<usize>,
    /// Per-socket limit on client events; over it the socket is closed with
    /// 4004. `None` (the default): no limit.
    pub rate_limit: Option<RateLimit>,
    /// Origins allowed to open a WebSocket (the `Origin` header, e.g.
    /// `https://app.example.com`); others are refused with HTTP 403 before the
    /// upgrade. Empty (the default): every origin, and requests without one.
    pub allowed_origins: Vec<String>,
    /// Also allow an `Origin` whose host (and port) is the request's `Host`
    /// (a page served by this node). When set, only such origins and those
    /// of [`allowed_origins`](NodeConfig::allowed_origins) may connect from a
    /// browser; requests without an `Origin` (programs, not browsers) are
    /// still accepted. Off by default.
    pub same_origin: bool,
    /// How long a connection has to send its complete HTTP request head
    /// ([`listen`](crate::Node::listen) and [`serve`](crate::Node::serve));
    /// a silent or dripping connection is dropped then. Default 10 s.
    #[serde(rename = "handshake_timeout_ms", with = "ms")]
    pub handshake_timeout: Duration,
    /// Largest HTTP request head in bytes (at least 8 KiB); a bigger one is
    /// refused with 431. Default 16 KiB.
    pub max_handshake_size: usize,
    /// Most connections waiting for their upgrade at once; a new one pushes
    /// out the oldest. Default 4096.
    pub max_pending_handshakes: usize,
    /// File descriptors kept free of connections, below the process's
    /// limit (`ulimit -n`), for the rest of the process. Default 256.
    pub fd_reserve: usize,
    /// Request headers a socket keeps after its upgrade (lower-case names).
    /// Empty (the default): every header but the handshake's own
    /// (`Connection`, `Upgrade`, `Sec-WebSocket-Key`, `-Version`,
    /// `-Extensions`), up to
    /// [`kept_header_bytes`](NodeConfig::kept_header_bytes). The upgrade hook
    /// always sees every header.
    pub keep_headers: Vec<String>,
    /// Most bytes of request headers (names and values) a socket keeps when
    /// [`keep_headers`](NodeConfig::keep_headers) is empty; headers past the
    /// budget are not kept. Default 4 KiB.
    pub kept_header_bytes: usize,
    /// Shared secret to sign every bus message with (HMAC-SHA256, a
    /// timestamp and a nonce); unsigned, forged or replayed messages are
    /// dropped. Off by default: the original cannot read signed messages.
    pub bus_secret: Option<String>,
    /// How old (or how far in the future) a signed message may be.
    #[serde(rename = "bus_replay_window_ms", with = "ms")]
    pub bus_replay_window: Duration,
    /// Namespaces whose rooms keep a history for missed-message recovery,
    /// with how much they keep (see [`crate::history`]).
    pub history: std::collections::BTreeMap<String, HistoryConfig>,
    /// Namespaces whose room membership is shared with the whole cluster
    /// (room presence; see [`NodeBuilder::presence`](crate::NodeBuilder::presence)).
    pub presence: std::collections::BTreeSet<String>,
    /// One session per socket id across the cluster (see
    /// [`NodeBuilder::one_session_per_id`](crate::NodeBuilder::one_session_per_id)).
    pub one_session: bool,
    /// How messages find their nodes: the original's way (every node gets
    /// every room and socket-id message; the default) or routing by host
    /// (see [`Routing`]). Every node of a cluster must use the same.
    pub routing: Routing,
    /// TLS for [`listen`](crate::Node::listen) and
    /// [`serve`](crate::Node::serve): with it they accept `wss://`
    /// connections only (feature `tls`; set with
    /// [`NodeBuilder::tls`](crate::NodeBuilder::tls)). Not read from or
    /// written to configuration files: build it from the PEM files with
    /// [`TlsConfig::from_pem_files`]. Default none (plain `ws://`).
    #[cfg(feature = "tls")]
    #[serde(skip)]
    pub tls: Option<TlsConfig>,
}

/// How a cluster routes room and socket-id messages between its nodes.
///
/// * `Compatible` (the default, the original's wire): a room message goes
///   on its namespace's channel and a message to socket ids on the shared
///   private channel; every node subscribed to them receives it and drops
///   what it does not host. Original Node.js nodes can be members.
/// * `ByHost`: a node subscribes to the channel of each room it has members
///   in, and to channels of its own for the socket ids it holds and for the
///   cross-server events addressed to it. The nodes keep a directory of which
///   node holds which id (told on the bridge channel, synchronised to
///   newcomers, dropped with a node that goes away), so a message to one id
///   reaches the node that holds it, a room message the nodes with members,
///   and a reply only its caller. Ids the directory does not know yet go on
///   the shared private channel, as in the compatible mode, and a node that
///   no longer holds an id it was sent passes the message on there, so a
///   directory that lags costs traffic, not messages. crosswire nodes only:
///   a node that sees a member of the other mode (or an original node)
///   reports it in [`Node::health`](crate::Node::health) and its logs.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::Routing;
/// assert_eq!(Routing::default(), Routing::Compatible);
/// let node = crosswire::Node::builder().routing(Routing::ByHost).build()?;
/// assert_eq!(node.config().routing, Routing::ByHost);
/// assert_eq!(serde_json::to_string(&Routing::ByHost)?, r#""by_host""#);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// The original's routing (every node receives everything).
    #[default]
    Compatible,
    /// Nodes receive only what they host (crosswire nodes only).
    ByHost,
}

/// A token bucket: `burst` events at once, refilled at `per_second`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::RateLimit;
/// let node = crosswire::Node::builder().rate_limit(10.0, 20).build()?;
/// assert_eq!(node.config().rate_limit, Some(RateLimit { per_second: 10.0, burst: 20 }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed in a burst.
    pub burst: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            server_name: "crosswire".into(),
            heartbeat: String::new(),
            server_ping_interval: Duration::from_millis(20_000),
            enter_background_close_time: Duration::from_millis(10_000),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            outbound_queue_bytes: DEFAULT_OUTBOUND_QUEUE_BYTES,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            slow_consumer: SlowConsumerPolicy::Close,
            bridge_prefix: crosswire_protocol::channels::DEFAULT_BRIDGE_PREFIX.into(),
            ws_prefix: crosswire_protocol::channels::DEFAULT_WS_PREFIX.into(),
            codec: Codec::MsgPack,
            websocket: true,
            preset_room_namespaces: Vec::new(),
            auto_unsubscribe: true,
            custom_channels: Vec::new(),
            max_bus_message_size: DEFAULT_MAX_BUS_MESSAGE_SIZE,
            max_pending_cross_server_calls: DEFAULT_MAX_PENDING_CROSS_SERVER_CALLS,
            max_handlers_per_socket: DEFAULT_MAX_HANDLERS_PER_SOCKET,
            announce_interval: Duration::from_millis(2_000),
            member_timeout: Duration::from_millis(7_000),
            max_connections: None,
            rate_limit: None,
            allowed_origins: Vec::new(),
            same_origin: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            fd_reserve: DEFAULT_FD_RESERVE,
            keep_headers: Vec::new(),
            kept_header_bytes: DEFAULT_KEPT_HEADER_BYTES,
            bus_secret: None,
            bus_replay_window: Duration::from_secs(30),
            history: Default::default(),
            presence: Default::default(),
            one_session: false,
            routing: Routing::Compatible,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
