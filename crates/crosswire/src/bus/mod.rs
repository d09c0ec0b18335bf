//! The bus between nodes: publish bytes on a channel, subscribe to channels,
//! receive what others published.
//!
//! A [`Node`](crate::Node) owns one bus endpoint. It encodes envelopes
//! (`crosswire_protocol::envelope`) and decides what to subscribe to; the bus
//! only moves bytes. Implementations:
//!
//! * [`MemoryBus`]: nodes in one process (the embedded default and the
//!   backbone of fast tests);
//! * `RedisBus` in the `crosswire-redis` crate: any number of independent
//!   Redis nodes, wire-compatible with the original's cluster;
//! * `NatsBus` in the `crosswire-nats` crate: a NATS server or cluster
//!   (crosswire nodes only: the original speaks Redis).

mod budget;
mod memory;

pub use budget::{ByteBudget, Charge};
pub use memory::{MemoryBus, MemoryHub};

/// Default bound in bytes of a bus endpoint's receive queue (the messages a
/// node has not handled yet): 64 MiB. Four messages of the largest size a
/// node decodes by default (16 MiB, `NodeConfig::max_bus_message_size`)
/// fit, and it matches the default bound of 65,536 messages at 1 KiB each.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::bus::DEFAULT_INCOMING_BYTES, 64 << 20);
/// ```
pub const DEFAULT_INCOMING_BYTES: usize = 64 * 1024 * 1024;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One message received from the bus.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::{Bus, BusMessage, MemoryHub};
/// let bus = MemoryHub::new().bus();
/// let mut incoming = bus.take_incoming().ok_or("taken")?;
/// bus.subscribe("c").await?;
/// bus.publish("c", bytes::Bytes::from_static(b"\x01\x02")).await?;
/// let BusMessage { channel, payload } = incoming.recv().await.ok_or("closed")?;
/// assert_eq!(&*channel, "c");
/// assert_eq!(&payload[..], [1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The channel it was published on.
    pub channel: Arc<str>,
    /// The payload, exactly as published.
    pub payload: Bytes,
}

/// Health of a bus and of each of its transport nodes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::{Bus, BusHealth, MemoryHub};
/// let health: BusHealth = MemoryHub::new().bus().health();
/// assert!(health.healthy);
/// assert!(health.nodes.is_empty());
/// assert_eq!(
///     serde_json::to_string(&health)?,
///     r#"{"healthy":true,"nodes":[],"publish_failures":0,"dropped":0,"reconnects":0}"#
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct BusHealth {
    /// Whether messages can be published at all.
    pub healthy: bool,
    /// One entry per transport node (e.g. per Redis node); empty for buses
    /// without nodes.
    pub nodes: Vec<BusNodeHealth>,
    /// Publishes that no transport node took (all down or refusing): those
    /// messages are lost. Counted since the bus started.
    pub publish_failures: u64,
    /// Received messages dropped before the node read them (the bus's
    /// receive queue was full): lost for this node.
    pub dropped: u64,
    /// Reconnections of the bus's connections. A subscriber misses what is
    /// published while it is disconnected.
    pub reconnects: u64,
    /// Publishes written to a transport node that then stopped answering
    /// (frozen, cut off): not sent again elsewhere, so that they cannot be
    /// delivered twice. They are delivered if that node comes back, lost if
    /// it does not. Counted since the bus started; not serialized while 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_doubt: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Health of one transport node of a bus.
///
/// # Examples
///
/// ```
/// use crosswire::bus::BusNodeHealth;
/// let node = BusNodeHealth {
///     name: "redis://10.0.0.1:6379".into(),
///     healthy: true,
///     latency_ms: Some(0.4),
///     published: 12,
///     failovers: 1,
///     error: None,
/// };
/// assert_eq!(
///     serde_json::to_string(&node)?,
///     r#"{"name":"redis://10.0.0.1:6379","healthy":true,"latency_ms":0.4,"published":12,"failovers":1}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BusNodeHealth {
    /// The node's address or name.
    pub name: String,
    /// Whether it is used for publishing now.
    pub healthy: bool,
    /// Last measured round trip in milliseconds, if any.
    pub latency_ms: Option<f64>,
    /// Messages published through it.
    pub published: u64,
    /// Publishes that failed on it and were handed to another node.
    pub failovers: u64,
    /// Why it is unhealthy (its last connection error), while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What can go wrong on a bus.
///
/// # Examples
///
/// ```
/// use crosswire::bus::BusError;
/// assert_eq!(BusError::NoHealthyNode.to_string(), "no healthy bus node accepted the message");
/// let err = BusError::Subscription { channel: "ws:chat".into(), message: "timeout".into() };
/// assert_eq!(err.to_string(), "subscription failed on channel ws:chat: timeout");
/// assert_eq!(BusError::Closed.to_string(), "bus closed");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No bus node could take the message (all down or refusing).
    #[error("no healthy bus node accepted the message")]
    NoHealthyNode,
    /// A publish failed on every node it was tried on.
    #[error("publish failed: {0}")]
    Publish(String),
    /// A subscribe or unsubscribe failed.
    #[error("subscription failed on channel {channel}: {message}")]
    Subscription {
        /// The channel.
        channel: String,
        /// Why.
        message: String,
    },
    /// The bus was closed.
    #[error("bus closed")]
    Closed,
    /// The message was written to a bus node that stopped answering: it
    /// is delivered if that node comes back, lost if it does not (it is not
    /// sent again elsewhere, which could deliver it twice).
    #[error("publish in doubt: {0}")]
    InDoubt(String),
}

