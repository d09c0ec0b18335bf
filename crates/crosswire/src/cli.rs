//! Command-line flags for a node's protections (feature `clap`), to flatten
//! into a program's own `clap` arguments so that whoever runs it can set
//! every limit.
//!
//! # Examples
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[arg(long, default_value_t = 9000)]
//!     port: u16,
//!     #[command(flatten)]
//!     limits: crosswire::cli::LimitArgs,
//! }
//!
//! # fn main() -> crosswire::Result<()> {
//! # let rt = tokio::runtime::Runtime::new()?;
//! # let _guard = rt.enter();
//! let args = Args::parse_from([
//!     "server",
//!     "--max-connections", "10000",
//!     "--rate-limit", "20:40",
//!     "--allowed-origin", "https://app.example.com",
//!     "--handshake-timeout-ms", "5000",
//! ]);
//! let node = args.limits.apply(crosswire::Node::builder()).build()?;
//! assert_eq!(node.config().max_connections, Some(10_000));
//! assert_eq!(node.config().allowed_origins, ["https://app.example.com"]);
//! assert_eq!(node.config().handshake_timeout, std::time::Duration::from_secs(5));
//! # Ok(())
//! # }
//! ```

use crate::NodeBuilder;
use std::time::Duration;

/// A node's limits and protections as flags; each left out keeps the
/// library's default (see [`NodeConfig`](crate::NodeConfig)).
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     limits: crosswire::cli::LimitArgs,
/// }
/// let args = Args::parse_from(["server", "--same-origin", "--max-pending-handshakes", "100"]);
/// assert!(args.limits.same_origin);
/// assert_eq!(args.limits.max_pending_handshakes, Some(100));
/// assert!(Args::try_parse_from(["server", "--rate-limit", "fast"]).is_err());
/// ```
#[derive(clap::Args, Debug, Clone, Default)]
// The doc comment is for rustdoc: the program's own about text stays.
#[command(about = None, long_about = None)]
pub struct LimitArgs {
    /// Most open WebSocket connections; more are closed with 1013.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Per-socket rate limit on client events, `PER_SECOND:BURST` (over it:
    /// close 4004).
    #[arg(long, value_parser = parse_rate)]
    pub rate_limit: Option<(f64, u32)>,
    /// Origin allowed to connect from a browser (e.g.
    /// `https://app.example.com`); repeatable.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Also allow browsers on pages of this node's own host.
    #[arg(long)]
    pub same_origin: bool,
    /// Shared secret to sign bus messages with (every node of the cluster
    /// needs the same; original Node.js nodes cannot join a signed cluster).
    #[arg(long, env = "CROSSWIRE_BUS_SECRET", hide_env_values = true)]
    pub bus_secret: Option<String>,
    /// Largest client frame, in bytes (over it: close 1009).
    #[arg(long)]
    pub max_frame_size: Option<usize>,
    /// Byte bound of each socket's outbound queue (over it: the slow-consumer
    /// policy, close 4003 by default).
    #[arg(long)]
    pub outbound_queue_bytes: Option<usize>,
    /// Time a connection has to send its upgrade request, in milliseconds.
    #[arg(long)]
    pub handshake_timeout_ms: Option<u64>,
    /// Largest HTTP request head, in bytes (over it: 431).
    #[arg(long)]
    pub max_handshake_size: Option<usize>,
    /// Most connections waiting for their upgrade at once.
    #[arg(long)]
    pub max_pending_handshakes: Option<usize>,
}

impl LimitArgs {
    /// Sets every limit given on `builder`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> crosswire::Result<()> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// let limits = crosswire::cli::LimitArgs {
    ///     max_connections: Some(500),
    ///     ..Default::default()
    /// };
    /// let node = limits.apply(crosswire::Node::builder()).build()?;
    /// assert_eq!(node.config().max_connections, Some(500));
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply(&self, mut b: NodeBuilder) -> NodeBuilder {
        if let Some(n) = self.max_connections {
            b = b.max_connections(n);
        }
        if let Some((per_second, burst)) = self.rate_limit {
            b = b.rate_limit(per_second, burst);
        }
        if !self.allowed_origins.is_empty() {
            b = b.allowed_origins(self.allowed_origins.iter().cloned());
        }
        if self.same_origin {
            b = b.same_origin(true);
        }
        if let Some(secret) = &self.bus_secret {
            b = b.bus_secret(secret.clone());
        }
        if let Some(n) = self.max_frame_size {
            b = b.max_frame_size(n);
        }
        if let Some(n) = self.outbound_queue_bytes {
            b = b.outbound_queue_bytes(n);
        }
        if let Some(ms) = self.handshake_timeout_ms {
            b = b.handshake_timeout(Duration::from_millis(ms));
        }
        if let Some(n) = self.max_handshake_size {
            b = b.max_handshake_size(n);
        }
        if let Some(n) = self.max_pending_handshakes {
            b = b.max_pending_handshakes(n);
        }
        b
    }
}

