//! The subscriber task of one node: holds the subscriptions, forwards every
//! message, brings the subscriptions in line with the bus's channel set, and
//! reconnects (re-subscribing everything).

use crate::events::{ConnKind, HealthEventKind, SubscriptionOp};
use crate::job::bump;
use crate::redis_node::{backoff, NodeShared};
use crate::shared::Shared;
use bytes::Bytes;
use crosswire::bus::BusMessage;
use futures_util::future::join_all;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{self, Instant, MissedTickBehavior};

/// Most channel names cached per connection (to share one `Arc<str>` among
/// all messages of a channel).
const NAME_CACHE: usize = 4096;

/// Runs until the node is removed or the bus closed.
pub(crate) async fn run(shared: Arc<Shared>, node: Arc<NodeShared>) {
    let mut desired_rx = shared.desired_tx.subscribe();
    let mut failures = 0u32;
    let mut connected_before = false;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = node.cancel.cancelled() => break,
            attempt = connect(&shared, &node) => attempt,
        };
        match attempt {
            Ok((sink, stream)) => {
                failures = 0;
                if connected_before {
                    bump(&shared.counters.reconnects);
                }
                connected_before = true;
                node.progress.send_modify(|p| {
                    p.live = true;
                    p.synced = 0;
                    p.errors.clear();
                });
                let mut control = Control {
                    shared: &shared,
                    node: &node,
                    sink,
                    confirmed: HashSet::new(),
                    initial_done: false,
                };
                let lost = tokio::select! {
                    biased;
                    _ = node.cancel.cancelled() => None,
                    reason = read(&shared, &node, stream) => Some(reason),
                    reason = control.run(&mut desired_rx) => Some(reason),
                };
                node.progress.send_modify(|p| p.live = false);
                node.sub_attempted.store(true, Ordering::Release);
                let Some(reason) = lost else { break };
                shared.set_health(
                    &node,
                    ConnKind::Subscriber,
                    false,
                    HealthEventKind::Close,
                    Some(reason),
                );
                // The publisher shares the node's fate more often than not:
                // let it check now rather than at its next PING.
                node.probe.notify_one();
            }
            Err(error) => {
                // Before the attempt counts as made: `connect` returns with
                // the reason recorded.
                shared.connect_failed(&node, ConnKind::Subscriber, &error);
                node.sub_attempted.store(true, Ordering::Release);
                shared.bump_health();
            }
        }
        let delay = backoff(failures, &shared.config);
        failures = failures.saturating_add(1);
        tokio::select! {
            biased;
            _ = node.cancel.cancelled() => break,
            _ = time::sleep(delay) => {}
        }
    }
    node.progress.send_modify(|p| p.live = false);
}

/// Opens the subscriber connection and checks it answers a PING in time.
async fn connect(shared: &Shared, node: &NodeShared) -> Result<(PubSubSink, PubSubStream), String> {
    let t = shared.config.timeout();
    let pubsub = time::timeout(t, node.client.get_async_pubsub())
        .await
        .map_err(|_| format!("connection not established within {} ms", t.as_millis()))?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    match time::timeout(t, sink.ping::<Value>()).await {
        Err(_) => Err(format!("PING not answered within {} ms", t.as_millis())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(Value::ServerError(e))) => Err(e.to_string()),
        Ok(Ok(_)) => Ok((sink, stream)),
    }
}

/// Forwards every message to the bus's receive queue until the connection
/// ends; returns why it ended.
async fn read(shared: &Shared, node: &NodeShared, mut stream: PubSubStream) -> String {
    let tx = shared.incoming_sender();
    let mut names: HashMap<Box<str>, Arc<str>> = HashMap::new();
    while let Some(msg) = stream.next().await {
        bump(&node.received);
        bump(&shared.counters.received);
        let Some(tx) = &tx else { continue };
        let name = msg.get_channel_name();
        let channel = match names.get(name) {
            Some(channel) => channel.clone(),
            None => {
                let channel: Arc<str> = name.into();
                if names.len() < NAME_CACHE {
                    names.insert(name.into(), channel.clone());
                }
                channel
            }
        };
        let bytes = msg.get_payload_bytes();
        // Counted until the node has handled it.
        let Some(charge) = shared.incoming_bytes.reserve(bytes.len()) else {
            bump(&shared.counters.dropped);
            continue;
        };
        let message = BusMessage {
            channel,
            payload: charge.attach(Bytes::copy_from_slice(bytes)),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(message) {
            bump(&shared.counters.dropped);
        }
    }
    "connection closed".to_owned()
}

/// Keeps one connection's subscriptions in line with the bus's channel set,
/// and checks that the connection answers.
struct Control<'a> {
    shared: &'a Shared,
    node: &'a NodeShared,
    sink: PubSubSink,
    /// Channels this connection confirmed.
    confirmed: HashSet<Arc<str>>,
    /// The channel set was matched once since the connection opened.
    initial_done: bool,
}

