//! Event registries: client events (named by clients) and system events
//! (fired by the node itself), kept apart so that a client frame can never
//! fire a system event.
//!
//! A registry entry is `(id, once, tag, handler)`. Dispatch takes a snapshot
//! of the entries under a short read lock (an `Arc` clone), so registering a
//! handler never blocks dispatch for long, and `once` entries are removed
//! under the write lock before they run, so each fires exactly once even when
//! several sockets send the same event at the same moment.

use crate::socket::Socket;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Identifies one registered handler; pass it to `off_handler` to remove it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// let id = node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
/// let other = node.on("say", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {})?;
/// assert_ne!(id, other);
/// assert!(node.off_handler(id));
/// assert!(!node.off_handler(id));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId(u64);

impl HandlerId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        HandlerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Names a node fires itself; they can never be registered as client events,
/// and a client frame naming one is dropped. Includes the original's system
/// events, its reserved cross-server reply event and JavaScript prototype keys
/// (which crashed the original).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::events::RESERVED_EVENTS;
/// assert!(RESERVED_EVENTS.contains(&"connection"));
/// let node = crosswire::Node::builder().build()?;
/// for name in RESERVED_EVENTS {
///     assert!(node.on(name, |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {}).is_err());
/// }
/// # Ok(())
/// # }
/// ```
pub const RESERVED_EVENTS: &[&str] = &[
    "connection",
    "close",
    "error",
    "pong",
    "message",
    "client-ping",
    "server-error",
    "listening",
    "ws-server-close",
    "_Cs_Cb_",
];

/// Whether `event` is reserved ([`RESERVED_EVENTS`]).
///
/// # Examples
///
/// ```
/// assert!(crosswire::events::is_reserved("close"));
/// assert!(!crosswire::events::is_reserved("say"));
/// ```
pub fn is_reserved(event: &str) -> bool {
    RESERVED_EVENTS.contains(&event)
}

/// The answer channel of a client event sent with a callback id.
///
/// Each [`send`](Reply::send) writes one `{"payload":…,"callbackId":…}` frame,
/// like the original's reply function; it may be called more than once, and
/// every handler of the event shares the same reply.
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
/// use crosswire::Reply;
/// node.on("echo", |payload: serde_json::Value, reply: Option<Reply>| async move {
///     if let Some(reply) = reply {
///         let _ = reply.send(&payload);
///     }
/// })?;
/// client.send(r#"{"event":"echo","payload":[1,2],"callbackId":"c-1"}"#.into()).await?;
/// let text = client.next().await.ok_or("closed")??.into_text()?;
/// assert_eq!(text.as_str(), r#"{"payload":[1,2],"callbackId":"c-1"}"#);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    socket: Socket,
    callback_id: Arc<str>,
}

impl Reply {
    pub(crate) fn new(socket: Socket, callback_id: String) -> Self {
        Reply {
            socket,
            callback_id: callback_id.into(),
        }
    }

    /// The client's callback id.
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
    /// let (tx, mut ids) = tokio::sync::mpsc::unbounded_channel();
    /// node.on("ask", move |_socket: crosswire::Socket, _payload: serde_json::Value, reply: Option<crosswire::Reply>| {
    ///     if let Some(reply) = reply {
    ///         let _ = tx.send(reply.callback_id().to_owned());
    ///     }
    ///     async {}
    /// })?;
    /// client.send(r#"{"event":"ask","callbackId":"mwyihlrn-18kj-1"}"#.into()).await?;
    /// assert_eq!(ids.recv().await.as_deref(), Some("mwyihlrn-18kj-1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_id(&self) -> &str {
        &self.callback_id
    }

    /// Replies with `payload`.
    ///
    /// Fails with [`Error::SocketClosed`](crate::Error::SocketClosed) when the
    /// socket is gone (the reply is then discarded, as in the original).
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
    /// node.on("time", |_socket: crosswire::Socket, _payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&serde_json::json!({"ms": 5}));
    ///     }
    /// })?;
    /// client.send(r#"{"event":"time","callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"payload":{"ms":5},"callbackId":"c-1"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, payload: &T) -> crate::Result<()> {
        let text = crosswire_protocol::client::encode_reply(&self.callback_id, Some(payload))?;
        self.socket.send_text(text)
    }

    /// Replies without a value: the frame has no `payload` key (the original's
    /// `reply()` with `undefined`).
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
    /// node.on("ack", |_socket: crosswire::Socket, _payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send_empty();
    ///     }
    /// })?;
    /// client.send(r#"{"event":"ack","callbackId":"c-1"}"#.into()).await?;
    /// let text = client.next().await.ok_or("closed")??.into_text()?;
    /// assert_eq!(text.as_str(), r#"{"callbackId":"c-1"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_empty(&self) -> crate::Result<()> {
        let text = crosswire_protocol::client::encode_reply::<()>(&self.callback_id, None)?;
        self.socket.send_text(text)
    }
}