/// Parses `PER_SECOND:BURST`.
fn parse_rate(s: &str) -> Result<(f64, u32), String> {
    let (rate, burst) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected PER_SECOND:BURST"))?;
    let rate: f64 = rate
        .parse()
        .map_err(|_| format!("{rate:?}: not a number"))?;
    let burst: u32 = burst
        .parse()
        .map_err(|_| format!("{burst:?}: not a count"))?;
    if !rate.is_finite() || rate <= 0.0 || burst == 0 {
        return Err(format!("{s:?}: both must be positive"));
    }
    Ok((rate, burst))
}

/// The HTTP API's flags ([`crate::http_api`]): where to serve it, its
/// tokens and its admin page. Without `--http-api` no API is served.
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     http: crosswire::cli::HttpApiArgs,
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let args = Args::parse_from([
///     "server", "--http-api", "127.0.0.1:0", "--http-token", "new,old", "--admin",
/// ]);
/// assert_eq!(args.http.http_token, ["new", "old"]);
/// let off = Args::parse_from(["server", "--http-rate-limit", "off"]);
/// assert!(off.http.config().rate_limit.is_none());
/// assert!(Args::try_parse_from(["server", "--http-rate-limit"]).is_err());
/// let node = crosswire::Node::builder().build()?;
/// let addr = args.http.serve(&node).await?;
/// assert!(addr.is_some());
/// // No address, no API.
/// assert!(Args::parse_from(["server"]).http.serve(&node).await?.is_none());
/// // An address without a token is refused.
/// assert!(Args::parse_from(["server", "--http-api", "127.0.0.1:0"]).http.serve(&node).await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(clap::Args, Debug, Clone, Default)]
#[command(about = None, long_about = None)]
pub struct HttpApiArgs {
    /// Serve the HTTP API (and the admin page with --admin) on this
    /// address, e.g. 127.0.0.1:8090. Keep it off the public network.
    #[arg(long, value_name = "ADDR")]
    pub http_api: Option<String>,
    /// Bearer token of the HTTP API; repeat it (or separate with commas) to
    /// accept several while rotating them.
    #[arg(
        long,
        value_delimiter = ',',
        env = "CROSSWIRE_HTTP_TOKENS",
        hide_env_values = true
    )]
    pub http_token: Vec<String>,
    /// Serve the admin page at /admin of the HTTP API.
    #[arg(long)]
    pub admin: bool,
    /// Largest HTTP API request body in bytes (default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub http_max_body: Option<usize>,
    /// HTTP API requests allowed as `PER_SECOND:BURST` (default 2000:4000),
    /// or `off`.
    #[arg(long, value_name = "PER_SECOND:BURST", value_parser = parse_optional_rate)]
    pub http_rate_limit: Option<RateSetting>,
}

/// A rate limit given on the command line: a rate, or `off`.
///
/// # Examples
///
/// ```
/// use crosswire::cli::RateSetting;
/// assert_eq!(RateSetting::Off.limit(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSetting {
    /// `PER_SECOND:BURST`.
    Limit(crate::RateLimit),
    /// `off`: no limit.
    Off,
}

impl RateSetting {
    /// The limit, `None` for `off`.
    pub fn limit(self) -> Option<crate::RateLimit> {
        match self {
            RateSetting::Limit(l) => Some(l),
            RateSetting::Off => None,
        }
    }
}

fn parse_optional_rate(s: &str) -> Result<RateSetting, String> {
    if s == "off" {
        return Ok(RateSetting::Off);
    }
    let (per_second, burst) = parse_rate(s)?;
    Ok(RateSetting::Limit(crate::RateLimit { per_second, burst }))
}

impl HttpApiArgs {
    /// The API's configuration from the flags.
    pub fn config(&self) -> crate::http_api::HttpApiConfig {
        let mut config = crate::http_api::HttpApiConfig::new(self.http_token.iter().cloned())
            .admin_page(self.admin);
        if let Some(bytes) = self.http_max_body {
            config = config.max_body_bytes(bytes);
        }
        if let Some(setting) = self.http_rate_limit {
            config.rate_limit = setting.limit();
        }
        config
    }

    /// Serves the API of `node` when `--http-api` was given; returns its
    /// address.
    ///
    /// # Errors
    ///
    /// No `--http-token`, or the address cannot be bound.
    pub async fn serve(&self, node: &crate::Node) -> crate::Result<Option<std::net::SocketAddr>> {
        match &self.http_api {
            Some(addr) => node
                .listen_http_api(addr.as_str(), self.config())
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}
