//! `presence`: room presence, one session per user and cluster-wide queries
//! on several nodes (bench-server `--presence bench --one-session`).
//!
//! 1. Users log in in waves: each user opens **two** connections at the
//!    same moment, to node `u mod K` and node `u+1 mod K`, with the same id,
//!    and joins room `p{u mod R}` on both. One session per id must close one
//!    of them with 4012.
//! 2. After `--settle` seconds: users with two open sessions
//!    (`duplicate_sessions`), the members every node lists for every room
//!    against the open sessions (`ghosts`: listed but not there, `missing`:
//!    there but not listed), and `--queries` cluster-wide queries of a room
//!    (`query_ms`, and any count that is wrong).
//! 3. `--freeze-pid`: that node is frozen (SIGSTOP) for a few queries, which
//!    must come back partial within their timeout; then it runs again.
//! 4. An observer (`cwPresence=1`) on the last node joins every room.
//! 5. `--kill-node-pid`: the first node is killed (-9); the observer must
//!    see a leave for every member it held (`leave_latency_ms` from the
//!    kill), and the surviving nodes must list none of them afterwards.

use super::{signal, Env, Outcome};
use crate::loadgen::cli::PresenceArgs;
use crate::loadgen::client::OPEN_TIMEOUT;
use crate::loadgen::wire::{decode, encode_event, Incoming, Proto};
use crate::loadgen::ws::{self, WsConn, WsError};
use rustix::process::Signal;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The namespace with presence.
const PNS: &str = "bench";
/// A session's state.
const CONNECTING: u8 = 0;
const OPEN: u8 = 1;
const KICKED: u8 = 2;
const ENDED: u8 = 3;

fn room_of(u: usize, rooms: usize) -> String {
    format!("p{}", u % rooms)
}

/// Sends `event` with callback `id` and `payload`.
fn call(c: &mut WsConn, event: &str, id: u64, payload: &Value) {
    let text = payload.to_string();
    c.outbox().text_with(|b| {
        encode_event(Proto::Original, b, event, Some(id), |b| {
            b.extend_from_slice(text.as_bytes())
        })
    });
}

/// One session of a user: connects, joins its room, stays until the node
/// closes it or the run stops; its state in `state`.
async fn session(
    addr: std::net::SocketAddr,
    id: String,
    room: String,
    state: Arc<AtomicU8>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut c) = ws::connect(addr, None, &format!("/?id={id}"), 4096, OPEN_TIMEOUT).await else {
        state.store(ENDED, Relaxed);
        return;
    };
    state.store(OPEN, Relaxed);
    call(&mut c, "join", 1, &json!({ "ns": PNS, "room": room }));
    let _ = c.flush().await;
    // What came with the upgrade's answer (a close at once) first.
    let mut first = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = async { if first { Ok(()) } else { c.fill().await } } => {
                first = false;
                let r = r.and_then(|()| c.parse(|_, _| {}));
                match r {
                    Ok(_) => {}
                    Err(WsError::Closed(Some(4012))) => {
                        state.store(KICKED, Relaxed);
                        return;
                    }
                    Err(_) => {
                        state.store(ENDED, Relaxed);
                        return;
                    }
                }
                if c.has_output() && c.flush().await.is_err() {
                    state.store(ENDED, Relaxed);
                    return;
                }
            }
        }
    }
}

/// A connection that asks a node things (`presence`, `query`) and waits for
/// the answers.
struct Probe {
    c: WsConn,
    next: u64,
}

impl Probe {
    async fn open(addr: std::net::SocketAddr, id: &str) -> Result<Probe, String> {
        let c = ws::connect(addr, None, &format!("/?id={id}"), 1 << 20, OPEN_TIMEOUT)
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        Ok(Probe { c, next: 0 })
    }

