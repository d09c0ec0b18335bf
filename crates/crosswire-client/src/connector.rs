//! The [`Connector`] handle and its helpers.

use crate::error::{ConnectorError, EmitError};
use crate::event::{
    ClientEvent, EventKind, HandlerId, LifecycleFn, PushFn, ReconnectInfo, Registry,
};
use crate::options::{ConnectorOptions, EmitOptions};
use crate::task::{Command, Completion, Request, Task};
use crate::ReplyResult;
use crosswire_protocol::client::encode_client_event;
use crosswire_protocol::ids::CallbackIds;
use futures_util::Stream;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The state of the connection, as WebSocket's `readyState`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("echo", |_socket, payload, reply| async move {
/// #     if let Some(reply) = reply {
/// #         let _ = reply.send(&payload);
/// #     }
/// # })?;
/// # node.on("shout", |socket, payload, _reply| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// use crosswire_client::{ClientEvent, Connector, ConnectorOptions, ReadyState};
/// let c = Connector::new(ConnectorOptions::new(url))?;
/// assert_eq!(c.state(), ReadyState::Closed);
/// let mut events = c.subscribe();
/// c.start();
/// while events.recv().await != Some(ClientEvent::Open) {}
/// assert_eq!(c.state(), ReadyState::Open);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// A connection attempt is in progress.
    Connecting,
    /// The connection is open: emits are sent.
    Open,
    /// This client sent a close frame and waits for the node's answer.
    Closing,
    /// No connection (not started, closed, or waiting for a reconnection).
    Closed,
}

impl ReadyState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ReadyState::Connecting,
            1 => ReadyState::Open,
            2 => ReadyState::Closing,
            _ => ReadyState::Closed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ReadyState::Connecting => 0,
            ReadyState::Open => 1,
            ReadyState::Closing => 2,
            ReadyState::Closed => 3,
        }
    }
}

/// State shared by the handles and the task.
pub(crate) struct Shared {
    pub(crate) options: ConnectorOptions,
    pub(crate) url: String,
    state: AtomicU8,
    repeat: AtomicU32,
    ping_interval_ns: AtomicU64,
    ids: CallbackIds,
    next_handler: AtomicU64,
    pub(crate) registry: Mutex<Registry>,
}

impl Shared {
    pub(crate) fn set_state(&self, state: ReadyState) {
        self.state.store(state.as_u8(), Ordering::Release);
    }

    pub(crate) fn set_repeat(&self, repeat: u32) {
        self.repeat.store(repeat, Ordering::Release);
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_nanos(self.ping_interval_ns.load(Ordering::Acquire))
    }

    fn handler_id(&self) -> HandlerId {
        HandlerId(self.next_handler.fetch_add(1, Ordering::Relaxed))
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The Rust port of the original `WebSocketConnector`: one WebSocket
/// connection to a crosswire node (or an original server) with named events,
/// callbacks, a heartbeat and automatic reconnection.
///
/// A `Connector` is a cheap, cloneable handle to a background task that owns
/// the socket and every timer; all clones control the same connection. The
/// task ends, closing the connection with 1001, when every `Connector`
/// clone is dropped — clones captured by listeners count, so a listener that
/// needs the connector should capture a [`WeakConnector`]
/// ([`downgrade`](Self::downgrade)), or the application calls
/// [`manual_close`](Self::manual_close) when done.
///
/// # Events
///
/// Lifecycle events ([`on_open`](Self::on_open), [`on_close`](Self::on_close),
/// ...) and events pushed by the node ([`on`](Self::on)) have separate
/// registries, so a node can never fire a lifecycle listener. Everything is
/// also available as one stream ([`subscribe`](Self::subscribe)). Listeners
/// are plain closures run on the connector's task, in registration order:
/// keep them short and spawn anything that waits. A panicking listener is
/// contained and logged.
///
/// # Reconnection
///
/// Follows the original's schedule (BEHAVIOUR.md §3.7, see
/// [`ConnectorOptions::reconnect_delay`]). What triggers it:
///
/// * a failed connection attempt (refused, bad URL, refused upgrade, TLS
///   error) — automatically, like the original's `error` path;
/// * an abnormal close of an open connection (no close frame, read error,
///   close handshake timeout; reported as `close` 1006) — automatically;
/// * [`reconnect`](Self::reconnect), e.g. from a `close` listener: a clean
///   close with a code (the node's kick, auth failure, 1001 on shutdown,
///   4002 after a pong timeout) never reconnects by itself.
///
/// The retry count resets on a successful open; when
/// [`repeat_limit`](ConnectorOptions::repeat_limit) attempts were scheduled
/// in a row, a further one is refused with a `repeat-limit` event.
///
/// # Differences from the original (its defects, BEHAVIOUR.md §4.3)
///
/// * `manual_close` / `reconnect` while connecting just abort the attempt (26);
/// * odd pushes (`{"event":"constructor"}`, a non-string event) are ignored (27);
/// * pushed events cannot fire lifecycle listeners (28);
/// * an immediate connection failure does not stop the retries (29);
/// * heartbeat timers stop when the connection closes (30);
/// * `close` is reported exactly once for every `open` — failed attempts
///   report only `error`, also when the repeat limit is hit; a manual close
///   reports `close` 4001; `reconnect()` on an open connection closes it
///   with 4000 `client reconnect`, not 4001 (31);
/// * callbacks pending when the connection closes fail at once with
///   `DISCONNECTED`; a frame equal to the ping string is a heartbeat reply
///   only while a heartbeat is outstanding; zero durations are rejected;
///   custom parameters go before a `#fragment` (which is dropped);
///   [`start`](Self::start) re-opens a manually closed connector (32).
///
/// # Examples
///
/// ```no_run
/// use crosswire_client::{Connector, ConnectorOptions};
/// use serde_json::json;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1"))?;
/// c.on("roomMessage", |payload| println!("room: {payload}"))?;
/// c.on_pong(|latency| println!("latency {latency:?}"));
/// let weak = c.downgrade();
/// c.on_close(move |code, reason| {
///     println!("closed {code} {reason}");
///     if let Some(c) = weak.upgrade() {
///         c.reconnect(false); // the original's documented pattern
///     }
/// });
/// c.start();
/// // ... once open:
/// let reply = c.emit_with_callback("say", &json!({"text": "hi"})).await?;
/// println!("reply: {reply:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connector {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.shared.url)
            .field("state", &self.state())
            .finish()
    }
}

