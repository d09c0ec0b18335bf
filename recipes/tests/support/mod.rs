//! Test support: a Redis bus configuration for the recipes' tests; the
//! `redis-server` processes and the bounded waits come from
//! crosswire-test-support.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use crosswire_test_support::*;

use std::time::Duration;

/// A Redis bus configuration with short health intervals, for tests.
pub fn redis_config(servers: &[&RedisServer]) -> crosswire_redis::RedisBusConfig {
    crosswire_redis::RedisBusConfig {
        nodes: servers.iter().map(|s| s.url()).collect(),
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(1000),
        reconnect_backoff_max: Duration::from_millis(200),
        ..crosswire_redis::RedisBusConfig::default()
    }
}
