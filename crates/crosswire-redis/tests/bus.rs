//! The Redis bus against real `redis-server`s, without faults: delivery
//! between endpoints, the selection strategies, subscriptions, adding and
//! removing nodes, configuration errors, close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::bus::{Bus, BusError};
use crosswire_redis::{
    ConnKind, HealthEventKind, RedisBus, RedisBusConfig, RedisBusError, Strategy,
};
use std::time::Duration;
use support::*;

const LONG: Duration = Duration::from_secs(10);

/// Two endpoints ("servers") on two Redis nodes: each receives everything
/// the other publishes, and its own publications, payload bytes untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_across_endpoints() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let a = connect(config(&[&r0, &r1], Strategy::Random)).await;
    let b = connect(config(&[&r0, &r1], Strategy::Random)).await;
    let (inbox_a, inbox_b) = (Inbox::new(&a), Inbox::new(&b));
    within(LONG, a.subscribe("csbp:server_bridge"))
        .await
        .unwrap();
    within(LONG, b.subscribe("csbp:server_bridge"))
        .await
        .unwrap();
    within(LONG, b.subscribe("ws:broadcast")).await.unwrap();

    let binary: Vec<u8> = (0..=255u8).collect();
    publish(&a, "csbp:server_bridge", binary.clone()).await;
    for i in 0..100 {
        publish(&a, "csbp:server_bridge", format!("a{i}")).await;
        publish(&b, "ws:broadcast", format!("b{i}")).await;
    }
    eventually(LONG, "b got all of a's", || {
        inbox_b.counts("csbp:server_bridge").len() == 101
    })
    .await;
    eventually(LONG, "a got its own", || {
        inbox_a.counts("csbp:server_bridge").len() == 101
    })
    .await;
    eventually(LONG, "b got its own", || {
        inbox_b.counts("ws:broadcast").len() == 100
    })
    .await;
    assert!(inbox_b
        .payloads("csbp:server_bridge")
        .iter()
        .any(|p| p[..] == binary[..]));
    // a never subscribed ws:broadcast.
    assert!(inbox_a.payloads("ws:broadcast").is_empty());
    assert_eq!(a.stats().published, 101);
    assert_eq!(a.stats().publish_failures, 0);
    // Each message was published once, on one node: the nodes' counters add
    // up and both nodes were used.
    let nodes = a.nodes();
    assert_eq!(nodes.iter().map(|n| n.published).sum::<u64>(), 101);
    assert!(nodes.iter().all(|n| n.published > 0), "{nodes:?}");
    assert!(!a.redundant());
    a.close().await;
    b.close().await;
}

/// Round robin walks the targets in configuration order: n0, n1, n0, n1, …
/// (observed with a raw subscriber on each Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_in_configuration_order() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let (t0, t1) = (Tap::new(&r0, "rr").await, Tap::new(&r1, "rr").await);
    let mut order = Vec::new();
    for i in 0..8 {
        let payload = format!("m{i}");
        publish(&bus, "rr", payload.clone()).await;
        eventually(LONG, "the tap saw it", || {
            t0.contains(payload.as_bytes()) || t1.contains(payload.as_bytes())
        })
        .await;
        order.push(if t0.contains(payload.as_bytes()) {
            0
        } else {
            1
        });
    }
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1]);
    assert_eq!((t0.len(), t1.len()), (4, 4));
}

/// Publishes are taken when called: a burst issued without awaiting reaches
/// each Redis node in call order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_reach_each_node_in_call_order() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let (t0, t1) = (Tap::new(&r0, "order").await, Tap::new(&r1, "order").await);
    let pending: Vec<_> = (0..2000u32)
        .map(|i| bus.publish("order", i.to_string().into()))
        .collect();
    for p in pending {
        within(LONG, p).await.unwrap();
    }
    eventually(LONG, "the taps saw all", || t0.len() + t1.len() == 2000).await;
    for tap in [&t0, &t1] {
        let seqs: Vec<u32> = tap
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|p| std::str::from_utf8(p).unwrap().parse().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "out of order on one node"
        );
        assert_eq!(seqs.len(), 1000);
    }
}

