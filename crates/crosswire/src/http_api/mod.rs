//! The HTTP API: send to sockets, rooms and nodes, call the nodes and read
//! the cluster's state from any language, without joining the bus.
//!
//! [`Node::http_api`] builds an axum [`Router`] serving the routes under
//! `/api/v1/` (and, when asked, the admin page at `/admin`); the application
//! mounts it on a listener of its own, apart from the WebSocket endpoint, so
//! that nothing a WebSocket client can reach leads to it.
//! [`Node::listen_http_api`] does that in one call.
//!
//! - **Authentication**: every route under `/api/` wants
//!   `Authorization: Bearer <token>` with one of the configured tokens
//!   (several, for rotation). Tokens are compared in constant time (their
//!   SHA-256 digests, so that neither the content nor the length leaks).
//! - **Bounds**: request bodies above
//!   [`max_body_bytes`](HttpApiConfig::max_body_bytes) are refused with 413
//!   without being read further; authenticated requests beyond the
//!   [`rate_limit`](HttpApiConfig::rate_limit) get 429; call timeouts are
//!   capped ([`max_call_timeout`](HttpApiConfig::max_call_timeout)); pending
//!   calls count against the node's `max_pending_cross_server_calls`.
//! - **Errors**: JSON `{"error":{"code":"...","message":"..."}}` with a
//!   stable `code` ([`ErrorCode`]); every answer is counted in
//!   `crosswire_http_api_requests_total{code=...}`.
//!
//! The routes, their bodies and answers are described in `docs/http-api.md`
//! and by the OpenAPI document the API serves at `/api/v1/openapi.json`
//! ([`OPENAPI`]).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crosswire::http_api::HttpApiConfig;
//! let node = crosswire::Node::builder().server_name("n1").build()?;
//! let ws = node.listen("127.0.0.1:0").await?;
//! let api = node.listen_http_api("127.0.0.1:0", HttpApiConfig::new(["s3cret"])).await?;
//! // Any HTTP client can now POST to http://{api}/api/v1/broadcast with
//! // `Authorization: Bearer s3cret` and {"event":"news","payload":{"n":1}}.
//! # let _ = (ws, api);
//! # Ok(())
//! # }
//! ```

mod series;

use crate::node::{Node, RoomSend};
use crate::stats::Stats;
use crate::RateLimit;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crosswire_protocol::client::PushFrame;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

pub use series::Sample;

/// The OpenAPI 3.1 description of the routes, as served at
/// `/api/v1/openapi.json`.
///
/// # Examples
///
/// ```
/// let doc: serde_json::Value = serde_json::from_str(crosswire::http_api::OPENAPI)?;
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert!(doc["paths"]["/api/v1/broadcast"]["post"].is_object());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub const OPENAPI: &str = include_str!("openapi.json");

/// The admin page served at `/admin` when
/// [`admin_page`](HttpApiConfig::admin_page) is on.
const ADMIN_PAGE: &str = include_str!("admin.html");

/// Every route of the API, as `(method, path)` with axum's `{param}`
/// syntax (the OpenAPI document describes exactly these).
///
/// # Examples
///
/// ```
/// use crosswire::http_api::ROUTES;
/// assert!(ROUTES.contains(&("POST", "/api/v1/rooms/send")));
/// ```
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/broadcast"),
    ("POST", "/api/v1/send"),
    ("POST", "/api/v1/rooms/send"),
    ("POST", "/api/v1/call"),
    ("GET", "/api/v1/nodes"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/cluster"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{namespace}/{room}"),
    ("GET", "/api/v1/sockets/{id}"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/openapi.json"),
];

/// Default [`HttpApiConfig::max_body_bytes`]: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Default [`HttpApiConfig::max_call_timeout`]: 60 s.
pub const DEFAULT_MAX_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default timeout of a call that names none: 5 s (the original's).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Most socket ids (targets or exclusions) one request may name.
pub const MAX_IDS_PER_REQUEST: usize = 10_000;

/// How the HTTP API is served.
///
/// # Examples
///
/// ```
/// use crosswire::http_api::HttpApiConfig;
/// let config = HttpApiConfig::new(["new-token", "old-token"])
///     .max_body_bytes(64 * 1024)
///     .rate_limit(500.0, 1000)
///     .admin_page(true);
/// assert_eq!(config.tokens.len(), 2);
/// assert!(config.admin_page);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpApiConfig {
    /// Bearer tokens accepted (any of them); at least one, none empty.
    pub tokens: Vec<String>,
    /// Largest request body in bytes (default 1 MiB): 413 above it.
    pub max_body_bytes: usize,
    /// Authenticated requests allowed per second and in a burst, over all
    /// clients of this API (default 2,000/s, burst 4,000): 429 above it.
    /// `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Longest timeout a call may ask for (default 60 s).
    pub max_call_timeout: Duration,
    /// Serve the admin page at `/admin` (default off). The page itself holds
    /// no data: it asks for a token and reads the API with it.
    pub admin_page: bool,
}

