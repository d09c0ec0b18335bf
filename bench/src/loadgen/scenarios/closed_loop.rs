//! The closed-loop scenarios `echo`, `rpc` and `count`: C clients each send
//! one request, wait for its reply, and send the next.

use super::{connect, end, human_lat, wait_ready, Env, Outcome};
use super::{COUNT_ROOM, NS, REPLY_TIMEOUT};
use crate::loadgen::cli::{LoopArgs, RpcArgs};
use crate::loadgen::client::{request, Target};
use crate::loadgen::gen::Shared;
use crate::loadgen::hist::round3;
use crate::loadgen::sys::{now_us, CpuReport, CpuSnap};
use crate::loadgen::wire::Datum;
use crate::loadgen::ws::WsConn;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Which closed-loop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoopKind {
    Echo,
    Rpc,
    Count,
}

/// Phases of a closed loop: 0 wait, 1 warm-up, 2 measure, 3 stop.
type Phase = watch::Receiver<u8>;

#[allow(clippy::too_many_arguments)]
async fn loop_task(
    mut c: WsConn,
    sh: Arc<Shared>,
    t: Target,
    who: String,
    me: u64,
    kind: LoopKind,
    rpc_target: String,
    expect_total: u64,
    mut phase: Phase,
) {
    while *phase.borrow_and_update() == 0 {
        if phase.changed().await.is_err() {
            return;
        }
    }
    let mut k = 0u64;
    loop {
        let ph = *phase.borrow();
        if ph >= 3 || sh.stop.is_cancelled() {
            break;
        }
        k += 1;
        let d = Datum {
            s: me,
            q: k,
            t: now_us(),
        };
        let mut payload = Vec::with_capacity(96);
        let event = match kind {
            LoopKind::Echo => {
                d.write(&mut payload);
                "echo"
            }
            LoopKind::Rpc => {
                let _ = std::io::Write::write_fmt(
                    &mut payload,
                    format_args!(r#"{{"target":"{rpc_target}","data":"#),
                );
                d.write(&mut payload);
                payload.push(b'}');
                "rpc"
            }
            LoopKind::Count => {
                let _ = std::io::Write::write_fmt(
                    &mut payload,
                    format_args!(r#"{{"ns":"{NS}","room":"{COUNT_ROOM}"}}"#),
                );
                "count"
            }
        };
        let r = tokio::select! {
            r = request(&mut c, &t, event, k, |b| b.extend_from_slice(&payload), REPLY_TIMEOUT, |_| {}) => r,
            _ = sh.stop.cancelled() => break,
        };
        let now = now_us();
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                sh.disconnected(&who, e);
                break;
            }
        };
        let good = match kind {
            LoopKind::Echo | LoopKind::Rpc => Datum::from_value(&v) == Some(d),
            LoopKind::Count => v.get("total").and_then(Value::as_u64) == Some(expect_total),
        };
        if !good {
            sh.bad.fetch_add(1, Relaxed);
            sh.error(format!("{who}: wrong {event} reply {v} (sent {d:?})"));
        }
        if *phase.borrow() == 2 {
            sh.replies.fetch_add(1, Relaxed);
            sh.hist.record(now.saturating_sub(d.t));
        }
    }
}

