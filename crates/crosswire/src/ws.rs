//! The WebSocket endpoint: the upgrade (with the application's hook), the
//! per-connection reader and writer, and the standalone listener.
//!
//! Each connection has two tasks. The reader decodes frames and dispatches
//! them in arrival order. The writer drains the socket's bounded queue: it
//! writes every frame already queued, then flushes once, so a burst costs
//! one system call rather than one per frame.

use crate::events::run_detached;
use crate::node::{CloseInfo, Node};
use crate::socket::{close_code, CloseRequest, Handshake, Socket};
use crate::stats::{HandlerKind, Stats, Timed};
use crate::{Error, Result};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use bytes::Bytes;
use crosswire_protocol::client::{decode_client_frame, Inbound};
use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::StatusCode;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Initial read buffer of each connection, in bytes.
const READ_BUFFER: usize = 4 * 1024;

/// How long a closing socket waits for the peer's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An upgrade refused by the upgrade hook: the HTTP status and body the
/// client gets instead of `101 Switching Protocols`.
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// A refusal with `status` and a short text body.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

pub(crate) type UpgradeHook =
    Arc<dyn Fn(Arc<Handshake>) -> BoxFuture<'static, Result<(), Refusal>> + Send + Sync>;

impl Node {
    /// The WebSocket endpoint as an axum route, to mount on the application's
    /// own router at any path.
    ///
    /// ```no_run
    /// # async fn f(node: crosswire::Node) -> std::io::Result<()> {
    /// let app = axum::Router::new()
    ///     .route("/ws", node.ws_route())
    ///     .route("/health", axum::routing::get(|| async { "ok" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    /// # }
    /// ```
    pub fn ws_route(&self) -> MethodRouter {
        let node = self.clone();
        get(move |req: Request| upgrade(node.clone(), req))
    }

    /// A router that accepts WebSocket connections on every path (as the
    /// original does; the path reaches the handlers in the handshake).
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.ws_route())
    }

    /// Listens on `addr` (use port 0 for any free port) and serves the
    /// WebSocket endpoint until [`shutdown`](Node::shutdown). Returns the bound
    /// address once the node accepts connections.
    pub async fn listen(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<SocketAddr> {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        // Frames are batched by the writer; Nagle's algorithm would only add
        // delay (up to a delayed-ACK timeout) to the last segment of a batch.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = self.inner.shutdown.clone();
        let node = self.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(node = %node.server_name(), error = %e, "WebSocket server failed");
                let e = Arc::new(Error::Io(e));
                for h in node.inner.system.server_error.take_for_dispatch() {
                    run_detached(h(e.clone())).await;
                }
            }
        });
        tracing::info!(node = %self.server_name(), %local, "listening");
        for h in self.inner.system.listening.take_for_dispatch() {
            run_detached(h(local)).await;
        }
        Ok(local)
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
    let allowed = &node.inner.config.allowed_origins;
    if !allowed.is_empty() {
        let origin = parts
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        if !origin.is_some_and(|o| allowed.iter().any(|a| a == o)) {
            Stats::incr(&node.inner.stats.connections_refused);
            tracing::debug!(?origin, "origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
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
        headers: parts.headers,
        remote_addr,
        data: Default::default(),
    });
    if let Some(hook) = &node.inner.upgrade_hook {
        if let Err(refusal) = hook(handshake.clone()).await {
            Stats::incr(&node.inner.stats.connections_refused);
            tracing::debug!(status = %refusal.status, "upgrade refused by hook");
            return refusal.into_response();
        }
    }
    let max = node.inner.config.max_frame_size;
    let tasks = node.inner.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        // tungstenite allocates the read buffer up front (128 KiB by
        // default): most frames are small, so start small and let a big
        // frame grow it.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| tasks.track_future(run_connection(node, socket, handshake)))
}

async fn run_connection(node: Node, ws: WebSocket, handshake: Arc<Handshake>) {
    let inner = &node.inner;
    let conn_id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let stop = inner.kill.child_token();
    let socket = Socket::new(
        conn_id,
        inner.config.outbound_queue,
        inner.config.slow_consumer,
        handshake.clone(),
        inner.stats.clone(),
        stop.clone(),
        inner.auth.is_none(),
    );
    inner.connections.insert(conn_id, socket.clone());
    Stats::incr(&inner.stats.connections_accepted);
    if node.is_shut_down() {
        socket.close(close_code::GOING_AWAY, "server shutting down");
    } else if inner
        .config
        .max_connections
        .is_some_and(|max| inner.connections.len() > max)
    {
        Stats::incr(&inner.stats.connections_refused);
        socket.close(close_code::TRY_AGAIN_LATER, "connection limit reached");
    }
    if let Some(auth) = &inner.auth {
        let s = socket.clone();
        let timeout = auth.timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {
                    if !s.is_authenticated() {
                        s.close(close_code::NOT_AUTHENTICATED, "not authenticated in time");
                    }
                }
                _ = s.0.stop.cancelled() => {}
            }
        });
    }
    let (sink, stream) = ws.split();
    let writer = tokio::spawn(write_loop(sink, socket.clone()));

    // Connection handlers finish before the socket's first frame is dispatched.
    for h in inner.system.connection.take_for_dispatch() {
        run_to_end(h((socket.clone(), handshake.clone()))).await;
    }

    let close = read_loop(&node, stream, &socket).await;
    socket.mark_closed();
    stop.cancel();
    let _ = writer.await;

    tracing::debug!(socket = conn_id, code = close.code, "connection closed");
    for h in inner.system.close.take_for_dispatch() {
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

fn is_capacity_error(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast::<tungstenite::Error>().map(|b| *b),
        Ok(tungstenite::Error::Capacity(_))
    )
}