impl std::fmt::Debug for HttpApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApiConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rate_limit", &self.rate_limit)
            .field("max_call_timeout", &self.max_call_timeout)
            .field("admin_page", &self.admin_page)
            .finish()
    }
}

impl HttpApiConfig {
    /// A configuration accepting these bearer tokens, with the defaults
    /// for the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = crosswire::http_api::HttpApiConfig::new(["t1"]);
    /// assert_eq!(config.max_body_bytes, crosswire::http_api::DEFAULT_MAX_BODY_BYTES);
    /// assert!(!format!("{config:?}").contains("t1"));
    /// ```
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HttpApiConfig {
            tokens: tokens.into_iter().map(Into::into).collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_limit: Some(RateLimit {
                per_second: 2_000.0,
                burst: 4_000,
            }),
            max_call_timeout: DEFAULT_MAX_CALL_TIMEOUT,
            admin_page: false,
        }
    }

    /// Sets [`max_body_bytes`](Self::max_body_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = crosswire::http_api::HttpApiConfig::new(["t"]).max_body_bytes(4096);
    /// assert_eq!(c.max_body_bytes, 4096);
    /// ```
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`rate_limit`](Self::rate_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = crosswire::http_api::HttpApiConfig::new(["t"]).rate_limit(10.0, 20);
    /// assert_eq!(c.rate_limit.map(|r| r.burst), Some(20));
    /// ```
    pub fn rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_limit = Some(RateLimit { per_second, burst });
        self
    }

    /// Removes the rate limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = crosswire::http_api::HttpApiConfig::new(["t"]).no_rate_limit();
    /// assert!(c.rate_limit.is_none());
    /// ```
    pub fn no_rate_limit(mut self) -> Self {
        self.rate_limit = None;
        self
    }

    /// Sets [`max_call_timeout`](Self::max_call_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = crosswire::http_api::HttpApiConfig::new(["t"]).max_call_timeout(Duration::from_secs(5));
    /// assert_eq!(c.max_call_timeout, Duration::from_secs(5));
    /// ```
    pub fn max_call_timeout(mut self, timeout: Duration) -> Self {
        self.max_call_timeout = timeout;
        self
    }

    /// Sets [`admin_page`](Self::admin_page).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = crosswire::http_api::HttpApiConfig::new(["t"]).admin_page(true);
    /// assert!(c.admin_page);
    /// ```
    pub fn admin_page(mut self, on: bool) -> Self {
        self.admin_page = on;
        self
    }

    fn check(&self) -> crate::Result<()> {
        if self.tokens.is_empty() {
            return Err(crate::Error::Config(
                "the HTTP API needs at least one bearer token".into(),
            ));
        }
        if self.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(crate::Error::Config(
                "HTTP API tokens must not be empty".into(),
            ));
        }
        if self
            .tokens
            .iter()
            .any(|t| t.bytes().any(|b| !(0x21..=0x7e).contains(&b)))
        {
            return Err(crate::Error::Config(
                "HTTP API tokens must be printable ASCII without spaces".into(),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(crate::Error::Config(
                "the HTTP API's max_body_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The stable codes of the API's errors (the `code` of an error body, and
/// the label of `crosswire_http_api_requests_total`, where `ok` counts the
/// rest).
///
/// # Examples
///
/// ```
/// use crosswire::http_api::ErrorCode;
/// assert_eq!(ErrorCode::BodyTooLarge.as_str(), "body_too_large");
/// assert_eq!(ErrorCode::BodyTooLarge.status(), 413);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: no `Authorization: Bearer` header, or a token the API does not
    /// accept.
    Unauthorized,
    /// 400: the body is not JSON.
    InvalidJson,
    /// 400 (or 422-like): the JSON does not fit the route (a missing or
    /// unknown field, a wrong type, an empty name, a timeout out of range).
    InvalidRequest,
    /// 413: the body is larger than `max_body_bytes`, or the message would
    /// exceed the node's `max_bus_message_size`.
    BodyTooLarge,
    /// 415: a body that is not `application/json`.
    UnsupportedMediaType,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 404: a call names nodes that are not live members of the cluster.
    UnknownServer,
    /// 429: more requests than the API's rate limit.
    RateLimited,
    /// 503: the node is shutting down, or its bus cannot publish (nothing
    /// was sent; try again or another node).
    Unavailable,
    /// 503: the node already waits on `max_pending_cross_server_calls` calls.
    TooManyCalls,
    /// 500: anything else (logged).
    Internal,
}

impl ErrorCode {
    /// The code as it appears in error bodies and metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::http_api::ErrorCode::RateLimited.as_str(), "rate_limited");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnknownServer => "unknown_server",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyCalls => "too_many_calls",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status answered with the code.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::http_api::ErrorCode::Unauthorized.status(), 401);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::InvalidJson | ErrorCode::InvalidRequest => 400,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::NotFound | ErrorCode::UnknownServer => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable | ErrorCode::TooManyCalls => 503,
            ErrorCode::Internal => 500,
        }
    }

    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            ErrorCode::Unauthorized => &stats.http_api_unauthorized,
            ErrorCode::InvalidJson => &stats.http_api_invalid_json,
            ErrorCode::InvalidRequest => &stats.http_api_invalid_request,
            ErrorCode::BodyTooLarge => &stats.http_api_body_too_large,
            ErrorCode::UnsupportedMediaType => &stats.http_api_unsupported_media_type,
            ErrorCode::NotFound => &stats.http_api_not_found,
            ErrorCode::MethodNotAllowed => &stats.http_api_method_not_allowed,
            ErrorCode::UnknownServer => &stats.http_api_unknown_server,
            ErrorCode::RateLimited => &stats.http_api_rate_limited,
            ErrorCode::Unavailable => &stats.http_api_unavailable,
            ErrorCode::TooManyCalls => &stats.http_api_too_many_calls,
            ErrorCode::Internal => &stats.http_api_internal,
        }
    }
}

