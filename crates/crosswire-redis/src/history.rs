//! Room history in Redis, for missed-message recovery on the Redis bus.
//!
//! Each room's history lives on **one** of the bus's independent Redis
//! nodes, chosen by rendezvous hashing of the room over the nodes'
//! `host:port` (so every endpoint configured with the same addresses picks
//! the same node, and adding a node moves only the rooms it wins). It is two
//! keys: a hash with the epoch and the last offset, and a list of the
//! stored envelopes (each behind its storage time), both expiring when the
//! room is idle for the history's age.
//!
//! A send runs one script on the room's node that takes the next offset (a
//! new epoch, given by the caller, when the room has none), puts the
//! position into the envelope, stores it, trims the list by count and age,
//! and publishes it: no other endpoint can see the message without its
//! position, nor a position without the message. Each Redis node has one
//! worker per endpoint that sends its requests in order, pipelined, on a
//! connection of its own, and calls back in that order.
//!
//! When a room's node cannot take a message, the caller sends it without a
//! position and asks for a [`reset`](HistoryBackend::reset): the room's keys
//! are deleted before this endpoint's next request for the room reaches
//! that node, so a recovery across the outage reports a changed epoch
//! instead of passing over the message.

use crate::redis_node::{backoff, NodeShared};
use crate::shared::Shared;
use bytes::Bytes;
use crosswire::bus::{ByteBudget, Charge};
use crosswire::history::{
    Append, HistoryBackend, HistoryConfig, HistoryError, Position, ReadRange, Stored,
};
use crosswire::protocol::envelope::Codec;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant};

/// The keys' prefix.
const PREFIX: &str = "cw:h:";
/// Requests queued per Redis node before appends fail (and are sent
/// without a position).
const QUEUE: usize = 16_384;
/// Most requests in one pipelined batch.
const MAX_BATCH: usize = 256;

/// The start of both scripts: the time, the room's epoch (a new one, the
/// caller's, when it has none) and `trim_age`, which drops the messages
/// older than the history's age. KEYS: meta, list. ARGV[1]: new epoch,
/// ARGV[2]: max age (ms).
macro_rules! prelude {
    () => {
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxage = tonumber(ARGV[2])
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 't', 0)
  redis.call('PEXPIRE', KEYS[1], maxage)
end
local function trim_age()
  while true do
    local head = redis.call('LINDEX', KEYS[2], 0)
    if not head or tonumber(string.sub(head, 1, 14)) >= now - maxage then break end
    redis.call('LPOP', KEYS[2])
  end
end
"#
    };
}

/// Appends: takes the next offset, splices the position into the envelope,
/// stores it (behind its storage time in ms, 14 digits), trims, publishes.
/// ARGV (after the prelude's): max messages, prefix, suffix, codec (`m` or
/// `j`), channel (empty: not published).
const APPEND: &str = concat!(
    prelude!(),
    r#"
local top = redis.call('HINCRBY', KEYS[1], 't', 1)
local pos = epoch .. ':' .. string.format('%d', top)
local enc
if ARGV[6] == 'm' then
  if #pos < 32 then enc = string.char(160 + #pos) .. pos else enc = string.char(217, #pos) .. pos end
else
  enc = '"' .. pos .. '"'
end
local payload = ARGV[4] .. enc .. ARGV[5]
local len = redis.call('RPUSH', KEYS[2], string.format('%014d', now) .. payload)
local maxlen = tonumber(ARGV[3])
if len > maxlen then redis.call('LTRIM', KEYS[2], len - maxlen, -1) end
trim_age()
redis.call('PEXPIRE', KEYS[1], maxage)
redis.call('PEXPIRE', KEYS[2], maxage)
if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], payload) end
return {epoch, top}
"#
);

/// Reads: the room's epoch, top and first held offset, and the envelopes
/// after a position of that epoch (none when it is of another, ahead, or no
/// longer held). ARGV (after the prelude's): epoch read from (empty: the
/// top only), offset read from, most entries, about the most bytes.
const READ: &str = concat!(
    prelude!(),
    r#"
local top = tonumber(redis.call('HGET', KEYS[1], 't'))
trim_age()
local first = top - redis.call('LLEN', KEYS[2]) + 1
local out = {epoch, top, first}
local after = tonumber(ARGV[4])
if ARGV[3] ~= epoch or after == nil or after > top or after + 1 < first then return out end
local from = after + 1 - first
local items = redis.call('LRANGE', KEYS[2], from, from + tonumber(ARGV[5]) - 1)
local bytes, maxbytes = 0, tonumber(ARGV[6])
for i, item in ipairs(items) do
  local size = #item - 14
  if i > 1 and bytes + size > maxbytes then break end
  bytes = bytes + size
  out[#out + 1] = string.sub(item, 15)
end
return out
"#
);

/// The two keys of a room's history.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RoomKeys {
    meta: Vec<u8>,
    list: Vec<u8>,
}

