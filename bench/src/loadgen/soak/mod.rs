//! The soak scenarios: `slow` (clients that stop reading their sockets) and
//! `storm` (many clients connecting and dropping at once), each beside a
//! steady fan-out whose receivers must not notice, while the server's RSS is
//! read over time ([`rss`](mod@rss)) and its metrics before and after
//! ([`metrics`](mod@metrics)). This module holds the steady fan-out both run.

use crate::loadgen::cli::SteadyArgs;
use crate::loadgen::scenarios::fanout::{start_fanout, Fan};
use crate::loadgen::scenarios::rate::{RateRun, StepResult, STEP_HEADER};
use crate::loadgen::scenarios::{add_errors, finish, human_lat, push_verdict, Env, Outcome};
use metrics::{figures, ServerFigures};
use serde_json::{json, Value};
use std::future::Future;

pub(crate) mod metrics;
pub(crate) mod rss;
pub(crate) mod slow;
pub(crate) mod storm;

pub use metrics::{fetch_metrics, metric, parse_http_url};
pub use rss::RssSampler;
pub use slow::slow;
pub use storm::{storm, STORM_ROOM};

/// Checks the options of the steady fan-out.
fn check_steady(a: &SteadyArgs) -> Result<(), String> {
    if !(a.rate > 0.0 && a.rate.is_finite()) {
        return Err("--rate must be positive".into());
    }
    Ok(())
}

/// Runs `body` once the steady fan-out is connected; when it cannot be, the
/// run ends there with that failure.
pub(crate) async fn with_steady<F, Fut>(
    env: &Env,
    a: &SteadyArgs,
    scenario: &str,
    body: F,
) -> Outcome
where
    F: FnOnce(Fan) -> Fut,
    Fut: Future<Output = Outcome>,
{
    match steady(env, a, scenario).await {
        Ok(fan) => body(fan).await,
        Err(out) => out,
    }
}

/// Connects the steady fan-out; on failure, the outcome to return.
async fn steady(env: &Env, a: &SteadyArgs, scenario: &str) -> Result<Fan, Outcome> {
    if let Err(e) = check_steady(a) {
        return Err(failed(scenario, vec![e]));
    }
    let fan = start_fanout(env, a.n, a.p, false, a.pad, None).await;
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

/// The outcome of a run that could not start.
pub(crate) fn failed(scenario: &str, failures: Vec<String>) -> Outcome {
    Outcome {
        lines: failures.iter().map(|f| format!("FAILURE: {f}")).collect(),
        json: json!({ "scenario": scenario, "result": Value::Null }),
        failures,
    }
}

/// Report lines of the steady receivers' step.
pub(crate) fn steady_lines(r: &StepResult, n: usize) -> Vec<String> {
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
pub(crate) fn steady_failures(r: &StepResult, p99_ms: f64) -> Vec<String> {
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

/// Starts the measured part of a soak run: reads the server's figures (with
/// `--metrics`), starts sampling its RSS (a failure without a bench server
/// `--pid`) and returns the steady fan-out's step runner.
pub(crate) async fn measure<'a>(
    env: &'a Env,
    a: &SteadyArgs,
    fan: &Fan,
    notes: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> (Option<ServerFigures>, Option<RssSampler>, RateRun<'a>) {
    let before = figures(env, notes).await;
    let sampler = RssSampler::start(env, a.rss_every);
    if sampler.is_none() {
        failures.push("no bench server --pid given: the RSS bound cannot be checked".into());
    }
    let runner = fan.runner(env, a.p99_ms);
    eprintln!("{STEP_HEADER}");
    (before, sampler, runner)
}

/// Ends a soak run: stops the RSS sampler, appends the notes and failures to
/// the report, and stops the steady fan-out. `json` makes the JSON report
/// from the RSS timeline and the notes; the errors the fan-out's connections
/// met are added to it.
pub(crate) async fn end_run(
    sampler: Option<RssSampler>,
    fan: Fan,
    mut lines: Vec<String>,
    notes: Vec<String>,
    failures: Vec<String>,
    json: impl FnOnce(Option<Value>, Vec<String>) -> Value,
) -> Outcome {
    let timeline = sampler.as_ref().map(RssSampler::timeline);
    if let Some(s) = sampler {
        s.stop().await;
    }
    push_verdict(&mut lines, &notes, &failures);
    let Fan { sh, handles, .. } = fan;
    finish(&sh, handles).await;
    let mut out = Outcome {
        lines,
        json: json(timeline, notes),
        failures,
    };
    add_errors(&mut out, &sh);
    out
}
