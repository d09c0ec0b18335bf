//! One client connection: its bounded outbound queue, its close and liveness
//! state, its handshake and the data the application attaches to it.

use crate::config::NodeConfig;
pub use crate::config::SlowConsumerPolicy;
use crate::queue::{OutQueue, PushError};
use crate::stats::Stats;
use crate::{Error, Result};
use axum::extract::ws::Utf8Bytes;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::history::{self, Position};
use crosswire_protocol::params::RequestParams;
use http::{HeaderMap, Uri};
use parking_lot::Mutex;
use serde_json::Value;

/// The largest [`Socket::set_info`] value, serialized: 4 KiB.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::socket::MAX_INFO_BYTES, 4096);
/// ```
pub const MAX_INFO_BYTES: usize = 4096;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Close codes crosswire's server sends (see also the original's 4001/4002,
/// which only its client sends, and 4010+ for applications).
///
/// # Examples
///
/// ```
/// use crosswire::close_code::*;
/// assert_eq!(NORMAL, 1000);
/// assert_eq!(GOING_AWAY, 1001);
/// assert_eq!(TOO_BIG, 1009);
/// assert_eq!(TRY_AGAIN_LATER, 1013);
/// assert_eq!(PROTOCOL_ERROR, 1002);
/// assert_eq!(INVALID_PAYLOAD, 1007);
/// assert_eq!(SLOW_CONSUMER, 4003);
/// assert_eq!(RATE_LIMITED, 4004);
/// assert_eq!(NOT_AUTHENTICATED, 4005);
/// assert_eq!(AUTH_FAILED, 4011);
/// ```
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The node is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (RFC 6455), e.g. an unmasked
    /// frame, reserved bits, an unknown opcode or a bad fragment.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
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

/// The HTTP request that opened a connection, as the upgrade hook and the
/// `connection` event see it.
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
/// let handshake = socket.handshake();
/// assert_eq!(handshake.uri.path(), "/lobby");
/// assert_eq!(handshake.param("id"), Some("u1"));
/// assert_eq!(handshake.path(), Some("lobby"));
/// assert!(handshake.headers.contains_key("host"));
/// // The handshake's own headers are not kept after the upgrade hook.
/// assert!(!handshake.headers.contains_key("sec-websocket-key"));
/// assert_eq!(handshake.remote_addr.map(|a| a.ip().is_loopback()), Some(true));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Handshake {
    /// The request target.
    pub uri: Uri,
    /// Query parameters and path, parsed as the original's
    /// `parseWsRequestParams` does (path without leading slashes).
    pub params: RequestParams,
    /// Request headers: in the upgrade hook, all of them; in a socket's
    /// handshake, those [`NodeConfig::keep_headers`](crate::NodeConfig::keep_headers)
    /// and [`kept_header_bytes`](crate::NodeConfig::kept_header_bytes) keep
    /// (by default every header but the WebSocket handshake's own, up to
    /// 4 KiB).
    pub headers: HeaderMap,
    /// The peer's address, when the server knows it.
    pub remote_addr: Option<SocketAddr>,
    pub(crate) data: Mutex<http::Extensions>,
}

impl Handshake {
    /// Attaches a value that the socket will carry (see [`Socket::data`]);
    /// for the upgrade hook, e.g. the user an auth token resolved to.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Plan(&'static str);
    /// let node = crosswire::Node::builder()
    ///     .on_upgrade(|handshake| async move {
    ///         handshake.insert_data(Plan("pro"));
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_connection(move |socket, _| {
    ///     let _ = tx.send(socket);
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// let socket = sockets.recv().await.ok_or("no connection")?;
    /// assert_eq!(socket.data::<Plan>(), Some(Plan("pro")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert_data<T: Clone + Send + Sync + 'static>(&self, value: T) {
        self.data.lock().insert(value);
    }

    /// The first value of query parameter `key`.
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
    /// // The client connected to `/lobby?id=u1`.
    /// assert_eq!(socket.handshake().param("id"), Some("u1"));
    /// assert_eq!(socket.handshake().param("token"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key)
    }

