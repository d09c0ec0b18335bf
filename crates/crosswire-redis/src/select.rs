//! The selection strategies, as pure functions over the candidate list
//! (`docs/protocol.md` §6.6).

use crate::config::Strategy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Picks one candidate index out of `latencies.len()` candidates (in
/// configuration order). `rr` is the round-robin index, shared by all calls.
pub(crate) fn pick(strategy: Strategy, latencies: &[Duration], rr: &AtomicUsize) -> Option<usize> {
    let n = latencies.len();
    match n {
        0 => None,
        // Exactly one candidate: it, and the round-robin index stays put.
        1 => Some(0),
        _ => Some(match strategy {
            Strategy::Random => rand::random_range(0..n),
            Strategy::RoundRobin => round_robin(rr, n),
            Strategy::Fastest => fastest(latencies.iter().copied().enumerate()).unwrap_or(0),
        }),
    }
}

/// Picks two distinct candidates for a redundant publish: the first as
/// [`pick`], the second by the same strategy among the others (round-robin:
/// the candidate after the first; random: uniform among the others; fastest:
/// the fastest of the others). With one candidate only the first is given.
pub(crate) fn pick_two(
    strategy: Strategy,
    latencies: &[Duration],
    rr: &AtomicUsize,
) -> (Option<usize>, Option<usize>) {
    let n = latencies.len();
    let Some(first) = pick(strategy, latencies, rr) else {
        return (None, None);
    };
    if n < 2 {
        return (Some(first), None);
    }
    let second = match strategy {
        Strategy::RoundRobin => (first + 1) % n,
        Strategy::Random => {
            let k = rand::random_range(0..n - 1);
            if k >= first {
                k + 1
            } else {
                k
            }
        }
        Strategy::Fastest => fastest(
            latencies
                .iter()
                .copied()
                .enumerate()
                .filter(|&(i, _)| i != first),
        )
        .unwrap_or((first + 1) % n),
    };
    (Some(first), Some(second))
}

/// The original's round robin: `i = i mod n`, use `i`, then `i += 1`.
fn round_robin(rr: &AtomicUsize, n: usize) -> usize {
    let mut current = rr.load(Ordering::Relaxed);
    loop {
        let i = current % n;
        match rr.compare_exchange_weak(current, i + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return i,
            Err(actual) => current = actual,
        }
    }
}

/// Lowest latency; the previous best is kept only when strictly lower, so
/// ties go to the later candidate.
fn fastest(candidates: impl Iterator<Item = (usize, Duration)>) -> Option<usize> {
    candidates
        .reduce(|best, next| if best.1 < next.1 { best } else { next })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn none_and_one() {
        let rr = AtomicUsize::new(5);
        assert_eq!(pick(Strategy::RoundRobin, &[], &rr), None);
        assert_eq!(pick(Strategy::RoundRobin, &ms(&[1]), &rr), Some(0));
        // A single candidate does not advance the index.
        assert_eq!(rr.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn round_robin_walks_the_filtered_list() {
        let rr = AtomicUsize::new(0);
        let three = ms(&[0, 0, 0]);
        let seq: Vec<_> = (0..4)
            .filter_map(|_| pick(Strategy::RoundRobin, &three, &rr))
            .collect();
        assert_eq!(seq, [0, 1, 2, 0]);
        // n1 goes down: the candidates are now [n0, n2]; the stored index is
        // 1, so the rotation continues n2, n0, n2 (`docs/protocol.md` §6.6).
        let two = ms(&[0, 0]);
        let seq: Vec<_> = (0..3)
            .filter_map(|_| pick(Strategy::RoundRobin, &two, &rr))
            .collect();
        assert_eq!(seq, [1, 0, 1]);
    }

    #[test]
    fn fastest_prefers_lowest_and_ties_go_to_the_later() {
        let rr = AtomicUsize::new(0);
        assert_eq!(pick(Strategy::Fastest, &ms(&[3, 1, 2]), &rr), Some(1));
        assert_eq!(pick(Strategy::Fastest, &ms(&[0, 0, 0]), &rr), Some(2));
        assert_eq!(pick(Strategy::Fastest, &ms(&[1, 1, 2]), &rr), Some(1));
    }

    #[test]
    fn random_covers_every_candidate() {
        let rr = AtomicUsize::new(0);
        let mut seen = [0usize; 3];
        for _ in 0..300 {
            if let Some(i) = pick(Strategy::Random, &ms(&[0, 0, 0]), &rr) {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
    }

    #[test]
    fn pairs_are_distinct() {
        let rr = AtomicUsize::new(0);
        for strategy in [Strategy::Random, Strategy::RoundRobin, Strategy::Fastest] {
            for _ in 0..50 {
                let (a, b) = pick_two(strategy, &ms(&[2, 1, 3]), &rr);
                assert!(a.is_some() && b.is_some() && a != b, "{strategy:?}");
            }
        }
        assert_eq!(
            pick_two(Strategy::Fastest, &ms(&[2, 1, 3]), &rr),
            (Some(1), Some(0))
        );
        assert_eq!(pick_two(Strategy::Random, &ms(&[2]), &rr), (Some(0), None));
        let rr = AtomicUsize::new(0);
        assert_eq!(
            pick_two(Strategy::RoundRobin, &ms(&[0, 0, 0]), &rr),
            (Some(0), Some(1))
        );
        assert_eq!(
            pick_two(Strategy::RoundRobin, &ms(&[0, 0, 0]), &rr),
            (Some(1), Some(2))
        );
        assert_eq!(
            pick_two(Strategy::RoundRobin, &ms(&[0, 0, 0]), &rr),
            (Some(2), Some(0))
        );
    }
}
