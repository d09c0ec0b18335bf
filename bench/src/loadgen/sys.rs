//! What the load generator reads from the system: CPU times and RSS from
//! `/proc`, the clock, and its own open-files limit.

use serde_json::{json, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::loadgen::hist::round3;

/// Microseconds since the Unix epoch (the `t` of a datum).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Raises the soft open-files limit to the hard one; returns (soft, hard).
pub fn raise_nofile() -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.maximum.is_some() || lim.current.is_some() {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    let now = getrlimit(Resource::Nofile);
    (
        now.current.unwrap_or(u64::MAX),
        now.maximum.unwrap_or(u64::MAX),
    )
}

/// Clock ticks per second of the CPU times in `/proc` (USER_HZ).
pub fn ticks_per_sec() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// User and system CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcCpu {
    /// `utime`: user-space time.
    pub utime: u64,
    /// `stime`: kernel time on the process's behalf.
    pub stime: u64,
}

/// Reads `/proc/<pid>/stat` (`pid` = "self" for the generator itself).
pub fn proc_cpu(pid: &str) -> Option<ProcCpu> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces: ") S ppid ..."
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    Some(ProcCpu {
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// Busy clock ticks of the whole machine (all cores), from `/proc/stat`.
pub fn machine_busy() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// Resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// A process watched with `--pid LABEL=PID`.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Label given on the command line (labels starting with `redis` are
    /// counted as Redis, every other one as a bench server).
    pub label: String,
    /// Process id.
    pub pid: u32,
}

impl Watched {
    /// Parses `LABEL=PID`.
    pub fn parse(s: &str) -> Result<Watched, String> {
        let (label, pid) = s
            .split_once('=')
            .ok_or_else(|| format!("--pid wants LABEL=PID, got {s:?}"))?;
        let pid: u32 = pid
            .parse()
            .map_err(|_| format!("--pid: bad process id in {s:?}"))?;
        if std::fs::metadata(format!("/proc/{pid}")).is_err() {
            return Err(format!("--pid {s}: no such process"));
        }
        Ok(Watched {
            label: label.to_string(),
            pid,
        })
    }

    /// Whether this is a bench server (not the bus: Redis or NATS).
    pub fn is_server(&self) -> bool {
        !self.label.starts_with("redis") && !self.label.starts_with("nats")
    }
}

/// CPU counters of the watched processes, the generator and the machine.
#[derive(Debug, Clone)]
pub struct CpuSnap {
    at: Instant,
    procs: Vec<Option<ProcCpu>>,
    me: ProcCpu,
    machine: u64,
}

impl CpuSnap {
    /// Takes a snapshot now.
    pub fn take(watch: &[Watched]) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            procs: watch.iter().map(|w| proc_cpu(&w.pid.to_string())).collect(),
            me: proc_cpu("self").unwrap_or_default(),
            machine: machine_busy().unwrap_or(0),
        }
    }
}

/// CPU use of one process over a window.
#[derive(Debug, Clone)]
pub struct CpuUse {
    /// Label (`loadgen` for the generator, `others` for the rest).
    pub label: String,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// (user + system) as a percentage of one core over the window.
    pub pct: f64,
    /// Whether the label is a bench server.
    pub server: bool,
}

/// CPU use over a window between two snapshots.
#[derive(Debug, Clone)]
pub struct CpuReport {
    /// Window length in seconds.
    pub wall_s: f64,
    /// Watched processes, then `loadgen`, then `others`.
    pub uses: Vec<CpuUse>,
}

