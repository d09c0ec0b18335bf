//! `storm`: a steady fan-out to N receivers while K other clients connect
//! and drop all at once, R rounds; the receivers must not notice and the
//! server's RSS must come back near its baseline.

use super::metrics::{fetch_metrics, figures, ServerFigures};
use super::rss::{delta_mib, mib, RssSampler};
use super::{end_run, failed, measure, steady_failures, steady_lines, with_steady};
use crate::loadgen::cli::StormArgs;
use crate::loadgen::client::{control, Target};
use crate::loadgen::gen::Generator;
use crate::loadgen::hist::round3;
use crate::loadgen::scenarios::fanout::Fan;
use crate::loadgen::scenarios::{connect, finish, wait_ready, Env, Outcome};
use crate::loadgen::wire::decode;
use crate::loadgen::ws::WsError;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Room the storm clients join (not the fan-out room).
pub const STORM_ROOM: &str = "storm";

/// How one storm client's connection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StormEnd {
    /// Dropped without a close frame (the socket is reset).
    Abrupt,
    /// Closed with a close frame; whether the server answered with its own.
    Closed { answered: bool },
    /// The connection ended before it was dropped.
    Lost,
    /// Never connected.
    NotConnected,
}

/// What one round did.
#[derive(Debug, Clone)]
struct Round {
    connect_s: f64,
    connected: usize,
    abrupt: usize,
    closed: usize,
    answered: usize,
    lost: usize,
    drop_s: f64,
    rss_connected: Option<u64>,
    rss_after: Option<u64>,
    failures: Vec<String>,
}

/// What the rounds did, with the RSS readings around them.
#[derive(Debug, Clone)]
struct Storm {
    baseline: Option<u64>,
    peak: Option<u64>,
    after: Option<u64>,
    rounds: Vec<Round>,
    server_left: Option<ServerFigures>,
}

async fn storm_client(
    t: Target,
    i: usize,
    id: String,
    join: bool,
    sem: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut drop_now: watch::Receiver<bool>,
) -> StormEnd {
    let room = join.then_some(STORM_ROOM);
    let Some(mut c) = connect(&t, i, &id, room, 1024, &sem, &ready).await else {
        return StormEnd::NotConnected;
    };
    let proto = t.proto;
    loop {
        let read = tokio::select! {
            _ = drop_now.wait_for(|d| *d) => false,
            r = c.fill() => {
                if r.is_err() {
                    return StormEnd::Lost;
                }
                true
            }
        };
        if !read {
            break;
        }
        let res = c.parse(|m, out| {
            let inc = decode(proto, m, &t.heartbeat);
            control(proto, &inc, out);
        });
        if res.is_err() || c.flush().await.is_err() {
            return StormEnd::Lost;
        }
    }
    if i.is_multiple_of(2) {
        // Zero linger: dropping the socket resets it.
        drop(c);
        return StormEnd::Abrupt;
    }
    c.outbox().close(1000);
    if c.flush().await.is_err() {
        return StormEnd::Closed { answered: false };
    }
    let answered = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Err(e) = c.fill().await {
                return matches!(e, WsError::Closed(Some(_)));
            }
            if let Err(e) = c.parse(|_, _| {}) {
                return matches!(e, WsError::Closed(Some(_)));
            }
        }
    })
    .await
    .unwrap_or(false);
    StormEnd::Closed { answered }
}

