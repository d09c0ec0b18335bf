//! The server's RSS over a soak run, sampled in the background.

use crate::loadgen::scenarios::Env;
use crate::loadgen::sys::rss_kib;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIB: f64 = 1024.0;

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

/// KiB as MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / MIB
}

/// `b - a` KiB as MiB.
pub(crate) fn delta_mib(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / MIB
}
