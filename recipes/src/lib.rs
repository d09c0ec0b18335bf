//! # crosswire recipes
//!
//! The original library's three examples and the answers of its FAQ, written
//! with crosswire. Each recipe is a library module, so that its integration
//! test runs it against real nodes, plus a thin binary in `src/bin/`:
//!
//! | recipe | module | binaries |
//! |---|---|---|
//! | the single server and its client | — | `crosswire-examples --bin single-server`, `crosswire-client --example client` |
//! | pure cross-server pair | [`cross_pair`] | `cross-server-node`, `cross-server-sender` |
//! | WebSocket + cross-server cluster | [`cluster`] | `cluster-node`, `cluster-boss`, `cluster-clients` |
//! | FAQ 1: client → WebSocket node → logic node → callback | [`matchmaking`] | `faq01-matchmaking` |
//! | FAQ 4/5: a Redis node, a WebSocket node added at runtime | [`scaling`] | `faq04-add-redis`, `faq05-join-node` |
//! | FAQ 12: cluster-wide statistics | [`stats`] | `faq12-cluster-stats` |
//! | FAQ 13: one login per user across the cluster | [`single_login`] | `faq13-single-login` |
//! | FAQ 13: distributing users over nodes | [`hashring`] | `faq13-user-distribution` |
//! | FAQ 17: authentication | [`auth`] | `faq17-auth` |
//!
//! The nodes of a recipe meet on a [`Backbone`]: a [`MemoryHub`] when they
//! all run in one process (the default of every binary), or Redis
//! (`--redis redis://127.0.0.1:6379`, repeatable) when they run as separate
//! processes. The recipes' clients are [`client::Player`]s, thin wrappers
//! around [`crosswire_client::Connector`].
//!
//! ```no_run
//! # async fn demo() -> crosswire_recipes::Result<()> {
//! use crosswire_recipes::{bind_query_id, install_whoami, Backbone};
//!
//! let backbone = Backbone::memory();
//! let node = backbone.builder("ws1").await?.build()?;
//! bind_query_id(&node);
//! install_whoami(&node)?;
//! let addr = node.listen("127.0.0.1:0").await?;
//! println!("connect to ws://{addr}/?id=u1");
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod cluster;
pub mod cross_pair;
pub mod hashring;
pub mod matchmaking;
pub mod scaling;
pub mod single_login;
pub mod stats;

use crosswire::bus::MemoryHub;
use crosswire::{Node, NodeBuilder, Socket};
use crosswire_redis::{RedisBus, RedisBusConfig};
use serde_json::json;
use std::time::Duration;

