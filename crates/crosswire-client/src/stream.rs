//! Every event as one stream: [`Connector::subscribe`] and [`EventStream`].

use crate::connector::Connector;
use crate::event::ClientEvent;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

impl Connector {
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

/// The stream of [`ClientEvent`]s made by [`Connector::subscribe`].
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
