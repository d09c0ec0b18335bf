//! The soak scenarios: `slow` (clients that stop reading their sockets) and
//! `storm` (many clients connecting and dropping at once), each beside a
//! steady fan-out whose receivers must not notice, while the server's RSS is
//! read over time.

use crate::loadgen::cli::{SlowArgs, SteadyArgs, StormArgs};
use crate::loadgen::client::{control, Target};
use crate::loadgen::gen::{Generator, Shared};
use crate::loadgen::hist::round3;
use crate::loadgen::scenarios::fanout::{start_fanout, Fan};
use crate::loadgen::scenarios::rate::{StepResult, STEP_HEADER};
use crate::loadgen::scenarios::{
    add_errors, finish, human_lat, open_join, push_verdict, wait_ready, Env, Outcome, FAN_ROOM,
};
use crate::loadgen::sys::rss_kib;
use crate::loadgen::wire::decode;
use crate::loadgen::ws::{WsConn, WsError};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Room the storm clients join (not the fan-out room).
pub const STORM_ROOM: &str = "storm";

const MIB: f64 = 1024.0;

// ------------------------------------------------------------------- RSS

/// Reads the summed RSS of the watched bench servers every `every` seconds
/// and keeps every reading.
pub struct RssSampler {
    pids: Vec<u32>,
    log: Arc<Mutex<Vec<(Instant, u64)>>>,
    t0: Instant,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn rss_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

impl RssSampler {
    /// Starts sampling the bench servers of `env` (`None` without any).
    pub fn start(env: &Env, every: f64) -> Option<RssSampler> {
        let pids: Vec<u32> = env
            .watch
            .iter()
            .filter(|w| w.is_server())
            .map(|w| w.pid)
            .collect();
        if pids.is_empty() {
            return None;
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let every = Duration::from_secs_f64(every.clamp(0.01, 10.0));
        let task = {
            let (pids, log, stop) = (pids.clone(), log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            if let (Some(k), Ok(mut l)) = (rss_sum(&pids), log.lock()) {
                                l.push((Instant::now(), k));
                            }
                        }
                    }
                }
            })
        };
        Some(RssSampler {
            pids,
            log,
            t0: Instant::now(),
            stop,
            task,
        })
    }

    /// Reads the RSS now (KiB) and keeps the reading.
    pub fn read(&self) -> Option<u64> {
        let k = rss_sum(&self.pids)?;
        if let Ok(mut l) = self.log.lock() {
            l.push((Instant::now(), k));
        }
        Some(k)
    }

    /// The highest reading taken between `a` and `b`.
    pub fn peak_between(&self, a: Instant, b: Instant) -> Option<u64> {
        let l = self.log.lock().ok()?;
        l.iter()
            .filter(|(t, _)| *t >= a && *t <= b)
            .map(|(_, k)| *k)
            .max()
    }

    /// One reading per second (the highest of that second): `[s, KiB]`.
    pub fn timeline(&self) -> Value {
        let Ok(l) = self.log.lock() else {
            return Value::Null;
        };
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (t, k) in l.iter() {
            let s = t.saturating_duration_since(self.t0).as_secs();
            match out.last_mut() {
                Some((ls, lk)) if *ls == s => *lk = (*lk).max(*k),
                _ => out.push((s, *k)),
            }
        }
        json!(out)
    }

    /// Stops sampling.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / MIB
}

fn delta_mib(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / MIB
}

// --------------------------------------------------------------- metrics

/// Splits `http://HOST:PORT/PATH` (loopback only) into address and path.
pub fn parse_http_url(s: &str) -> Result<(SocketAddr, String), String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s}: only http:// metrics URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/metrics".to_string()),
    };
    let addr = crate::loadgen::client::parse_url(&format!("ws://{hostport}"))
        .map_err(|e| format!("--metrics: {e}"))?;
    Ok((addr, path))
}

