//! The bus itself: node list, routing of publishes, desired channel set,
//! events and counters.

use crate::config::{RedisBusConfig, Strategy};
use crate::error::RedisBusError;
use crate::events::{
    ConnKind, HealthEvent, HealthEventKind, SubscriptionErrorEvent, SubscriptionOp,
};
use crate::redis_node::{NodeId, NodeShared, NodeStatus};
use crate::{publisher, select, subscriber};
use bytes::Bytes;
use crosswire::bus::{Bus, BusError, BusMessage, ByteBudget, Charge};
use futures_util::future::{join_all, BoxFuture};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type HealthHandler = Arc<dyn Fn(HealthEvent) + Send + Sync>;
type SubscriptionErrorHandler = Arc<dyn Fn(SubscriptionErrorEvent) + Send + Sync>;

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
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) subscription_errors: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One copy of one publish, on its way to a node.
pub(crate) struct Job {
    pub(crate) channel: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) group: Arc<Group>,
    /// When the current attempt started (the copy was queued on its node).
    pub(crate) attempt_start: Instant,
    /// The payload's bytes in the publish queue of the node it is queued on.
    pub(crate) charge: Option<Charge>,
}

/// The copies of one publish call, and its outcome.
pub(crate) struct Group {
    tx: Mutex<Option<oneshot::Sender<Result<(), BusError>>>>,
    /// Copies not yet settled as failed.
    pending: AtomicUsize,
    /// Nodes any copy was sent to (a failover goes elsewhere).
    used: Mutex<Vec<NodeId>>,
}

impl Group {
    /// Claims `node` for a copy; false if some copy already went there.
    fn claim(&self, node: NodeId) -> bool {
        let mut used = self.used.lock();
        if used.contains(&node) {
            false
        } else {
            used.push(node);
            true
        }
    }

    pub(crate) fn succeed(&self) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Ok(()));
        }
    }

    fn fail(&self, counters: &Counters, error: BusError) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.tx.lock().take() {
                bump(&counters.failures);
                let _ = tx.send(Err(error));
            }
        }
    }
}

/// The channel set every subscriber should hold, versioned.
#[derive(Default)]
struct Desired {
    channels: HashSet<Arc<str>>,
    version: u64,
}