impl Connector {
    /// Creates a connector and its task, **without connecting**: register
    /// listeners or [`subscribe`](Self::subscribe), then call
    /// [`start`](Self::start), so that no event is missed. Must be called
    /// inside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url).param("id", "u1"))?;
    /// let mut events = c.subscribe(); // before start: no event is missed
    /// c.start();
    /// assert_eq!(events.recv().await, Some(ClientEvent::Open));
    /// assert!(Connector::new(ConnectorOptions::new("")).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(options: ConnectorOptions) -> Result<Self, ConnectorError> {
        options.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ConnectorError::NoRuntime)?;
        let shared = Arc::new(Shared {
            url: options.connection_url(),
            state: AtomicU8::new(ReadyState::Closed.as_u8()),
            repeat: AtomicU32::new(0),
            ping_interval_ns: AtomicU64::new(duration_ns(options.ping_interval)),
            ids: CallbackIds::client(),
            next_handler: AtomicU64::new(1),
            registry: Mutex::new(Registry::default()),
            options,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(Task::new(shared.clone(), rx).run());
        Ok(Connector { tx, shared })
    }

    /// Creates a connector and connects at once, as the original's
    /// constructor does. Listeners registered afterwards may miss the first
    /// events; prefer [`new`](Self::new) + [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let mut events = c.subscribe();
    /// c.start();
    /// while events.recv().await.ok_or("ended")? != ClientEvent::Open {}
    /// assert!(c.is_open());
    /// assert_eq!(c.emit_with_callback("echo", &1).await?, Some(1.into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(options: ConnectorOptions) -> Result<Self, ConnectorError> {
        let c = Self::new(options)?;
        c.start();
        Ok(c)
    }

    /// Starts connecting if there is no connection or attempt in progress
    /// (cancelling a scheduled reconnection). After
    /// [`manual_close`](Self::manual_close) it re-enables the connector
    /// with a fresh retry count.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let mut events = c.subscribe();
    /// c.start();
    /// assert_eq!(events.recv().await, Some(ClientEvent::Open));
    /// c.manual_close();
    /// assert!(matches!(events.recv().await, Some(ClientEvent::Close { code: 4001, .. })));
    /// c.start(); // re-opens a manually closed connector
    /// assert_eq!(events.recv().await, Some(ClientEvent::Open));
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self) {
        self.command(Command::Start);
    }

    fn command(&self, cmd: Command) -> bool {
        self.tx.send(cmd).is_ok()
    }

    /// The options the connector was created with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let opts = ConnectorOptions { callback_timeout: Duration::from_secs(1), ..ConnectorOptions::new("ws://127.0.0.1:9000") };
    /// let c = Connector::new(opts)?;
    /// assert_eq!(c.options().callback_timeout, Duration::from_secs(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn options(&self) -> &ConnectorOptions {
        &self.shared.options
    }

    /// The URL it connects to, custom parameters included.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000/chat").param("id", "u 1"))?;
    /// assert_eq!(c.url(), "ws://127.0.0.1:9000/chat?id=u+1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The connection state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::ReadyState;
    /// assert_eq!(c.state(), ReadyState::Open);
    /// c.manual_close();
    /// while !matches!(events.recv().await.ok_or("ended")?, crosswire_client::ClientEvent::Close { .. }) {}
    /// assert_eq!(c.state(), ReadyState::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> ReadyState {
        ReadyState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Whether the connection is open.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// assert!(c.is_open());
    /// c.manual_close();
    /// while !matches!(events.recv().await, Some(crosswire_client::ClientEvent::Close { .. })) {}
    /// assert!(!c.is_open());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_open(&self) -> bool {
        self.state() == ReadyState::Open
    }

    /// Whether reconnection attempts were made since the last open (the
    /// original's `reconnecting()`; stays `true` after the repeat limit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let url = {
    /// #     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// #     format!("ws://{}", l.local_addr()?)
    /// # };
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let opts = ConnectorOptions { fast_reconnect_interval: Duration::from_millis(10), ..ConnectorOptions::new(url) };
    /// let c = Connector::new(opts)?;
    /// assert!(!c.reconnecting());
    /// let mut events = c.subscribe();
    /// c.start(); // nothing listens there: the attempt fails and is retried
    /// while !matches!(events.recv().await, Some(ClientEvent::Reconnect(_))) {}
    /// assert!(c.reconnecting());
    /// assert!(c.reconnect_attempts() >= 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnecting(&self) -> bool {
        self.reconnect_attempts() > 0
    }

    /// Reconnection attempts scheduled since the last open.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let url = {
    /// #     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// #     format!("ws://{}", l.local_addr()?)
    /// # };
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let opts = ConnectorOptions { fast_reconnect_interval: Duration::from_millis(10), ..ConnectorOptions::new(url) };
    /// let c = Connector::new(opts)?;
    /// assert_eq!(c.reconnect_attempts(), 0);
    /// let mut events = c.subscribe();
    /// c.start();
    /// while !matches!(events.recv().await, Some(ClientEvent::Reconnect(info)) if info.attempt == 2) {}
    /// assert_eq!(c.reconnect_attempts(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnect_attempts(&self) -> u32 {
        self.shared.repeat.load(Ordering::Acquire)
    }

    /// The current heartbeat interval.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// assert_eq!(c.ping_interval(), Duration::from_secs(10));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ping_interval(&self) -> Duration {
        self.shared.ping_interval()
    }

    /// Changes the heartbeat interval. It applies from the next arming (the
    /// next open or heartbeat reply); with `immediate`, a waiting heartbeat
    /// timer restarts now with the new interval (an outstanding heartbeat
    /// keeps its pong timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// c.set_ping_interval(Duration::from_secs(30), false)?;
    /// assert_eq!(c.ping_interval(), Duration::from_secs(30));
    /// assert!(c.set_ping_interval(Duration::ZERO, true).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_ping_interval(
        &self,
        interval: Duration,
        immediate: bool,
    ) -> Result<(), ConnectorError> {
        if interval.is_zero() {
            return Err(ConnectorError::ZeroDuration("ping_interval"));
        }
        self.shared
            .ping_interval_ns
            .store(duration_ns(interval), Ordering::Release);
        self.command(Command::PingInterval { immediate });
        Ok(())
    }

    /// Schedules a reconnection (the original's `reconnect(repeatReset)`):
    /// closes the current connection with 4000 `client reconnect` (or aborts
    /// the attempt in progress), then connects again after the delay of the
    /// schedule. `reset_count` restarts the schedule (and lifts a reached
    /// repeat limit). Ignored while a reconnection is already scheduled or
    /// after [`manual_close`](Self::manual_close).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::ClientEvent;
    /// c.reconnect(true);
    /// assert_eq!(
    ///     events.recv().await,
    ///     Some(ClientEvent::Close { code: crosswire_client::close_code::RECONNECT, reason: "client reconnect".into() })
    /// );
    /// assert!(matches!(events.recv().await, Some(ClientEvent::Reconnect(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnect(&self, reset_count: bool) {
        self.command(Command::Reconnect(reset_count));
    }

    /// Closes the connection with 4001 `client manual close` (or aborts the
    /// attempt in progress, safely), stops the heartbeat and any scheduled
    /// reconnection, fails pending callbacks with `DISCONNECTED`, and
    /// refuses [`reconnect`](Self::reconnect) until [`start`](Self::start).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::ClientEvent;
    /// let pending = c.emit_with_callback("never-answered", &1);
    /// c.manual_close();
    /// assert_eq!(pending.await.map_err(|e| e.code()), Err("DISCONNECTED"));
    /// assert_eq!(
    ///     events.recv().await,
    ///     Some(ClientEvent::Close { code: 4001, reason: "client manual close".into() })
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn manual_close(&self) {
        self.command(Command::ManualClose);
    }

    /// A handle that does not keep the connector alive.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let weak = c.downgrade();
    /// c.on_close(move |_code, _reason| {
    ///     if let Some(c) = weak.upgrade() {
    ///         c.reconnect(false);
    ///     }
    /// });
    /// assert!(c.downgrade().upgrade().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn downgrade(&self) -> WeakConnector {
        WeakConnector {
            tx: self.tx.downgrade(),
            shared: Arc::downgrade(&self.shared),
        }
    }

    // ----- emitting ---------------------------------------------------------

    /// Sends `{"event":…,"payload":…}` without waiting for anything.
    /// Fails with [`EmitError::NotOpen`] (`WS_NOT_OPEN`) when the connection
    /// is not open: nothing is queued.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::{ClientEvent, EmitError};
    /// c.emit("shout", &"hi")?; // the node answers with a push
    /// loop {
    ///     if let Some(ClientEvent::Push { event, payload }) = events.recv().await {
    ///         assert_eq!((event.as_str(), payload), ("heard", Some("hi".into())));
    ///         break;
    ///     }
    /// }
    /// c.manual_close();
    /// while !matches!(events.recv().await, Some(crosswire_client::ClientEvent::Close { .. })) {}
    /// assert_eq!(c.emit("shout", &"hi"), Err(EmitError::NotOpen));
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), EmitError> {
        if event.is_empty() {
            return Err(EmitError::EmptyEvent);
        }
        if !self.is_open() {
            return Err(EmitError::NotOpen);
        }
        let frame = encode_client_event(event, Some(payload), None)
            .map_err(|e| EmitError::Encode(e.to_string()))?;
        if self.command(Command::Send(frame)) {
            Ok(())
        } else {
            Err(EmitError::NotOpen)
        }
    }

    /// Sends the event with a callback id and resolves to the node's reply
    /// (`None` when the node replied without a value), with the default
    /// timeout. Errors: `WS_NOT_OPEN` at once when not open,
    /// `CALLBACK_TIMEOUT`, or `DISCONNECTED` as soon as the connection closes
    /// before the reply. The frame is sent when this is called, not when the
    /// future is first polled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let reply = c.emit_with_callback("echo", &serde_json::json!({"text": "hi"})).await?;
    /// assert_eq!(reply, Some(serde_json::json!({"text": "hi"})));
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_with_callback<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> ReplyFuture {
        self.emit_with_options(event, payload, EmitOptions::default())
    }

    /// [`emit_with_callback`](Self::emit_with_callback) with per-call
    /// options (timeout, pending timeout, `on_pending` hook).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::{EmitError, EmitOptions};
    /// use std::time::Duration;
    /// let (tx, late) = std::sync::mpsc::channel();
    /// let opts = EmitOptions::new()
    ///     .timeout(Duration::from_millis(50))
    ///     .pending_timeout(Duration::from_millis(10))
    ///     .on_pending(move || {
    ///         let _ = tx.send(());
    ///     });
    /// // No handler answers "nobody" on the node.
    /// let reply = c.emit_with_options("nobody", &1, opts).await;
    /// assert!(matches!(reply, Err(EmitError::Timeout { .. })));
    /// assert!(late.try_recv().is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_with_options<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        options: EmitOptions,
    ) -> ReplyFuture {
        let (tx, rx) = oneshot::channel();
        match self.submit(event, payload, options, Completion::Future(tx)) {
            Ok(id) => ReplyFuture {
                callback_id: Some(id),
                state: ReplyState::Waiting(rx),
            },
            Err((e, _)) => ReplyFuture {
                callback_id: None,
                state: ReplyState::Ready(Some(Err(e))),
            },
        }
    }

    /// The callback form: `callback` runs once, on the connector's task,
    /// with the reply or the error (synchronously, before this returns, for
    /// `WS_NOT_OPEN`, as in the original). Returns the callback id sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    /// let id = c.emit_then("echo", &5, crosswire_client::EmitOptions::new(), move |reply| {
    ///     let _ = tx.send(reply);
    /// });
    /// assert!(id.is_some());
    /// assert_eq!(replies.recv().await, Some(Ok(Some(5.into()))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_then<T, F>(
        &self,
        event: &str,
        payload: &T,
        options: EmitOptions,
        callback: F,
    ) -> Option<String>
    where
        T: Serialize + ?Sized,
        F: FnOnce(ReplyResult) + Send + 'static,
    {
        let done = Completion::Callback(Box::new(callback));
        // `submit` hands the completion back when it did not register it.
        match self.submit(event, payload, options, done) {
            Ok(id) => Some(id),
            Err((e, done)) => {
                done.complete(Err(e));
                None
            }
        }
    }

    fn submit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        options: EmitOptions,
        done: Completion,
    ) -> Result<String, (EmitError, Completion)> {
        if event.is_empty() {
            return Err((EmitError::EmptyEvent, done));
        }
        if !self.is_open() {
            return Err((EmitError::NotOpen, done));
        }
        let id = self.shared.ids.next();
        let frame = match encode_client_event(event, Some(payload), Some(&id)) {
            Ok(f) => f,
            Err(e) => return Err((EmitError::Encode(e.to_string()), done)),
        };
        let opts = &self.shared.options;
        let nonzero =
            |d: Option<Duration>, default: Duration| d.filter(|d| !d.is_zero()).unwrap_or(default);
        let req = Request {
            id: id.clone(),
            frame,
            timeout: nonzero(options.timeout, opts.callback_timeout),
            pending_timeout: nonzero(options.pending_timeout, opts.pending_timeout),
            on_pending: options.on_pending,
            done,
        };
        if let Err(mpsc::error::SendError(Command::Request(req))) =
            self.tx.send(Command::Request(req))
        {
            // The task ended.
            return Err((EmitError::NotOpen, req.done));
        }
        Ok(id)
    }

    // ----- listeners --------------------------------------------------------

    /// A listener registration with options (once, tag).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(c: &crosswire_client::Connector) -> Result<(), crosswire_client::ConnectorError> {
    /// c.listen().once().tag("ui").on_open(|| println!("first open"));
    /// c.listen().tag("ui").on("news", |payload| println!("{payload}"))?;
    /// c.off_tag("ui");
    /// # Ok(()) }
    /// ```
    pub fn listen(&self) -> Listen<'_> {
        Listen {
            connector: self,
            once: false,
            tag: None,
        }
    }

    /// Listens to event `event` pushed by the node; the listener gets the
    /// payload (`Null` when the frame had none). Any name is allowed,
    /// including `close` or `open`: these never reach lifecycle listeners.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    /// c.on("heard", move |payload| {
    ///     let _ = tx.send(payload.clone());
    /// })?;
    /// c.emit("shout", &[1, 2])?;
    /// assert_eq!(heard.recv().await, Some(serde_json::json!([1, 2])));
    /// assert!(c.on("", |_| {}).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn on(
        &self,
        event: &str,
        f: impl Fn(&Value) + Send + Sync + 'static,
    ) -> Result<HandlerId, ConnectorError> {
        self.listen().on(event, f)
    }

    /// Like [`on`](Self::on), for the next push of `event` only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let count = Arc::new(AtomicUsize::new(0));
    /// let n = count.clone();
    /// c.once("heard", move |_payload| {
    ///     n.fetch_add(1, Ordering::SeqCst);
    /// })?;
    /// c.emit("shout", &1)?;
    /// c.emit("shout", &2)?;
    /// let mut pushes = 0;
    /// while pushes < 2 {
    ///     if let Some(crosswire_client::ClientEvent::Push { .. }) = events.recv().await {
    ///         pushes += 1;
    ///     }
    /// }
    /// assert_eq!(count.load(Ordering::SeqCst), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn once(
        &self,
        event: &str,
        f: impl Fn(&Value) + Send + Sync + 'static,
    ) -> Result<HandlerId, ConnectorError> {
        self.listen().once().on(event, f)
    }

    /// Listens to `open`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let (tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_open(move || {
    ///     let _ = tx.send(());
    /// });
    /// c.start();
    /// assert_eq!(opened.recv().await, Some(()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_open(&self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.listen().on_open(f)
    }

    /// Listens to `close` (code, reason).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_close(move |code, reason| {
    ///     let _ = tx.send((code, reason.to_owned()));
    /// });
    /// node.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert_eq!(closed.recv().await, Some((1001, "server shutting down".to_owned())));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_close(&self, f: impl Fn(u16, &str) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_close(f)
    }

    /// Listens to `error` (a description of the failure).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let url = {
    /// #     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// #     format!("ws://{}", l.local_addr()?)
    /// # };
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_error(move |error| {
    ///     let _ = tx.send(error.to_owned());
    /// });
    /// c.start(); // nothing listens there
    /// assert!(errors.recv().await.is_some_and(|e| !e.is_empty()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_error(&self, f: impl Fn(&str) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_error(f)
    }

    /// Listens to `message` (every frame's text).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let (tx, mut frames) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_message(move |text| {
    ///     let _ = tx.send(text.to_owned());
    /// });
    /// c.emit("shout", &1)?;
    /// assert_eq!(frames.recv().await.as_deref(), Some(r#"{"event":"heard","payload":1}"#));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_message(&self, f: impl Fn(&str) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_message(f)
    }

    /// Listens to `ping` (a heartbeat is being sent).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use std::time::Duration;
    /// let (tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_ping(move || {
    ///     let _ = tx.send(());
    /// });
    /// c.set_ping_interval(Duration::from_millis(10), true)?;
    /// assert_eq!(pings.recv().await, Some(()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_ping(&self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.listen().on_ping(f)
    }

    /// Listens to `pong` (the heartbeat round-trip time).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use std::time::Duration;
    /// let (tx, mut pongs) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_pong(move |latency| {
    ///     let _ = tx.send(latency);
    /// });
    /// c.set_ping_interval(Duration::from_millis(10), true)?; // the node echoes the heartbeat
    /// assert!(pongs.recv().await.is_some_and(|rtt| rtt < Duration::from_secs(2)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong(&self, f: impl Fn(Duration) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_pong(f)
    }

    /// Listens to `reconnect` (attempt number and delay).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let url = {
    /// #     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// #     format!("ws://{}", l.local_addr()?)
    /// # };
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let opts = ConnectorOptions { fast_reconnect_interval: Duration::from_millis(10), ..ConnectorOptions::new(url) };
    /// let c = Connector::new(opts)?;
    /// let (tx, mut scheduled) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_reconnect(move |info| {
    ///     let _ = tx.send(info);
    /// });
    /// c.start();
    /// let info = scheduled.recv().await.ok_or("ended")?;
    /// assert_eq!((info.attempt, info.delay), (1, Duration::from_millis(10)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_reconnect(&self, f: impl Fn(ReconnectInfo) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_reconnect(f)
    }

    /// Listens to `repeat-limit` (the limit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let url = {
    /// #     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// #     format!("ws://{}", l.local_addr()?)
    /// # };
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// let opts = ConnectorOptions {
    ///     fast_reconnect_interval: Duration::from_millis(10),
    ///     repeat_limit: Some(2),
    ///     ..ConnectorOptions::new(url)
    /// };
    /// let c = Connector::new(opts)?;
    /// let (tx, mut limit) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_repeat_limit(move |n| {
    ///     let _ = tx.send(n);
    /// });
    /// c.start();
    /// assert_eq!(limit.recv().await, Some(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_repeat_limit(&self, f: impl Fn(u32) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_repeat_limit(f)
    }

    /// Listens to `pong-timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().heartbeat("hb").build()?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// use std::time::Duration;
    /// // The client's heartbeat string differs from the node's: no reply comes.
    /// let opts = ConnectorOptions {
    ///     ping_interval: Duration::from_millis(10),
    ///     pong_timeout: Duration::from_millis(20),
    ///     ..ConnectorOptions::new(format!("ws://{addr}"))
    /// };
    /// let c = Connector::new(opts)?;
    /// let (tx, mut timeouts) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_pong_timeout(move || {
    ///     let _ = tx.send(());
    /// });
    /// let mut events = c.subscribe();
    /// c.start();
    /// assert_eq!(timeouts.recv().await, Some(()));
    /// while !matches!(events.recv().await, Some(ClientEvent::Close { code: 4002, .. })) {}
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong_timeout(&self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.listen().on_pong_timeout(f)
    }

    /// Removes one listener (lifecycle or pushed). Returns whether it existed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let open = c.on_open(|| {});
    /// let news = c.on("news", |_| {})?;
    /// assert!(c.off(open));
    /// assert!(c.off(news));
    /// assert!(!c.off(news));
    /// # Ok(())
    /// # }
    /// ```
    pub fn off(&self, id: HandlerId) -> bool {
        self.shared.registry.lock().remove_id(id)
    }

    /// Removes every listener registered with `tag`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// c.listen().tag("ui").on_open(|| {});
    /// c.listen().tag("ui").on("news", |_| {})?;
    /// assert_eq!(c.off_tag("ui"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_tag(&self, tag: &str) -> usize {
        self.shared.registry.lock().remove_tag(tag)
    }

    /// Removes every listener of pushed event `event`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// c.on("news", |_| {})?;
    /// c.once("news", |_| {})?;
    /// assert_eq!(c.off_event("news"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_event(&self, event: &str) -> usize {
        self.shared.registry.lock().remove_event(event)
    }

    /// Removes every listener of lifecycle event `kind`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions, EventKind};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// c.on_pong(|_| {});
    /// c.on_pong(|_| {});
    /// c.on_open(|| {});
    /// assert_eq!(c.off_kind(EventKind::Pong), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_kind(&self, kind: EventKind) -> usize {
        self.shared.registry.lock().remove_kind(kind)
    }

    /// Every event from now on, lifecycle and pushed, in order, as a stream
    /// (after the listeners of each event ran). The stream is unbounded:
    /// drop it when not reading. It ends when the connector's task ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let mut events = c.subscribe();
    /// c.start();
    /// assert_eq!(events.recv().await, Some(ClientEvent::Open));
    /// c.emit("shout", &1)?;
    /// assert!(matches!(events.recv().await, Some(ClientEvent::Message(_))));
    /// assert_eq!(events.recv().await, Some(ClientEvent::Push { event: "heard".into(), payload: Some(1.into()) }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> EventStream {
        EventStream {
            rx: self.shared.registry.lock().subscribe(),
        }
    }
}

