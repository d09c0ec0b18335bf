//! Replies to emits with a callback: [`ReplyFuture`] (the payload as JSON)
//! and [`DecodedReply`] (the payload deserialized into a type).

use crate::error::EmitError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// What an emit with callback resolves to: the reply payload (`None` when
/// the node replied without a value) or why there is none.
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
/// use crosswire_client::ReplyResult;
/// let ok: ReplyResult = c.emit_with_callback("echo", &1).await;
/// assert_eq!(ok, Ok(Some(1.into())));
/// c.manual_close();
/// while !matches!(events.recv().await, Some(crosswire_client::ClientEvent::Close { .. })) {}
/// let err: ReplyResult = c.emit_with_callback("echo", &1).await;
/// assert_eq!(err.map_err(|e| e.code()), Err("WS_NOT_OPEN"));
/// # Ok(())
/// # }
/// ```
pub type ReplyResult = Result<Option<serde_json::Value>, EmitError>;

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
/// let reply = c.emit_with_callback("echo", &"ping");
/// assert!(reply.callback_id().is_some());
/// assert_eq!(reply.await?, Some("ping".into()));
/// # Ok(())
/// # }
/// ```
#[must_use = "the reply is lost unless the future is awaited"]
#[derive(Debug)]
pub struct ReplyFuture {
    pub(crate) callback_id: Option<String>,
    pub(crate) state: ReplyState,
}

#[derive(Debug)]
pub(crate) enum ReplyState {
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

impl ReplyFuture {
    /// Deserializes the reply into `R` when it arrives: the typed form of
    /// this future. A reply without a value decodes as JSON `null` (so `R`
    /// may be an `Option` or `()`); a reply that does not fit `R` resolves
    /// to [`EmitError::Decode`].
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
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
    /// # let mut events = c.subscribe();
    /// # c.start();
    /// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
    /// use crosswire_client::{EmitError, EmitOptions};
    /// use std::time::Duration;
    /// let opts = EmitOptions::new().timeout(Duration::from_secs(2));
    /// let n: u32 = c.emit_with_options("echo", &7, opts).decode().await?;
    /// assert_eq!(n, 7);
    /// let wrong = c.emit_with_callback("echo", &"seven").decode::<u32>().await;
    /// assert!(matches!(wrong, Err(EmitError::Decode { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn decode<R: DeserializeOwned>(self) -> DecodedReply<R> {
        DecodedReply {
            inner: self,
            _reply: PhantomData,
        }
    }
}

/// The reply to an emit with callback, deserialized into `R`: made by
/// [`Connector::request`](crate::Connector::request) and
/// [`ReplyFuture::decode`]. Resolves to `Ok(R)`, or to an [`EmitError`]:
/// the errors of [`ReplyFuture`] (`WS_NOT_OPEN`, `CALLBACK_TIMEOUT`,
/// `DISCONNECTED`, ...) plus [`EmitError::Decode`] (`DECODE_ERROR`) when the
/// reply does not deserialize into `R`.
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
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
/// # let mut events = c.subscribe();
/// # c.start();
/// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
/// use crosswire_client::DecodedReply;
/// let reply: DecodedReply<Vec<u8>> = c.request("echo", &[1, 2, 3]);
/// assert!(reply.callback_id().is_some());
/// assert_eq!(reply.await?, vec![1, 2, 3]);
/// # Ok(())
/// # }
/// ```
#[must_use = "the reply is lost unless the future is awaited"]
pub struct DecodedReply<R> {
    inner: ReplyFuture,
    _reply: PhantomData<fn() -> R>,
}

impl<R> DecodedReply<R> {
    /// The callback id sent with the event (`None` when nothing was sent).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions, EmitError};
    /// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?; // not started
    /// let reply = c.request::<String>("echo", &1);
    /// assert_eq!(reply.callback_id(), None);
    /// assert_eq!(reply.await, Err(EmitError::NotOpen));
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_id(&self) -> Option<&str> {
        self.inner.callback_id()
    }
}

impl<R> fmt::Debug for DecodedReply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedReply")
            .field("inner", &self.inner)
            .field("type", &std::any::type_name::<R>())
            .finish()
    }
}

impl<R: DeserializeOwned> Future for DecodedReply<R> {
    type Output = Result<R, EmitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let payload = match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(payload)) => payload.unwrap_or(Value::Null),
        };
        Poll::Ready(serde_json::from_value(payload).map_err(|e| {
            let callback_id = this.inner.callback_id.clone().unwrap_or_default();
            tracing::debug!(%callback_id, error = %e, "reply does not decode");
            EmitError::Decode {
                callback_id,
                message: e.to_string(),
            }
        }))
    }
}
