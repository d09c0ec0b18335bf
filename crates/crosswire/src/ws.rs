//! The WebSocket endpoint: the upgrade (with the application's hook), the
//! per-connection task, and the standalone listener.
//!
//! Each connection has one task. It decodes the client's frames and
//! dispatches them in arrival order, and between them drains the socket's
//! bounded queue: it writes every frame already queued, then flushes once,
//! so a burst costs one system call rather than one per frame.

pub use crate::auth::Refusal;
use crate::events::{handler_slot, run_detached};
use crate::node::{CloseInfo, Node};
use crate::socket::{close_code, CloseRequest, Handshake, Socket};
use crate::stats::Stats;
use crate::{Error, Result};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use bytes::Bytes;
use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
use futures_util::future::poll_fn;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::StatusCode;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Bytes of frames gathered before one write to the socket.
const WRITE_BUFFER: usize = 8 * 1024;

/// How long a closing socket waits for the peer's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing socket waits for a client to take what is queued, and
/// for a client that broke a rule to take the close frame.
const RULE_CLOSE_GRACE: Duration = Duration::from_secs(1);

impl Node {
    /// The WebSocket endpoint as an axum route, to mount on the application's
    /// own router at any path.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(node: crosswire::Node) -> std::io::Result<()> {
    /// // On a router with the application's own state too.
    /// #[derive(Clone)]
    /// struct App;
    /// let app = axum::Router::new()
    ///     .route("/ws", node.ws_route())
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .with_state(App);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// // `Node::serve` bounds each connection before its upgrade.
    /// node.serve(listener, app).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn ws_route<S: Clone + Send + Sync + 'static>(&self) -> MethodRouter<S> {
        let node = self.clone();
        get(move |req: Request| upgrade(node.clone(), req))
    }

    /// A router that accepts WebSocket connections on every path (as the
    /// original does; the path reaches the handlers in the handshake).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let app = node.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
    /// tokio::spawn(async move { axum::serve(listener, app).await });
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/any/path")).await?;
    /// while node.connection_count() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.stats().connections_accepted, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.ws_route::<()>())
    }

    /// Listens on `addr` (use port 0 for any free port) and serves the
    /// WebSocket endpoint until [`shutdown`](Node::shutdown). Returns the bound
    /// address once the node accepts connections. With
    /// [`NodeBuilder::tls`](crate::NodeBuilder::tls) (feature `tls`) it
    /// serves `wss://` only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// assert_ne!(addr.port(), 0);
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// while node.connection_count() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.connection_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn listen(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<SocketAddr> {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let listener = bind(addr).await?;
        let local = listener.local_addr()?;
        // The WebSocket route alone, without a router around it: a router
        // leaves its path parameters in every request's extensions, which
        // each socket keeps ([`Socket::data`]).
        let app = self.ws_route::<()>().with_state(());
        let stop = self.shutdown_token().clone();
        tokio::spawn(crate::listener::serve(self.clone(), listener, app, stop));
        #[cfg(feature = "tls")]
        let tls = self.config().tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        tracing::info!(node = %self.server_name(), %local, tls, "listening");
        for h in self.system().listening.take_for_dispatch() {
            run_detached(h(local)).await;
        }
        Ok(local)
    }

    /// Serves `app` (a router holding [`ws_route`](Node::ws_route), and any
    /// other routes of the application, e.g. `/health`) on `listener` until
    /// [`shutdown`](Node::shutdown), with the limits of [`listen`](Node::listen)
    /// before each upgrade: the request head must arrive within
    /// [`handshake_timeout`](crate::NodeConfig::handshake_timeout) and fit in
    /// [`max_handshake_size`](crate::NodeConfig::max_handshake_size); at most
    /// [`max_pending_handshakes`](crate::NodeConfig::max_pending_handshakes)
    /// connections wait for their upgrade (a new one pushes out the oldest);
    /// connections stay [`fd_reserve`](crate::NodeConfig::fd_reserve) file
    /// descriptors below the process's limit. `axum::serve` has none of
    /// these: prefer this to it. With
    /// [`NodeBuilder::tls`](crate::NodeBuilder::tls) (feature `tls`) every
    /// connection starts with a TLS handshake, bounded by the same limits.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let app = axum::Router::new()
    ///     .route("/ws", node.ws_route())
    ///     .route("/health", node.health_route());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// tokio::spawn({
    ///     let node = node.clone();
    ///     async move { node.serve(listener, app).await }
    /// });
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    /// while node.connection_count() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// node.shutdown(std::time::Duration::from_secs(1)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve(&self, listener: tokio::net::TcpListener, app: Router) {
        let stop = self.shutdown_token().clone();
        crate::listener::serve(self.clone(), listener, app, stop).await;
    }
}

