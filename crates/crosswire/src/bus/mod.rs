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
//!   Redis nodes, wire-compatible with the original's cluster.

mod memory;

pub use memory::{MemoryBus, MemoryHub};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One message received from the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The channel it was published on.
    pub channel: Arc<str>,
    /// The payload, exactly as published.
    pub payload: Bytes,
}

/// Health of a bus and of each of its transport nodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BusHealth {
    /// Whether messages can be published at all.
    pub healthy: bool,
    /// One entry per transport node (e.g. per Redis node); empty for buses
    /// without nodes.
    pub nodes: Vec<BusNodeHealth>,
}

/// Health of one transport node of a bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
}

/// What can go wrong on a bus.
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
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` on `channel`.
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>>;

    /// Subscribes to `channel`; resolves when confirmed.
    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>>;

    /// Unsubscribes from `channel`; resolves when confirmed.
    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>>;

    /// The receiving end of this endpoint; `None` after the first call.
    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>>;

    /// Whether this bus publishes every message twice (on two transport
    /// nodes) for redundancy; the node then tags each envelope with a message
    /// id so receivers can drop the second copy.
    fn redundant(&self) -> bool {
        false
    }

    /// The bus's health, for the node's health endpoint and metrics.
    fn health(&self) -> BusHealth {
        BusHealth {
            healthy: true,
            nodes: Vec::new(),
        }
    }

    /// Stops the bus (closes connections, ends background tasks).
    fn close(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