    /// Sends every request, then collects the replies in request order.
    async fn ask_all(&mut self, event: &str, payloads: &[Value]) -> Result<Vec<Value>, String> {
        let first = self.next + 1;
        for p in payloads {
            self.next += 1;
            call(&mut self.c, event, self.next, p);
        }
        self.c.flush().await.map_err(|e| e.to_string())?;
        let mut replies: HashMap<u64, Value> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while replies.len() < payloads.len() {
            tokio::time::timeout_at(deadline, self.c.fill())
                .await
                .map_err(|_| format!("{event}: no reply in 30 s"))?
                .map_err(|e| e.to_string())?;
            self.c
                .parse(|m, _| {
                    if let Incoming::Reply { id, payload } = decode(Proto::Original, m, b"") {
                        replies.insert(id, payload);
                    }
                })
                .map_err(|e| e.to_string())?;
            if self.c.has_output() {
                self.c.flush().await.map_err(|e| e.to_string())?;
            }
        }
        Ok((first..=self.next)
            .map(|i| replies.remove(&i).unwrap_or(Value::Null))
            .collect())
    }
}

/// Observer `o` (`cwPresence=1`) on `addr`, in rooms `chunk`, once every
/// join was answered.
async fn observer(addr: std::net::SocketAddr, o: usize, chunk: &[usize]) -> Result<WsConn, String> {
    let path = format!("/?id=observer{o}&cwPresence=1");
    let mut c = ws::connect(addr, None, &path, 1 << 20, OPEN_TIMEOUT)
        .await
        .map_err(|e| format!("observer: {e}"))?;
    for (i, r) in chunk.iter().enumerate() {
        call(
            &mut c,
            "join",
            i as u64 + 1,
            &json!({ "ns": PNS, "room": format!("p{r}") }),
        );
    }
    c.flush().await.map_err(|e| e.to_string())?;
    let mut joined = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while joined < chunk.len() {
        tokio::time::timeout_at(deadline, c.fill())
            .await
            .map_err(|_| "observer: joins not answered in 30 s".to_owned())?
            .map_err(|e| format!("observer: {e}"))?;
        c.parse(|m, _| {
            if matches!(decode(Proto::Original, m, b""), Incoming::Reply { .. }) {
                joined += 1;
            }
        })
        .map_err(|e| format!("observer: {e}"))?;
        if c.has_output() {
            c.flush().await.map_err(|e| e.to_string())?;
        }
    }
    Ok(c)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    (v[i.min(v.len() - 1)] * 1000.0).round() / 1000.0
}

/// `presence`: see the module documentation.
pub async fn presence(env: &Env, a: &PresenceArgs) -> Outcome {
    match run(env, a).await {
        Ok(out) => out,
        Err(e) => Outcome {
            lines: vec![format!("FAILURE: {e}")],
            json: json!({ "scenario": "presence", "error": e }),
            failures: vec![e],
        },
    }
}

