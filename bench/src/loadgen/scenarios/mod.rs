//! The scenarios of `docs/benchmarks.md` §6, one module each, and what they share.
//!
//! | scenario | module |
//! | --- | --- |
//! | `fanout` | [`fanout`](mod@fanout) |
//! | `unicast` | [`unicast`](mod@unicast) |
//! | `echo`, `rpc`, `count` | [`closed_loop`] |
//! | `conns` | [`conns`](mod@conns) |
//! | `slow`, `storm` | [`soak`](crate::loadgen::soak) |
//! | `recovery` | [`recovery`](mod@recovery) |
//! | `traffic` | [`traffic`](mod@traffic) |
//!
//! [`rate`] runs the open-loop rate steps of `fanout` and `unicast` (and of the
//! soak scenarios' steady fan-out). This module holds the pieces every
//! scenario uses: the [`Env`] of the common options, the [`Outcome`] of a run,
//! opening and stopping connections, and [`run`], which runs the scenario a
//! command names.

use crate::loadgen::cli::{Cmd, Common};
use crate::loadgen::client::{self, open, request, Target};
use crate::loadgen::gen::{Generator, Shared};
use crate::loadgen::hist::LatencySummary;
use crate::loadgen::soak;
use crate::loadgen::sys::Watched;
use crate::loadgen::ws::WsConn;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

pub(crate) mod closed_loop;
pub(crate) mod conns;
pub(crate) mod fanout;
pub(crate) mod presence;
pub(crate) mod rate;
pub(crate) mod recovery;
pub(crate) mod traffic;
pub(crate) mod unicast;

pub use closed_loop::{count, echo, rpc};
pub use conns::conns;
pub use fanout::fanout;
pub use presence::presence;
pub use recovery::recovery;
pub use traffic::traffic;
pub use unicast::unicast;

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

/// Sends `sig` (`Signal::STOP`, `Signal::CONT`, `Signal::KILL`, ...) to
/// process `pid`; whether it was delivered.
pub(crate) fn signal(pid: u32, sig: rustix::process::Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|target| rustix::process::kill_process(target, sig).is_ok())
}

/// Appends a run's notes and failures to its human report.
pub(crate) fn push_verdict(lines: &mut Vec<String>, notes: &[String], failures: &[String]) {
    lines.extend(notes.iter().map(|n| format!("note: {n}")));
    lines.extend(failures.iter().map(|f| format!("FAILURE: {f}")));
}

/// Opens connection `i` as [`open_join`] does, while holding one of the
/// permits of `sem` (which bounds the attempts under way), and reports to
/// `ready` whether it worked.
pub(crate) async fn connect(
    t: &Target,
    i: usize,
    id: &str,
    join: Option<&str>,
    cap: usize,
    sem: &Semaphore,
    ready: &mpsc::UnboundedSender<Result<(), String>>,
) -> Option<WsConn> {
    let permit = sem.acquire().await;
    let r = open_join(t, i, id, join, cap).await;
    drop(permit);
    match r {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            Some(c)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            None
        }
    }
}

/// Ends a run: stops its connections, appends the failures to the report
/// and adds the first errors the connections met.
pub(crate) async fn end(
    sh: &Shared,
    handles: Vec<tokio::task::JoinHandle<()>>,
    mut lines: Vec<String>,
    json: Value,
    failures: Vec<String>,
) -> Outcome {
    finish(sh, handles).await;
    push_verdict(&mut lines, &[], &failures);
    let mut out = Outcome {
        lines,
        json,
        failures,
    };
    add_errors(&mut out, sh);
    out
}

/// Whether a connection's read, parse or write went through; when it did
/// not, the connection counts as dropped (`who` and the error are kept).
pub(crate) fn alive<T, E: std::fmt::Display>(sh: &Shared, who: &str, r: Result<T, E>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            sh.disconnected(who, e.to_string());
            false
        }
    }
}

