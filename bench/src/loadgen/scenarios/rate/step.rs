//! The figures of one step of a rate run, its verdict and its report line.

use crate::loadgen::hist::{round3, LatencySummary};
use crate::loadgen::sys::CpuReport;
use serde_json::{json, Value};

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
    pub(crate) fn server_us(&self) -> (f64, f64) {
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

/// Header of the step lines.
pub(crate) const STEP_HEADER: &str = "step  msgs/s deliveries/s  sent/target      loss dups   p50 ms   p99 ms p99.9 ms   max ms loadgen server us/dlv(u) (s)";
