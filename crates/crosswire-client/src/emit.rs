//! Emitting: fire-and-forget, with a reply as a future (raw or typed), or
//! with a reply callback.

use crate::command::{Command, Completion, Request};
use crate::connector::Connector;
use crate::error::EmitError;
use crate::options::EmitOptions;
use crate::reply::{DecodedReply, ReplyFuture, ReplyResult, ReplyState};
use crosswire_protocol::client::encode_client_event;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

impl Connector {
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

    /// The typed form of [`emit_with_callback`](Self::emit_with_callback):
    /// sends the event with a callback id and resolves to the reply
    /// deserialized into `R`. A reply without a value decodes as JSON
    /// `null` (so `R` may be an `Option` or `()`). Errors are those of
    /// `emit_with_callback` ([`EmitError::NotOpen`],
    /// [`EmitError::Timeout`], [`EmitError::Disconnected`], ...) plus
    /// [`EmitError::Decode`] when the reply does not fit `R`. With per-call
    /// options: [`emit_with_options`](Self::emit_with_options) then
    /// [`decode`](ReplyFuture::decode).
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
    /// use crosswire_client::EmitError;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Point {
    ///     x: i32,
    ///     y: i32,
    /// }
    /// let p: Point = c.request("echo", &Point { x: 1, y: 2 }).await?;
    /// assert_eq!(p, Point { x: 1, y: 2 });
    /// // A reply that is not a `Point`:
    /// let err = c.request::<Point>("echo", &"a string").await.unwrap_err();
    /// assert!(matches!(err, EmitError::Decode { .. }));
    /// assert_eq!(err.code(), "DECODE_ERROR");
    /// # Ok(())
    /// # }
    /// ```
    pub fn request<R: DeserializeOwned>(
        &self,
        event: &str,
        payload: &(impl Serialize + ?Sized),
    ) -> DecodedReply<R> {
        self.emit_with_callback(event, payload).decode()
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
}
