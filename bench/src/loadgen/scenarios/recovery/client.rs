//! One opted-in client of `recovery`: it joins its rooms, checks every
//! message of the stream it receives, and, if it is one of those that drop,
//! resets its connection at its time, stays away, and comes back resuming
//! from the positions it holds.

use super::track::{Arrival, RoomTrack};
use super::{room_name, Ctx};
use crate::loadgen::client::OPEN_TIMEOUT;
use crate::loadgen::scenarios::{alive, NS, REPLY_TIMEOUT};
use crate::loadgen::sys::now_us;
use crate::loadgen::wire::{encode_event, Datum, Proto};
use crate::loadgen::ws::{self, WsConn};
use crosswire::protocol::history::{
    encode_resume, GapReason, Joined, RecoveryStatus, RoomPosition, JOINED_EVENT, LEFT_EVENT,
    POSITION_KEY, RECOVERED_KEY, RECOVERY_PARAM, RESUME_PARAM,
};
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Attempts at reconnecting before a dropped client gives up.
const RECONNECT_ATTEMPTS: usize = 10;
/// Pause between two attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// How the `_cw_joined` frames a client got after reconnecting went.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Recoveries {
    /// `complete`.
    pub(crate) complete: u64,
    /// `incomplete` (of any reason).
    pub(crate) incomplete: u64,
    /// `none`: the node had no position of the client for the room.
    pub(crate) none: u64,
    /// `incomplete` because of `too_old`.
    pub(crate) too_old: u64,
    /// `incomplete` because of `epoch_changed`.
    pub(crate) epoch_changed: u64,
    /// `incomplete` because of `unavailable`.
    pub(crate) unavailable: u64,
    /// Sum of their `recovered` counts (what the node says it sent again).
    pub(crate) announced: u64,
}

impl Recoveries {
    fn add(&mut self, j: &Joined) {
        self.announced += j.recovered;
        match j.recovery {
            RecoveryStatus::Complete => self.complete += 1,
            RecoveryStatus::None => self.none += 1,
            RecoveryStatus::Incomplete => {
                self.incomplete += 1;
                match j.reason {
                    Some(GapReason::TooOld) => self.too_old += 1,
                    Some(GapReason::EpochChanged) => self.epoch_changed += 1,
                    Some(GapReason::Unavailable) | None => self.unavailable += 1,
                }
            }
        }
    }

    /// Adds another client's counts.
    pub(crate) fn merge(&mut self, o: &Recoveries) {
        self.complete += o.complete;
        self.incomplete += o.incomplete;
        self.none += o.none;
        self.too_old += o.too_old;
        self.epoch_changed += o.epoch_changed;
        self.unavailable += o.unavailable;
        self.announced += o.announced;
    }
}

/// What a client reports at the end.
#[derive(Debug, Default)]
pub(crate) struct ClientReport {
    /// Its rooms (indices) and what it saw of each.
    pub(crate) rooms: Vec<(usize, RoomTrack)>,
    /// The `_cw_joined` outcomes after its reconnections.
    pub(crate) recoveries: Recoveries,
    /// It was one of the clients that drop, and did.
    pub(crate) dropped: bool,
    /// Reconnections that went through.
    pub(crate) reconnects: u64,
    /// Why it could not come back, if it could not.
    pub(crate) lost: Option<String>,
    /// Frames it could not make sense of (or room messages without `cwPos`).
    pub(crate) bad: u64,
    /// Joins that were not answered `{"ok":true}`.
    pub(crate) join_errors: u64,
    /// Room messages without a position (sent while the room's history
    /// could not take them).
    pub(crate) unpositioned: u64,
}

/// The state of one client.
#[derive(Default)]
struct Client {
    id: String,
    rooms: Vec<usize>,
    tracks: Vec<RoomTrack>,
    recoveries: Recoveries,
    reconnects: u64,
    /// Join replies still expected.
    pending_joins: u64,
    next_callback: u64,
    bad: u64,
    join_errors: u64,
    unpositioned: u64,
    dropped: bool,
}

impl Client {
    fn slot(&self, room: usize) -> Option<usize> {
        self.rooms.iter().position(|&r| r == room)
    }