async fn read_loop(node: &Node, mut stream: SplitStream<WebSocket>, socket: &Socket) -> CloseInfo {
    let stats = &node.inner.stats;
    let stop = socket.0.stop.clone();
    let mut close = CloseInfo {
        code: 1006,
        reason: String::new(),
    };
    let mut bucket = node.inner.config.rate_limit.map(TokenBucket::new);
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            msg = stream.next() => msg,
        };
        let msg = match msg {
            None => break,
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                let message = e.to_string();
                if is_capacity_error(e) {
                    // The stream cannot be read past this frame.
                    Stats::incr(&stats.frames_oversize);
                    close_now(socket, close_code::TOO_BIG, "message too big").await;
                } else {
                    tracing::debug!(socket = socket.id(), error = %message, "socket error");
                    let err: Arc<str> = message.into();
                    for h in node.inner.system.error.take_for_dispatch() {
                        run_detached(h((socket.clone(), err.clone()))).await;
                    }
                }
                break;
            }
        };
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            Stats::incr(&stats.frames_received);
            if bucket.as_mut().is_some_and(|b| !b.take()) {
                Stats::incr(&stats.rate_limit_closes);
                close_now(socket, close_code::RATE_LIMITED, "rate limit exceeded").await;
                break;
            }
        }
        match msg {
            Message::Text(text) => {
                handle_text(node, socket, text).await;
            }
            Message::Binary(data) => match Utf8Bytes::try_from(data) {
                Ok(text) => handle_text(node, socket, text).await,
                Err(_) => {
                    Stats::incr(&stats.frames_dropped_invalid);
                    tracing::debug!(socket = socket.id(), "binary frame is not UTF-8: dropped");
                }
            },
            Message::Pong(payload) => {
                socket.0.alive.store(true, Ordering::Release);
                for h in node.inner.system.pong.take_for_dispatch() {
                    run_detached(h((socket.clone(), payload.clone()))).await;
                }
            }
            Message::Ping(_) => {}
            Message::Close(frame) => {
                socket.mark_closed();
                if let Some(CloseFrame { code, reason }) = frame {
                    close = CloseInfo {
                        code,
                        reason: reason.as_str().to_owned(),
                    };
                } else {
                    close.code = 1005;
                }
            }
        }
    }
    close
}

/// Waits (bounded) until the socket's stop token is cancelled.
async fn wait_stopped(stop: &CancellationToken) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stop.cancelled()).await;
}

/// Closes a socket that broke a rule, without sending what is queued for it,
/// and waits (bounded) until the close frame is on its way; the caller then
/// stops reading.
async fn close_now(socket: &Socket, code: u16, reason: &str) {
    tracing::debug!(socket = socket.id(), code, reason, "closing");
    socket.request_close(CloseRequest::Close {
        code,
        reason: reason.to_owned(),
        drain: false,
    });
    wait_close_sent(socket).await;
}

/// Waits (bounded) until the writer has sent the socket's close frame.
async fn wait_close_sent(socket: &Socket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.0.control.close_sent.cancelled()).await;
}

async fn handle_text(node: &Node, socket: &Socket, text: Utf8Bytes) {
    let inner = &node.inner;
    match decode_client_frame(text.as_str(), &inner.config.heartbeat) {
        Ok(Inbound::Heartbeat) => {
            for h in inner.system.client_ping.take_for_dispatch() {
                run_detached(h(socket.clone())).await;
            }
            let _ = socket.push(text.clone());
        }
        Ok(Inbound::Event(ev)) if !socket.is_authenticated() => {
            authenticate(node, socket, ev).await;
        }
        Ok(Inbound::Event(ev)) => {
            if crate::events::is_reserved(&ev.event) {
                Stats::incr(&inner.stats.frames_dropped_reserved);
                tracing::debug!(socket = socket.id(), event = %ev.event, "reserved event name: dropped");
            } else {
                let handlers = inner.client_events.dispatch(&ev.event);
                if handlers.is_empty() {
                    Stats::incr(&inner.stats.frames_dropped_unhandled);
                    tracing::debug!(socket = socket.id(), event = %ev.event, "no handler: dropped");
                } else {
                    let reply = ev
                        .callback_id
                        .map(|id| crate::events::Reply::new(socket.clone(), id));
                    let mut payload = Some(ev.payload.unwrap_or(Value::Null));
                    let last = handlers.len() - 1;
                    let start = Instant::now();
                    for (i, h) in handlers.iter().enumerate() {
                        let p = if i == last {
                            payload.take().unwrap_or_default()
                        } else {
                            payload.clone().unwrap_or_default()
                        };
                        let fut = h.call(socket.clone(), p, reply.clone());
                        let timed =
                            Timed::new(fut, start, inner.stats.clone(), HandlerKind::Client);
                        run_detached(timed).await;
                    }
                }
            }
        }
        Err(e) => {
            Stats::incr(&inner.stats.frames_dropped_invalid);
            tracing::debug!(socket = socket.id(), error = %e, "invalid frame: dropped");
        }
    }
    for h in inner.system.message.take_for_dispatch() {
        run_detached(h((socket.clone(), text.clone()))).await;
    }
}

