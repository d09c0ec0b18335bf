//! The bus itself: node list, routing of publishes, desired channel set,
//! events and counters.

use crate::config::RedisBusConfig;
use crate::error::RedisBusError;
use crate::events::{ConnKind, HealthEvent, SubscriptionErrorEvent};
use crate::job::Counters;
use crate::node_id::NodeId;
use crate::redis_node::{NodeShared, NodeStatus};
use crate::shared::{Desired, Shared};
use crate::{publisher, subscriber};
use bytes::Bytes;
use crosswire::bus::{Bus, BusError, BusMessage, ByteBudget};
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Counters of a [`RedisBus`], from [`RedisBus::stats`]. They only grow.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
/// use crosswire_redis::{RedisBus, RedisBusConfig};
/// // Nothing listens on port 1: the node stays down and is retried in the background.
/// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
/// let stats = bus.stats();
/// assert_eq!(stats.published, 0);
/// assert_eq!(stats.received, 0);
/// assert_eq!(serde_json::to_value(stats).map(|v| v["dropped"].clone()).ok(), Some(0.into()));
/// # crosswire::bus::Bus::close(&bus).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisBusStats {
    /// PUBLISH commands acknowledged by a Redis node (a redundant publish
    /// counts each copy).
    pub published: u64,
    /// Publish attempts that failed on one node (error, refusal, full queue
    /// or no answer within `ping_timeout`) and were handed to another.
    pub publish_failovers: u64,
    /// [`publish`](Bus::publish) calls that resolved with an error (no node
    /// took the message).
    pub publish_failures: u64,
    /// Messages received from Redis (all nodes, duplicates included).
    pub received: u64,
    /// Received messages dropped because the receive queue was full.
    pub dropped: u64,
    /// Successful reconnections of publisher and subscriber connections.
    pub reconnects: u64,
    /// Subscription changes reported to the subscription error handlers.
    pub subscription_errors: u64,
    /// Publishes written to a Redis node that then stopped answering
    /// (frozen, cut off) within `ping_timeout`: not sent again elsewhere,
    /// so never delivered twice; delivered if that node comes back.
    pub publish_in_doubt: u64,
    /// Times a Redis node's publisher stalled: a batch of PUBLISHes
    /// unanswered for `stall_timeout`, which takes it out of rotation.
    pub publish_stalls: u64,
}

/// Stops the bus when the last [`RedisBus`] handle is dropped.
struct Handle {
    shared: Arc<Shared>,
    /// Room histories, in Redis (see `history.rs`).
    history: Arc<crate::history::RedisHistory>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.cancel.cancel();
    }
}

/// A [`Bus`] over any number of independent Redis nodes, wire-compatible with
/// the original's cluster (`docs/protocol.md` §6).
///
/// Per node it keeps one publisher connection and one subscriber connection,
/// each reconnecting with jittered backoff; the subscriber re-subscribes the
/// bus's whole channel set after every reconnection. A node is a *publish
/// target* only while its publisher is up and answers PING within
/// `ping_timeout` **and** its subscriber has confirmed the channel set, so a
/// node that comes back (or is added) is used only once it can deliver this
/// endpoint's own messages back to it.
///
/// Each publish goes to one target chosen by the [`Strategy`] (two with
/// [`RedisBusConfig::redundant`]). A copy that fails — error, or no answer
/// within `ping_timeout` — is handed to the next target in configuration
/// order; the publish fails only when no node took it. Delivery is therefore
/// at least once: a copy that timed out on a frozen node is delivered again
/// by that node if it resumes.
///
/// Cloning gives another handle to the same endpoint (for instance one to
/// hand to a [`Node`](crosswire::Node) and one to watch health); the bus stops
/// with [`Bus::close`] or when the last handle is dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_redis::{RedisBus, RedisBusConfig, Strategy};
///
/// let bus = RedisBus::connect(RedisBusConfig {
///     nodes: vec!["redis://127.0.0.1:6379".into(), "redis://127.0.0.1:6380".into()],
///     strategy: Strategy::RoundRobin,
///     server_name: Some("server-a".into()),
///     ..RedisBusConfig::default()
/// })
/// .await?;
/// bus.on_health_change(|e| eprintln!("{}:{} {:?} healthy={}", e.host, e.port, e.kind, e.is_healthy));
/// let node = crosswire::Node::builder().server_name("server-a").bus(bus.clone()).build()?;
/// # let _ = node; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBus {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("nodes", &self.nodes())
            .field("closed", &self.shared().is_closed())
            .finish()
    }
}

