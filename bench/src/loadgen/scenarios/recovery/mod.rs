//! `recovery`: missed-message recovery under a steady stream.
//!
//! C clients opted into recovery (`cwRecovery=1`) join rooms `r0..` of
//! namespace `bench`; one sender streams `room` events to the rooms in turn
//! at a rate ([`sender`]). During the stream a share of the clients drop
//! without a close frame (a TCP reset), stay away a while, and come back with
//! `cwResume` built from the positions they hold, to the same node or the
//! next one, and join their rooms again ([`client`]). Every datum carries
//! its room, its number in the room and its send time, so each client knows
//! what it should have received ([`track`]). The report counts what was
//! expected, received, missed, duplicated and out of order, the recoveries
//! the server reported incomplete, the messages sent again and their
//! latency. A complete recovery that lost something, a duplicate or a
//! message out of order fails the run; losses in rooms whose recovery was
//! reported incomplete are accounted for (`missed_unrecovered`).
//!
//! Faults: `--kill-node-at` kills -9 the first node's process (its clients
//! reconnect at once to the next node and resume there; the sender is on the
//! last node), `--kill-redis-at` a Redis server (the rooms whose history it
//! held must recover incompletely, and only their losses are forgiven).

mod client;
mod sender;
mod track;

use super::{add_errors, human_lat, push_verdict, wait_ready, Env, Outcome};
use crate::loadgen::cli::RecoveryArgs;
use crate::loadgen::client::Target;
use crate::loadgen::gen::Shared;
use crate::loadgen::hist::{round3, HistSet};
use crate::loadgen::wire::Proto;
use client::{client_task, ClientReport, Recoveries};
use sender::sender_task;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

/// How long the drain waits without any frame, once every dropped client
/// is back in its rooms, before it ends.
const QUIET: Duration = Duration::from_secs(1);

/// Name of room `k`.
pub(crate) fn room_name(k: usize) -> String {
    format!("r{k}")
}

/// What the clients and the sender of a run share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) target: Target,
    pub(crate) rooms: usize,
    pub(crate) rooms_per_client: usize,
    pub(crate) down: Duration,
    pub(crate) move_node: bool,
    /// Stop token and the first errors.
    pub(crate) sh: Arc<Shared>,
    /// Latency of the messages sent again.
    pub(crate) recovered_lat: HistSet,
    /// Latency of the others.
    pub(crate) live_lat: HistSet,
    /// Distinct messages received, all clients together.
    pub(crate) unique: AtomicU64,
    /// Room messages received, all clients together.
    pub(crate) frames: AtomicU64,
    /// Reconnections that went through.
    pub(crate) reconnects: AtomicU64,
    /// Reconnected clients that have their `_cw_joined` for every room.
    pub(crate) rejoined: AtomicU64,
    /// Dropped clients that could not come back.
    pub(crate) lost: AtomicU64,
    /// Messages sent to each room.
    pub(crate) sent: Vec<AtomicU64>,
    /// Set just before the first node is killed (`--kill-node-at`): its
    /// clients then move to the next node when their connection ends.
    pub(crate) node_killed: std::sync::atomic::AtomicBool,
    /// Clients that moved because their node was killed.
    pub(crate) moved: AtomicU64,
    /// The node the sender connects to.
    pub(crate) sender_node: usize,
}

/// Checks the options; the clients that drop are the first
/// `round(share × C)`.
fn check(env: &Env, a: &RecoveryArgs) -> Result<usize, String> {
    if env.target.proto != Proto::Original {
        return Err("recovery: only --proto original has missed-message recovery".into());
    }
    if a.c == 0 || a.rooms == 0 || a.rooms_per_client == 0 {
        return Err(
            "recovery: --clients, --rooms and --rooms-per-client must be at least 1".into(),
        );
    }
    if a.rate.is_nan() || a.duration.is_nan() || a.rate <= 0.0 || a.duration <= 0.0 {
        return Err("recovery: --rate and --duration must be positive".into());
    }
    if !(0.0..=1.0).contains(&a.drop_share) {
        return Err("recovery: --drop-share is a share, from 0 to 1".into());
    }
    if a.drop_at < 0.0 || a.spread < 0.0 || a.down < 0.0 || a.drain < 0.0 {
        return Err("recovery: times cannot be negative".into());
    }
    if a.kill_node_at.is_some() && env.target.urls.len() < 2 {
        return Err("recovery: --kill-node-at needs a second --url for its clients".into());
    }
    for at in [a.kill_node_at, a.kill_redis_at].into_iter().flatten() {
        if !(0.0..a.duration).contains(&at) {
            return Err("recovery: a kill must fall within --duration".into());
        }
    }
    if a.drop_at + a.spread >= a.duration {
        return Err(
            "recovery: the drops (--drop-at + --spread) must fall within --duration".into(),
        );
    }
    Ok((a.drop_share * a.c as f64).round() as usize)
}

