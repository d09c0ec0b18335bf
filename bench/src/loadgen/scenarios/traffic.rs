//! `traffic`: bus traffic per node. C clients spread over the `--url`
//! nodes in turn, grouped at random into rooms of `--room-size` (so a room's
//! members sit on random nodes); each client sends, at a steady total rate,
//! pairs of one message to its own room and one to a random client on
//! another node. Before and after the measured step every node is asked
//! (`stats`, crosswire's bench server) how many bus messages and bytes it
//! received: the per-node figures show how much of the cluster's traffic
//! each node has to read, next to the deliveries, loss and latency.

use super::rate::{rate_task, RateCtx, RateRun, Sends, StepResult};
use super::{connect, end, human_lat, push_verdict, wait_ready, Env, Outcome, REPLY_TIMEOUT};
use crate::loadgen::cli::TrafficArgs;
use crate::loadgen::client::{open, request};
use crate::loadgen::gen::{Rng, Shared};
use crate::loadgen::hist::round3;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// One node's bus counters (`stats` reply).
#[derive(Debug, Clone, Copy, Default)]
struct BusCounters {
    messages: u64,
    bytes: u64,
}

/// Asks every node for its bus counters, through one probe connection each.
async fn read_counters(
    env: &Env,
    probes: &mut [crate::loadgen::ws::WsConn],
) -> Result<Vec<BusCounters>, String> {
    let mut out = Vec::new();
    for (k, c) in probes.iter_mut().enumerate() {
        let v = request(
            c,
            &env.target,
            "stats",
            k as u64 + 1,
            |b| b.extend_from_slice(b"{}"),
            REPLY_TIMEOUT,
            |_| {},
        )
        .await
        .map_err(|e| format!("node {k}: stats: {e}"))?;
        let field = |name: &str| v.get(name).and_then(Value::as_u64);
        match (field("bus_received"), field("bus_received_bytes")) {
            (Some(messages), Some(bytes)) => out.push(BusCounters { messages, bytes }),
            _ => {
                return Err(format!(
                    "node {k}: stats replied {v} (a crosswire bench-server is needed)"
                ))
            }
        }
    }
    Ok(out)
}

