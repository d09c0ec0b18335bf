//! Registering handlers: client events and system events.

use super::*;
use crate::events::is_reserved;
use crate::events::system_handler;
use crate::extract::erase;

impl Node {
    // ----- client events -------------------------------------------------

    pub(crate) fn add_client_handler(
        &self,
        event: &str,
        handler: Arc<dyn ErasedHandler<ClientContext>>,
        once: bool,
        tag: Option<String>,
    ) -> Result<HandlerId> {
        non_empty(event, EVENT_MSG)?;
        if is_reserved(event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        Ok(self.inner.client_events.add(event, handler, once, tag))
    }

    /// Registers a handler for client event `event` (`onWebSocketEvent`).
    /// Handlers run in registration order for each frame; they may be async,
    /// and a slow one never holds up the socket's next frames.
    ///
    /// Fails for an empty name and for reserved names such as `close`: system
    /// events have their own methods ([`on_connection`](Self::on_connection), ...).
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
    /// use crosswire::handler::Data;
    /// node.on("add", |Data(numbers): Data<Vec<i64>>| async move {
    ///     Ok::<_, String>(numbers.iter().sum::<i64>())
    /// })?;
    /// client.send(r#"{"event":"add","payload":[1,2,3],"callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"payload":6,"callbackId":"c-1"}"#);
    /// assert!(node.on("close", || async {}).is_err()); // reserved
    /// # Ok(())
    /// # }
    /// ```
    pub fn on<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(event, erase(&self.inner.state, handler)?, false, None)
    }

