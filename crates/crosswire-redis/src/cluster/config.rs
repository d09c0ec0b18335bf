//! Configuration of a [`RedisClusterBus`](crate::RedisClusterBus).

use crate::config::millis;
use crate::RedisTls;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Configuration of a [`RedisClusterBus`](crate::RedisClusterBus).
///
/// It (de)serializes with serde, durations as integer milliseconds;
/// missing fields take their defaults.
///
/// # Examples
///
/// ```
/// use crosswire_redis::RedisClusterConfig;
/// use std::time::Duration;
///
/// let config = RedisClusterConfig {
///     server_name: Some("server-a".into()),
///     ..RedisClusterConfig::new(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
/// };
/// assert_eq!(config.nodes.len(), 2);
/// assert_eq!(config.timeout, Duration::from_millis(2000));
/// assert_eq!(config.publish_timeout, Duration::from_millis(5000));
/// assert_eq!(config.incoming_capacity, 65_536);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisClusterConfig {
    /// Seed URLs: one or more nodes of the cluster (`redis://host:port`,
    /// `rediss://` with the `tls` feature). The bus reads the slot map from
    /// the first that answers and then talks to the masters it names, with
    /// the seed's credentials and TLS settings. Listing several seeds lets
    /// the bus start while one of them is down.
    pub nodes: Vec<String>,

    /// The name of the server owning this endpoint, used in logs. Default
    /// none.
    #[serde(alias = "serverName")]
    pub server_name: Option<String>,

    /// How long a connection attempt or a command (SPUBLISH batch,
    /// SSUBSCRIBE batch, PING, CLUSTER SLOTS) may take (default 2000 ms).
    #[serde(with = "millis")]
    pub timeout: Duration,

    /// How long a publish may be retried — after a redirection (MOVED,
    /// ASK), a lost connection, or while the cluster fails a master over —
    /// before it fails (default 5000 ms).
    #[serde(with = "millis")]
    pub publish_timeout: Duration,

    /// How long [`subscribe`](crosswire::bus::Bus::subscribe) and
    /// `unsubscribe` wait for the owning master's confirmation before they
    /// report an error (default 5000 ms). The change is kept and applied
    /// when the master answers.
    #[serde(with = "millis")]
    pub subscribe_timeout: Duration,

    /// Period of the PING on every subscriber connection (default 5000 ms):
    /// a connection that does not answer within [`timeout`](Self::timeout)
    /// is dropped and opened again.
    #[serde(with = "millis")]
    pub ping_interval: Duration,

    /// Period of the slot-map refresh (`CLUSTER SLOTS`, default 10 000 ms).
    /// The map is also refreshed at once on a redirection, a lost
    /// connection, or a shard channel the cluster unsubscribed.
    #[serde(with = "millis")]
    pub refresh_interval: Duration,

    /// Cap of the reconnection backoff (default 2000 ms). Delays start at
    /// 50 ms, double per failed attempt and are jittered down by up to
    /// half.
    #[serde(with = "millis")]
    pub reconnect_backoff_max: Duration,

    /// Bound of the receive queue in messages (default 65 536); messages
    /// arriving while it is full are dropped and counted.
    pub incoming_capacity: usize,

    /// Bound of the receive queue in payload bytes (default 64 MiB,
    /// [`crosswire::bus::DEFAULT_INCOMING_BYTES`]); a message counts until
    /// the node has handled it.
    pub incoming_bytes: usize,

    /// Bound of the publish queue in messages (default 65 536); a publish
    /// that finds it full fails (counted).
    pub publish_queue: usize,

    /// Bound of the publish queue in payload bytes, counted until Redis
    /// answered (default 64 MiB).
    pub publish_queue_bytes: usize,

    /// TLS settings for `rediss://` seeds (feature `tls`), used for every
    /// node of the cluster.
    pub tls: Option<RedisTls>,
}

impl Default for RedisClusterConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            server_name: None,
            timeout: Duration::from_millis(2000),
            publish_timeout: Duration::from_millis(5000),
            subscribe_timeout: Duration::from_millis(5000),
            ping_interval: Duration::from_millis(5000),
            refresh_interval: Duration::from_millis(10_000),
            reconnect_backoff_max: Duration::from_millis(2000),
            incoming_capacity: 65_536,
            incoming_bytes: crosswire::bus::DEFAULT_INCOMING_BYTES,
            publish_queue: 65_536,
            publish_queue_bytes: crate::DEFAULT_PUBLISH_QUEUE_BYTES,
            tls: None,
        }
    }
}

impl RedisClusterConfig {
    /// A default configuration over the given seed URLs.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = crosswire_redis::RedisClusterConfig::new(["redis://127.0.0.1:7000"]);
    /// assert_eq!(config.nodes, ["redis://127.0.0.1:7000"]);
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

    /// The timeout, never zero.
    pub(crate) fn t(&self) -> Duration {
        self.timeout.max(Duration::from_millis(1))
    }

    /// The reconnection delay after `failures` failed attempts in a row.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        crate::redis_node::backoff_capped(failures, self.reconnect_backoff_max)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serde_defaults_and_millis() {
        let c: RedisClusterConfig =
            serde_json::from_str(r#"{"nodes":["redis://a:1"],"timeout":300}"#).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(300));
        assert_eq!(c.refresh_interval, Duration::from_secs(10));
        assert_eq!(serde_json::to_value(&c).unwrap()["publish_timeout"], 5000);
    }
}