/// An error answer of the API.
#[derive(Debug)]
struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        let mut response = (status, Json(body)).into_response();
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"crosswire\""),
            );
        }
        // The counting middleware reads the code from here.
        response.extensions_mut().insert(self.code);
        response
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        let code = match &e {
            E::InvalidArgument(_) | E::ReservedEvent(_) | E::Channel(_) | E::Encode(_) => {
                ErrorCode::InvalidRequest
            }
            E::Shutdown | E::NoBus => ErrorCode::Unavailable,
            E::TooManyPendingCalls { .. } => ErrorCode::TooManyCalls,
            E::BusMessageTooLarge { .. } => ErrorCode::BodyTooLarge,
            _ => ErrorCode::Internal,
        };
        if code == ErrorCode::Internal {
            tracing::error!(error = %e, "HTTP API request failed");
        }
        ApiError::new(code, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// What the routes share.
struct Api {
    node: Node,
    /// SHA-256 digests of the accepted tokens.
    tokens: Vec<[u8; 32]>,
    max_body_bytes: usize,
    max_call_timeout: Duration,
    bucket: Option<Mutex<crate::ws::TokenBucket>>,
    series: Arc<series::Series>,
}

impl Api {
    /// Whether `headers` carry an accepted bearer token. Every accepted
    /// token is compared, in constant time, whatever matches.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let Some(token) = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut ok = subtle::Choice::from(0);
        for accepted in &self.tokens {
            ok |= accepted.ct_eq(&digest);
        }
        ok.into()
    }
}

