//! Test support: buses on real `redis-server`s (the processes, their faults
//! and the waits come from crosswire-test-support), raw Redis taps, and what
//! a bus received.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use crosswire_test_support::*;

use bytes::Bytes;
use crosswire::bus::{Bus, BusMessage};
use crosswire_redis::{HealthEvent, RedisBus, RedisBusConfig, Strategy};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A bus configuration with short intervals for tests.
pub fn config(servers: &[&RedisServer], strategy: Strategy) -> RedisBusConfig {
    RedisBusConfig {
        nodes: servers.iter().map(|s| s.url()).collect(),
        strategy,
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(300),
        reconnect_backoff_max: Duration::from_millis(200),
        ..RedisBusConfig::default()
    }
}

/// Connects a bus and waits until all its nodes are publish targets.
pub async fn connect(config: RedisBusConfig) -> RedisBus {
    let n = config.nodes.len();
    let bus = RedisBus::connect(config).await.expect("valid config");
    within(Duration::from_secs(10), bus.wait_for_publish_targets(n))
        .await
        .unwrap();
    bus
}

/// Every health event of a bus, recorded.
pub fn record_health(bus: &RedisBus) -> Arc<Mutex<Vec<HealthEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    bus.on_health_change(move |e| sink.lock().unwrap().push(e));
    events
}

/// Collects what a bus endpoint receives, in the background.
pub struct Inbox {
    pub messages: Arc<Mutex<Vec<BusMessage>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Inbox {
    pub fn new(bus: &impl crosswire::bus::Bus) -> Self {
        let mut rx: mpsc::Receiver<BusMessage> = bus.take_incoming().expect("first take");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                sink.lock().unwrap().push(m);
            }
        });
        Inbox {
            messages,
            _task: task,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// The payloads received on `channel`, in order.
    pub fn payloads(&self, channel: &str) -> Vec<Bytes> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| &*m.channel == channel)
            .map(|m| m.payload.clone())
            .collect()
    }

    /// How many times each payload arrived on `channel`.
    pub fn counts(&self, channel: &str) -> HashMap<Bytes, usize> {
        let mut counts = HashMap::new();
        for m in self.messages.lock().unwrap().iter() {
            if &*m.channel == channel {
                *counts.entry(m.payload.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// A raw subscriber on one Redis server (not through the bus): shows which
/// server carried which message.
pub struct Tap {
    pub got: Arc<Mutex<Vec<Bytes>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Tap {
    pub async fn new(server: &RedisServer, channel: &str) -> Self {
        let client = redis::Client::open(server.url()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(channel).await.unwrap();
        let mut stream = pubsub.into_on_message();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                sink.lock()
                    .unwrap()
                    .push(Bytes::copy_from_slice(m.get_payload_bytes()));
            }
        });
        Tap { got, _task: task }
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn contains(&self, payload: &[u8]) -> bool {
        self.got.lock().unwrap().iter().any(|p| &p[..] == payload)
    }
}

/// `PUBSUB NUMSUB channel` on a server: how many connections subscribe it.
pub async fn numsub(server: &RedisServer, channel: &str) -> i64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

/// Publishes and fails the test on error.
pub async fn publish(bus: &RedisBus, channel: &str, payload: impl Into<Bytes>) {
    within(
        Duration::from_secs(10),
        bus.publish(channel, payload.into()),
    )
    .await
    .expect("published");
}