impl CpuReport {
    /// Computes the report between `a` and `b`.
    pub fn between(a: &CpuSnap, b: &CpuSnap, watch: &[Watched]) -> CpuReport {
        let hz = ticks_per_sec() as f64;
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
        let mk = |label: &str, x: ProcCpu, y: ProcCpu, server: bool| {
            let u = y.utime.saturating_sub(x.utime) as f64 / hz;
            let s = y.stime.saturating_sub(x.stime) as f64 / hz;
            CpuUse {
                label: label.to_string(),
                user_s: u,
                sys_s: s,
                pct: (u + s) / wall * 100.0,
                server,
            }
        };
        let mut uses = Vec::new();
        for (i, w) in watch.iter().enumerate() {
            if let (Some(Some(x)), Some(Some(y))) = (a.procs.get(i), b.procs.get(i)) {
                uses.push(mk(&w.label, *x, *y, w.is_server()));
            } else {
                uses.push(CpuUse {
                    label: format!("{} (gone)", w.label),
                    user_s: 0.0,
                    sys_s: 0.0,
                    pct: 0.0,
                    server: w.is_server(),
                });
            }
        }
        uses.push(mk("loadgen", a.me, b.me, false));
        let accounted: f64 = uses.iter().map(|u| u.user_s + u.sys_s).sum();
        let machine = b.machine.saturating_sub(a.machine) as f64 / hz;
        let others = (machine - accounted).max(0.0);
        uses.push(CpuUse {
            label: "others".into(),
            user_s: others,
            sys_s: 0.0,
            pct: others / wall * 100.0,
            server: false,
        });
        CpuReport { wall_s: wall, uses }
    }

    /// The generator's CPU share in percent of one core.
    pub fn loadgen_pct(&self) -> f64 {
        self.get("loadgen").map(|u| u.pct).unwrap_or(0.0)
    }

    /// The CPU of everything else on the machine, percent of one core.
    pub fn others_pct(&self) -> f64 {
        self.get("others").map(|u| u.pct).unwrap_or(0.0)
    }

    fn get(&self, label: &str) -> Option<&CpuUse> {
        self.uses.iter().find(|u| u.label == label)
    }

    /// Sum of (user, system) seconds of the bench servers.
    pub fn server_seconds(&self) -> (f64, f64) {
        self.uses
            .iter()
            .filter(|u| u.server)
            .fold((0.0, 0.0), |(a, b), u| (a + u.user_s, b + u.sys_s))
    }

    /// The busiest process and whether it was at (nearly) a full core.
    pub fn limit(&self) -> String {
        let busiest = self
            .uses
            .iter()
            .filter(|u| u.label != "others")
            .max_by(|a, b| a.pct.total_cmp(&b.pct));
        let mut s = match busiest {
            Some(u) if u.pct >= 90.0 => format!("{} at {:.0}% of a core", u.label, u.pct),
            Some(u) => format!("no process at 100% (busiest {} {:.0}%)", u.label, u.pct),
            None => "unknown".into(),
        };
        let total: f64 = self.uses.iter().map(|u| u.pct).sum();
        if total >= 180.0 {
            s.push_str(&format!("; machine at {:.0}% of 200%", total));
        }
        s
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let mut procs = serde_json::Map::new();
        for u in &self.uses {
            procs.insert(
                u.label.clone(),
                json!({
                    "user_s": round3(u.user_s),
                    "sys_s": round3(u.sys_s),
                    "cpu_pct": (u.pct * 10.0).round() / 10.0,
                }),
            );
        }
        json!({
            "window_s": round3(self.wall_s),
            "procs": procs,
            "loadgen_pct": (self.loadgen_pct() * 10.0).round() / 10.0,
            "others_pct": (self.others_pct() * 10.0).round() / 10.0,
            "generator_bound": self.loadgen_pct() > 90.0,
            "noisy": self.others_pct() > 10.0,
            "limit": self.limit(),
        })
    }

    /// Human lines.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "  cpu over {:.1} s (% of one core, user/sys seconds):",
            self.wall_s
        )];
        for u in &self.uses {
            v.push(format!(
                "    {:<14} {:>6.1}%   user {:>7.3} s  sys {:>7.3} s",
                u.label, u.pct, u.user_s, u.sys_s
            ));
        }
        if self.loadgen_pct() > 90.0 {
            v.push(format!(
                "  WARNING: generator-bound run (loadgen at {:.0}% of a core > 90%)",
                self.loadgen_pct()
            ));
        }
        if self.others_pct() > 10.0 {
            v.push(format!(
                "  WARNING: noisy run (other processes used {:.0}% of a core)",
                self.others_pct()
            ));
        }
        v.push(format!("  limit: {}", self.limit()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        assert!(proc_cpu("self").is_some());
        assert!(machine_busy().is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert!(now_us() > 1_600_000_000_000_000);
    }
}
