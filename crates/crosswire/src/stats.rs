//! Counters of everything a node drops, refuses or closes, and histograms
//! of how long event handlers run.

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::fmt;
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

/// One family of series in the node's metrics: a name, a help text and, for
/// families of several series, the label that tells them apart.
#[derive(Debug)]
pub(crate) struct Family<T: 'static> {
    /// The family's name (counters without `_total`, which the encoder adds).
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    /// The label that tells the series apart, when there are several.
    pub(crate) label: Option<&'static str>,
    pub(crate) series: &'static [Series<T>],
}

/// One series of a [`Family`]: its label value and where it is counted.
#[derive(Debug)]
pub(crate) struct Series<T: 'static> {
    pub(crate) value: Option<&'static str>,
    pub(crate) get: fn(&Stats) -> &T,
}

/// `Some(x)` for a given literal, `None` for none.
macro_rules! some {
    () => {
        None
    };
    ($x:literal) => {
        Some($x)
    };
}

/// Declares every counter and histogram of a node once, and generates from
/// that one table [`Stats`] (one atomic per counter), [`Stats::snapshot`],
/// [`StatsSnapshot`] (one documented field per counter) and the description
/// of each metric ([`COUNTERS`], [`HISTOGRAMS`]).
macro_rules! node_stats {
    (
        counters {
            $(
                $cname:literal, $chelp:literal $(, $clabel:literal)? {
                    $( $(#[$cdoc:meta])* $cfield:ident $(= $cvalue:literal)? ),* $(,)?
                }
            )*
        }
        histograms {
            $(
                $hname:literal, $hhelp:literal, $hlabel:literal {
                    $( $(#[$hdoc:meta])* $hfield:ident = $hvalue:literal ),* $(,)?
                }
            )*
        }
        unexported {
            $( $(#[$udoc:meta])* $ufield:ident ),* $(,)?
        }
    ) => {
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
            $( $( pub(crate) $cfield: AtomicU64, )* )*
            $( pub(crate) $ufield: AtomicU64, )*
            $( $( pub(crate) $hfield: Histogram, )* )*
        }

        impl Stats {
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
                StatsSnapshot {
                    $( $( $cfield: self.$cfield.load(Ordering::Relaxed), )* )*
                    $( $ufield: self.$ufield.load(Ordering::Relaxed), )*
                    $( $( $hfield: self.$hfield.snapshot(), )* )*
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
            $( $( $(#[$cdoc])* pub $cfield: u64, )* )*
            $( $(#[$udoc])* pub $ufield: u64, )*
            $( $( $(#[$hdoc])* pub $hfield: HistogramSnapshot, )* )*
        }

        /// The counter families of the node's metrics.
        pub(crate) const COUNTERS: &[Family<AtomicU64>] = &[
            $(
                Family {
                    name: concat!("crosswire_", $cname),
                    help: $chelp,
                    label: some!($($clabel)?),
                    series: &[
                        $( Series { value: some!($($cvalue)?), get: |s| &s.$cfield }, )*
                    ],
                },
            )*
        ];

        /// The histogram families of the node's metrics.
        pub(crate) const HISTOGRAMS: &[Family<Histogram>] = &[
            $(
                Family {
                    name: concat!("crosswire_", $hname),
                    help: $hhelp,
                    label: Some($hlabel),
                    series: &[
                        $( Series { value: Some($hvalue), get: |s| &s.$hfield }, )*
                    ],
                },
            )*
        ];
    };
}

node_stats! {
    counters {
        "connections_accepted", "WebSocket connections accepted." {
            /// WebSocket connections accepted.
            connections_accepted,
        }
        "connections_refused", "Connections refused (origin, hook, limit)." {
            /// Connections refused (origin not allowed, hook refusal, connection limit).
            connections_refused,
        }
        "frames_received", "Frames received from clients." {
            /// Frames received from clients (all kinds).
            frames_received,
        }
        "accept_errors", "accept() failures for lack of resources (file descriptors, memory)." {
            /// `accept` failures for lack of resources (file descriptors, memory).
            accept_errors,
        }
        "cross_server_calls_refused", "Cross-server calls refused at max_pending_cross_server_calls." {
            /// Cross-server calls refused because the node already waited on
            /// `max_pending_cross_server_calls` calls.
            cross_server_calls_refused,
        }
        "recovered_messages", "Room messages sent again to clients that came back (missed-message recovery)." {
            /// Room messages sent again to clients that came back and asked
            /// for what they missed.
            recovered_messages,
        }
        "recoveries", "Recoveries at join, by outcome.", "outcome" {
            /// Recoveries that sent every missed message.
            recoveries_complete = "complete",
            /// Recoveries that could not (history lost or too old): the client
            /// was told to reload.
            recoveries_incomplete = "incomplete",
        }
        "history_append_failures", "Room messages the history could not store: sent without a position, the room's history reset." {
            /// Room messages of a namespace with history that the history
            /// store could not take (unreachable, not answering): they were
            /// sent without a position and the room's history was reset, so
            /// that no recovery passes over them.
            history_append_failures,
        }
        "bus_received_bytes", "Bytes of the bus messages received." {
            /// Bytes of the bus messages received (payloads, as the bus
            /// delivered them).
            bus_received_bytes,
        }
        "routed_ids", "Messages to socket ids under routing by host that took the shared channel, by reason.", "reason" {
            /// Messages (or the part of one) to socket ids the directory did
            /// not place on a live node: sent on the shared channel.
            routed_unknown_ids = "unknown",
            /// Messages sent to this node for ids it no longer held, passed
            /// on to the shared channel.
            routed_forwarded = "forwarded",
        }
        "routing_conflicts", "Cluster members seen routing in the other mode (or not announcing themselves) under routing by host." {
            /// Times this node saw a member of its cluster that routes in the
            /// other mode, or a sender that never announces itself (an
            /// original node) while routing by host.
            routing_conflicts,
        }
        "bus_publish_oversize", "Messages not published because they exceeded max_bus_message_size." {
            /// Messages this node refused to publish because, encoded, they
            /// exceeded `max_bus_message_size`.
            bus_publish_oversize,
        }
        "frames_dropped", "Frames dropped, by reason.", "reason" {
            /// Frames dropped because they were not JSON, had no event, or were
            /// binary frames that were not UTF-8.
            frames_dropped_invalid = "invalid",
            /// Frames dropped because they named a reserved or system event.
            frames_dropped_reserved = "reserved",
            /// Frames dropped because no handler was registered for their event.
            frames_dropped_unhandled = "unhandled",
            /// Events whose payload did not deserialize into the type a handler
            /// asked for (the handler did not run; the caller got the `bad_payload`
            /// error reply).
            frames_dropped_bad_payload = "bad_payload",
            /// Frames dropped because the socket had not authenticated yet.
            frames_dropped_unauthenticated = "unauthenticated",
            /// Frames over `max_frame_size` (their sockets were closed with 1009).
            frames_oversize = "oversize",
            /// Outbound frames dropped under [`SlowConsumerPolicy::DropFrame`](crate::SlowConsumerPolicy::DropFrame).
            frames_dropped_slow = "slow_consumer",
        }
        "socket_closes", "Sockets closed by the node, by reason.", "reason" {
            /// Sockets closed with 4003 because their outbound queue was full.
            slow_consumer_closes = "slow_consumer",
            /// Sockets closed with 4004 for exceeding the rate limit.
            rate_limit_closes = "rate_limit",
            /// Sockets terminated because they missed a protocol pong.
            liveness_terminations = "liveness",
            /// Sockets terminated because they stayed in the background too long.
            background_terminations = "background",
            /// Sockets closed with 1002 for a WebSocket protocol violation.
            protocol_error_closes = "protocol_error",
            /// Sockets closed with 1007 for a text frame that is not UTF-8.
            invalid_utf8_closes = "invalid_utf8",
        }
        "handshakes_failed", "Connections dropped or refused before their upgrade, by reason.", "reason" {
            /// Connections dropped for not sending their complete request head in
            /// time (`handshake_timeout`).
            handshakes_timed_out = "timeout",
            /// Connections refused with 431: request head over `max_handshake_size`.
            handshakes_too_large = "too_large",
            /// Connections waiting for their upgrade pushed out by newer ones
            /// (`max_pending_handshakes`, or the file descriptor budget).
            handshakes_evicted = "evicted",
            /// Upgrade requests refused with 400 (e.g. a malformed `Sec-WebSocket-Key`).
            handshakes_bad_request = "bad_request",
            /// Connections whose TLS handshake failed (feature `tls`: not TLS,
            /// no common protocol version or cipher suite, a client that refused
            /// the certificate). A TLS handshake not completed in time counts as
            /// `timeout`.
            handshakes_tls_failed = "tls",
        }
        "http_api_requests", "Requests answered by the HTTP API, by answer code (ok, or the error code).", "code" {
            /// HTTP API requests answered successfully.
            http_api_ok = "ok",
            /// HTTP API requests without an accepted bearer token.
            http_api_unauthorized = "unauthorized",
            /// HTTP API requests whose body was not JSON.
            http_api_invalid_json = "invalid_json",
            /// HTTP API requests whose JSON did not fit the route.
            http_api_invalid_request = "invalid_request",
            /// HTTP API requests with a body above the limit.
            http_api_body_too_large = "body_too_large",
            /// HTTP API requests whose body was not `application/json`.
            http_api_unsupported_media_type = "unsupported_media_type",
            /// HTTP API requests for no route.
            http_api_not_found = "not_found",
            /// HTTP API requests with a method the route does not take.
            http_api_method_not_allowed = "method_not_allowed",
            /// HTTP API calls naming nodes that are not live.
            http_api_unknown_server = "unknown_server",
            /// HTTP API requests above its rate limit.
            http_api_rate_limited = "rate_limited",
            /// HTTP API requests refused while the node could not serve them.
            http_api_unavailable = "unavailable",
            /// HTTP API calls refused at max_pending_cross_server_calls.
            http_api_too_many_calls = "too_many_calls",
            /// HTTP API requests that failed inside the node.
            http_api_internal = "internal",
        }
        "bus_messages", "Bus messages received, by outcome.", "outcome" {
            /// Messages received from the bus.
            bus_received = "received",
            /// Bus messages dropped because they could not be decoded or had a wrong shape.
            bus_dropped_invalid = "dropped_invalid",
            /// Bus messages dropped because they exceeded `max_bus_message_size`.
            bus_dropped_oversize = "dropped_oversize",
            /// Custom-channel messages dropped because no handler was set.
            bus_dropped_unhandled = "dropped_unhandled",
            /// Own publications received back and skipped.
            bus_own_skipped = "own_skipped",
            /// Second copies of redundantly published messages, dropped.
            bus_duplicates = "duplicates",
            /// Bus messages refused because they were unsigned or their signature was wrong (signing mode).
            bus_dropped_unsigned = "dropped_unsigned",
            /// Bus messages refused as stale or replayed (signing mode; also the second copy of a redundant publish).
            bus_dropped_replayed = "dropped_replayed",
        }
    }
    histograms {
        "handler_seconds", "Run time of event handlers, from dispatch to completion.", "kind" {
            /// Run time of client-event handlers, from the dispatch of the frame's
            /// event to the end of the handler (its asynchronous part included).
            client_handler_seconds = "client",
            /// Run time of cross-server event handlers, from dispatch to their end.
            cross_server_handler_seconds = "cross_server",
        }
    }
    unexported {
        /// Cross-server events with no handler on this node.
        cross_unhandled,
        /// Cross-server replies for unknown (finished, deleted or forged) callback ids.
        cross_replies_unknown,
    }
}

impl Stats {
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter as `(name, value)`: the family's name without its
    /// `crosswire_` prefix, and for a labelled family `.<label value>`
    /// (`socket_closes.slow_consumer`).
    pub(crate) fn counter_values(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for family in COUNTERS {
            let name = family.name.trim_start_matches("crosswire_");
            for series in family.series {
                let value = (series.get)(self).load(Ordering::Relaxed);
                let key = match series.value {
                    Some(v) => format!("{name}.{v}"),
                    None => name.to_owned(),
                };
                out.push((key, value));
            }
        }
        out
    }

    /// Writes every counter and histogram family, each series labelled
    /// `node="<node>"` (and its family's label).
    pub(crate) fn encode(&self, node: &str, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        for family in COUNTERS {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, MetricType::Counter)?;
            for series in family.series {
                let value = (series.get)(self).load(Ordering::Relaxed);
                let labels = series_labels(node, family.label, series.value);
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
            }
        }
        for family in HISTOGRAMS {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, MetricType::Histogram)?;
            for series in family.series {
                let h = (series.get)(self);
                let mut buckets = [(f64::INFINITY, 0u64); 11];
                for ((out, bound), n) in buckets
                    .iter_mut()
                    .zip(HANDLER_BUCKETS.iter().chain([&f64::INFINITY]))
                    .zip(&h.buckets)
                {
                    *out = (*bound, n.load(Ordering::Relaxed));
                }
                let count = buckets.iter().map(|(_, n)| n).sum();
                let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                let labels = series_labels(node, family.label, series.value);
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// `node="<node>"` and, for a series of a labelled family, its label.
fn series_labels<'a>(
    node: &'a str,
    label: Option<&'static str>,
    value: Option<&'static str>,
) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![("node", node)];
    if let (Some(label), Some(value)) = (label, value) {
        labels.push((label, value));
    }
    labels
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
