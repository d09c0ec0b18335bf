//! The scenarios of SCENARIOS.md §6: fanout, unicast, echo, rpc, count, conns.

use crate::loadgen::cli::{
    Common, ConnsArgs, FanEvent, FanoutArgs, LoopArgs, RateArgs, RpcArgs, UnicastArgs,
};
use crate::loadgen::client::{self, control, open, request, Target};
use crate::loadgen::gen::{Generator, Rng, Seen, Shared, Tally};
use crate::loadgen::hist::{round3, LatencySummary};
use crate::loadgen::sys::{now_us, rss_kib, CpuReport, CpuSnap, Watched};
use crate::loadgen::wire::{decode, encode_event, Datum, Incoming, Proto};
use crate::loadgen::ws::WsConn;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Namespace used by every scenario.
pub const NS: &str = "bench";
/// Room of `fanout`.
pub const FAN_ROOM: &str = "fan";
/// Room of `count`.
pub const COUNT_ROOM: &str = "cnt";
/// Time allowed for one callback reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a scenario produced: human lines, the JSON object and whether it
/// met its contract (no loss, no duplicates, no disconnect, right replies).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Human-readable report.
    pub lines: Vec<String>,
    /// Machine-readable report (printed as the last stdout line).
    pub json: Value,
    /// Reasons the run failed (empty = passed).
    pub failures: Vec<String>,
}

/// Everything a scenario needs from the common options.
#[derive(Debug)]
pub struct Env {
    /// Where to connect.
    pub target: Target,
    /// Watched processes.
    pub watch: Vec<Watched>,
    /// Generator threads.
    pub gen: Generator,
    /// Common options as given.
    pub common: Common,
}

pub(crate) fn human_lat(l: &LatencySummary) -> String {
    format!(
        "p50 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms",
        l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
    )
}

/// Results of the connection phase.
pub(crate) struct Opened {
    pub(crate) secs: f64,
    pub(crate) failures: Vec<String>,
}

/// Waits for `n` readiness reports.
pub(crate) async fn wait_ready(
    rx: &mut mpsc::UnboundedReceiver<Result<(), String>>,
    n: usize,
) -> Opened {
    let t0 = Instant::now();
    let limit = Duration::from_secs(60 + n as u64 / 50);
    let mut failures = Vec::new();
    let mut got = 0;
    while got < n {
        match tokio::time::timeout_at(t0 + limit, rx.recv()).await {
            Ok(Some(Ok(()))) => got += 1,
            Ok(Some(Err(e))) => {
                got += 1;
                if failures.len() < 10 {
                    failures.push(e);
                } else if failures.len() == 10 {
                    failures.push("(more connection failures)".into());
                }
            }
            Ok(None) => break,
            Err(_) => {
                failures.push(format!(
                    "only {got} of {n} connections ready after {limit:?}"
                ));
                break;
            }
        }
    }
    Opened {
        secs: t0.elapsed().as_secs_f64(),
        failures,
    }
}

/// Opens a connection and, if `join` is given, joins that room (waiting for
/// `{"ok": true}`).
pub(crate) async fn open_join(
    t: &Target,
    i: usize,
    id: &str,
    join: Option<&str>,
    cap: usize,
) -> Result<WsConn, String> {
    let mut c = open(t, i, id, cap).await?;
    if let Some(room) = join {
        let v = request(
            &mut c,
            t,
            "join",
            0,
            |b| {
                let _ = std::io::Write::write_fmt(
                    b,
                    format_args!(r#"{{"ns":"{NS}","room":"{room}"}}"#),
                );
            },
            REPLY_TIMEOUT,
            |_| {},
        )
        .await
        .map_err(|e| format!("{id}: join: {e}"))?;
        if v.get("ok") != Some(&Value::Bool(true)) {
            return Err(format!("{id}: join replied {v}"));
        }
    }
    Ok(c)
}

// ---------------------------------------------------------------- rate runs

/// One step's command to the senders.
#[derive(Debug, Clone, Copy)]
struct StepCmd {
    step: u64,
    start: Instant,
    end: Instant,
    /// Messages per second per sender (rate mode).
    rate: f64,
}

/// What a rate task sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sends {
    Nothing,
    Room,
    All,
    To,
}

