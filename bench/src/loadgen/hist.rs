//! A lock-free log-linear latency histogram in microseconds (~1.6 % bucket
//! width above 128 µs, exact below), shared by all generator threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const LINEAR: u64 = 128;
const SUB: u64 = 64;
const BUCKETS: usize = 128 + 58 * 64;

/// Latency histogram (µs). Recording is a few relaxed atomic operations;
/// use one per generator thread ([`HistSet`]) to keep them uncontended.
#[derive(Debug)]
pub struct Hist {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

std::thread_local! {
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as generator thread `k` (its [`HistSet`] slot).
pub fn set_thread_slot(k: usize) {
    SLOT.with(|s| s.set(k));
}

/// One histogram per generator thread, merged when read.
#[derive(Debug)]
pub struct HistSet {
    hists: Vec<Hist>,
}

impl HistSet {
    /// `n` empty histograms.
    pub fn new(n: usize) -> Self {
        HistSet {
            hists: (0..n.max(1)).map(|_| Hist::new()).collect(),
        }
    }

    /// Records into the calling thread's histogram.
    pub fn record(&self, us: u64) {
        let k = SLOT.with(|s| s.get()) % self.hists.len();
        self.hists[k].record(us);
    }

    /// Clears all.
    pub fn reset(&self) {
        for h in &self.hists {
            h.reset();
        }
    }

    /// Merged figures.
    pub fn snapshot(&self) -> LatencySummary {
        let mut counts = vec![0u64; BUCKETS];
        let mut sum = 0;
        let mut max = 0;
        for h in &self.hists {
            for (c, b) in counts.iter_mut().zip(h.buckets.iter()) {
                *c += b.load(Relaxed);
            }
            sum += h.sum.load(Relaxed);
            max = max.max(h.max.load(Relaxed));
        }
        summarize(&counts, sum, max)
    }
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let shift = msb - 6;
    let sub = (v >> shift) - SUB;
    (LINEAR + (msb - 7) * SUB + sub) as usize
}

/// Upper bound (inclusive) of the values of bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = i - LINEAR;
    let msb = k / SUB + 7;
    let sub = k % SUB + SUB;
    let shift = msb - 6;
    ((sub + 1) << shift) - 1
}

impl Hist {
    /// An empty histogram.
    pub fn new() -> Self {
        Hist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one latency in microseconds.
    pub fn record(&self, us: u64) {
        let i = index(us).min(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(us, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// Clears every bucket (call while nothing records, or accept a blur).
    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Relaxed);
        }
        self.sum.store(0, Relaxed);
        self.max.store(0, Relaxed);
    }

    /// A consistent-enough copy of the figures.
    pub fn snapshot(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        summarize(&counts, self.sum.load(Relaxed), self.max.load(Relaxed))
    }
}

fn summarize(counts: &[u64], sum: u64, max: u64) -> LatencySummary {
    {
        let n: u64 = counts.iter().sum();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
            let mut acc = 0;
            for (i, c) in counts.iter().enumerate() {
                acc += c;
                if acc >= rank {
                    return upper(i).min(max) as f64 / 1000.0;
                }
            }
            max as f64 / 1000.0
        };
        LatencySummary {
            count: n,
            mean_ms: if n == 0 {
                0.0
            } else {
                sum as f64 / n as f64 / 1000.0
            },
            p50_ms: pct(50.0),
            p99_ms: pct(99.0),
            p999_ms: pct(99.9),
            max_ms: max as f64 / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum (exact).
    pub max_ms: f64,
}

impl LatencySummary {
    /// As a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.count,
            "mean_ms": round3(self.mean_ms),
            "p50_ms": round3(self.p50_ms),
            "p99_ms": round3(self.p99_ms),
            "p999_ms": round3(self.p999_ms),
            "max_ms": round3(self.max_ms),
        })
    }
}

/// Rounds to three decimals (for reports).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_upper_consistent() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            200,
            1000,
            50_000,
            1 << 30,
            (1 << 36) + 5,
        ] {
            let i = index(v);
            assert!(upper(i) >= v, "v={v} i={i} upper={}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v, "v={v}");
            }
            if v >= 128 {
                assert!((upper(i) - v) as f64 / v as f64 <= 1.0 / 64.0);
            }
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles() {
        let h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 10);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 5.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.2, "{s:?}");
        assert!((s.max_ms - 10.0).abs() < 1e-9);
        h.reset();
        assert_eq!(h.snapshot().count, 0);
    }
}