impl RoomKeys {
    /// `cw:h:{<len(ns)>:<ns>:<room>}:m` and `…:l`: unambiguous whatever the
    /// names hold, and in one Redis Cluster slot (the braces).
    fn new(ns: &str, room: &str) -> Self {
        let base = format!("{PREFIX}{{{}:{ns}:{room}}}", ns.len());
        RoomKeys {
            meta: format!("{base}:m").into_bytes(),
            list: format!("{base}:l").into_bytes(),
        }
    }
}

enum Request {
    Append {
        keys: RoomKeys,
        append: Append,
        /// The envelope's bytes in the node's queue, until answered.
        charge: Option<Charge>,
    },
    Read {
        keys: RoomKeys,
        read: ReadRange,
        reply: oneshot::Sender<Result<Stored, HistoryError>>,
    },
    Reset {
        keys: RoomKeys,
    },
}

impl Request {
    fn fail(self, why: &str, resets: &mut HashSet<RoomKeys>) {
        let error = HistoryError::Unavailable(why.to_owned());
        match self {
            Request::Append { keys, append, .. } => {
                // It may have been applied: the history is reset either way.
                resets.insert(keys);
                (append.done)(Err(error));
            }
            Request::Read { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Reset { keys } => {
                resets.insert(keys);
            }
        }
    }
}

/// One Redis node's worker, as seen by the endpoint: its queue, bounded in
/// requests and in envelope bytes (`publish_queue_bytes`).
#[derive(Clone)]
struct Worker {
    tx: mpsc::Sender<Request>,
    bytes: ByteBudget,
}

/// The history of the rooms, kept on the Redis nodes of one bus endpoint.
pub(crate) struct RedisHistory {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<crate::NodeId, Worker>>,
}

impl RedisHistory {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisHistory {
            shared,
            workers: Mutex::new(HashMap::new()),
        }
    }

    /// The node that keeps the room's history: the highest score of
    /// `hash(node address, ns, room)` among the bus's nodes.
    fn home(&self, ns: &str, room: &str) -> Option<Arc<NodeShared>> {
        let nodes = self.shared.nodes();
        nodes
            .iter()
            .max_by_key(|n| score(&n.addr(), ns, room))
            .cloned()
    }

    /// Queues a request on the worker of the room's node.
    fn submit(&self, ns: &str, room: &str, mut request: Request) {
        let Some(node) = self.home(ns, room) else {
            let mut none = HashSet::new();
            request.fail("the bus has no Redis node", &mut none);
            return;
        };
        let worker = {
            let mut workers = self.workers.lock();
            workers.retain(|_, w| !w.tx.is_closed());
            workers
                .entry(node.id)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(run(self.shared.clone(), node.clone(), rx));
                    let bytes = ByteBudget::new(self.shared.config.publish_queue_bytes);
                    Worker { tx, bytes }
                })
                .clone()
        };
        if let Request::Append { append, charge, .. } = &mut request {
            let size = append.prefix.len() + append.suffix.len();
            match worker.bytes.reserve(size) {
                Some(c) => *charge = Some(c),
                None => {
                    let mut resets = HashSet::new();
                    request.fail("history queue full (bytes)", &mut resets);
                    // A reset costs no bytes: it may still get in.
                    for keys in resets {
                        let _ = worker.tx.try_send(Request::Reset { keys });
                    }
                    return;
                }
            }
        }
        if let Err(e) = worker.tx.try_send(request) {
            let (request, why) = match e {
                mpsc::error::TrySendError::Full(r) => (r, "history queue full"),
                mpsc::error::TrySendError::Closed(r) => (r, "redis node removed"),
            };
            // The room's reset is queued when there is room for it; with a
            // full queue the node is far behind and it may be lost (noted).
            let mut resets = HashSet::new();
            request.fail(why, &mut resets);
            for keys in resets {
                let _ = worker.tx.try_send(Request::Reset { keys });
            }
        }
    }
}

