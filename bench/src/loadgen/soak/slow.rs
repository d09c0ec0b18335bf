//! `slow`: a steady fan-out to N receivers while S more clients join the
//! same room and never read their sockets; the receivers must not notice and
//! the server's RSS must stay bounded.

use super::metrics::figures;
use super::rss::{delta_mib, mib, RssSampler};
use super::{end_run, measure, steady_failures, steady_lines, with_steady};
use crate::loadgen::cli::SlowArgs;
use crate::loadgen::hist::round3;
use crate::loadgen::scenarios::fanout::Fan;
use crate::loadgen::scenarios::{open_join, wait_ready, Env, Outcome, FAN_ROOM};
use crate::loadgen::ws::{WsConn, WsError};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How a socket that did not read ended, seen when it is finally read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// A close frame with this code.
    Close(Option<u16>),
    /// The server closed the TCP connection without a close frame.
    Eof,
    /// The connection was reset or failed.
    Error(String),
    /// Still open: nothing more arrived for a while.
    Open,
    /// Never connected.
    NotConnected,
}

impl Ending {
    fn label(&self) -> String {
        match self {
            Ending::Close(Some(c)) => format!("close frame {c}"),
            Ending::Close(None) => "close frame without code".into(),
            Ending::Eof => "closed without close frame (eof)".into(),
            Ending::Error(e) => format!("error ({e})"),
            Ending::Open => "still open".into(),
            Ending::NotConnected => "not connected".into(),
        }
    }
}

/// Reads (and discards) what a socket still holds until it ends, or until
/// nothing arrives for `idle`.
async fn read_to_end(c: &mut WsConn, idle: Duration) -> Ending {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let until = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(until, c.fill()).await {
            Err(_) => return Ending::Open,
            Ok(Err(WsError::Closed(None))) => return Ending::Eof,
            Ok(Err(WsError::Closed(code))) => return Ending::Close(code),
            Ok(Err(e)) => return Ending::Error(e.to_string()),
            Ok(Ok(())) => match c.parse(|_, _| {}) {
                Ok(_) => {}
                Err(WsError::Closed(code)) => return Ending::Close(code),
                Err(e) => return Ending::Error(e.to_string()),
            },
        }
    }
}

/// `slow`: steady fan-out to N receivers; S more clients join the room and
/// never read.
pub async fn slow(env: &Env, a: &SlowArgs) -> Outcome {
    with_steady(env, &a.steady, "slow", |fan| run(env, a, fan)).await
}

