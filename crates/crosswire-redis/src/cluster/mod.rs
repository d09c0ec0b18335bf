//! [`RedisClusterBus`]: a bus over one Redis Cluster, with sharded pub/sub
//! (Redis 7: `SPUBLISH` / `SSUBSCRIBE`).

mod config;
mod publisher;
mod shard;
mod topology;

pub use config::RedisClusterConfig;
pub use topology::key_slot;

use crate::RedisBusError;
use bytes::Bytes;
use crosswire::bus::{Bus, BusError, BusHealth, BusMessage, BusNodeHealth, ByteBudget};
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use redis::{ConnectionAddr, ConnectionInfo, ProtocolVersion};
use serde::Serialize;
use shard::Shard;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;
use topology::Topology;

/// Shortest time between two slot-map refreshes.
const REFRESH_SPACING: Duration = Duration::from_millis(100);

/// Counters of a [`RedisClusterBus`], from [`RedisClusterBus::stats`].
/// They only grow.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
/// use crosswire_redis::{RedisClusterBus, RedisClusterConfig};
/// // Nothing listens on port 1: the bus keeps looking for the cluster.
/// let bus = RedisClusterBus::connect(RedisClusterConfig::new(["redis://127.0.0.1:1"])).await?;
/// let stats = bus.stats();
/// assert_eq!((stats.published, stats.received, stats.moved_subscriptions), (0, 0, 0));
/// # crosswire::bus::Bus::close(&bus).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisClusterStats {
    /// SPUBLISH commands acknowledged by a master.
    pub published: u64,
    /// Publish attempts redirected or refused for a while (MOVED, ASK,
    /// TRYAGAIN, CLUSTERDOWN, ...) and tried again.
    pub redirects: u64,
    /// [`publish`](Bus::publish) calls that resolved with an error.
    pub publish_failures: u64,
    /// Messages received.
    pub received: u64,
    /// Received messages dropped because the receive queue was full.
    pub dropped: u64,
    /// Subscriber connections lost, plus [`moved_subscriptions`](Self::moved_subscriptions):
    /// each is a window in which messages may be lost for this node.
    pub reconnects: u64,
    /// Shard channels the cluster unsubscribed on its own (their slot left
    /// the master: migration or failover) and that the bus subscribed again
    /// at the new owner.
    pub moved_subscriptions: u64,
    /// Slot maps read (`CLUSTER SLOTS`).
    pub topology_refreshes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    published: AtomicU64,
    redirects: AtomicU64,
    failures: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    moved: AtomicU64,
    refreshes: AtomicU64,
}

/// The state shared by the bus handle and its tasks.
pub(crate) struct Inner {
    config: RedisClusterConfig,
    /// The first seed's connection settings (credentials, TLS), for every
    /// node; the seeds' `host:port`.
    template: ConnectionInfo,
    seeds: Vec<String>,
    topology: RwLock<Arc<Topology>>,
    refresh: Notify,
    /// Every channel of the bus, with its slot.
    desired: Mutex<HashMap<Arc<str>, u16>>,
    shards: Mutex<HashMap<String, Arc<Shard>>>,
    /// Channel → the master that confirmed its subscription.
    confirmed: Mutex<HashMap<Arc<str>, String>>,
    /// Bumped on every change of `confirmed`.
    confirm_gen: watch::Sender<u64>,
    incoming_tx: mpsc::Sender<BusMessage>,
    incoming_bytes: ByteBudget,
    incoming_rx: Mutex<Option<mpsc::Receiver<BusMessage>>>,
    publishes: mpsc::Sender<publisher::Job>,
    publish_bytes: ByteBudget,
    seq: AtomicU64,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    fn shard(&self, addr: &str) -> Option<Arc<Shard>> {
        self.shards.lock().get(addr).cloned()
    }