/// Pending connections the kernel queues for `accept` (it caps this at
/// `net.core.somaxconn`). Tokio's default of 1024 makes the kernel drop SYNs
/// when thousands of clients reconnect at once, and each dropped client
/// waits a second before it tries again.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the first address of `addr` that can be bound, with
/// [`LISTEN_BACKLOG`].
async fn bind(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted node can bind at once.
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// The accept loop's view of the node.
impl crate::listener::Host for Node {
    fn config(&self) -> &crate::NodeConfig {
        Node::config(self)
    }

    fn stats(&self) -> &Arc<Stats> {
        Node::counters(self)
    }

    fn connection_count(&self) -> usize {
        Node::connection_count(self)
    }
}

async fn upgrade(node: Node, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if node.is_shut_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "node is shutting down").into_response();
    }
    if !parts
        .headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .is_some_and(|k| is_valid_key(k.as_bytes()))
    {
        Stats::incr(&node.counters().handshakes_bad_request);
        return (StatusCode::BAD_REQUEST, "malformed Sec-WebSocket-Key").into_response();
    }
    if !origin_allowed(node.config(), &parts.headers) {
        Stats::incr(&node.counters().connections_refused);
        tracing::debug!(origin = ?parts.headers.get(http::header::ORIGIN), "origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let uri = detach_uri(
        parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0),
    );
    let remote_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let params = parse_ws_request_params(target, host, ParseOptions::default());
    let handshake = Arc::new(Handshake {
        uri,
        params,
        headers: parts.headers.clone(),
        remote_addr,
        // What tower layers put in the request (e.g. auth claims) reaches
        // the socket: `Socket::data::<T>()`.
        data: parking_lot::Mutex::new(request_data(&mut parts.extensions)),
    });
    if let Some(hook) = node.upgrade_hook() {
        if let Err(refusal) = hook(handshake.clone()).await {
            Stats::incr(&node.counters().connections_refused);
            tracing::debug!(status = %refusal.status(), "upgrade refused by hook");
            return refusal.into_response();
        }
    }
    // The socket keeps only the headers the application asked for (or a
    // bounded copy): the head may be up to `max_handshake_size`, and every
    // socket holds its handshake for its whole life.
    let handshake = Arc::new(Handshake {
        uri: handshake.uri.clone(),
        params: handshake.params.clone(),
        headers: kept_headers(node.config(), &handshake.headers),
        remote_addr: handshake.remote_addr,
        data: parking_lot::Mutex::new(std::mem::take(&mut *handshake.data.lock())),
    });
    let max = node.config().max_frame_size;
    let read_buffer = node.config().read_buffer_size;
    let tasks = node.tasks().clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        // tungstenite allocates the read buffer up front (128 KiB by
        // default) and every idle connection keeps it: most frames are
        // small, so start small and let a big frame grow it.
        .read_buffer_size(read_buffer)
        // Frames queued together are written together once this much is
        // buffered (or at the end of the batch). tungstenite keeps the
        // buffer's capacity, so its 128 KiB default would stay with every
        // connection that once received a burst.
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |ws| {
            let conn = open_connection(&node, ws, &handshake);
            tasks.track_future(run_connection(node, conn, handshake))
        })
}

