//! Cross-server events: one node asks one, some or all nodes, and collects
//! their replies (the original's `emitCrossServer` /
//! `emitCrossServerWithPromise`), plus cluster membership.
//!
//! Replies travel as the original's `_Cs_Cb_` bridge messages, so crosswire
//! and original nodes answer each other. A pending call lives in one table
//! keyed by its callback id, with one timer that is cancelled when the call
//! completes or is deleted.

use crate::error::{non_empty, EVENT_MSG};
use crate::events::HandlerId;
use crate::handler::{erase, CrossContext, Handler};
use crate::node::Node;
use crate::stats::{HandlerKind, Stats, Timed};
use crate::{Error, Result};
use crosswire_protocol::envelope::{
    BridgeEvent, BridgeMessage, BridgeReply, KeyOrder, CALLBACK_EVENT,
};
use dashmap::DashMap;
use indexmap::IndexMap;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Default timeout of a cross-server call (the original's 5000 ms).
///
/// # Examples
///
/// ```
/// use crosswire::cross_server::DEFAULT_TIMEOUT;
/// assert_eq!(DEFAULT_TIMEOUT, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// The membership event names (defined with the other bridge envelopes in
/// [`crosswire_protocol::envelope`]); no handler can be registered under
/// them and no call can be sent with them.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::cross_server::{MEMBER_EVENT, MEMBER_LEAVE_EVENT};
/// let node = crosswire::Node::builder().build()?;
/// assert!(node.on_cross_server(MEMBER_EVENT, || async {}).is_err());
/// assert!(node.emit_cross_server(MEMBER_LEAVE_EVENT, &1).is_err());
/// # Ok(())
/// # }
/// ```
pub use crosswire_protocol::envelope::{MEMBER_EVENT, MEMBER_LEAVE_EVENT};

/// A cross-server event as its handlers see it: the original's inner bridge
/// object (`data.payload` there is [`payload`](Self::payload) here).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::CrossServerMessage;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// node.on_cross_server("announce", move |msg: CrossServerMessage| {
///     let _ = tx.send(msg);
///     async {}
/// })?;
/// node.emit_cross_server("announce", &serde_json::json!({"v": 2}))?.send()?;
/// let msg = rx.recv().await.ok_or("no message")?;
/// assert_eq!(msg.event, "announce");
/// assert_eq!(msg.sender_server.as_deref(), Some("n1"));
/// assert_eq!(msg.payload, serde_json::json!({"v": 2}));
/// assert!(msg.target_server.is_empty());
/// assert_eq!(msg.callback_id, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossServerMessage {
    /// Event name.
    pub event: String,
    /// The node that sent it (absent only on malformed foreign messages).
    pub sender_server: Option<String>,
    /// The payload (`null` when the sender gave none).
    pub payload: Value,
    /// The targeted nodes; empty for a broadcast.
    pub target_server: Vec<String>,
    /// Present when the sender expects replies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
}

/// One reply to a cross-server call: the original's `_Cs_Cb_` object.
///
/// # Examples
///
/// ```
/// use crosswire::ReplyData;
/// let reply = ReplyData {
///     sender_server: "n2".into(),
///     callback_id: "id-1".into(),
///     payload: Some(serde_json::json!(3)),
/// };
/// assert_eq!(
///     serde_json::to_string(&reply)?,
///     r#"{"event":"_Cs_Cb_","senderServer":"n2","targetServer":[],"callbackId":"id-1","isCallback":true,"payload":3}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyData {
    /// The replying node.
    pub sender_server: String,
    /// The call's callback id.
    pub callback_id: String,
    /// The reply value (`None` when the handler replied without one).
    pub payload: Option<Value>,
}

impl Serialize for ReplyData {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("event", CALLBACK_EVENT)?;
        m.serialize_entry("senderServer", &self.sender_server)?;
        m.serialize_entry("targetServer", &[] as &[String])?;
        m.serialize_entry("callbackId", &self.callback_id)?;
        m.serialize_entry("isCallback", &true)?;
        if let Some(p) = &self.payload {
            m.serialize_entry("payload", p)?;
        }
        m.end()
    }
}

