//! `fanout`: N subscribers in one room, P publishers sending `room` (or
//! `all`) at a rate. The fan-out set-up also serves the soak scenarios'
//! steady fan-out.

use super::rate::{http_task, rate_outcome, rate_task, RateCtx, RateRun, Sends, StepCmd};
use super::{add_errors, connect, finish, signal, wait_ready, Env, Opened, Outcome, FAN_ROOM};
use crate::loadgen::cli::{FanEvent, FanoutArgs};
use crate::loadgen::gen::Shared;
use crate::loadgen::hist::round3;
use rustix::process::Signal;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// A fan-out set up: N subscribers joined, P publishers connected, waiting
/// for steps.
pub(crate) struct Fan {
    pub(crate) sh: Arc<Shared>,
    ctx: Arc<RateCtx>,
    cmd: watch::Sender<Option<StepCmd>>,
    pub(crate) handles: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) opened: Opened,
    /// Deliveries per published message.
    pub(crate) per_msg: u64,
}

impl Fan {
    /// The step runner of this fan-out.
    pub(crate) fn runner<'a>(&self, env: &'a Env, p99_ms: f64) -> RateRun<'a> {
        RateRun::new(
            env,
            self.ctx.clone(),
            self.cmd.clone(),
            self.per_msg,
            p99_ms,
        )
    }
}

/// Publishers that post to crosswire nodes' HTTP API (`fanout --http-api`).
#[derive(Debug, Clone)]
pub(crate) struct HttpPublishers {
    /// API addresses; publisher i posts to address i mod count.
    pub(crate) apis: Vec<String>,
    pub(crate) token: String,
}

/// Connects N subscribers (ids `s0..`, joined to the fan-out room) and P
/// publishers (`p0..`; with `http`, P HTTP API publishers instead) and waits
/// until all are ready.
pub(crate) async fn start_fanout(
    env: &Env,
    n: usize,
    p: usize,
    all: bool,
    pad: usize,
    http: Option<HttpPublishers>,
) -> Fan {
    let n = n.max(1);
    let p = p.max(1);
    let sh = Arc::new(Shared::new(env.gen.threads(), p as u64));
    let ctx = Arc::new(RateCtx {
        sh: sh.clone(),
        target: env.target.clone(),
        pad,
        clients: 0,
        permits: vec![Semaphore::new(0)],
        window: 0,
        room_of: Vec::new(),
    });
    let (cmd_tx, cmd_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::new();
    let ws_publishers = if http.is_some() { 0 } else { p };
    if let Some(h) = &http {
        for i in 0..p {
            let api = h.apis[i % h.apis.len().max(1)].clone();
            let task = http_task(
                ctx.clone(),
                api,
                h.token.clone(),
                i as u64,
                i as f64 / p as f64,
                all,
                cmd_rx.clone(),
            );
            handles.push(env.gen.spawn(n + i, task));
        }
    }
    for i in 0..n + ws_publishers {
        let (id, idx, is_pub) = if i < n {
            (format!("s{i}"), i, false)
        } else {
            (format!("p{}", i - n), i - n, true)
        };
        let ctx = ctx.clone();
        let sem = sem.clone();
        let ready = ready_tx.clone();
        let rx = cmd_rx.clone();
        let join = if is_pub { None } else { Some(FAN_ROOM) };
        let sends = match (is_pub, all) {
            (false, _) => Sends::Nothing,
            (true, false) => Sends::Room,
            (true, true) => Sends::All,
        };
        let record = !is_pub || all;
        handles.push(env.gen.spawn(i, async move {
            if let Some(c) = connect(&ctx.target, idx, &id, join, 4096, &sem, &ready).await {
                let me = if is_pub { idx as u64 } else { u64::MAX };
                let phase = if is_pub { idx as f64 / p as f64 } else { 0.0 };
                rate_task(c, ctx, id, me, phase, sends, record, rx).await;
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, n + ws_publishers).await;
    let via = if http.is_some() { " (HTTP API)" } else { "" };
    eprintln!(
        "fan-out: {n} subscribers + {p} publishers{via} ready in {:.2} s",
        opened.secs
    );
    Fan {
        sh,
        ctx,
        cmd: cmd_tx,
        handles,
        opened,
        per_msg: if all {
            (n + ws_publishers) as u64
        } else {
            n as u64
        },
    }
}

/// `fanout`: N subscribers in one room, P publishers.
pub async fn fanout(env: &Env, a: &FanoutArgs) -> Outcome {
    let all = a.event == FanEvent::All;
    let http = a
        .http_token
        .clone()
        .filter(|_| !a.http_api.is_empty())
        .map(|token| HttpPublishers {
            apis: a.http_api.clone(),
            token,
        });
    let via_http = http.is_some();
    let fan = start_fanout(env, a.n, a.p, all, 0, http).await;
    let (n, p) = (a.n.max(1), a.p.max(1));
    let per_msg = fan.per_msg;
    let params = json!({
        "subscribers": n, "publishers": p, "event": if all { "all" } else { "room" },
        "rate": a.rate.rate, "duration_s": a.rate.duration, "find_max": a.rate.find_max,
        "ramp": a.rate.ramp, "p99_ms": a.rate.p99_ms, "nodes": env.target.urls.len(),
        "connect_s": round3(fan.opened.secs), "via": if via_http { "http" } else { "websocket" },
    });
    // A process frozen during the measured step (after the warm-up).
    let freezer = a.freeze_pid.map(|pid| {
        let at = a.rate.warmup.max(0.0) + a.freeze_at.max(0.0);
        let (at, hold) = (
            std::time::Duration::from_secs_f64(at),
            std::time::Duration::from_secs_f64(a.freeze_for.max(0.0)),
        );
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let stopped = signal(pid, Signal::STOP);
            eprintln!("fanout: process {pid} frozen ({stopped})");
            tokio::time::sleep(hold).await;
            let resumed = signal(pid, Signal::CONT);
            eprintln!("fanout: process {pid} thawed ({resumed})");
            stopped && resumed
        })
    });
    let (steps, best, mut notes) = if fan.opened.failures.is_empty() {
        fan.runner(env, a.rate.p99_ms).run(&a.rate).await
    } else {
        (Vec::new(), None, Vec::new())
    };
    if let (Some(task), Some(pid)) = (freezer, a.freeze_pid) {
        // Never leave a process frozen behind.
        if !task.await.unwrap_or(false) {
            signal(pid, Signal::CONT);
            notes.push(format!("process {pid} could not be frozen and thawed"));
        } else {
            notes.push(format!(
                "process {pid} frozen {} s into the measured step for {} s",
                a.freeze_at, a.freeze_for
            ));
        }
    }
    let Fan {
        sh,
        handles,
        opened,
        ..
    } = fan;
    finish(&sh, handles).await;
    let mut out = rate_outcome(
        env,
        "fanout",
        params,
        &a.rate,
        steps,
        best,
        notes,
        opened.failures,
        per_msg,
    );
    add_errors(&mut out, &sh);
    out
}