/// A copy of `uri` in its own allocation. hyper parses the request head
/// without copying: its URI and header values are slices of the connection's
/// read buffer (8–16 KiB), so keeping them for the socket's life would keep
/// that whole buffer alive.
fn detach_uri(uri: &http::Uri) -> http::Uri {
    let text = uri.to_string();
    http::Uri::from_maybe_shared(Bytes::from(text)).unwrap_or_else(|_| uri.clone())
}

/// The request's extensions for the socket to keep, without axum's
/// `OriginalUri`: hyper parses the head without copying, so that URI is a
/// slice of the connection's read buffer (up to `max_handshake_size`), which
/// the socket would keep alive for its whole life (the socket keeps its own
/// copy in [`Handshake::uri`]).
fn request_data(extensions: &mut http::Extensions) -> http::Extensions {
    let mut data = std::mem::take(extensions);
    data.remove::<OriginalUri>();
    // Kept apart (`Handshake::remote_addr`), or the router's own.
    data.remove::<ConnectInfo<SocketAddr>>();
    data.remove::<axum::extract::MatchedPath>();
    if data.is_empty() {
        // No table kept for nothing (an emptied map keeps its allocation).
        return http::Extensions::new();
    }
    data
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: the base64 encoding of 16
/// bytes (RFC 6455 §4.2.1), i.e. 22 base64 characters, the last of which
/// carries only two bits, then `==`.
fn is_valid_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let [body @ .., b'=', b'='] = key else {
        return false;
    };
    body.len() == 22
        && body.iter().all(|c| ALPHABET.contains(c))
        && ALPHABET
            .iter()
            .position(|c| *c == body[21])
            .is_some_and(|i| i % 16 == 0)
}

/// Whether the request's `Origin` may open a WebSocket on this node.
fn origin_allowed(config: &crate::NodeConfig, headers: &http::HeaderMap) -> bool {
    let allowed = &config.allowed_origins;
    if allowed.is_empty() && !config.same_origin {
        return true;
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        // Browsers always send an Origin on a WebSocket upgrade; without one
        // the peer is a program, which no page can drive across origins.
        return config.same_origin;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    config.same_origin
        && headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| origin_host(origin) == Some(host))
}

/// The `host[:port]` of a serialized origin (`https://host:port`).
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// The headers a socket keeps: those named in `keep_headers`, or else every
/// header but the handshake's own, in order while they fit in
/// `kept_header_bytes`. Each kept value is
/// copied into its own allocation: hyper parses the head without copying,
/// so a kept slice would keep the whole read buffer alive.
fn kept_headers(config: &crate::NodeConfig, headers: &http::HeaderMap) -> http::HeaderMap {
    let mut budget = config.kept_header_bytes;
    let kept: Vec<(&http::HeaderName, &http::HeaderValue)> = headers
        .iter()
        .filter(|(name, value)| {
            if !config.keep_headers.is_empty() {
                return config
                    .keep_headers
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(name.as_str()));
            }
            let size = name.as_str().len() + value.len();
            if size > budget || is_upgrade_header(name) {
                return false;
            }
            budget -= size;
            true
        })
        .collect();
    // Sized to what is kept: a map grown one header at a time keeps room
    // for several more, with every socket.
    let mut map = http::HeaderMap::with_capacity(kept.len());
    for (name, value) in kept {
        let copy =
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        map.append(name.clone(), copy);
    }
    map
}

/// The WebSocket handshake's own headers, which say nothing once the
/// connection is upgraded: not kept by default (the upgrade hook sees them;
/// [`NodeConfig::keep_headers`](crate::NodeConfig::keep_headers) can name
/// them).
fn is_upgrade_header(name: &http::HeaderName) -> bool {
    use http::header::{
        CONNECTION, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
    };
    [
        CONNECTION,
        UPGRADE,
        SEC_WEBSOCKET_KEY,
        SEC_WEBSOCKET_VERSION,
        SEC_WEBSOCKET_EXTENSIONS,
    ]
    .contains(name)
}

