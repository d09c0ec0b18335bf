//! Counters of everything a node drops, refuses or closes, and histograms
//! of how long event handlers run.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the buckets of the handler histograms; a last
/// bucket (`+Inf`) takes the rest.
///
/// # Examples
///
/// ```
/// // Bounds of `crosswire_handler_seconds_bucket{le="..."}`, ascending.
/// assert!(crosswire::HANDLER_BUCKETS.windows(2).all(|w| w[0] < w[1]));
/// assert_eq!(crosswire::HANDLER_BUCKETS[0], 0.0001);
/// ```
pub const HANDLER_BUCKETS: [f64; 10] =
    [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The same bounds in nanoseconds, for the hot path.
const BUCKET_NANOS: [u64; 10] = [
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// A fixed-bucket histogram of durations, lock-free: one atomic add per
/// bucket hit and one for the sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; 11],
    /// Sum of the observations in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BUCKET_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BUCKET_NANOS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0u64; 11];
        let mut total = 0;
        for (out, b) in buckets.iter_mut().zip(&self.buckets) {
            total += b.load(Ordering::Relaxed);
            *out = total;
        }
        HistogramSnapshot {
            buckets,
            count: total,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A copy of a handler histogram.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// let node = crosswire::Node::builder().build()?;
/// let h = node.stats().client_handler_seconds;
/// assert_eq!(h.count, 0);
/// assert_eq!(h.buckets.len(), crosswire::HANDLER_BUCKETS.len() + 1);
/// assert_eq!(h.buckets.last().copied(), Some(h.count));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// Cumulative counts: `buckets[i]` observations took at most
    /// [`HANDLER_BUCKETS`]`[i]` seconds; the last entry (`+Inf`) equals `count`.
    pub buckets: [u64; 11],
    /// Observations.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
}

/// Which handlers a histogram times.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HandlerKind {
    Client,
    CrossServer,
}

/// A handler's future that records, when it completes, the time since
/// `start` (the dispatch of its event) in the node's histogram.
pub(crate) struct Timed<F> {
    fut: F,
    start: Instant,
    stats: Arc<Stats>,
    kind: HandlerKind,
}

impl<F> Timed<F> {
    pub(crate) fn new(fut: F, start: Instant, stats: Arc<Stats>, kind: HandlerKind) -> Self {
        Timed {
            fut,
            start,
            stats,
            kind,
        }
    }
}

impl<F: Future<Output = ()> + Unpin> Future for Timed<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match Pin::new(&mut this.fut).poll(cx) {
            Poll::Ready(()) => {
                let h = match this.kind {
                    HandlerKind::Client => &this.stats.client_handler_seconds,
                    HandlerKind::CrossServer => &this.stats.cross_server_handler_seconds,
                };
                h.observe(this.start.elapsed());
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Counters of one node. Read them with [`Node::stats`](crate::Node::stats).
///
/// # Examples
///
/// ```
/// use crosswire::stats::Stats;
/// let stats = Stats::default();
/// assert_eq!(stats.snapshot(), crosswire::StatsSnapshot::default());
/// ```
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) frames_dropped_invalid: AtomicU64,
    pub(crate) frames_dropped_reserved: AtomicU64,
    pub(crate) frames_dropped_unhandled: AtomicU64,
    pub(crate) frames_dropped_bad_payload: AtomicU64,
    pub(crate) frames_oversize: AtomicU64,
    pub(crate) frames_dropped_slow: AtomicU64,
    pub(crate) slow_consumer_closes: AtomicU64,
    pub(crate) liveness_terminations: AtomicU64,
    pub(crate) background_terminations: AtomicU64,
    pub(crate) bus_received: AtomicU64,
    pub(crate) bus_dropped_invalid: AtomicU64,
    pub(crate) bus_dropped_oversize: AtomicU64,
    pub(crate) bus_dropped_unhandled: AtomicU64,
    pub(crate) bus_own_skipped: AtomicU64,
    pub(crate) bus_duplicates: AtomicU64,
    pub(crate) cross_unhandled: AtomicU64,
    pub(crate) cross_replies_unknown: AtomicU64,
    pub(crate) frames_dropped_unauthenticated: AtomicU64,
    pub(crate) rate_limit_closes: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) bus_dropped_unsigned: AtomicU64,
    pub(crate) bus_dropped_replayed: AtomicU64,
    pub(crate) invalid_utf8_closes: AtomicU64,
    pub(crate) protocol_error_closes: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) handshakes_bad_request: AtomicU64,
    pub(crate) handshakes_evicted: AtomicU64,
    pub(crate) handshakes_too_large: AtomicU64,
    pub(crate) handshakes_timed_out: AtomicU64,
    pub(crate) bus_publish_oversize: AtomicU64,
    pub(crate) cross_server_calls_refused: AtomicU64,
    pub(crate) client_handler_seconds: Histogram,
    pub(crate) cross_server_handler_seconds: Histogram,
}