/// The receive queue is bounded: what does not fit is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_receive_queue_drops_and_counts() {
    let r0 = RedisServer::start();
    let mut cfg = config(&[&r0], Strategy::Random);
    cfg.incoming_capacity = 4;
    let bus = connect(cfg).await;
    let mut incoming = bus.take_incoming().unwrap();
    within(LONG, bus.subscribe("q")).await.unwrap();
    for i in 0..20 {
        publish(&bus, "q", format!("m{i}")).await;
    }
    eventually(LONG, "all received", || bus.stats().received == 20).await;
    assert_eq!(bus.stats().dropped, 16);
    for i in 0..4 {
        let m = within(LONG, incoming.recv()).await.unwrap();
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }
}

/// The receive queue is bounded in bytes too: a message counts until the
/// node drops it, and what does not fit is dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_queue_full_in_bytes_drops_and_counts() {
    let r0 = RedisServer::start();
    let mut cfg = config(&[&r0], Strategy::Random);
    cfg.incoming_bytes = 10_000;
    let bus = connect(cfg).await;
    let mut incoming = bus.take_incoming().unwrap();
    within(LONG, bus.subscribe("q")).await.unwrap();
    for i in 0..20 {
        publish(&bus, "q", format!("{i:04}").repeat(250)).await; // 1000 bytes
    }
    eventually(LONG, "all received", || bus.stats().received == 20).await;
    assert_eq!(bus.stats().dropped, 10);
    let mut held = Vec::new();
    for i in 0..10 {
        let m = within(LONG, incoming.recv()).await.unwrap();
        assert!(m.payload.starts_with(format!("{i:04}").as_bytes()));
        held.push(m);
    }
    // Taken from the queue but not dropped yet: still counted.
    publish(&bus, "q", "x".repeat(1000)).await;
    eventually(LONG, "received", || bus.stats().received == 21).await;
    assert_eq!(bus.stats().dropped, 11);
    drop(held);
    publish(&bus, "q", "y".repeat(1000)).await;
    eventually(LONG, "received", || bus.stats().received == 22).await;
    assert_eq!(bus.stats().dropped, 11);
    let m = within(LONG, incoming.recv()).await.unwrap();
    assert_eq!(m.payload, "y".repeat(1000).as_bytes());
}

/// Random spreads messages over both nodes, each on exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_spreads_over_all_targets() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0, &r1], Strategy::Random)).await;
    let (t0, t1) = (Tap::new(&r0, "rand").await, Tap::new(&r1, "rand").await);
    for i in 0..200 {
        publish(&bus, "rand", format!("m{i}")).await;
    }
    eventually(LONG, "the taps saw all", || t0.len() + t1.len() == 200).await;
    // P(all on one node) = 2^-199.
    assert!(t0.len() > 0 && t1.len() > 0, "{} / {}", t0.len(), t1.len());
}

/// Fastest takes the node with the lowest measured PING latency (ties to the
/// later node). Pings are made rare so the latencies stay as measured at
/// connection time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastest_uses_the_lowest_latency() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let mut cfg = config(&[&r0, &r1], Strategy::Fastest);
    cfg.ping_interval = Duration::from_secs(3600);
    let bus = connect(cfg).await;
    let nodes = bus.nodes();
    let (l0, l1) = (nodes[0].latency.unwrap(), nodes[1].latency.unwrap());
    let expected = if l0 < l1 { 0 } else { 1 };
    let (t0, t1) = (Tap::new(&r0, "fast").await, Tap::new(&r1, "fast").await);
    for i in 0..20 {
        publish(&bus, "fast", format!("m{i}")).await;
    }
    eventually(LONG, "the taps saw all", || t0.len() + t1.len() == 20).await;
    let counts = [t0.len(), t1.len()];
    assert_eq!(
        counts[expected], 20,
        "latencies {l0:?} / {l1:?}, counts {counts:?}"
    );
}