/// A [`Connector`] handle that does not keep the connector alive.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
/// let weak = c.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(c);
/// assert!(weak.upgrade().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct WeakConnector {
    tx: mpsc::WeakUnboundedSender<Command>,
    shared: Weak<Shared>,
}

impl WeakConnector {
    /// The connector, if any strong handle still exists.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let weak = c.downgrade();
    /// assert_eq!(weak.upgrade().map(|c| c.url().to_owned()).as_deref(), Some("ws://127.0.0.1:9000/"));
    /// drop(c);
    /// assert!(weak.upgrade().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn upgrade(&self) -> Option<Connector> {
        Some(Connector {
            tx: self.tx.upgrade()?,
            shared: self.shared.upgrade()?,
        })
    }
}

/// A listener registration: optionally [`once`](Self::once) and/or
/// [`tag`](Self::tag)ged, then one of the `on…` methods. Made by
/// [`Connector::listen`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
/// c.listen().once().on_open(|| println!("first open only"));
/// c.listen().tag("hud").on_pong(|rtt| println!("latency {rtt:?}"));
/// c.listen().tag("hud").on("score", |payload| println!("score {payload}"))?;
/// assert_eq!(c.off_tag("hud"), 2);
/// # Ok(())
/// # }
/// ```
#[must_use = "a Listen does nothing until one of its on… methods is called"]
#[derive(Debug)]
pub struct Listen<'a> {
    connector: &'a Connector,
    once: bool,
    tag: Option<String>,
}

