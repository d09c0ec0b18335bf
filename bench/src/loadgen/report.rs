//! The final JSON line of a run and the crosswire / peer comparison table.

use crate::loadgen::cli::CompareArgs;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;

/// Builds the final JSON object: run metadata merged with the scenario's.
pub fn final_json(
    system: &str,
    case: &str,
    proto: &str,
    failures: &[String],
    loadgen: Value,
    scenario: Value,
) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("system".into(), json!(system));
    m.insert("case".into(), json!(case));
    m.insert("proto".into(), json!(proto));
    m.insert("ok".into(), json!(failures.is_empty()));
    m.insert("failures".into(), json!(failures));
    m.insert("loadgen".into(), loadgen);
    if let Value::Object(s) = scenario {
        for (k, v) in s {
            m.insert(k, v);
        }
    }
    Value::Object(m)
}

/// One compared figure: name, JSON pointer, whether higher is better.
struct Fig {
    name: &'static str,
    ptr: &'static str,
    higher: bool,
}

fn figures(scenario: &str, find_max: bool) -> Vec<Fig> {
    let f = |name, ptr, higher| Fig { name, ptr, higher };
    match scenario {
        "fanout" | "unicast" => {
            let mut v = vec![if find_max {
                f(
                    "max deliveries/s (p99 < limit, no loss)",
                    "/max/deliveries_per_s",
                    true,
                )
            } else {
                f("deliveries/s", "/result/deliveries_per_s", true)
            }];
            v.extend([
                f("latency p50 ms", "/result/latency/p50_ms", false),
                f("latency p99 ms", "/result/latency/p99_ms", false),
                f("latency max ms", "/result/latency/max_ms", false),
                f(
                    "server user µs / delivery",
                    "/result/server_us_per_delivery/user",
                    false,
                ),
                f(
                    "server user+sys µs / delivery",
                    "/result/server_us_per_delivery/total",
                    false,
                ),
                f("loadgen CPU % of a core", "/result/cpu/loadgen_pct", false),
            ]);
            v
        }
        "echo" | "rpc" | "count" => vec![
            f("req/s", "/result/req_per_s", true),
            f("latency p50 ms", "/result/latency/p50_ms", false),
            f("latency p99 ms", "/result/latency/p99_ms", false),
            f(
                "server user µs / request",
                "/result/server_us_per_request/user",
                false,
            ),
            f(
                "server user+sys µs / request",
                "/result/server_us_per_request/total",
                false,
            ),
            f("loadgen CPU % of a core", "/result/cpu/loadgen_pct", false),
        ],
        // crosswire only (bench-server `stats`): no peer figures.
        "traffic" => vec![
            f(
                "bus messages / node / s",
                "/result/bus_messages_per_node_per_s",
                false,
            ),
            f(
                "bus bytes / node / s",
                "/result/bus_bytes_per_node_per_s",
                false,
            ),
            f("loss", "/result/loss", false),
            f("latency p99 ms", "/result/latency/p99_ms", false),
        ],
        "conns" => vec![
            f(
                "server RSS KiB / idle connection",
                "/result/kib_per_conn",
                false,
            ),
            f("connects/s", "/result/connects_per_s", true),
        ],
        _ => Vec::new(),
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn limit_of(r: &Value) -> String {
    let cpu = r.pointer("/result/cpu");
    let mut s = cpu
        .and_then(|c| c.get("limit"))
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    if cpu.and_then(|c| c.get("generator_bound")) == Some(&Value::Bool(true)) {
        s.push_str(" [GENERATOR-BOUND]");
    }
    if cpu.and_then(|c| c.get("noisy")) == Some(&Value::Bool(true)) {
        s.push_str(" [NOISY]");
    }
    s
}

/// Reads result lines and prints the comparison table. Returns the process
/// exit code: 0, or 1 when a run failed or a pair is incomplete.
pub fn compare(a: &CompareArgs) -> i32 {
    let mut results: Vec<Value> = Vec::new();
    let files = if a.files.is_empty() {
        vec!["-".to_string()]
    } else {
        a.files.clone()
    };
    for f in &files {
        let reader: Box<dyn BufRead> = if f == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            match std::fs::File::open(f) {
                Ok(h) => Box::new(std::io::BufReader::new(h)),
                Err(e) => {
                    eprintln!("compare: {f}: {e}");
                    return 1;
                }
            }
        };
        for line in reader.lines().map_while(Result::ok) {
            let line = line.trim();
            if !line.starts_with('{') {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if v.get("scenario").is_some() {
                    results.push(v);
                }
            }
        }
    }
    // case -> system -> result (last wins), cases in order of appearance.
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for r in results {
        let case = r
            .get("case")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| r.get("scenario").and_then(Value::as_str))
            .unwrap_or("?")
            .to_string();
        let sys = r
            .get("system")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if !order.contains(&case) {
            order.push(case.clone());
        }
        by.entry(case).or_default().insert(sys, r);
    }
    let mut code = 0;
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    println!(
        "| case | figure | {} | {} | ratio {}/{} |",
        a.ours, a.peer, a.ours, a.peer
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    for case in &order {
        let Some(systems) = by.get(case) else {
            continue;
        };
        let ours = systems.get(&a.ours);
        let peer = systems.get(&a.peer);
        let any = ours.or(peer);
        let scenario = any
            .and_then(|r| r.get("scenario"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let find_max = any
            .and_then(|r| r.pointer("/params/find_max"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        for fig in figures(scenario, find_max) {
            let get =
                |r: Option<&Value>| r.and_then(|r| r.pointer(fig.ptr)).and_then(Value::as_f64);
            let (o, p) = (get(ours), get(peer));
            let ratio = match (o, p) {
                (Some(o), Some(p)) if p != 0.0 => format!("{:.2}", o / p),
                _ => "-".into(),
            };
            println!(
                "| {case} | {} {} | {} | {} | {} |",
                fig.name,
                if fig.higher { "(↑)" } else { "(↓)" },
                fmt_num(o),
                fmt_num(p),
                ratio
            );
        }
        println!(
            "| {case} | limit | {} | {} | |",
            ours.map(limit_of).unwrap_or_else(|| "-".into()),
            peer.map(limit_of).unwrap_or_else(|| "-".into())
        );
        // Scenarios only crosswire's bench server can answer: `traffic`,
        // and publishing through crosswire's HTTP API.
        let via_http = ours
            .and_then(|r| r.pointer("/params/via"))
            .and_then(Value::as_str)
            == Some("http");
        let ours_only = scenario == "traffic" || via_http;
        for (name, r) in [(&a.ours, ours), (&a.peer, peer)] {
            match r {
                None if ours_only && name == &a.peer => {}
                None => {
                    failures.push(format!("{case}: no result for {name}"));
                    code = 1;
                }
                Some(r) if r.get("ok") != Some(&Value::Bool(true)) => {
                    code = 1;
                    let why: Vec<String> = r
                        .get("failures")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    failures.push(format!("{case}: {name} FAILED: {}", why.join("; ")));
                }
                Some(_) => {}
            }
            if let Some(r) = r {
                let cpu = r.pointer("/result/cpu");
                let lg = cpu
                    .and_then(|c| c.get("loadgen_pct"))
                    .and_then(Value::as_f64);
                if cpu.and_then(|c| c.get("generator_bound")) == Some(&Value::Bool(true))
                    || r.get("generator_bound_any") == Some(&Value::Bool(true))
                {
                    warnings.push(format!(
                        "{case}: {name}: GENERATOR-BOUND (loadgen above 90% of a core; at the reported point {})",
                        fmt_num(lg)
                    ));
                }
                if cpu.and_then(|c| c.get("noisy")) == Some(&Value::Bool(true)) {
                    let o = cpu
                        .and_then(|c| c.get("others_pct"))
                        .and_then(Value::as_f64);
                    warnings.push(format!(
                        "{case}: {name}: noisy (other processes used {}% of a core)",
                        fmt_num(o)
                    ));
                }
            }
        }
    }
    if !warnings.is_empty() {
        println!();
        for w in &warnings {
            println!("WARNING: {w}");
        }
    }
    if !failures.is_empty() {
        println!();
        for f in &failures {
            println!("FAILED: {f}");
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges() {
        let v = final_json(
            "crosswire",
            "echo1",
            "original",
            &[],
            json!({"threads": 2}),
            json!({"scenario": "echo", "result": {"req_per_s": 5}}),
        );
        assert_eq!(v["ok"], true);
        assert_eq!(v["scenario"], "echo");
        assert_eq!(v.pointer("/result/req_per_s"), Some(&json!(5)));
        assert_eq!(figures("echo", false).len(), 6);
        assert_eq!(fmt_num(Some(12345.6)), "12346");
    }
}
