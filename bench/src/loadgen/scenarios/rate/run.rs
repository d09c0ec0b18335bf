//! The steps of a rate run: one step at a given rate, or a search for the
//! highest rate that passes.

use super::{RateCtx, StepCmd, StepResult, STEP_HEADER};
use crate::loadgen::cli::RateArgs;
use crate::loadgen::scenarios::Env;
use crate::loadgen::sys::{CpuReport, CpuSnap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Runs the steps of a rate run: tells the senders each step's schedule and
/// measures what arrived.
pub(crate) struct RateRun<'a> {
    env: &'a Env,
    ctx: Arc<RateCtx>,
    cmd: watch::Sender<Option<StepCmd>>,
    senders: usize,
    per_msg: u64,
    p99_ms: f64,
    next_step: u64,
}

impl<'a> RateRun<'a> {
    /// A runner for the senders of `ctx` (as many as its state counts),
    /// driven through `cmd`; `per_msg` receivers get each message, a step
    /// passes with p99 below `p99_ms`.
    pub(crate) fn new(
        env: &'a Env,
        ctx: Arc<RateCtx>,
        cmd: watch::Sender<Option<StepCmd>>,
        per_msg: u64,
        p99_ms: f64,
    ) -> RateRun<'a> {
        RateRun {
            env,
            senders: ctx.sh.n_senders as usize,
            ctx,
            cmd,
            per_msg,
            p99_ms,
            next_step: 1,
        }
    }

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
    pub(crate) async fn run(
        &mut self,
        a: &RateArgs,
    ) -> (Vec<StepResult>, Option<usize>, Vec<String>) {
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
