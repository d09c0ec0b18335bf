//! The subscriber of one shard: one RESP3 connection to the shard's master
//! holding the `SSUBSCRIBE`s of the channels whose slots it owns.
//!
//! The redis crate hands every push of the connection to a callback:
//! messages go straight to the bus's receive queue, everything else
//! (subscription confirmations, `sunsubscribe`s the server sends on its own
//! when a slot leaves the master, the end of the connection) to this task.
//! The confirmed set is kept from those pushes, never from command replies:
//! a `sunsubscribe` the server sends on its own may be taken by the crate
//! as the reply of whatever command is in flight.

use super::Inner;
use bytes::Bytes;
use crosswire::bus::BusMessage;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Most SSUBSCRIBE / SUNSUBSCRIBE commands in one pipelined batch.
const MAX_BATCH: usize = 1024;

/// One master of the cluster, as this bus uses it.
pub(crate) struct Shard {
    /// `host:port`.
    pub(crate) addr: String,
    /// The channels of the bus whose slots this master owns.
    pub(crate) wanted: Mutex<HashSet<Arc<str>>>,
    /// `wanted` changed.
    pub(crate) changed: Notify,
    pub(crate) cancel: CancellationToken,
    /// The subscriber connection is up.
    pub(crate) connected: AtomicBool,
    /// Why it is not, when it is not.
    pub(crate) error: Mutex<Option<String>>,
    /// SPUBLISHes this master acknowledged.
    pub(crate) published: AtomicU64,
    /// Publishes that had to be retried after trying this master.
    pub(crate) retried: AtomicU64,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
}

impl Shard {
    pub(crate) fn new(addr: String, cancel: CancellationToken) -> Arc<Shard> {
        Arc::new(Shard {
            addr,
            wanted: Mutex::new(HashSet::new()),
            changed: Notify::new(),
            cancel,
            connected: AtomicBool::new(false),
            error: Mutex::new(None),
            published: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            task: Mutex::new(None),
        })
    }
}

/// Runs until the shard is removed or the bus closed.
pub(crate) async fn run(inner: Arc<Inner>, shard: Arc<Shard>) {
    let mut failures = 0u32;
    loop {
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<PushInfo>();
        let attempt = tokio::select! {
            biased;
            _ = shard.cancel.cancelled() => break,
            attempt = connect(&inner, &shard, ctl_tx) => attempt,
        };
        match attempt {
            Ok(conn) => {
                failures = 0;
                shard.connected.store(true, Ordering::Release);
                *shard.error.lock() = None;
                tracing::debug!(shard = %shard.addr, "redis cluster subscriber connected");
                let lost = serve(&inner, &shard, conn, &mut ctl_rx).await;
                shard.connected.store(false, Ordering::Release);
                inner.unconfirm_all(&shard.addr);
                let Some(reason) = lost else { break };
                inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    shard = %shard.addr,
                    server = inner.config.server_name.as_deref().unwrap_or(""),
                    reason = %reason,
                    "redis cluster subscriber lost: messages published meanwhile on its channels are lost for this node"
                );
                *shard.error.lock() = Some(reason);
            }
            Err(error) => {
                tracing::debug!(shard = %shard.addr, error = %error, "redis cluster subscriber cannot connect");
                *shard.error.lock() = Some(error);
            }
        }
        // The master may be gone for good (failed over): check the map.
        inner.refresh.notify_one();
        let delay = inner.config.backoff(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            biased;
            _ = shard.cancel.cancelled() => break,
            _ = time::sleep(delay) => {}
        }
    }
    shard.connected.store(false, Ordering::Release);
    inner.unconfirm_all(&shard.addr);
}

/// Opens the RESP3 connection whose pushes go to the receive queue
/// (messages) and to `ctl` (the rest).
async fn connect(
    inner: &Arc<Inner>,
    shard: &Shard,
    ctl: mpsc::UnboundedSender<PushInfo>,
) -> Result<MultiplexedConnection, String> {
    let client = inner.client(&shard.addr, ProtocolVersion::RESP3)?;
    let incoming = inner.incoming_tx.clone();
    let budget = inner.incoming_bytes.clone();
    let counters = inner.counters.clone();
    let push = move |info: PushInfo| -> Result<(), ()> {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                let mut data = info.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    return Ok(());
                };
                counters.received.fetch_add(1, Ordering::Relaxed);
                let Some(charge) = budget.reserve(payload.len()) else {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                };
                let message = BusMessage {
                    channel: String::from_utf8_lossy(&channel).into(),
                    payload: charge.attach(Bytes::from(payload)),
                };
                if incoming.try_send(message).is_err() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                let _ = ctl.send(info);
            }
        }
        Ok(())
    };
    let t = inner.config.t();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(None)
        .set_push_sender(push);
    let mut conn = time::timeout(
        t * 2,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| format!("connection not established within {} ms", t.as_millis()))?
    .map_err(|e| e.to_string())?;
    match time::timeout(t, conn.send_packed_command(&redis::cmd("PING"))).await {
        Err(_) => Err(format!("PING not answered within {} ms", t.as_millis())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(Value::ServerError(e))) => Err(e.to_string()),
        Ok(Ok(_)) => Ok(conn),
    }
}