/// Registers a new connection's socket with the node and wraps it with its
/// WebSocket.
fn open_connection(node: &Node, ws: WebSocket, handshake: &Arc<Handshake>) -> Box<Conn> {
    Box::new(Conn::new(ws, node.open_socket(handshake.clone())))
}

/// Serves one connection to its end. `conn` is boxed: an async fn keeps its
/// arguments beside their moved copies, and every idle connection holds
/// this future.
async fn run_connection(node: Node, mut conn: Box<Conn>, handshake: Arc<Handshake>) {
    let socket = conn.socket.clone();
    let conn_id = socket.id();

    // Connection handlers finish before the socket's first frame is
    // dispatched; what they send goes out meanwhile.
    for h in node.system().connection.take_for_dispatch() {
        conn.write_while(run_to_end(h((socket.clone(), handshake.clone()))))
            .await;
    }

    let close = serve(&node, &mut conn).await;
    socket.mark_closed();
    socket.queue().close();
    drop(conn);

    tracing::debug!(socket = conn_id, code = close.code, "connection closed");
    for h in node.system().close.take_for_dispatch() {
        run_to_end(h((socket.clone(), close.clone()))).await;
    }
    node.release(&socket);
}

/// Runs a handler to completion, containing a panic.
async fn run_to_end(fut: BoxFuture<'static, ()>) {
    if std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("a system event handler panicked");
    }
}

