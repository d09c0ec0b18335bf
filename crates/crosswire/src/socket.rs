//! One client connection: its bounded outbound queue, its close and liveness
//! state, its handshake and the data the application attaches to it.

use crate::queue::{OutQueue, PushError};
use crate::stats::Stats;
use crate::{Error, Result};
use axum::extract::ws::Utf8Bytes;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::params::RequestParams;
use http::{HeaderMap, Uri};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Close codes crosswire's server sends (see also the original's 4001/4002,
/// which only its client sends, and 4010+ for applications).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The node is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was larger than the node's `max_frame_size`.
    pub const TOO_BIG: u16 = 1009;
    /// The node is at its connection limit; try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client did not read fast enough: its outbound queue was full.
    pub const SLOW_CONSUMER: u16 = 4003;
    /// The client sent events faster than the node's rate limit.
    pub const RATE_LIMITED: u16 = 4004;
    /// The client did not authenticate in time.
    pub const NOT_AUTHENTICATED: u16 = 4005;
    /// Authentication failed (the original's documented convention).
    pub const AUTH_FAILED: u16 = 4011;
}

/// What a node does with a socket whose outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowConsumerPolicy {
    /// Close the socket with [`close_code::SLOW_CONSUMER`] (4003). The client
    /// reconnects and resynchronises; nothing is silently lost.
    #[default]
    Close,
    /// Drop the frame that did not fit and keep the socket (counted in the
    /// node's statistics). For feeds where a newer frame supersedes an older one.
    DropFrame,
}

/// The HTTP request that opened a connection, as the upgrade hook and the
/// `connection` event see it.
#[derive(Debug)]
pub struct Handshake {
    /// The request target.
    pub uri: Uri,
    /// Query parameters and path, parsed as the original's
    /// `parseWsRequestParams` does (path without leading slashes).
    pub params: RequestParams,
    /// Request headers.
    pub headers: HeaderMap,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
    pub(crate) data: Mutex<http::Extensions>,
}

impl Handshake {
    /// Attaches a value that the socket will carry (see [`Socket::data`]);
    /// for the upgrade hook, e.g. the user an auth token resolved to.
    pub fn insert_data<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.data.lock().insert(value);
    }

    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key)
    }

    /// The request path as `parseWsRequestParams` gives it (`/chat/room` → `chat/room`).
    pub fn path(&self) -> Option<&str> {
        self.params.path.as_deref()
    }
}

pub(crate) enum CloseRequest {
    /// Send a close frame (after the queued frames when `drain`).
    Close {
        code: u16,
        reason: String,
        drain: bool,
    },
    /// Drop the connection without a close frame.
    Terminate,
}

/// Wake-ups for the writer that must not wait behind a full queue.
#[derive(Default)]
pub(crate) struct Control {
    pub(crate) ping: AtomicBool,
    pub(crate) close: Mutex<Option<CloseRequest>>,
}

pub(crate) struct SocketInner {
    conn_id: u64,
    pub(crate) queue: OutQueue,
    pub(crate) control: Control,
    open: AtomicBool,
    pub(crate) alive: AtomicBool,
    pub(crate) authenticated: AtomicBool,
    background_since_ms: AtomicU64,
    handshake: Arc<Handshake>,
    pub(crate) bound_ids: Mutex<Vec<String>>,
    /// Set to drop the connection at once (with a wake of its task).
    pub(crate) stopped: AtomicBool,
    policy: SlowConsumerPolicy,
    stats: Arc<Stats>,
}

