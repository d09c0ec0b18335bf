//! The publisher task of one node: owns the publishing connection, sends the
//! queued PUBLISHes in pipelined batches, PINGs, and reconnects.

use crate::events::{ConnKind, HealthEventKind};
use crate::job::{bump, Job};
use crate::redis_node::{backoff, NodeShared};
use crate::shared::Shared;
use futures_util::future::{BoxFuture, OptionFuture};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{self, Instant, MissedTickBehavior};

/// Most PUBLISHes sent in one pipelined batch.
const MAX_BATCH: usize = 512;
/// Most payload bytes in one batch (one message may exceed it alone).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Unanswered PINGs / batches in a row after which the connection is
/// dropped and reopened.
const MAX_TIMEOUTS: u32 = 3;

enum PingOutcome {
    Answered(Duration),
    Refused(String),
    Broken(String),
    TimedOut,
}

enum End {
    Cancelled,
    Lost(String),
}

/// Runs until the node is removed or the bus closed.
pub(crate) async fn run(shared: Arc<Shared>, node: Arc<NodeShared>, mut jobs: mpsc::Receiver<Job>) {
    let mut failures = 0u32;
    let mut connected_before = false;
    loop {
        let Some(attempt) = idle(&shared, &node, &mut jobs, connect(&shared, &node)).await else {
            break;
        };
        match &attempt {
            Ok((_, rtt)) => {
                node.set_latency(*rtt);
                shared.set_health(
                    &node,
                    ConnKind::Publisher,
                    true,
                    HealthEventKind::Connect,
                    None,
                );
            }
            // Before the attempt counts as made: `connect` returns with the
            // reason recorded.
            Err(error) => shared.connect_failed(&node, ConnKind::Publisher, error),
        }
        node.pub_attempted.store(true, Ordering::Release);
        shared.bump_health();
        if let Ok((conn, _)) = attempt {
            failures = 0;
            if connected_before {
                bump(&shared.counters.reconnects);
            }
            connected_before = true;
            match serve(&shared, &node, &mut jobs, conn).await {
                End::Cancelled => break,
                End::Lost(reason) => shared.set_health(
                    &node,
                    ConnKind::Publisher,
                    false,
                    HealthEventKind::Close,
                    Some(reason),
                ),
            }
        }
        let delay = backoff(failures, &shared.config);
        failures = failures.saturating_add(1);
        if idle(&shared, &node, &mut jobs, time::sleep(delay))
            .await
            .is_none()
        {
            break;
        }
    }
    // Removed or closed: whatever is still queued goes elsewhere (or fails).
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        shared.hand_over(job, &node, "node removed".into());
    }
}

/// Awaits `fut` while the node is not connected, handing every publish that
/// still arrives to another node. `None` when cancelled.
async fn idle<F: Future>(
    shared: &Shared,
    node: &NodeShared,
    jobs: &mut mpsc::Receiver<Job>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            biased;
            _ = node.cancel.cancelled() => return None,
            out = &mut fut => return Some(out),
            Some(job) = jobs.recv() => shared.hand_over(job, node, "not connected".into()),
        }
    }
}

/// Opens the connection and checks it answers a PING within the timeout.
async fn connect(
    shared: &Shared,
    node: &NodeShared,
) -> Result<(MultiplexedConnection, Duration), String> {
    let t = shared.config.timeout();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(None);
    let attempt = async {
        let conn = node
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        match ping(conn.clone(), t).await {
            PingOutcome::Answered(rtt) => Ok((conn, rtt)),
            PingOutcome::Refused(e) | PingOutcome::Broken(e) => Err(e),
            PingOutcome::TimedOut => Err(no_answer("PING", t)),
        }
    };
    time::timeout(t * 2 + Duration::from_millis(50), attempt)
        .await
        .unwrap_or_else(|_| Err(no_answer("connection", t * 2)))
}

fn no_answer(what: &str, t: Duration) -> String {
    format!("{what} not answered within {} ms", t.as_millis())
}