/// The close code and reason for a read error that is the client's
/// violation of the protocol: 1009 for a frame over the limit, 1007 for a
/// text frame that is not UTF-8, 1002 for any other breach of RFC 6455
/// (unmasked frame, reserved bits, unknown opcode, bad fragmentation,
/// oversized control frame). `None` for transport errors.
fn violation(e: axum::Error) -> Option<(u16, &'static str)> {
    match e.into_inner().downcast::<tungstenite::Error>().map(|b| *b) {
        Ok(tungstenite::Error::Capacity(_)) => Some((close_code::TOO_BIG, "message too big")),
        Ok(tungstenite::Error::Utf8(_)) => Some((close_code::INVALID_PAYLOAD, "invalid UTF-8")),
        Ok(tungstenite::Error::Protocol(_)) => Some((close_code::PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}

/// What woke the connection task.
enum Step {
    /// A frame from the client.
    Frame(Message),
    /// The client's stream ended, cleanly (`None`) or with an error.
    Ended(Option<axum::Error>),
    /// A close was requested ([`Socket::close`], a slow consumer).
    Close(CloseRequest),
    /// The socket was terminated or a write failed: drop the connection.
    Stop,
}

/// Reads and dispatches the client's frames while writing what is queued for
/// it, until the connection ends. Returns how it ended.
async fn serve(node: &Node, conn: &mut Conn) -> CloseInfo {
    let socket = conn.socket.clone();
    let stats = &node.counters();
    let mut close = CloseInfo {
        code: 1006,
        reason: String::new(),
    };
    let mut bucket = node.config().rate_limit.map(TokenBucket::new);
    // Client events whose handlers are still running (see `handler_slot`).
    let slots = Arc::new(Semaphore::new(node.config().max_handlers_per_socket));
    loop {
        if slots.available_permits() == 0 {
            Box::pin(conn.write_while(handler_slot(&slots, &socket))).await;
        }
        let msg = match conn.step().await {
            Step::Frame(msg) => msg,
            Step::Ended(None) | Step::Stop | Step::Close(CloseRequest::Terminate) => break,
            Step::Ended(Some(e)) => {
                let message = e.to_string();
                if let Some((code, reason)) = violation(e) {
                    // The stream cannot be read past this frame: tell the
                    // client why (RFC 6455 §7.4.1) and count it.
                    let counter = match code {
                        close_code::TOO_BIG => &stats.frames_oversize,
                        close_code::INVALID_PAYLOAD => &stats.invalid_utf8_closes,
                        _ => &stats.protocol_error_closes,
                    };
                    Stats::incr(counter);
                    socket.mark_closed();
                    Box::pin(conn.close(code, reason, false)).await;
                } else {
                    tracing::debug!(socket = socket.id(), error = %message, "socket error");
                    let err: Arc<str> = message.into();
                    for h in node.system().error.take_for_dispatch() {
                        run_detached(h((socket.clone(), err.clone()))).await;
                    }
                }
                break;
            }
            Step::Close(CloseRequest::Close {
                code,
                reason,
                drain,
            }) => {
                // Boxed, as every rare path here: the connection's future is
                // as big as its biggest await, and every idle connection
                // holds it.
                if let Some(reply) = Box::pin(conn.close(code, &reason, drain)).await {
                    close = reply;
                }
                break;
            }
        };
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            Stats::incr(&stats.frames_received);
            if bucket.as_mut().is_some_and(|b| !b.take()) {
                Stats::incr(&stats.rate_limit_closes);
                socket.mark_closed();
                Box::pin(conn.close(close_code::RATE_LIMITED, "rate limit exceeded", false)).await;
                break;
            }
        }
        match msg {
            Message::Text(text) => {
                // One small allocation per frame keeps the frame's decoding
                // state out of every idle connection's future.
                Box::pin(node.on_text(&socket, text, &slots)).await;
            }
            Message::Binary(data) => match Utf8Bytes::try_from(data) {
                Ok(text) => Box::pin(node.on_text(&socket, text, &slots)).await,
                Err(_) => {
                    Stats::incr(&stats.frames_dropped_invalid);
                    tracing::debug!(socket = socket.id(), "binary frame is not UTF-8: dropped");
                }
            },
            Message::Pong(payload) => {
                socket.mark_alive();
                for h in node.system().pong.take_for_dispatch() {
                    run_detached(h((socket.clone(), payload.clone()))).await;
                }
            }
            Message::Ping(_) => {}
            Message::Close(frame) => {
                // tungstenite answers it; the stream then ends.
                socket.mark_closed();
                close = close_info(frame);
            }
        }
    }
    close
}

fn close_info(frame: Option<CloseFrame>) -> CloseInfo {
    match frame {
        Some(CloseFrame { code, reason }) => CloseInfo {
            code,
            reason: reason.as_str().to_owned(),
        },
        None => CloseInfo {
            code: 1005,
            reason: String::new(),
        },
    }
}

/// Per-socket token bucket for the rate limit.
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: crate::config::RateLimit) -> Self {
        TokenBucket {
            tokens: f64::from(limit.burst.max(1)),
            burst: f64::from(limit.burst.max(1)),
            per_second: limit.per_second.max(0.0),
            last: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection, driven by its single task: what is queued for the socket
/// is written while the client's frames are read, without a second task or a
/// lock around the WebSocket. The socket's queue holds the task's waker: a
/// frame queued on an empty queue, a close, ping or terminate request wakes
/// it.
struct Conn {
    ws: WebSocket,
    socket: Socket,
    /// Frames taken from the queue and not yet handed to the WebSocket
    /// (still counted by the queue's bounds).
    batch: VecDeque<Utf8Bytes>,
    /// A protocol ping is due.
    ping: bool,
    /// Frames were handed to the WebSocket since the last completed flush.
    unflushed: bool,
}

impl Conn {
    fn new(ws: WebSocket, socket: Socket) -> Self {
        Conn {
            ws,
            socket,
            batch: VecDeque::new(),
            ping: false,
            unflushed: false,
        }
    }

    /// Writes until nothing is queued or the socket cannot take more, and
    /// reads until the client's next frame, a request or the end.
    async fn step(&mut self) -> Step {
        poll_fn(|cx| self.poll_step(cx)).await
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let socket = &self.socket;
        // Registered before looking for work, so none is missed.
        socket.queue().register(cx.waker());
        if socket.is_stopped() {
            return Poll::Ready(Step::Stop);
        }
        // A close request first marks the socket closed, then waits here
        // (and wakes the task): an open socket has none to look for.
        if !self.socket.is_open() {
            if let Some(request) = socket.control().close.lock().take() {
                return Poll::Ready(Step::Close(request));
            }
        }
        if socket.control().ping.swap(false, Ordering::AcqRel) {
            self.ping = true;
        }
        if let Poll::Ready(Err(())) = self.poll_write(cx) {
            return Poll::Ready(Step::Stop);
        }
        match self.ws.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(msg))) => Poll::Ready(Step::Frame(msg)),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Step::Ended(Some(e))),
            Poll::Ready(None) => Poll::Ready(Step::Ended(None)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Takes the queue (at most once per call, when the batch is empty),
    /// hands every frame to the WebSocket and flushes once: a burst costs
    /// one write. `Ready(Ok)` when all is written, `Pending` while the socket
    /// cannot take more, `Ready(Err)` when the connection is gone.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if self.batch.is_empty()
            && !self.socket.queue().try_take(&mut self.batch)
            && !self.ping
            && !self.unflushed
        {
            return Poll::Ready(Ok(()));
        }
        while self.ping || !self.batch.is_empty() {
            match self.ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => return Poll::Pending,
            }
            let msg = if std::mem::take(&mut self.ping) {
                Message::Ping(Bytes::new())
            } else {
                match self.batch.pop_front() {
                    Some(frame) => {
                        // The WebSocket copies it into its write buffer.
                        self.socket.queue().sent(frame.len());
                        Message::Text(frame)
                    }
                    None => break,
                }
            };
            if self.ws.start_send_unpin(msg).is_err() {
                return Poll::Ready(Err(()));
            }
            self.unflushed = true;
        }
        if self.unflushed {
            match self.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Frames queued while this batch was written woke the task then (the
        // queue was empty), not now: without a new wake they would wait for
        // the next request.
        if self.socket.queue().len() > 0 {
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes until everything queued is sent.
    async fn drain(&mut self) -> Result<(), ()> {
        loop {
            poll_fn(|cx| self.poll_write(cx)).await?;
            if self.socket.queue().len() == 0 {
                return Ok(());
            }
        }
    }

    /// Awaits `fut` while writing what is queued (the connection handlers
    /// run before the first frame is read, but what they send goes out).
    async fn write_while<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        let mut writing = true;
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if writing {
                self.socket.queue().register(cx.waker());
                if let Poll::Ready(Err(())) = self.poll_write(cx) {
                    writing = false;
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Sends a close frame, after what is queued when `drain` (else what is
    /// queued is dropped). A close the node asked for (`drain`) then waits
    /// for the client's reply, which it returns; a close for a broken rule
    /// does not. Every wait is bounded: a client that does not read cannot
    /// hold the task.
    async fn close(&mut self, code: u16, reason: &str, drain: bool) -> Option<CloseInfo> {
        tracing::debug!(socket = self.socket.id(), code, reason, "closing");
        let socket = self.socket.clone();
        let handshake = async {
            if drain {
                // Give a healthy client a moment to take what is queued.
                match tokio::time::timeout(RULE_CLOSE_GRACE, self.drain()).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
            } else {
                // Nothing more is written: free what is queued now rather
                // than when the close handshake ends.
                self.socket.queue().discard(&mut self.batch);
                self.socket.queue().close();
            }
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // Behind a broken rule there may be a client that does not read.
            let limit = if drain {
                CLOSE_TIMEOUT
            } else {
                RULE_CLOSE_GRACE
            };
            let sent = tokio::time::timeout(limit, self.ws.send(Message::Close(Some(frame))));
            if !matches!(sent.await, Ok(Ok(()))) || !drain {
                return None;
            }
            let reply = async {
                while let Some(Ok(msg)) = self.ws.next().await {
                    if let Message::Close(frame) = msg {
                        return Some(close_info(frame));
                    }
                }
                None
            };
            tokio::time::timeout(CLOSE_TIMEOUT, reply)
                .await
                .ok()
                .flatten()
        };
        let stopped = poll_fn(|cx| {
            socket.queue().register(cx.waker());
            if socket.is_stopped() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            reply = handshake => reply,
            () = stopped => None,
        }
    }
}
