//! Registering and removing listeners: [`Listen`] and the `on…` / `off…`
//! methods of [`Connector`].

use crate::connector::Connector;
use crate::error::ConnectorError;
use crate::event::{ClientEvent, EventKind, HandlerId, ReconnectInfo};
use crate::handler::{self, Handler};
use crate::registry::LifecycleFn;
use crosswire_protocol::history::Joined;
use std::sync::Arc;
use std::time::Duration;

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
/// c.listen().tag("hud").on("score", |score: u32| println!("score {score}"))?;
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
    /// let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    /// c.listen().once().on("heard", move |n: i64| {
    ///     let _ = tx.send(n);
    /// })?;
    /// c.emit("shout", &1)?;
    /// c.emit("shout", &2)?;
    /// assert_eq!(heard.recv().await, Some(1));
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
    /// let id = c.listen().tag("feed").on("news", |payload: &serde_json::Value| println!("{payload}"))?;
    /// assert!(c.listen().on("", || {}).is_err());
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on<H, M>(self, event: &str, handler: H) -> Result<HandlerId, ConnectorError>
    where
        H: Handler<M>,
    {
        if event.is_empty() {
            return Err(ConnectorError::EmptyEvent);
        }
        let shared = &self.connector.shared;
        handler::check::<H, M>(shared)?;
        let id = shared.handler_id();
        let f = handler::erase(handler);
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

    /// Listens to `recovery` (see [`Connector::on_recovery`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000").recovery(true))?;
    /// let id = c.listen().tag("ui").on_recovery(|report| println!("{}: {:?}", report.room, report.recovery));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_recovery(self, f: impl Fn(&Joined) + Send + Sync + 'static) -> HandlerId {
        self.on_kind(EventKind::Recovery, move |ev| {
            if let ClientEvent::Recovery(report) = ev {
                f(report);
            }
        })
    }

    /// Listens to `presence` (see [`Connector::on_presence`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000").presence(true))?;
    /// let id = c.listen().tag("ui").on_presence(|r| println!("{}: {} online", r.room, r.members.len()));
    /// assert!(c.off(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_presence(
        self,
        f: impl Fn(&crate::PresenceReport) + Send + Sync + 'static,
    ) -> HandlerId {
        self.on_kind(EventKind::Presence, move |ev| {
            if let ClientEvent::Presence(report) = ev {
                f(report);
            }
        })
    }
}

impl Connector {
    /// A listener registration with options (once, tag).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(c: &crosswire_client::Connector) -> Result<(), crosswire_client::ConnectorError> {
    /// c.listen().once().tag("ui").on_open(|| println!("first open"));
    /// c.listen().tag("ui").on("news", |headline: String| println!("{headline}"))?;
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

    /// Listens to event `event` pushed by the node. The handler takes the
    /// payload as any deserializable type, and/or the application
    /// [`State`](crate::State) and a [`Connector`] handle; or the raw payload
    /// as `&serde_json::Value` (`Null` when the frame had none). See
    /// [`Handler`] for the forms. A payload that does not deserialize into
    /// the handler's type never reaches it: it is logged and counted by
    /// [`rejected_payloads`](Self::rejected_payloads). Any name is allowed,
    /// including `close` or `open`: these never reach lifecycle listeners.
    ///
    /// Errors: [`ConnectorError::EmptyEvent`], and
    /// [`ConnectorError::MissingState`] when the handler takes a
    /// [`State`](crate::State) the connector was not built with.
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
    /// let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    /// c.on("heard", move |pair: (u8, u8)| {
    ///     let _ = tx.send(pair);
    /// })?;
    /// let (raw_tx, mut raw) = tokio::sync::mpsc::unbounded_channel();
    /// c.on("heard", move |payload: &serde_json::Value| {
    ///     let _ = raw_tx.send(payload.clone());
    /// })?;
    /// c.emit("shout", &[1, 2])?;
    /// assert_eq!(heard.recv().await, Some((1, 2)));
    /// assert_eq!(raw.recv().await, Some(serde_json::json!([1, 2])));
    /// assert!(c.on("", || {}).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn on<H, M>(&self, event: &str, handler: H) -> Result<HandlerId, ConnectorError>
    where
        H: Handler<M>,
    {
        self.listen().on(event, handler)
    }

    /// Like [`on`](Self::on), for the next push of `event` whose payload
    /// the handler accepts (a refused payload leaves it registered).
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
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let count = Arc::new(AtomicUsize::new(0));
    /// let n = count.clone();
    /// c.once("heard", move |_n: u32| {
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
    pub fn once<H, M>(&self, event: &str, handler: H) -> Result<HandlerId, ConnectorError>
    where
        H: Handler<M>,
    {
        self.listen().once().on(event, handler)
    }