    /// A client for the node at `host:port`, with the seed's settings.
    fn client(&self, addr: &str, protocol: ProtocolVersion) -> Result<redis::Client, String> {
        let (host, port) =
            split_addr(addr).ok_or_else(|| format!("invalid node address {addr:?}"))?;
        let addr = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let settings = self
            .template
            .redis_settings()
            .clone()
            .set_protocol(protocol);
        let info = self
            .template
            .clone()
            .set_addr(addr)
            .set_redis_settings(settings);
        crate::tls::client(info, self.config.tls.as_ref(), addr_shown(&self.template))
            .map_err(|e| e.to_string())
    }

    fn confirm(&self, channel: &Arc<str>, addr: &str) {
        self.confirmed
            .lock()
            .insert(channel.clone(), addr.to_owned());
        self.confirm_gen.send_modify(|g| *g += 1);
    }

    fn unconfirm(&self, channel: &str, addr: &str) {
        let removed = {
            let mut confirmed = self.confirmed.lock();
            if confirmed.get(channel).is_some_and(|a| a == addr) {
                confirmed.remove(channel);
                true
            } else {
                false
            }
        };
        if removed {
            self.confirm_gen.send_modify(|g| *g += 1);
        }
    }

    fn unconfirm_all(&self, addr: &str) {
        self.confirmed.lock().retain(|_, a| a != addr);
        self.confirm_gen.send_modify(|g| *g += 1);
    }

    /// Hands every channel to the shard of its slot's master, starting
    /// shards for new masters and stopping those of masters that left.
    fn assign(self: &Arc<Self>) {
        let topology = self.topology();
        let desired = self.desired.lock();
        let mut shards = self.shards.lock();
        let gone: Vec<String> = shards
            .keys()
            .filter(|a| !topology.masters.contains(a))
            .cloned()
            .collect();
        for addr in gone {
            if let Some(shard) = shards.remove(&addr) {
                tracing::info!(shard = %addr, "redis cluster master left the slot map");
                shard.cancel.cancel();
            }
        }
        let mut wanted: HashMap<&str, HashSet<Arc<str>>> = topology
            .masters
            .iter()
            .map(|m| (m.as_str(), HashSet::new()))
            .collect();
        for (channel, slot) in desired.iter() {
            if let Some(set) = topology.owner(*slot).and_then(|o| wanted.get_mut(o)) {
                set.insert(channel.clone());
            }
        }
        for (addr, set) in wanted {
            let shard = match shards.get(addr) {
                Some(shard) => shard.clone(),
                None => {
                    let shard = Shard::new(addr.to_owned(), self.cancel.child_token());
                    shards.insert(addr.to_owned(), shard.clone());
                    let task = tokio::spawn(shard::run(self.clone(), shard.clone()));
                    *shard.task.lock() = Some(task);
                    shard
                }
            };
            let changed = {
                let mut w = shard.wanted.lock();
                let changed = *w != set;
                *w = set;
                changed
            };
            if changed {
                shard.changed.notify_one();
            }
        }
    }

    /// Reads the slot map from a known master or a seed.
    async fn fetch_topology(&self) -> Result<Topology, String> {
        let mut candidates: Vec<String> = self.topology().masters.clone();
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let t = self.config.t();
        let mut errors = Vec::new();
        for addr in candidates {
            let attempt = async {
                let client = self.client(&addr, ProtocolVersion::RESP2)?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(t))
                    .set_response_timeout(Some(t));
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                let reply = conn
                    .send_packed_command(redis::cmd("CLUSTER").arg("SLOTS"))
                    .await
                    .map_err(|e| e.to_string())?;
                if let redis::Value::ServerError(e) = &reply {
                    return Err(e.to_string());
                }
                let host = split_addr(&addr).map(|(h, _)| h).unwrap_or_default();
                Topology::from_cluster_slots(&reply, &host)
            };
            match time::timeout(t * 3, attempt).await {
                Ok(Ok(topology)) if !topology.masters.is_empty() => return Ok(topology),
                Ok(Ok(_)) => errors.push(format!("{addr}: no slot assigned")),
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!(
                    "{addr}: no answer within {} ms",
                    (t * 3).as_millis()
                )),
            }
        }
        Err(errors.join("; "))
    }

    /// One refresh; true when a map was read.
    async fn refresh_once(self: &Arc<Self>) -> bool {
        match self.fetch_topology().await {
            Ok(topology) => {
                self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                let changed = **self.topology.read() != topology;
                if changed {
                    tracing::info!(
                        masters = ?topology.masters,
                        complete = topology.complete(),
                        "redis cluster slot map"
                    );
                    *self.topology.write() = Arc::new(topology);
                    self.assign();
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis cluster: cannot read the slot map");
                false
            }
        }
    }
}

