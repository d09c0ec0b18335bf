//! State shared by the bus handle and the node tasks: the node list, the
//! desired channel set, the receive queue, health, and the routing of each
//! publish to its Redis node(s).

use crate::config::{RedisBusConfig, Strategy};
use crate::events::{
    ConnKind, HealthEvent, HealthEventKind, SubscriptionErrorEvent, SubscriptionOp,
};
use crate::job::{bump, Counters, Group, Job};
use crate::redis_node::NodeShared;
use crate::select;
use bytes::Bytes;
use crosswire::bus::{BusError, BusMessage, ByteBudget};
use futures_util::future::{join_all, BoxFuture};
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) type HealthHandler = Arc<dyn Fn(HealthEvent) + Send + Sync>;
pub(crate) type SubscriptionErrorHandler = Arc<dyn Fn(SubscriptionErrorEvent) + Send + Sync>;

/// The channel set every subscriber should hold, versioned.
#[derive(Default)]
pub(crate) struct Desired {
    pub(crate) channels: HashSet<Arc<str>>,
    pub(crate) version: u64,
}

/// State shared by the bus handle and the node tasks.
pub(crate) struct Shared {
    pub(crate) config: RedisBusConfig,
    pub(crate) nodes: RwLock<Arc<Vec<Arc<NodeShared>>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) desired: Mutex<Desired>,
    pub(crate) desired_tx: watch::Sender<u64>,
    pub(crate) incoming_tx: RwLock<Option<mpsc::Sender<BusMessage>>>,
    /// The payload bytes of the messages received and not yet handled.
    pub(crate) incoming_bytes: ByteBudget,
    pub(crate) incoming_rx: Mutex<Option<mpsc::Receiver<BusMessage>>>,
    pub(crate) rr: AtomicUsize,
    pub(crate) health_handlers: RwLock<Vec<HealthHandler>>,
    pub(crate) subscription_error_handlers: RwLock<Vec<SubscriptionErrorHandler>>,
    /// Bumped on every health change, node change and first connection
    /// attempt.
    pub(crate) health_gen: watch::Sender<u64>,
    pub(crate) counters: Counters,
    pub(crate) cancel: CancellationToken,
    pub(crate) closed: AtomicBool,
    /// Taken by a publisher that stalled while it decides to leave the
    /// rotation: two stalling at once must not both leave it (each seeing
    /// the other still in it), or publishes fail with every Redis node up.
    pub(crate) stall_gate: Mutex<()>,
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

    /// Waits (bounded) until the first connection attempts of `nodes` ended.
    pub(crate) async fn wait_attempted(&self, nodes: &[Arc<NodeShared>]) {
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

    pub(crate) fn publish(
        &self,
        channel: &str,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(), BusError>> {
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
        let group = Arc::new(Group::new(tx, used));
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
                self.hand_over(job, node, "publish queue full (bytes)".into());
                return;
            }
        }
        match node.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.hand_over(job, node, "publish queue full".into());
            }
            Err(mpsc::error::TrySendError::Closed(job)) => {
                self.hand_over(job, node, "node removed".into());
            }
        }
    }

    /// Fails over a copy that `from` never wrote (it was queued there, or
    /// not even that): `from` may take it again later, after another node
    /// handed it back in turn (a copy bouncing between two stalling nodes
    /// is not lost for having visited both).
    pub(crate) fn hand_over(&self, job: Job, from: &NodeShared, reason: String) {
        job.group.release(from.id);
        self.fail_over(job, from, reason);
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

    pub(crate) fn change_subscription(
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

    pub(crate) async fn shutdown(&self) {
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