impl RedisBus {
    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Creates the bus and starts the connections of every configured node.
    ///
    /// Resolves once every node's first connection attempt has ended (a few
    /// round trips when Redis is up; at most about `2 × ping_timeout` per
    /// connection when it is not), so publishing can start right away. A node
    /// that is down does not make this fail: it is retried in the background
    /// and used once it is up. Meanwhile it is logged at warn level (at once,
    /// then every [`warn_interval`](RedisBusConfig::warn_interval)), its
    /// [`NodeStatus::error`] says why, and [`Bus::health`] reports it
    /// unhealthy (the whole bus when no node is usable). Fails on an empty
    /// node list or an invalid URL.
    /// Must be called inside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), crosswire_redis::RedisBusError> {
    /// let bus = crosswire_redis::RedisBus::connect(
    ///     crosswire_redis::RedisBusConfig::new(["redis://127.0.0.1:6379"]),
    /// )
    /// .await?;
    /// assert_eq!(bus.node_count(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn connect(config: RedisBusConfig) -> Result<RedisBus, RedisBusError> {
        if config.nodes.is_empty() {
            return Err(RedisBusError::NoNodes);
        }
        let urls = config.nodes.clone();
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
        let incoming_bytes = ByteBudget::new(config.incoming_bytes);
        let shared = Arc::new(Shared {
            config,
            nodes: RwLock::new(Arc::new(Vec::new())),
            next_id: AtomicU64::new(0),
            desired: Mutex::new(Desired::default()),
            desired_tx: watch::Sender::new(0),
            incoming_tx: RwLock::new(Some(incoming_tx)),
            incoming_bytes,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            rr: AtomicUsize::new(0),
            health_handlers: RwLock::new(Vec::new()),
            subscription_error_handlers: RwLock::new(Vec::new()),
            health_gen: watch::Sender::new(0),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            closed: AtomicBool::new(false),
            stall_gate: Mutex::new(()),
        });
        let bus = RedisBus {
            handle: Arc::new(Handle {
                shared: shared.clone(),
                history: Arc::new(crate::history::RedisHistory::new(shared.clone())),
            }),
        };
        // Validate every URL before starting anything.
        for url in &urls {
            NodeShared::new(
                NodeId::new(0),
                url,
                &shared.config,
                CancellationToken::new(),
            )?;
        }
        let mut started = Vec::with_capacity(urls.len());
        for url in &urls {
            started.push(start_node(&shared, url)?);
        }
        shared.wait_attempted(&started).await;
        Ok(bus)
    }

    /// Adds a handler called on every health change of any connection (the
    /// original's `onRedisHealthChange`). Handlers run on the bus's tasks:
    /// keep them short. A panicking handler is caught and logged. A handler
    /// that owns a clone of this `RedisBus` keeps the bus alive: stop such a
    /// bus with [`Bus::close`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(bus: &crosswire_redis::RedisBus) {
    /// bus.on_health_change(|e| {
    ///     if !e.is_healthy {
    ///         eprintln!("redis {}:{} {:?} down: {:?}", e.host, e.port, e.kind, e.error);
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on_health_change(&self, f: impl Fn(HealthEvent) + Send + Sync + 'static) {
        self.shared().health_handlers.write().push(Arc::new(f));
    }

    /// Adds a handler called when a node did not confirm a subscription
    /// change within `ping_timeout` (the original's
    /// `onRedisSubscriptionError`). The bus keeps the change pending and
    /// applies it when the node answers or reconnects.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(bus: &crosswire_redis::RedisBus) {
    /// bus.on_subscription_error(|e| eprintln!("{:?} {} on {}:{}: {}", e.event, e.channel, e.host, e.port, e.error));
    /// # }
    /// ```
    pub fn on_subscription_error(
        &self,
        f: impl Fn(SubscriptionErrorEvent) + Send + Sync + 'static,
    ) {
        self.shared()
            .subscription_error_handlers
            .write()
            .push(Arc::new(f));
    }

    /// Nodes whose connection of the given kind is healthy (the original's
    /// `getHealthyRedisInstancesCount`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// use crosswire_redis::ConnKind;
    /// println!("{} of {} publishers up", bus.healthy_count(ConnKind::Publisher), bus.node_count());
    /// assert_eq!(bus.healthy_count(ConnKind::Publisher), 0);
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn healthy_count(&self, kind: ConnKind) -> usize {
        self.shared()
            .nodes()
            .iter()
            .filter(|n| n.healthy(kind))
            .count()
    }

    /// Nodes of this bus (the original's `getRedisInstancesCount`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// assert_eq!(bus.node_count(), 1);
    /// let id = bus.add_node("redis://127.0.0.1:2").await?;
    /// assert_eq!(bus.node_count(), 2);
    /// bus.remove_node(id).await;
    /// assert_eq!(bus.node_count(), 1);
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn node_count(&self) -> usize {
        self.shared().nodes().len()
    }

    /// Adds a Redis node at runtime (the original's `addRedisInstance`) and
    /// resolves once its first connection attempt ended.
    ///
    /// The node becomes a publish target only once its subscriber has
    /// confirmed every channel of the bus, so this endpoint never publishes
    /// there before it can receive from there (the original made a node
    /// selectable on `connect`, before it was subscribed). Other endpoints
    /// must add the node too, ideally before anyone publishes on it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// let id = bus.add_node("redis://127.0.0.1:2").await?;
    /// assert_eq!(id.get(), 1);
    /// assert_eq!(bus.node_count(), 2);
    /// assert!(bus.add_node("not a url").await.is_err());
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add_node(&self, url: &str) -> Result<NodeId, RedisBusError> {
        let node = start_node(self.shared(), url)?;
        self.shared()
            .wait_attempted(std::slice::from_ref(&node))
            .await;
        Ok(node.id)
    }

    /// Removes a node: stops its connections and hands the publishes queued
    /// on it to other nodes. Resolves once its tasks ended; false if there is
    /// no such node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// if let Some(first) = bus.nodes().first() {
    ///     assert!(bus.remove_node(first.id).await);
    /// }
    /// assert_eq!(bus.node_count(), 0);
    /// assert!(!bus.remove_node(crosswire_redis::NodeId::new(7)).await);
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_node(&self, id: NodeId) -> bool {
        let shared = self.shared();
        let node = {
            let mut nodes = shared.nodes.write();
            let Some(pos) = nodes.iter().position(|n| n.id == id) else {
                return false;
            };
            let mut list: Vec<_> = nodes.iter().cloned().collect();
            let node = list.remove(pos);
            *nodes = Arc::new(list);
            node
        };
        node.removed.store(true, Ordering::Release);
        node.progress.send_modify(|p| p.live = false);
        node.cancel.cancel();
        let tasks = std::mem::take(&mut *node.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        node.pub_healthy.store(false, Ordering::Release);
        node.sub_healthy.store(false, Ordering::Release);
        shared.bump_health();
        tracing::debug!(node = %node.addr(), id = %id, "redis node removed");
        true
    }

    /// A snapshot of every node, in configuration order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// for n in bus.nodes() {
    ///     println!("{} {}:{} target={} latency={:?}", n.id, n.host, n.port, n.publish_target, n.latency);
    /// }
    /// assert_eq!(bus.nodes()[0].url, "redis://127.0.0.1:1");
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.shared().nodes().iter().map(|n| n.status()).collect()
    }

    /// The bus's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
    /// use crosswire_redis::{RedisBus, RedisBusConfig};
    /// // Nothing listens on port 1: the node stays down and is retried in the background.
    /// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
    /// let stats = bus.stats();
    /// println!("{} published, {} failed over", stats.published, stats.publish_failovers);
    /// assert_eq!(stats.publish_failures, 0);
    /// # crosswire::bus::Bus::close(&bus).await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> RedisBusStats {
        let c = &self.shared().counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisBusStats {
            published: get(&c.published),
            publish_failovers: get(&c.failovers),
            publish_failures: get(&c.failures),
            received: get(&c.received),
            dropped: get(&c.dropped),
            reconnects: get(&c.reconnects),
            subscription_errors: get(&c.subscription_errors),
            publish_in_doubt: get(&c.in_doubt),
            publish_stalls: get(&c.stalls),
        }
    }

    /// Waits until at least `n` nodes are publish targets (or the bus is
    /// closed, then `Err`). Wrap it in a timeout when Redis may be down.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(bus: &crosswire_redis::RedisBus) {
    /// use std::time::Duration;
    /// let ready = tokio::time::timeout(Duration::from_secs(5), bus.wait_for_publish_targets(2)).await;
    /// # let _ = ready; }
    /// ```
    pub async fn wait_for_publish_targets(&self, n: usize) -> Result<(), RedisBusError> {
        let shared = self.shared();
        let mut rx = shared.health_gen.subscribe();
        let _ = rx
            .wait_for(|_| {
                shared.is_closed() || shared.nodes().iter().filter(|n| n.is_target()).count() >= n
            })
            .await;
        if shared.is_closed() {
            Err(RedisBusError::Closed)
        } else {
            Ok(())
        }
    }
}

