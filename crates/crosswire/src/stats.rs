//! Counters of everything a node drops, refuses or closes.

use std::sync::atomic::{AtomicU64, Ordering};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}
