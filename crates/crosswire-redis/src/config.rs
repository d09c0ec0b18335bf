//! Configuration of a [`RedisBus`](crate::RedisBus).

use crate::RedisTls;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a publish target is chosen among the healthy Redis nodes.
///
/// Candidates are the nodes that are currently publish targets (see
/// [`NodeStatus::publish_target`](crate::NodeStatus::publish_target)), in
/// configuration order (nodes added at runtime come last). With exactly one
/// candidate it is always chosen and no strategy state changes.
///
/// In configuration files the strategies are spelled `"random"`,
/// `"round-robin"` and `"fastest"`, as in the original.
///
/// # Examples
///
/// ```
/// use crosswire_redis::Strategy;
/// assert_eq!(Strategy::default(), Strategy::Random);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// A uniformly random candidate (the default, as in the original's code).
    #[default]
    Random,
    /// Candidates in turn: an index walks the candidate list (`i = i mod n`,
    /// use candidate `i`, then `i += 1`), so the rotation shifts when the set
    /// of candidates changes, exactly as in the original.
    RoundRobin,
    /// The candidate with the lowest measured PING latency; ties go to the
    /// later node in configuration order (the original's `reduce`). Latencies
    /// are compared at microsecond resolution, not in whole milliseconds as
    /// the original did, so on one machine this does not degenerate into
    /// "always the last node".
    Fastest,
}