    /// Like [`on`](Self::on), with a tag for [`off_tag`](Self::off_tag).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_tagged("say", "chat-plugin", || async {})?;
    /// node.on_tagged("say", "audit", || async {})?;
    /// assert_eq!(node.off_tag("say", "chat-plugin"), 1);
    /// assert_eq!(node.off_all("say"), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_tagged<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        tag: impl Into<String>,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(
            event,
            erase(&self.inner.state, handler)?,
            false,
            Some(tag.into()),
        )
    }

    /// Registers a handler that runs for the next frame of `event` only
    /// (`onceWebSocketEvent`).
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
    /// node.once("hello", || async { Ok::<_, String>("first") })?;
    /// client.send(r#"{"event":"hello","callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"payload":"first","callbackId":"c-1"}"#);
    /// assert_eq!(node.off_all("hello"), 0); // already removed
    /// # Ok(())
    /// # }
    /// ```
    pub fn once<M: 'static, H: Handler<ClientContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_client_handler(event, erase(&self.inner.state, handler)?, true, None)
    }

    /// Removes one handler, of a client, system or cross-server event.
    /// Returns whether it existed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let client_event = node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// let system_event = node.on_connection(|_, _| async {});
    /// assert!(node.off_handler(client_event));
    /// assert!(node.off_handler(system_event));
    /// assert!(!node.off_handler(client_event));
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_handler(&self, id: HandlerId) -> bool {
        let removed = self.inner.client_events.remove_where(None, |h, _| h == id)
            + self.inner.cross_events.remove_where(None, |h, _| h == id)
            + self.inner.system.remove(id);
        removed > 0
    }

    /// Removes the handlers of `event` registered with `tag`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_tagged("say", "plugin", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// assert_eq!(node.off_tag("say", "plugin"), 1);
    /// assert_eq!(node.off_tag("say", "plugin"), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_tag(&self, event: &str, tag: &str) -> usize {
        self.inner
            .client_events
            .remove_where(Some(event), |_, t| t == Some(tag))
    }

    /// Removes every handler of client event `event`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// node.on_tagged("say", "t", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
    /// assert_eq!(node.off_all("say"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_all(&self, event: &str) -> usize {
        self.inner
            .client_events
            .remove_where(Some(event), |_, _| true)
    }

    // ----- system events -------------------------------------------------

    /// A client completed the handshake. Frames from it are dispatched once
    /// every connection handler has finished, so binding the socket id here
    /// (see [`set_user_socket`](Self::set_user_socket)) happens before its
    /// first event.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let n = node.clone();
    /// node.on_connection(move |socket, handshake| {
    ///     let n = n.clone();
    ///     async move {
    ///         match handshake.param("id") {
    ///             Some(id) => {
    ///                 let _ = n.set_user_socket(id, &socket);
    ///             }
    ///             None => socket.close(crosswire::close_code::AUTH_FAILED, "no id"),
    ///         }
    ///     }
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=u1")).await?;
    /// while node.get_socket("u1").is_none() {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.client_count(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_connection<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Arc<Handshake>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, r)| f(s, r));
        self.inner.system.connection.add(h, false, None)
    }

    /// A socket closed, for any reason. Runs before the node unbinds the
    /// socket's ids and removes them from their rooms.
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
    /// let (tx, mut closes) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_close(move |socket, info| {
    ///     let _ = tx.send((socket.id(), info.code));
    ///     async {}
    /// });
    /// let id = socket.id();
    /// client.close(None).await?;
    /// assert_eq!(closes.recv().await, Some((id, 1005)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_close<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, CloseInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, c)| f(s, c));
        self.inner.system.close.add(h, false, None)
    }

    /// A socket failed (a protocol or I/O error).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_error(|socket, error| async move {
    ///     eprintln!("socket {} failed: {error}", socket.id());
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_error<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Arc<str>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, e)| f(s, e));
        self.inner.system.error.add(h, false, None)
    }

    /// A protocol pong arrived (with its payload).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_pong(|socket, payload| async move {
    ///     println!("socket {} answered the ping ({} bytes)", socket.id(), payload.len());
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_pong<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, p)| f(s, p));
        self.inner.system.pong.add(h, false, None)
    }

    /// After every inbound text (or UTF-8 binary) frame was handled,
    /// heartbeats and dropped frames included.
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
    /// let (tx, mut texts) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_message(move |_socket, text| {
    ///     let _ = tx.send(text.to_string());
    ///     async {}
    /// });
    /// client.send("anything".into()).await?;
    /// assert_eq!(texts.recv().await.as_deref(), Some("anything"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_message<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket, Utf8Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = system_handler(move |(s, t)| f(s, t));
        self.inner.system.message.add(h, false, None)
    }

    /// A heartbeat frame arrived (just before it is echoed).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use futures_util::{SinkExt, StreamExt};
    /// let node = crosswire::Node::builder().heartbeat("ping").build()?;
    /// let (tx, mut pings) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_client_ping(move |socket| {
    ///     let _ = tx.send(socket.id());
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// client.send("ping".into()).await?;
    /// assert!(pings.recv().await.is_some());
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), "ping"); // echoed
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_client_ping<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .client_ping
            .add(system_handler(f), false, None)
    }

    /// The endpoint failed (e.g. accepting a connection).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_server_error(|error| async move {
    ///     eprintln!("endpoint failed: {error}");
    /// });
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_server_error<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(Arc<Error>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .server_error
            .add(system_handler(f), false, None)
    }

    /// [`listen`](Self::listen) bound its address.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let (tx, mut bound) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_listening(move |addr| {
    ///     let _ = tx.send(addr);
    ///     async {}
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// assert_eq!(bound.recv().await, Some(addr));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_listening<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn(SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .listening
            .add(system_handler(f), false, None)
    }

    /// The node shut down (`ws-server-close`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let closed = Arc::new(AtomicBool::new(false));
    /// let flag = closed.clone();
    /// node.on_server_close(move || {
    ///     flag.store(true, Ordering::SeqCst);
    ///     async {}
    /// });
    /// node.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert!(closed.load(Ordering::SeqCst));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_server_close<F, Fut>(&self, f: F) -> HandlerId
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .system
            .server_close
            .add(system_handler(move |()| f()), false, None)
    }
}