impl Node {
    /// The HTTP API of this node as an axum router (routes under
    /// `/api/v1/`, and `/admin` with
    /// [`admin_page`](HttpApiConfig::admin_page)); serve it on a listener
    /// of its own. Needs a Tokio runtime (it starts the sampler of the admin
    /// page's charts). See the [module](crate::http_api) for what it does.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) without tokens, with an empty
    /// one or one that is not printable ASCII.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::http_api::HttpApiConfig;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let api: axum::Router = node.http_api(HttpApiConfig::new(["s3cret"]))?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// tokio::spawn(async move { axum::serve(listener, api).await });
    /// assert!(node.http_api(HttpApiConfig::new(Vec::<String>::new())).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn http_api(&self, config: HttpApiConfig) -> crate::Result<Router> {
        config.check()?;
        let series = series::Series::start(self)?;
        let api = Arc::new(Api {
            node: self.clone(),
            tokens: config
                .tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            max_body_bytes: config.max_body_bytes,
            max_call_timeout: config.max_call_timeout,
            bucket: config
                .rate_limit
                .map(|limit| Mutex::new(crate::ws::TokenBucket::new(limit))),
            series,
        });
        let routes = Router::new()
            .route("/api/v1/broadcast", post(broadcast))
            .route("/api/v1/send", post(send))
            .route("/api/v1/rooms/send", post(room_send))
            .route("/api/v1/call", post(call))
            .route("/api/v1/nodes", get(nodes))
            .route("/api/v1/health", get(health))
            .route("/api/v1/cluster", get(cluster))
            .route("/api/v1/rooms", get(rooms))
            .route("/api/v1/rooms/{namespace}/{room}", get(room))
            .route("/api/v1/sockets/{id}", get(socket))
            .route("/api/v1/stats", get(stats))
            .route("/api/v1/openapi.json", get(openapi))
            .method_not_allowed_fallback(method_not_allowed)
            .route_layer(middleware::from_fn_with_state(api.clone(), guard));
        let mut router = Router::new().merge(routes);
        if config.admin_page {
            router = router.route("/admin", get(admin_page));
        }
        Ok(router
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(api.clone(), count))
            .with_state(api))
    }

    /// Serves [`http_api`](Node::http_api) on `addr` (port 0 for any free
    /// port) until [`shutdown`](Node::shutdown); returns the bound address.
    /// Its connections are bounded as the WebSocket listener's are before
    /// their upgrade: each request head must arrive within the node's
    /// [`handshake_timeout`](crate::NodeConfig::handshake_timeout) (an idle
    /// keep-alive connection is closed after it) and fit in
    /// [`max_handshake_size`](crate::NodeConfig::max_handshake_size) (431
    /// above it); at most
    /// [`max_pending_handshakes`](crate::NodeConfig::max_pending_handshakes)
    /// connections are open at once (a new one pushes out the oldest); they
    /// count in the same metrics (`crosswire_handshakes_failed_total`).
    /// Always plain HTTP, even when the node serves `wss://`: put a TLS
    /// proxy in front where the API crosses a network.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::http_api::HttpApiConfig;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let addr = node.listen_http_api("127.0.0.1:0", HttpApiConfig::new(["s3cret"])).await?;
    /// assert_ne!(addr.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn listen_http_api(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        config: HttpApiConfig,
    ) -> crate::Result<SocketAddr> {
        if self.is_shut_down() {
            return Err(crate::Error::Shutdown);
        }
        let router = self.http_api(config)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        // The node's own bounds on what a connection may hold before its
        // request is read (head size and time, connections waiting, file
        // descriptors), without its TLS: the API is plain HTTP.
        #[cfg(feature = "tls")]
        let listener_config = crate::NodeConfig {
            tls: None,
            ..self.config().clone()
        };
        #[cfg(not(feature = "tls"))]
        let listener_config = self.config().clone();
        let host = ApiHost {
            node: self.clone(),
            config: Arc::new(listener_config),
        };
        let stop = self.shutdown_token().clone();
        tokio::spawn(crate::listener::serve(host, listener, router, stop));
        tracing::info!(%local, "HTTP API listening");
        Ok(local)
    }
}

/// The API's listener as the accept loop sees it.
#[derive(Clone)]
struct ApiHost {
    node: Node,
    config: Arc<crate::NodeConfig>,
}

impl crate::listener::Host for ApiHost {
    fn config(&self) -> &crate::NodeConfig {
        &self.config
    }

    fn stats(&self) -> &Arc<Stats> {
        self.node.counters()
    }

    fn connection_count(&self) -> usize {
        self.node.connection_count()
    }
}

/// Counts every answer by its code.
async fn count(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    match response.extensions().get::<ErrorCode>() {
        Some(code) => Stats::incr(code.counter(api.node.counters())),
        None => Stats::incr(&api.node.counters().http_api_ok),
    }
    response
}