impl Control<'_> {
    /// Returns why the connection must be abandoned.
    async fn run(&mut self, desired_rx: &mut watch::Receiver<u64>) -> String {
        let config = &self.shared.config;
        let interval = config.interval();
        let mut ticker = time::interval_at(Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Err(reason) = self.reconcile(desired_rx).await {
                return reason;
            }
            if !self.initial_done {
                self.initial_done = true;
                self.shared.set_health(
                    self.node,
                    ConnKind::Subscriber,
                    true,
                    HealthEventKind::Connect,
                    None,
                );
                self.node.sub_attempted.store(true, Ordering::Release);
                self.shared.bump_health();
            }
            tokio::select! {
                changed = desired_rx.changed() => {
                    if changed.is_err() {
                        return "bus closed".to_owned();
                    }
                }
                _ = ticker.tick() => {
                    if config.pings() {
                        let mut sink = self.sink.clone();
                        match self.answered(async move { sink.ping::<Value>().await }, &[]).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return e.to_string(),
                            Err(reason) => return reason,
                        }
                    }
                }
            }
        }
    }

    /// Subscribes and unsubscribes until the confirmed set equals the bus's
    /// channel set; records the version it matched.
    async fn reconcile(&mut self, desired_rx: &mut watch::Receiver<u64>) -> Result<(), String> {
        loop {
            desired_rx.borrow_and_update();
            let (version, desired) = self.shared.desired_snapshot();
            let mut ops: Vec<(Arc<str>, SubscriptionOp)> = self
                .confirmed
                .iter()
                .filter(|c| !desired.contains(*c))
                .map(|c| (c.clone(), SubscriptionOp::Unsubscribe))
                .collect();
            ops.extend(
                desired
                    .iter()
                    .filter(|c| !self.confirmed.contains(*c))
                    .map(|c| (c.clone(), SubscriptionOp::Subscribe)),
            );
            if ops.is_empty() {
                self.node.progress.send_if_modified(|p| {
                    let newer = p.synced < version;
                    p.synced = p.synced.max(version);
                    newer
                });
                return Ok(());
            }
            // One channel per command: the redis crate matches one reply to
            // one request, and SUBSCRIBE answers once per channel. The
            // commands are pipelined, in order.
            let requests = ops.iter().map(|(channel, op)| {
                let mut sink = self.sink.clone();
                let channel = channel.clone();
                let op = *op;
                async move {
                    match op {
                        SubscriptionOp::Subscribe => sink.subscribe(&*channel).await,
                        SubscriptionOp::Unsubscribe => sink.unsubscribe(&*channel).await,
                    }
                }
            });
            let results = self.answered(join_all(requests), &ops).await?;
            for ((channel, op), result) in ops.iter().zip(results) {
                // The crate reports server error replies as success, so an
                // error here means the connection is gone.
                result.map_err(|e| format!("{op:?} {channel}: {e}"))?;
                match op {
                    SubscriptionOp::Subscribe => self.confirmed.insert(channel.clone()),
                    SubscriptionOp::Unsubscribe => self.confirmed.remove(channel),
                };
            }
            self.node.progress.send_if_modified(|p| {
                let before = p.errors.len();
                p.errors.retain(|c, _| !ops.iter().any(|(o, _)| o == c));
                p.errors.len() != before
            });
        }
    }

    /// Awaits a command. Past `ping_timeout` the connection counts as down
    /// (health event, subscription errors for `ops`, pending calls stop
    /// waiting for it) but the command is still awaited; past the stall limit
    /// the connection is abandoned (`Err`).
    async fn answered<F: Future>(
        &mut self,
        fut: F,
        ops: &[(Arc<str>, SubscriptionOp)],
    ) -> Result<F::Output, String> {
        let config = &self.shared.config;
        let t = config.timeout();
        tokio::pin!(fut);
        if let Ok(out) = time::timeout(t, &mut fut).await {
            return Ok(out);
        }
        let message = format!("not confirmed within {} ms", t.as_millis());
        // Handlers first, so that a caller who sees its pending call fail
        // also finds the failure reported.
        self.shared.set_health(
            self.node,
            ConnKind::Subscriber,
            false,
            HealthEventKind::Ping,
            Some(format!("no answer within {} ms", t.as_millis())),
        );
        for (channel, op) in ops {
            self.shared
                .subscription_error(self.node, channel, *op, &message);
        }
        self.node.progress.send_modify(|p| {
            p.live = false;
            for (channel, _) in ops {
                p.error_seq += 1;
                p.errors
                    .insert(channel.clone(), (p.error_seq, message.clone()));
            }
        });
        let rest = config
            .stall_limit()
            .saturating_sub(t)
            .max(Duration::from_millis(1));
        match time::timeout(rest, &mut fut).await {
            Ok(out) => {
                self.node.progress.send_modify(|p| p.live = true);
                if self.initial_done {
                    self.shared.set_health(
                        self.node,
                        ConnKind::Subscriber,
                        true,
                        HealthEventKind::Ping,
                        None,
                    );
                }
                Ok(out)
            }
            Err(_) => Err(format!(
                "no answer within {} ms",
                config.stall_limit().as_millis()
            )),
        }
    }
}