impl Stats {
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let snapshot = crosswire::stats::Stats::default().snapshot();
    /// assert_eq!(snapshot.frames_received, 0);
    /// assert_eq!(snapshot.connections_accepted, 0);
    /// ```
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: g(&self.connections_accepted),
            frames_received: g(&self.frames_received),
            frames_dropped_invalid: g(&self.frames_dropped_invalid),
            frames_dropped_reserved: g(&self.frames_dropped_reserved),
            frames_dropped_unhandled: g(&self.frames_dropped_unhandled),
            frames_dropped_bad_payload: g(&self.frames_dropped_bad_payload),
            frames_oversize: g(&self.frames_oversize),
            frames_dropped_slow: g(&self.frames_dropped_slow),
            slow_consumer_closes: g(&self.slow_consumer_closes),
            liveness_terminations: g(&self.liveness_terminations),
            background_terminations: g(&self.background_terminations),
            bus_received: g(&self.bus_received),
            bus_dropped_invalid: g(&self.bus_dropped_invalid),
            bus_dropped_oversize: g(&self.bus_dropped_oversize),
            bus_dropped_unhandled: g(&self.bus_dropped_unhandled),
            bus_own_skipped: g(&self.bus_own_skipped),
            bus_duplicates: g(&self.bus_duplicates),
            cross_unhandled: g(&self.cross_unhandled),
            cross_replies_unknown: g(&self.cross_replies_unknown),
            frames_dropped_unauthenticated: g(&self.frames_dropped_unauthenticated),
            rate_limit_closes: g(&self.rate_limit_closes),
            connections_refused: g(&self.connections_refused),
            bus_dropped_unsigned: g(&self.bus_dropped_unsigned),
            bus_dropped_replayed: g(&self.bus_dropped_replayed),
            invalid_utf8_closes: g(&self.invalid_utf8_closes),
            protocol_error_closes: g(&self.protocol_error_closes),
            accept_errors: g(&self.accept_errors),
            handshakes_bad_request: g(&self.handshakes_bad_request),
            handshakes_evicted: g(&self.handshakes_evicted),
            handshakes_too_large: g(&self.handshakes_too_large),
            handshakes_timed_out: g(&self.handshakes_timed_out),
            bus_publish_oversize: g(&self.bus_publish_oversize),
            cross_server_calls_refused: g(&self.cross_server_calls_refused),
            client_handler_seconds: self.client_handler_seconds.snapshot(),
            cross_server_handler_seconds: self.cross_server_handler_seconds.snapshot(),
        }
    }
}