/// Redundant mode sends every message on two distinct nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_publishes_two_copies() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let mut cfg = config(&[&r0, &r1], Strategy::RoundRobin);
    cfg.redundant = true;
    let bus = connect(cfg).await;
    assert!(bus.redundant());
    let (t0, t1) = (Tap::new(&r0, "red").await, Tap::new(&r1, "red").await);
    for i in 0..10 {
        publish(&bus, "red", format!("m{i}")).await;
    }
    eventually(LONG, "both taps saw all", || {
        t0.len() == 10 && t1.len() == 10
    })
    .await;
    eventually(LONG, "both acks counted", || bus.stats().published == 20).await;
}

/// A subscribe issued right after an unsubscribe of the same channel leaves
/// it subscribed on every node (the original's join/leave race), and the
/// reverse leaves it unsubscribed everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_then_subscribe_ends_subscribed_everywhere() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    let inbox = Inbox::new(&bus);
    within(LONG, bus.subscribe("ws:chat")).await.unwrap();
    for round in 0..20 {
        let leave = bus.unsubscribe("ws:chat");
        let join = bus.subscribe("ws:chat");
        within(LONG, leave).await.unwrap();
        within(LONG, join).await.unwrap();
        assert_eq!(numsub(&r0, "ws:chat").await, 1, "round {round}");
        assert_eq!(numsub(&r1, "ws:chat").await, 1, "round {round}");
    }
    for i in 0..4 {
        publish(&bus, "ws:chat", format!("m{i}")).await;
    }
    eventually(LONG, "messages on both nodes arrive", || {
        inbox.counts("ws:chat").len() == 4
    })
    .await;

    let join = bus.subscribe("ws:other");
    let leave = bus.unsubscribe("ws:other");
    within(LONG, join).await.unwrap();
    within(LONG, leave).await.unwrap();
    assert_eq!(numsub(&r0, "ws:other").await, 0);
    assert_eq!(numsub(&r1, "ws:other").await, 0);
    // Subscribe resolves only once every node confirmed.
    within(LONG, bus.subscribe("ws:third")).await.unwrap();
    assert_eq!(numsub(&r0, "ws:third").await, 1);
    assert_eq!(numsub(&r1, "ws:third").await, 1);
}

/// A node added at runtime becomes a publish target only once its
/// subscriber confirmed every channel: a stream of publishes across the
/// addition never loses one of the endpoint's own messages (in the original,
/// the new node was used before it was subscribed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_node_is_used_only_after_its_subscriptions_are_confirmed() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0], Strategy::RoundRobin)).await;
    let inbox = Inbox::new(&bus);
    for ch in [
        "csbp:server_bridge",
        "ws:private_socket",
        "ws:broadcast",
        "ws:a",
        "ws:b",
    ] {
        within(LONG, bus.subscribe(ch)).await.unwrap();
    }
    let health = record_health(&bus);

    // Watch: whenever the new node shows as a target, it must already hold
    // our subscription on Redis.
    let watcher = {
        let bus = bus.clone();
        let url = r1.url();
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut seen_target = 0;
            for _ in 0..2000 {
                let target = bus.nodes().get(1).is_some_and(|n| n.publish_target);
                if target {
                    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                    let (_, n): (String, i64) = redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg("csbp:server_bridge")
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(n >= 1, "target before subscribed");
                    seen_target += 1;
                    if seen_target > 5 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("the new node never became a target");
        })
    };
    let streamer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..400u32 {
                bus.publish("csbp:server_bridge", i.to_string().into())
                    .await
                    .unwrap();
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let id = within(LONG, bus.add_node(&r1.url())).await.unwrap();
    assert_eq!(id.get(), 1);
    assert_eq!(bus.node_count(), 2);
    within(LONG, streamer).await.unwrap();
    within(LONG, watcher).await.unwrap();
    within(LONG, bus.wait_for_publish_targets(2)).await.unwrap();
    for i in 400..420u32 {
        publish(&bus, "csbp:server_bridge", i.to_string()).await;
    }
    eventually(LONG, "every own message came back", || {
        inbox.counts("csbp:server_bridge").len() == 420
    })
    .await;
    assert!(bus.nodes()[1].published > 0, "the new node is used");
    assert_eq!(
        numsub(&r1, "ws:b").await,
        1,
        "every channel subscribed on the new node"
    );
    // Its connections reported healthy, with the node counted.
    let events = health.lock().unwrap().clone();
    let up: Vec<_> = events
        .iter()
        .filter(|e| e.port == r1.port && e.is_healthy)
        .collect();
    assert!(up
        .iter()
        .any(|e| e.kind == ConnKind::Publisher && e.event == HealthEventKind::Connect));
    assert!(up
        .iter()
        .any(|e| e.kind == ConnKind::Subscriber && e.event == HealthEventKind::Connect));
    assert!(up.iter().all(|e| e.total_node_count == 2));
}