/// The topology task: refreshes the slot map periodically and on request.
async fn refresher(inner: Arc<Inner>) {
    let mut failures = 0u32;
    let mut last = Instant::now();
    loop {
        let wait = if failures > 0 {
            inner.config.backoff(failures)
        } else {
            inner.config.refresh_interval.max(REFRESH_SPACING)
        };
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => break,
            _ = inner.refresh.notified() => {}
            _ = time::sleep(wait) => {}
        }
        let since = last.elapsed();
        if since < REFRESH_SPACING {
            tokio::select! {
                biased;
                _ = inner.cancel.cancelled() => break,
                _ = time::sleep(REFRESH_SPACING - since) => {}
            }
        }
        last = Instant::now();
        if inner.refresh_once().await {
            failures = 0;
        } else {
            failures = failures.saturating_add(1);
        }
    }
}

/// Stops the bus when the last handle is dropped.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

/// A [`Bus`] over one **Redis Cluster** (Redis 7 or later), with sharded
/// pub/sub: each channel lives on the master owning its hash slot
/// ([`key_slot`]), so the cluster's pub/sub traffic is spread over its
/// masters instead of being copied to every node as with `PUBLISH`.
///
/// * The bus reads the slot map (`CLUSTER SLOTS`) from a seed, then keeps
///   **one subscriber connection per master**, holding the `SSUBSCRIBE`s of
///   the channels of that master's slots (sent in pipelined batches).
/// * Publishes go out as `SPUBLISH` in call order through one queue,
///   pipelined per master; `MOVED` / `ASK` redirections, `TRYAGAIN`,
///   `CLUSTERDOWN` and lost connections are retried (with a fresh slot map)
///   until [`publish_timeout`](RedisClusterConfig::publish_timeout), keeping
///   the order of the publishes of each slot.
/// * When a slot moves to another master (a migration, or a failover that
///   promoted a replica) Redis unsubscribes its shard channels; the bus then
///   reads the slot map again and subscribes them at the new master. A lost
///   subscriber connection is reopened and its channels subscribed again.
///   What is published in between is lost for this node: both are counted in
///   [`BusHealth::reconnects`] (and [`RedisClusterStats`]).
///
/// Room history ([`Bus::history`]) is not offered on the cluster bus yet:
/// a node with history needs [`RedisBus`](crate::RedisBus) or the memory
/// bus.
///
/// Cloning gives another handle to the same endpoint; the bus stops with
/// [`Bus::close`] or when the last handle is dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::Bus;
/// use crosswire_redis::{RedisClusterBus, RedisClusterConfig};
///
/// let bus = RedisClusterBus::connect(RedisClusterConfig::new([
///     "redis://10.0.0.1:7000",
///     "redis://10.0.0.2:7000",
/// ]))
/// .await?;
/// let mut incoming = bus.take_incoming().ok_or("taken")?;
/// bus.subscribe("ws:broadcast").await?;
/// bus.publish("ws:broadcast", "hello".into()).await?;
/// let message = incoming.recv().await.ok_or("closed")?;
/// assert_eq!(&message.payload[..], b"hello");
/// let node = crosswire::Node::builder().server_name("a").bus(bus.clone()).build()?;
/// # let _ = node; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisClusterBus {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for RedisClusterBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterBus")
            .field("masters", &self.masters())
            .finish_non_exhaustive()
    }
}

