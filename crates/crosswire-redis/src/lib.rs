//! The Redis bus of crosswire: [`RedisBus`], a [`crosswire`] bus over any
//! number of **independent** Redis nodes, wire-compatible with the original
//! Node.js cluster (websocket-cross-server-adapter).
//!
//! # The model
//!
//! A bus only moves bytes: the [`Node`](crosswire::Node) that owns it encodes
//! envelopes, chooses channels and decodes what arrives. This crate is the
//! transport between the nodes of a cluster:
//!
//! * every endpoint keeps, **per Redis node**, a publisher connection and a
//!   subscriber connection, and subscribes to its whole channel set on
//!   **every** Redis node;
//! * each message is `PUBLISH`ed on **one** Redis node, chosen by a
//!   [`Strategy`] (random, round-robin, fastest) among the healthy ones —
//!   or on two with [`RedisBusConfig::redundant`];
//! * so every endpoint receives every message, whichever node carried it.
//!
//! Redis nodes are neither replicated nor bridged; losing one loses nothing
//! as long as publishes avoid it, which is what health checking is for:
//!
//! * a PING every `ping_interval` with a **real** `ping_timeout`: a frozen
//!   Redis is out of rotation within `ping_timeout` (+ one interval);
//! * a node is a publish target only while its publisher answers **and** its
//!   subscriber has (re)confirmed every channel, so a restarted or newly
//!   added node is used only once it can deliver;
//! * a publish that fails or is not answered in time is retried on the next
//!   healthy node; it fails only if no node takes it;
//! * subscriptions are *reconciled*: `subscribe` / `unsubscribe` change the
//!   desired channel set at once, and each subscriber brings its connection
//!   in line with it, re-subscribing everything after a reconnection. A
//!   subscribe right after an unsubscribe of the same channel therefore
//!   always ends subscribed (a race of the original).
//!
//! Messages published one after another reach a given Redis node in call
//! order; consecutive messages may travel through different nodes (as in the
//! original), and a failed-over message may arrive after later ones.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crosswire::bus::Bus;
//! use crosswire_redis::{RedisBus, RedisBusConfig};
//!
//! let bus = RedisBus::connect(RedisBusConfig::new([
//!     "redis://127.0.0.1:6379",
//!     "redis://127.0.0.1:6380",
//! ]))
//! .await?;
//! let mut incoming = bus.take_incoming().expect("first call");
//! bus.subscribe("csbp:server_bridge").await?;
//! bus.publish("csbp:server_bridge", "hello".into()).await?;
//! let message = incoming.recv().await.expect("bus open");
//! assert_eq!(&message.payload[..], b"hello");
//! # Ok(()) }
//! ```

mod bus;
mod cluster;
mod config;
mod error;
mod events;
mod history;
mod job;
mod node_id;
mod publisher;
mod redis_node;
mod select;
mod shared;
mod subscriber;
mod tls;

pub use bus::{RedisBus, RedisBusStats};
pub use cluster::{key_slot, RedisClusterBus, RedisClusterConfig, RedisClusterStats};
pub use config::{RedisBusConfig, Strategy, DEFAULT_PUBLISH_QUEUE_BYTES};
pub use crosswire;
pub use error::RedisBusError;
pub use events::{ConnKind, HealthEvent, HealthEventKind, SubscriptionErrorEvent, SubscriptionOp};
pub use node_id::NodeId;
pub use redis_node::NodeStatus;
pub use tls::RedisTls;

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