/// FNV-1a of the node's address and the room, then MurmurHash3's 64-bit
/// finalizer (so that the last bytes move the high bits too): stable across
/// processes, platforms and versions (placement must agree between
/// endpoints).
fn score(addr: &str, ns: &str, room: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [addr.as_bytes(), &[0], ns.as_bytes(), &[0], room.as_bytes()] {
        for b in part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A fresh epoch: 16 random hex digits.
fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn age_ms(config: &HistoryConfig) -> u64 {
    u64::try_from(config.max_age.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl HistoryBackend for RedisHistory {
    fn append(&self, append: Append) {
        let keys = RoomKeys::new(&append.ns, &append.room);
        let (ns, room) = (append.ns.clone(), append.room.clone());
        let request = Request::Append {
            keys,
            append,
            charge: None,
        };
        self.submit(&ns, &room, request);
    }

    fn read(&self, read: ReadRange) -> BoxFuture<'static, Result<Stored, HistoryError>> {
        let keys = RoomKeys::new(&read.ns, &read.room);
        let (tx, rx) = oneshot::channel();
        let (ns, room) = (read.ns.clone(), read.room.clone());
        self.submit(
            &ns,
            &room,
            Request::Read {
                keys,
                read,
                reply: tx,
            },
        );
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(HistoryError::Unavailable("bus closed".into())))
        })
    }

    fn reset(&self, ns: &str, room: &str) {
        let keys = RoomKeys::new(ns, room);
        self.submit(ns, room, Request::Reset { keys });
    }
}

/// The loaded scripts' SHA1s.
struct Scripts {
    append: String,
    read: String,
}

struct Conn {
    conn: MultiplexedConnection,
    scripts: Scripts,
}

/// One Redis node's worker: runs requests in order, in pipelined batches.
async fn run(shared: Arc<Shared>, node: Arc<NodeShared>, mut rx: mpsc::Receiver<Request>) {
    let t = shared.config.timeout();
    let mut conn: Option<Conn> = None;
    let mut resets: HashSet<RoomKeys> = HashSet::new();
    let mut failures = 0u32;
    let mut next_try = Instant::now();
    loop {
        let first = tokio::select! {
            _ = node.cancel.cancelled() => break,
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if conn.is_none() && Instant::now() >= next_try {
            match connect(&node, t).await {
                Ok(c) => {
                    failures = 0;
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::debug!(node = %node.addr(), error = %e, "history connection failed");
                    failures = failures.saturating_add(1);
                    next_try = Instant::now() + backoff(failures, &shared.config);
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            for r in batch {
                r.fail("redis node unreachable", &mut resets);
            }
            continue;
        };
        // A message published on a node that has not (re)confirmed this
        // endpoint's subscriptions could be missed: appends wait until it
        // is a publish target, as every publish does.
        if !node.is_target() {
            let (appends, others): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|r| matches!(r, Request::Append { .. }));
            for r in appends {
                r.fail("redis node not a publish target", &mut resets);
            }
            batch = others;
            if batch.is_empty() {
                continue;
            }
        }
        if !serve(c, batch, &mut resets, t).await {
            conn = None;
        }
    }
    let mut lost = HashSet::new();
    rx.close();
    while let Ok(r) = rx.try_recv() {
        r.fail("redis node removed", &mut lost);
    }
}

async fn connect(node: &NodeShared, t: Duration) -> Result<Conn, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t))
        .set_response_timeout(None);
    let attempt = async {
        let mut conn = node
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let load = |src: &'static str| {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(src);
            cmd
        };
        let (append, read) = (load(APPEND), load(READ));
        let append: String = append
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let read: String = read
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            conn,
            scripts: Scripts { append, read },
        })
    };
    time::timeout(t * 2, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", (t * 2).as_millis())))
}