/// `recovery`: see the module documentation.
pub async fn recovery(env: &Env, a: &RecoveryArgs) -> Outcome {
    let dropping = match check(env, a) {
        Ok(n) => n,
        Err(e) => {
            return Outcome {
                lines: vec![format!("FAILURE: {e}")],
                json: json!({ "scenario": "recovery" }),
                failures: vec![e],
            }
        }
    };
    let rooms_per_client = a.rooms_per_client.min(a.rooms);
    let threads = env.gen.threads();
    let sh = Arc::new(Shared::new(threads, 0));
    let ctx = Arc::new(Ctx {
        target: env.target.clone(),
        rooms: a.rooms,
        rooms_per_client,
        down: Duration::from_secs_f64(a.down),
        move_node: a.move_node,
        sh: sh.clone(),
        recovered_lat: HistSet::new(threads),
        live_lat: HistSet::new(threads),
        unique: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        rejoined: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        sent: (0..a.rooms).map(|_| AtomicU64::new(0)).collect(),
        node_killed: std::sync::atomic::AtomicBool::new(false),
        moved: AtomicU64::new(0),
        sender_node: if a.kill_node_at.is_some() {
            env.target.urls.len() - 1
        } else {
            0
        },
    });
    let params = json!({
        "clients": a.c, "rooms": a.rooms, "rooms_per_client": rooms_per_client,
        "rate": a.rate, "duration_s": a.duration, "drop_share": a.drop_share,
        "dropped": dropping, "drop_at_s": a.drop_at, "spread_s": a.spread,
        "down_s": a.down, "move": a.move_node, "drain_s": a.drain,
        "nodes": env.target.urls.len(),
        "kill_node_at_s": a.kill_node_at, "kill_redis_at_s": a.kill_redis_at,
    });
    let (start_tx, start_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::with_capacity(a.c);
    for i in 0..a.c {
        let drop_after = (i < dropping).then(|| {
            let frac = if dropping > 1 {
                i as f64 / (dropping - 1) as f64
            } else {
                0.0
            };
            Duration::from_secs_f64(a.drop_at + a.spread * frac)
        });
        let fut = client_task(
            ctx.clone(),
            i,
            drop_after,
            sem.clone(),
            ready_tx.clone(),
            start_rx.clone(),
        );
        handles.push(env.gen.spawn(i, fut));
    }
    let total = (a.rate * a.duration).ceil() as u64;
    let (done_tx, done_rx) = oneshot::channel();
    let sender = env.gen.spawn(
        a.c,
        sender_task(ctx.clone(), total, a.rate, ready_tx, start_rx, done_tx),
    );
    let opened = wait_ready(&mut ready_rx, a.c + 1).await;
    eprintln!(
        "recovery: {} clients in {} rooms and the sender connected in {:.2} s",
        a.c, a.rooms, opened.secs
    );
    let mut failures = opened.failures;
    let mut notes = Vec::new();
    let mut drained_s = 0.0;
    if failures.is_empty() {
        let start = Instant::now() + Duration::from_millis(100);
        let _ = start_tx.send(Some(start));
        let kills = [
            (a.kill_node_at, a.kill_node_pid, "node"),
            (a.kill_redis_at, a.kill_redis_pid, "redis"),
        ];
        for (at, pid, what) in kills {
            if let (Some(at), Some(pid)) = (at, pid) {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
                    if what == "node" {
                        ctx.node_killed.store(true, Relaxed);
                    }
                    kill9(pid, what, &ctx);
                });
            }
        }
        eprintln!(
            "recovery: streaming {total} messages for {} s; {dropping} clients drop at {} s for {} s",
            a.duration, a.drop_at, a.down
        );
        let limit = Duration::from_secs_f64(a.duration) + Duration::from_secs(30);
        if tokio::time::timeout(limit, done_rx).await.is_err() {
            failures.push(format!("the stream did not end within {limit:?}"));
        }
        let t0 = Instant::now();
        let expected = expected_total(&ctx, a.c, rooms_per_client);
        let mut last = (ctx.frames.load(Relaxed), Instant::now());
        loop {
            if ctx.unique.load(Relaxed) >= expected {
                break;
            }
            let frames = ctx.frames.load(Relaxed);
            if frames != last.0 {
                last = (frames, Instant::now());
            }
            let away = dropping as u64 + ctx.moved.load(Relaxed);
            let back = ctx.rejoined.load(Relaxed) + ctx.lost.load(Relaxed) >= away;
            if back && last.1.elapsed() >= QUIET {
                break;
            }
            if t0.elapsed().as_secs_f64() >= a.drain {
                notes.push(format!(
                    "the clients had not caught up after --drain {} s",
                    a.drain
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drained_s = t0.elapsed().as_secs_f64();
    }
    sh.stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ = tokio::time::timeout_at(deadline, sender).await;
    let mut reports = Vec::with_capacity(handles.len());
    for h in handles {
        match tokio::time::timeout_at(deadline, h).await {
            Ok(Ok(r)) => reports.push(r),
            _ => failures.push("a client task did not end".into()),
        }
    }
    let sent: Vec<u64> = ctx.sent.iter().map(|s| s.load(Relaxed)).collect();
    let t = Totals::of(&reports, &sent);
    let recovered_lat = ctx.recovered_lat.snapshot();
    let live_lat = ctx.live_lat.snapshot();
    let complete_loss = t.missed - t.missed_unrecovered;
    if complete_loss > 0 {
        failures.push(format!(
            "{complete_loss} messages missed without a recovery reported incomplete"
        ));
    }
    if t.duplicates > 0 {
        failures.push(format!("{} duplicate deliveries", t.duplicates));
    }
    if t.out_of_order > 0 {
        failures.push(format!("{} messages out of order", t.out_of_order));
    }
    if t.lost > 0 {
        failures.push(format!("{} dropped clients could not come back", t.lost));
    }
    if t.awaiting > 0 {
        failures.push(format!(
            "{} rooms got no _cw_joined after their client came back",
            t.awaiting
        ));
    }
    if t.bad > 0 {
        failures.push(format!(
            "{} frames without a valid datum or position, or unknown",
            t.bad
        ));
    }
    let disconnects = sh.disconnects.load(Relaxed);
    if disconnects > 0 {
        failures.push(format!("{disconnects} connections ended unexpectedly"));
    }
    if t.dropped < dropping as u64 && failures.is_empty() {
        failures.push(format!("only {} of {dropping} clients dropped", t.dropped));
    }
    let r = &t.recoveries;
    let mut lines = vec![
        format!(
            "recovery ({} node(s), {} clients in {} rooms, {} each; {} msgs/s for {} s; {} dropped for {} s{})",
            env.target.urls.len(),
            a.c,
            a.rooms,
            rooms_per_client,
            a.rate,
            a.duration,
            dropping,
            a.down,
            if a.move_node { ", moving to the next node" } else { "" }
        ),
        format!(
            "expected {} received {} missed {} (of which in rooms recovered incompletely {}) duplicates {} out of order {}",
            t.expected, t.received, t.missed, t.missed_unrecovered, t.duplicates, t.out_of_order
        ),
        format!(
            "recoveries: {} complete, {} incomplete (too_old {}, epoch_changed {}, unavailable {}), {} none; {} messages sent again ({} announced)",
            r.complete, r.incomplete, r.too_old, r.epoch_changed, r.unavailable, r.none, t.recovered, r.announced
        ),
        format!(
            "moved after a node was killed: {}; room messages without a position (history unavailable): {}",
            ctx.moved.load(Relaxed),
            t.unpositioned
        ),
        format!("recovered messages: {}", human_lat(&recovered_lat)),
        format!("live messages: {}", human_lat(&live_lat)),
    ];
    if env.target.urls.len() > 1 && a.kill_redis_at.is_none() && t.recoveries.epoch_changed > 0 {
        notes.push(
            "epoch changes between nodes: do they share a history (the same Redis \
             servers with --redis, or one bench-server process)?"
                .into(),
        );
    }
    push_verdict(&mut lines, &notes, &failures);
    let json = json!({
        "scenario": "recovery",
        "params": params,
        "sent": sent.iter().sum::<u64>(),
        "expected": t.expected,
        "received": t.received,
        "missed": t.missed,
        "missed_unrecovered": t.missed_unrecovered,
        "duplicates": t.duplicates,
        "out_of_order": t.out_of_order,
        "unrecovered": r.incomplete,
        "recovered": t.recovered,
        "recoveries": {
            "complete": r.complete, "incomplete": r.incomplete, "none": r.none,
            "too_old": r.too_old, "epoch_changed": r.epoch_changed,
            "unavailable": r.unavailable, "announced": r.announced,
        },
        "dropped": t.dropped,
        "moved": ctx.moved.load(Relaxed),
        "unpositioned": t.unpositioned,
        "reconnects": ctx.reconnects.load(Relaxed),
        "lost_clients": t.lost,
        "recovered_latency": recovered_lat.to_json(),
        "live_latency": live_lat.to_json(),
        "connect_s": round3(opened.secs),
        "drain_s": round3(drained_s),
        "notes": notes,
    });
    let mut out = Outcome {
        lines,
        json,
        failures,
    };
    add_errors(&mut out, &sh);
    out
}

/// Messages the clients should receive, from what was sent so far.
fn expected_total(ctx: &Ctx, clients: usize, per_client: usize) -> u64 {
    let mut members = vec![0u64; ctx.rooms];
    for i in 0..clients {
        for j in 0..per_client {
            members[(i + j) % ctx.rooms] += 1;
        }
    }
    ctx.sent
        .iter()
        .zip(members)
        .map(|(s, m)| s.load(Relaxed) * m)
        .sum()
}

/// The clients' reports added up.
#[derive(Debug, Default)]
struct Totals {
    expected: u64,
    received: u64,
    missed: u64,
    missed_unrecovered: u64,
    duplicates: u64,
    out_of_order: u64,
    recovered: u64,
    recoveries: Recoveries,
    dropped: u64,
    lost: u64,
    awaiting: u64,
    bad: u64,
    unpositioned: u64,
}

impl Totals {
    fn of(reports: &[ClientReport], sent: &[u64]) -> Totals {
        let mut t = Totals::default();
        for r in reports {
            for (room, track) in &r.rooms {
                let s = sent.get(*room).copied().unwrap_or(0);
                let missed = track.missed(s);
                t.expected += s;
                t.received += track.unique;
                t.missed += missed;
                if track.incomplete {
                    t.missed_unrecovered += missed;
                }
                t.duplicates += track.duplicates;
                t.out_of_order += track.out_of_order;
                t.recovered += track.recovered;
                if r.reconnects > 0 && track.awaiting_joined {
                    t.awaiting += 1;
                }
            }
            t.recoveries.merge(&r.recoveries);
            t.dropped += u64::from(r.dropped);
            t.lost += u64::from(r.lost.is_some());
            t.bad += r.bad + r.join_errors;
            t.unpositioned += r.unpositioned;
        }
        t
    }
}

/// Kills process `pid` with SIGKILL (`kill -9`), as a crash would.
fn kill9(pid: u32, what: &str, ctx: &Ctx) {
    eprintln!("recovery: killing the {what} process {pid} (kill -9)");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        ctx.sh.error(format!(
            "could not kill the {what} process {pid}: {status:?}"
        ));
    }
}
