//! The publisher: SPUBLISHes in call order, pipelined per master, with
//! redirections and retries.
//!
//! One task takes the publishes from the queue in batches. Each batch is
//! split by the master owning each channel's slot and sent to all of them
//! at once; the next batch starts once every master answered, so two
//! publishes on one channel reach Redis in call order. A publish that must
//! be tried again (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a lost connection, no
//! answer in time) is held, with every later publish of the same slot
//! behind it, and retried after a short delay — with a fresh slot map —
//! until `publish_timeout` after it was queued.

use super::Inner;
use bytes::Bytes;
use crosswire::bus::{BusError, Charge};
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, ServerErrorKind, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant};

/// Most publishes in one batch.
const MAX_BATCH: usize = 1024;
/// Most payload bytes in one batch (one message may exceed it alone).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Delay before held publishes are tried again.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// One publish.
pub(crate) struct Job {
    pub(crate) seq: u64,
    pub(crate) channel: Arc<str>,
    pub(crate) slot: u16,
    pub(crate) payload: Bytes,
    pub(crate) done: oneshot::Sender<Result<(), BusError>>,
    /// Its bytes in the publish queue, until Redis answered.
    pub(crate) _charge: Charge,
    pub(crate) queued: Instant,
    /// An ASK redirection: the next attempt goes there, after ASKING.
    pub(crate) ask: Option<String>,
    /// The last reason it had to be retried.
    pub(crate) last_error: Option<String>,
}

/// What became of one master's part of a batch.
enum Outcome {
    Replies(Vec<Value>),
    Failed(String),
}

/// Runs until the bus closes; then fails what is left.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>) {
    let mut conns: HashMap<String, MultiplexedConnection> = HashMap::new();
    let mut held: Vec<Job> = Vec::new();
    let mut retry_at = Instant::now();
    loop {
        let mut batch: Vec<Job> = Vec::new();
        if held.is_empty() {
            tokio::select! {
                biased;
                _ = inner.cancel.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
            }
        } else {
            tokio::select! {
                biased;
                _ = inner.cancel.cancelled() => break,
                _ = time::sleep_until(retry_at) => batch.append(&mut held),
                job = rx.recv() => match job {
                    Some(job) => admit(job, &mut batch, &mut held),
                    None => break,
                },
            }
        }
        let mut bytes: usize = batch.iter().map(|j| j.payload.len()).sum();
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(job) = rx.try_recv() else { break };
            bytes += job.payload.len();
            admit(job, &mut batch, &mut held);
        }
        if batch.is_empty() {
            continue;
        }
        let retry = send(&inner, &mut conns, batch).await;
        for job in retry {
            if job.queued.elapsed() >= inner.config.publish_timeout {
                let reason = job.last_error.unwrap_or_else(|| "no answer".into());
                fail(
                    &inner,
                    job.done,
                    format!(
                        "not published within {} ms: {reason}",
                        inner.config.publish_timeout.as_millis()
                    ),
                );
            } else {
                held.push(job);
            }
        }
        if !held.is_empty() {
            held.sort_by_key(|j| j.seq);
            let asked_only = held.iter().all(|j| j.ask.is_some());
            retry_at = Instant::now()
                + if asked_only {
                    Duration::ZERO
                } else {
                    RETRY_DELAY
                };
        }
    }
    rx.close();
    for job in held
        .into_iter()
        .chain(std::iter::from_fn(|| rx.try_recv().ok()))
    {
        let _ = job.done.send(Err(BusError::Closed));
    }
}

/// A new publish joins the batch, or waits behind a held one of its slot.
fn admit(job: Job, batch: &mut Vec<Job>, held: &mut Vec<Job>) {
    if held.iter().any(|h| h.slot == job.slot) {
        held.push(job);
    } else {
        batch.push(job);
    }
}

fn fail(inner: &Inner, done: oneshot::Sender<Result<(), BusError>>, reason: String) {
    inner.counters.failures.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(reason = %reason, "redis cluster publish failed");
    let _ = done.send(Err(BusError::Publish(reason)));
}