/// One item of a call's response stream (the original's per-reply callback).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::CrossServerResponse;
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// node.on_cross_server("ping", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
///     if let Some(reply) = reply {
///         let _ = reply.send(&"pong");
///     }
/// })?;
/// let mut call = node.emit_cross_server("ping", &1)?.stream()?;
/// match call.next().await {
///     Some(CrossServerResponse::Reply { data, remaining }) => {
///         assert_eq!(data.payload, Some("pong".into()));
///         assert_eq!(remaining, 0);
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// // A node that does not exist never answers.
/// let mut call = node.emit_cross_server("ping", &1)?.to(["ghost"]).timeout(Duration::from_millis(20)).stream()?;
/// assert!(matches!(call.next().await, Some(CrossServerResponse::Timeout { unresponded: 1, .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum CrossServerResponse {
    /// A reply arrived; `remaining` more are expected (0 for the last one).
    Reply {
        /// The reply.
        data: ReplyData,
        /// Replies still expected.
        remaining: usize,
    },
    /// The call timed out with `unresponded` replies missing. Always the
    /// last item.
    Timeout {
        /// The call's callback id.
        callback_id: String,
        /// Replies that never came.
        unresponded: usize,
    },
}

impl CrossServerResponse {
    /// Whether this is a reply (the original's `success: true`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("ping", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send_empty();
    ///     }
    /// })?;
    /// let mut call = node.emit_cross_server("ping", &1)?.stream()?;
    /// assert!(call.next().await.is_some_and(|r| r.is_success()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_success(&self) -> bool {
        matches!(self, CrossServerResponse::Reply { .. })
    }
}

impl Serialize for CrossServerResponse {
    /// The original's callback argument shapes.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            CrossServerResponse::Reply { data, remaining } => {
                m.serialize_entry("success", &true)?;
                m.serialize_entry("data", data)?;
                m.serialize_entry("remainingResponses", remaining)?;
            }
            CrossServerResponse::Timeout {
                callback_id,
                unresponded,
            } => {
                m.serialize_entry("success", &false)?;
                m.serialize_entry("error", "Cross-server callback timed out.")?;
                m.serialize_entry("callbackId", callback_id)?;
                m.serialize_entry("unrespondedCount", unresponded)?;
            }
        }
        m.end()
    }
}

/// The collected outcome of a call (the original's promise result).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// node.on_cross_server("count", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
///     if let Some(reply) = reply {
///         let _ = reply.send(&7);
///     }
/// })?;
/// let result = node.emit_cross_server("count", &1)?.collect().await?;
/// assert!(result.success);
/// assert_eq!(result.responses["n1"].payload, Some(7.into()));
/// assert_eq!((result.unresponded_count, result.received), (0, 1));
/// let result = node
///     .emit_cross_server("count", &1)?
///     .to(["n1", "ghost"])
///     .timeout(Duration::from_millis(20))
///     .collect()
///     .await?;
/// assert!(!result.success);
/// assert_eq!(result.unresponded_count, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossServerResult {
    /// True when every expected reply arrived in time.
    pub success: bool,
    /// Replies by replying node (a second reply of one node replaces its
    /// first, as in the original).
    pub responses: IndexMap<String, ReplyData>,
    /// Replies that never came (0 on success).
    pub unresponded_count: usize,
    /// Replies received in all, duplicates included.
    pub received: usize,
}

impl Serialize for CrossServerResult {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("success", &self.success)?;
        if !self.success {
            m.serialize_entry("message", "Cross-server callback timed out.")?;
        }
        m.serialize_entry("responses", &self.responses)?;
        if !self.success {
            m.serialize_entry("unrespondedCount", &self.unresponded_count)?;
        }
        m.end()
    }
}

/// The stream of responses of one call. Ends after the last expected reply,
/// after the timeout item, or when the call is deleted.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// node.on_cross_server("who", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
///     if let Some(reply) = reply {
///         let _ = reply.send(&"n1");
///     }
/// })?;
/// let call = node.emit_cross_server("who", &1)?.stream()?;
/// assert!(!call.callback_id().is_empty());
/// let result = call.collect().await;
/// assert_eq!(result.received, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CrossServerCall {
    callback_id: String,
    rx: mpsc::UnboundedReceiver<Box<CrossServerResponse>>,
    /// The call expected no reply at all (it succeeds with none).
    empty_success: bool,
}