/// Authentication, then the rate limit, for every API route.
async fn guard(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    if !api.authorized(req.headers()) {
        let message = if req.headers().contains_key(header::AUTHORIZATION) {
            "the bearer token is not accepted"
        } else {
            "an Authorization: Bearer <token> header is required"
        };
        return ApiError::new(ErrorCode::Unauthorized, message).into_response();
    }
    if let Some(bucket) = &api.bucket {
        if !bucket.lock().take() {
            return ApiError::new(
                ErrorCode::RateLimited,
                "too many requests: the API's rate limit is reached, retry shortly",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "the route does not take this method",
    )
}

/// The JSON body of a request: `application/json`, at most
/// `max_body_bytes`, of the route's shape.
struct JsonBody<T>(T);

impl<T: DeserializeOwned> axum::extract::FromRequest<Arc<Api>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> ApiResult<Self> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let limit = api.max_body_bytes;
        let too_large = || {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("the body exceeds {limit} bytes"),
            )
        };
        if req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limit as u64)
        {
            return Err(too_large());
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(JsonBody(value)),
            Err(e) if e.is_syntax() || e.is_eof() => Err(ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {e}"),
            )),
            Err(e) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the body does not fit the route: {e}"),
            )),
        }
    }
}

/// A field that is present, `null` included (absent: `None`, by
/// `#[serde(default)]`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The frame of `event` with `payload` (none: the frame has no `payload`
/// key, as the original writes an event sent without one).
fn frame(node: &Node, event: &str, payload: Option<&Value>) -> ApiResult<PushFrame> {
    non_empty(event, "event")?;
    let frame = PushFrame::encode(event, payload).map_err(crate::Error::from)?;
    // Refused here rather than sent to this node's sockets only: the bus
    // would not take it (its envelope adds the channel, the sender and the
    // exclusions to the frame).
    let max = node.config().max_bus_message_size;
    if node.cluster().is_some() && frame.as_str().len() + BUS_ENVELOPE_ROOM > max {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the message would exceed the bus's limit of {max} bytes"),
        ));
    }
    Ok(frame)
}

/// Room left for a bus envelope around a frame when checking its size.
const BUS_ENVELOPE_ROOM: usize = 4096;

fn non_empty(value: &str, what: &'static str) -> ApiResult<()> {
    if value.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{what} must be a non-empty string"),
        ));
    }
    Ok(())
}

fn check_ids(ids: &[String], what: &'static str) -> ApiResult<()> {
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{what} names more than {MAX_IDS_PER_REQUEST} socket ids"),
        ));
    }
    if ids.iter().any(String::is_empty) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{what} holds an empty socket id"),
        ));
    }
    Ok(())
}

/// Refuses to send when nothing would reach the other nodes.
fn check_serving(node: &Node) -> ApiResult<()> {
    if node.is_shut_down() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the node is shutting down",
        ));
    }
    if let Some(cluster) = node.cluster() {
        if !cluster.bus.health().healthy {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the node's bus cannot publish: nothing was sent",
            ));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Sent {
    ok: bool,
}

const SENT: Json<Sent> = Json(Sent { ok: true });

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    event: String,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    #[serde(default)]
    local_only: bool,
}