/// Sends a batch; returns the publishes to try again.
async fn send(
    inner: &Arc<Inner>,
    conns: &mut HashMap<String, MultiplexedConnection>,
    batch: Vec<Job>,
) -> Vec<Job> {
    let topology = inner.topology();
    let mut retry = Vec::new();
    let mut groups: Vec<(String, Vec<Job>)> = Vec::new();
    for mut job in batch {
        let addr = match job.ask.clone() {
            Some(addr) => Some(addr),
            None => topology.owner(job.slot).map(str::to_owned),
        };
        let Some(addr) = addr else {
            job.last_error = Some(format!("no master owns slot {}", job.slot));
            inner.refresh.notify_one();
            retry.push(job);
            continue;
        };
        match groups.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, jobs)) => jobs.push(job),
            None => groups.push((addr, vec![job])),
        }
    }
    let t = inner.config.t();
    let attempts = groups.iter().map(|(addr, jobs)| {
        let conn = conns.get(addr).cloned();
        let mut pipe = redis::pipe();
        for job in jobs {
            if job.ask.is_some() {
                pipe.cmd("ASKING");
            }
            pipe.cmd("SPUBLISH")
                .arg(&*job.channel)
                .arg(&job.payload[..]);
        }
        let count = jobs.len() + jobs.iter().filter(|j| j.ask.is_some()).count();
        let addr = addr.clone();
        async move {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match connect(inner, &addr).await {
                    Ok(conn) => conn,
                    Err(e) => return (None, Outcome::Failed(e)),
                },
            };
            let outcome = match time::timeout(t, conn.send_packed_commands(&pipe, 0, count)).await {
                Err(_) => {
                    Outcome::Failed(format!("SPUBLISH not answered within {} ms", t.as_millis()))
                }
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Ok(Ok(replies)) if replies.len() == count => Outcome::Replies(replies),
                Ok(Ok(replies)) => {
                    Outcome::Failed(format!("{} replies to {count} SPUBLISH", replies.len()))
                }
            };
            (Some(conn), outcome)
        }
    });
    let outcomes = join_all(attempts).await;
    for ((addr, jobs), (conn, outcome)) in groups.into_iter().zip(outcomes) {
        let shard = inner.shard(&addr);
        match outcome {
            Outcome::Failed(reason) => {
                conns.remove(&addr);
                tracing::debug!(master = %addr, reason = %reason, "redis cluster publish attempt failed");
                inner.refresh.notify_one();
                for mut job in jobs {
                    if let Some(shard) = &shard {
                        shard.retried.fetch_add(1, Ordering::Relaxed);
                    }
                    job.ask = None;
                    job.last_error = Some(format!("{addr}: {reason}"));
                    retry.push(job);
                }
            }
            Outcome::Replies(replies) => {
                if let Some(conn) = conn {
                    conns.insert(addr.clone(), conn);
                }
                let mut replies = replies.into_iter();
                for mut job in jobs {
                    if job.ask.take().is_some() {
                        replies.next(); // ASKING's
                    }
                    let reply = replies.next().unwrap_or(Value::Nil);
                    let Value::ServerError(e) = reply else {
                        inner.counters.published.fetch_add(1, Ordering::Relaxed);
                        if let Some(shard) = &shard {
                            shard.published.fetch_add(1, Ordering::Relaxed);
                        }
                        let Job { done, _charge, .. } = job;
                        drop(_charge);
                        let _ = done.send(Ok(()));
                        continue;
                    };
                    let retryable = match e.kind() {
                        Some(ServerErrorKind::Ask) => {
                            job.ask = redirect_target(e.details());
                            true
                        }
                        Some(
                            ServerErrorKind::Moved
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::BusyLoading
                            | ServerErrorKind::ReadOnly,
                        ) => true,
                        _ => false,
                    };
                    if retryable {
                        inner.counters.redirects.fetch_add(1, Ordering::Relaxed);
                        if let Some(shard) = &shard {
                            shard.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        if job.ask.is_none() {
                            inner.refresh.notify_one();
                        }
                        job.last_error = Some(format!("{addr}: {e}"));
                        retry.push(job);
                    } else {
                        fail(inner, job.done, format!("{addr}: {e}"));
                    }
                }
            }
        }
    }
    retry
}

/// `host:port` of a redirection's details (`"<slot> <host>:<port>"`).
fn redirect_target(details: Option<&str>) -> Option<String> {
    let addr = details?.split_whitespace().nth(1)?;
    (!addr.is_empty()).then(|| addr.to_owned())
}

/// A publishing connection to `addr` (RESP2).
async fn connect(inner: &Inner, addr: &str) -> Result<MultiplexedConnection, String> {
    let client = inner.client(addr, ProtocolVersion::RESP2)?;
    let t = inner.config.t();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(None);
    time::timeout(
        t * 2,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| format!("connection not established within {} ms", t.as_millis()))?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirect_targets() {
        assert_eq!(
            super::redirect_target(Some("3999 127.0.0.1:6381")).as_deref(),
            Some("127.0.0.1:6381")
        );
        assert_eq!(super::redirect_target(Some("3999")), None);
        assert_eq!(super::redirect_target(None), None);
    }
}