/// Any error of a recipe (crosswire, Redis bus, client, or [`RecipeError`]).
///
/// # Examples
///
/// ```
/// use crosswire_recipes::{BoxError, RecipeError};
/// let e: BoxError = RecipeError::Timeout("no reply".into()).into();
/// assert_eq!(e.to_string(), "timed out: no reply");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`BoxError`].
///
/// # Examples
///
/// ```
/// fn parse(s: &str) -> crosswire_recipes::Result<u16> {
///     Ok(s.parse::<u16>()?)
/// }
/// assert_eq!(parse("4011").ok(), Some(4011));
/// assert!(parse("x").is_err());
/// ```
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// What a recipe itself can report.
///
/// # Examples
///
/// ```
/// use crosswire_recipes::RecipeError;
/// let e = RecipeError::Closed { code: 4012, reason: "Kicked".into() };
/// assert_eq!(e.to_string(), "connection closed with 4012 \"Kicked\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// Something did not happen within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection closed while something else was expected.
    #[error("connection closed with {code} {reason:?}")]
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A peer answered something the recipe does not understand.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Close code of a socket that connected without `?id=` (the original's
/// examples use 4011 `Auth failure`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{bind_query_id, client::Player};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// bind_query_id(&node);
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// use crosswire_client::ConnectorOptions;
/// let mut anonymous = Player::open(ConnectorOptions::new(url.as_str()), "anonymous", within).await?;
/// assert_eq!(anonymous.closed(within).await?.0, crosswire_recipes::AUTH_FAILURE);
/// # Ok(())
/// # }
/// ```
pub const AUTH_FAILURE: u16 = crosswire::close_code::AUTH_FAILED;

/// Close code of a socket replaced by a second login of the same user (the
/// original's documented convention).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{bind_query_id, client::Player};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// bind_query_id(&node);
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// crosswire_recipes::install_whoami(&node)?;
/// let mut first = Player::connect(&url, "u1", within).await?;
/// let _second = Player::connect(&url, "u1", within).await?;
/// assert_eq!(first.closed(within).await?.0, crosswire_recipes::KICKED);
/// # Ok(())
/// # }
/// ```
pub const KICKED: u16 = 4012;

/// The id a socket was bound to by [`bind_query_id`], attached to the socket
/// (the original's `socket.playerId`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire::handler::Data;
/// use crosswire_recipes::{bind_query_id, client::Player, install_whoami, PlayerId};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// bind_query_id(&node);
/// install_whoami(&node)?;
/// node.on("myId", |socket: crosswire::Socket| async move {
///     Data(socket.data::<PlayerId>().map(|PlayerId(id)| id))
/// })?;
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let p = Player::connect(&url, "u1", within).await?;
/// assert_eq!(p.request("myId", &(), within).await?, Some(serde_json::json!("u1")));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerId(pub String);

/// Where the nodes of a recipe meet: one in-process hub, or Redis nodes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire::handler::Data;
/// use crosswire_recipes::Backbone;
/// let backbone = Backbone::memory();
/// let a = backbone.builder("a").await?.build()?;
/// let b = backbone.builder("b").await?.build()?;
/// b.on_cross_server("name", || async { Data("b") })?;
/// a.ready().await;
/// b.ready().await;
/// let result = a.emit_cross_server("name", &1)?.to(["b"]).collect().await?;
/// assert_eq!(result.responses["b"].payload, Some(serde_json::json!("b")));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // built once per program; boxing would only add noise
pub enum Backbone {
    /// Every node in this process, on one hub.
    Memory(MemoryHub),
    /// Every node gets its own [`RedisBus`] over these Redis nodes; the
    /// configuration must be the same on every node (FAQ 6).
    Redis(RedisBusConfig),
}

impl std::fmt::Debug for Backbone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backbone::Memory(_) => f.write_str("Backbone::Memory"),
            Backbone::Redis(c) => f.debug_tuple("Backbone::Redis").field(&c.nodes).finish(),
        }
    }
}

impl Backbone {
    /// A new in-process hub.
    ///
    /// # Examples
    ///
    /// ```
    /// let backbone = crosswire_recipes::Backbone::memory();
    /// assert!(backbone.is_memory());
    /// ```
    pub fn memory() -> Self {
        Backbone::Memory(MemoryHub::new())
    }

    /// Redis nodes with the default bus configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = crosswire_recipes::Backbone::redis(["redis://127.0.0.1:6379"]);
    /// assert!(!b.is_memory());
    /// ```
    pub fn redis<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Backbone::Redis(RedisBusConfig::new(urls))
    }

    /// Redis when `urls` is not empty, else a new in-process hub (what the
    /// binaries' `--redis` option selects).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(crosswire_recipes::Backbone::from_urls(Vec::new()).is_memory());
    /// ```
    pub fn from_urls(urls: Vec<String>) -> Self {
        if urls.is_empty() {
            Backbone::memory()
        } else {
            Backbone::redis(urls)
        }
    }

    /// Whether the nodes meet in this process.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::Backbone;
    /// assert!(Backbone::memory().is_memory());
    /// assert!(!Backbone::from_urls(vec!["redis://127.0.0.1:6379".into()]).is_memory());
    /// ```
    pub fn is_memory(&self) -> bool {
        matches!(self, Backbone::Memory(_))
    }

    /// A bus endpoint for node `name`: a hub endpoint, or a Redis bus that
    /// can publish on at least one Redis node (waiting up to 5 s for one).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use crosswire_recipes::{Backbone, Endpoint};
    /// let endpoint = Backbone::memory().bus("n1").await?;
    /// assert!(matches!(endpoint, Endpoint::Memory(_)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bus(&self, name: &str) -> Result<Endpoint> {
        match self {
            Backbone::Memory(hub) => Ok(Endpoint::Memory(hub.bus())),
            Backbone::Redis(config) => {
                let config = RedisBusConfig {
                    server_name: Some(name.to_owned()),
                    ..config.clone()
                };
                let nodes = config.nodes.clone();
                let bus = RedisBus::connect(config).await?;
                let ready =
                    tokio::time::timeout(Duration::from_secs(5), bus.wait_for_publish_targets(1))
                        .await;
                if !matches!(ready, Ok(Ok(()))) {
                    return Err(RecipeError::Timeout(format!(
                        "no Redis node reachable among {nodes:?}"
                    ))
                    .into());
                }
                Ok(Endpoint::Redis(bus))
            }
        }
    }

    /// A node builder named `name`, on this backbone, with membership
    /// announcements every 500 ms (a node that goes silent for 3 s is
    /// dropped from [`Node::live_nodes`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire_recipes::Result<()> {
    /// use std::time::Duration;
    /// let backbone = crosswire_recipes::Backbone::memory();
    /// let node = backbone.builder("n1").await?.build()?;
    /// assert_eq!(node.server_name(), "n1");
    /// let live = crosswire_recipes::wait_for_live_nodes(&node, 1, Duration::from_secs(5)).await?;
    /// assert_eq!(live, ["n1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn builder(&self, name: &str) -> Result<NodeBuilder> {
        let builder = Node::builder()
            .server_name(name)
            .membership(Duration::from_millis(500), Duration::from_secs(3));
        Ok(match self.bus(name).await? {
            Endpoint::Memory(bus) => builder.bus(bus),
            Endpoint::Redis(bus) => builder.bus(bus),
        })
    }
}