#[derive(Debug)]
pub(crate) struct RateCtx {
    sh: Arc<Shared>,
    target: Target,
    /// Filler bytes in every published datum.
    pad: usize,
    /// Unicast: number of clients (targets are `c0..`).
    clients: usize,
    /// Unicast closed loop: one semaphore per sender (never empty).
    permits: Vec<Semaphore>,
    window: usize,
}

/// Sender schedule within a step.
#[derive(Debug, Clone, Copy)]
struct Plan {
    cmd: StepCmd,
    j: u64,
    total: u64,
    offset: f64,
}

impl Plan {
    fn at(&self, j: u64) -> Instant {
        self.cmd.start + Duration::from_secs_f64(self.offset + j as f64 / self.cmd.rate.max(1e-9))
    }
}

#[allow(clippy::too_many_arguments)]
async fn rate_task(
    mut c: WsConn,
    ctx: Arc<RateCtx>,
    who: String,
    me: u64,
    phase: f64,
    sends: Sends,
    record: bool,
    mut cmd: watch::Receiver<Option<StepCmd>>,
) {
    let sh = &*ctx.sh;
    let proto = ctx.target.proto;
    let hb = ctx.target.heartbeat.clone();
    let nodes = ctx.target.urls.len();
    let my_node = me as usize % nodes;
    let mut seen = Seen::default();
    let mut tally = Tally::default();
    let mut rng = Rng::new(me + 7);
    let mut plan: Option<Plan> = None;
    let window = ctx.window > 0 && sends == Sends::To;
    let pad = ctx.pad;
    let never = Instant::now() + Duration::from_secs(86_400);
    loop {
        let next_at = match plan {
            Some(p) if !window => p.at(p.j).min(p.cmd.end),
            _ => never,
        };
        let end_at = plan.map(|p| p.cmd.end).unwrap_or(never);
        let mut to_send = 0u64;
        tokio::select! {
            biased;
            _ = sh.stop.cancelled() => break,
            r = c.fill() => {
                if let Err(e) = r {
                    sh.disconnected(&who, e.to_string());
                    break;
                }
                let now = now_us();
                let res = c.parse(|m, out| {
                    let inc = decode(proto, m, &hb);
                    if control(proto, &inc, out) || !record {
                        return;
                    }
                    match inc {
                        Incoming::Push { datum: Some(d), .. } => {
                            if let Some(s) = seen.on_datum(sh, &mut tally, d.s, d.q, d.t, now) {
                                if window {
                                    if let Some(p) = ctx.permits.get(s as usize) {
                                        p.add_permits(1);
                                    }
                                }
                            }
                        }
                        Incoming::Push { .. } | Incoming::Other => tally.invalid(),
                        _ => {}
                    }
                });
                tally.flush(sh);
                if let Err(e) = res {
                    sh.disconnected(&who, e.to_string());
                    break;
                }
            }
            ch = cmd.changed() => {
                if ch.is_err() {
                    break;
                }
                let new = *cmd.borrow_and_update();
                plan = new.filter(|_| sends != Sends::Nothing).map(|cmd| {
                    let offset = phase / cmd.rate.max(1e-9);
                    let dur = cmd.end.saturating_duration_since(cmd.start).as_secs_f64();
                    let total = ((dur - offset) * cmd.rate).ceil().max(0.0) as u64;
                    Plan { cmd, j: 0, total, offset }
                });
            }
            _ = tokio::time::sleep_until(end_at), if plan.is_some() && window => {
                plan = None;
            }
            p = ctx.permits[me as usize % ctx.permits.len().max(1)].acquire(),
                if window && plan.is_some() => {
                if let Ok(p) = p {
                    p.forget();
                    to_send = 1;
                }
            }
            _ = tokio::time::sleep_until(next_at), if plan.is_some() && !window => {
                let now = Instant::now();
                if let Some(p) = plan.as_mut() {
                    if now >= p.cmd.end {
                        plan = None;
                    } else {
                        let mut n = 0;
                        while p.j + n < p.total && p.at(p.j + n) <= now && n < 1000 {
                            n += 1;
                        }
                        to_send = n;
                    }
                }
            }
        }
        if to_send > 0 {
            if let Some(p) = plan.as_mut() {
                let t = now_us();
                let step = p.cmd.step;
                let mut out = c.outbox();
                for _ in 0..to_send {
                    let d = Datum {
                        s: me,
                        q: (step << 32) | p.j,
                        t,
                    };
                    p.j += 1;
                    match sends {
                        Sends::Room => out.text_with(|b| {
                            encode_event(proto, b, "room", None, |b| {
                                let _ = std::io::Write::write_fmt(
                                    b,
                                    format_args!(r#"{{"ns":"{NS}","room":"{FAN_ROOM}","data":"#),
                                );
                                d.write_padded(b, pad);
                                b.push(b'}');
                            })
                        }),
                        Sends::All => out.text_with(|b| {
                            encode_event(proto, b, "all", None, |b| {
                                b.extend_from_slice(br#"{"data":"#);
                                d.write_padded(b, pad);
                                b.push(b'}');
                            })
                        }),
                        Sends::To => {
                            let to =
                                pick_target(&mut rng, me as usize, my_node, nodes, ctx.clients);
                            out.text_with(|b| {
                                encode_event(proto, b, "to", None, |b| {
                                    let _ = std::io::Write::write_fmt(
                                        b,
                                        format_args!(r#"{{"to":"c{to}","data":"#),
                                    );
                                    d.write(b);
                                    b.push(b'}');
                                })
                            })
                        }
                        Sends::Nothing => {}
                    }
                }
                sh.sent.fetch_add(to_send, Relaxed);
                if !window && p.j >= p.total {
                    plan = None;
                }
            }
        }
        if c.has_output() {
            if let Err(e) = c.flush().await {
                sh.disconnected(&who, e.to_string());
                break;
            }
        }
    }
}

/// A random client other than `me`, on another node when there are several.
fn pick_target(rng: &mut Rng, me: usize, my_node: usize, nodes: usize, clients: usize) -> usize {
    for _ in 0..16 {
        let j = rng.below(clients as u64) as usize;
        if j != me && (nodes == 1 || j % nodes != my_node) {
            return j;
        }
    }
    (me + 1) % clients.max(1)
}

/// Figures of one step.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub(crate) step: u64,
    pub(crate) rate: f64,
    pub(crate) dur: f64,
    pub(crate) target: f64,
    pub(crate) sent: u64,
    pub(crate) expected: u64,
    pub(crate) received: u64,
    pub(crate) dups: u64,
    pub(crate) late: u64,
    pub(crate) invalid: u64,
    pub(crate) disconnects: u64,
    pub(crate) lat: LatencySummary,
    pub(crate) cpu: CpuReport,
    pub(crate) pass: bool,
    pub(crate) why: Vec<String>,
    pub(crate) warmup: bool,
}

impl StepResult {
    pub(crate) fn loss(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    pub(crate) fn deliveries_per_s(&self) -> f64 {
        self.received as f64 / self.dur.max(1e-9)
    }

    /// Server CPU microseconds per delivered frame: (user, sys).
    fn server_us(&self) -> (f64, f64) {
        let (u, s) = self.cpu.server_seconds();
        let n = self.received.max(1) as f64;
        (u * 1e6 / n, s * 1e6 / n)
    }

    /// Losses, duplicates, invalid data, disconnects: contract violations.
    pub(crate) fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let tag = if self.warmup { "warm-up" } else { "step" };
        if self.loss() > 0 {
            v.push(format!(
                "{tag} {} at {:.0} msgs/s lost {} of {} deliveries",
                self.step,
                self.rate,
                self.loss(),
                self.expected
            ));
        }
        if self.dups > 0 {
            v.push(format!(
                "{tag} {} at {:.0} msgs/s: {} duplicates",
                self.step, self.rate, self.dups
            ));
        }
        if self.invalid > 0 {
            v.push(format!(
                "{tag} {}: {} invalid data frames",
                self.step, self.invalid
            ));
        }
        if self.disconnects > 0 {
            v.push(format!(
                "{tag} {}: {} connections dropped",
                self.step, self.disconnects
            ));
        }
        v
    }

    pub(crate) fn line(&self) -> String {
        let (u, s) = self.server_us();
        format!(
            "{:>4} {:>9.1} {:>11.0} {:>8}/{:<8.0} {:>6} {:>4} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6.0}% {:>6.0}% {:>6.2} {:>6.2}  {}",
            if self.warmup { "warm".to_string() } else { self.step.to_string() },
            self.rate,
            self.deliveries_per_s(),
            self.sent,
            self.target,
            self.loss(),
            self.dups,
            self.lat.p50_ms,
            self.lat.p99_ms,
            self.lat.p999_ms,
            self.lat.max_ms,
            self.cpu.loadgen_pct(),
            self.cpu.uses.iter().filter(|x| x.server).map(|x| x.pct).sum::<f64>(),
            u,
            s,
            if self.pass { "pass".to_string() } else { format!("FAIL: {}", self.why.join("; ")) }
        )
    }

    pub(crate) fn to_json(&self) -> Value {
        let (u, s) = self.server_us();
        json!({
            "step": self.step,
            "warmup": self.warmup,
            "rate_msgs_per_s": round3(self.rate),
            "duration_s": round3(self.dur),
            "target_msgs": self.target.round(),
            "sent": self.sent,
            "expected": self.expected,
            "received": self.received,
            "loss": self.loss(),
            "dups": self.dups,
            "late": self.late,
            "invalid": self.invalid,
            "disconnects": self.disconnects,
            "deliveries_per_s": self.deliveries_per_s().round(),
            "latency": self.lat.to_json(),
            "pass": self.pass,
            "why": self.why,
            "cpu": self.cpu.to_json(),
            "server_us_per_delivery": {
                "user": round3(u), "sys": round3(s), "total": round3(u + s)
            },
        })
    }
}

pub(crate) const STEP_HEADER: &str = "step  msgs/s deliveries/s  sent/target      loss dups   p50 ms   p99 ms p99.9 ms   max ms loadgen server us/dlv(u) (s)";

pub(crate) struct RateRun<'a> {
    env: &'a Env,
    ctx: Arc<RateCtx>,
    cmd: watch::Sender<Option<StepCmd>>,
    senders: usize,
    per_msg: u64,
    p99_ms: f64,
    next_step: u64,
}

impl RateRun<'_> {
    pub(crate) async fn step(&mut self, rate: f64, dur: f64, warmup: bool) -> StepResult {
        self.step_until(rate, dur, warmup, std::future::pending::<()>())
            .await
            .0
    }

    /// A step that ends after `dur` seconds or when `until` completes,
    /// whichever comes first; `until` runs while the publishers send (its
    /// output is `None` when the step ran its full length first).
    pub(crate) async fn step_until<F: std::future::Future>(
        &mut self,
        rate: f64,
        dur: f64,
        warmup: bool,
        until: F,
    ) -> (StepResult, Option<F::Output>) {
        let sh = &*self.ctx.sh;
        let step = self.next_step;
        self.next_step += 1;
        sh.begin_step(step);
        if self.ctx.window > 0 {
            for p in &self.ctx.permits {
                p.forget_permits(p.available_permits());
                p.add_permits(self.ctx.window);
            }
        }
        let disc0 = sh.disconnects.load(Relaxed);
        let snap0 = CpuSnap::take(&self.env.watch);
        let start = Instant::now() + Duration::from_millis(20);
        let end = start + Duration::from_secs_f64(dur);
        let per_sender = rate / self.senders.max(1) as f64;
        let _ = self.cmd.send(Some(StepCmd {
            step,
            start,
            end,
            rate: per_sender,
        }));
        let mut side = None;
        tokio::select! {
            _ = tokio::time::sleep_until(end + Duration::from_millis(30)) => {}
            out = until => side = Some(out),
        }
        let dur = if side.is_some() {
            Instant::now()
                .saturating_duration_since(start)
                .as_secs_f64()
        } else {
            dur
        };
        let _ = self.cmd.send(None);
        if side.is_some() {
            // Let a send that was under way when the step was cut be counted.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let sent = sh.sent.load(Relaxed);
        let expected = sent * self.per_msg;
        // Drain: until everything arrived, or 3 s without progress (60 s cap).
        let mut last = sh.received.load(Relaxed) + sh.dups.load(Relaxed);
        let mut last_change = Instant::now();
        loop {
            let got = sh.received.load(Relaxed);
            if got >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now_total = sh.received.load(Relaxed) + sh.dups.load(Relaxed);
            if now_total != last {
                last = now_total;
                last_change = Instant::now();
            }
            if last_change.elapsed() > Duration::from_secs(3)
                || end.elapsed() > Duration::from_secs(60)
            {
                break;
            }
        }
        let snap1 = CpuSnap::take(&self.env.watch);
        let cpu = CpuReport::between(&snap0, &snap1, &self.env.watch);
        let lat = sh.hist.snapshot();
        let target = if self.ctx.window > 0 {
            sent as f64
        } else {
            rate * dur
        };
        let mut r = StepResult {
            step,
            rate: if self.ctx.window > 0 {
                sent as f64 / dur
            } else {
                rate
            },
            dur,
            target,
            sent,
            expected,
            received: sh.received.load(Relaxed),
            dups: sh.dups.load(Relaxed),
            late: sh.late.load(Relaxed),
            invalid: sh.invalid.load(Relaxed),
            disconnects: sh.disconnects.load(Relaxed) - disc0,
            lat,
            cpu,
            pass: false,
            why: Vec::new(),
            warmup,
        };
        if r.loss() > 0 {
            r.why.push(format!("loss {}", r.loss()));
        }
        if r.dups > 0 {
            r.why.push(format!("{} dups", r.dups));
        }
        if r.disconnects > 0 {
            r.why.push(format!("{} disconnects", r.disconnects));
        }
        if r.invalid > 0 {
            r.why.push(format!("{} invalid", r.invalid));
        }
        if (sent as f64) < 0.99 * target {
            r.why.push(format!(
                "sent {:.1}% of target",
                sent as f64 / target.max(1.0) * 100.0
            ));
        }
        if r.lat.p99_ms >= self.p99_ms {
            r.why.push(format!("p99 {:.1} ms", r.lat.p99_ms));
        }
        if r.lat.count == 0 {
            r.why.push("nothing received".into());
        }
        r.pass = r.why.is_empty();
        eprintln!("{}", r.line());
        // Quiet: let stragglers of a failed step arrive before the next one.
        let mut f = sh.frames.load(Relaxed);
        let t0 = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let g = sh.frames.load(Relaxed);
            if g == f || t0.elapsed() > Duration::from_secs(30) {
                break;
            }
            f = g;
        }
        (r, side)
    }

    /// Runs the steps (one, or --find-max) and returns them.
    async fn run(&mut self, a: &RateArgs) -> (Vec<StepResult>, Option<usize>, Vec<String>) {
        let mut steps = Vec::new();
        let mut notes = Vec::new();
        eprintln!("{STEP_HEADER}");
        if a.warmup > 0.0 {
            let w = self.step(a.rate, a.warmup, true).await;
            let stop = w.disconnects > 0;
            steps.push(w);
            if stop {
                notes.push("connections dropped during the warm-up".into());
                return (steps, None, notes);
            }
        }
        if !a.find_max {
            let r = self.step(a.rate, a.duration, false).await;
            steps.push(r);
            let i = steps.len() - 1;
            return (steps, Some(i), notes);
        }
        let mut rate = a.rate.min(a.max_rate);
        let mut best: Option<(f64, usize)> = None;
        let mut fail: Option<f64> = None;
        for _ in 0..a.max_steps {
            let r = self.step(rate, a.duration, false).await;
            let pass = r.pass;
            let disc = r.disconnects > 0;
            steps.push(r);
            if disc {
                notes.push(format!(
                    "stopped: connections dropped at {rate:.0} msgs/s (cannot continue without them)"
                ));
                break;
            }
            if pass {
                best = Some((rate, steps.len() - 1));
                match fail {
                    Some(f) => {
                        if (f - rate) / rate <= a.precision {
                            break;
                        }
                        rate = (rate + f) / 2.0;
                    }
                    None => {
                        if rate >= a.max_rate {
                            notes.push(format!("reached --max-rate {:.0}", a.max_rate));
                            break;
                        }
                        rate = (rate * a.ramp).min(a.max_rate);
                    }
                }
            } else {
                fail = Some(fail.map_or(rate, |f: f64| f.min(rate)));
                match best {
                    Some((b, _)) => {
                        if (rate - b) / b <= a.precision {
                            break;
                        }
                        rate = (b + rate) / 2.0;
                    }
                    None => {
                        rate /= a.ramp;
                        if rate < 0.5 {
                            notes.push("no passing rate down to 0.5 msgs/s".into());
                            break;
                        }
                    }
                }
            }
        }
        (steps, best.map(|(_, i)| i), notes)
    }
}