async fn closed_loop(env: &Env, a: &LoopArgs, kind: LoopKind, names: &[String]) -> Outcome {
    let c = a.c.max(1);
    let sh = Arc::new(Shared::new(env.gen.threads(), c as u64));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let nodes = env.target.urls.len();
    let name = match kind {
        LoopKind::Echo => "echo",
        LoopKind::Rpc => "rpc",
        LoopKind::Count => "count",
    };
    let mut handles = Vec::new();
    for i in 0..c {
        let sh = sh.clone();
        let t = env.target.clone();
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let ph = phase_rx.clone();
        let node = i % nodes;
        let rpc_target = names
            .get((node + 1) % nodes)
            .cloned()
            .unwrap_or_else(|| format!("n{}", (node + 1) % nodes + 1));
        let join = (kind == LoopKind::Count).then_some(COUNT_ROOM);
        handles.push(env.gen.spawn(i, async move {
            let id = format!("{}{i}", &name[..1]);
            if let Some(conn) = connect(&t, i, &id, join, 4096, &sem, &ready).await {
                loop_task(conn, sh, t, id, i as u64, kind, rpc_target, c as u64, ph).await;
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, c).await;
    eprintln!("{name}: {c} clients connected in {:.2} s", opened.secs);
    let mut failures = opened.failures;
    let mut lines = vec![format!(
        "{name} ({}, {} node(s), {c} clients closed loop)",
        env.target.proto.name(),
        nodes
    )];
    let mut result = Value::Null;
    if failures.is_empty() {
        sh.begin_step(0);
        let _ = phase_tx.send(1);
        tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
        let bad_warm = sh.bad.load(Relaxed);
        sh.begin_step(1);
        let disc0 = sh.disconnects.load(Relaxed);
        let snap0 = CpuSnap::take(&env.watch);
        let t0 = Instant::now();
        let _ = phase_tx.send(2);
        tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
        let _ = phase_tx.send(3);
        let secs = t0.elapsed().as_secs_f64();
        let snap1 = CpuSnap::take(&env.watch);
        let cpu = CpuReport::between(&snap0, &snap1, &env.watch);
        let replies = sh.replies.load(Relaxed);
        let lat = sh.hist.snapshot();
        let bad = sh.bad.load(Relaxed) + bad_warm;
        let disc = sh.disconnects.load(Relaxed) - disc0;
        let rps = replies as f64 / secs;
        let (u, s) = cpu.server_seconds();
        let per = replies.max(1) as f64;
        lines.push(format!(
            "{rps:.0} req/s ({replies} replies in {secs:.1} s), {}",
            human_lat(&lat)
        ));
        lines.push(format!(
            "server CPU per request {:.2} µs user + {:.2} µs sys",
            u * 1e6 / per,
            s * 1e6 / per
        ));
        lines.extend(cpu.lines());
        if bad > 0 {
            failures.push(format!("{bad} wrong replies"));
        }
        if disc > 0 {
            failures.push(format!("{disc} connections dropped or requests timed out"));
        }
        if replies == 0 {
            failures.push("no reply in the measured window".into());
        }
        result = json!({
            "req_per_s": rps.round(),
            "replies": replies,
            "duration_s": round3(secs),
            "latency": lat.to_json(),
            "wrong_replies": bad,
            "disconnects": disc,
            "cpu": cpu.to_json(),
            "server_us_per_request": {
                "user": round3(u * 1e6 / per), "sys": round3(s * 1e6 / per),
                "total": round3((u + s) * 1e6 / per)
            },
        });
    }
    let json = json!({
        "scenario": name,
        "params": {
            "clients": c, "duration_s": a.duration, "warmup_s": a.warmup,
            "nodes": nodes, "names": names, "connect_s": round3(opened.secs),
        },
        "result": result,
    });
    end(&sh, handles, lines, json, failures).await
}

/// `echo`: closed-loop echo with callbacks.
pub async fn echo(env: &Env, a: &LoopArgs) -> Outcome {
    closed_loop(env, a, LoopKind::Echo, &[]).await
}

/// `rpc`: closed-loop cross-server rpc to the next node.
pub async fn rpc(env: &Env, a: &RpcArgs) -> Outcome {
    let names: Vec<String> = if a.names.is_empty() {
        (1..=env.target.urls.len())
            .map(|k| format!("n{k}"))
            .collect()
    } else {
        a.names.clone()
    };
    closed_loop(env, &a.lp, LoopKind::Rpc, &names).await
}

/// `count`: C clients in one room, closed-loop `count` (total must be C).
pub async fn count(env: &Env, a: &LoopArgs) -> Outcome {
    closed_loop(env, a, LoopKind::Count, &[]).await
}