    /// Listens to `open`.
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

    /// Listens to `recovery`: with
    /// [`recovery`](crate::ConnectorOptions::recovery()) on, each time the
    /// node puts this connection in a room of a namespace with history, how
    /// the recovery of that room went ([`Joined`], the node's `_cw_joined`),
    /// after its replayed messages (if any) went to their handlers:
    ///
    /// * [`RecoveryStatus::None`](crate::RecoveryStatus::None): nothing to
    ///   recover (the first time in this room); `offset` is where it starts;
    /// * [`Complete`](crate::RecoveryStatus::Complete): every message sent
    ///   to the room while away was handled again (`recovered` of them,
    ///   marked [`Meta::recovered`](crate::Meta::recovered));
    /// * [`Incomplete`](crate::RecoveryStatus::Incomplete): they are not all
    ///   known any more (`reason`: [`TooOld`](crate::GapReason::TooOld),
    ///   [`EpochChanged`](crate::GapReason::EpochChanged), ...); nothing was
    ///   sent again, and the application reloads the room's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder()
    /// #     .history("chat", crosswire::history::HistoryConfig::default())
    /// #     .build()?;
    /// # node.on_connection(|socket, _hs| async move {
    /// #     if let Some(node) = socket.node() {
    /// #         let _ = node.set_user_socket("u1", &socket);
    /// #         let _ = node.join_room("chat", "lobby", "u1");
    /// #     }
    /// # });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{Connector, ConnectorOptions, RecoveryStatus};
    /// let c = Connector::new(ConnectorOptions::new(url).param("id", "u1").recovery(true))?;
    /// let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_recovery(move |report| {
    ///     if report.recovery == RecoveryStatus::Incomplete {
    ///         eprintln!("{}: messages lost ({:?}), reloading", report.room, report.reason);
    ///     }
    ///     let _ = tx.send(report.clone());
    /// });
    /// c.start(); // the node puts the connection in room `lobby` of `chat`
    /// let report = reports.recv().await.ok_or("ended")?;
    /// assert_eq!((report.ns.as_str(), report.room.as_str()), ("chat", "lobby"));
    /// assert_eq!((report.recovery, report.recovered), (RecoveryStatus::None, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_recovery(&self, f: impl Fn(&Joined) + Send + Sync + 'static) -> HandlerId {
        self.listen().on_recovery(f)
    }

    /// Listens to `presence`: with
    /// [`presence`](crate::ConnectorOptions::presence()) on, the members of
    /// a room the node put this connection in, once when it joins
    /// ([`PresenceReport::change`](crate::PresenceReport::change) `None`) and
    /// after every join or leave.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().server_name("n1").presence("chat").build()?;
    /// # node.on_connection(|socket, _hs| async move {
    /// #     if let Some(node) = socket.node() {
    /// #         let _ = socket.set_info(&serde_json::json!({"name": "Ann"}));
    /// #         let _ = node.set_user_socket("u1", &socket);
    /// #         let _ = node.join_room("chat", "lobby", "u1");
    /// #     }
    /// # });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url).param("id", "u1").presence(true))?;
    /// let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_presence(move |report| {
    ///     let _ = tx.send(report.clone());
    /// });
    /// c.start(); // the node puts the connection in room `lobby` of `chat`
    /// let report = reports.recv().await.ok_or("ended")?;
    /// assert_eq!((report.ns.as_str(), report.room.as_str()), ("chat", "lobby"));
    /// assert_eq!(report.members[0].id, "u1");
    /// assert_eq!(report.members[0].info["name"], "Ann");
    /// assert_eq!(c.presence_members("chat", "lobby").len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_presence(
        &self,
        f: impl Fn(&crate::PresenceReport) + Send + Sync + 'static,
    ) -> HandlerId {
        self.listen().on_presence(f)
    }

    /// The members of a room as this connector knows them (presence on),
    /// sorted by id then node; empty for a room it is not in.
    ///
    /// # Examples
    ///
    /// See [`on_presence`](Self::on_presence).
    pub fn presence_members(&self, ns: &str, room: &str) -> Vec<crate::Member> {
        crate::connector::sorted_members(&self.shared, ns, room)
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
    /// let news = c.on("news", || {})?;
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
    /// c.listen().tag("ui").on("news", || {})?;
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
    /// c.on("news", || {})?;
    /// c.once("news", |_: &serde_json::Value| {})?;
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
}
