//! The report of a rate run (`fanout`, `unicast`).

use super::{StepResult, STEP_HEADER};
use crate::loadgen::cli::RateArgs;
use crate::loadgen::hist::round3;
use crate::loadgen::scenarios::{human_lat, push_verdict, Env, Outcome};
use serde_json::{json, Value};

/// The outcome of a rate run: its steps, the chosen one and the verdict.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rate_outcome(
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
    // rate is what ends the search (`docs/benchmarks.md` §6: a step passes
    // only without loss, ...): a server that bounds its queues sheds load
    // there where one that does not queues without bound. It is reported, not a
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