/// One node's bus endpoint on a [`Backbone`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{Backbone, Endpoint};
/// let node = match Backbone::memory().bus("n1").await? {
///     Endpoint::Memory(bus) => crosswire::Node::builder().server_name("n1").bus(bus).build()?,
///     Endpoint::Redis(bus) => crosswire::Node::builder().server_name("n1").bus(bus).build()?,
/// };
/// assert_eq!(node.server_name(), "n1");
/// # Ok(())
/// # }
/// ```
pub enum Endpoint {
    /// On the in-process hub.
    Memory(crosswire::bus::MemoryBus),
    /// On Redis; keep a clone to watch health or add Redis nodes.
    Redis(RedisBus),
}

/// Binds each new connection to the id in its URL (`?id=u1`) and attaches a
/// [`PlayerId`] to it, as the original's examples do; a connection without
/// an id is closed with [`AUTH_FAILURE`]. When the id was bound to another
/// connection of this node, that one is closed with [`KICKED`].
///
/// Nothing is needed on close: the node unbinds the ids a closed connection
/// still owns and removes them from their rooms (the original needs
/// `removeUserSocket` in its close handler, FAQ 3).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{bind_query_id, client::Player};
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// bind_query_id(&node);
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// crosswire_recipes::install_whoami(&node)?;
/// let p = Player::connect(&url, "u1", within).await?;
/// let me = p.request("whoami", &(), within).await?.ok_or("no reply")?;
/// assert_eq!(me["id"], "u1");
/// # Ok(())
/// # }
/// ```
pub fn bind_query_id(node: &Node) {
    node.on_connection(|socket, handshake| async move {
        let Some(node) = socket.node() else { return };
        let id = handshake.param("id").filter(|id| !id.is_empty());
        let Some(id) = id else {
            socket.close(AUTH_FAILURE, "Auth failure");
            return;
        };
        match node.set_user_socket(id, &socket) {
            Ok(Some(old)) => old.close(KICKED, "Kicked by concurrent login"),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot bind socket id");
                socket.close(AUTH_FAILURE, "Auth failure");
                return;
            }
        }
        socket.insert_data(PlayerId(id.to_owned()));
    });
}

/// Client event answering `{"id": <bound id or null>, "server": <node name>}`.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_recipes::WHOAMI_EVENT, "whoami");
/// ```
pub const WHOAMI_EVENT: &str = "whoami";

/// Registers [`WHOAMI_EVENT`]. A client that got its answer knows that its
/// connection handlers have run (frames are dispatched only after them), so
/// its id is bound and it can be reached from any node.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use crosswire_recipes::{client::Player, install_whoami, WHOAMI_EVENT};
/// use crosswire_client::ConnectorOptions;
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("ws1").build()?;
/// install_whoami(&node)?;
/// let url = format!("ws://{}", node.listen("127.0.0.1:0").await?);
/// let within = Duration::from_secs(5);
/// let p = Player::open(ConnectorOptions::new(url.as_str()), "guest", within).await?;
/// let me = p.request(WHOAMI_EVENT, &(), within).await?;
/// assert_eq!(me, Some(serde_json::json!({"id": null, "server": "ws1"})));
/// # Ok(())
/// # }
/// ```
pub fn install_whoami(node: &Node) -> crosswire::Result<()> {
    node.on(WHOAMI_EVENT, |node: Node, socket: Socket| async move {
        let id = socket.socket_ids().into_iter().next();
        json!({ "id": id, "server": node.server_name() })
    })?;
    Ok(())
}