async fn ping(mut conn: MultiplexedConnection, t: Duration) -> PingOutcome {
    let start = Instant::now();
    match time::timeout(t, conn.send_packed_command(&redis::cmd("PING"))).await {
        Err(_) => PingOutcome::TimedOut,
        Ok(Err(e)) => PingOutcome::Broken(e.to_string()),
        Ok(Ok(Value::ServerError(e))) => PingOutcome::Refused(e.to_string()),
        Ok(Ok(_)) => PingOutcome::Answered(start.elapsed()),
    }
}

type BatchResult = Result<Result<Vec<Value>, RedisError>, time::error::Elapsed>;

/// Serves one connection until it is lost or the node is cancelled.
async fn serve(
    shared: &Shared,
    node: &NodeShared,
    jobs: &mut mpsc::Receiver<Job>,
    conn: MultiplexedConnection,
) -> End {
    let config = &shared.config;
    let t = config.timeout();
    let interval = config.interval();
    let mut ticker = time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pinging: Option<BoxFuture<'static, PingOutcome>> = None;
    let mut batch: Option<BoxFuture<'static, BatchResult>> = None;
    let mut in_flight: Vec<Job> = Vec::new();
    let mut timeouts = 0u32;
    let stall_after = config.stall();
    // When the batch in flight stalls (unanswered for `stall_timeout`).
    let mut stall_at: Option<Instant> = None;
    // The batch in flight stalled: the node is out of rotation, and what is
    // queued for it goes elsewhere.
    let mut stalled = false;
    let end = loop {
        tokio::select! {
            biased;
            _ = node.cancel.cancelled() => break End::Cancelled,
            Some(result) = OptionFuture::from(batch.as_mut()) => {
                batch = None;
                stall_at = None;
                let sent = std::mem::take(&mut in_flight);
                node.in_flight.store(0, Ordering::Release);
                match result {
                    Ok(Ok(values)) => {
                        timeouts = 0;
                        settle(shared, node, sent, values);
                        if std::mem::take(&mut stalled) {
                            // It answers again: back in rotation.
                            shared.set_health(node, ConnKind::Publisher, true, HealthEventKind::Ping, None);
                        }
                    }
                    Ok(Err(e)) => {
                        // The connection broke: the node is gone, and what it
                        // did not answer goes to another one.
                        let reason = e.to_string();
                        for job in sent {
                            shared.fail_over(job, node, reason.clone());
                        }
                        break End::Lost(reason);
                    }
                    Err(_) => {
                        // Written, never answered: it may still deliver them
                        // (a frozen Redis does when it wakes up), so they
                        // are not sent again (twice would be worse); in doubt.
                        let reason = no_answer("PUBLISH", t);
                        tracing::warn!(
                            node = %node.addr(), publishes = sent.len(),
                            "redis did not answer: publishes in doubt (delivered if it comes back)"
                        );
                        for job in sent {
                            job.group.in_doubt(&shared.counters, format!("{reason} by {}", node.addr()));
                        }
                        shared.set_health(node, ConnKind::Publisher, false, HealthEventKind::Ping, Some(reason));
                        timeouts += 1;
                        if timeouts >= MAX_TIMEOUTS {
                            break End::Lost(format!("{timeouts} commands in a row not answered"));
                        }
                    }
                }
            }
            _ = time::sleep_until(stall_at.unwrap_or_else(Instant::now)), if stall_at.is_some() && !stalled => {
                stall_at = None;
                // Only when another Redis node can take the traffic: a
                // stall of every node (an overloaded machine) must slow
                // publishing down, not fail it. Decided under the gate, so
                // that of two publishers stalling at once one stays.
                let gate = shared.stall_gate.lock();
                let others = shared.nodes().iter().any(|n| n.id != node.id && n.is_target());
                if !others {
                    continue;
                }
                stalled = true;
                bump(&shared.counters.stalls);
                let reason = format!(
                    "PUBLISH not answered within {} ms ({} written to it wait for its answer)",
                    stall_after.as_millis(),
                    in_flight.len()
                );
                shared.set_health(node, ConnKind::Publisher, false, HealthEventKind::Ping, Some(reason.clone()));
                drop(gate);
                // Queued here, not written yet: safe to send elsewhere.
                while let Ok(job) = jobs.try_recv() {
                    shared.hand_over(job, node, reason.clone());
                }
            }

            Some(outcome) = OptionFuture::from(pinging.as_mut()) => {
                pinging = None;
                match outcome {
                    PingOutcome::Answered(rtt) => {
                        timeouts = 0;
                        stalled = false;
                        node.set_latency(rtt);
                        shared.set_health(node, ConnKind::Publisher, true, HealthEventKind::Ping, None);
                    }
                    PingOutcome::Refused(e) => {
                        shared.set_health(node, ConnKind::Publisher, false, HealthEventKind::Error, Some(e));
                    }
                    PingOutcome::Broken(e) => break End::Lost(e),
                    PingOutcome::TimedOut => {
                        timeouts += 1;
                        shared.set_health(
                            node, ConnKind::Publisher, false, HealthEventKind::Ping,
                            Some(no_answer("PING", t)),
                        );
                        if timeouts >= MAX_TIMEOUTS {
                            break End::Lost(format!("{timeouts} commands in a row not answered"));
                        }
                    }
                }
            }
            job = jobs.recv(), if batch.is_none() || stalled => {
                let Some(first) = job else { break End::Cancelled };
                if batch.is_some() {
                    // Stalled: nothing more is written to it.
                    shared.hand_over(first, node, "publisher stalled".into());
                    continue;
                }
                let list = collect_batch(first, jobs);
                if !node.pub_healthy.load(Ordering::Acquire) {
                    for job in list {
                        shared.hand_over(job, node, "publisher unhealthy".into());
                    }
                    continue;
                }
                let mut pipe = redis::pipe();
                for job in &list {
                    pipe.cmd("PUBLISH").arg(&*job.channel).arg(&job.payload[..]);
                }
                // Each attempt waits at most `ping_timeout` from when it was
                // queued (a little longer if it queued behind a slow batch).
                let oldest = list.iter().map(|j| j.attempt_start).min().unwrap_or_else(Instant::now);
                let deadline = (oldest + t).max(Instant::now() + t / 4);
                let count = list.len();
                let mut c = conn.clone();
                batch = Some(Box::pin(async move {
                    time::timeout_at(deadline, async move { c.send_packed_commands(&pipe, 0, count).await }).await
                }));
                node.in_flight.store(list.len(), Ordering::Release);
                in_flight = list;
                stall_at = Some(Instant::now() + stall_after);
            }
            _ = ticker.tick(), if pinging.is_none()
                && (config.pings() || !node.pub_healthy.load(Ordering::Acquire)) => {
                pinging = Some(Box::pin(ping(conn.clone(), t)));
            }
            _ = node.probe.notified(), if pinging.is_none() => {
                pinging = Some(Box::pin(ping(conn.clone(), t)));
            }
        }
    };
    for job in in_flight {
        let reason = match end {
            End::Cancelled => "node removed".to_owned(),
            End::Lost(ref r) => r.clone(),
        };
        shared.fail_over(job, node, reason);
    }
    end
}

/// The first job plus whatever is queued behind it, within the batch limits.
fn collect_batch(first: Job, jobs: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut bytes = first.payload.len();
    let mut list = vec![first];
    while list.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        match jobs.try_recv() {
            Ok(job) => {
                bytes += job.payload.len();
                list.push(job);
            }
            Err(_) => break,
        }
    }
    list
}

/// Resolves the jobs of an answered batch, one reply each.
fn settle(shared: &Shared, node: &NodeShared, sent: Vec<Job>, values: Vec<Value>) {
    let mut values = values.into_iter();
    for job in sent {
        match values.next() {
            Some(Value::ServerError(e)) => shared.fail_over(job, node, e.to_string()),
            Some(_) => {
                bump(&node.published);
                bump(&shared.counters.published);
                // The bytes leave the publish queue before the caller hears
                // of it: a publish right after this one must find them gone.
                let Job { group, charge, .. } = job;
                drop(charge);
                group.succeed();
            }
            None => shared.fail_over(job, node, "missing reply".into()),
        }
    }
}