#[allow(clippy::too_many_arguments)]
fn rate_outcome(
    env: &Env,
    scenario: &str,
    params: Value,
    a: &RateArgs,
    steps: Vec<StepResult>,
    best: Option<usize>,
    mut notes: Vec<String>,
    setup_failures: Vec<String>,
    per_msg: u64,
) -> Outcome {
    let mut failures = setup_failures;
    // In a search for the highest passing rate, loss at a step above that
    // rate is what ends the search (SCENARIOS.md: "a step passes with zero
    // loss, ..."): a server that bounds its queues sheds load there where
    // one that does not queues without bound. It is reported, not a
    // contract violation. Duplicates and invalid data always are, and so is
    // any loss at or below the rate reported.
    let best_rate = best.and_then(|i| steps.get(i)).map(|r| r.rate);
    for s in &steps {
        let overload = a.find_max && !s.pass && best_rate.is_some_and(|b| s.rate > b);
        if overload && s.dups == 0 && s.invalid == 0 {
            for v in s.violations() {
                notes.push(format!("overload, above the passing rate: {v}"));
            }
        } else {
            failures.extend(s.violations());
        }
    }
    let mut lines = vec![format!(
        "{scenario} ({}, {} node(s), {} receiver(s) per message){}",
        env.target.proto.name(),
        env.target.urls.len(),
        per_msg,
        if a.find_max { ", find-max" } else { "" }
    )];
    lines.push(STEP_HEADER.to_string());
    lines.extend(steps.iter().map(StepResult::line));
    let chosen = best.and_then(|i| steps.get(i));
    if a.find_max {
        match chosen {
            Some(r) => lines.push(format!(
                "max passing rate: {:.1} msgs/s = {:.0} deliveries/s (p99 < {} ms, no loss)",
                r.rate,
                r.deliveries_per_s(),
                a.p99_ms
            )),
            None => {
                failures.push("no step passed".into());
                lines.push("no passing rate found".into());
            }
        }
    } else if let Some(r) = chosen {
        if !r.pass {
            notes.push(format!("the step did not pass: {}", r.why.join("; ")));
        }
    }
    if let Some(r) = chosen {
        let (u, s) = r.server_us();
        lines.push(format!(
            "at that rate: {:.0} deliveries/s, {}; server CPU per delivered frame {:.2} µs user + {:.2} µs sys = {:.2} µs",
            r.deliveries_per_s(),
            human_lat(&r.lat),
            u,
            s,
            u + s
        ));
        lines.extend(r.cpu.lines());
    }
    let bound: Vec<String> = steps
        .iter()
        .filter(|s| s.cpu.loadgen_pct() > 90.0)
        .map(|s| {
            format!(
                "{} ({:.0} msgs/s, loadgen {:.0}%)",
                s.step,
                s.rate,
                s.cpu.loadgen_pct()
            )
        })
        .collect();
    if !bound.is_empty() {
        notes.push(format!(
            "generator-bound steps (loadgen > 90% of a core): {}",
            bound.join(", ")
        ));
    }
    push_verdict(&mut lines, &notes, &failures);
    let json = json!({
        "scenario": scenario,
        "params": params,
        "result": chosen.map(StepResult::to_json),
        "max": if a.find_max {
            chosen.map(|r| json!({
                "rate_msgs_per_s": round3(r.rate),
                "deliveries_per_s": r.deliveries_per_s().round(),
            }))
        } else { None },
        "steps": steps.iter().map(StepResult::to_json).collect::<Vec<_>>(),
        "generator_bound_any": !bound.is_empty(),
        "notes": notes,
    });
    Outcome {
        lines,
        json,
        failures,
    }
}

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
        RateRun {
            env,
            ctx: self.ctx.clone(),
            cmd: self.cmd.clone(),
            senders: self.ctx.sh.n_senders as usize,
            per_msg: self.per_msg,
            p99_ms,
            next_step: 1,
        }
    }
}