    /// The request path as `parseWsRequestParams` gives it (`/chat/room` → `chat/room`).
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
    /// // The client connected to `/lobby?id=u1`.
    /// assert_eq!(socket.handshake().path(), Some("lobby"));
    /// # Ok(())
    /// # }
    /// ```
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

/// Requests for the connection task that must not wait behind a full queue.
#[derive(Default)]
pub(crate) struct Control {
    pub(crate) ping: AtomicBool,
    pub(crate) close: Mutex<Option<CloseRequest>>,
}

/// What a socket that opted into recovery (`cwRecovery=1`) remembers per
/// room: the positions it resumes from, and where each room's stream to it
/// stands.
#[derive(Default)]
pub(crate) struct RecoveryState {
    /// Positions given at connection (`cwResume`), each used once.
    resume: Mutex<HashMap<String, HashMap<String, Position>>>,
    /// Per room. Looked up for every positioned message the socket is
    /// sent: first by the number of the history stream the message belongs
    /// to (one comparison of integers held inline), by name otherwise.
    rooms: Mutex<Vec<RoomEntry>>,
    /// Numbers the catch-ups, so that one started for an earlier membership
    /// of a room stops when it finds a newer one.
    catch_ups: AtomicU64,
}

struct RoomEntry {
    /// The history stream (a room in one epoch) the cursor's position
    /// belongs to, when known (0: not known).
    stream: u64,
    ns: String,
    room: String,
    cursor: RoomCursor,
}

/// Where one room's stream to a socket stands.
#[derive(Debug, Default)]
pub(crate) struct RoomCursor {
    /// The last position written (or the one the socket joined at).
    pub(crate) last: Option<Position>,
    /// Set while a catch-up writes this room from the history: it is the
    /// catch-up's number, and live messages of the room are left to it.
    pub(crate) catching: Option<u64>,
    /// The highest live offset left to the catch-up.
    pub(crate) skipped: u64,
}

impl RecoveryState {
    /// The state of a connection whose request has `params`; `None` when
    /// it did not opt in. A malformed resume parameter is ignored (the
    /// client then recovers nothing and is told so).
    fn from_params(params: &RequestParams) -> Option<Box<Self>> {
        if params.get(history::RECOVERY_PARAM) != Some("1") {
            return None;
        }
        let state = RecoveryState::default();
        if let Some(text) = params.get(history::RESUME_PARAM) {
            match history::parse_resume(text) {
                Ok(positions) => {
                    let mut resume = state.resume.lock();
                    for p in positions {
                        let pos = p.position();
                        resume.entry(p.ns).or_default().insert(p.room, pos);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "resume positions ignored"),
            }
        }
        Some(Box::new(state))
    }

    /// Takes the position the client resumes room `room` of `ns` from.
    pub(crate) fn take_resume(&self, ns: &str, room: &str) -> Option<Position> {
        self.resume.lock().get_mut(ns)?.remove(room)
    }

    /// Whether the client gave a position for some room of `ns`.
    pub(crate) fn has_resume(&self) -> bool {
        self.resume.lock().values().any(|rooms| !rooms.is_empty())
    }

    /// A number for a new catch-up.
    pub(crate) fn next_catch_up(&self) -> u64 {
        self.catch_ups.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Runs `f` on the room's cursor, creating it when absent.
    pub(crate) fn with_room<R>(
        &self,
        ns: &str,
        room: &str,
        f: impl FnOnce(&mut RoomCursor) -> R,
    ) -> R {
        let mut rooms = self.rooms.lock();
        let i = match rooms.iter().position(|e| e.ns == ns && e.room == room) {
            Some(i) => i,
            None => {
                rooms.push(RoomEntry {
                    stream: 0,
                    ns: ns.to_owned(),
                    room: room.to_owned(),
                    cursor: RoomCursor::default(),
                });
                rooms.len() - 1
            }
        };
        // The cursor may move to another epoch: found by name until the
        // next live message says which stream it follows.
        rooms[i].stream = 0;
        f(&mut rooms[i].cursor)
    }

    /// Runs `f` on the room's cursor when there is one.
    pub(crate) fn with_existing_room<R>(
        &self,
        ns: &str,
        room: &str,
        f: impl FnOnce(&mut RoomCursor) -> R,
    ) -> Option<R> {
        let mut rooms = self.rooms.lock();
        let entry = rooms.iter_mut().find(|e| e.ns == ns && e.room == room)?;
        entry.stream = 0;
        Some(f(&mut entry.cursor))
    }

    /// A live message at `pos` of history stream `stream` (0: unknown):
    /// runs `write` (under the lock, so that writes keep their order) when
    /// it is the next one; nothing when the socket has it or a catch-up
    /// will write it; after a gap, starts the catch-up's number and returns
    /// it (the caller starts the catch-up).
    pub(crate) fn live(
        &self,
        ns: &str,
        room: &str,
        stream: u64,
        pos: &Position,
        write: impl FnOnce(),
    ) -> Option<u64> {
        let mut rooms = self.rooms.lock();
        let known = (stream != 0)
            .then(|| rooms.iter().position(|e| e.stream == stream))
            .flatten();
        let i = match known {
            Some(i) => i,
            None => match rooms.iter().position(|e| e.ns == ns && e.room == room) {
                Some(i) => {
                    let e = &mut rooms[i];
                    let same = (e.cursor.last.as_ref()).is_some_and(|l| l.epoch == pos.epoch);
                    if same {
                        e.stream = stream;
                    } else if e.cursor.catching.is_none() {
                        // First message seen, or a new epoch: nothing to
                        // fill before it.
                        e.stream = stream;
                        e.cursor.last = Some(pos.clone());
                        write();
                        return None;
                    }
                    i
                }
                None => {
                    rooms.push(RoomEntry {
                        stream,
                        ns: ns.to_owned(),
                        room: room.to_owned(),
                        cursor: RoomCursor {
                            last: Some(pos.clone()),
                            ..RoomCursor::default()
                        },
                    });
                    write();
                    return None;
                }
            },
        };
        let cursor = &mut rooms[i].cursor;
        if cursor.catching.is_some() {
            cursor.skipped = cursor.skipped.max(pos.offset);
            return None;
        }
        let Some(last) = cursor.last.as_mut() else {
            cursor.last = Some(pos.clone());
            write();
            return None;
        };
        if pos.offset <= last.offset {
            return None; // already written
        }
        if pos.offset > last.offset + 1 {
            let number = self.next_catch_up();
            cursor.catching = Some(number);
            cursor.skipped = pos.offset;
            return Some(number);
        }
        last.offset = pos.offset;
        write();
        None
    }

    /// Forgets the room (the socket left it).
    pub(crate) fn forget(&self, ns: &str, room: &str) {
        self.rooms.lock().retain(|e| e.ns != ns || e.room != room);
    }
}

struct SocketInner {
    conn_id: u64,
    queue: OutQueue,
    control: Control,
    open: AtomicBool,
    alive: AtomicBool,
    authenticated: AtomicBool,
    background_since_ms: AtomicU64,
    handshake: Arc<Handshake>,
    /// Set when the client opted into recovery.
    recovery: Option<Box<RecoveryState>>,
    /// The client asked for presence events (`cwPresence=1`).
    presence: bool,
    bound_ids: Mutex<Vec<String>>,
    /// What the application tells the cluster about this socket
    /// ([`Socket::set_info`]).
    info: Mutex<Option<Value>>,
    /// Set to drop the connection at once (with a wake of its task).
    stopped: AtomicBool,
    policy: SlowConsumerPolicy,
    stats: Arc<Stats>,
    /// What owns the socket (its node), not kept alive by it; see
    /// [`Socket::owner`].
    owner: Weak<dyn Any + Send + Sync>,
}

/// A handle to one client connection. Cheap to clone; all clones are the
/// same socket.
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
/// assert!(socket.is_open());
/// assert_eq!(socket.socket_ids(), ["u1"]);
/// socket.emit("welcome", &"u1")?;
/// let text = client.next().await.ok_or("closed")??.into_text()?;
/// assert_eq!(text.as_str(), r#"{"event":"welcome","payload":"u1"}"#);
/// socket.close(4012, "logged in elsewhere");
/// assert!(!socket.is_open());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Socket(Arc<SocketInner>);

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
    /// A new socket owned by `owner`, with the queue bounds and policy of
    /// `config`.
    pub(crate) fn new(
        config: &NodeConfig,
        stats: Arc<Stats>,
        owner: Weak<dyn Any + Send + Sync>,
        conn_id: u64,
        handshake: Arc<Handshake>,
        authenticated: bool,
    ) -> Socket {
        let inner = SocketInner {
            conn_id,
            queue: OutQueue::new(config.outbound_queue, config.outbound_queue_bytes),
            control: Control::default(),
            open: AtomicBool::new(true),
            alive: AtomicBool::new(true),
            authenticated: AtomicBool::new(authenticated),
            background_since_ms: AtomicU64::new(0),
            recovery: RecoveryState::from_params(&handshake.params),
            presence: handshake
                .params
                .get(crosswire_protocol::presence::PRESENCE_PARAM)
                == Some("1"),
            handshake,
            bound_ids: Mutex::new(Vec::new()),
            info: Mutex::new(None),
            stopped: AtomicBool::new(false),
            policy: config.slow_consumer,
            stats,
            owner,
        };
        Socket(Arc::new(inner))
    }

    /// What owns the socket (its node), while it is alive.
    pub(crate) fn owner(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.0.owner.upgrade()
    }

    /// The connection's number, unique within its node.
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
    /// assert_eq!(node.get_socket("u1").map(|s| s.id()), Some(socket.id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn id(&self) -> u64 {
        self.0.conn_id
    }