struct Entry<H: ?Sized> {
    id: HandlerId,
    once: bool,
    tag: Option<String>,
    handler: Arc<H>,
}

impl<H: ?Sized> Clone for Entry<H> {
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            once: self.once,
            tag: self.tag.clone(),
            handler: self.handler.clone(),
        }
    }
}

/// An ordered list of handlers for one event, copy-on-write.
pub(crate) struct Listeners<H: ?Sized> {
    entries: RwLock<Arc<Vec<Entry<H>>>>,
}

impl<H: ?Sized> Default for Listeners<H> {
    fn default() -> Self {
        Listeners {
            entries: RwLock::new(Arc::new(Vec::new())),
        }
    }
}

impl<H: ?Sized> Listeners<H> {
    pub(crate) fn add(&self, handler: Arc<H>, once: bool, tag: Option<String>) -> HandlerId {
        let id = HandlerId::next();
        let mut guard = self.entries.write();
        let mut v = Vec::clone(&guard);
        v.push(Entry {
            id,
            once,
            tag,
            handler,
        });
        *guard = Arc::new(v);
        id
    }

    /// Removes the entries `pred` selects; returns how many were removed.
    pub(crate) fn remove_where(&self, pred: impl Fn(HandlerId, Option<&str>) -> bool) -> usize {
        let mut guard = self.entries.write();
        let before = guard.len();
        let v: Vec<_> = guard
            .iter()
            .filter(|e| !pred(e.id, e.tag.as_deref()))
            .cloned()
            .collect();
        let removed = before - v.len();
        if removed > 0 {
            *guard = Arc::new(v);
        }
        removed
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    /// The handlers to call now, in registration order; `once` entries are
    /// taken out of the registry by this call.
    pub(crate) fn take_for_dispatch(&self) -> Vec<Arc<H>> {
        let snapshot = self.entries.read().clone();
        if !snapshot.iter().any(|e| e.once) {
            return snapshot.iter().map(|e| e.handler.clone()).collect();
        }
        // Some entries are `once`: decide under the write lock which of them
        // this dispatch owns, so a concurrent dispatch cannot run them too.
        let mut guard = self.entries.write();
        let current = guard.clone();
        let out = current.iter().map(|e| e.handler.clone()).collect();
        *guard = Arc::new(current.iter().filter(|e| !e.once).cloned().collect());
        out
    }
}

/// Handlers by event name (client events, cross-server events).
pub(crate) struct EventMap<H: ?Sized> {
    map: RwLock<HashMap<String, Arc<Listeners<H>>>>,
}

impl<H: ?Sized> Default for EventMap<H> {
    fn default() -> Self {
        EventMap {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<H: ?Sized> EventMap<H> {
    pub(crate) fn add(
        &self,
        event: &str,
        handler: Arc<H>,
        once: bool,
        tag: Option<String>,
    ) -> HandlerId {
        let listeners = self
            .map
            .write()
            .entry(event.to_owned())
            .or_default()
            .clone();
        listeners.add(handler, once, tag)
    }

    /// The handlers to run for one occurrence of `event` (see
    /// [`Listeners::take_for_dispatch`]).
    pub(crate) fn dispatch(&self, event: &str) -> Vec<Arc<H>> {
        let listeners = self.map.read().get(event).cloned();
        listeners.map(|l| l.take_for_dispatch()).unwrap_or_default()
    }

    pub(crate) fn remove_where(
        &self,
        event: Option<&str>,
        pred: impl Fn(HandlerId, Option<&str>) -> bool,
    ) -> usize {
        let mut map = self.map.write();
        let mut removed = 0;
        for (name, listeners) in map.iter() {
            if event.is_none_or(|e| e == name) {
                removed += listeners.remove_where(&pred);
            }
        }
        map.retain(|_, l| !l.is_empty());
        removed
    }
}

/// A system-event handler taking `A`.
pub(crate) type SystemHandler<A> = dyn Fn(A) -> BoxFuture<'static, ()> + Send + Sync;

/// Wraps a user closure into a [`SystemHandler`].
pub(crate) fn system_handler<A, F, Fut>(f: F) -> Arc<SystemHandler<A>>
where
    A: 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |a| Box::pin(f(a)) as BoxFuture<'static, ()>)
}

/// Runs `fut` until its first suspension point on the current task, then
/// hands the rest to a new task.
///
/// This keeps handlers in the order their frames arrived (everything a
/// handler does before its first `.await` happens in arrival order) while a
/// slow handler never holds up the next frame.
pub(crate) async fn run_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + Unpin + 'static,
{
    let mut fut = Some(fut);
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if let Some(f) = fut.as_mut() {
            // A panicking handler must not take the connection down with it
            // (the original wraps every listener call in try/catch).
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(f).poll(cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => fut = None,
                Err(_) => {
                    tracing::error!("an event handler panicked");
                    fut = None;
                }
            }
        }
        Poll::Ready(())
    })
    .await;
    if let Some(rest) = fut {
        tokio::spawn(rest);
    }
}

/// A client-event handler's future holding a slot of its socket's
/// `max_handlers_per_socket` until it ends (the slot is shared by the
/// handlers of one frame and freed when the last of them is dropped).
pub(crate) struct Slotted<F> {
    fut: F,
    _slot: Option<Arc<OwnedSemaphorePermit>>,
}

impl<F> Slotted<F> {
    pub(crate) fn new(fut: F, slot: Option<Arc<OwnedSemaphorePermit>>) -> Self {
        Slotted { fut, _slot: slot }
    }
}

impl<F: Future<Output = ()> + Unpin> Future for Slotted<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.fut).poll(cx)
    }
}