impl Listen<'_> {
    /// The listener runs for the next event only.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    /// c.listen().once().on("heard", move |payload| {
    ///     let _ = tx.send(payload.clone());
    /// })?;
    /// c.emit("shout", &1)?;
    /// c.emit("shout", &2)?;
    /// assert_eq!(heard.recv().await, Some(1.into()));
    /// assert_eq!(heard.recv().await, None); // the listener (and its sender) is gone
    /// # Ok(())
    /// # }
    /// ```
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// Tags the listener, for [`Connector::off_tag`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// c.listen().tag("plugin").on_message(|_| {});
    /// c.listen().tag("plugin").once().on_close(|_, _| {});
    /// assert_eq!(c.off_tag("plugin"), 2);
    /// assert_eq!(c.off_tag("plugin"), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Listens to pushed event `event` (see [`Connector::on`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("feed").on("news", |payload| println!("{payload}"))?;
    /// assert!(c.listen().on("", |_| {}).is_err());
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on(
        self,
        event: &str,
        f: impl Fn(&Value) + Send + Sync + 'static,
    ) -> Result<HandlerId, ConnectorError> {
        if event.is_empty() {
            return Err(ConnectorError::EmptyEvent);
        }
        let shared = &self.connector.shared;
        let id = shared.handler_id();
        let f: PushFn = Arc::new(f);
        shared
            .registry
            .lock()
            .add_push(event, id, self.once, self.tag, f);
        Ok(id)
    }

    /// Listens to lifecycle event `kind`; the listener gets the whole event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::{ClientEvent, EventKind};
    /// let (tx, mut closes) = tokio::sync::mpsc::unbounded_channel();
    /// c.listen().on_kind(EventKind::Close, move |event| {
    ///     let _ = tx.send(event.clone());
    /// });
    /// c.manual_close();
    /// assert_eq!(closes.recv().await, Some(ClientEvent::Close { code: 4001, reason: "client manual close".into() }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_kind(
        self,
        kind: EventKind,
        f: impl Fn(&ClientEvent) + Send + Sync + 'static,
    ) -> HandlerId {
        let shared = &self.connector.shared;
        let id = shared.handler_id();
        let f: LifecycleFn = Arc::new(f);
        shared
            .registry
            .lock()
            .add_lifecycle(kind, id, self.once, self.tag, f);
        id
    }

    /// Listens to `open`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_open(|| {});
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_open(self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Open, move |_| f())
    }

    /// Listens to `close` (code, reason).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_close(|code, reason| println!("{code} {reason}"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_close(self, f: impl Fn(u16, &str) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Close, move |ev| {
            if let ClientEvent::Close { code, reason } = ev {
                f(*code, reason);
            }
        })
    }

    /// Listens to `error`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_error(|e| eprintln!("{e}"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_error(self, f: impl Fn(&str) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Error, move |ev| {
            if let ClientEvent::Error(e) = ev {
                f(e);
            }
        })
    }

    /// Listens to `message`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_message(|text| println!("{text}"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_message(self, f: impl Fn(&str) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Message, move |ev| {
            if let ClientEvent::Message(m) = ev {
                f(m);
            }
        })
    }

    /// Listens to `ping`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_ping(|| {});
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_ping(self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Ping, move |_| f())
    }

    /// Listens to `pong`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_pong(|rtt| println!("{rtt:?}"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong(self, f: impl Fn(Duration) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Pong, move |ev| {
            if let ClientEvent::Pong(d) = ev {
                f(*d);
            }
        })
    }

    /// Listens to `reconnect`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_reconnect(|info| println!("attempt {} in {:?}", info.attempt, info.delay));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_reconnect(self, f: impl Fn(ReconnectInfo) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Reconnect, move |ev| {
            if let ClientEvent::Reconnect(info) = ev {
                f(*info);
            }
        })
    }

    /// Listens to `repeat-limit`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_repeat_limit(|limit| eprintln!("gave up after {limit}"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_repeat_limit(self, f: impl Fn(u32) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::RepeatLimit, move |ev| {
            if let ClientEvent::RepeatLimit(limit) = ev {
                f(*limit);
            }
        })
    }

    /// Listens to `pong-timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
    /// let id = c.listen().tag("ui").on_pong_timeout(|| eprintln!("no pong"));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong_timeout(self, f: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::PongTimeout, move |_| f())
    }
}