    /// Sets what the cluster shows about this socket: its `info` in
    /// cluster queries ([`Node::query`](crate::Node::query)) and in room
    /// presence. At most [`MAX_INFO_BYTES`] once serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_connection(|socket: crosswire::Socket, _hs| async move {
    ///     socket.set_info(&serde_json::json!({"name": "Ann"})).unwrap();
    ///     assert_eq!(socket.info().unwrap()["name"], "Ann");
    ///     assert!(socket.set_info(&"x".repeat(5000)).is_err());
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_info<T: serde::Serialize + ?Sized>(&self, info: &T) -> Result<()> {
        let value = serde_json::to_value(info)?;
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
        if size > MAX_INFO_BYTES {
            return Err(Error::InvalidArgument("socket info: at most 4 KiB of JSON"));
        }
        *self.0.info.lock() = Some(value);
        Ok(())
    }

    /// What [`set_info`](Self::set_info) set, if anything.
    ///
    /// # Examples
    ///
    /// See [`set_info`](Self::set_info).
    pub fn info(&self) -> Option<Value> {
        self.0.info.lock().clone()
    }

    /// The socket ids bound to this connection with `Node::set_user_socket`.
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
    /// assert!(socket.socket_ids().is_empty());
    /// node.set_user_socket("u1", &socket)?;
    /// node.set_user_socket("admin", &socket)?;
    /// assert_eq!(socket.socket_ids(), ["u1", "admin"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn socket_ids(&self) -> Vec<String> {
        self.0.bound_ids.lock().clone()
    }