/// Resolves once `slots` has a free slot or `socket` is closing. The
/// connection task awaits it before reading a frame: a socket with
/// `max_handlers_per_socket` handlers still running is not read (its
/// client is slowed down by TCP flow control, nothing is dropped), while a
/// close request still ends the wait.
pub(crate) async fn handler_slot(slots: &Semaphore, socket: &Socket) {
    if slots.available_permits() > 0 {
        return;
    }
    let acquire = slots.acquire();
    tokio::pin!(acquire);
    std::future::poll_fn(|cx| {
        if acquire.as_mut().poll(cx).is_ready() || !socket.is_open() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Pairs each handler with a `value` of its own: the last handler takes
/// `value` itself, the others get copies (none are made for one handler).
pub(crate) fn each_with<H, T: Clone>(handlers: &[H], value: T) -> impl Iterator<Item = (&H, T)> {
    let last = handlers.len().saturating_sub(1);
    let mut value = Some(value);
    handlers.iter().enumerate().filter_map(move |(i, h)| {
        let v = if i == last {
            value.take()
        } else {
            value.clone()
        };
        v.map(|v| (h, v))
    })
}

#[cfg(test)]
mod tests {
    use super::each_with;

    #[test]
    fn each_handler_gets_its_own_value_and_the_last_takes_it() {
        let handlers = ["a", "b", "c"];
        let got: Vec<_> = each_with(&handlers, String::from("x")).collect();
        assert_eq!(
            got,
            [
                (&"a", "x".into()),
                (&"b", "x".into()),
                (&"c", String::from("x"))
            ]
        );
        assert_eq!(each_with(&[] as &[&str], 1).count(), 0);
    }
}