/// Waits until `node` sees at least `n` live nodes (itself included), or
/// fails after `within`.
///
/// Membership has no change event, so this polls [`Node::live_nodes`]
/// every 10 ms.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use std::time::Duration;
/// let backbone = crosswire_recipes::Backbone::memory();
/// let a = backbone.builder("a").await?.build()?;
/// let _b = backbone.builder("b").await?.build()?;
/// let live = crosswire_recipes::wait_for_live_nodes(&a, 2, Duration::from_secs(5)).await?;
/// assert_eq!(live, ["a", "b"]);
/// # Ok(())
/// # }
/// ```
pub async fn wait_for_live_nodes(node: &Node, n: usize, within: Duration) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let live = node.live_nodes();
        if live.len() >= n {
            return Ok(live);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RecipeError::Timeout(format!(
                "{} sees {live:?}, expected {n} live nodes",
                node.server_name()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `node` sees every node of `names` alive, or fails after `within`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire_recipes::Result<()> {
/// use std::time::Duration;
/// let backbone = crosswire_recipes::Backbone::memory();
/// let a = backbone.builder("a").await?.build()?;
/// let _b = backbone.builder("b").await?.build()?;
/// crosswire_recipes::wait_for_nodes(&a, &["b".to_owned()], Duration::from_secs(5)).await?;
/// assert!(a.live_nodes().contains(&"b".to_owned()));
/// let missing = ["ghost".to_owned()];
/// assert!(crosswire_recipes::wait_for_nodes(&a, &missing, Duration::from_millis(50)).await.is_err());
/// # Ok(())
/// # }
/// ```
pub async fn wait_for_nodes(node: &Node, names: &[String], within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let live = node.live_nodes();
        if names.iter().all(|n| live.contains(n)) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RecipeError::Timeout(format!(
                "{} sees {live:?}, waiting for {names:?}",
                node.server_name()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`).
/// Does nothing if a subscriber is already installed.
///
/// # Examples
///
/// ```
/// crosswire_recipes::init_tracing();
/// crosswire_recipes::init_tracing(); // a second call is harmless
/// ```
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Command-line options shared by the binaries.
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     backbone: crosswire_recipes::BackboneArgs,
/// }
/// let cli = Cli::parse_from(["demo", "--redis", "redis://10.0.0.1:6379"]);
/// assert_eq!(cli.backbone.redis, ["redis://10.0.0.1:6379"]);
/// assert!(!cli.backbone.backbone().is_memory());
/// ```
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneArgs {
    /// A Redis node URL (repeat for several Redis nodes). Without any,
    /// one-process demos use an in-process hub, and programs running one
    /// node per process use redis://127.0.0.1:6379.
    #[arg(long = "redis", value_name = "URL")]
    pub redis: Vec<String>,
}

impl BackboneArgs {
    /// The backbone these options select.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = crosswire_recipes::BackboneArgs { redis: Vec::new() };
    /// assert!(args.backbone().is_memory());
    /// ```
    pub fn backbone(&self) -> Backbone {
        Backbone::from_urls(self.redis.clone())
    }

    /// The Redis backbone, with `redis://127.0.0.1:6379` when no `--redis`
    /// was given (for binaries that run one node per process).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_recipes::{Backbone, BackboneArgs};
    /// let args = BackboneArgs { redis: Vec::new() };
    /// match args.redis_or_default() {
    ///     Backbone::Redis(config) => assert_eq!(config.nodes, ["redis://127.0.0.1:6379"]),
    ///     Backbone::Memory(_) => unreachable!(),
    /// }
    /// ```
    pub fn redis_or_default(&self) -> Backbone {
        if self.redis.is_empty() {
            Backbone::redis(["redis://127.0.0.1:6379"])
        } else {
            Backbone::redis(self.redis.clone())
        }
    }
}