/// State shared by the bus handle and the node tasks.
pub(crate) struct Shared {
    pub(crate) config: RedisBusConfig,
    nodes: RwLock<Arc<Vec<Arc<NodeShared>>>>,
    next_id: AtomicU64,
    desired: Mutex<Desired>,
    pub(crate) desired_tx: watch::Sender<u64>,
    incoming_tx: RwLock<Option<mpsc::Sender<BusMessage>>>,
    /// The payload bytes of the messages received and not yet handled.
    pub(crate) incoming_bytes: ByteBudget,
    incoming_rx: Mutex<Option<mpsc::Receiver<BusMessage>>>,
    rr: AtomicUsize,
    health_handlers: RwLock<Vec<HealthHandler>>,
    subscription_error_handlers: RwLock<Vec<SubscriptionErrorHandler>>,
    /// Bumped on every health change, node change and first connection
    /// attempt.
    health_gen: watch::Sender<u64>,
    pub(crate) counters: Counters,
    pub(crate) cancel: CancellationToken,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn nodes(&self) -> Arc<Vec<Arc<NodeShared>>> {
        self.nodes.read().clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn bump_health(&self) {
        self.health_gen.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn incoming_sender(&self) -> Option<mpsc::Sender<BusMessage>> {
        self.incoming_tx.read().clone()
    }

    /// The desired channel set and its version.
    pub(crate) fn desired_snapshot(&self) -> (u64, HashSet<Arc<str>>) {
        let d = self.desired.lock();
        (d.version, d.channels.clone())
    }

    /// Creates, registers and starts a node.
    fn add_node(self: &Arc<Self>, url: &str) -> Result<Arc<NodeShared>, RedisBusError> {
        if self.is_closed() {
            return Err(RedisBusError::Closed);
        }
        let id = NodeId::new(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (node, jobs) = NodeShared::new(id, url, &self.config, self.cancel.child_token())?;
        {
            let mut nodes = self.nodes.write();
            let mut list = Vec::with_capacity(nodes.len() + 1);
            list.extend(nodes.iter().cloned());
            list.push(node.clone());
            *nodes = Arc::new(list);
        }
        let p = tokio::spawn(publisher::run(self.clone(), node.clone(), jobs));
        let s = tokio::spawn(subscriber::run(self.clone(), node.clone()));
        node.tasks.lock().extend([p, s]);
        self.bump_health();
        tracing::debug!(node = %node.addr(), id = %id, "redis node added");
        Ok(node)
    }

    /// Waits (bounded) until the first connection attempts of `nodes` ended.
    async fn wait_attempted(&self, nodes: &[Arc<NodeShared>]) {
        let limit = self.config.timeout() * 4 + Duration::from_secs(1);
        let mut rx = self.health_gen.subscribe();
        let _ = tokio::time::timeout(
            limit,
            rx.wait_for(|_| self.is_closed() || nodes.iter().all(|n| n.attempted())),
        )
        .await;
    }

    // ----- health ------------------------------------------------------------

    /// Sets a health flag; on a change, notifies the handlers.
    pub(crate) fn set_health(
        &self,
        node: &NodeShared,
        kind: ConnKind,
        healthy: bool,
        event: HealthEventKind,
        error: Option<String>,
    ) {
        let changed = node.flag(kind).swap(healthy, Ordering::AcqRel) != healthy;
        if !healthy {
            // Recorded even without a change: the latest reason is shown.
            let mut trouble = node.trouble.lock();
            trouble.since.get_or_insert_with(std::time::Instant::now);
            if let Some(error) = &error {
                trouble.error = Some(error.clone());
            }
            if changed {
                // Logged at warn level below.
                trouble.warned = Some(std::time::Instant::now());
            }
        }
        if !changed {
            return;
        }
        self.bump_health();
        if node.removed.load(Ordering::Acquire) || self.is_closed() {
            return;
        }
        if healthy && node.is_target() {
            self.recovered(node);
        }
        let nodes = self.nodes();
        let count = |k| nodes.iter().filter(|n| n.healthy(k)).count();
        let info = HealthEvent {
            host: node.host.clone(),
            port: node.port,
            server_name: self.config.server_name.clone(),
            event,
            is_healthy: healthy,
            error,
            healthy_subscriber_count: count(ConnKind::Subscriber),
            healthy_publisher_count: count(ConnKind::Publisher),
            total_node_count: nodes.len(),
            kind,
        };
        if healthy {
            tracing::info!(node = %node.addr(), ?kind, ?event, "redis connection healthy");
        } else {
            tracing::warn!(
                node = %node.addr(), ?kind, ?event, error = info.error.as_deref().unwrap_or(""),
                "redis connection unhealthy"
            );
        }
        let handlers = self.health_handlers.read().clone();
        for handler in handlers {
            let info = info.clone();
            if catch_unwind(AssertUnwindSafe(|| handler(info))).is_err() {
                tracing::error!("a redis health handler panicked");
            }
        }
    }

    /// Records that a connection attempt to `node` failed. The first failure
    /// is logged at warn level at once, then one every `warn_interval` while
    /// the node stays unusable; the others at debug level.
    pub(crate) fn connect_failed(&self, node: &NodeShared, kind: ConnKind, error: &str) {
        self.bump_health();
        if node.removed.load(Ordering::Acquire) || self.is_closed() {
            return;
        }
        let now = std::time::Instant::now();
        let down_for = {
            let mut trouble = node.trouble.lock();
            trouble.error = Some(error.to_owned());
            let since = *trouble.since.get_or_insert(now);
            let due = trouble
                .warned
                .is_none_or(|at| now.duration_since(at) >= self.config.warn_interval);
            if due {
                trouble.warned = Some(now);
            }
            due.then(|| now.duration_since(since))
        };
        let Some(down_for) = down_for else {
            tracing::debug!(node = %node.addr(), ?kind, error, "redis connection failed");
            return;
        };
        let nodes = self.nodes();
        let usable = nodes.iter().filter(|n| n.is_target()).count();
        let down_s = down_for.as_secs();
        if usable == 0 {
            tracing::warn!(
                node = %node.addr(), url = %node.url, ?kind, error, down_s,
                "redis unreachable: no redis node of the bus is usable, so this server \
                 cannot reach the other servers nor hear from them; retrying"
            );
        } else {
            tracing::warn!(
                node = %node.addr(), url = %node.url, ?kind, error, down_s, usable,
                nodes = nodes.len(),
                "redis node unreachable: publishing through the other nodes; retrying"
            );
        }
    }

    /// `node` is a publish target again: forgets its trouble, and says so if
    /// it was logged.
    fn recovered(&self, node: &NodeShared) {
        let trouble = std::mem::take(&mut *node.trouble.lock());
        if let (Some(since), Some(_)) = (trouble.since, trouble.warned) {
            tracing::info!(
                node = %node.addr(),
                down_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "redis node usable again"
            );
        }
    }

    /// Reports a subscription change a node did not confirm.
    pub(crate) fn subscription_error(
        &self,
        node: &NodeShared,
        channel: &str,
        op: SubscriptionOp,
        error: &str,
    ) {
        bump(&self.counters.subscription_errors);
        tracing::warn!(node = %node.addr(), channel, ?op, error, "redis subscription change not confirmed");
        if node.removed.load(Ordering::Acquire) || self.is_closed() {
            return;
        }
        let info = SubscriptionErrorEvent {
            host: node.host.clone(),
            port: node.port,
            server_name: self.config.server_name.clone(),
            channel: channel.to_owned(),
            event: op,
            error: error.to_owned(),
        };
        let handlers = self.subscription_error_handlers.read().clone();
        for handler in handlers {
            let info = info.clone();
            if catch_unwind(AssertUnwindSafe(|| handler(info))).is_err() {
                tracing::error!("a redis subscription error handler panicked");
            }
        }
    }

    // ----- publishing ----------------------------------------------------------

    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        if self.is_closed() {
            return Box::pin(async { Err(BusError::Closed) });
        }
        let nodes = self.nodes();
        let targets: Vec<&Arc<NodeShared>> = nodes.iter().filter(|n| n.is_target()).collect();
        let latencies: Vec<Duration> = if self.config.strategy == Strategy::Fastest {
            targets
                .iter()
                .map(|n| n.latency().unwrap_or_default())
                .collect()
        } else {
            vec![Duration::ZERO; targets.len()]
        };
        let (first, second) = if self.config.redundant {
            select::pick_two(self.config.strategy, &latencies, &self.rr)
        } else {
            (
                select::pick(self.config.strategy, &latencies, &self.rr),
                None,
            )
        };
        let Some(first) = first.and_then(|i| targets.get(i)) else {
            bump(&self.counters.failures);
            return Box::pin(async { Err(BusError::NoHealthyNode) });
        };
        let second = second.and_then(|i| targets.get(i));
        let mut used = vec![first.id];
        used.extend(second.map(|n| n.id));
        let (tx, rx) = oneshot::channel();
        let group = Arc::new(Group {
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(used.len()),
            used: Mutex::new(used),
        });
        let channel: Arc<str> = channel.into();
        let now = Instant::now();
        if let Some(second) = second {
            let copy = Job {
                channel: channel.clone(),
                payload: payload.clone(),
                group: group.clone(),
                attempt_start: now,
                charge: None,
            };
            self.dispatch(first, copy);
            self.dispatch(
                second,
                Job {
                    channel,
                    payload,
                    group,
                    attempt_start: now,
                    charge: None,
                },
            );
        } else {
            self.dispatch(
                first,
                Job {
                    channel,
                    payload,
                    group,
                    attempt_start: now,
                    charge: None,
                },
            );
        }
        Box::pin(async move { rx.await.unwrap_or(Err(BusError::Closed)) })
    }

    /// Queues a copy on `node`; never waits.
    fn dispatch(&self, node: &NodeShared, mut job: Job) {
        job.attempt_start = Instant::now();
        // Given back to the node it was queued on before, if any.
        job.charge = None;
        match node.jobs_bytes.reserve(job.payload.len()) {
            Some(charge) => job.charge = Some(charge),
            None => {
                self.fail_over(job, node, "publish queue full (bytes)".into());
                return;
            }
        }
        match node.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.fail_over(job, node, "publish queue full".into());
            }
            Err(mpsc::error::TrySendError::Closed(job)) => {
                self.fail_over(job, node, "node removed".into());
            }
        }
    }