/// remove_node stops the node's connections and publishes avoid it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_node_stops_using_it() {
    let (r0, r1) = (RedisServer::start(), RedisServer::start());
    let bus = connect(config(&[&r0, &r1], Strategy::RoundRobin)).await;
    within(LONG, bus.subscribe("ch")).await.unwrap();
    assert_eq!(numsub(&r1, "ch").await, 1);
    let id = bus.nodes()[1].id;
    assert!(within(LONG, bus.remove_node(id)).await);
    assert!(!within(LONG, bus.remove_node(id)).await, "already removed");
    assert_eq!(bus.node_count(), 1);
    assert_eq!(bus.healthy_count(ConnKind::Publisher), 1);
    eventually_async(LONG, "its subscriber is gone", || async {
        numsub(&r1, "ch").await == 0
    })
    .await;
    let (t0, t1) = (Tap::new(&r0, "ch").await, Tap::new(&r1, "ch").await);
    let before = bus.nodes()[0].published;
    for i in 0..10 {
        publish(&bus, "ch", format!("m{i}")).await;
    }
    assert_eq!(
        bus.nodes()[0].published,
        before + 10,
        "all on the remaining node"
    );
    // The remaining node's tap saw all ten; by then the removed node's tap
    // would have seen any that went there.
    eventually(LONG, "the remaining node carried all", || t0.len() == 10).await;
    assert_eq!(t1.len(), 0, "nothing published on the removed node");
}

/// Configuration errors, a node down at start (retried until it is up), and
/// close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_validates_retries_and_closes() {
    assert!(matches!(
        RedisBus::connect(RedisBusConfig::default()).await,
        Err(RedisBusError::NoNodes)
    ));
    let bad = RedisBus::connect(RedisBusConfig::new([
        "redis://:pw@127.0.0.1:1/",
        "nonsense://x",
    ]))
    .await;
    assert!(
        matches!(bad, Err(RedisBusError::InvalidUrl { .. })),
        "{bad:?}"
    );

    let r0 = RedisServer::start();
    let mut r1 = RedisServer::reserve(); // not running yet
    let bus = RedisBus::connect(config(&[&r0, &r1], Strategy::RoundRobin))
        .await
        .unwrap();
    assert_eq!(bus.node_count(), 2);
    assert_eq!(bus.healthy_count(ConnKind::Publisher), 1);
    assert_eq!(bus.healthy_count(ConnKind::Subscriber), 1);
    let nodes = bus.nodes();
    assert!(nodes[0].publish_target && !nodes[1].publish_target);
    assert_eq!(nodes[1].port, r1.port);
    within(LONG, bus.subscribe("ch")).await.unwrap();
    publish(&bus, "ch", "while one is down").await;

    r1.restart();
    within(LONG, bus.wait_for_publish_targets(2)).await.unwrap();
    assert_eq!(numsub(&r1, "ch").await, 1, "subscribed once it came up");
    assert!(matches!(
        bus.add_node("not a url").await,
        Err(RedisBusError::InvalidUrl { .. })
    ));

    let mut incoming = bus.take_incoming().unwrap();
    assert!(bus.take_incoming().is_none());
    bus.close().await;
    assert!(matches!(
        bus.publish("ch", "x".into()).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(bus.subscribe("ch").await, Err(BusError::Closed)));
    assert!(matches!(
        bus.add_node(&r0.url()).await,
        Err(RedisBusError::Closed)
    ));
    // The receive queue ends once the tasks are gone.
    within(LONG, async { while incoming.recv().await.is_some() {} }).await;
    eventually_async(LONG, "connections closed", || async {
        numsub(&r0, "ch").await == 0 && numsub(&r1, "ch").await == 0
    })
    .await;
}