    /// The HTTP request that opened the connection.
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
    /// assert_eq!(socket.handshake().param("id"), Some("u1"));
    /// assert_eq!(socket.handshake().uri.query(), Some("id=u1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn handshake(&self) -> &Handshake {
        &self.0.handshake
    }

    /// Whether the connection is open (not closing or closed).
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
    /// assert!(socket.is_open());
    /// socket.close(1000, "done");
    /// assert!(!socket.is_open());
    /// assert!(socket.emit("late", &1).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_open(&self) -> bool {
        self.0.open.load(Ordering::Acquire)
    }

    /// Attaches a value of type `T` to the socket, replacing any previous one
    /// (the original stores e.g. `socket.playerId`).
    ///
    /// # Examples
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

    /// A copy of the value of type `T` attached to the socket: by
    /// [`insert_data`](Socket::insert_data), by the upgrade hook
    /// ([`Handshake::insert_data`]), or by a tower layer in the upgrade
    /// request's extensions (the router's own entries, `ConnectInfo` and
    /// `MatchedPath`, are not kept: the peer's address is
    /// [`Handshake::remote_addr`]).
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
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Nick(String);
    /// assert_eq!(socket.data::<Nick>(), None);
    /// socket.insert_data(Nick("sam".into()));
    /// assert_eq!(socket.data::<Nick>(), Some(Nick("sam".into())));
    /// # Ok(())
    /// # }
    /// ```
    pub fn data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.handshake.data.lock().get::<T>().cloned()
    }

    /// Removes and returns the value of type `T` attached to the socket.
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
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Nick(String);
    /// socket.insert_data(Nick("sam".into()));
    /// assert_eq!(socket.remove_data::<Nick>(), Some(Nick("sam".into())));
    /// assert_eq!(socket.data::<Nick>(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.handshake.data.lock().remove::<T>()
    }

    /// Sends one event to this socket only.
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
    /// socket.emit("score", &serde_json::json!({"a": 1, "b": 2}))?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"score","payload":{"a":1,"b":2}}"#);
    /// assert!(socket.emit("", &1).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<()> {
        crate::error::non_empty(event, crate::error::EVENT_MSG)?;
        let frame = PushFrame::encode(event, Some(payload))?;
        self.send_frame(&frame)
    }

    /// Sends an already encoded frame to this socket.
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
    /// socket.send_frame(&PushFrame::encode::<()>("tick", None)?)?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"tick"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_frame(&self, frame: &PushFrame) -> Result<()> {
        self.push(to_utf8(frame))
    }

    pub(crate) fn send_text(&self, text: String) -> Result<()> {
        self.push(Utf8Bytes::from(text))
    }

    /// Queues one text frame. Never waits: a queue at its bound of frames or
    /// of bytes applies the slow consumer policy.
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
    /// use tokio_tungstenite::tungstenite::Message;
    /// socket.emit("bye", &1)?;
    /// socket.close(4012, "logged in elsewhere");
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"event":"bye","payload":1}"#); // queued frames go first
    /// match client.next().await.ok_or("closed")?? {
    ///     Message::Close(Some(frame)) => {
    ///         assert_eq!(u16::from(frame.code), 4012);
    ///         assert_eq!(frame.reason.as_str(), "logged in elsewhere");
    ///     }
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self, code: u16, reason: &str) {
        self.request_close(CloseRequest::Close {
            code,
            reason: reason.to_owned(),
            drain: true,
        });
    }

    /// Drops the connection at once, without a close frame (the client sees 1006).
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
    /// socket.terminate();
    /// assert!(!socket.is_open());
    /// // The client sees the connection end without a close frame.
    /// while let Some(Ok(_)) = client.next().await {}
    /// # Ok(())
    /// # }
    /// ```
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
    /// // Without `NodeBuilder::auth_message` every socket is authenticated.
    /// assert!(socket.is_authenticated());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Acquire)
    }

    /// The outbound queue (the connection task drains it).
    pub(crate) fn queue(&self) -> &OutQueue {
        &self.0.queue
    }

    /// Pending ping and close requests for the connection task.
    pub(crate) fn control(&self) -> &Control {
        &self.0.control
    }

    /// Whether the connection task must drop the connection at once.
    pub(crate) fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Records that the client answered (a pong): it is alive.
    pub(crate) fn mark_alive(&self) {
        self.0.alive.store(true, Ordering::Release);
    }

    /// Takes the liveness mark (the heartbeat sweep): whether the client
    /// answered since the last sweep.
    pub(crate) fn take_alive(&self) -> bool {
        self.0.alive.swap(false, Ordering::AcqRel)
    }

    /// The socket ids bound to this socket (the node's registry keeps them
    /// in step with its own index).
    pub(crate) fn bound_ids(&self) -> &Mutex<Vec<String>> {
        &self.0.bound_ids
    }

    /// Marks the socket authenticated (it now gets broadcasts and its
    /// events reach their handlers).
    pub(crate) fn set_authenticated(&self) {
        self.0.authenticated.store(true, Ordering::Release);
    }

    /// Frames waiting in the outbound queue: queued, or taken by the
    /// connection task and not yet written to the WebSocket.
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
    /// assert_eq!(socket.queued(), 0);
    /// socket.emit("a", &1)?;
    /// assert_eq!(socket.queued(), 1); // the connection task has not run yet
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(socket.queued(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queued(&self) -> usize {
        self.0.queue.len()
    }

    /// Bytes of the frames counted by [`queued`](Socket::queued): what the
    /// outbound queue's byte bound
    /// ([`NodeBuilder::outbound_queue_bytes`](crate::NodeBuilder::outbound_queue_bytes))
    /// is checked against.
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
    /// socket.emit("a", &1)?;
    /// assert_eq!(socket.queued_bytes(), r#"{"event":"a","payload":1}"#.len());
    /// let _ = client.next().await.ok_or("closed")??;
    /// assert_eq!(socket.queued_bytes(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.0.queue.bytes()
    }

    pub(crate) fn request_ping(&self) {
        self.0.control.ping.store(true, Ordering::Release);
        self.0.queue.wake();
    }

    /// Marks the client as gone to the background now (the original's
    /// `socket.__enterBackgroundTime = Date.now()`): the node terminates it
    /// when it stays there longer than `enter_background_close_time`.
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
    /// socket.enter_background();
    /// assert!(socket.background_since().is_some());
    /// socket.enter_foreground();
    /// assert!(socket.background_since().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn enter_background(&self) {
        self.0
            .background_since_ms
            .store(now_ms().max(1), Ordering::Release);
    }

    /// Marks the client as back in the foreground (timestamp 0).
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
    /// node.on("visibility", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
    ///     if payload == "hidden" {
    ///         socket.enter_background();
    ///     } else {
    ///         socket.enter_foreground();
    ///     }
    /// })?;
    /// socket.enter_background();
    /// socket.enter_foreground();
    /// assert_eq!(socket.background_since(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn enter_foreground(&self) {
        self.0.background_since_ms.store(0, Ordering::Release);
    }

    /// Since when the client is in the background, if it is.
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
    /// let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    /// assert_eq!(socket.background_since(), None);
    /// socket.enter_background();
    /// assert!(socket.background_since().is_some_and(|t| t >= before));
    /// # Ok(())
    /// # }
    /// ```
    pub fn background_since(&self) -> Option<SystemTime> {
        match self.0.background_since_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// The node's counters.
    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.0.stats
    }

    /// The recovery state, when the client opted in (`cwRecovery=1`).
    /// Whether the client asked for presence events (`cwPresence=1`).
    pub(crate) fn wants_presence(&self) -> bool {
        self.0.presence
    }

    pub(crate) fn recovery(&self) -> Option<&RecoveryState> {
        self.0.recovery.as_deref()
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