/// A handle to one client connection. Cheap to clone; all clones are the
/// same socket.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.conn_id)
            .field("socket_ids", &*self.0.bound_ids.lock())
            .field("open", &self.is_open())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Socket {}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Socket {
    pub(crate) fn new(
        conn_id: u64,
        queue: usize,
        policy: SlowConsumerPolicy,
        handshake: Arc<Handshake>,
        stats: Arc<Stats>,
        authenticated: bool,
    ) -> Socket {
        let inner = SocketInner {
            conn_id,
            queue: OutQueue::new(queue),
            control: Control::default(),
            open: AtomicBool::new(true),
            alive: AtomicBool::new(true),
            authenticated: AtomicBool::new(authenticated),
            background_since_ms: AtomicU64::new(0),
            handshake,
            bound_ids: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            policy,
            stats,
        };
        Socket(Arc::new(inner))
    }

    /// The connection's number, unique within its node.
    pub fn id(&self) -> u64 {
        self.0.conn_id
    }

    /// The socket ids bound to this connection with `Node::set_user_socket`.
    pub fn socket_ids(&self) -> Vec<String> {
        self.0.bound_ids.lock().clone()
    }

    /// The HTTP request that opened the connection.
    pub fn handshake(&self) -> &Handshake {
        &self.0.handshake
    }

    /// Whether the connection is open (not closing or closed).
    pub fn is_open(&self) -> bool {
        self.0.open.load(Ordering::Acquire)
    }

    /// Attaches a value of type `T` to the socket, replacing any previous one
    /// (the original stores e.g. `socket.playerId`).
    ///
    /// ```no_run
    /// # fn f(socket: crosswire::Socket) {
    /// #[derive(Clone)]
    /// struct PlayerId(u64);
    /// socket.insert_data(PlayerId(7));
    /// assert_eq!(socket.data::<PlayerId>().map(|p| p.0), Some(7));
    /// # }
    /// ```
    pub fn insert_data<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.0.handshake.data.lock().insert(value);
    }

    /// A copy of the value of type `T` attached to the socket.
    pub fn data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.handshake.data.lock().get::<T>().cloned()
    }

    /// Removes and returns the value of type `T` attached to the socket.
    pub fn remove_data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.handshake.data.lock().remove::<T>()
    }

    /// Sends one event to this socket only.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        crate::error::non_empty(event, crate::error::EVENT_MSG)?;
        let frame = PushFrame::encode(event, Some(payload))?;
        self.send_frame(&frame)
    }

    /// Sends an already encoded frame to this socket.
    pub fn send_frame(&self, frame: &PushFrame) -> Result<()> {
        self.push(to_utf8(frame))
    }

    pub(crate) fn send_text(&self, text: String) -> Result<()> {
        self.push(Utf8Bytes::from(text))
    }

    /// Queues one text frame. Never waits: a full queue applies the slow
    /// consumer policy.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<()> {
        if !self.is_open() {
            return Err(Error::SocketClosed);
        }
        match self.0.queue.push(frame) {
            Ok(()) => Ok(()),
            Err(PushError::Closed) => Err(Error::SocketClosed),
            Err(PushError::Full) => {
                match self.0.policy {
                    SlowConsumerPolicy::Close => {
                        Stats::incr(&self.0.stats.slow_consumer_closes);
                        tracing::debug!(socket = self.0.conn_id, "slow consumer: closing");
                        self.request_close(CloseRequest::Close {
                            code: close_code::SLOW_CONSUMER,
                            reason: "slow consumer".into(),
                            drain: false,
                        });
                    }
                    SlowConsumerPolicy::DropFrame => {
                        Stats::incr(&self.0.stats.frames_dropped_slow);
                    }
                }
                Err(Error::SocketClosed)
            }
        }
    }

    /// Closes the connection with a close frame carrying `code` and `reason`,
    /// after the frames already queued for it have been written.
    ///
    /// Use codes from 4010 upwards for application reasons (4011
    /// authentication failed, 4012 kicked by a second login, ...).
    pub fn close(&self, code: u16, reason: &str) {
        self.request_close(CloseRequest::Close {
            code,
            reason: reason.to_owned(),
            drain: true,
        });
    }

    /// Drops the connection at once, without a close frame (the client sees 1006).
    pub fn terminate(&self) {
        self.request_close(CloseRequest::Terminate);
    }

    pub(crate) fn request_close(&self, req: CloseRequest) {
        let was_open = self.0.open.swap(false, Ordering::AcqRel);
        match req {
            CloseRequest::Terminate => {
                self.0.stopped.store(true, Ordering::Release);
                self.0.queue.wake();
            }
            req if was_open => {
                *self.0.control.close.lock() = Some(req);
                self.0.queue.wake();
            }
            _ => {}
        }
    }

    pub(crate) fn mark_closed(&self) {
        self.0.open.store(false, Ordering::Release);
    }

    /// Whether the socket may receive broadcasts and send events: always
    /// true unless the node requires an auth message
    /// ([`NodeBuilder::auth_message`](crate::NodeBuilder::auth_message)) and
    /// the socket has not sent a valid one yet.
    pub fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Acquire)
    }

    /// Frames waiting in the outbound queue.
    pub fn queued(&self) -> usize {
        self.0.queue.len()
    }

    pub(crate) fn request_ping(&self) {
        self.0.control.ping.store(true, Ordering::Release);
        self.0.queue.wake();
    }

    /// Marks the client as gone to the background now (the original's
    /// `socket.__enterBackgroundTime = Date.now()`): the node terminates it
    /// when it stays there longer than `enter_background_close_time`.
    pub fn enter_background(&self) {
        self.0
            .background_since_ms
            .store(now_ms().max(1), Ordering::Release);
    }

    /// Marks the client as back in the foreground (timestamp 0).
    pub fn enter_foreground(&self) {
        self.0.background_since_ms.store(0, Ordering::Release);
    }

    /// Since when the client is in the background, if it is.
    pub fn background_since(&self) -> Option<SystemTime> {
        match self.0.background_since_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// How long the socket has been in the background, if it is.
    pub(crate) fn background_for(&self) -> Option<Duration> {
        match self.0.background_since_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(Duration::from_millis(now_ms().saturating_sub(ms))),
        }
    }
}

/// Converts an encoded frame to the WebSocket text payload without copying.
pub(crate) fn to_utf8(frame: &PushFrame) -> Utf8Bytes {
    // A PushFrame is UTF-8 by construction, so this conversion cannot fail;
    // fall back to a copy rather than panic.
    Utf8Bytes::try_from(frame.bytes().clone()).unwrap_or_else(|_| Utf8Bytes::from(frame.as_str()))
}