impl RedisClusterBus {
    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Creates the bus, reads the slot map and connects to the masters.
    ///
    /// Resolves once the first slot map was read and every master's
    /// subscriber connection made its first attempt — or, when no seed
    /// answers, after one round of attempts: the bus then keeps looking for
    /// the cluster in the background and [`Bus::health`] reports it
    /// unhealthy meanwhile. Fails on an empty seed list or an invalid URL.
    /// Must be called inside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use crosswire_redis::{RedisBusError, RedisClusterBus, RedisClusterConfig};
    /// let empty = RedisClusterBus::connect(RedisClusterConfig::default()).await;
    /// assert!(matches!(empty, Err(RedisBusError::NoNodes)));
    /// let invalid = RedisClusterBus::connect(RedisClusterConfig::new(["http://x"])).await;
    /// assert!(matches!(invalid, Err(RedisBusError::InvalidUrl { .. })));
    /// # }
    /// ```
    pub async fn connect(config: RedisClusterConfig) -> Result<RedisClusterBus, RedisBusError> {
        let Some(first) = config.nodes.first() else {
            return Err(RedisBusError::NoNodes);
        };
        let _ = first;
        let mut template = None;
        let mut seeds = Vec::new();
        for url in &config.nodes {
            let shown = crate::redis_node::redact(url);
            let invalid = |message: String| RedisBusError::InvalidUrl {
                url: shown.clone(),
                message,
            };
            crate::tls::check_url(url).map_err(invalid)?;
            let info = redis::Client::open(url.as_str())
                .map_err(|e| invalid(e.to_string()))?
                .get_connection_info()
                .clone();
            let seed = match info.addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    join_addr(host, *port)
                }
                _ => return Err(invalid("a cluster node needs a host and a port".into())),
            };
            // The original issues no CLIENT SETINFO; neither do we.
            let settings = info.redis_settings().clone().set_skip_set_lib_name();
            let info = info.set_redis_settings(settings);
            crate::tls::client(info.clone(), config.tls.as_ref(), &shown)?;
            template.get_or_insert(info);
            seeds.push(seed);
        }
        let Some(template) = template else {
            return Err(RedisBusError::NoNodes);
        };
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
        let (publishes, publish_rx) = mpsc::channel(config.publish_queue.max(1));
        let inner = Arc::new(Inner {
            incoming_bytes: ByteBudget::new(config.incoming_bytes),
            publish_bytes: ByteBudget::new(config.publish_queue_bytes),
            config,
            template,
            seeds,
            topology: RwLock::new(Arc::new(Topology::default())),
            refresh: Notify::new(),
            desired: Mutex::new(HashMap::new()),
            shards: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(HashMap::new()),
            confirm_gen: watch::Sender::new(0),
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            publishes,
            seq: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
            cancel: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        });
        let bus = RedisClusterBus {
            handle: Arc::new(Handle {
                inner: inner.clone(),
            }),
        };
        inner.refresh_once().await;
        let publisher = tokio::spawn(publisher::run(inner.clone(), publish_rx));
        let refresher = tokio::spawn(refresher(inner.clone()));
        inner.tasks.lock().extend([publisher, refresher]);
        // Every master's first connection attempt.
        let shards: Vec<Arc<Shard>> = inner.shards.lock().values().cloned().collect();
        let deadline = Instant::now() + inner.config.t() * 3;
        for shard in shards {
            while !shard.connected.load(Ordering::Acquire)
                && shard.error.lock().is_none()
                && Instant::now() < deadline
            {
                time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(bus)
    }

    /// The masters of the current slot map (`host:port`, sorted).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(bus: crosswire_redis::RedisClusterBus) {
    /// for master in bus.masters() {
    ///     println!("{master}");
    /// }
    /// # }
    /// ```
    pub fn masters(&self) -> Vec<String> {
        self.inner().topology().masters.clone()
    }

    /// The master owning `channel`'s slot in the current slot map.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(bus: crosswire_redis::RedisClusterBus) {
    /// println!("ws:broadcast lives on {:?}", bus.master_of("ws:broadcast"));
    /// # }
    /// ```
    pub fn master_of(&self, channel: &str) -> Option<String> {
        self.inner()
            .topology()
            .owner(key_slot(channel))
            .map(str::to_owned)
    }

    /// Reads the slot map now (it is also read periodically and whenever
    /// the cluster redirects or drops something) and resolves once done;
    /// false when no node answered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(bus: crosswire_redis::RedisClusterBus) {
    /// assert!(bus.refresh_slots().await, "the cluster answers");
    /// # }
    /// ```
    pub async fn refresh_slots(&self) -> bool {
        self.inner().refresh_once().await
    }

    /// The bus's counters.
    ///
    /// # Examples
    ///
    /// See [`RedisClusterStats`].
    pub fn stats(&self) -> RedisClusterStats {
        let c = &self.inner().counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RedisClusterStats {
            published: get(&c.published),
            redirects: get(&c.redirects),
            publish_failures: get(&c.failures),
            received: get(&c.received),
            dropped: get(&c.dropped),
            reconnects: get(&c.reconnects),
            moved_subscriptions: get(&c.moved),
            topology_refreshes: get(&c.refreshes),
        }
    }

    /// Waits until every channel subscribed so far is confirmed by the
    /// master that owns it now, at most `limit`; false on timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(bus: crosswire_redis::RedisClusterBus) {
    /// use std::time::Duration;
    /// assert!(bus.wait_subscribed(Duration::from_secs(5)).await);
    /// # }
    /// ```
    pub async fn wait_subscribed(&self, limit: Duration) -> bool {
        let inner = self.inner().clone();
        let mut rx = inner.confirm_gen.subscribe();
        let done = || {
            let topology = inner.topology();
            let desired = inner.desired.lock();
            let confirmed = inner.confirmed.lock();
            desired.iter().all(|(c, slot)| {
                confirmed
                    .get(c)
                    .is_some_and(|at| topology.owner(*slot) == Some(at.as_str()))
            })
        };
        let wait = async {
            loop {
                if done() {
                    return;
                }
                // Confirmations bump the watch; slot maps do not: look again
                // now and then.
                let _ = time::timeout(Duration::from_millis(50), rx.changed()).await;
            }
        };
        time::timeout(limit, wait).await.is_ok()
    }

    /// Resolves once `ready(confirmed master)` holds for `channel`, or fails
    /// after the subscribe timeout.
    fn wait_channel(
        &self,
        channel: Arc<str>,
        subscribed: bool,
    ) -> BoxFuture<'static, Result<(), BusError>> {
        let inner = self.inner().clone();
        Box::pin(async move {
            let mut rx = inner.confirm_gen.subscribe();
            let limit = inner.config.subscribe_timeout;
            let check = |inner: &Inner| {
                if inner.cancel.is_cancelled() {
                    return Some(Err(BusError::Closed));
                }
                let confirmed = inner.confirmed.lock().contains_key(&channel);
                let desired = inner.desired.lock().contains_key(&channel);
                // A later call for the same channel wins.
                (desired != subscribed || confirmed == subscribed).then_some(Ok(()))
            };
            let wait = async {
                loop {
                    if let Some(out) = check(&inner) {
                        return out;
                    }
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = inner.cancel.cancelled() => {}
                    }
                }
            };
            match time::timeout(limit, wait).await {
                Ok(out) => out,
                Err(_) => Err(BusError::Subscription {
                    channel: channel.to_string(),
                    message: format!(
                        "not confirmed by the cluster within {} ms (kept: applied when its master answers)",
                        limit.as_millis()
                    ),
                }),
            }
        })
    }

    fn change(&self, channel: &str, subscribe: bool) -> BoxFuture<'static, Result<(), BusError>> {
        let inner = self.inner();
        if inner.cancel.is_cancelled() {
            return Box::pin(async { Err(BusError::Closed) });
        }
        let channel: Arc<str> = channel.into();
        let slot = key_slot(&channel);
        {
            let mut desired = inner.desired.lock();
            if subscribe {
                desired.insert(channel.clone(), slot);
            } else {
                desired.remove(&channel);
            }
            let topology = inner.topology();
            match topology.owner(slot).and_then(|o| inner.shard(o)) {
                Some(shard) => {
                    let changed = {
                        let mut wanted = shard.wanted.lock();
                        if subscribe {
                            wanted.insert(channel.clone())
                        } else {
                            wanted.remove(&channel)
                        }
                    };
                    if changed {
                        shard.changed.notify_one();
                    }
                }
                None if subscribe => inner.refresh.notify_one(),
                None => {}
            }
        }
        self.wait_channel(channel, subscribe)
    }
}

