//! The [`Connector`] handle: creation, connection control, state, and the
//! [`WeakConnector`] that does not keep it alive.

use crate::command::Command;
use crate::error::ConnectorError;
use crate::options::ConnectorOptions;
use crate::shared::{AppState, ReadyState, Shared};
use crate::task::Task;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The Rust port of the original `WebSocketConnector`: one WebSocket
/// connection to a crosswire node (or an original server) with named events,
/// callbacks, a heartbeat and automatic reconnection.
///
/// A `Connector` is a cheap, cloneable handle to a background task that owns
/// the socket and every timer; all clones control the same connection. The
/// task ends, closing the connection with 1001, when every `Connector`
/// clone is dropped — clones captured by listeners count, so a handler of
/// pushed events that needs the connector takes it as an argument
/// (`|payload: T, c: Connector| ...`, see [`Handler`](crate::Handler)), a
/// lifecycle listener captures a [`WeakConnector`]
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
/// Handlers of pushed events take the payload typed (any deserializable
/// type), the application state ([`State`](crate::State), given once with
/// [`builder`](Self::builder)) and the connector as arguments, or the raw
/// `&serde_json::Value`; see [`Handler`](crate::Handler). A payload that does
/// not deserialize into a handler's type skips that handler and is counted
/// by [`rejected_payloads`](Self::rejected_payloads).
///
/// # Reconnection
///
/// Follows the original's schedule (`docs/concepts.md`, "Reconnection"; see
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
/// # Differences from the original (its defects, `docs/compatibility.md`, "Client defects")
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
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct RoomMessage {
///     text: String,
/// }
/// #[derive(Serialize)]
/// struct Say<'a> {
///     text: &'a str,
/// }
/// #[derive(Deserialize, Debug)]
/// struct Said {
///     ok: bool,
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1"))?;
/// c.on("roomMessage", |m: RoomMessage| println!("room: {}", m.text))?;
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
/// let reply: Said = c.request("say", &Say { text: "hi" }).await?;
/// println!("reply: {reply:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connector {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    pub(crate) shared: Arc<Shared>,
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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
        Self::spawn(options, None)
    }

    /// Creates the shared state and the task.
    pub(crate) fn spawn(
        options: ConnectorOptions,
        app_state: Option<AppState>,
    ) -> Result<Self, ConnectorError> {
        options.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ConnectorError::NoRuntime)?;
        let shared = Arc::new(Shared::new(options, app_state));
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(Task::new(shared.clone(), tx.downgrade(), rx).run());
        Ok(Connector { tx, shared })
    }

    /// A handle for one handler call, made by the task from its weak
    /// sender; `None` once every other handle is gone.
    pub(crate) fn for_handler(
        commands: &mpsc::WeakUnboundedSender<Command>,
        shared: &Arc<Shared>,
    ) -> Option<Self> {
        Some(Connector {
            tx: commands.upgrade()?,
            shared: shared.clone(),
        })
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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

    pub(crate) fn command(&self, cmd: Command) -> bool {
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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
        self.shared.state()
    }

    /// Whether the connection is open.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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
        self.shared.repeat()
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
        self.shared.set_ping_interval(interval);
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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
    /// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    /// #     if let Some(reply) = reply {
    /// #         let _ = reply.send(&payload);
    /// #     }
    /// # })?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
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

    /// How many pushed payloads handlers refused since the connector was
    /// created: once per handler whose payload type the payload did not
    /// deserialize into (that handler was not called; each refusal is also
    /// logged with `tracing` at level `warn`, with the event name and serde's
    /// message). Untyped handlers (`&Value`) never refuse.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
    /// #     let _ = socket.emit("heard", &payload);
    /// # })?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url))?;
    /// c.on("heard", |n: u32| println!("heard {n}"))?;
    /// let mut events = c.subscribe();
    /// c.start();
    /// while events.recv().await != Some(ClientEvent::Open) {}
    /// c.emit("shout", &"not a number")?;
    /// // The stream sees each push after its handlers ran.
    /// while !matches!(events.recv().await, Some(ClientEvent::Push { .. })) {}
    /// assert_eq!(c.rejected_payloads(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn rejected_payloads(&self) -> u64 {
        self.shared.rejected()
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

/// The members of a room, sorted by id then node (presence on).
pub(crate) fn sorted_members(shared: &Shared, ns: &str, room: &str) -> Vec<crate::Member> {
    let rooms = shared.rooms.lock();
    let Some(members) = rooms.get(&(ns.to_owned(), room.to_owned())) else {
        return Vec::new();
    };
    let mut list: Vec<crate::Member> = members.values().cloned().collect();
    list.sort_by(|a, b| (&a.id, &a.node).cmp(&(&b.id, &b.node)));
    list
}