/// Waits until something arrives on `c`: false when the scenario stops or
/// the connection ended (then it counts as dropped).
pub(crate) async fn readable(c: &mut WsConn, sh: &Shared, who: &str) -> bool {
    tokio::select! {
        biased;
        _ = sh.stop.cancelled() => false,
        r = c.fill() => alive(sh, who, r),
    }
}

/// Stops a scenario's connections and waits (up to 5 s) for their tasks.
pub(crate) async fn finish(sh: &Shared, handles: Vec<tokio::task::JoinHandle<()>>) {
    sh.stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    for h in handles {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            break;
        }
    }
}

/// Adds the first errors the connections met to a run's report.
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

/// The connections the scenario of `cmd` opens at most (0 for the helper
/// commands, which open none).
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// use crosswire_bench::loadgen::cli::Cli;
/// use crosswire_bench::loadgen::scenarios::connections;
///
/// let cli = Cli::parse_from(["loadgen", "fanout", "-n", "100", "-p", "5"]);
/// assert_eq!(connections(&cli.cmd), 105);
/// let cli = Cli::parse_from(["loadgen", "free-ports", "2"]);
/// assert_eq!(connections(&cli.cmd), 0);
/// ```
pub fn connections(cmd: &Cmd) -> usize {
    match cmd {
        Cmd::Fanout(a) => a.n + a.p,
        Cmd::Unicast(a) => a.c,
        Cmd::Echo(a) | Cmd::Count(a) => a.c,
        Cmd::Rpc(a) => a.lp.c,
        Cmd::Conns(a) => a.n,
        Cmd::Slow(a) => a.steady.n + a.steady.p + a.s,
        Cmd::Storm(a) => a.steady.n + a.steady.p + a.k,
        // The clients and the sender.
        Cmd::Recovery(a) => a.c + 1,
        // One session per user once a wave settled, both sessions of the
        // users of a wave, the observer and a probe per node.
        Cmd::Presence(a) => a.users + 2 * a.wave.min(a.users) + 8,
        // The clients and a probe per node.
        Cmd::Traffic(a) => a.c + 64,
        Cmd::Compare(_) | Cmd::FreePorts { .. } => 0,
    }
}

/// Runs the scenario of `cmd` against the servers of `env` (`None` for the
/// helper commands `compare` and `free-ports`, which are no scenarios).
///
/// # Examples
///
/// ```no_run
/// use clap::Parser;
/// use crosswire_bench::loadgen::cli::Cli;
/// use crosswire_bench::loadgen::scenarios::{connections, env_from, run};
///
/// let cli = Cli::parse_from(["loadgen", "--url", "ws://127.0.0.1:9001", "echo", "-c", "5"]);
/// let env = env_from(&cli.common, connections(&cli.cmd))?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// if let Some(out) = rt.block_on(run(&env, &cli.cmd)) {
///     println!("{}", out.lines.join("\n"));
/// }
/// env.gen.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn run(env: &Env, cmd: &Cmd) -> Option<Outcome> {
    Some(match cmd {
        Cmd::Fanout(a) => fanout(env, a).await,
        Cmd::Unicast(a) => unicast(env, a).await,
        Cmd::Echo(a) => echo(env, a).await,
        Cmd::Rpc(a) => rpc(env, a).await,
        Cmd::Count(a) => count(env, a).await,
        Cmd::Conns(a) => conns(env, a).await,
        Cmd::Slow(a) => soak::slow(env, a).await,
        Cmd::Storm(a) => soak::storm(env, a).await,
        Cmd::Recovery(a) => recovery(env, a).await,
        Cmd::Presence(a) => presence(env, a).await,
        Cmd::Traffic(a) => traffic(env, a).await,
        Cmd::Compare(_) | Cmd::FreePorts { .. } => return None,
    })
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
            recovery: common.recovery,
        },
        watch,
        gen,
        common: common.clone(),
    })
}