/// A pub/sub transport between nodes.
///
/// Contract:
/// * [`publish`](Bus::publish) takes the message **when it is called**:
///   messages published one after another from one task are handed to the
///   transport in that order. The returned future only reports the outcome;
///   dropping it does not cancel the publish.
/// * [`subscribe`](Bus::subscribe) resolves once the subscription is
///   confirmed, so that messages published after that reach this endpoint.
/// * [`take_incoming`](Bus::take_incoming) yields the receiving end once; the
///   node that owns the bus reads every message of every subscribed channel
///   from it, including its own publications (the node skips those).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use crosswire::bus::{Bus, BusError, BusMessage};
/// use futures_util::future::BoxFuture;
/// use tokio::sync::mpsc;
///
/// /// A bus that only delivers to itself: publications on subscribed
/// /// channels come straight back.
/// struct Loopback {
///     tx: mpsc::Sender<BusMessage>,
///     rx: std::sync::Mutex<Option<mpsc::Receiver<BusMessage>>>,
///     channels: std::sync::Mutex<Vec<String>>,
/// }
///
/// impl Bus for Loopback {
///     fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
///         let subscribed = self.channels.lock().map_or(false, |c| c.iter().any(|c| c == channel));
///         let result = if subscribed {
///             self.tx
///                 .try_send(BusMessage { channel: channel.into(), payload })
///                 .map_err(|e| BusError::Publish(e.to_string()))
///         } else {
///             Ok(())
///         };
///         Box::pin(async move { result })
///     }
///     fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
///         if let Ok(mut c) = self.channels.lock() {
///             c.push(channel.to_owned());
///         }
///         Box::pin(async { Ok(()) })
///     }
///     fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
///         if let Ok(mut c) = self.channels.lock() {
///             c.retain(|c| c != channel);
///         }
///         Box::pin(async { Ok(()) })
///     }
///     fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>> {
///         self.rx.lock().ok()?.take()
///     }
/// }
///
/// let (tx, rx) = mpsc::channel(16);
/// let bus = Loopback { tx, rx: std::sync::Mutex::new(Some(rx)), channels: Default::default() };
/// assert!(!bus.redundant());
/// assert!(bus.health().healthy);
/// let node = crosswire::Node::builder().server_name("n1").bus(bus).build()?;
/// node.ready().await;
/// assert_eq!(node.subscribed_channels(), ["csbp:server_bridge", "ws:broadcast", "ws:private_socket"]);
/// # Ok(())
/// # }
/// ```
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `channel`.
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>>;

    /// Subscribes to `channel`; resolves when confirmed.
    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>>;

    /// Unsubscribes from `channel`; resolves when confirmed.
    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>>;

    /// The receiving end of this endpoint; `None` after the first call.
    ///
    /// Bound the queue in messages (the channel's capacity) and in bytes: a
    /// [`ByteBudget`] whose [`Charge`] is attached to each payload counts a
    /// message until the node has handled it and dropped it.
    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>>;

    /// Whether this bus publishes every message twice (on two transport
    /// nodes) for redundancy; the node then tags each envelope with a message
    /// id so receivers can drop the second copy.
    fn redundant(&self) -> bool {
        false
    }

    /// The bus's health and loss counters, for the node's health endpoint
    /// and metrics. The default: healthy, no nodes, nothing lost.
    fn health(&self) -> BusHealth {
        BusHealth {
            healthy: true,
            ..BusHealth::default()
        }
    }

    /// The room history the nodes on this bus share, when the bus keeps
    /// one ([`MemoryBus`] does: its hub's, in memory; the Redis bus keeps it
    /// in Redis). The default: none, and a node with
    /// [`history`](crate::NodeBuilder::history) refuses to build on such a
    /// bus.
    fn history(&self) -> Option<crate::history::SharedHistory> {
        None
    }

    /// Stops the bus (closes connections, ends background tasks).
    fn close(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