impl CrossServerCall {
    /// The call's callback id (for [`Node::delete_cross_server_callback`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let call = node.emit_cross_server("slow", &1)?.timeout(Duration::from_secs(60)).stream()?;
    /// assert!(call.callback_id().starts_with("n1-"));
    /// assert!(node.delete_cross_server_callback(call.callback_id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_id(&self) -> &str {
        &self.callback_id
    }

    /// The next response; `None` once the call is over.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("ping", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&1);
    ///     }
    /// })?;
    /// let mut call = node.emit_cross_server("ping", &1)?.stream()?;
    /// assert!(call.next().await.is_some_and(|r| r.is_success()));
    /// assert!(call.next().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<CrossServerResponse> {
        self.rx.recv().await.map(|b| *b)
    }

    /// Collects every response into the original's promise result.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("ping", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&1);
    ///     }
    /// })?;
    /// let call = node.emit_cross_server("ping", &1)?.stream()?;
    /// let result = call.collect().await;
    /// assert!(result.success);
    /// assert_eq!(result.responses.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(mut self) -> CrossServerResult {
        let mut result = CrossServerResult {
            success: self.empty_success,
            responses: IndexMap::new(),
            unresponded_count: 0,
            received: 0,
        };
        while let Some(item) = self.rx.recv().await {
            match *item {
                CrossServerResponse::Reply { data, remaining } => {
                    result.received += 1;
                    result.responses.insert(data.sender_server.clone(), data);
                    if remaining == 0 {
                        result.success = true;
                    }
                }
                CrossServerResponse::Timeout { unresponded, .. } => {
                    result.unresponded_count = unresponded;
                }
            }
        }
        result
    }
}

impl futures_util::Stream for CrossServerCall {
    type Item = CrossServerResponse;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| item.map(|b| *b))
    }
}

pub(crate) struct Pending {
    remaining: usize,
    /// Boxed items: the channel's first block (32 slots) is allocated with
    /// it, and 32 unboxed responses would make every pending call ~4 KB
    /// heavier.
    tx: mpsc::UnboundedSender<Box<CrossServerResponse>>,
    timer: tokio::task::AbortHandle,
}

/// The calls a node waits on, keyed by callback id, with a bound on their
/// number: a slot is reserved before a call is registered and freed when
/// its entry is removed, so the table never holds more than `max`.
pub(crate) struct PendingCalls {
    map: DashMap<String, Pending>,
    /// Reserved slots (registered calls, and calls being registered).
    count: AtomicUsize,
    max: usize,
}

impl PendingCalls {
    pub(crate) fn new(max: usize) -> Self {
        PendingCalls {
            map: DashMap::new(),
            count: AtomicUsize::new(0),
            max,
        }
    }

    /// Reserves a slot; false when all `max` are taken.
    fn reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn insert(&self, id: String, call: Pending) {
        self.map.insert(id, call);
    }

    /// Removes a call and frees its slot.
    pub(crate) fn remove(&self, id: &str) -> Option<Pending> {
        let removed = self.map.remove(id).map(|(_, p)| p);
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Answers a cross-server event. Each [`send`](Self::send) is one reply; a
/// handler may reply more than once (each counts, as in the original).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::{CrossReply, CrossServerMessage};
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// node.on_cross_server("double", |msg: CrossServerMessage, reply: Option<CrossReply>| async move {
///     if let (Some(n), Some(reply)) = (msg.payload.as_i64(), reply) {
///         let _ = reply.send(&(n * 2));
///     }
/// })?;
/// let result = node.emit_cross_server("double", &21)?.collect().await?;
/// assert_eq!(result.responses["n1"].payload, Some(42.into()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CrossReply {
    node: Node,
    origin: Option<String>,
    callback_id: String,
}

impl CrossReply {
    /// The call's callback id.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// node.on_cross_server("ask", move |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| {
    ///     if let Some(reply) = reply {
    ///         let _ = tx.send(reply.callback_id().to_owned());
    ///         let _ = reply.send_empty();
    ///     }
    ///     async {}
    /// })?;
    /// let call = node.emit_cross_server("ask", &1)?.stream()?;
    /// assert_eq!(rx.recv().await.as_deref(), Some(call.callback_id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn callback_id(&self) -> &str {
        &self.callback_id
    }