async fn run(env: &Env, a: &PresenceArgs) -> Result<Outcome, String> {
    let urls = &env.target.urls;
    let k = urls.len();
    if k < 2 {
        return Err("presence: needs at least two --url (nodes)".into());
    }
    if env.target.proto != Proto::Original {
        return Err("presence: only --proto original".into());
    }
    let users = a.users.max(1);
    let rooms = a.rooms.unwrap_or(users.div_ceil(10)).max(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut failures = Vec::new();

    // 2. Logins in waves, two sessions per user at once.
    let states: Vec<[Arc<AtomicU8>; 2]> = (0..users)
        .map(|_| {
            [
                Arc::new(AtomicU8::new(CONNECTING)),
                Arc::new(AtomicU8::new(CONNECTING)),
            ]
        })
        .collect();
    let t_login = Instant::now();
    let mut handles = Vec::with_capacity(users * 2);
    for wave in (0..users).collect::<Vec<_>>().chunks(a.wave.max(1)) {
        for &u in wave {
            for (slot, node) in [u % k, (u + 1) % k].into_iter().enumerate() {
                let fut = session(
                    urls[node],
                    format!("u{u}"),
                    room_of(u, rooms),
                    states[u][slot].clone(),
                    stop_rx.clone(),
                );
                handles.push(env.gen.spawn(u * 2 + slot, fut));
            }
        }
        // The wave is in when every session connected (or failed).
        let deadline = Instant::now() + Duration::from_secs(60);
        while wave
            .iter()
            .any(|&u| states[u].iter().any(|s| s.load(Relaxed) == CONNECTING))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let login_s = t_login.elapsed().as_secs_f64();
    eprintln!(
        "presence: {users} users logged in twice in {login_s:.2} s; settling {} s",
        a.settle
    );
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;

    // 3. Sessions, presence on every node, queries.
    let open_of = |u: usize| -> Vec<usize> {
        (0..2)
            .filter(|&s| states[u][s].load(Relaxed) == OPEN)
            .collect()
    };
    let node_of = |u: usize, slot: usize| if slot == 0 { u % k } else { (u + 1) % k };
    let duplicate_sessions = (0..users).filter(|&u| open_of(u).len() == 2).count();
    let lost_sessions = (0..users).filter(|&u| open_of(u).is_empty()).count();
    let kicked = (0..users)
        .flat_map(|u| (0..2).map(move |s| (u, s)))
        .filter(|&(u, s)| states[u][s].load(Relaxed) == KICKED)
        .count();
    let truth = |exclude_node: Option<usize>| -> Vec<HashSet<String>> {
        let mut t = vec![HashSet::new(); rooms];
        for u in 0..users {
            if open_of(u)
                .iter()
                .any(|&s| Some(node_of(u, s)) != exclude_node)
            {
                t[u % rooms].insert(format!("u{u}"));
            }
        }
        t
    };
    let mut probes = Vec::with_capacity(k);
    for (i, url) in urls.iter().enumerate() {
        probes.push(Probe::open(*url, &format!("probe{i}")).await?);
    }
    let room_asks: Vec<Value> = (0..rooms)
        .map(|r| json!({ "ns": PNS, "room": format!("p{r}") }))
        .collect();
    let compare = |listed: &[Value], t: &[HashSet<String>]| -> (usize, usize) {
        let (mut ghosts, mut missing) = (0, 0);
        for (r, reply) in listed.iter().enumerate() {
            let ids: HashSet<String> = reply["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let ids: HashSet<String> = ids.into_iter().filter(|id| id.starts_with('u')).collect();
            ghosts += ids.difference(&t[r]).count();
            missing += t[r].difference(&ids).count();
        }
        (ghosts, missing)
    };
    let t_all = truth(None);
    let (mut ghosts, mut missing) = (0, 0);
    for p in probes.iter_mut() {
        let listed = p.ask_all("presence", &room_asks).await?;
        let (g, m) = compare(&listed, &t_all);
        ghosts += g;
        missing += m;
    }
    // Where the servers see the users with two sessions (a diagnosis).
    let dups: Vec<usize> = (0..users)
        .filter(|&u| open_of(u).len() == 2)
        .take(3)
        .collect();
    for &u in &dups {
        let mut seen = Vec::new();
        for p in probes.iter_mut() {
            let r = p
                .ask_all("bound", &[json!({ "id": format!("u{u}") })])
                .await?;
            seen.push(r[0]["bound"] == true);
        }
        eprintln!("presence: u{u} has two open sessions; bound on the nodes: {seen:?}");
    }
    let mut query_ms = Vec::new();
    let mut query_wrong = 0;
    for q in 0..a.queries {
        let r = q % rooms;
        let ask = json!({ "ns": PNS, "room": format!("p{r}"), "timeout_ms": a.query_timeout_ms });
        let t0 = Instant::now();
        let reply = probes[q % k].ask_all("query", &[ask]).await?.remove(0);
        query_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let expected = t_all[r].len();
        if reply["count"].as_u64() != Some(expected as u64) || reply["partial"] != false {
            query_wrong += 1;
            eprintln!(
                "presence: query of room p{r} on node {}: expected {expected}, got {reply} after {:.1} ms",
                q % k,
                t0.elapsed().as_secs_f64() * 1000.0
            );
        }
    }

    // 4. A frozen node: queries come back partial, in time.
    let mut frozen = Value::Null;
    if let Some(pid) = a.freeze_pid {
        if signal(pid, Signal::STOP) {
            // Three at once, asked of a node that is not frozen (the last
            // one), while the frozen node still counts as alive (within
            // the membership timeout).
            let asks: Vec<Value> = (0..3)
                .map(|q| json!({ "ns": PNS, "room": format!("p{}", q % rooms), "timeout_ms": a.query_timeout_ms }))
                .collect();
            let t0 = Instant::now();
            let replies = probes[k - 1].ask_all("query", &asks).await?;
            let max = t0.elapsed().as_secs_f64() * 1000.0;
            let partial = replies.iter().filter(|r| r["partial"] == true).count();
            signal(pid, Signal::CONT);
            if partial < 3 {
                failures.push(format!(
                    "{} of 3 queries with a frozen node were not partial",
                    3 - partial
                ));
            }
            if max > a.query_timeout_ms as f64 + 1000.0 {
                failures.push(format!("a query with a frozen node took {max:.0} ms"));
            }
            frozen = json!({ "queries": 3, "partial": partial, "max_ms": (max * 1000.0).round() / 1000.0 });
        } else {
            failures.push(format!("could not freeze process {pid}"));
        }
    }

    // Observers on the last node, 100 rooms each, join now (the login
    // storm would be thousands of changes for them): a subscriber's queue
    // holds 1,024 frames, and a dead node's members leave all at once.
    let (leaves_tx, mut leaves_rx) = mpsc::unbounded_channel::<(String, String, Instant)>();
    let mut observer_tasks = Vec::new();
    for (o, chunk) in (0..rooms).collect::<Vec<_>>().chunks(100).enumerate() {
        let mut observer = observer(urls[k - 1], o, chunk).await?;
        let mut obs_stop = stop_rx.clone();
        let leaves_tx = leaves_tx.clone();
        observer_tasks.push(env.gen.spawn(o, async move {
            loop {
                tokio::select! {
                    _ = obs_stop.changed() => return,
                    r = observer.fill() => {
                        if r.is_err() {
                            return;
                        }
                        let now = Instant::now();
                        let parsed = observer.parse(|m, _| {
                            let Ok(v) = serde_json::from_slice::<Value>(m) else { return };
                            if v["event"] == "_cw_presence" && v["payload"]["op"] == "leave" {
                                let member = &v["payload"]["member"];
                                let id = member["id"].as_str().unwrap_or_default().to_owned();
                                let node = member["node"].as_str().unwrap_or_default().to_owned();
                                let _ = leaves_tx.send((id, node, now));
                            }
                        });
                        if parsed.is_err() || (observer.has_output() && observer.flush().await.is_err()) {
                            return;
                        }
                    }
                }
            }
        }));
    }

    // 5. A node killed: every member it held leaves, everywhere.
    let mut killed = Value::Null;
    if let Some(pid) = a.kill_node_pid {
        // The members the first node held (their only open session there).
        let expected: HashSet<String> = (0..users)
            .filter(|&u| {
                let open = open_of(u);
                !open.is_empty() && open.iter().all(|&s| node_of(u, s) == 0)
            })
            .map(|u| format!("u{u}"))
            .collect();
        while leaves_rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        if !signal(pid, Signal::KILL) {
            failures.push(format!("could not kill process {pid}"));
        }
        let mut latency = Vec::new();
        let mut seen = HashSet::new();
        let deadline = t0 + Duration::from_millis(a.member_timeout_ms) + Duration::from_secs(10);
        while seen.len() < expected.len() {
            match tokio::time::timeout_at(deadline, leaves_rx.recv()).await {
                Ok(Some((id, _node, at))) => {
                    if expected.contains(&id) && seen.insert(id) {
                        latency.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                }
                _ => break,
            }
        }
        let unannounced = expected.len() - seen.len();
        // The surviving nodes list none of its members any more (each
        // drops them on its own, within the membership timeout and a
        // sweep).
        let t_after = truth(Some(0));
        let (mut ghosts_after, mut missing_after);
        loop {
            (ghosts_after, missing_after) = (0, 0);
            for p in probes.iter_mut().skip(1) {
                let listed = p.ask_all("presence", &room_asks).await?;
                let (g, m) = compare(&listed, &t_after);
                ghosts_after += g;
                missing_after += m;
            }
            let settled = t0.elapsed() > Duration::from_millis(a.member_timeout_ms + 1000);
            if (ghosts_after == 0 && missing_after == 0) || settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let p99 = pct(&mut latency.clone(), 0.99);
        if unannounced > 0 {
            failures.push(format!(
                "{unannounced} members of the killed node were never announced as leaving"
            ));
        }
        if ghosts_after > 0 || missing_after > 0 {
            failures.push(format!(
                "after the kill: {ghosts_after} ghosts, {missing_after} missing"
            ));
        }
        if p99 > a.member_timeout_ms as f64 + 1000.0 {
            failures.push(format!(
                "leave p99 {p99:.0} ms over the membership timeout + 1 s"
            ));
        }
        killed = json!({
            "members": expected.len(), "announced": seen.len(), "ghosts": ghosts_after,
            "missing": missing_after,
            "leave_latency_ms": { "p50": pct(&mut latency.clone(), 0.5), "p99": p99, "max": pct(&mut latency, 1.0) },
        });
    }
    let _ = stop_tx.send(true);
    for t in observer_tasks {
        t.abort();
    }
    for h in handles {
        h.abort();
    }

    if duplicate_sessions > 0 {
        failures.push(format!("{duplicate_sessions} users with two sessions"));
    }
    if lost_sessions > 0 {
        failures.push(format!("{lost_sessions} users with no session"));
    }
    if ghosts > 0 || missing > 0 {
        failures.push(format!("presence: {ghosts} ghosts, {missing} missing"));
    }
    if query_wrong > 0 {
        failures.push(format!(
            "{query_wrong} cluster queries with a wrong count or partial"
        ));
    }
    let q50 = pct(&mut query_ms.clone(), 0.5);
    let q99 = pct(&mut query_ms, 0.99);
    let mut lines = vec![
        format!("presence ({k} nodes, {users} users logged in twice at once, {rooms} rooms)"),
        format!("sessions: {duplicate_sessions} duplicate, {lost_sessions} lost, {kicked} closed with 4012"),
        format!("presence on every node: {ghosts} ghosts, {missing} missing"),
        format!("cluster queries: p50 {q50} / p99 {q99} ms, {query_wrong} wrong"),
    ];
    if !frozen.is_null() {
        lines.push(format!("with a frozen node: {frozen}"));
    }
    if !killed.is_null() {
        lines.push(format!("after kill -9 of the first node: {killed}"));
    }
    if failures.is_empty() {
        lines.push("PASS".into());
    } else {
        lines.extend(failures.iter().map(|f| format!("FAILURE: {f}")));
    }
    let json = json!({
        "scenario": "presence",
        "params": {
            "nodes": k, "users": users, "rooms": rooms, "wave": a.wave, "settle_s": a.settle,
            "queries": a.queries, "query_timeout_ms": a.query_timeout_ms,
            "member_timeout_ms": a.member_timeout_ms,
        },
        "users": users,
        "login_s": (login_s * 1000.0).round() / 1000.0,
        "duplicate_sessions": duplicate_sessions,
        "lost_sessions": lost_sessions,
        "kicked": kicked,
        "ghosts": ghosts,
        "missing": missing,
        "query_ms": { "p50": q50, "p99": q99, "wrong": query_wrong },
        "frozen": frozen,
        "killed": killed,
        "leave_latency_ms": killed.get("leave_latency_ms").cloned().unwrap_or(Value::Null),
    });
    Ok(Outcome {
        lines,
        json,
        failures,
    })
}