/// The run of `slow` beside the connected steady fan-out.
async fn run(env: &Env, a: &SlowArgs, fan: Fan) -> Outcome {
    let st = &a.steady;
    let (n, p) = (st.n.max(1), st.p.max(1));
    let mut notes = Vec::new();
    let mut failures = Vec::new();

    // The slow clients: join, report ready, wait (not reading) until told
    // to read what is left.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (read_tx, read_rx) = watch::channel(false);
    let mut slow_handles = Vec::new();
    for i in 0..a.s {
        let t = env.target.clone();
        let ready = ready_tx.clone();
        let mut read = read_rx.clone();
        slow_handles.push(env.gen.spawn(i, async move {
            let id = format!("w{i}");
            match open_join(&t, n + p + i, &id, Some(FAN_ROOM), 4096).await {
                Ok(mut c) => {
                    let _ = ready.send(Ok(()));
                    let _ = read.wait_for(|r| *r).await;
                    read_to_end(&mut c, Duration::from_secs(2)).await
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    Ending::NotConnected
                }
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, a.s).await;
    eprintln!(
        "slow: {} clients joined the room and stopped reading ({:.2} s)",
        a.s, opened.secs
    );
    failures.extend(opened.failures);

    let (before, sampler, mut runner) = measure(env, st, &fan, &mut notes, &mut failures).await;
    let warm = (st.warmup > 0.0).then_some(st.warmup);
    // Before any traffic: the warm-up grows the healthy sockets' buffers,
    // which is not the slow sockets' doing, so the bound counts from after it.
    let rss_idle = sampler.as_ref().and_then(RssSampler::read);
    let mut steps = Vec::new();
    if let Some(w) = warm {
        steps.push(runner.step(st.rate, w, true).await);
    }
    let t_start = Instant::now();
    let rss_start = sampler.as_ref().and_then(RssSampler::read);
    let main = runner.step(st.rate, a.duration, false).await;
    let rss_end = sampler.as_ref().and_then(RssSampler::read);
    let rss_peak = sampler
        .as_ref()
        .and_then(|s| s.peak_between(t_start, Instant::now()));

    // How the slow sockets ended.
    let _ = read_tx.send(true);
    let mut endings = Vec::new();
    for h in slow_handles {
        endings.push(match h.await {
            Ok(e) => e,
            Err(e) => Ending::Error(e.to_string()),
        });
    }
    let after = figures(env, &mut notes).await;

    let mut lines = vec![format!(
        "slow ({}, {} node(s)): {n} receivers + {} clients that never read, in one room; {p} publishers at {} msgs/s, {} filler bytes per message, {:.0} s",
        env.target.proto.name(),
        env.target.urls.len(),
        a.s,
        st.rate,
        st.pad,
        a.duration
    )];
    for w in &steps {
        failures.extend(w.violations());
    }
    lines.extend(steady_lines(&main, n));
    failures.extend(steady_failures(&main, st.p99_ms));

    let mut kinds: Vec<(String, usize)> = Vec::new();
    for e in &endings {
        let l = e.label();
        match kinds.iter_mut().find(|(k, _)| *k == l) {
            Some((_, c)) => *c += 1,
            None => kinds.push((l, 1)),
        }
    }
    let closed = endings
        .iter()
        .filter(|e| !matches!(e, Ending::Open | Ending::NotConnected))
        .count();
    lines.push(format!(
        "slow sockets: {closed} of {} ended by the server ({})",
        a.s,
        kinds
            .iter()
            .map(|(k, c)| format!("{c} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let server_closes = match (before, after) {
        (Some(b), Some(x)) => {
            let slow = x.slow_closes - b.slow_closes;
            let live = x.liveness_closes - b.liveness_closes;
            lines.push(format!(
                "server metrics: {slow} slow-consumer closes (4003), {live} liveness terminations during the run"
            ));
            Some(json!({ "slow_consumer": slow, "liveness": live }))
        }
        _ => None,
    };
    if a.require_closed && closed < a.s {
        failures.push(format!(
            "only {closed} of {} slow sockets were closed by the server",
            a.s
        ));
    }

    let rss = match (rss_start, rss_peak, rss_end) {
        (Some(s0), Some(pk), Some(e)) => {
            let pk = pk.max(s0).max(e);
            let growth = delta_mib(s0, pk);
            lines.push(format!(
                "server RSS: before the warm-up {}, start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; peak - start = {growth:+.1} MiB (bound {} MiB)",
                rss_idle.map_or("-".into(), |k| format!("{:.1} MiB", mib(k))),
                mib(s0),
                mib(pk),
                mib(e),
                a.max_rss_growth_mib
            ));
            if growth > a.max_rss_growth_mib {
                failures.push(format!(
                    "server RSS grew by {growth:.1} MiB (start {:.1}, peak {:.1}), above --max-rss-growth-mib {}",
                    mib(s0),
                    mib(pk),
                    a.max_rss_growth_mib
                ));
            }
            json!({
                "before_warmup_kib": rss_idle, "start_kib": s0, "peak_kib": pk, "end_kib": e,
                "growth_mib": round3(growth), "bound_mib": a.max_rss_growth_mib,
            })
        }
        _ => Value::Null,
    };
    let out = end_run(sampler, fan, lines, notes, failures, |timeline, notes| {
        json!({
        "scenario": "slow",
        "params": {
            "receivers": n, "publishers": p, "slow": a.s, "rate": st.rate, "pad": st.pad,
            "duration_s": a.duration, "p99_ms": st.p99_ms,
            "max_rss_growth_mib": a.max_rss_growth_mib, "nodes": env.target.urls.len(),
        },
        "result": main.to_json(),
        "slow_sockets": {
            "closed": closed,
            "endings": kinds.iter().map(|(k, c)| json!({"ending": k, "count": c})).collect::<Vec<_>>(),
            "server_closes": server_closes,
        },
        "rss": rss,
        "rss_timeline": timeline,
        "notes": notes,
        })
    })
    .await;
    out
}
