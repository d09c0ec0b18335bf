//! `conns`: N idle connections (heartbeat only); the RSS of the watched
//! processes before and after gives the memory per connection.

use super::{alive, connect, end, readable, wait_ready, Env, Outcome};
use crate::loadgen::cli::ConnsArgs;
use crate::loadgen::client::{control, Target};
use crate::loadgen::gen::{Rng, Shared};
use crate::loadgen::hist::round3;
use crate::loadgen::sys::{now_us, rss_kib, CpuReport, CpuSnap};
use crate::loadgen::wire::{decode, Proto};
use crate::loadgen::ws::WsConn;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// Keeps one idle connection open, sending the heartbeat every `hb_every`
/// seconds (original protocol) and answering pings.
async fn idle_task(mut c: WsConn, sh: Arc<Shared>, t: Target, who: String, hb_every: f64) {
    let proto = t.proto;
    let period = if hb_every > 0.0 && proto == Proto::Original {
        Duration::from_secs_f64(hb_every)
    } else {
        Duration::from_secs(86_400)
    };
    // Spread heartbeats over the period.
    let jitter = Rng::new(who.len() as u64 + now_us()).below(1000) as f64 / 1000.0;
    let mut next = Instant::now() + period.mul_f64(0.5 + jitter);
    loop {
        tokio::select! {
            biased;
            ok = readable(&mut c, &sh, &who) => {
                if !ok {
                    break;
                }
                let hb = &t.heartbeat;
                let res = c.parse(|m, out| {
                    let inc = decode(proto, m, hb);
                    control(proto, &inc, out);
                });
                if !alive(&sh, &who, res) {
                    break;
                }
            }
            _ = tokio::time::sleep_until(next) => {
                c.outbox().text(&t.heartbeat);
                next += period;
            }
        }
        if c.has_output() && !alive(&sh, &who, c.flush().await) {
            break;
        }
    }
}

/// `conns`: N idle connections; RSS of the watched processes before/after.
pub async fn conns(env: &Env, a: &ConnsArgs) -> Outcome {
    let n = a.n.max(1);
    let sh = Arc::new(Shared::new(env.gen.threads(), 0));
    let rss0: Vec<Option<u64>> = env.watch.iter().map(|w| rss_kib(w.pid)).collect();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::new();
    for i in 0..n {
        let sh = sh.clone();
        let t = env.target.clone();
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let hb = a.heartbeat_secs;
        handles.push(env.gen.spawn(i, async move {
            let id = format!("i{i}");
            if let Some(conn) = connect(&t, i, &id, None, 512, &sem, &ready).await {
                idle_task(conn, sh, t, id, hb).await;
            }
        }));
    }
    drop(ready_tx);
    let snap0 = CpuSnap::take(&env.watch);
    let opened = wait_ready(&mut ready_rx, n).await;
    let snap1 = CpuSnap::take(&env.watch);
    let connect_cpu = CpuReport::between(&snap0, &snap1, &env.watch);
    let rate = n as f64 / opened.secs.max(1e-9);
    eprintln!(
        "conns: {n} connections in {:.2} s ({rate:.0}/s)",
        opened.secs
    );
    let mut failures = opened.failures;
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss1: Vec<Option<u64>> = env.watch.iter().map(|w| rss_kib(w.pid)).collect();
    let disc0 = sh.disconnects.load(Relaxed);
    let hold0 = CpuSnap::take(&env.watch);
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let hold1 = CpuSnap::take(&env.watch);
    let hold_cpu = CpuReport::between(&hold0, &hold1, &env.watch);
    let rss2: Vec<Option<u64>> = env.watch.iter().map(|w| rss_kib(w.pid)).collect();
    let disc = sh.disconnects.load(Relaxed);
    if disc > 0 {
        failures.push(format!(
            "{disc} connections dropped ({} while held)",
            disc - disc0
        ));
    }
    let nodes = env.target.urls.len();
    let servers: Vec<usize> = (0..env.watch.len())
        .filter(|&k| env.watch[k].is_server())
        .collect();
    let mut lines = vec![format!(
        "conns ({}, {} node(s)): {n} connections in {:.2} s = {rate:.0} connects/s",
        env.target.proto.name(),
        nodes,
        opened.secs
    )];
    let mut per_pid = serde_json::Map::new();
    let mut total_delta: i64 = 0;
    for (k, w) in env.watch.iter().enumerate() {
        let (Some(b), Some(after)) = (rss0[k], rss1[k]) else {
            continue;
        };
        let delta = after as i64 - b as i64;
        // Connections on this process: by --url order when there is one
        // server pid per URL, else all of them.
        let on_it = if servers.len() == nodes && w.is_server() {
            let pos = servers.iter().position(|&x| x == k).unwrap_or(0);
            (0..n).filter(|i| i % nodes == pos).count()
        } else {
            n
        };
        if w.is_server() {
            total_delta += delta;
        }
        let kib = delta as f64 / on_it.max(1) as f64;
        lines.push(format!(
            "  {:<10} RSS {:>8} KiB -> {:>8} KiB (after hold {:>8} KiB): {:+} KiB = {:.2} KiB per connection ({on_it} conns)",
            w.label,
            b,
            after,
            rss2[k].unwrap_or(0),
            delta,
            kib
        ));
        per_pid.insert(
            w.label.clone(),
            json!({
                "rss_before_kib": b, "rss_after_kib": after, "rss_after_hold_kib": rss2[k],
                "delta_kib": delta, "connections": on_it, "kib_per_conn": round3(kib),
            }),
        );
    }
    let kib_per_conn = (!servers.is_empty()).then(|| total_delta as f64 / n as f64);
    if let Some(k) = kib_per_conn {
        lines.push(format!("server RSS per idle connection: {k:.2} KiB"));
    }
    lines.push("  while connecting:".into());
    lines.extend(connect_cpu.lines());
    lines.push("  while holding:".into());
    lines.extend(hold_cpu.lines());
    let json = json!({
        "scenario": "conns",
        "params": {
            "connections": n, "nodes": nodes, "settle_s": a.settle, "hold_s": a.hold,
            "heartbeat_s": a.heartbeat_secs, "src_ips": env.target.src_ips,
        },
        "result": {
            "connected": n,
            "connect_s": round3(opened.secs),
            "connects_per_s": rate.round(),
            "kib_per_conn": kib_per_conn.map(round3),
            "per_pid": per_pid,
            "disconnects": disc,
            "cpu": connect_cpu.to_json(),
            "cpu_hold": hold_cpu.to_json(),
        },
    });
    end(&sh, handles, lines, json, failures).await
}