async fn broadcast(
    State(api): State<Arc<Api>>,
    JsonBody(body): JsonBody<BroadcastBody>,
) -> ApiResult<Json<Sent>> {
    let frame = frame(&api.node, &body.event, body.payload.as_ref())?;
    check_serving(&api.node)?;
    api.node.broadcast_frame(&frame, body.local_only);
    Ok(SENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    ids: Vec<String>,
    event: String,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
}

async fn send(
    State(api): State<Arc<Api>>,
    JsonBody(body): JsonBody<SendBody>,
) -> ApiResult<Json<Sent>> {
    let frame = frame(&api.node, &body.event, body.payload.as_ref())?;
    check_ids(&body.ids, "ids")?;
    if body.ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "ids must name at least one socket id",
        ));
    }
    check_serving(&api.node)?;
    api.node.to_socket_ids_frame(&body.ids, &frame);
    Ok(SENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomSendBody {
    namespace: String,
    room: String,
    event: String,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    local_only: bool,
}

async fn room_send(
    State(api): State<Arc<Api>>,
    JsonBody(body): JsonBody<RoomSendBody>,
) -> ApiResult<Json<Sent>> {
    non_empty(&body.namespace, "namespace")?;
    non_empty(&body.room, "room")?;
    let frame = frame(&api.node, &body.event, body.payload.as_ref())?;
    check_ids(&body.exclude, "exclude")?;
    api.node.check_room_args(&body.namespace, &body.room)?;
    check_serving(&api.node)?;
    let mut options = RoomSend::new().exclude(body.exclude);
    if body.local_only {
        options = options.local_only();
    }
    api.node
        .broadcast_to_room_frame(&body.namespace, &body.room, &frame, options)?;
    Ok(SENT)
}

/// How many replies a call waits for.
#[derive(Deserialize)]
#[serde(untagged)]
enum Expect {
    Count(usize),
    All(AllLiteral),
}

#[derive(Deserialize)]
enum AllLiteral {
    #[serde(rename = "all")]
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    event: String,
    /// Required, and not `null`: cross-server events always carry a
    /// message (the original refuses one without).
    payload: Value,
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    except_self: bool,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct CallReply {
    server: String,
    payload: Value,
}

#[derive(Serialize)]
struct CallAnswer {
    /// Every expected reply arrived in time.
    completed: bool,
    replies: Vec<CallReply>,
    /// Expected replies that did not come.
    missing: usize,
}

async fn call(
    State(api): State<Arc<Api>>,
    JsonBody(body): JsonBody<CallBody>,
) -> ApiResult<Json<CallAnswer>> {
    non_empty(&body.event, "event")?;
    let timeout = api.timeout(body.timeout_ms, DEFAULT_CALL_TIMEOUT)?;
    if !body.servers.is_empty() {
        if body.expect.is_some() || body.except_self {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "expect and except_self apply to calls without servers (a call to named servers expects one reply from each)",
            ));
        }
        let live = api.node.live_nodes();
        let unknown: Vec<&str> = body
            .servers
            .iter()
            .filter(|s| !live.contains(s))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                ErrorCode::UnknownServer,
                format!("not live members of the cluster: {}", unknown.join(", ")),
            ));
        }
    }
    check_serving(&api.node)?;
    let mut emit = api
        .node
        .emit_cross_server(&body.event, &body.payload)?
        .timeout(timeout);
    if !body.servers.is_empty() {
        emit = emit.to(body.servers);
    }
    if body.except_self {
        emit = emit.except_self();
    }
    match body.expect {
        Some(Expect::Count(0)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "expect must be at least 1 (or \"all\")",
            ))
        }
        Some(Expect::Count(n)) => emit = emit.expect(n),
        Some(Expect::All(AllLiteral::All)) => emit = emit.expect_all(),
        None => {}
    }
    let result = emit.collect().await?;
    Ok(Json(CallAnswer {
        completed: result.success,
        missing: result.unresponded_count,
        replies: result
            .responses
            .into_iter()
            .map(|(server, reply)| CallReply {
                server,
                payload: reply.payload.unwrap_or(Value::Null),
            })
            .collect(),
    }))
}

#[derive(Serialize)]
struct Nodes {
    node: String,
    nodes: Vec<String>,
}

async fn nodes(State(api): State<Arc<Api>>) -> Json<Nodes> {
    Json(Nodes {
        node: api.node.server_name().to_owned(),
        nodes: api.node.live_nodes(),
    })
}

async fn health(State(api): State<Arc<Api>>) -> Response {
    api.node.health_response()
}

#[derive(Serialize)]
struct ClusterHealth {
    /// Some live node did not answer in time.
    partial: bool,
    missing: Vec<String>,
    nodes: BTreeMap<String, crate::Health>,
}