/// Keeps the connection's shard channels in line with `wanted` until the
/// connection is lost (`Some(reason)`) or the shard stopped (`None`).
async fn serve(
    inner: &Inner,
    shard: &Shard,
    mut conn: MultiplexedConnection,
    ctl: &mut mpsc::UnboundedReceiver<PushInfo>,
) -> Option<String> {
    let t = inner.config.t();
    let interval = inner.config.ping_interval.max(Duration::from_millis(1));
    let mut ticker = time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut confirmed: HashSet<Arc<str>> = HashSet::new();
    // After a batch left channels unconfirmed: wait before the next try.
    let mut hold: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let held = hold.is_some_and(|until| Instant::now() < until);
        let (subs, unsubs) = {
            let wanted = shard.wanted.lock();
            let unsubs: Vec<Arc<str>> = confirmed
                .iter()
                .filter(|c| !wanted.contains(*c))
                .take(MAX_BATCH)
                .cloned()
                .collect();
            let subs: Vec<Arc<str>> = if held {
                Vec::new()
            } else {
                wanted
                    .iter()
                    .filter(|c| !confirmed.contains(*c))
                    .take(MAX_BATCH - unsubs.len())
                    .cloned()
                    .collect()
            };
            (subs, unsubs)
        };
        if !subs.is_empty() || !unsubs.is_empty() {
            // One channel per command: SSUBSCRIBE takes channels of one
            // slot only, and the crate matches one reply per command.
            let mut pipe = redis::pipe();
            for c in &subs {
                pipe.cmd("SSUBSCRIBE").arg(&**c);
            }
            for c in &unsubs {
                pipe.cmd("SUNSUBSCRIBE").arg(&**c);
            }
            let n = subs.len() + unsubs.len();
            let replies = match time::timeout(t, conn.send_packed_commands(&pipe, 0, n)).await {
                Err(_) => {
                    return Some(format!(
                        "SSUBSCRIBE not answered within {} ms",
                        t.as_millis()
                    ))
                }
                Ok(Err(e)) => return Some(e.to_string()),
                Ok(Ok(replies)) => replies,
            };
            for reply in &replies {
                if let Value::ServerError(e) = reply {
                    tracing::debug!(shard = %shard.addr, error = %e, "redis cluster subscription refused");
                }
            }
            // The confirmations came before the replies.
            while let Ok(info) = ctl.try_recv() {
                if let Err(reason) = on_push(inner, shard, &mut confirmed, info) {
                    return Some(reason);
                }
            }
            // Unsubscribed channels need no confirmation to be forgotten.
            for c in &unsubs {
                if confirmed.remove(c) {
                    inner.unconfirm(c, &shard.addr);
                }
            }
            if subs.iter().any(|c| !confirmed.contains(c)) {
                // Refused (MOVED: the slot left this master) or not
                // confirmed yet: ask for the map, try again later.
                inner.refresh.notify_one();
                hold = Some(
                    Instant::now()
                        + inner
                            .config
                            .backoff(failures)
                            .min(Duration::from_millis(500)),
                );
                failures = failures.saturating_add(1);
            } else {
                failures = 0;
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = shard.cancel.cancelled() => return None,
            info = ctl.recv() => {
                let Some(info) = info else { return Some("connection closed".into()) };
                if let Err(reason) = on_push(inner, shard, &mut confirmed, info) {
                    return Some(reason);
                }
            }
            _ = shard.changed.notified() => {}
            _ = time::sleep_until(hold.unwrap_or_else(Instant::now)), if held => { hold = None; }
            _ = ticker.tick() => {
                match time::timeout(t, conn.send_packed_command(&redis::cmd("PING"))).await {
                    Err(_) => return Some(format!("PING not answered within {} ms", t.as_millis())),
                    Ok(Err(e)) => return Some(e.to_string()),
                    Ok(Ok(_)) => {}
                }
            }
        }
    }
}

/// Handles a push other than a message; `Err` when the connection ended.
fn on_push(
    inner: &Inner,
    shard: &Shard,
    confirmed: &mut HashSet<Arc<str>>,
    info: PushInfo,
) -> Result<(), String> {
    let channel = |data: &[Value]| match data.first() {
        Some(Value::BulkString(c)) => Some(Arc::<str>::from(String::from_utf8_lossy(c))),
        _ => None,
    };
    match info.kind {
        PushKind::Disconnection => return Err("connection closed".into()),
        PushKind::SSubscribe => {
            if let Some(c) = channel(&info.data) {
                inner.confirm(&c, &shard.addr);
                confirmed.insert(c);
            }
        }
        PushKind::SUnsubscribe => {
            if let Some(c) = channel(&info.data) {
                let ours = confirmed.remove(&c);
                inner.unconfirm(&c, &shard.addr);
                if ours && shard.wanted.lock().contains(&c) {
                    // Not asked for: the slot left this master (migrated,
                    // or the master was demoted). Subscribe where it went.
                    inner.counters.moved.fetch_add(1, Ordering::Relaxed);
                    inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        shard = %shard.addr,
                        channel = %c,
                        "redis cluster unsubscribed a shard channel (slot moved): subscribing at its new master"
                    );
                    inner.refresh.notify_one();
                }
            }
        }
        _ => {}
    }
    Ok(())
}