/// Connects N subscribers (ids `s0..`, joined to the fan-out room) and P
/// publishers (`p0..`) and waits until all are ready.
pub(crate) async fn start_fanout(env: &Env, n: usize, p: usize, all: bool, pad: usize) -> Fan {
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
    });
    let (cmd_tx, cmd_rx) = watch::channel(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let sem = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
    let mut handles = Vec::new();
    for i in 0..n + p {
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
            let permit = sem.acquire_owned().await;
            let r = open_join(&ctx.target, idx, &id, join, 4096).await;
            drop(permit);
            match r {
                Ok(c) => {
                    let _ = ready.send(Ok(()));
                    let me = if is_pub { idx as u64 } else { u64::MAX };
                    let phase = if is_pub { idx as f64 / p as f64 } else { 0.0 };
                    rate_task(c, ctx, id, me, phase, sends, record, rx).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        }));
    }
    drop(ready_tx);
    let opened = wait_ready(&mut ready_rx, n + p).await;
    eprintln!(
        "fan-out: {n} subscribers + {p} publishers connected in {:.2} s",
        opened.secs
    );
    Fan {
        sh,
        ctx,
        cmd: cmd_tx,
        handles,
        opened,
        per_msg: if all { (n + p) as u64 } else { n as u64 },
    }
}