    /// Replies with `payload`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("time", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&serde_json::json!({"ms": 1000}));
    ///     }
    /// })?;
    /// let result = node.emit_cross_server("time", &1)?.collect().await?;
    /// assert_eq!(result.responses["n1"].payload, Some(serde_json::json!({"ms": 1000})));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send<T: Serialize + ?Sized>(&self, payload: &T) -> Result<()> {
        self.reply(Some(serde_json::to_value(payload)?))
    }

    /// Replies without a value (`payload` omitted on the wire).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("done", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send_empty();
    ///     }
    /// })?;
    /// let result = node.emit_cross_server("done", &1)?.collect().await?;
    /// assert!(result.success);
    /// assert_eq!(result.responses["n1"].payload, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_empty(&self) -> Result<()> {
        self.reply(None)
    }

    fn reply(&self, payload: Option<Value>) -> Result<()> {
        let data = ReplyData {
            sender_server: self.node.server_name().to_owned(),
            callback_id: self.callback_id.clone(),
            payload,
        };
        if self.origin.as_deref() == Some(self.node.server_name()) {
            // The caller is this node: resolve here. (The original also
            // publishes such replies; no other node could use them.)
            self.node.resolve_reply(data);
            return Ok(());
        }
        let Some(cluster) = self.node.cluster() else {
            return Err(Error::NoBus);
        };
        let msg = BridgeMessage::Reply(BridgeReply {
            sender_server: data.sender_server,
            callback_id: data.callback_id,
            payload: data.payload,
        });
        cluster.publish_bridge(self.node.inner.channels.bridge(), &msg)
    }
}

/// A cross-server call being built; see [`Node::emit_cross_server`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use std::time::Duration;
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// node.on_cross_server("sum", |msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
///     let n = msg.payload.as_array().map_or(0, |v| v.iter().filter_map(|x| x.as_i64()).sum::<i64>());
///     if let Some(reply) = reply {
///         let _ = reply.send(&n);
///     }
/// })?;
/// let result = node
///     .emit_cross_server("sum", &[1, 2, 3])?
///     .to(["n1"])
///     .timeout(Duration::from_secs(1))
///     .collect()
///     .await?;
/// assert_eq!(result.responses["n1"].payload, Some(6.into()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a cross-server call does nothing until send(), stream() or collect()"]
pub struct CrossServerEmit<'a> {
    node: &'a Node,
    event: String,
    payload: Value,
    targets: Vec<String>,
    except_self: bool,
    expected: Option<usize>,
    expect_all: bool,
    timeout: Duration,
}

