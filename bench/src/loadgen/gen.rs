//! The generator threads and the state their connection tasks share.

use crate::loadgen::hist::{set_thread_slot, HistSet};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest per-sender message index accepted in one step.
pub const MAX_INDEX: u64 = 1 << 26;

/// `threads` single-threaded tokio runtimes, each on its own OS thread.
/// Connection `i` lives on runtime `i % threads` for its whole life.
#[derive(Debug)]
pub struct Generator {
    handles: Vec<Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Generator {
    /// Starts the threads. `park_us` > 0 makes a thread that ran out of work
    /// sleep that long before it waits for I/O, so that frames arriving
    /// meanwhile are read in one batch and the server's writes do not each
    /// pay for waking the generator (`docs/benchmarks.md` §7).
    pub fn start(threads: usize, park_us: u64) -> std::io::Result<Generator> {
        let mut g = Generator {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for k in 0..threads.max(1) {
            let mut b = tokio::runtime::Builder::new_current_thread();
            b.enable_all();
            if park_us > 0 {
                let d = Duration::from_micros(park_us);
                b.on_thread_park(move || std::thread::sleep(d));
            }
            let rt = b.build()?;
            g.handles.push(rt.handle().clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            g.stops.push(tx);
            g.threads
                .push(
                    std::thread::Builder::new()
                        .name(format!("gen-{k}"))
                        .spawn(move || {
                            set_thread_slot(k);
                            rt.block_on(async {
                                let _ = rx.await;
                            });
                            rt.shutdown_timeout(Duration::from_secs(2));
                        })?,
                );
        }
        Ok(g)
    }

    /// Number of generator threads.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Spawns the task of connection `i` on its thread.
    pub fn spawn<F>(&self, i: usize, f: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[i % self.handles.len()].spawn(f)
    }

    /// Stops the runtimes (dropping every connection) and joins the threads.
    pub fn shutdown(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Counters and histograms shared by every connection task.
#[derive(Debug)]
pub struct Shared {
    /// Current step (the high 32 bits of `q`).
    pub step: AtomicU64,
    /// Unique in-step data deliveries.
    pub received: AtomicU64,
    /// Duplicate deliveries (same receiver, same `s`/`q`).
    pub dups: AtomicU64,
    /// Data of an earlier step.
    pub late: AtomicU64,
    /// Data frames without a valid datum, or with an unknown sender.
    pub invalid: AtomicU64,
    /// Every data frame received (for quiet detection).
    pub frames: AtomicU64,
    /// Messages sent in the current step.
    pub sent: AtomicU64,
    /// Closed loop: replies counted in the measured phase.
    pub replies: AtomicU64,
    /// Closed loop: wrong replies.
    pub bad: AtomicU64,
    /// Connections that ended while they should not have.
    pub disconnects: AtomicU64,
    /// Latency of the current step / phase.
    pub hist: HistSet,
    /// Cancelled when the scenario ends.
    pub stop: CancellationToken,
    /// Number of valid senders (`s` must be below it).
    pub n_senders: u64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    /// New shared state for `threads` generator threads and `n_senders` senders.
    pub fn new(threads: usize, n_senders: u64) -> Shared {
        Shared {
            step: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dups: AtomicU64::new(0),
            late: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            hist: HistSet::new(threads),
            stop: CancellationToken::new(),
            n_senders,
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Records an error message (the first 20 are kept).
    pub fn error(&self, msg: String) {
        if let Ok(mut e) = self.errors.lock() {
            if e.len() < 20 {
                e.push(msg);
            }
        }
    }

    /// The recorded error messages.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// A connection ended unexpectedly (ignored once the scenario stops).
    pub fn disconnected(&self, who: &str, why: String) {
        if self.stop.is_cancelled() {
            return;
        }
        self.disconnects.fetch_add(1, Relaxed);
        self.error(format!("{who}: {why}"));
    }

    /// Starts step `step`: zeroes the per-step counters and the histogram.
    pub fn begin_step(&self, step: u64) {
        for c in [
            &self.received,
            &self.dups,
            &self.late,
            &self.invalid,
            &self.sent,
            &self.replies,
            &self.bad,
        ] {
            c.store(0, Relaxed);
        }
        self.hist.reset();
        self.step.store(step, Relaxed);
    }
}

/// Per-batch counters of one connection, added to [`Shared`] once per read.
#[derive(Debug, Default)]
pub struct Tally {
    received: u64,
    dups: u64,
    late: u64,
    invalid: u64,
    frames: u64,
}

impl Tally {
    /// Adds the batch to the shared counters and clears it.
    pub fn flush(&mut self, sh: &Shared) {
        if self.frames == 0 && self.invalid == 0 {
            return;
        }
        let add = |c: &AtomicU64, v: u64| {
            if v > 0 {
                c.fetch_add(v, Relaxed);
            }
        };
        add(&sh.received, self.received);
        add(&sh.dups, self.dups);
        add(&sh.late, self.late);
        add(&sh.invalid, self.invalid);
        add(&sh.frames, self.frames);
        *self = Tally::default();
    }

    /// Counts a data frame without a usable datum.
    pub fn invalid(&mut self) {
        self.invalid += 1;
        self.frames += 1;
    }
}

/// What one receiver has seen in the current step: a bit set per sender.
#[derive(Debug, Default)]
pub struct Seen {
    step: u64,
    per: HashMap<u64, Vec<u64>>,
}

impl Seen {
    /// Accounts for datum (`s`, `q`, `t`) received at `now_us`; returns the
    /// sender when it was a new in-step delivery.
    pub fn on_datum(
        &mut self,
        sh: &Shared,
        tally: &mut Tally,
        s: u64,
        q: u64,
        t: u64,
        now_us: u64,
    ) -> Option<u64> {
        tally.frames += 1;
        let step = q >> 32;
        let idx = q & 0xffff_ffff;
        let cur = sh.step.load(Relaxed);
        if step != cur {
            tally.late += 1;
            return None;
        }
        if self.step != cur {
            self.per.clear();
            self.step = cur;
        }
        if s >= sh.n_senders || idx >= MAX_INDEX {
            tally.invalid += 1;
            return None;
        }
        let bits = self.per.entry(s).or_default();
        let w = (idx / 64) as usize;
        if bits.len() <= w {
            bits.resize(w + 1, 0);
        }
        let m = 1u64 << (idx % 64);
        if bits[w] & m != 0 {
            tally.dups += 1;
            None
        } else {
            bits[w] |= m;
            tally.received += 1;
            sh.hist.record(now_us.saturating_sub(t));
            Some(s)
        }
    }
}

/// A small xorshift generator (targets, jitter).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next value below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts() {
        let sh = Shared::new(1, 2);
        sh.begin_step(3);
        let mut seen = Seen::default();
        let mut t = Tally::default();
        let q = (3 << 32) | 5;
        assert_eq!(seen.on_datum(&sh, &mut t, 1, q, 10, 20), Some(1));
        assert_eq!(seen.on_datum(&sh, &mut t, 1, q, 10, 20), None);
        assert_eq!(seen.on_datum(&sh, &mut t, 0, q, 10, 20), Some(0));
        assert_eq!(seen.on_datum(&sh, &mut t, 1, (2 << 32) | 5, 10, 20), None);
        assert_eq!(seen.on_datum(&sh, &mut t, 7, q, 10, 20), None);
        t.flush(&sh);
        assert_eq!(sh.received.load(Relaxed), 2);
        assert_eq!(sh.dups.load(Relaxed), 1);
        assert_eq!(sh.late.load(Relaxed), 1);
        assert_eq!(sh.invalid.load(Relaxed), 1);
        assert_eq!(sh.frames.load(Relaxed), 5);
        assert_eq!(sh.hist.snapshot().count, 2);
    }
}
