//! The standalone listener: accepts TCP connections and serves HTTP/1.1 on
//! them until the WebSocket upgrade, with everything a connection can hold
//! before its upgrade bounded.
//!
//! - **Time**: the request head must be complete within
//!   [`handshake_timeout`](crate::NodeConfig::handshake_timeout) of the first
//!   wait for it (a silent or dripping client is dropped).
//! - **Bytes**: a head larger than
//!   [`max_handshake_size`](crate::NodeConfig::max_handshake_size) is refused
//!   with 431.
//! - **Count**: at most
//!   [`max_pending_handshakes`](crate::NodeConfig::max_pending_handshakes)
//!   connections wait for their upgrade; a new one pushes out the oldest, so
//!   a flood of silent sockets cannot keep a healthy client out (it sends its
//!   head at once and is upgraded long before it is the oldest).
//! - **File descriptors**: open connections (upgraded and not) stay
//!   [`fd_reserve`](crate::NodeConfig::fd_reserve) below the process's limit,
//!   so the rest of the process (other listeners, `/metrics`, Redis
//!   connections, files) keeps working; when `accept` still fails for lack of
//!   descriptors the listener frees the oldest waiting connection and backs
//!   off, logging once per period rather than once per failure.
//!
//! With TLS (feature `tls`, [`NodeConfig::tls`]) the TLS handshake comes
//! first and is bounded the same way: it counts against the handshake
//! timeout (the request head gets what is left of it) and holds the
//! connection's place among those waiting for their upgrade.

use crate::config::{NodeConfig, MIN_HEAD_BUFFER};
use crate::stats::Stats;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Longest pause of the accept loop after `accept` failed for lack of
/// resources.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How often an accept failure is logged at most.
const ACCEPT_ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Connections that have not completed their upgrade, oldest first, each
/// with the token that drops it.
struct Pending {
    /// Most connections waiting for their upgrade.
    limit: usize,
    /// Most open connections (upgraded and waiting) the process's file
    /// descriptor limit allows, after the reserve.
    fd_budget: usize,
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
    next: std::sync::atomic::AtomicU64,
}

impl Pending {
    fn new(config: &NodeConfig) -> Self {
        let fd_budget =
            open_files_limit().map_or(usize::MAX, |limit| limit.saturating_sub(config.fd_reserve));
        Pending {
            limit: config.max_pending_handshakes.max(1),
            fd_budget,
            waiting: Mutex::new(BTreeMap::new()),
            next: Default::default(),
        }
    }