impl CrossServerEmit<'_> {
    /// Target these nodes only (`targetServer`); the default is every node.
    /// Duplicates are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// b.on_cross_server("where", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&"here");
    ///     }
    /// })?;
    /// let result = a.emit_cross_server("where", &1)?.to(["b"]).collect().await?;
    /// assert_eq!(result.responses.keys().collect::<Vec<_>>(), ["b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for s in servers {
            let s = s.into();
            if !s.is_empty() && !self.targets.contains(&s) {
                self.targets.push(s);
            }
        }
        self
    }

    /// For a broadcast: do not handle the event on this node (`exceptSelf`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// for node in [&a, &b] {
    ///     let name = node.server_name().to_owned();
    ///     node.on_cross_server("who", move |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| {
    ///         let name = name.clone();
    ///         async move {
    ///             if let Some(reply) = reply {
    ///                 let _ = reply.send(&name);
    ///             }
    ///         }
    ///     })?;
    /// }
    /// let result = a.emit_cross_server("who", &1)?.except_self().collect().await?;
    /// assert_eq!(result.responses["b"].payload, Some("b".into()));
    /// assert!(!result.responses.contains_key("a"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn except_self(mut self) -> Self {
        self.except_self = true;
        self
    }

    /// For a broadcast: how many replies to wait for (`expectedResponses`,
    /// default 1). Targeted calls expect one reply per target.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// # let hub = MemoryHub::new();
    /// # let a = Node::builder().server_name("a").bus(hub.bus()).build()?;
    /// # let b = Node::builder().server_name("b").bus(hub.bus()).build()?;
    /// # a.ready().await;
    /// # b.ready().await;
    /// for node in [&a, &b] {
    ///     node.on_cross_server("vote", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///         if let Some(reply) = reply {
    ///             let _ = reply.send(&true);
    ///         }
    ///     })?;
    /// }
    /// let result = a.emit_cross_server("vote", &1)?.expect(2).collect().await?;
    /// assert!(result.success);
    /// assert_eq!(result.responses.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn expect(mut self, replies: usize) -> Self {
        self.expected = Some(replies.max(1));
        self
    }

    /// For a broadcast: wait for one reply from every live node (see
    /// [`Node::live_nodes`]), this one included unless [`except_self`](Self::except_self).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// # use crosswire::{bus::MemoryHub, Node};
    /// use std::time::Duration;
    /// # let hub = MemoryHub::new();
    /// let a = Node::builder()
    ///     .server_name("a")
    ///     .bus(hub.bus())
    ///     .membership(Duration::from_millis(10), Duration::from_secs(5))
    ///     .build()?;
    /// let b = Node::builder()
    ///     .server_name("b")
    ///     .bus(hub.bus())
    ///     .membership(Duration::from_millis(10), Duration::from_secs(5))
    ///     .build()?;
    /// for node in [&a, &b] {
    ///     node.on_cross_server("ping", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///         if let Some(reply) = reply {
    ///             let _ = reply.send_empty();
    ///         }
    ///     })?;
    /// }
    /// while a.live_nodes().len() < 2 {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    /// }
    /// let result = a.emit_cross_server("ping", &1)?.expect_all().collect().await?;
    /// assert!(result.success);
    /// assert_eq!(result.responses.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn expect_all(mut self) -> Self {
        self.expect_all = true;
        self
    }

    /// How long to wait for the replies (default 5 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::{Duration, Instant};
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let started = Instant::now();
    /// let result = node
    ///     .emit_cross_server("nobody-listens", &1)?
    ///     .timeout(Duration::from_millis(30))
    ///     .collect()
    ///     .await?;
    /// assert!(!result.success);
    /// assert!(started.elapsed() >= Duration::from_millis(30));
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if !timeout.is_zero() {
            self.timeout = timeout;
        }
        self
    }

    /// Sends without asking for replies.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// node.on_cross_server("log", move |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| {
    ///     assert!(reply.is_none()); // send() asks for no reply
    ///     counter.fetch_add(1, Ordering::SeqCst);
    ///     async {}
    /// })?;
    /// node.emit_cross_server("log", &"started")?.send()?;
    /// while seen.load(Ordering::SeqCst) == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(node.pending_cross_server_calls(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(self) -> Result<()> {
        self.start(false, KeyOrder::Emit).map(|_| ())
    }

    /// Sends and returns the stream of replies (the original's callback form).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("multi", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&1);
    ///         let _ = reply.send(&2);
    ///     }
    /// })?;
    /// let mut call = node.emit_cross_server("multi", &0)?.expect(2).stream()?;
    /// let mut remaining = Vec::new();
    /// while let Some(crosswire::CrossServerResponse::Reply { remaining: r, .. }) = call.next().await {
    ///     remaining.push(r);
    /// }
    /// assert_eq!(remaining, [1, 0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(self) -> Result<CrossServerCall> {
        self.start(true, KeyOrder::Emit)?.ok_or(Error::UnknownCall)
    }

    /// Sends and waits for the collected result (the original's promise form).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("name", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&"n1");
    ///     }
    /// })?;
    /// let result = node.emit_cross_server("name", &1)?.collect().await?;
    /// assert!(result.success);
    /// assert_eq!(result.responses["n1"].payload, Some("n1".into()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn collect(self) -> Result<CrossServerResult> {
        let call = self
            .start(true, KeyOrder::Promise)?
            .ok_or(Error::UnknownCall)?;
        Ok(call.collect().await)
    }

    fn start(self, with_callback: bool, key_order: KeyOrder) -> Result<Option<CrossServerCall>> {
        let node = self.node;
        let own = node.server_name().to_owned();
        let broadcast = self.targets.is_empty();
        let includes_self = (broadcast && !self.except_self) || self.targets.contains(&own);
        let expected = if broadcast {
            if self.expect_all {
                // May be 0 (no other live node with except_self): the call
                // then completes at once, successfully, with no replies.
                node.live_nodes()
                    .iter()
                    .filter(|n| !(self.except_self && **n == own))
                    .count()
            } else {
                self.expected.unwrap_or(1)
            }
        } else {
            self.targets.len()
        };
        let call = if with_callback {
            Some(node.register_call(expected, self.timeout)?)
        } else {
            None
        };
        let callback_id = call.as_ref().map(|c| c.callback_id.clone());
        let only_self = self.targets.len() == 1 && self.targets[0] == own;
        let cluster = if only_self { None } else { node.cluster() };
        let Some(cluster) = cluster else {
            // Nothing to publish: the local handlers take the message itself.
            if includes_self {
                node.dispatch_cross_server(CrossServerMessage {
                    event: self.event,
                    sender_server: Some(own),
                    payload: self.payload,
                    target_server: self.targets,
                    callback_id,
                });
            }
            return Ok(call);
        };
        if includes_self {
            node.dispatch_cross_server(CrossServerMessage {
                event: self.event.clone(),
                sender_server: Some(own.clone()),
                payload: self.payload.clone(),
                target_server: self.targets.clone(),
                callback_id: callback_id.clone(),
            });
        }
        let bridge = BridgeMessage::Event(BridgeEvent {
            event: self.event,
            sender_server: Some(own),
            payload: Some(self.payload),
            target_server: self.targets,
            callback_id,
            key_order,
        });
        if let Err(e) = cluster.publish_bridge(node.inner.channels.bridge(), &bridge) {
            // Nothing went out: no reply will come, so free the call's slot now.
            if let Some(call) = &call {
                node.delete_cross_server_callback(&call.callback_id);
            }
            return Err(e);
        }
        Ok(call)
    }
}