/// A point-in-time copy of a node's counters.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use futures_util::{SinkExt, StreamExt};
/// # let node = crosswire::Node::builder().server_name("n1").build()?;
/// # let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
/// # node.on_connection(move |socket, _| { let _ = tx.send(socket); async {} });
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/lobby?id=u1")).await?;
/// # let socket = sockets.recv().await.ok_or("no connection")?;
/// let stats = node.stats();
/// assert_eq!(stats.connections_accepted, 1);
/// assert_eq!(stats.frames_dropped_invalid, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// WebSocket connections accepted.
    pub connections_accepted: u64,
    /// Frames received from clients (all kinds).
    pub frames_received: u64,
    /// Frames dropped because they were not JSON, had no event, or were
    /// binary frames that were not UTF-8.
    pub frames_dropped_invalid: u64,
    /// Frames dropped because they named a reserved or system event.
    pub frames_dropped_reserved: u64,
    /// Frames dropped because no handler was registered for their event.
    pub frames_dropped_unhandled: u64,
    /// Events whose payload did not deserialize into the type a handler
    /// asked for (the handler did not run; the caller got the `bad_payload`
    /// error reply).
    pub frames_dropped_bad_payload: u64,
    /// Frames over `max_frame_size` (their sockets were closed with 1009).
    pub frames_oversize: u64,
    /// Outbound frames dropped under [`SlowConsumerPolicy::DropFrame`](crate::SlowConsumerPolicy::DropFrame).
    pub frames_dropped_slow: u64,
    /// Sockets closed with 4003 because their outbound queue was full.
    pub slow_consumer_closes: u64,
    /// Sockets terminated because they missed a protocol pong.
    pub liveness_terminations: u64,
    /// Sockets terminated because they stayed in the background too long.
    pub background_terminations: u64,
    /// Messages received from the bus.
    pub bus_received: u64,
    /// Bus messages dropped because they could not be decoded or had a wrong shape.
    pub bus_dropped_invalid: u64,
    /// Bus messages dropped because they exceeded `max_bus_message_size`.
    pub bus_dropped_oversize: u64,
    /// Custom-channel messages dropped because no handler was set.
    pub bus_dropped_unhandled: u64,
    /// Own publications received back and skipped.
    pub bus_own_skipped: u64,
    /// Second copies of redundantly published messages, dropped.
    pub bus_duplicates: u64,
    /// Cross-server events with no handler on this node.
    pub cross_unhandled: u64,
    /// Cross-server replies for unknown (finished, deleted or forged) callback ids.
    pub cross_replies_unknown: u64,
    /// Frames dropped because the socket had not authenticated yet.
    pub frames_dropped_unauthenticated: u64,
    /// Sockets closed with 4004 for exceeding the rate limit.
    pub rate_limit_closes: u64,
    /// Connections refused (origin not allowed, hook refusal, connection limit).
    pub connections_refused: u64,
    /// Bus messages refused because they were unsigned or their signature was wrong (signing mode).
    pub bus_dropped_unsigned: u64,
    /// Bus messages refused as stale or replayed (signing mode; also the second copy of a redundant publish).
    pub bus_dropped_replayed: u64,
    /// Connections dropped for not sending their complete request head in
    /// time (`handshake_timeout`).
    pub handshakes_timed_out: u64,
    /// Connections refused with 431: request head over `max_handshake_size`.
    pub handshakes_too_large: u64,
    /// Connections waiting for their upgrade pushed out by newer ones
    /// (`max_pending_handshakes`, or the file descriptor budget).
    pub handshakes_evicted: u64,
    /// Upgrade requests refused with 400 (e.g. a malformed `Sec-WebSocket-Key`).
    pub handshakes_bad_request: u64,
    /// `accept` failures for lack of resources (file descriptors, memory).
    pub accept_errors: u64,
    /// Sockets closed with 1002 for a WebSocket protocol violation.
    pub protocol_error_closes: u64,
    /// Sockets closed with 1007 for a text frame that is not UTF-8.
    pub invalid_utf8_closes: u64,
    /// Messages this node refused to publish because, encoded, they
    /// exceeded `max_bus_message_size`.
    pub bus_publish_oversize: u64,
    /// Cross-server calls refused because the node already waited on
    /// `max_pending_cross_server_calls` calls.
    pub cross_server_calls_refused: u64,
    /// Run time of client-event handlers, from the dispatch of the frame's
    /// event to the end of the handler (its asynchronous part included).
    pub client_handler_seconds: HistogramSnapshot,
    /// Run time of cross-server event handlers, from dispatch to their end.
    pub cross_server_handler_seconds: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], 2, "bounds are inclusive");
        assert_eq!(s.buckets[2], 2);
        assert_eq!(s.buckets[3], 3);
        assert_eq!(s.buckets[9], 3);
        assert_eq!(s.buckets[10], 4);
        assert!((s.sum_seconds - 10.00315).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn bucket_bounds_agree() {
        for (s, n) in HANDLER_BUCKETS.iter().zip(BUCKET_NANOS) {
            assert_eq!((s * 1e9).round() as u64, n);
        }
    }
}