/// The reply to an emit with callback: resolves to the reply payload or an
/// [`EmitError`]. Dropping it does not cancel anything; the entry is
/// cleaned up by its timeout.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("echo", |_socket, payload, reply| async move {
/// #     if let Some(reply) = reply {
/// #         let _ = reply.send(&payload);
/// #     }
/// # })?;
/// # node.on("shout", |socket, payload, _reply| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
/// # let mut events = c.subscribe();
/// # c.start();
/// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
/// let reply = c.emit_with_callback("echo", &"ping");
/// assert!(reply.callback_id().is_some());
/// assert_eq!(reply.await?, Some("ping".into()));
/// # Ok(())
/// # }
/// ```
#[must_use = "the reply is lost unless the future is awaited"]
#[derive(Debug)]
pub struct ReplyFuture {
    callback_id: Option<String>,
    state: ReplyState,
}

#[derive(Debug)]
enum ReplyState {
    Ready(Option<ReplyResult>),
    Waiting(oneshot::Receiver<ReplyResult>),
}

impl ReplyFuture {
    /// The callback id sent with the event (`None` when nothing was sent).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// let reply = c.emit_with_callback("echo", &1);
    /// let id = reply.callback_id().map(str::to_owned);
    /// assert_eq!(id.as_ref().map(|id| id.split('-').count()), Some(3)); // the client's id format
    /// c.manual_close();
    /// while !matches!(events.recv().await, Some(crosswire_client::ClientEvent::Close { .. })) {}
    /// assert_eq!(c.emit_with_callback("echo", &1).callback_id(), None); // not open: nothing sent
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_id(&self) -> Option<&str> {
        self.callback_id.as_deref()
    }
}