    /// Hands a copy that failed on node `failed` to the next publish target
    /// after it in configuration order that no copy of the same publish used
    /// yet; settles it as failed when there is none.
    pub(crate) fn fail_over(&self, job: Job, failed: &NodeShared, reason: String) {
        let from = failed.id;
        if self.is_closed() {
            job.group.fail(&self.counters, BusError::Closed);
            return;
        }
        let nodes = self.nodes();
        let start = nodes.iter().position(|n| n.id == from).map_or(0, |p| p + 1);
        let next = (0..nodes.len())
            .map(|k| &nodes[(start + k) % nodes.len()])
            .find(|n| n.id != from && n.is_target() && job.group.claim(n.id));
        match next {
            Some(node) => {
                bump(&self.counters.failovers);
                bump(&failed.failovers);
                tracing::debug!(from = %from, to = %node.id, %reason, "publish failed over");
                self.dispatch(node, job);
            }
            None => {
                tracing::debug!(from = %from, %reason, "publish failed on every node");
                job.group.fail(
                    &self.counters,
                    BusError::Publish(format!("{reason}; no other healthy node took it")),
                );
            }
        }
    }

    // ----- subscriptions -------------------------------------------------------

    fn change_subscription(
        self: &Arc<Self>,
        channel: &str,
        subscribe: bool,
    ) -> BoxFuture<'static, Result<(), BusError>> {
        if self.is_closed() {
            return Box::pin(async { Err(BusError::Closed) });
        }
        let channel: Arc<str> = channel.into();
        // Watch every node from before the change, so that no error of this
        // change can be missed.
        let watched: Vec<_> = self
            .nodes()
            .iter()
            .map(|n| {
                let rx = n.progress.subscribe();
                let seq = rx.borrow().error_seq;
                (n.addr(), rx, seq)
            })
            .collect();
        let version = {
            let mut d = self.desired.lock();
            let changed = if subscribe {
                d.channels.insert(channel.clone())
            } else {
                d.channels.remove(&channel)
            };
            if changed {
                d.version += 1;
            }
            d.version
        };
        self.desired_tx.send_replace(version);
        let name = channel.to_string();
        let waits = watched.into_iter().map(move |(addr, mut rx, seq)| {
            let channel = channel.clone();
            async move {
                let failed = |p: &crate::redis_node::SubProgress| {
                    p.errors
                        .get(&channel)
                        .filter(|(s, _)| *s > seq)
                        .map(|(_, m)| m.clone())
                };
                let outcome = rx
                    .wait_for(|p| failed(p).is_some() || !p.live || p.synced >= version)
                    .await
                    .ok()
                    .and_then(|p| failed(&p));
                outcome.map(|message| format!("{addr}: {message}"))
            }
        });
        let shared = self.clone();
        Box::pin(async move {
            let errors: Vec<String> = join_all(waits).await.into_iter().flatten().collect();
            if shared.is_closed() {
                return Err(BusError::Closed);
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(BusError::Subscription {
                    channel: name,
                    message: errors.join("; "),
                })
            }
        })
    }

    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        // Let what was already queued reach Redis (bounded), so that a node's
        // last messages — e.g. its leave announcement — are not lost.
        let deadline = tokio::time::Instant::now() + self.config.timeout();
        while tokio::time::Instant::now() < deadline
            && self.nodes().iter().any(|n| {
                n.pub_healthy.load(Ordering::Acquire)
                    && (n.jobs.capacity() < n.jobs.max_capacity()
                        || n.in_flight.load(Ordering::Acquire) > 0)
            })
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.cancel.cancel();
        *self.incoming_tx.write() = None;
        for node in self.nodes().iter() {
            let tasks = std::mem::take(&mut *node.tasks.lock());
            for task in tasks {
                let _ = task.await;
            }
        }
        self.bump_health();
    }
}

/// Stops the bus when the last [`RedisBus`] handle is dropped.
struct Handle {
    shared: Arc<Shared>,
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
        });
        let bus = RedisBus {
            handle: Arc::new(Handle {
                shared: shared.clone(),
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
            started.push(shared.add_node(url)?);
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
        let node = self.shared().add_node(url)?;
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
            })
            .collect();
        let stats = self.stats();
        crosswire::bus::BusHealth {
            healthy: nodes.iter().any(|n| n.healthy),
            nodes,
            publish_failures: stats.publish_failures,
            dropped: stats.dropped,
            reconnects: stats.reconnects,
        }
    }
}