/// Configuration of a [`RedisBus`](crate::RedisBus), with the original's
/// defaults.
///
/// It (de)serializes with serde, durations as integer milliseconds; the
/// original's option names (`redisPingInterval`, `redisPingTimeout`,
/// `redisForcePing`, `selectionStrategy`, `serverName`) are accepted as
/// aliases. Missing fields take their defaults.
///
/// # Examples
///
/// ```
/// use crosswire_redis::{RedisBusConfig, Strategy};
/// use std::time::Duration;
///
/// let config = RedisBusConfig {
///     nodes: vec!["redis://127.0.0.1:6379".into(), "redis://127.0.0.1:6380".into()],
///     strategy: Strategy::RoundRobin,
///     ..RedisBusConfig::default()
/// };
/// assert_eq!(config.ping_interval, Duration::from_millis(5000));
/// assert_eq!(config.ping_timeout, Duration::from_millis(2000));
/// assert_eq!(config.warn_interval, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisBusConfig {
    /// One `redis://` (or `rediss://` with the `tls` feature,
    /// `redis+unix://`) URL per independent Redis node. Every endpoint
    /// subscribes on every node; each message is published on one of them
    /// (two with [`redundant`](Self::redundant)).
    pub nodes: Vec<String>,

    /// How the node for each publish is chosen. Default [`Strategy::Random`].
    #[serde(alias = "selectionStrategy")]
    pub strategy: Strategy,

    /// Period of the health PING on every connection (`redisPingInterval`,
    /// default 5000 ms).
    #[serde(with = "millis", alias = "redisPingInterval")]
    pub ping_interval: Duration,

    /// How long a PING — or a PUBLISH, SUBSCRIBE or UNSUBSCRIBE — may stay
    /// unanswered before its connection is considered unhealthy
    /// (`redisPingTimeout`, default 2000 ms). Unlike the original this is a
    /// real timeout: a frozen Redis is taken out of rotation within
    /// `ping_timeout` plus at most one `ping_interval`. It also bounds each
    /// publish attempt and each connection attempt.
    #[serde(with = "millis", alias = "redisPingTimeout")]
    pub ping_timeout: Duration,

    /// How long a batch of PUBLISHes may stay unanswered before its Redis
    /// node is taken out of rotation, when another Redis node can take the
    /// traffic (default 100 ms; when every node is that slow, as on an
    /// overloaded machine, publishing waits instead of failing). A frozen or cut-off
    /// Redis is thus detected by the traffic itself, within this time: the
    /// publishes queued for it and not yet written go to another node at
    /// once, and the ones already written wait for its answer (they are
    /// delivered when it comes back, and never sent a second time, which
    /// could deliver them twice); if it does not answer within
    /// `ping_timeout`, they resolve as [`BusError::InDoubt`](crosswire::bus::BusError::InDoubt)
    /// and are counted (`RedisBusStats::publish_in_doubt`). The node is
    /// used again as soon as it answers. The cost of a low value: a Redis
    /// that is only slow (a fork for a snapshot of a large dataset, a distant
    /// data centre) leaves the rotation for a while and the others take its
    /// share; raise it above the worst answer time of a healthy node.
    #[serde(with = "millis")]
    pub stall_timeout: Duration,

    /// Whether the periodic PING runs (`redisForcePing`, default `true`).
    ///
    /// Pings run when this is `true` or the strategy is
    /// [`Fastest`](Strategy::Fastest) — **whatever the number of nodes**:
    /// unlike the original (which pinged only with more than one node), a
    /// single node is pinged too, so that a frozen Redis makes publishes fail
    /// fast instead of queueing. Without pings, health follows the connection
    /// state and timed-out commands only; a connection marked unhealthy by a
    /// timeout is then probed with PING until it answers.
    #[serde(alias = "redisForcePing")]
    pub force_ping: bool,

    /// Publish every message on **two** distinct healthy nodes (default
    /// `false`, an extension of the original). With only one healthy node a
    /// single copy is sent. Receivers see both copies; the
    /// [`Node`](crosswire::Node) tags envelopes with message ids and drops the
    /// second one. [`Bus::redundant`](crosswire::bus::Bus::redundant) returns
    /// this flag.
    pub redundant: bool,

    /// Cap of the reconnection backoff of every connection (default 2000 ms,
    /// ioredis' default cap). Delays start at 50 ms, double per failed
    /// attempt and are jittered down by up to half.
    #[serde(with = "millis")]
    pub reconnect_backoff_max: Duration,

    /// How often a Redis node that stays unreachable (or unhealthy) is
    /// logged again at warn level (default 30 000 ms). The first failure is
    /// logged at once, so a wrong or unreachable URL shows at start; the
    /// attempts in between are logged at debug level.
    #[serde(with = "millis")]
    pub warn_interval: Duration,

    /// The name of the server owning this endpoint, reported in health and
    /// subscription error events (`serverName`). Default none.
    #[serde(alias = "serverName")]
    pub server_name: Option<String>,

    /// Bound of the receive queue returned by
    /// [`take_incoming`](crosswire::bus::Bus::take_incoming), in messages
    /// (default 65 536). Messages arriving while it is full are dropped and
    /// counted in [`RedisBusStats::dropped`](crate::RedisBusStats::dropped).
    pub incoming_capacity: usize,

    /// Bound of the same receive queue in payload bytes (default 64 MiB,
    /// [`crosswire::bus::DEFAULT_INCOMING_BYTES`]). A message counts from
    /// its arrival until the node has handled it; over the bound it is
    /// dropped and counted as with
    /// [`incoming_capacity`](Self::incoming_capacity). One message bigger
    /// than the bound still passes an empty queue.
    pub incoming_bytes: usize,

    /// Bound of each Redis node's publish queue, in messages (default
    /// 65 536). A publish that finds it full fails over to another node, or
    /// fails (counted in
    /// [`RedisBusStats::publish_failures`](crate::RedisBusStats::publish_failures)) when
    /// there is none.
    pub publish_queue: usize,

    /// Bound of each Redis node's publish queue in payload bytes, counted
    /// until Redis answered (default 64 MiB, [`DEFAULT_PUBLISH_QUEUE_BYTES`]);
    /// over it a publish fails over as with
    /// [`publish_queue`](Self::publish_queue). One message bigger than the
    /// bound still passes an empty queue.
    pub publish_queue_bytes: usize,

    /// TLS settings for the `rediss://` nodes (feature `tls`): a private
    /// certificate authority to trust and, for mutual TLS, a client
    /// certificate. Default none: `rediss://` nodes are verified against
    /// the system's trusted certificates.
    pub tls: Option<RedisTls>,
}

