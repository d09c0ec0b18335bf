//! Cross-server events: one node asks one, some or all nodes, and collects
//! their replies (the original's `emitCrossServer` /
//! `emitCrossServerWithPromise`), plus cluster membership.
//!
//! Replies travel as the original's `_Cs_Cb_` bridge messages, so crosswire
//! and original nodes answer each other. A pending call lives in one table
//! keyed by its callback id, with a deadline in a table that one task sweeps, removed when the call
//! completes or is deleted.

use crosswire_protocol::envelope::CALLBACK_EVENT;
use dashmap::DashMap;
use indexmap::IndexMap;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
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
    /// The call's callback id (for [`Node::delete_cross_server_callback`](crate::Node::delete_cross_server_callback)).
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
    /// Its key in [`PendingCalls::deadlines`].
    deadline: (tokio::time::Instant, u64),
}

/// The calls a node waits on, keyed by callback id, with a bound on their
/// number: a slot is reserved before a call is registered and freed when
/// its entry is removed, so the table never holds more than `max`.
pub(crate) struct PendingCalls {
    map: DashMap<String, Pending>,
    /// Reserved slots (registered calls, and calls being registered).
    count: AtomicUsize,
    max: usize,
    /// When each call times out, earliest first: one task sweeps them (a
    /// timer task per call cost a spawn and a wake-up per call).
    deadlines: parking_lot::Mutex<std::collections::BTreeMap<(tokio::time::Instant, u64), String>>,
    next_key: std::sync::atomic::AtomicU64,
    /// Wakes the sweeper when the earliest deadline changes (or the table
    /// goes away).
    wake: Arc<tokio::sync::Notify>,
    sweeper: std::sync::atomic::AtomicBool,
}

impl Drop for PendingCalls {
    fn drop(&mut self) {
        // The sweeper sees the table gone and ends.
        self.wake.notify_one();
    }
}

/// Times out the calls of `table` as their deadlines pass, until the table
/// is dropped.
async fn sweep_deadlines(table: std::sync::Weak<PendingCalls>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let next = {
            let Some(t) = table.upgrade() else { return };
            let now = tokio::time::Instant::now();
            let mut expired = Vec::new();
            let next = {
                let mut d = t.deadlines.lock();
                while let Some(entry) = d.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    expired.push(entry.remove());
                }
                d.first_key_value().map(|(k, _)| k.0)
            };
            for id in expired {
                if let Some(p) = t.remove(&id) {
                    let _ = p.tx.send(Box::new(CrossServerResponse::Timeout {
                        callback_id: id,
                        unresponded: p.remaining,
                    }));
                }
            }
            next
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl PendingCalls {
    pub(crate) fn new(max: usize) -> Self {
        PendingCalls {
            map: DashMap::new(),
            count: AtomicUsize::new(0),
            max,
            deadlines: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
            next_key: std::sync::atomic::AtomicU64::new(0),
            wake: Arc::new(tokio::sync::Notify::new()),
            sweeper: std::sync::atomic::AtomicBool::new(false),
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

    /// Registers a call waiting for `expected` replies for at most
    /// `timeout`; `Err(limit)` when the table is full.
    pub(crate) fn register(
        self: &Arc<Self>,
        callback_id: String,
        expected: usize,
        timeout: Duration,
    ) -> std::result::Result<CrossServerCall, usize> {
        let (tx, rx) = mpsc::unbounded_channel();
        if expected == 0 {
            // Nothing to wait for: the stream ends at once.
            return Ok(CrossServerCall {
                callback_id,
                rx,
                empty_success: true,
            });
        }
        if !self.reserve() {
            return Err(self.max);
        }
        if !self.sweeper.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep_deadlines(Arc::downgrade(self), self.wake.clone()));
        }
        let deadline = (
            tokio::time::Instant::now() + timeout,
            self.next_key.fetch_add(1, Ordering::Relaxed),
        );
        self.map.insert(
            callback_id.clone(),
            Pending {
                remaining: expected,
                tx,
                deadline,
            },
        );
        let earliest = {
            let mut d = self.deadlines.lock();
            d.insert(deadline, callback_id.clone());
            d.first_key_value().is_some_and(|(k, _)| *k == deadline)
        };
        if earliest {
            self.wake.notify_one();
        }
        Ok(CrossServerCall {
            callback_id,
            rx,
            empty_success: false,
        })
    }

    /// Counts one reply to a pending call; false when no call waits for it.
    pub(crate) fn resolve(&self, data: ReplyData) -> bool {
        let done = {
            let Some(mut p) = self.map.get_mut(&data.callback_id) else {
                return false;
            };
            p.remaining = p.remaining.saturating_sub(1);
            let remaining = p.remaining;
            let done = remaining == 0;
            let id = done.then(|| data.callback_id.clone());
            let _ =
                p.tx.send(Box::new(CrossServerResponse::Reply { data, remaining }));
            id
        };
        if let Some(id) = done {
            self.delete(&id);
        }
        true
    }

    /// Ends a call (its stream ends); false when there was none.
    pub(crate) fn delete(&self, id: &str) -> bool {
        self.remove(id).is_some()
    }

    /// Removes a call and frees its slot.
    fn remove(&self, id: &str) -> Option<Pending> {
        let removed = self.map.remove(id).map(|(_, p)| p);
        if let Some(p) = &removed {
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.deadlines.lock().remove(&p.deadline);
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

/// Prefix of the cross-server events crosswire's nodes exchange among
/// themselves (membership, cluster queries, login claims): no handler can be
/// registered under such a name and no call can be sent with one.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// let node = crosswire::Node::builder().build()?;
/// assert_eq!(crosswire::cross_server::RESERVED_PREFIX, "_cw_");
/// assert!(node.on_cross_server("_cw_mine", || async {}).is_err());
/// # Ok(())
/// # }
/// ```
pub const RESERVED_PREFIX: &str = "_cw_";

pub(crate) fn is_reserved_cross(event: &str) -> bool {
    event == CALLBACK_EVENT || event.starts_with(RESERVED_PREFIX)
}