    /// Makes room for one more connection beside `open` upgraded ones,
    /// pushing out the oldest waiting ones as needed. `None` when there is no
    /// room (no waiting connection to push out).
    fn admit(&self, open: usize, stats: &Stats) -> Option<(u64, CancellationToken)> {
        let mut waiting = self.waiting.lock();
        while waiting.len() >= self.limit || open + waiting.len() >= self.fd_budget {
            match waiting.pop_first() {
                Some((_, token)) => {
                    token.cancel();
                    Stats::incr(&stats.handshakes_evicted);
                }
                None => return None,
            }
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        waiting.insert(id, token.clone());
        Some((id, token))
    }

    /// Drops the oldest waiting connection; false when none waits.
    fn evict_oldest(&self, stats: &Stats) -> bool {
        let oldest = self.waiting.lock().pop_first();
        match oldest {
            Some((_, token)) => {
                token.cancel();
                Stats::incr(&stats.handshakes_evicted);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.waiting.lock().remove(&id);
    }
}

/// The soft limit on open file descriptors of this process.
fn open_files_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.and_then(|n| usize::try_from(n).ok())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Whether an accept error concerns only the connection being accepted
/// (the next accept may succeed at once) rather than the process's
/// resources.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// What the accept loop needs of the node it serves.
pub(crate) trait Host: Clone + Send + Sync + 'static {
    /// The node's configuration (limits, timeouts, name).
    fn config(&self) -> &NodeConfig;
    /// The node's counters.
    fn stats(&self) -> &Arc<Stats>;
    /// Upgraded connections open now.
    fn connection_count(&self) -> usize;
}

/// What a listener serves: a router, or one route's method router (no path
/// routing, so nothing of it stays in the request's extensions).
pub(crate) trait App:
    tower::Service<
        http::Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `app` on `listener` until `stop` is cancelled.
pub(crate) async fn serve<H: Host, A: App>(
    host: H,
    listener: TcpListener,
    app: A,
    stop: CancellationToken,
) {
    let pending = Arc::new(Pending::new(host.config()));
    let stats = host.stats().clone();
    #[cfg(feature = "tls")]
    let tls = host.config().tls.as_ref().map(|t| t.acceptor());
    let mut backoff = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors (or memory): free the oldest
                // waiting connection and pause, so the loop does not spin
                // and the log does not flood.
                Stats::incr(&stats.accept_errors);
                pending.evict_oldest(&stats);
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_LOG_PERIOD) {
                    tracing::warn!(
                        node = %host.config().server_name,
                        error = %e,
                        since_last_log = unlogged,
                        "accept failed; backing off"
                    );
                    last_log = Some(now);
                    unlogged = 0;
                } else {
                    unlogged += 1;
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                continue;
            }
        };
        backoff = Duration::ZERO;
        let Some((id, token)) = pending.admit(host.connection_count(), &stats) else {
            // Every descriptor of the budget holds an upgraded connection.
            Stats::incr(&stats.connections_refused);
            drop(tcp);
            continue;
        };
        // Frames are batched by the connection task; Nagle's algorithm would
        // only add delay (up to a delayed-ACK timeout) to the last segment of
        // a batch.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let pending = pending.clone();
        let app = app.clone();
        let host = host.clone();
        #[cfg(feature = "tls")]
        let tls = tls.clone();
        tokio::spawn(async move {
            let accepted = tokio::time::Instant::now();
            let ended = async {
                #[cfg(feature = "tls")]
                if let Some(tls) = tls {
                    let Some(stream) = tls_handshake(&host, &tls, tcp, remote, accepted).await
                    else {
                        return;
                    };
                    return serve_connection(&host, stream, remote, app, accepted).await;
                }
                serve_connection(&host, tcp, remote, app, accepted).await;
            };
            tokio::select! {
                () = ended => {}
                () = token.cancelled() => {
                    tracing::debug!(%remote, "connection waiting for its upgrade pushed out");
                }
            }
            pending.remove(id);
        });
    }
}

/// The TLS handshake of a new connection, within the node's
/// `handshake_timeout` from `accepted`; `None` (counted) when it failed or
/// took too long.
#[cfg(feature = "tls")]
async fn tls_handshake<H: Host>(
    host: &H,
    tls: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    accepted: tokio::time::Instant,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let stats = host.stats();
    let deadline = accepted + host.config().handshake_timeout;
    match tokio::time::timeout_at(deadline, tls.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            Stats::incr(&stats.handshakes_tls_failed);
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            Stats::incr(&stats.handshakes_timed_out);
            tracing::debug!(%remote, "TLS handshake not completed in time");
            None
        }
    }
}

/// Serves HTTP/1.1 on one connection (plain TCP, or TLS once its handshake
/// is done) until it ends or is upgraded (the upgraded connection then
/// belongs to its WebSocket task). The request head must be complete
/// `handshake_timeout` after `accepted`.
async fn serve_connection<H, IO, A>(
    host: &H,
    io: IO,
    remote: SocketAddr,
    app: A,
    accepted: tokio::time::Instant,
) where
    H: Host,
    A: App,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = host.config();
    let stats = host.stats();
    // What the TLS handshake left of the time (all of it without TLS).
    let left = config.handshake_timeout.saturating_sub(accepted.elapsed());
    if left.is_zero() {
        Stats::incr(&stats.handshakes_timed_out);
        return;
    }
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(req.map(Body::new))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(left)
        .max_buf_size(config.max_handshake_size.max(MIN_HEAD_BUFFER));
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        if e.is_timeout() {
            Stats::incr(&stats.handshakes_timed_out);
        } else if e.is_parse_too_large() {
            Stats::incr(&stats.handshakes_too_large);
        }
        tracing::debug!(%remote, error = %e, "HTTP connection ended");
    }
}