async fn cluster(
    State(api): State<Arc<Api>>,
    ApiQuery(query): ApiQuery<TimeoutQuery>,
) -> ApiResult<Json<ClusterHealth>> {
    let timeout = api.query_timeout(query.timeout_ms)?;
    let answer = api.node.query().timeout(timeout).health().await?;
    Ok(Json(ClusterHealth {
        partial: answer.partial,
        missing: answer.missing,
        nodes: answer.value,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomsQuery {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Rooms {
    /// Some live node did not answer in time.
    partial: bool,
    missing: Vec<String>,
    namespaces: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Api {
    /// A request's `timeout_ms`: `default` when absent, refused when 0 or
    /// above the API's `max_call_timeout`.
    fn timeout(&self, ms: Option<u64>, default: Duration) -> ApiResult<Duration> {
        match ms {
            None => Ok(default.min(self.max_call_timeout)),
            Some(0) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "timeout_ms must be at least 1",
            )),
            Some(ms) if Duration::from_millis(ms) > self.max_call_timeout => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "timeout_ms exceeds the API's limit of {} ms",
                    self.max_call_timeout.as_millis()
                ),
            )),
            Some(ms) => Ok(Duration::from_millis(ms)),
        }
    }

    /// A query's `timeout_ms` ([`DEFAULT_QUERY_TIMEOUT`](crate::DEFAULT_QUERY_TIMEOUT)
    /// when absent).
    fn query_timeout(&self, ms: Option<u64>) -> ApiResult<Duration> {
        self.timeout(ms, crate::node::DEFAULT_QUERY_TIMEOUT)
    }
}

/// A request's query string of the route's shape (400 `invalid_request`
/// otherwise, unknown parameters included).
struct ApiQuery<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> ApiResult<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
    }
}

async fn rooms(
    State(api): State<Arc<Api>>,
    ApiQuery(query): ApiQuery<RoomsQuery>,
) -> ApiResult<Json<Rooms>> {
    let timeout = api.query_timeout(query.timeout_ms)?;
    let mut answer = Rooms {
        partial: false,
        missing: Vec::new(),
        namespaces: BTreeMap::new(),
    };
    let namespaces = match query.namespace {
        Some(ns) => {
            non_empty(&ns, "namespace")?;
            vec![ns]
        }
        None => {
            // Every node's namespaces, not only this node's.
            let found = api.node.query().timeout(timeout).namespaces().await?;
            answer.partial = found.partial;
            answer.missing = found.missing;
            found.value
        }
    };
    // The namespaces' queries at once: one timeout in all, not one each.
    let asked = namespaces
        .iter()
        .map(|ns| api.node.query().timeout(timeout).room_counts(ns));
    let counted = futures_util::future::try_join_all(asked).await?;
    for (ns, counts) in namespaces.into_iter().zip(counted) {
        answer.partial |= counts.partial;
        for m in counts.missing {
            if !answer.missing.contains(&m) {
                answer.missing.push(m);
            }
        }
        answer.namespaces.insert(ns, counts.value);
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutQuery {
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct RoomAnswer {
    namespace: String,
    room: String,
    partial: bool,
    missing: Vec<String>,
    sockets: Vec<crate::ClusterSocket>,
    /// The room's presence (`null` when the namespace keeps none).
    presence: Option<Vec<crosswire_protocol::presence::Member>>,
}

async fn room(
    State(api): State<Arc<Api>>,
    Path((namespace, room)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TimeoutQuery>,
) -> ApiResult<Json<RoomAnswer>> {
    let timeout = api.query_timeout(query.timeout_ms)?;
    api.node.check_room_args(&namespace, &room)?;
    let answer = api
        .node
        .query()
        .timeout(timeout)
        .room_sockets(&namespace, &room)
        .await?;
    let presence = api
        .node
        .config()
        .presence
        .contains(&namespace)
        .then(|| api.node.presence_members(&namespace, &room));
    Ok(Json(RoomAnswer {
        namespace,
        room,
        partial: answer.partial,
        missing: answer.missing,
        sockets: answer.value,
        presence,
    }))
}

#[derive(Serialize)]
struct SocketAnswer {
    id: String,
    /// The nodes holding a connection of this id (empty: not connected).
    nodes: Vec<String>,
    partial: bool,
    missing: Vec<String>,
}

async fn socket(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TimeoutQuery>,
) -> ApiResult<Json<SocketAnswer>> {
    let timeout = api.query_timeout(query.timeout_ms)?;
    non_empty(&id, "id")?;
    let answer = api.node.query().timeout(timeout).locate(&id).await?;
    Ok(Json(SocketAnswer {
        id,
        nodes: answer.value,
        partial: answer.partial,
        missing: answer.missing,
    }))
}

async fn stats(State(api): State<Arc<Api>>) -> Json<series::StatsAnswer> {
    Json(api.series.answer(&api.node))
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn admin_page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ),
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
                ),
            ),
        ],
        Body::from(ADMIN_PAGE),
    )
        .into_response()
}