/// Handles a frame from a socket that has not authenticated yet: only the
/// auth event counts.
async fn authenticate(node: &Node, socket: &Socket, ev: crosswire_protocol::client::ClientEvent) {
    let Some(auth) = &node.inner.auth else { return };
    if ev.event != auth.event {
        Stats::incr(&node.inner.stats.frames_dropped_unauthenticated);
        tracing::debug!(socket = socket.id(), event = %ev.event, "not authenticated: dropped");
        return;
    }
    let reply = ev
        .callback_id
        .map(|id| crate::events::Reply::new(socket.clone(), id));
    let user = (auth.verify)(ev.payload.unwrap_or(Value::Null)).await;
    match user.filter(|u| !u.is_empty()) {
        Some(user) => {
            if let Ok(Some(previous)) = node.set_user_socket(&user, socket) {
                tracing::debug!(%user, old = previous.id(), "user re-authenticated on another socket");
            }
            socket.0.authenticated.store(true, Ordering::Release);
            if let Some(r) = reply {
                let _ = r.send(&serde_json::json!({ "ok": true }));
            }
        }
        None => {
            if let Some(r) = reply {
                let _ = r.send(&serde_json::json!({ "ok": false }));
            }
            socket.close(close_code::AUTH_FAILED, "Auth failure");
        }
    }
}

/// Per-socket token bucket for the rate limit.
struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    fn new(limit: crate::config::RateLimit) -> Self {
        TokenBucket {
            tokens: f64::from(limit.burst.max(1)),
            burst: f64::from(limit.burst.max(1)),
            per_second: limit.per_second.max(0.0),
            last: tokio::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
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

type Sink = SplitSink<WebSocket, Message>;

async fn write_loop(mut sink: Sink, socket: Socket) {
    let stop = socket.0.stop.clone();
    let control = &socket.0.control;
    let queue = &socket.0.queue;
    let mut batch: VecDeque<Utf8Bytes> = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = control.notify.notified() => {
                let request = control.close.lock().take();
                if let Some(CloseRequest::Close { code, reason, drain }) = request {
                    // The same bounded write as any batch: a peer that does
                    // not read cannot hold the writer here.
                    if drain
                        && queue.try_take(&mut batch)
                        && write_batch(&mut sink, &mut batch, &stop, &control.closing).await.is_err()
                    {
                        // The peer does not read: no close frame could reach it.
                        stop.cancel();
                        break;
                    }
                    let frame = CloseFrame { code, reason: reason.into() };
                    let sent = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                    control.close_sent.cancel();
                    if matches!(sent, Ok(Ok(()))) {
                        // Wait for the peer's close frame; the reader then stops us.
                        wait_stopped(&stop).await;
                    }
                    stop.cancel();
                    break;
                }
                if control.ping.swap(false, Ordering::AcqRel)
                    && write_or_stop(&mut sink, &stop, Message::Ping(Bytes::new())).await.is_err()
                {
                    stop.cancel();
                    break;
                }
            }
            more = queue.take(&mut batch) => {
                if !more {
                    break;
                }
                if write_batch(&mut sink, &mut batch, &stop, &control.closing).await.is_err() {
                    stop.cancel();
                    break;
                }
            }
        }
    }
    queue.close();
    control.close_sent.cancel();
}

/// Sends one message and flushes, unless the socket is stopped meanwhile.
async fn write_or_stop(sink: &mut Sink, stop: &CancellationToken, msg: Message) -> Result<(), ()> {
    tokio::select! {
        r = sink.send(msg) => r.map_err(|_| ()),
        _ = stop.cancelled() => Err(()),
    }
}

/// Feeds every frame of `batch`, then flushes once. A close request or stop
/// interrupts a write stuck on a peer that does not read.
async fn write_batch(
    sink: &mut Sink,
    batch: &mut VecDeque<Utf8Bytes>,
    stop: &CancellationToken,
    closing: &CancellationToken,
) -> Result<(), ()> {
    let write = async {
        for frame in batch.drain(..) {
            sink.feed(Message::Text(frame)).await?;
        }
        sink.flush().await
    };
    tokio::pin!(write);
    tokio::select! {
        r = &mut write => r.map_err(|_| ()),
        _ = stop.cancelled() => Err(()),
        _ = closing.cancelled() => {
            // Give a healthy peer a moment to take the batch before closing.
            match tokio::time::timeout(Duration::from_secs(1), write).await {
                Ok(r) => r.map_err(|_| ()),
                Err(_) => Err(()),
            }
        }
    }
}