/// `traffic`: bus messages and bytes received per node under steady room
/// and unicast traffic.
pub async fn traffic(env: &Env, a: &TrafficArgs) -> Outcome {
    let nodes = env.target.urls.len();
    let c = a.c.max(2);
    let size = a.room_size.max(1);
    // Rooms of `size` clients drawn at random (client i is on node i mod K).
    let mut order: Vec<usize> = (0..c).collect();
    let mut rng = Rng::new(a.seed);
    for i in (1..c).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut room_of = vec![0; c];
    for (pos, &client) in order.iter().enumerate() {
        room_of[client] = pos / size;
    }
    let sh = Arc::new(Shared::new(env.gen.threads(), c as u64));
    let ctx = Arc::new(RateCtx {
        sh: sh.clone(),
        target: env.target.clone(),
        pad: 0,
        clients: c,
        permits: vec![Semaphore::new(0)],
        window: 0,
        room_of: room_of.clone(),
    });
    let mut probes = Vec::new();
    for k in 0..nodes {
        match open(&env.target, k, &format!("probe{k}"), 4096).await {
            Ok(p) => probes.push(p),
            Err(e) => {
                return Outcome {
                    lines: vec![format!("FAILURE: probe of node {k}: {e}")],
                    json: json!({"scenario": "traffic", "error": e}),
                    failures: vec![e],
                }
            }
        }
    }
    let (cmd_tx, cmd_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::new();
    for (i, room) in room_of.iter().enumerate() {
        let ctx = ctx.clone();
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let rx = cmd_rx.clone();
        let room = format!("t{room}");
        handles.push(env.gen.spawn(i, async move {
            let id = format!("c{i}");
            if let Some(conn) = connect(&ctx.target, i, &id, Some(&room), 4096, &sem, &ready).await
            {
                let phase = i as f64 / c as f64;
                rate_task(conn, ctx, id, i as u64, phase, Sends::Pair, true, rx).await;
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, c).await;
    eprintln!(
        "traffic: {c} clients in rooms of {size} on {nodes} nodes, connected in {:.2} s",
        opened.secs
    );
    let mut failures = opened.failures.clone();
    let mut notes = Vec::new();
    let mut lines = Vec::new();
    let params = json!({
        "clients": c, "room_size": size, "rooms": c.div_ceil(size), "nodes": nodes,
        "pairs_per_s": a.rate, "duration_s": a.duration, "seed": a.seed,
        "connect_s": round3(opened.secs),
    });
    let mut json = json!({"scenario": "traffic", "params": params});
    if failures.is_empty() {
        // Each pair: `size` room deliveries (the sender is a member) and one.
        let mut run = RateRun::new(env, ctx.clone(), cmd_tx, size as u64 + 1, a.p99_ms);
        if a.warmup > 0.0 {
            run.step(a.rate, a.warmup, true).await;
        }
        let before = read_counters(env, &mut probes).await;
        let step: StepResult = run.step(a.rate, a.duration, false).await;
        let after = read_counters(env, &mut probes).await;
        failures.extend(step.violations());
        match (before, after) {
            (Ok(b), Ok(af)) => {
                let per_node: Vec<Value> = b
                    .iter()
                    .zip(&af)
                    .enumerate()
                    .map(|(k, (b, af))| {
                        let messages = af.messages.saturating_sub(b.messages);
                        let bytes = af.bytes.saturating_sub(b.bytes);
                        json!({
                            "node": k,
                            "bus_messages": messages,
                            "bus_bytes": bytes,
                            "bus_messages_per_s": round3(messages as f64 / step.dur),
                            "bus_bytes_per_s": round3(bytes as f64 / step.dur),
                        })
                    })
                    .collect();
                let total: u64 = per_node
                    .iter()
                    .filter_map(|n| n["bus_messages"].as_u64())
                    .sum();
                let total_bytes: u64 = per_node
                    .iter()
                    .filter_map(|n| n["bus_bytes"].as_u64())
                    .sum();
                let mean = total as f64 / nodes as f64 / step.dur;
                lines.push(format!(
                    "{nodes} nodes, {c} clients in rooms of {size}, {} pairs/s for {} s",
                    a.rate, step.dur
                ));
                for n in &per_node {
                    lines.push(format!(
                        "  node {}: {} bus messages ({:.0}/s), {} bytes",
                        n["node"],
                        n["bus_messages"],
                        n["bus_messages_per_s"].as_f64().unwrap_or(0.0),
                        n["bus_bytes"]
                    ));
                }
                lines.push(format!(
                    "bus messages received per node: {mean:.0}/s (mean); per pair sent: {:.2}",
                    total as f64 / nodes as f64 / step.sent.max(1) as f64
                ));
                lines.push(format!(
                    "deliveries {} of {} (loss {}, dups {}), latency {}",
                    step.received,
                    step.expected,
                    step.loss(),
                    step.dups,
                    human_lat(&step.lat)
                ));
                let mut result = serde_json::Map::new();
                {
                    let m = &mut result;
                    m.insert("per_node".into(), json!(per_node));
                    m.insert("bus_messages_per_node_per_s".into(), json!(round3(mean)));
                    m.insert(
                        "bus_bytes_per_node_per_s".into(),
                        json!(round3(total_bytes as f64 / nodes as f64 / step.dur)),
                    );
                    m.insert(
                        "bus_messages_per_node_per_pair".into(),
                        json!(round3(
                            total as f64 / nodes as f64 / step.sent.max(1) as f64
                        )),
                    );
                    m.insert("step".into(), step.to_json());
                    m.insert("loss".into(), json!(step.loss()));
                    m.insert("dups".into(), json!(step.dups));
                    m.insert("latency".into(), step.lat.to_json());
                }
                if let Value::Object(m) = &mut json {
                    m.insert("result".into(), Value::Object(result));
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                notes.push(format!("bus counters unavailable: {e}"));
                lines.push(step.line());
            }
        }
    }
    // The notes first; `end` adds the failures.
    push_verdict(&mut lines, &notes, &[]);
    end(&sh, handles, lines, json, failures).await
}