async fn storm_rounds(
    env: &Env,
    a: &StormArgs,
    gen: &Generator,
    sampler: Option<&RssSampler>,
    first_index: usize,
    steady_conns: usize,
) -> Storm {
    let read = || sampler.and_then(RssSampler::read);
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let t_base = Instant::now();
    let baseline = read();
    eprintln!(
        "storm: baseline RSS {}",
        baseline.map_or("-".into(), |k| format!("{:.1} MiB", mib(k)))
    );
    let mut rounds = Vec::new();
    for round in 1..=a.rounds {
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (drop_tx, drop_rx) = watch::channel(false);
        let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
        let mut handles = Vec::with_capacity(a.k);
        for i in 0..a.k {
            handles.push(gen.spawn(
                i,
                storm_client(
                    env.target.clone(),
                    first_index + i,
                    format!("k{i}"),
                    !a.no_join,
                    sem.clone(),
                    ready_tx.clone(),
                    drop_rx.clone(),
                ),
            ));
        }
        drop(ready_tx);
        let opened = wait_ready(&mut ready_rx, a.k).await;
        let rss_connected = read();
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
        let t_drop = Instant::now();
        let _ = drop_tx.send(true);
        let mut r = Round {
            connect_s: opened.secs,
            connected: 0,
            abrupt: 0,
            closed: 0,
            answered: 0,
            lost: 0,
            drop_s: 0.0,
            rss_connected,
            rss_after: None,
            failures: opened.failures,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for h in handles {
            match tokio::time::timeout_at(deadline, h).await {
                Ok(Ok(end)) => match end {
                    StormEnd::Abrupt => r.abrupt += 1,
                    StormEnd::Closed { answered } => {
                        r.closed += 1;
                        r.answered += usize::from(answered);
                    }
                    StormEnd::Lost => r.lost += 1,
                    StormEnd::NotConnected => {}
                },
                Ok(Err(e)) => r.failures.push(format!("storm client task: {e}")),
                Err(_) => {
                    r.failures
                        .push("storm clients did not finish within 30 s".into());
                    break;
                }
            }
        }
        r.connected = r.abrupt + r.closed + r.lost;
        r.drop_s = t_drop.elapsed().as_secs_f64();
        if r.lost > 0 {
            r.failures.push(format!(
                "round {round}: {} storm connections ended before they were dropped",
                r.lost
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(a.gap)).await;
        r.rss_after = read();
        eprintln!(
            "storm: round {round}: {} connected in {:.2} s ({} abrupt drops, {} close frames, {} answered), RSS connected {} / after {}",
            r.connected,
            r.connect_s,
            r.abrupt,
            r.closed,
            r.answered,
            r.rss_connected.map_or("-".into(), |k| format!("{:.1} MiB", mib(k))),
            r.rss_after.map_or("-".into(), |k| format!("{:.1} MiB", mib(k))),
        );
        rounds.push(r);
    }
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    // The node must have forgotten every storm connection: poll its gauge
    // (bounded) until only the steady connections remain.
    let mut server_left = None;
    if let Some(url) = env.common.metrics.as_deref() {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(t) = fetch_metrics(url).await {
                let f = ServerFigures::read(&t);
                server_left = Some(f);
                if f.connections as usize == steady_conns && f.bound_ids as usize == steady_conns {
                    break;
                }
            }
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let after = read();
    let peak = sampler.and_then(|s| s.peak_between(t_base, Instant::now()));
    Storm {
        baseline,
        peak,
        after,
        rounds,
        server_left,
    }
}

/// `storm`: steady fan-out to N receivers while K clients connect and drop
/// all at once, R rounds.
pub async fn storm(env: &Env, a: &StormArgs) -> Outcome {
    with_steady(env, &a.steady, "storm", |fan| run(env, a, fan)).await
}

/// The run of `storm` beside the connected steady fan-out.
async fn run(env: &Env, a: &StormArgs, fan: Fan) -> Outcome {
    let st = &a.steady;
    let (n, p) = (st.n.max(1), st.p.max(1));
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let gen = match Generator::start(a.storm_threads, env.common.park_us) {
        Ok(g) => g,
        Err(e) => {
            let Fan { sh, handles, .. } = fan;
            finish(&sh, handles).await;
            return failed("storm", vec![format!("storm threads: {e}")]);
        }
    };
    let (before, sampler, mut runner) = measure(env, st, &fan, &mut notes, &mut failures).await;
    if st.warmup > 0.0 {
        let w = runner.step(st.rate, st.warmup, true).await;
        failures.extend(w.violations());
    }
    let rounds = storm_rounds(env, a, &gen, sampler.as_ref(), n + p, n + p);
    let (main, storm) = runner
        .step_until(st.rate, a.max_duration, false, rounds)
        .await;
    let after = figures(env, &mut notes).await;

    let mut lines = vec![format!(
        "storm ({}, {} node(s)): {n} receivers, {p} publishers at {} msgs/s; {} clients x {} rounds (hold {} s, gap {} s), half dropped abruptly, half with a close frame",
        env.target.proto.name(),
        env.target.urls.len(),
        st.rate,
        a.k,
        a.rounds,
        a.hold,
        a.gap
    )];
    lines.extend(steady_lines(&main, n));
    failures.extend(steady_failures(&main, st.p99_ms));
    let mut rss = Value::Null;
    let mut rounds_json = Vec::new();
    match &storm {
        None => failures.push(format!(
            "the rounds did not finish within --max-duration {} s",
            a.max_duration
        )),
        Some(s) => {
            lines.push(
                "round  connected  connect s  abrupt  closed (answered)  drop s  RSS connected MiB  RSS after MiB"
                    .into(),
            );
            for (i, r) in s.rounds.iter().enumerate() {
                lines.push(format!(
                    "{:>5}  {:>9}  {:>9.2}  {:>6}  {:>6} ({:>6})    {:>6.2}  {:>17}  {:>13}",
                    i + 1,
                    r.connected,
                    r.connect_s,
                    r.abrupt,
                    r.closed,
                    r.answered,
                    r.drop_s,
                    r.rss_connected
                        .map_or("-".into(), |k| format!("{:.1}", mib(k))),
                    r.rss_after.map_or("-".into(), |k| format!("{:.1}", mib(k))),
                ));
                failures.extend(r.failures.iter().cloned());
                rounds_json.push(json!({
                    "round": i + 1, "connected": r.connected, "connect_s": round3(r.connect_s),
                    "abrupt": r.abrupt, "closed": r.closed, "close_answered": r.answered,
                    "lost": r.lost, "drop_s": round3(r.drop_s),
                    "rss_connected_kib": r.rss_connected, "rss_after_kib": r.rss_after,
                }));
            }
            if let (Some(b), Some(pk), Some(x)) = (s.baseline, s.peak, s.after) {
                let pk = pk.max(b).max(x);
                let left = delta_mib(b, x);
                lines.push(format!(
                    "server RSS: baseline {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; after - baseline = {left:+.1} MiB (bound {} MiB)",
                    mib(b),
                    mib(pk),
                    mib(x),
                    a.max_rss_after_mib
                ));
                if left > a.max_rss_after_mib {
                    failures.push(format!(
                        "server RSS after the storm is {left:.1} MiB above the baseline (baseline {:.1}, after {:.1}), above --max-rss-after-mib {}",
                        mib(b),
                        mib(x),
                        a.max_rss_after_mib
                    ));
                }
                let first = s.rounds.first().and_then(|r| r.rss_after);
                let growth = first.map(|f| delta_mib(f, x));
                if let (Some(f), Some(g)) = (first, growth) {
                    lines.push(format!(
                        "server RSS after round 1 {:.1} MiB, after the last {:.1} MiB: growth {g:+.1} MiB (bound {} MiB)",
                        mib(f),
                        mib(x),
                        a.max_rss_growth_mib
                    ));
                    if g > a.max_rss_growth_mib {
                        failures.push(format!(
                            "server RSS grew {g:.1} MiB from the first round to the last, above --max-rss-growth-mib {}",
                            a.max_rss_growth_mib
                        ));
                    }
                }
                rss = json!({
                    "baseline_kib": b, "peak_kib": pk, "after_kib": x,
                    "after_minus_baseline_mib": round3(left), "bound_mib": a.max_rss_after_mib,
                    "growth_after_first_round_mib": growth.map(round3),
                    "growth_bound_mib": a.max_rss_growth_mib,
                });
            }
            if let Some(f) = s.server_left {
                lines.push(format!(
                    "server after the storm: {} connections, {} bound socket ids (steady: {})",
                    f.connections,
                    f.bound_ids,
                    n + p
                ));
                if f.connections as usize != n + p || f.bound_ids as usize != n + p {
                    failures.push(format!(
                        "the server still counts {} connections and {} socket ids after the storm; expected {}",
                        f.connections,
                        f.bound_ids,
                        n + p
                    ));
                }
            }
        }
    }
    let accepted = match (before, after) {
        (Some(b), Some(x)) => {
            let d = x.accepted - b.accepted;
            lines.push(format!("server accepted {d} connections during the run"));
            Some(d)
        }
        _ => None,
    };
    let out = end_run(sampler, fan, lines, notes, failures, |timeline, notes| {
        json!({
        "scenario": "storm",
        "params": {
            "receivers": n, "publishers": p, "clients": a.k, "rounds": a.rounds,
            "hold_s": a.hold, "gap_s": a.gap, "settle_s": a.settle, "rate": st.rate,
            "pad": st.pad, "p99_ms": st.p99_ms, "join": !a.no_join,
            "max_rss_after_mib": a.max_rss_after_mib, "nodes": env.target.urls.len(),
        },
        "result": main.to_json(),
        "rounds": rounds_json,
        "rss": rss,
        "rss_timeline": timeline,
        "server_accepted": accepted,
        "notes": notes,
        })
    })
    .await;
    gen.shutdown();
    out
}