    fn report(self, lost: Option<String>) -> ClientReport {
        ClientReport {
            rooms: self.rooms.into_iter().zip(self.tracks).collect(),
            recoveries: self.recoveries,
            dropped: self.dropped,
            reconnects: self.reconnects,
            lost,
            bad: self.bad,
            join_errors: self.join_errors,
            unpositioned: self.unpositioned,
        }
    }

    /// Queues a `join` of every room, each expecting a reply, and waits for
    /// their `_cw_joined`.
    fn join_all(&mut self, c: &mut WsConn) {
        for (k, &room) in self.rooms.iter().enumerate() {
            self.next_callback += 1;
            let id = self.next_callback;
            c.outbox().text_with(|b| {
                encode_event(Proto::Original, b, "join", Some(id), |b| {
                    let _ = std::io::Write::write_fmt(
                        b,
                        format_args!(r#"{{"ns":"{NS}","room":"{}"}}"#, room_name(room)),
                    );
                })
            });
            self.tracks[k].awaiting_joined = true;
            self.pending_joins += 1;
        }
    }

    /// The `cwResume` value: the position held for every room.
    fn resume(&self) -> String {
        let positions: Vec<RoomPosition> = self
            .rooms
            .iter()
            .zip(&self.tracks)
            .filter_map(|(&room, t)| {
                let (epoch, offset) = t.position.as_ref()?;
                Some(RoomPosition::new(
                    NS,
                    room_name(room),
                    epoch.clone(),
                    *offset,
                ))
            })
            .collect();
        encode_resume(&positions)
    }

    /// Accounts for one frame received at `now` (µs).
    fn on_frame(&mut self, ctx: &Ctx, m: &[u8], now: u64) {
        let Ok(v) = serde_json::from_slice::<Value>(m) else {
            self.bad += 1;
            return;
        };
        if v.get("callbackId").is_some() {
            self.pending_joins = self.pending_joins.saturating_sub(1);
            if v.pointer("/payload/ok") != Some(&Value::Bool(true)) {
                self.join_errors += 1;
                ctx.sh
                    .error(format!("{}: join replied {}", self.id, v["payload"]));
            }
            return;
        }
        match v.get("event").and_then(Value::as_str) {
            Some("room") => self.on_room(ctx, &v, now),
            Some(JOINED_EVENT) => self.on_joined(ctx, &v),
            Some(LEFT_EVENT) => {
                let room = v.pointer("/payload/room").and_then(Value::as_str);
                match room.and_then(room_index).and_then(|r| self.slot(r)) {
                    Some(k) => self.tracks[k].position = None,
                    None => self.bad += 1,
                }
            }
            _ => self.bad += 1,
        }
    }

    fn on_room(&mut self, ctx: &Ctx, v: &Value, now: u64) {
        ctx.frames.fetch_add(1, Relaxed);
        let datum = v.get("payload").and_then(Datum::from_value);
        let Some((d, k)) = datum.and_then(|d| Some((d, self.slot(d.s as usize)?))) else {
            self.bad += 1;
            return;
        };
        let pos = v.get(POSITION_KEY);
        let epoch = pos.and_then(|p| p.get("epoch")).and_then(Value::as_str);
        let offset = pos.and_then(|p| p.get("offset")).and_then(Value::as_u64);
        let track = &mut self.tracks[k];
        match (pos, epoch, offset) {
            (Some(_), Some(e), Some(o)) => track.position = Some((e.to_owned(), o)),
            // Sent while the room's history could not take it: delivered,
            // but no position to keep.
            (None, _, _) => self.unpositioned += 1,
            _ => self.bad += 1,
        }
        let recovered = v.get(RECOVERED_KEY) == Some(&Value::Bool(true));
        if recovered {
            track.recovered += 1;
        }
        match track.arrive(d.q) {
            Arrival::New | Arrival::OutOfOrder => {
                ctx.unique.fetch_add(1, Relaxed);
                let lat = now.saturating_sub(d.t);
                if recovered {
                    ctx.recovered_lat.record(lat);
                } else {
                    ctx.live_lat.record(lat);
                }
            }
            Arrival::Duplicate => {}
            Arrival::Invalid => self.bad += 1,
        }
    }

    fn on_joined(&mut self, ctx: &Ctx, v: &Value) {
        let joined = v
            .get("payload")
            .and_then(|p| serde_json::from_value::<Joined>(p.clone()).ok());
        let Some(j) = joined.filter(|j| j.ns == NS) else {
            self.bad += 1;
            return;
        };
        let Some(k) = room_index(&j.room).and_then(|r| self.slot(r)) else {
            self.bad += 1;
            return;
        };
        let track = &mut self.tracks[k];
        track.position = Some((j.epoch.clone(), j.offset));
        if self.reconnects > 0 {
            self.recoveries.add(&j);
            if j.recovery == RecoveryStatus::Incomplete {
                track.incomplete = true;
            }
        }
        if track.awaiting_joined {
            track.awaiting_joined = false;
            if self.reconnects > 0 && self.tracks.iter().all(|t| !t.awaiting_joined) {
                ctx.rejoined.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Room index of `rK`.
fn room_index(name: &str) -> Option<usize> {
    name.strip_prefix('r')?.parse().ok()
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens an opted-in connection of `id` to node `node`, resuming from
/// `resume` when given.
async fn open(
    ctx: &Ctx,
    i: usize,
    node: usize,
    id: &str,
    resume: Option<&str>,
) -> Result<WsConn, String> {
    let t = &ctx.target;
    let addr = t.urls[node % t.urls.len()];
    let mut path = format!("/?id={id}&{RECOVERY_PARAM}=1");
    if let Some(r) = resume {
        path.push_str(&format!("&{RESUME_PARAM}={}", percent_encode(r)));
    }
    ws::connect(addr, t.src_of(i), &path, 4096, OPEN_TIMEOUT)
        .await
        .map_err(|e| format!("connect {id} to {addr}: {e}"))
}

/// Reads and accounts for frames until every join was answered.
async fn settle_joins(c: &mut WsConn, ctx: &Ctx, cl: &mut Client) -> Result<(), String> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    c.flush().await.map_err(|e| format!("{}: {e}", cl.id))?;
    // The position may come after the reply (a history read from Redis).
    while cl.pending_joins > 0 || cl.tracks.iter().any(|t| t.awaiting_joined) {
        match tokio::time::timeout_at(deadline, c.fill()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{}: while joining: {e}", cl.id)),
            Err(_) if cl.pending_joins == 0 => break,
            Err(_) => return Err(format!("{}: no reply to join in {REPLY_TIMEOUT:?}", cl.id)),
        }
        let now = now_us();
        c.parse(|m, _| cl.on_frame(ctx, m, now))
            .map_err(|e| format!("{}: {e}", cl.id))?;
        c.flush().await.map_err(|e| format!("{}: {e}", cl.id))?;
    }
    if let Some(k) = cl.tracks.iter().position(|t| t.awaiting_joined) {
        return Err(format!(
            "{}: joined room {} but got no {JOINED_EVENT}: the server keeps no history of \
             namespace {NS} (bench-server --history {NS})",
            cl.id,
            room_name(cl.rooms[k])
        ));
    }
    if cl.join_errors > 0 {
        return Err(format!("{}: a join was refused", cl.id));
    }
    Ok(())
}

/// Connects client `i`, joins its rooms, reports to `ready`, then runs until
/// the scenario stops. `drop_after`: when it drops, counted from the start of
/// the stream (sent on `start`).
pub(crate) async fn client_task(
    ctx: Arc<Ctx>,
    i: usize,
    drop_after: Option<Duration>,
    sem: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut start: watch::Receiver<Option<Instant>>,
) -> ClientReport {
    let rooms: Vec<usize> = (0..ctx.rooms_per_client)
        .map(|j| (i + j) % ctx.rooms)
        .collect();
    let mut cl = Client {
        id: format!("c{i}"),
        tracks: vec![RoomTrack::default(); rooms.len()],
        rooms,
        recoveries: Recoveries::default(),
        reconnects: 0,
        pending_joins: 0,
        next_callback: 0,
        bad: 0,
        join_errors: 0,
        unpositioned: 0,
        dropped: false,
    };
    let mut node = ctx.target.node_of(i);
    let permit = sem.acquire().await;
    let opened = match open(&ctx, i, node, &cl.id, None).await {
        Ok(mut c) => {
            cl.join_all(&mut c);
            settle_joins(&mut c, &ctx, &mut cl).await.map(|()| c)
        }
        Err(e) => Err(e),
    };
    drop(permit);
    let mut c = match opened {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return cl.report(None);
        }
    };
    let never = Instant::now() + Duration::from_secs(86_400);
    let mut drop_at: Option<Instant> = None;
    let mut started = false;
    loop {
        let mut now_drop = false;
        let mut moving = false;
        tokio::select! {
            biased;
            _ = ctx.sh.stop.cancelled() => break,
            ch = start.changed(), if !started => {
                if ch.is_err() {
                    started = true;
                    continue;
                }
                if let Some(s) = *start.borrow_and_update() {
                    started = true;
                    drop_at = drop_after.map(|d| s + d);
                }
            }
            _ = tokio::time::sleep_until(drop_at.unwrap_or(never)), if drop_at.is_some() => {
                now_drop = true;
            }
            r = c.fill() => {
                if r.is_err() && on_killed_node(&ctx, node) {
                    // Its node was killed: it moves to the next one now.
                    ctx.moved.fetch_add(1, Relaxed);
                    moving = true;
                } else if !alive(&ctx.sh, &cl.id, r) {
                    break;
                }
                if !moving {
                    let now = now_us();
                    let r = c.parse(|m, _| cl.on_frame(&ctx, m, now));
                    if !alive(&ctx.sh, &cl.id, r) {
                        break;
                    }
                }
            }
        }
        if moving {
            drop(c);
            c = match come_back(&ctx, &mut cl, i, &mut node).await {
                Ok(c) => c,
                Err(report) => return *report,
            };
            continue;
        }
        if c.has_output() {
            let r = c.flush().await;
            if !alive(&ctx.sh, &cl.id, r) {
                break;
            }
        }
        if !now_drop {
            continue;
        }
        drop_at = None;
        // No close frame: the socket has linger 0, so closing it resets the
        // connection.
        drop(c);
        cl.dropped = true;
        tokio::select! {
            _ = ctx.sh.stop.cancelled() => return cl.report(Some("stopped while away".into())),
            _ = tokio::time::sleep(ctx.down) => {}
        }
        if ctx.move_node {
            node += 1;
        }
        c = match come_back(&ctx, &mut cl, i, &mut node).await {
            Ok(c) => c,
            Err(report) => return *report,
        };
    }
    cl.report(None)
}

/// Whether `node` is the first node and it was killed.
fn on_killed_node(ctx: &Ctx, node: usize) -> bool {
    ctx.node_killed.load(Relaxed) && node.is_multiple_of(ctx.target.urls.len())
}

/// Reconnects client `i` to `node` (the next one while that one is the
/// killed node), resuming from its positions, and joins its rooms again;
/// the client's final report when it cannot.
async fn come_back(
    ctx: &Ctx,
    cl: &mut Client,
    i: usize,
    node: &mut usize,
) -> Result<WsConn, Box<ClientReport>> {
    let resume = cl.resume();
    let mut attempt = 0;
    let mut c = loop {
        if on_killed_node(ctx, *node) {
            *node += 1;
        }
        attempt += 1;
        match open(ctx, i, *node, &cl.id, Some(&resume)).await {
            Ok(c) => break c,
            Err(e) if attempt >= RECONNECT_ATTEMPTS || ctx.sh.stop.is_cancelled() => {
                ctx.sh.error(format!("{}: could not come back: {e}", cl.id));
                ctx.lost.fetch_add(1, Relaxed);
                return Err(Box::new(std::mem::take(cl).report(Some(e))));
            }
            Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
        }
    };
    cl.reconnects += 1;
    ctx.reconnects.fetch_add(1, Relaxed);
    cl.join_all(&mut c);
    if let Err(e) = c.flush().await {
        ctx.sh.disconnected(&cl.id, e.to_string());
        return Err(Box::new(std::mem::take(cl).report(None)));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_values_are_percent_encoded() {
        let r = encode_resume(&[RoomPosition::new("bench", "r1", "ab12", 7)]);
        assert_eq!(
            percent_encode(&r),
            "%5B%5B%22bench%22%2C%22r1%22%2C%22ab12%22%2C7%5D%5D"
        );
        assert_eq!(room_index("r12"), Some(12));
        assert_eq!(room_index("x1"), None);
    }
}
