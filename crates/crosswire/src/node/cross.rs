//! The node's side of cross-server events: registering their handlers,
//! sending calls ([`CrossServerEmit`]), answering them ([`CrossReply`]),
//! dispatching the calls that arrive, and cluster membership.

use super::{CrossContext, Node};
use crate::cross_server::*;
use crate::error::{non_empty, EVENT_MSG};
use crate::events::HandlerId;
use crate::extract::{erase, Handler};
use crate::stats::{HandlerKind, Stats, Timed};
use crate::{Error, Result};
use crosswire_protocol::envelope::{BridgeEvent, BridgeMessage, BridgeReply, KeyOrder};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
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
        let msg = BridgeMessage::Reply(BridgeReply {
            sender_server: data.sender_server,
            callback_id: data.callback_id,
            payload: data.payload,
        });
        // With routing by host the reply goes to its caller only.
        let origin: Vec<String> = self.origin.iter().cloned().collect();
        self.node.publish_bridge_to(&origin, &msg)
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
        let callback_id = call.as_ref().map(|c| c.callback_id().to_owned());
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
        let _ = cluster;
        let targets = self.targets.clone();
        let bridge = BridgeMessage::Event(BridgeEvent {
            event: self.event,
            sender_server: Some(own),
            payload: Some(self.payload),
            target_server: self.targets,
            callback_id,
            key_order,
        });
        if let Err(e) = node.publish_bridge_to(&targets, &bridge) {
            // Nothing went out: no reply will come, so free the call's slot now.
            if let Some(call) = &call {
                node.delete_cross_server_callback(call.callback_id());
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

    /// Registers a handler of one of crosswire's own cross-server events.
    pub(crate) fn on_internal<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &'static str,
        handler: H,
    ) -> Result<HandlerId> {
        self.add_handler_unchecked(event, handler, false, None)
    }

    /// What another node sent in one of crosswire's own events: its name
    /// and the payload read as `T`; `None` for this node's own message or a
    /// payload of another shape.
    pub(crate) fn sent_by_other_node<T: serde::de::DeserializeOwned>(
        &self,
        msg: CrossServerMessage,
    ) -> Option<(String, T)> {
        let from = msg.sender_server?;
        if from == self.server_name() {
            return None;
        }
        Some((from, serde_json::from_value(msg.payload).ok()?))
    }

    /// A call of one of crosswire's own cross-server events.
    pub(crate) fn emit_internal(&self, event: &'static str, payload: Value) -> CrossServerEmit<'_> {
        CrossServerEmit {
            node: self,
            event: event.to_owned(),
            payload,
            targets: Vec::new(),
            except_self: false,
            expected: None,
            expect_all: false,
            timeout: DEFAULT_TIMEOUT,
        }
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
        self.add_handler_unchecked(event, handler, once, tag)
    }

    fn add_handler_unchecked<M: 'static, H: Handler<CrossContext, M>>(
        &self,
        event: &str,
        handler: H,
        once: bool,
        tag: Option<String>,
    ) -> Result<HandlerId> {
        let h = erase(&self.inner.state, handler)?;
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
        let mut emit = self.emit_internal("", payload);
        emit.event = event.to_owned();
        Ok(emit)
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
        self.inner.pending.delete(callback_id)
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
        self.inner
            .pending
            .register(callback_id, expected, timeout)
            .map_err(|limit| {
                Stats::incr(&self.inner.stats.cross_server_calls_refused);
                tracing::debug!(limit, "too many pending cross-server calls: refused");
                Error::TooManyPendingCalls { limit }
            })
    }

    /// Counts one reply to a pending call.
    pub(crate) fn resolve_reply(&self, data: ReplyData) {
        if !self.inner.pending.resolve(data) {
            Stats::incr(&self.inner.stats.cross_replies_unknown);
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
                        let routing = (ev.payload.as_ref())
                            .and_then(|p| p.get("routing"))
                            .and_then(Value::as_str);
                        if ev.event == MEMBER_EVENT {
                            self.check_routing(&sender, routing);
                        }
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
        // Expired members stay listed until `sweep_members` drops them (and
        // says so), but they do not count as alive.
        let mut v: Vec<String> = (self.inner.members.iter())
            .filter(|e| now.duration_since(*e.value()) <= timeout)
            .map(|e| e.key().clone())
            .collect();
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
            let new = self
                .inner
                .members
                .insert(name.clone(), Instant::now())
                .is_none();
            if new {
                // Introduce ourselves to the newcomer at once.
                self.announce(MEMBER_EVENT);
                self.presence_node_appeared(&name);
                self.directory_node_appeared(&name);
            }
        } else if self.inner.members.remove(&name).is_some() {
            self.presence_node_gone(&name);
            self.directory_node_gone(&name);
        }
    }

    /// A member announced itself with `routing` (absent: the compatible
    /// mode); a mode other than this node's is a conflict.
    fn check_routing(&self, name: &str, routing: Option<&str>) {
        let theirs = routing.unwrap_or("compatible");
        let mine = if self.inner.channels.is_routed() {
            "by_host"
        } else {
            "compatible"
        };
        if theirs != mine {
            self.report_routing_conflict(format!(
                "node {name} routes {theirs} and this node {mine}: every node of a cluster \
                 must use the same Routing, or messages are lost"
            ));
        }
    }

    /// Notes a sender seen on the bus (routing by host): one that never
    /// announces itself is not a crosswire node of this mode.
    pub(crate) fn check_sender(&self, sender: &str) {
        if !self.inner.channels.is_routed()
            || sender.is_empty()
            || sender == self.server_name()
            || self.inner.members.contains_key(sender)
            || self.inner.unannounced.contains_key(sender)
        {
            return;
        }
        self.inner
            .unannounced
            .insert(sender.to_owned(), Instant::now());
    }

    /// Records and reports a routing conflict (once per distinct reason).
    fn report_routing_conflict(&self, why: String) {
        let mut current = self.inner.routing_conflict.lock();
        if current.as_deref() != Some(why.as_str()) {
            Stats::incr(&self.inner.stats.routing_conflicts);
            tracing::error!(conflict = %why, "cluster routing conflict");
            *current = Some(why);
        }
    }

    /// Why this cluster's routing is broken, if this node saw it: a member
    /// that routes in the other mode ([`Routing`](crate::Routing)), or,
    /// while routing by host, a sender that never announces itself (an
    /// original node). Also in [`health`](Self::health), which then says
    /// `degraded`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().build()?;
    /// assert_eq!(node.routing_conflict(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn routing_conflict(&self) -> Option<String> {
        self.inner.routing_conflict.lock().clone()
    }

    /// Drops the members silent for longer than `member_timeout`, and says
    /// so (their presence goes with them).
    pub(crate) fn sweep_members(&self) {
        let timeout = self.inner.config.member_timeout;
        let now = Instant::now();
        let expired: Vec<String> = (self.inner.members.iter())
            .filter(|e| now.duration_since(*e.value()) > timeout)
            .map(|e| e.key().clone())
            .collect();
        for name in expired {
            let gone = self
                .inner
                .members
                .remove_if(&name, |_, seen| now.duration_since(*seen) > timeout);
            if gone.is_some() {
                tracing::info!(node = %name, "cluster member gone (silent past member_timeout)");
                self.presence_node_gone(&name);
                self.directory_node_gone(&name);
            }
        }
        // Senders that never announced themselves within member_timeout.
        let silent: Vec<String> = (self.inner.unannounced.iter())
            .filter(|e| {
                self.inner.members.contains_key(e.key()) || now.duration_since(*e.value()) > timeout
            })
            .map(|e| e.key().clone())
            .collect();
        for name in silent {
            self.inner.unannounced.remove(&name);
            if !self.inner.members.contains_key(&name) {
                self.report_routing_conflict(format!(
                    "node {name} publishes on the bus but never announces itself (an original \
                     node?): routing by host needs crosswire nodes routing by host everywhere"
                ));
            }
        }
    }

    pub(crate) fn announce(&self, event: &str) {
        if let Some(cluster) = self.cluster() {
            let msg = BridgeMessage::Event(BridgeEvent {
                event: event.to_owned(),
                sender_server: Some(self.server_name().to_owned()),
                payload: Some(if self.inner.channels.is_routed() {
                    serde_json::json!({ "v": 1, "routing": "by_host" })
                } else {
                    serde_json::json!({ "v": 1 })
                }),
                target_server: Vec::new(),
                callback_id: None,
                key_order: KeyOrder::Emit,
            });
            let _ = cluster.publish_bridge(self.inner.channels.bridge(), &msg);
        }
    }
}
