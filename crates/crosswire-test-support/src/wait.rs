//! Bounded waits: for a future, for a condition, for a message on a channel.
//!
//! Each takes a deadline (or [`WAIT`]); passing it fails the test with a
//! message that says what was awaited. The deadlines and the polling run on
//! tokio's clock.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Upper bound of a single wait in a test: reaching it is a failure, never a
/// pause that lets something happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often [`wait_until`] looks at its condition.
const FAST_POLL: Duration = Duration::from_millis(2);

/// How often [`eventually`] and [`eventually_async`] look at their condition
/// (their conditions may cost a round trip or a scan of what was received).
const POLL: Duration = Duration::from_millis(10);

/// Awaits `fut`; fails the test if it is not done within `limit`.
pub async fn within<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out: not done within {limit:?}"),
    }
}

/// Awaits `fut`; fails the test if it is not done within [`WAIT`] (for a
/// future whose own timeout is longer, or that has none).
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    within(WAIT, fut).await
}

/// Polls `cond` every 10 ms until it holds; fails the test after `limit`,
/// naming `what` was awaited.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    poll(limit, POLL, what, || std::future::ready(cond())).await;
}

/// Like [`eventually`], with an asynchronous condition.
pub async fn eventually_async<F, Fut>(limit: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(limit, POLL, what, cond).await;
}

/// Polls `cond` every 2 ms until it holds; fails the test after [`WAIT`].
/// For cheap conditions on in-process state (a node's counters, a map).
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    poll(WAIT, FAST_POLL, "condition not reached in time", || {
        std::future::ready(cond())
    })
    .await;
}

async fn poll<F, Fut>(limit: Duration, every: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// The next message of a channel; fails the test if none comes within
/// [`WAIT`] or the channel is closed.
pub async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    match within(WAIT, rx.recv()).await {
        Some(value) => value,
        None => panic!("channel closed: every sender is gone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_once_the_condition_holds() {
        let calls = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        eventually(WAIT, "three calls", || {
            calls.fetch_add(1, Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), 2 * POLL);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for: never")]
    async fn eventually_fails_at_the_deadline() {
        eventually(Duration::from_secs(1), "never", || false).await;
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "not done within")]
    async fn within_fails_at_the_deadline() {
        within(Duration::from_secs(1), std::future::pending::<()>()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn recv_gets_what_was_sent() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = tx.send(7);
        });
        assert_eq!(recv(&mut rx).await, 7);
    }
}