/// `fanout`: N subscribers in one room, P publishers.
pub async fn fanout(env: &Env, a: &FanoutArgs) -> Outcome {
    let all = a.event == FanEvent::All;
    let fan = start_fanout(env, a.n, a.p, all, 0).await;
    let (n, p) = (a.n.max(1), a.p.max(1));
    let per_msg = fan.per_msg;
    let params = json!({
        "subscribers": n, "publishers": p, "event": if all { "all" } else { "room" },
        "rate": a.rate.rate, "duration_s": a.rate.duration, "find_max": a.rate.find_max,
        "ramp": a.rate.ramp, "p99_ms": a.rate.p99_ms, "nodes": env.target.urls.len(),
        "connect_s": round3(fan.opened.secs),
    });
    let (steps, best, notes) = if fan.opened.failures.is_empty() {
        fan.runner(env, a.rate.p99_ms).run(&a.rate).await
    } else {
        (Vec::new(), None, Vec::new())
    };
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
            let permit = sem.acquire_owned().await;
            let r = open_join(&ctx.target, i, &id, None, 4096).await;
            drop(permit);
            match r {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    let phase = i as f64 / c as f64;
                    rate_task(conn, ctx, id, i as u64, phase, Sends::To, true, rx).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
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
        let mut run = RateRun {
            env,
            ctx: ctx.clone(),
            cmd: cmd_tx,
            senders: c,
            per_msg: 1,
            p99_ms: ra.p99_ms,
            next_step: 1,
        };
        run.run(&ra).await
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

/// Appends a run's notes and failures to its human report.
pub(crate) fn push_verdict(lines: &mut Vec<String>, notes: &[String], failures: &[String]) {
    lines.extend(notes.iter().map(|n| format!("note: {n}")));
    lines.extend(failures.iter().map(|f| format!("FAILURE: {f}")));
}

pub(crate) async fn finish(sh: &Shared, handles: Vec<tokio::task::JoinHandle<()>>) {
    sh.stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    for h in handles {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            break;
        }
    }
}

pub(crate) fn add_errors(out: &mut Outcome, sh: &Shared) {
    let errs = sh.errors();
    if !errs.is_empty() {
        out.lines.push("errors (first ones):".into());
        for e in &errs {
            out.lines.push(format!("  {e}"));
        }
        if let Value::Object(m) = &mut out.json {
            m.insert("errors".into(), json!(errs));
        }
    }
}

// ---------------------------------------------------------- closed loops

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
            let permit = sem.acquire_owned().await;
            let r = open_join(&t, i, &id, join, 4096).await;
            drop(permit);
            match r {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    loop_task(conn, sh, t, id, i as u64, kind, rpc_target, c as u64, ph).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
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
    finish(&sh, handles).await;
    for f in &failures {
        lines.push(format!("FAILURE: {f}"));
    }
    let mut out = Outcome {
        lines,
        json: json!({
            "scenario": name,
            "params": {
                "clients": c, "duration_s": a.duration, "warmup_s": a.warmup,
                "nodes": nodes, "names": names, "connect_s": round3(opened.secs),
            },
            "result": result,
        }),
        failures,
    };
    add_errors(&mut out, &sh);
    out
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

// ---------------------------------------------------------------- conns

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
            _ = sh.stop.cancelled() => break,
            r = c.fill() => {
                if let Err(e) = r {
                    sh.disconnected(&who, e.to_string());
                    break;
                }
                let hb = &t.heartbeat;
                let res = c.parse(|m, out| {
                    let inc = decode(proto, m, hb);
                    control(proto, &inc, out);
                });
                if let Err(e) = res {
                    sh.disconnected(&who, e.to_string());
                    break;
                }
            }
            _ = tokio::time::sleep_until(next) => {
                c.outbox().text(&t.heartbeat);
                next += period;
            }
        }
        if c.has_output() {
            if let Err(e) = c.flush().await {
                sh.disconnected(&who, e.to_string());
                break;
            }
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
            let permit = sem.acquire_owned().await;
            let r = open(&t, i, &id, 512).await;
            drop(permit);
            match r {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    idle_task(conn, sh, t, id, hb).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
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
    finish(&sh, handles).await;
    for f in &failures {
        lines.push(format!("FAILURE: {f}"));
    }
    let mut out = Outcome {
        lines,
        json: json!({
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
        }),
        failures,
    };
    add_errors(&mut out, &sh);
    out
}

/// Resolves the common options into an [`Env`] (starting the generator threads).
pub fn env_from(common: &Common, total_conns: usize) -> Result<Env, String> {
    if common.urls.is_empty() {
        return Err("at least one --url is required".into());
    }
    let urls = common
        .urls
        .iter()
        .map(|u| client::parse_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    let watch = common
        .pids
        .iter()
        .map(|p| Watched::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let src_ips = if common.src_ips == 0 {
        total_conns / 28_000 + 1
    } else {
        common.src_ips
    };
    if src_ips > 250 {
        return Err("--src-ips: at most 250".into());
    }
    if src_ips > 1 && urls.iter().any(|u| !u.is_ipv4()) {
        return Err("--src-ips > 1 needs IPv4 server addresses".into());
    }
    let gen = Generator::start(common.threads, common.park_us).map_err(|e| e.to_string())?;
    Ok(Env {
        target: Target {
            proto: common.proto,
            urls,
            src_ips,
            heartbeat: common.heartbeat.as_bytes().to_vec(),
        },
        watch,
        gen,
        common: common.clone(),
    })
}
