//! The Redis bus under faults of real `redis-server`s: kill -9 and restart on
//! the same port, SIGSTOP/SIGCONT, with a steady stream of publishes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::bus::{Bus, BusError};
use crosswire_redis::{ConnKind, HealthEventKind, RedisBus, Strategy, SubscriptionOp};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const LONG: Duration = Duration::from_secs(15);

/// Publishes "0", "1", "2", … on a channel until stopped, with up to
/// `window` publishes outstanding, recording errors and the slowest call.
struct Producer {
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<BusError>>>,
    slowest: Arc<Mutex<Duration>>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Producer {
    fn start(bus: &RedisBus, channel: &'static str, window: usize) -> Self {
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (bus, next, done, errors, slowest, paused, stop) = (
                bus.clone(),
                next.clone(),
                done.clone(),
                errors.clone(),
                slowest.clone(),
                paused.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut inflight = FuturesUnordered::new();
                let record = |(result, took): (Result<(), BusError>, Duration)| {
                    done.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = result {
                        errors.lock().unwrap().push(e);
                    }
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                };
                while !stop.load(Ordering::SeqCst) {
                    if paused.load(Ordering::SeqCst) {
                        while let Some(r) = inflight.next().await {
                            record(r);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let seq = next.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    let publish = bus.publish(channel, seq.to_string().into());
                    inflight.push(async move { (publish.await, started.elapsed()) });
                    if inflight.len() >= window {
                        if let Some(r) = inflight.next().await {
                            record(r);
                        }
                    }
                    if seq % 5 == 4 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                while let Some(r) = inflight.next().await {
                    record(r);
                }
            })
        };
        Producer {
            next,
            done,
            errors,
            slowest,
            paused,
            stop,
            task,
        }
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `n` more publishes completed.
    async fn advance(&self, n: u64) {
        let target = self.done() + n;
        eventually(LONG, "the stream advances", || self.done() >= target).await;
    }

    /// Stops publishing and waits until nothing is outstanding; returns the
    /// first sequence number published afterwards (the next one).
    async fn pause(&self) -> u64 {
        self.paused.store(true, Ordering::SeqCst);
        eventually(LONG, "the stream drains", || {
            self.done() == self.next.load(Ordering::SeqCst)
        })
        .await;
        self.next.load(Ordering::SeqCst)
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Stops; returns how many were published.
    async fn finish(self) -> (u64, Vec<BusError>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        within(LONG, self.task).await.unwrap();
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        let slowest = *self.slowest.lock().unwrap();
        (self.next.load(Ordering::SeqCst), errors, slowest)
    }
}

/// Sequence numbers in `range` that `inbox` did not receive on `channel`.
fn missing(inbox: &Inbox, channel: &str, range: std::ops::Range<u64>) -> Vec<u64> {
    let counts = inbox.counts(channel);
    range
        .filter(|i| !counts.contains_key(i.to_string().as_bytes()))
        .collect()
}

fn has_event(
    events: &Mutex<Vec<crosswire_redis::HealthEvent>>,
    port: u16,
    kind: ConnKind,
    healthy: bool,
) -> bool {
    events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.port == port && e.kind == kind && e.is_healthy == healthy)
}

/// kill -9 one of two Redis nodes during a steady round-robin stream: the
/// health handlers see it go down, publishes fail over (none fails), and once
/// restarted on the same port the node is re-subscribed, healthy again and
/// carries traffic. Then both die: what a node publishes is lost, and its
/// metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_node_fails_over_and_recovers() {
    let (mut r0, mut r1) = (RedisServer::start(), RedisServer::start());
    let a = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let b = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let health = record_health(&a);
    let inbox = Inbox::new(&b);
    within(LONG, a.subscribe("stream")).await.unwrap();
    within(LONG, b.subscribe("stream")).await.unwrap();

    let producer = Producer::start(&a, "stream", 16);
    producer.advance(300).await;
    // Freeze the node first, so that publishes are provably in flight on it
    // when it dies: otherwise its subscriber's EOF often takes it out of
    // rotation before any publish meets the dead connection, and nothing
    // needs to fail over. Round robin sends two of these four to it (it is
    // still a target: detection takes at least ping_timeout).
    r1.pause();
    let probes: Vec<_> = (0..4)
        .map(|i| a.publish("stream", format!("probe{i}").into()))
        .collect();
    r1.kill();
    for probe in probes {
        within(LONG, probe).await.expect("failed over");
    }
    eventually(LONG, "publisher down reported", || {
        has_event(&health, r1.port, ConnKind::Publisher, false)
    })
    .await;
    eventually(LONG, "subscriber down reported", || {
        has_event(&health, r1.port, ConnKind::Subscriber, false)
    })
    .await;
    {
        let events = health.lock().unwrap();
        let down = events
            .iter()
            .find(|e| e.port == r1.port && e.kind == ConnKind::Subscriber && !e.is_healthy)
            .unwrap();
        assert_eq!(down.event, HealthEventKind::Close);
        assert_eq!(down.total_node_count, 2);
        assert!(down.healthy_subscriber_count <= 1);
        assert!(down.error.is_some());
    }
    assert!(!a.nodes()[1].publish_target);
    producer.advance(300).await;
    assert_eq!(a.healthy_count(ConnKind::Publisher), 1);

    r1.restart();
    within(LONG, a.wait_for_publish_targets(2)).await.unwrap();
    within(LONG, b.wait_for_publish_targets(2)).await.unwrap();
    assert_eq!(
        numsub(&r1, "stream").await,
        2,
        "both endpoints re-subscribed"
    );
    let recovered = producer.next.load(Ordering::SeqCst);
    let used = a.nodes()[1].published;
    producer.advance(300).await;
    assert!(
        a.nodes()[1].published > used,
        "the restarted node carries traffic again"
    );
    let (total, errors, _) = producer.finish().await;

    assert!(errors.is_empty(), "{errors:?}");
    let stats = a.stats();
    assert!(stats.publish_failovers > 0, "{stats:?}");
    // Every failover moved a publish away from the killed node.
    let nodes = a.nodes();
    assert_eq!(nodes[0].failovers, 0, "{nodes:?}");
    assert_eq!(nodes[1].failovers, stats.publish_failovers, "{nodes:?}");
    assert!(stats.reconnects >= 2, "{stats:?}");
    for kind in [ConnKind::Publisher, ConnKind::Subscriber] {
        let events = health.lock().unwrap();
        let back = events
            .iter()
            .rev()
            .find(|e| e.port == r1.port && e.kind == kind)
            .unwrap();
        assert!(
            back.is_healthy && back.event == HealthEventKind::Connect,
            "{back:?}"
        );
    }
    // Everything published once both endpoints had recovered arrives.
    eventually(LONG, "b received the recovered stream", || {
        missing(&inbox, "stream", recovered..total).is_empty()
    })
    .await;
    // Before the kill nothing was lost either (the first 300 at least).
    assert_eq!(missing(&inbox, "stream", 0..300), Vec::<u64>::new());

    // Every Redis node down: a node's publishes are lost, and /metrics
    // counts them (and the reconnections so far).
    let node = crosswire::Node::builder()
        .server_name("a")
        .bus(a.clone())
        .build()
        .unwrap();
    within(LONG, node.ready()).await;
    r0.kill();
    r1.kill();
    eventually(LONG, "no publish target left", || {
        a.healthy_count(ConnKind::Publisher) == 0
    })
    .await;
    let failures = a.stats().publish_failures;
    node.publish_raw("lost", &serde_json::json!({ "n": 1 }))
        .unwrap();
    eventually(LONG, "the lost publish counted", || {
        a.stats().publish_failures > failures
    })
    .await;
    let stats = a.stats();
    let text = node.metrics_text();
    for line in [
        format!(
            "crosswire_bus_publish_failures_total{{node=\"a\"}} {}",
            stats.publish_failures
        ),
        format!(
            "crosswire_bus_reconnects_total{{node=\"a\"}} {}",
            stats.reconnects
        ),
        format!(
            "crosswire_bus_receive_dropped_total{{node=\"a\"}} {}",
            stats.dropped
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    let health = node.health();
    assert_eq!(health.status, crosswire::HealthStatus::Unavailable);
    assert_eq!(
        health.bus.map(|b| b.publish_failures),
        Some(stats.publish_failures)
    );
}

/// Redundant mode: the same kill loses no message at all (each arrives at
/// least once; duplicates are the node's job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_mode_loses_nothing_when_a_node_dies() {
    let (r0, mut r1) = (RedisServer::start(), RedisServer::start());
    let mut cfg = config(&[&r0, &r1], Strategy::RoundRobin);
    cfg.redundant = true;
    let a = connect(cfg).await;
    let b = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let inbox = Inbox::new(&b);
    within(LONG, b.subscribe("red")).await.unwrap();

    let producer = Producer::start(&a, "red", 16);
    producer.advance(300).await;
    r1.kill();
    producer.advance(300).await;
    r1.restart();
    within(LONG, a.wait_for_publish_targets(2)).await.unwrap();
    producer.advance(300).await;
    let (total, errors, _) = producer.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    eventually(LONG, "b received every sequence number", || {
        missing(&inbox, "red", 0..total).is_empty()
    })
    .await;
    let copies: usize = inbox.counts("red").values().sum();
    assert!(copies as u64 > total, "two copies while both nodes were up");
}

/// SIGSTOP one of two Redis nodes during a steady round-robin stream: the
/// traffic itself detects it (a batch unanswered for `stall_timeout`, well
/// before any ping could), it leaves the rotation and the publishes queued
/// for it go to the other node at once; the ones already written to it are
/// not sent again but reported in doubt after `ping_timeout`. After SIGCONT
/// the frozen node delivers them: every sequence number arrives exactly
/// once (nothing lost, nothing twice), and the node is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_node_is_avoided_and_nothing_arrives_twice() {
    let (r0, mut r1) = (RedisServer::start(), RedisServer::start());
    let cfg = config(&[&r0, &r1], Strategy::RoundRobin);
    let (stall_timeout, ping_timeout) = (cfg.stall_timeout, cfg.ping_timeout);
    let a = connect(cfg.clone()).await;
    let b = connect(cfg).await;
    let health = record_health(&a);
    let inbox = Inbox::new(&b);
    within(LONG, b.subscribe("frozen")).await.unwrap();

    let producer = Producer::start(&a, "frozen", 4);
    producer.advance(200).await;
    let frozen_at = Instant::now();
    r1.pause();
    eventually(LONG, "publisher unhealthy", || {
        has_event(&health, r1.port, ConnKind::Publisher, false)
    })
    .await;
    let detected = frozen_at.elapsed();
    // Nominally stall_timeout (100 ms) after the first unanswered batch,
    // far below ping_timeout + ping_interval; 5x margin for a loaded machine.
    assert!(detected < stall_timeout * 5, "detected after {detected:?}");
    assert!(!a.nodes()[1].publish_target);
    let before = a.nodes()[0].published;
    producer.advance(200).await;
    // (The producer counts a publish when it polls it, possibly after the
    // snapshot above although acknowledged before: allow the window of 4.)
    assert!(
        a.nodes()[0].published >= before + 196,
        "node 0 takes the traffic"
    );
    // What was written to the frozen node is reported, not retried.
    eventually(LONG, "in doubt reported", || a.stats().publish_in_doubt > 0).await;
    let in_doubt = a.stats().publish_in_doubt;
    assert!(
        in_doubt <= 4 * 2,
        "at most a batch or two in flight: {in_doubt}"
    );
    assert_eq!(Bus::health(&a).in_doubt, in_doubt);
    assert!(a.stats().publish_stalls >= 1);

    producer.pause().await;
    r1.resume();
    within(LONG, a.wait_for_publish_targets(2)).await.unwrap();
    within(LONG, b.wait_for_publish_targets(2)).await.unwrap();
    producer.resume();
    let used = a.nodes()[1].published;
    producer.advance(200).await;
    assert!(a.nodes()[1].published > used, "used again after SIGCONT");
    let (total, errors, slowest) = producer.finish().await;
    assert_eq!(errors.len() as u64, in_doubt, "{errors:?}");
    assert!(
        errors.iter().all(|e| matches!(e, BusError::InDoubt(_))),
        "{errors:?}"
    );
    // An in-doubt publish resolves after ping_timeout (300 ms); 5x margin.
    assert!(
        slowest < ping_timeout * 5,
        "slowest publish took {slowest:?}"
    );
    eventually(LONG, "b received every sequence number", || {
        missing(&inbox, "frozen", 0..total).is_empty()
    })
    .await;
    let counts = inbox.counts("frozen");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
}

/// With a single node, a frozen Redis makes publishes fail fast instead of
/// hanging; once resumed they succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_frozen_node_fails_publishes_fast() {
    let mut r0 = RedisServer::start();
    let cfg = config(&[&r0], Strategy::Random);
    let ping_timeout = cfg.ping_timeout;
    let bus = connect(cfg).await;
    r0.pause();
    let started = Instant::now();
    let result = within(LONG, bus.publish("x", "frozen".into())).await;
    let took = started.elapsed();
    // Written before the freeze was noticed: in doubt, not failed.
    assert!(matches!(result, Err(BusError::InDoubt(_))), "{result:?}");
    assert!(took < ping_timeout * 5, "took {took:?}");
    // While unhealthy, publishes fail at once.
    eventually(LONG, "marked unhealthy", || {
        bus.healthy_count(ConnKind::Publisher) == 0
    })
    .await;
    assert!(matches!(
        bus.publish("x", "y".into()).await,
        Err(BusError::NoHealthyNode)
    ));
    r0.resume();
    within(LONG, bus.wait_for_publish_targets(1)).await.unwrap();
    publish(&bus, "x", "again").await;
    assert!(bus.stats().publish_failures >= 1);
    assert_eq!(bus.stats().publish_in_doubt, 1);
}

/// The publish queue of a node is bounded in bytes: while Redis does not
/// answer, a publish that does not fit beside those waiting fails at once
/// (no other node to fail over to), and the bytes are given back once
/// Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_queue_full_in_bytes_refuses_until_redis_answers() {
    let mut r0 = RedisServer::start();
    let mut cfg = config(&[&r0], Strategy::Random);
    cfg.ping_timeout = Duration::from_secs(5);
    cfg.publish_queue_bytes = 3000;
    let bus = connect(cfg).await;
    r0.pause();
    let waiting = bus.publish("q", vec![b'a'; 2000].into());
    let refused = within(LONG, bus.publish("q", vec![b'b'; 2000].into())).await;
    assert!(
        matches!(&refused, Err(BusError::Publish(m)) if m.contains("publish queue full")),
        "{refused:?}"
    );
    assert_eq!(bus.stats().publish_failures, 1);
    r0.resume();
    within(LONG, waiting).await.unwrap();
    publish(&bus, "q", vec![b'c'; 2000]).await;
    assert_eq!(bus.stats().publish_failures, 1);
}