impl Future for ReplyFuture {
    type Output = ReplyResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        let this = self.get_mut();
        match &mut this.state {
            ReplyState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(EmitError::NotOpen))),
            ReplyState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(r)) => Poll::Ready(r),
                // The task ended without answering.
                Poll::Ready(Err(_)) => Poll::Ready(Err(EmitError::Disconnected {
                    callback_id: this.callback_id.clone().unwrap_or_default(),
                })),
            },
        }
    }
}

/// The stream of [`ClientEvent`]s made by [`Connector::subscribe`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("echo", |_socket, payload, reply| async move {
/// #     if let Some(reply) = reply {
/// #         let _ = reply.send(&payload);
/// #     }
/// # })?;
/// # node.on("shout", |socket, payload, _reply| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
/// use futures_util::StreamExt;
/// let c = Connector::new(ConnectorOptions::new(url))?;
/// let mut events = c.subscribe();
/// c.start();
/// assert_eq!(events.next().await, Some(ClientEvent::Open));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<ClientEvent>,
}

impl EventStream {
    /// The next event; `None` once the connector's task ended.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// let mut events = c.subscribe();
    /// c.start();
    /// assert_eq!(events.recv().await, Some(ClientEvent::Open));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The next event if one is already queued.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket, payload, reply| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket, payload, _reply| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::ClientEvent;
    /// assert_eq!(events.try_recv(), None);
    /// c.manual_close();
    /// tokio::task::yield_now().await;
    /// assert!(matches!(events.try_recv(), Some(ClientEvent::Close { code: 4001, .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl Stream for EventStream {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(cx)
    }
}
