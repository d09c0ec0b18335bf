//! `unicast`: C clients sending `to` to random other clients (on another
//! node when there are several), at a rate or with a window of messages in
//! flight per sender.

use super::rate::{rate_outcome, rate_task, RateCtx, RateRun, Sends};
use super::{add_errors, connect, finish, wait_ready, Env, Outcome};
use crate::loadgen::cli::UnicastArgs;
use crate::loadgen::gen::Shared;
use crate::loadgen::hist::round3;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// `unicast`: C clients sending `to` to random other clients.
pub async fn unicast(env: &Env, a: &UnicastArgs) -> Outcome {
    let c = a.c.max(2);
    let sh = Arc::new(Shared::new(env.gen.threads(), c as u64));
    let window = a.window.unwrap_or(0);
    let ctx = Arc::new(RateCtx {
        sh: sh.clone(),
        target: env.target.clone(),
        pad: 0,
        clients: c,
        permits: if window > 0 {
            (0..c).map(|_| Semaphore::new(0)).collect()
        } else {
            vec![Semaphore::new(0)]
        },
        window,
        room_of: Vec::new(),
    });
    let (cmd_tx, cmd_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::new();
    for i in 0..c {
        let ctx = ctx.clone();
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let rx = cmd_rx.clone();
        handles.push(env.gen.spawn(i, async move {
            let id = format!("c{i}");
            if let Some(conn) = connect(&ctx.target, i, &id, None, 4096, &sem, &ready).await {
                let phase = i as f64 / c as f64;
                rate_task(conn, ctx, id, i as u64, phase, Sends::To, true, rx).await;
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, c).await;
    eprintln!("unicast: {c} clients connected in {:.2} s", opened.secs);
    let mut ra = a.rate.clone();
    if window > 0 {
        ra.find_max = false;
        ra.p99_ms = f64::INFINITY;
    }
    let params = json!({
        "clients": c, "window": a.window, "rate": ra.rate, "duration_s": ra.duration,
        "find_max": ra.find_max, "nodes": env.target.urls.len(),
        "connect_s": round3(opened.secs),
    });
    let (steps, best, notes) = if opened.failures.is_empty() {
        RateRun::new(env, ctx.clone(), cmd_tx, 1, ra.p99_ms)
            .run(&ra)
            .await
    } else {
        (Vec::new(), None, Vec::new())
    };
    finish(&sh, handles).await;
    let mut out = rate_outcome(
        env,
        "unicast",
        params,
        &ra,
        steps,
        best,
        notes,
        opened.failures,
        1,
    );
    add_errors(&mut out, &sh);
    out
}