/// Default of [`RedisBusConfig::publish_queue_bytes`]: 64 MiB per Redis
/// node. While Redis keeps up the queue holds one pipelined batch (at most
/// 1 MiB); it fills only when Redis is slow or unreachable, and then what
/// exceeds a few seconds of a busy node's traffic is better failed over or
/// refused than held.
///
/// # Examples
///
/// ```
/// use crosswire_redis::{RedisBusConfig, DEFAULT_PUBLISH_QUEUE_BYTES};
/// assert_eq!(DEFAULT_PUBLISH_QUEUE_BYTES, 64 << 20);
/// assert_eq!(RedisBusConfig::default().publish_queue_bytes, DEFAULT_PUBLISH_QUEUE_BYTES);
/// assert_eq!(RedisBusConfig::default().incoming_bytes, 64 << 20);
/// ```
pub const DEFAULT_PUBLISH_QUEUE_BYTES: usize = 64 * 1024 * 1024;

impl Default for RedisBusConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            strategy: Strategy::Random,
            ping_interval: Duration::from_millis(5000),
            ping_timeout: Duration::from_millis(2000),
            stall_timeout: Duration::from_millis(100),
            force_ping: true,
            redundant: false,
            reconnect_backoff_max: Duration::from_millis(2000),
            warn_interval: Duration::from_secs(30),
            server_name: None,
            incoming_capacity: 65_536,
            incoming_bytes: crosswire::bus::DEFAULT_INCOMING_BYTES,
            publish_queue: 65_536,
            publish_queue_bytes: DEFAULT_PUBLISH_QUEUE_BYTES,
            tls: None,
        }
    }
}

impl RedisBusConfig {
    /// A default configuration over the given node URLs.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = crosswire_redis::RedisBusConfig::new(["redis://127.0.0.1:6379"]);
    /// assert_eq!(config.nodes.len(), 1);
    /// ```
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            nodes: nodes.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Whether the periodic PING runs (see [`force_ping`](Self::force_ping)).
    pub(crate) fn pings(&self) -> bool {
        self.force_ping || self.strategy == Strategy::Fastest
    }

    /// How long a connection may leave a command unanswered before it is
    /// dropped and reopened (it is marked unhealthy after `ping_timeout`).
    pub(crate) fn stall_limit(&self) -> Duration {
        self.timeout() * 3
    }

    /// The timeout, never zero.
    pub(crate) fn timeout(&self) -> Duration {
        self.ping_timeout.max(Duration::from_millis(1))
    }

    /// The stall timeout, never zero and at most the timeout.
    pub(crate) fn stall(&self) -> Duration {
        self.stall_timeout
            .max(Duration::from_millis(1))
            .min(self.timeout())
    }

    /// The ping period, never zero.
    pub(crate) fn interval(&self) -> Duration {
        self.ping_interval.max(Duration::from_millis(1))
    }
}

/// `Duration` as integer milliseconds.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serde_names_and_defaults() {
        let c: RedisBusConfig = serde_json::from_str(
            r#"{"nodes":["redis://a"],"strategy":"round-robin","redisPingInterval":100,"ping_timeout":300}"#,
        )
        .unwrap();
        assert_eq!(c.strategy, Strategy::RoundRobin);
        assert_eq!(c.ping_interval, Duration::from_millis(100));
        assert_eq!(c.ping_timeout, Duration::from_millis(300));
        assert!(c.force_ping);
        assert_eq!(c.reconnect_backoff_max, Duration::from_millis(2000));
        let s = serde_json::to_value(&c).unwrap();
        assert_eq!(s["strategy"], "round-robin");
        assert_eq!(s["ping_interval"], 100);
        for (name, strategy) in [
            ("random", Strategy::Random),
            ("round-robin", Strategy::RoundRobin),
            ("fastest", Strategy::Fastest),
        ] {
            let parsed: Strategy = serde_json::from_value(name.into()).unwrap();
            assert_eq!(parsed, strategy);
        }
    }
}