impl Node {
    /// Registers a handler of cross-server event `event` (`onCrossServerEvent`).
    /// The reply is present when the sender expects replies.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let id = node.on_cross_server("add", |msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     let sum: i64 = msg.payload.as_array().into_iter().flatten().filter_map(|v| v.as_i64()).sum();
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send(&sum);
    ///     }
    /// })?;
    /// let result = node.emit_cross_server("add", &[2, 3])?.collect().await?;
    /// assert_eq!(result.responses["n1"].payload, Some(5.into()));
    /// assert!(node.off_handler(id));
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_cross_server<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_cross_handler(event, handler, false, None)
    }

    /// Like [`on_cross_server`](Self::on_cross_server), with a tag.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server_tagged("sync", "plugin-a", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// node.on_cross_server_tagged("sync", "plugin-a", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// node.on_cross_server_tagged("sync", "plugin-b", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// assert_eq!(node.off_cross_server_tag("sync", "plugin-a"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_cross_server_tagged<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &str,
        tag: impl Into<String>,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_cross_handler(event, handler, false, Some(tag.into()))
    }

    /// A handler that runs once (`onceCrossServerEvent`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.once_cross_server("init", |_msg: crosswire::CrossServerMessage, reply: Option<crosswire::CrossReply>| async move {
    ///     if let Some(reply) = reply {
    ///         let _ = reply.send_empty();
    ///     }
    /// })?;
    /// assert!(node.emit_cross_server("init", &1)?.collect().await?.success);
    /// let again = node.emit_cross_server("init", &1)?.timeout(Duration::from_millis(20)).collect().await?;
    /// assert!(!again.success);
    /// # Ok(())
    /// # }
    /// ```
    pub fn once_cross_server<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_cross_handler(event, handler, true, None)
    }

    fn add_cross_handler<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &str,
        handler: H,
        once: bool,
        tag: Option<String>,
    ) -> Result<HandlerId> {
        non_empty(event, EVENT_MSG)?;
        if is_reserved_cross(event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let h = erase(self, handler)?;
        Ok(self.inner.cross_events.add(event, h, once, tag))
    }

    /// Removes the cross-server handlers of `event` with `tag`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server_tagged("sync", "cache", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// assert_eq!(node.off_cross_server_tag("sync", "cache"), 1);
    /// assert_eq!(node.off_cross_server_tag("sync", "cache"), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_cross_server_tag(&self, event: &str, tag: &str) -> usize {
        self.inner
            .cross_events
            .remove_where(Some(event), |_, t| t == Some(tag))
    }

    /// Removes every cross-server handler of `event`; returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.on_cross_server("sync", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// node.on_cross_server_tagged("sync", "t", |_msg: crosswire::CrossServerMessage, _reply: Option<crosswire::CrossReply>| async {})?;
    /// assert_eq!(node.off_cross_server_all("sync"), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn off_cross_server_all(&self, event: &str) -> usize {
        self.inner
            .cross_events
            .remove_where(Some(event), |_, _| true)
    }

    /// Starts a cross-server call of `event` with `payload` (the original's
    /// `emitCrossServer`). By default it goes to every node, this one
    /// included, and expects one reply.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(node: crosswire::Node) -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// // Ask every live node for its room count and sum the replies.
    /// let result = node
    ///     .emit_cross_server("count", &serde_json::json!({"ns": "chat"}))?
    ///     .expect_all()
    ///     .timeout(Duration::from_secs(2))
    ///     .collect()
    ///     .await?;
    /// let total: u64 = result.responses.values()
    ///     .filter_map(|r| r.payload.as_ref()?.as_u64())
    ///     .sum();
    /// # let _ = total; Ok(()) }
    /// ```
    pub fn emit_cross_server<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<CrossServerEmit<'_>> {
        non_empty(event, EVENT_MSG)?;
        if is_reserved_cross(event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let payload = serde_json::to_value(payload)?;
        if payload.is_null() {
            return Err(Error::InvalidArgument(
                "emitCrossServer: message cannot be null or undefined",
            ));
        }
        Ok(CrossServerEmit {
            node: self,
            event: event.to_owned(),
            payload,
            targets: Vec::new(),
            except_self: false,
            expected: None,
            expect_all: false,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Cancels a pending call (`deleteCrossServerCallback`): its timer stops,
    /// its stream ends, later replies are ignored. Returns whether it existed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let mut call = node.emit_cross_server("slow", &1)?.timeout(Duration::from_secs(60)).stream()?;
    /// assert_eq!(node.pending_cross_server_calls(), 1);
    /// assert!(node.delete_cross_server_callback(call.callback_id()));
    /// assert!(call.next().await.is_none());
    /// assert!(!node.delete_cross_server_callback(call.callback_id()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_cross_server_callback(&self, callback_id: &str) -> bool {
        match self.inner.pending.remove(callback_id) {
            Some(p) => {
                p.timer.abort();
                true
            }
            None => false,
        }
    }

    /// Number of calls waiting for replies.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use std::time::Duration;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// assert_eq!(node.pending_cross_server_calls(), 0);
    /// let call = node.emit_cross_server("slow", &1)?.timeout(Duration::from_secs(60)).stream()?;
    /// assert_eq!(node.pending_cross_server_calls(), 1);
    /// node.delete_cross_server_callback(call.callback_id());
    /// assert_eq!(node.pending_cross_server_calls(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pending_cross_server_calls(&self) -> usize {
        self.inner.pending.len()
    }

    /// Registers a call waiting for `expected` replies, or refuses it when
    /// the node already waits on `max_pending_cross_server_calls`.
    fn register_call(&self, expected: usize, timeout: Duration) -> Result<CrossServerCall> {
        let callback_id = (self.inner.callback_ids)();
        let (tx, rx) = mpsc::unbounded_channel();
        if expected == 0 {
            // Nothing to wait for: the stream ends at once.
            return Ok(CrossServerCall {
                callback_id,
                rx,
                empty_success: true,
            });
        }
        let pending = &self.inner.pending;
        if !pending.reserve() {
            Stats::incr(&self.inner.stats.cross_server_calls_refused);
            tracing::debug!(
                limit = pending.max,
                "too many pending cross-server calls: refused"
            );
            return Err(Error::TooManyPendingCalls { limit: pending.max });
        }
        let node = std::sync::Arc::downgrade(&self.inner);
        let id = callback_id.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(inner) = node.upgrade() else { return };
            if let Some(p) = inner.pending.remove(&id) {
                let _ = p.tx.send(Box::new(CrossServerResponse::Timeout {
                    callback_id: id,
                    unresponded: p.remaining,
                }));
            }
        })
        .abort_handle();
        pending.insert(
            callback_id.clone(),
            Pending {
                remaining: expected,
                tx,
                timer,
            },
        );
        Ok(CrossServerCall {
            callback_id,
            rx,
            empty_success: false,
        })
    }

    /// Counts one reply to a pending call.
    pub(crate) fn resolve_reply(&self, data: ReplyData) {
        let done = {
            let Some(mut p) = self.inner.pending.map.get_mut(&data.callback_id) else {
                Stats::incr(&self.inner.stats.cross_replies_unknown);
                return;
            };
            p.remaining = p.remaining.saturating_sub(1);
            let remaining = p.remaining;
            let _ = p.tx.send(Box::new(CrossServerResponse::Reply {
                data: data.clone(),
                remaining,
            }));
            remaining == 0
        };
        if done {
            if let Some(p) = self.inner.pending.remove(&data.callback_id) {
                p.timer.abort();
            }
        }
    }

    /// Runs this node's handlers of a cross-server event.
    pub(crate) fn dispatch_cross_server(&self, msg: CrossServerMessage) {
        let handlers = self.inner.cross_events.dispatch(&msg.event);
        if handlers.is_empty() {
            Stats::incr(&self.inner.stats.cross_unhandled);
            return;
        }
        let reply = msg.callback_id.clone().map(|callback_id| CrossReply {
            node: self.clone(),
            origin: msg.sender_server.clone(),
            callback_id,
        });
        let start = Instant::now();
        for (h, m) in crate::events::each_with(&handlers, msg) {
            let fut = h.call(CrossContext::new(self.clone(), m, reply.clone()));
            tokio::spawn(Timed::new(
                fut,
                start,
                self.inner.stats.clone(),
                HandlerKind::CrossServer,
            ));
        }
    }

    /// Handles a message from the bridge channel (already self-skipped).
    pub(crate) async fn handle_bridge(&self, msg: BridgeMessage) {
        match msg {
            BridgeMessage::Reply(r) => self.resolve_reply(ReplyData {
                sender_server: r.sender_server,
                callback_id: r.callback_id,
                payload: r.payload,
            }),
            BridgeMessage::Event(ev) => {
                if ev.event == MEMBER_EVENT || ev.event == MEMBER_LEAVE_EVENT {
                    if let Some(sender) = ev.sender_server {
                        self.observe_member(sender, ev.event == MEMBER_EVENT);
                    }
                    return;
                }
                let own = self.server_name();
                if !ev.target_server.is_empty() && !ev.target_server.iter().any(|t| t == own) {
                    return;
                }
                self.dispatch_cross_server(CrossServerMessage {
                    event: ev.event,
                    sender_server: ev.sender_server,
                    payload: ev.payload.unwrap_or(Value::Null),
                    target_server: ev.target_server,
                    callback_id: ev.callback_id,
                });
            }
        }
    }

    // ----- membership --------------------------------------------------------

    /// Names of the nodes known to be alive, this one included, sorted.
    /// Nodes announce themselves every `announce_interval` and drop out after
    /// `member_timeout` of silence (or at once when they shut down).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// assert_eq!(node.live_nodes(), ["n1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn live_nodes(&self) -> Vec<String> {
        let timeout = self.inner.config.member_timeout;
        let now = Instant::now();
        self.inner
            .members
            .retain(|_, seen| now.duration_since(*seen) <= timeout);
        let mut v: Vec<String> = self.inner.members.iter().map(|e| e.key().clone()).collect();
        v.push(self.server_name().to_owned());
        v.sort();
        v.dedup();
        v
    }

    fn observe_member(&self, name: String, alive: bool) {
        if name == self.server_name() {
            return;
        }
        if alive {
            let new = self.inner.members.insert(name, Instant::now()).is_none();
            if new {
                // Introduce ourselves to the newcomer at once.
                self.announce(MEMBER_EVENT);
            }
        } else {
            self.inner.members.remove(&name);
        }
    }

    pub(crate) fn announce(&self, event: &str) {
        if let Some(cluster) = self.cluster() {
            let msg = BridgeMessage::Event(BridgeEvent {
                event: event.to_owned(),
                sender_server: Some(self.server_name().to_owned()),
                payload: Some(serde_json::json!({ "v": 1 })),
                target_server: Vec::new(),
                callback_id: None,
                key_order: KeyOrder::Emit,
            });
            let _ = cluster.publish_bridge(self.inner.channels.bridge(), &msg);
        }
    }
}

fn is_reserved_cross(event: &str) -> bool {
    event == CALLBACK_EVENT || event == MEMBER_EVENT || event == MEMBER_LEAVE_EVENT
}