/// Fetches the server's metrics text (HTTP/1.1, one request).
pub async fn fetch_metrics(url: &str) -> Result<String, String> {
    let (addr, path) = parse_http_url(url)?;
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .map_err(|_| format!("{url}: no answer within 5 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

/// The sum of the series of metric `name` whose labels include every
/// `key="value"` of `labels` (`None` when there is no such series).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series_labels, value) = match rest.as_bytes().first() {
            Some(b'{') => match rest.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            Some(b' ') => ("", &rest[1..]),
            _ => continue,
        };
        if !labels
            .iter()
            .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        if let Ok(v) = value.trim().parse::<f64>() {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// The figures `slow` and `storm` read from the server's metrics.
#[derive(Debug, Clone, Copy, Default)]
struct ServerFigures {
    connections: f64,
    bound_ids: f64,
    accepted: f64,
    slow_closes: f64,
    liveness_closes: f64,
}

impl ServerFigures {
    fn read(text: &str) -> ServerFigures {
        let get = |name: &str, labels: &[(&str, &str)]| metric(text, name, labels).unwrap_or(0.0);
        ServerFigures {
            connections: get("crosswire_connections", &[]),
            bound_ids: get("crosswire_bound_socket_ids", &[]),
            accepted: get("crosswire_connections_accepted_total", &[]),
            slow_closes: get(
                "crosswire_socket_closes_total",
                &[("reason", "slow_consumer")],
            ),
            liveness_closes: get("crosswire_socket_closes_total", &[("reason", "liveness")]),
        }
    }
}

async fn figures(env: &Env, notes: &mut Vec<String>) -> Option<ServerFigures> {
    let url = env.common.metrics.as_deref()?;
    match fetch_metrics(url).await {
        Ok(t) => Some(ServerFigures::read(&t)),
        Err(e) => {
            notes.push(format!("metrics not read: {e}"));
            None
        }
    }
}

// ----------------------------------------------------------- shared parts

/// Checks the options of the steady fan-out.
fn check_steady(a: &SteadyArgs) -> Result<(), String> {
    if !(a.rate > 0.0 && a.rate.is_finite()) {
        return Err("--rate must be positive".into());
    }
    Ok(())
}

/// Connects the steady fan-out; on failure, the outcome to return.
async fn steady(env: &Env, a: &SteadyArgs, scenario: &str) -> Result<Fan, Outcome> {
    if let Err(e) = check_steady(a) {
        return Err(failed(scenario, vec![e]));
    }
    let fan = start_fanout(env, a.n, a.p, false, a.pad).await;
    if fan.opened.failures.is_empty() {
        return Ok(fan);
    }
    let failures = fan.opened.failures.clone();
    let Fan { sh, handles, .. } = fan;
    finish(&sh, handles).await;
    let mut out = failed(scenario, failures);
    add_errors(&mut out, &sh);
    Err(out)
}

fn failed(scenario: &str, failures: Vec<String>) -> Outcome {
    Outcome {
        lines: failures.iter().map(|f| format!("FAILURE: {f}")).collect(),
        json: json!({ "scenario": scenario, "result": Value::Null }),
        failures,
    }
}

/// Report lines of the steady receivers' step.
fn steady_lines(r: &StepResult, n: usize) -> Vec<String> {
    let mut v = vec![
        format!("steady fan-out to {n} receivers:"),
        STEP_HEADER.to_string(),
        r.line(),
        format!(
            "  {:.0} deliveries/s, {} of {} delivered, loss {}, duplicates {}, {}",
            r.deliveries_per_s(),
            r.received,
            r.expected,
            r.loss(),
            r.dups,
            human_lat(&r.lat)
        ),
    ];
    v.extend(r.cpu.lines());
    v
}

/// The steady step's contract: zero loss and duplicates, nothing dropped, p99.
fn steady_failures(r: &StepResult, p99_ms: f64) -> Vec<String> {
    let mut f = r.violations();
    if r.lat.p99_ms >= p99_ms {
        f.push(format!(
            "receivers' p99 {:.1} ms is not below {p99_ms} ms",
            r.lat.p99_ms
        ));
    }
    if r.lat.count == 0 {
        f.push("the receivers got nothing".into());
    }
    if (r.sent as f64) < 0.99 * r.target {
        f.push(format!(
            "publishers sent {} of {:.0} messages",
            r.sent, r.target
        ));
    }
    f
}

// ------------------------------------------------------------------ slow

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

/// Ends a soak run: stops the RSS sampler, appends the notes and failures to
/// the report, and stops the steady fan-out. Returns the RSS timeline and the
/// fan-out's shared state (for its error counts).
async fn end_run(
    sampler: Option<RssSampler>,
    fan: Fan,
    lines: &mut Vec<String>,
    notes: &[String],
    failures: &[String],
) -> (Option<Value>, Arc<Shared>) {
    let timeline = sampler.as_ref().map(RssSampler::timeline);
    if let Some(s) = sampler {
        s.stop().await;
    }
    push_verdict(lines, notes, failures);
    let Fan { sh, handles, .. } = fan;
    finish(&sh, handles).await;
    (timeline, sh)
}

/// `slow`: steady fan-out to N receivers; S more clients join the room and
/// never read.
pub async fn slow(env: &Env, a: &SlowArgs) -> Outcome {
    let st = &a.steady;
    let fan = match steady(env, st, "slow").await {
        Ok(f) => f,
        Err(out) => return out,
    };
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

    let before = figures(env, &mut notes).await;
    let sampler = RssSampler::start(env, st.rss_every);
    if sampler.is_none() {
        failures.push("no bench server --pid given: the RSS bound cannot be checked".into());
    }
    let mut runner = fan.runner(env, st.p99_ms);
    eprintln!("{STEP_HEADER}");
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
    let (timeline, sh) = end_run(sampler, fan, &mut lines, &notes, &failures).await;
    let mut out = Outcome {
        lines,
        json: json!({
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
        }),
        failures,
    };
    add_errors(&mut out, &sh);
    out
}

// ----------------------------------------------------------------- storm

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
    let permit = sem.acquire_owned().await;
    let r = open_join(&t, i, &id, join.then_some(STORM_ROOM), 1024).await;
    drop(permit);
    let mut c = match r {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return StormEnd::NotConnected;
        }
    };
    let _ = ready.send(Ok(()));
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
    if i % 2 == 0 {
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
    let st = &a.steady;
    let fan = match steady(env, st, "storm").await {
        Ok(f) => f,
        Err(out) => return out,
    };
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
    let before = figures(env, &mut notes).await;
    let sampler = RssSampler::start(env, st.rss_every);
    if sampler.is_none() {
        failures.push("no bench server --pid given: the RSS bound cannot be checked".into());
    }
    let mut runner = fan.runner(env, st.p99_ms);
    eprintln!("{STEP_HEADER}");
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
    let (timeline, sh) = end_run(sampler, fan, &mut lines, &notes, &failures).await;
    gen.shutdown();
    let mut out = Outcome {
        lines,
        json: json!({
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
        }),
        failures,
    };
    add_errors(&mut out, &sh);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines() {
        let t = "# TYPE crosswire_connections gauge\n\
                 crosswire_connections{node=\"n1\"} 12\n\
                 crosswire_connections_accepted_total{node=\"n1\"} 40\n\
                 crosswire_socket_closes_total{node=\"n1\",reason=\"slow_consumer\"} 3\n\
                 crosswire_socket_closes_total{node=\"n1\",reason=\"liveness\"} 1\n";
        assert_eq!(metric(t, "crosswire_connections", &[]), Some(12.0));
        assert_eq!(
            metric(t, "crosswire_connections_accepted_total", &[]),
            Some(40.0)
        );
        assert_eq!(
            metric(
                t,
                "crosswire_socket_closes_total",
                &[("reason", "slow_consumer")]
            ),
            Some(3.0)
        );
        assert_eq!(metric(t, "crosswire_socket_closes_total", &[]), Some(4.0));
        assert_eq!(metric(t, "crosswire_missing", &[]), None);
    }

    #[test]
    fn metrics_urls_loopback_only() {
        let (a, p) =
            parse_http_url("http://127.0.0.1:9100/metrics").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.port(), 9100);
        assert_eq!(p, "/metrics");
        assert!(parse_http_url("http://10.0.0.1:9100/metrics").is_err());
        assert!(parse_http_url("https://127.0.0.1:9100/metrics").is_err());
    }
}
