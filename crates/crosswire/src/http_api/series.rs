//! The node's figures over the last minutes, sampled once a second for the
//! admin page's charts, and the `/api/v1/stats` answer.

use crate::bus::BusHealth;
use crate::node::{Node, WeakNode};
use crate::stats::StatsSnapshot;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a sample is taken.
pub(super) const INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept: five minutes.
pub(super) const KEPT: usize = 300;

/// One second of a node's activity, as `/api/v1/stats` lists them under
/// `series` (rates are per second over the sample's interval).
///
/// # Examples
///
/// ```
/// let s = crosswire::http_api::Sample::default();
/// assert_eq!(serde_json::to_value(s)?["frames_in"], 0);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Sample {
    /// When the sample was taken (Unix time, ms).
    pub t: u64,
    /// Open connections.
    pub connections: u64,
    /// Client frames received per second.
    pub frames_in: u64,
    /// Bus messages received per second.
    pub bus_in: u64,
    /// HTTP API requests answered per second.
    pub http: u64,
    /// Errors per second: frames dropped as invalid, reserved, unhandled,
    /// with a bad payload, unauthenticated or oversize; protocol-error
    /// closes; failed handshakes; bus messages dropped as invalid, oversize,
    /// unsigned or replayed; HTTP API error answers.
    pub errors: u64,
    /// Sockets closed as slow consumers per second.
    pub slow_consumer_closes: u64,
    /// Sockets closed for exceeding the rate limit per second.
    pub rate_limit_closes: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// HTTP API error answers.
fn http_errors(s: &StatsSnapshot) -> u64 {
    [
        s.http_api_unauthorized,
        s.http_api_invalid_json,
        s.http_api_invalid_request,
        s.http_api_body_too_large,
        s.http_api_unsupported_media_type,
        s.http_api_not_found,
        s.http_api_method_not_allowed,
        s.http_api_unknown_server,
        s.http_api_rate_limited,
        s.http_api_unavailable,
        s.http_api_too_many_calls,
        s.http_api_internal,
    ]
    .iter()
    .sum()
}

/// Every error [`Sample::errors`] counts.
fn errors(s: &StatsSnapshot) -> u64 {
    [
        s.frames_dropped_invalid,
        s.frames_dropped_reserved,
        s.frames_dropped_unhandled,
        s.frames_dropped_bad_payload,
        s.frames_dropped_unauthenticated,
        s.frames_oversize,
        s.protocol_error_closes,
        s.handshakes_timed_out,
        s.handshakes_too_large,
        s.handshakes_bad_request,
        s.handshakes_tls_failed,
        s.bus_dropped_invalid,
        s.bus_dropped_oversize,
        s.bus_dropped_unsigned,
        s.bus_dropped_replayed,
    ]
    .iter()
    .sum::<u64>()
        + http_errors(s)
}

fn http(s: &StatsSnapshot) -> u64 {
    s.http_api_ok + http_errors(s)
}

/// The sample between two snapshots `secs` apart.
fn sample(prev: &StatsSnapshot, now: &StatsSnapshot, secs: f64, connections: u64) -> Sample {
    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
    Sample {
        t: now_ms(),
        connections,
        frames_in: rate(prev.frames_received, now.frames_received),
        bus_in: rate(prev.bus_received, now.bus_received),
        http: rate(http(prev), http(now)),
        errors: rate(errors(prev), errors(now)),
        slow_consumer_closes: rate(prev.slow_consumer_closes, now.slow_consumer_closes),
        rate_limit_closes: rate(prev.rate_limit_closes, now.rate_limit_closes),
    }
}

/// The samples of one node, taken by a task that ends with the node.
pub(super) struct Series {
    samples: Mutex<VecDeque<Sample>>,
}

impl Series {
    /// Starts sampling `node` (one task, ending when the node shuts down or
    /// is dropped).
    pub(super) fn start(node: &Node) -> crate::Result<Arc<Series>> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            crate::Error::Config("the HTTP API must be built inside a Tokio runtime".into())
        })?;
        let series = Arc::new(Series {
            samples: Mutex::new(VecDeque::with_capacity(KEPT)),
        });
        let weak = node.downgrade();
        let stop = node.shutdown_token().clone();
        handle.spawn(sampler(weak, Arc::downgrade(&series), stop));
        Ok(series)
    }

    /// The `/api/v1/stats` answer.
    pub(super) fn answer(&self, node: &Node) -> StatsAnswer {
        StatsAnswer {
            node: node.server_name().to_owned(),
            time_ms: now_ms(),
            connections: node.connection_count(),
            live_nodes: node.live_nodes(),
            pending_cross_server_calls: node.pending_cross_server_calls(),
            bus: node.cluster().map(|c| c.bus.health()),
            counters: node.counters().counter_values().into_iter().collect(),
            interval_ms: INTERVAL.as_millis() as u64,
            series: self.samples.lock().iter().copied().collect(),
        }
    }
}

async fn sampler(
    node: WeakNode,
    series: std::sync::Weak<Series>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut prev = match node.upgrade() {
        Some(n) => n.stats(),
        None => return,
    };
    let mut last = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (Some(node), Some(series)) = (node.upgrade(), series.upgrade()) else {
            return;
        };
        let now = node.stats();
        let at = tokio::time::Instant::now();
        let secs = at.duration_since(last).as_secs_f64().max(0.001);
        let s = sample(&prev, &now, secs, node.connection_count() as u64);
        prev = now;
        last = at;
        let mut samples = series.samples.lock();
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(s);
    }
}

/// What `/api/v1/stats` answers.
#[derive(Debug, Serialize)]
pub(super) struct StatsAnswer {
    node: String,
    time_ms: u64,
    connections: usize,
    live_nodes: Vec<String>,
    pending_cross_server_calls: usize,
    bus: Option<BusHealth>,
    /// Every counter of the node's metrics (`crosswire_<name>_total`), by
    /// name and label value.
    counters: BTreeMap<String, u64>,
    interval_ms: u64,
    /// One sample a second, oldest first, for the last five minutes.
    series: Vec<Sample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_errors_add_up() {
        let prev = StatsSnapshot::default();
        let now = StatsSnapshot {
            frames_received: 200,
            bus_received: 50,
            http_api_ok: 10,
            http_api_unauthorized: 4,
            frames_dropped_invalid: 6,
            slow_consumer_closes: 2,
            ..Default::default()
        };
        let s = sample(&prev, &now, 2.0, 7);
        assert_eq!(s.connections, 7);
        assert_eq!(s.frames_in, 100);
        assert_eq!(s.bus_in, 25);
        assert_eq!(s.http, 7, "10 ok and 4 errors in 2 s");
        assert_eq!(s.errors, 5, "4 HTTP errors and 6 invalid frames in 2 s");
        assert_eq!(s.slow_consumer_closes, 1);
    }
}