/// A SUBSCRIBE that a frozen node does not confirm within ping_timeout is
/// reported (subscription error handler and the returned error), and is
/// applied once the node answers again. Pings are off so that the SUBSCRIBE
/// is what meets the frozen node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_subscribe_is_reported_and_applied_later() {
    let (r0, mut r1) = (RedisServer::start(), RedisServer::start());
    let mut cfg = config(&[&r0, &r1], Strategy::RoundRobin);
    cfg.force_ping = false;
    cfg.server_name = Some("server-a".into());
    let bus = connect(cfg).await;
    let health = record_health(&bus);
    let reported = Arc::new(Mutex::new(Vec::new()));
    {
        let reported = reported.clone();
        bus.on_subscription_error(move |e| reported.lock().unwrap().push(e));
    }
    r1.pause();
    let result = within(LONG, bus.subscribe("late")).await;
    match &result {
        Err(BusError::Subscription { channel, message }) => {
            assert_eq!(channel, "late");
            assert!(message.contains(&r1.port.to_string()), "{message}");
        }
        other => panic!("expected a subscription error, got {other:?}"),
    }
    {
        let reported = reported.lock().unwrap();
        assert_eq!(reported.len(), 1, "{reported:?}");
        let e = &reported[0];
        assert_eq!(
            (e.channel.as_str(), e.event, e.port),
            ("late", SubscriptionOp::Subscribe, r1.port)
        );
        assert_eq!(e.server_name.as_deref(), Some("server-a"));
    }
    assert!(has_event(&health, r1.port, ConnKind::Subscriber, false));
    assert!(!bus.nodes()[1].publish_target);
    assert_eq!(numsub(&r0, "late").await, 1);
    r1.resume();
    eventually_async(LONG, "applied after SIGCONT", || async {
        numsub(&r1, "late").await == 1
    })
    .await;
    within(LONG, bus.wait_for_publish_targets(2)).await.unwrap();
    assert_eq!(bus.stats().subscription_errors, 1);
    // A retry succeeds.
    within(LONG, bus.subscribe("late")).await.unwrap();
}