/// Runs one batch; false when the connection must be dropped.
async fn serve(
    c: &mut Conn,
    batch: Vec<Request>,
    resets: &mut HashSet<RoomKeys>,
    t: Duration,
) -> bool {
    let mut pipe = redis::pipe();
    // Rooms whose history may have missed a message go first.
    let mut resetting: Vec<RoomKeys> = resets.drain().collect();
    let mut work = Vec::with_capacity(batch.len());
    for r in batch {
        match r {
            Request::Reset { keys } => resetting.push(keys),
            other => work.push(other),
        }
    }
    for keys in &resetting {
        pipe.cmd("DEL").arg(&keys.meta).arg(&keys.list).ignore();
    }
    for r in &work {
        match r {
            Request::Append { keys, append, .. } => {
                let channel = append.channel.as_deref().unwrap_or("");
                let codec = match append.codec {
                    Codec::MsgPack => "m",
                    Codec::Json => "j",
                };
                pipe.cmd("EVALSHA")
                    .arg(&c.scripts.append)
                    .arg(2)
                    .arg(&keys.meta)
                    .arg(&keys.list)
                    .arg(new_epoch())
                    .arg(age_ms(&append.config))
                    .arg(append.config.max_messages.max(1))
                    .arg(&append.prefix[..])
                    .arg(&append.suffix[..])
                    .arg(codec)
                    .arg(channel);
            }
            Request::Read { keys, read, .. } => {
                let (epoch, offset) = match &read.after {
                    Some(p) => (&*p.epoch, p.offset),
                    None => ("", 0),
                };
                pipe.cmd("EVALSHA")
                    .arg(&c.scripts.read)
                    .arg(2)
                    .arg(&keys.meta)
                    .arg(&keys.list)
                    .arg(new_epoch())
                    .arg(age_ms(&read.config))
                    .arg(epoch)
                    .arg(offset)
                    .arg(read.limit.max(1))
                    .arg(read.max_bytes.max(1));
            }
            Request::Reset { .. } => {}
        }
    }
    let count = work.len();
    let sent = if count == 0 {
        time::timeout(t, pipe.query_async::<()>(&mut c.conn))
            .await
            .map(|r| r.map(|()| Vec::new()))
    } else {
        let offset = resetting.len();
        time::timeout(t, c.conn.send_packed_commands(&pipe, offset, count)).await
    };
    let replies = match sent {
        Ok(Ok(replies)) if replies.len() == count => replies,
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
            let why = match &sent {
                Err(_) => format!("no answer within {} ms", t.as_millis()),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(_)) => "unexpected reply".to_owned(),
            };
            resets.extend(resetting);
            for r in work {
                r.fail(&why, resets);
            }
            return false;
        }
    };
    let mut keep = true;
    for (r, reply) in work.into_iter().zip(replies) {
        if let Value::ServerError(e) = &reply {
            if e.code() == "NOSCRIPT" {
                keep = false; // reloaded with the next connection
            }
            r.fail(&format!("{e:?}"), resets);
            continue;
        }
        match r {
            Request::Append { keys, append, .. } => match parse_position(&reply) {
                Some(position) => (append.done)(Ok(position)),
                None => {
                    let charge = None;
                    let request = Request::Append {
                        keys,
                        append,
                        charge,
                    };
                    request.fail("unexpected reply", resets);
                }
            },
            Request::Read { reply: tx, .. } => {
                let stored = parse_stored(reply)
                    .ok_or_else(|| HistoryError::Unavailable("unexpected reply".into()));
                let _ = tx.send(stored);
            }
            Request::Reset { .. } => {}
        }
    }
    keep
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// `{epoch, offset}`.
fn parse_position(v: &Value) -> Option<Position> {
    let Value::Array(items) = v else { return None };
    match items.as_slice() {
        [epoch, offset] => Some(Position::new(text(epoch)?, int(offset)?)),
        _ => None,
    }
}

/// `{epoch, top, first, envelope…}`.
fn parse_stored(v: Value) -> Option<Stored> {
    let Value::Array(items) = v else { return None };
    let mut items = items.into_iter();
    let epoch = text(&items.next()?)?;
    let top = int(&items.next()?)?;
    // `first` is `top + 1` when nothing is held: never negative.
    let first = match items.next()? {
        Value::Int(n) => u64::try_from(n).unwrap_or(0),
        _ => return None,
    };
    let entries = items
        .map(|v| match v {
            Value::BulkString(b) => Some(Bytes::from(b)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Stored {
        top: Position::new(epoch, top),
        first,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unambiguous_and_share_a_cluster_slot() {
        let a = RoomKeys::new("a:b", "c");
        let b = RoomKeys::new("a", "b:c");
        assert_ne!(a.meta, b.meta);
        assert_eq!(a.meta, b"cw:h:{3:a:b:c}:m");
        assert_eq!(a.list, b"cw:h:{3:a:b:c}:l");
    }

    #[test]
    fn placement_is_stable_and_spreads_rooms() {
        // A fixed value: another version placing rooms elsewhere would
        // split a cluster's histories.
        assert_eq!(score("127.0.0.1:6379", "chat", "r1"), 0x330a_c7b1_ad7e_8150);
        // Addresses that differ in one character, rooms in their last one.
        let nodes = ["127.0.0.1:6390", "127.0.0.1:6391", "127.0.0.1:6392"];
        for rooms in [10usize, 3000] {
            let mut counts = [0usize; 3];
            for i in 0..rooms {
                let room = format!("r{i}");
                let best = (0..3)
                    .max_by_key(|&n| score(nodes[n], "bench", &room))
                    .unwrap_or(0);
                counts[best] += 1;
            }
            assert!(counts.iter().all(|&c| c * 5 >= rooms), "{counts:?}");
        }
    }
}