impl Bus for RedisBus {
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        self.shared().publish(channel, payload)
    }

    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.shared().change_subscription(channel, true)
    }

    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.shared().change_subscription(channel, false)
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>> {
        self.shared().incoming_rx.lock().take()
    }

    fn redundant(&self) -> bool {
        self.shared().config.redundant
    }

    /// Room histories kept in Redis: each room on one of the bus's nodes
    /// (see [`NodeBuilder::history`](crosswire::NodeBuilder::history)).
    fn history(&self) -> Option<crosswire::history::SharedHistory> {
        Some(crosswire::history::SharedHistory::Backend(
            self.handle.history.clone(),
        ))
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared().clone();
        Box::pin(async move { shared.shutdown().await })
    }

    fn health(&self) -> crosswire::bus::BusHealth {
        let nodes: Vec<crosswire::bus::BusNodeHealth> = self
            .nodes()
            .into_iter()
            .map(|n| crosswire::bus::BusNodeHealth {
                name: n.url,
                healthy: n.publish_target,
                latency_ms: n.latency.map(|d| d.as_secs_f64() * 1000.0),
                published: n.published,
                failovers: n.failovers,
                error: n.error,
            })
            .collect();
        let stats = self.stats();
        crosswire::bus::BusHealth {
            healthy: nodes.iter().any(|n| n.healthy),
            nodes,
            publish_failures: stats.publish_failures,
            dropped: stats.dropped,
            reconnects: stats.reconnects,
            in_doubt: stats.publish_in_doubt,
        }
    }
}

/// Creates, registers and starts a node.
fn start_node(shared: &Arc<Shared>, url: &str) -> Result<Arc<NodeShared>, RedisBusError> {
    let this = shared;
    if this.is_closed() {
        return Err(RedisBusError::Closed);
    }
    let id = NodeId::new(this.next_id.fetch_add(1, Ordering::Relaxed));
    let (node, jobs) = NodeShared::new(id, url, &this.config, this.cancel.child_token())?;
    {
        let mut nodes = this.nodes.write();
        let mut list = Vec::with_capacity(nodes.len() + 1);
        list.extend(nodes.iter().cloned());
        list.push(node.clone());
        *nodes = Arc::new(list);
    }
    let p = tokio::spawn(publisher::run(this.clone(), node.clone(), jobs));
    let s = tokio::spawn(subscriber::run(this.clone(), node.clone()));
    node.tasks.lock().extend([p, s]);
    this.bump_health();
    tracing::debug!(node = %node.addr(), id = %id, "redis node added");
    Ok(node)
}