impl Bus for RedisClusterBus {
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        let inner = self.inner();
        if inner.cancel.is_cancelled() {
            return Box::pin(async { Err(BusError::Closed) });
        }
        let Some(charge) = inner.publish_bytes.reserve(payload.len()) else {
            inner.counters.failures.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async { Err(BusError::Publish("publish queue full (bytes)".into())) });
        };
        let (done, rx) = oneshot::channel();
        let job = publisher::Job {
            seq: inner.seq.fetch_add(1, Ordering::Relaxed),
            slot: key_slot(channel),
            channel: channel.into(),
            payload,
            done,
            _charge: charge,
            queued: Instant::now(),
            ask: None,
            last_error: None,
        };
        if inner.publishes.try_send(job).is_err() {
            inner.counters.failures.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async { Err(BusError::Publish("publish queue full".into())) });
        }
        Box::pin(async move { rx.await.unwrap_or(Err(BusError::Closed)) })
    }

    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.change(channel, true)
    }

    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.change(channel, false)
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>> {
        self.inner().incoming_rx.lock().take()
    }

    /// Healthy while the slot map covers every slot and every master's
    /// subscriber connection is up; one entry per master.
    fn health(&self) -> BusHealth {
        let inner = self.inner();
        let topology = inner.topology();
        let scheme = match inner.template.addr() {
            ConnectionAddr::TcpTls { .. } => "rediss",
            _ => "redis",
        };
        let nodes: Vec<BusNodeHealth> = topology
            .masters
            .iter()
            .map(|addr| {
                let shard = inner.shard(addr);
                let connected = shard
                    .as_ref()
                    .is_some_and(|s| s.connected.load(Ordering::Acquire));
                BusNodeHealth {
                    name: format!("{scheme}://{addr}"),
                    healthy: connected,
                    latency_ms: None,
                    published: shard
                        .as_ref()
                        .map_or(0, |s| s.published.load(Ordering::Relaxed)),
                    failovers: shard
                        .as_ref()
                        .map_or(0, |s| s.retried.load(Ordering::Relaxed)),
                    error: if connected {
                        None
                    } else {
                        Some(
                            shard
                                .and_then(|s| s.error.lock().clone())
                                .unwrap_or_else(|| "not connected".into()),
                        )
                    },
                }
            })
            .collect();
        let stats = self.stats();
        BusHealth {
            healthy: topology.complete() && nodes.iter().all(|n| n.healthy),
            nodes,
            publish_failures: stats.publish_failures,
            dropped: stats.dropped,
            reconnects: stats.reconnects,
            in_doubt: 0,
        }
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = self.inner().clone();
        Box::pin(async move {
            inner.cancel.cancel();
            let mut tasks = std::mem::take(&mut *inner.tasks.lock());
            let shards: Vec<Arc<Shard>> = inner.shards.lock().drain().map(|(_, s)| s).collect();
            for shard in shards {
                shard.cancel.cancel();
                if let Some(task) = shard.task.lock().take() {
                    tasks.push(task);
                }
            }
            for task in tasks {
                let _ = task.await;
            }
            inner.confirm_gen.send_modify(|g| *g += 1);
        })
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn join_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host and port of `host:port` (`[v6]:port`).
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// The first seed, for error messages.
fn addr_shown(info: &ConnectionInfo) -> &str {
    match info.addr() {
        ConnectionAddr::TcpTls { .. } => "rediss:// cluster node",
        _ => "redis:// cluster node",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses() {
        assert_eq!(
            super::split_addr("127.0.0.1:7000"),
            Some(("127.0.0.1".into(), 7000))
        );
        assert_eq!(super::split_addr("[::1]:7000"), Some(("::1".into(), 7000)));
        assert_eq!(super::join_addr("::1", 7000), "[::1]:7000");
        assert_eq!(super::split_addr("nohost"), None);
    }
}
