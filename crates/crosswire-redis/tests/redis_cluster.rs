//! The cluster bus on a real Redis Cluster (3 masters, sharded pub/sub):
//! publish and subscribe on channels of every master in call order,
//! unsubscribe, a slot migrated to another master (the subscription
//! follows), a master killed and replaced by its replica (the bus
//! reconnects, subscribes again and counts the loss), and the cross-node
//! suite every bus runs (send paths, calls, queries, a node crashing), in
//! the compatible mode and routing by host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../crosswire-test-support/suites/cross_node.rs"]
mod cross_node;
mod support;

use bytes::Bytes;
use crosswire::bus::Bus;
use crosswire::{Node, NodeBuilder};
use crosswire_redis::{key_slot, RedisClusterBus, RedisClusterConfig};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::time::Duration;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Short timeouts for tests; failover of a killed master takes a few
/// seconds, so publishes may be retried that long.
fn config(cluster: &RedisCluster, name: &str) -> RedisClusterConfig {
    RedisClusterConfig {
        server_name: Some(name.to_owned()),
        timeout: Duration::from_millis(500),
        ping_interval: Duration::from_millis(200),
        publish_timeout: Duration::from_secs(10),
        subscribe_timeout: Duration::from_secs(10),
        reconnect_backoff_max: Duration::from_millis(200),
        ..RedisClusterConfig::new(cluster.seed_urls())
    }
}

async fn bus(cluster: &RedisCluster, name: &str) -> RedisClusterBus {
    let bus = RedisClusterBus::connect(config(cluster, name))
        .await
        .unwrap();
    eventually(LIMIT, "bus healthy", || bus.health().healthy).await;
    bus
}

/// Waits until `payload` arrived on `channel`.
async fn wait_for(inbox: &Inbox, channel: &str, payload: &str) {
    eventually(LIMIT, &format!("{payload} on {channel}"), || {
        inbox
            .payloads(channel)
            .iter()
            .any(|p| &p[..] == payload.as_bytes())
    })
    .await;
}

/// Per master port, `per_master` channel names whose slots it owns (the
/// names as Redis hashes them: checked against CLUSTER KEYSLOT).
fn channels_per_master(cluster: &RedisCluster, per_master: usize) -> HashMap<u16, Vec<String>> {
    let masters = cluster.master_ports();
    let mut out: HashMap<u16, Vec<String>> = masters.iter().map(|m| (*m, Vec::new())).collect();
    for i in 0.. {
        if out.values().all(|v| v.len() >= per_master) {
            break;
        }
        let name = format!("ws:room:c{i}");
        let slot = key_slot(&name);
        let owner = cluster.owner_of(slot);
        let list = out.get_mut(&owner).unwrap();
        if list.len() < per_master {
            assert_eq!(slot, cluster.key_slot(&name), "key_slot agrees with Redis");
            list.push(name);
        }
    }
    out
}

/// `PUBSUB SHARDNUMSUB channel` on the master at `port`.
async fn shard_numsub(port: u16, channel: &str) -> i64 {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_every_master_arrive_in_call_order_and_unsubscribe_stops_them() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    let per_master = channels_per_master(&cluster, 2);
    let a = bus(&cluster, "a").await;
    let b = bus(&cluster, "b").await;
    assert_eq!(b.masters().len(), 3);
    let inbox = Inbox::new(&b);
    let channels: Vec<&String> = per_master.values().flatten().collect();
    for c in &channels {
        within(LIMIT, b.subscribe(c)).await.unwrap();
    }
    for (port, list) in &per_master {
        for c in list {
            assert_eq!(b.master_of(c).unwrap(), format!("127.0.0.1:{port}"));
            assert_eq!(
                shard_numsub(*port, c).await,
                1,
                "{c} subscribed on its master"
            );
        }
    }
    // Interleaved over every channel; publish futures not awaited one by
    // one: the order is the call order.
    let mut pending = Vec::new();
    for i in 0..200 {
        for c in &channels {
            pending.push(a.publish(c, Bytes::from(format!("{i}"))));
        }
    }
    for p in pending {
        within(LIMIT, p).await.unwrap();
    }
    eventually(LIMIT, "every message", || {
        channels.iter().all(|c| inbox.payloads(c).len() == 200)
    })
    .await;
    for c in &channels {
        let got: Vec<String> = inbox
            .payloads(c)
            .iter()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "call order on {c}");
    }
    assert_eq!(a.stats().published, 200 * channels.len() as u64);
    // Unsubscribe one channel of a master; another of the same master stays:
    // what the master delivers after the unsubscribed message is ordered.
    let (port, list) = per_master.iter().next().unwrap();
    let (gone, kept) = (&list[0], &list[1]);
    within(LIMIT, b.unsubscribe(gone)).await.unwrap();
    assert_eq!(shard_numsub(*port, gone).await, 0);
    assert_eq!(shard_numsub(*port, kept).await, 1);
    within(LIMIT, a.publish(gone, "after".into()))
        .await
        .unwrap();
    within(LIMIT, a.publish(kept, "after".into()))
        .await
        .unwrap();
    wait_for(&inbox, kept, "after").await;
    assert_eq!(inbox.payloads(gone).len(), 200, "nothing after unsubscribe");
    // Subscribe again: delivered again.
    within(LIMIT, b.subscribe(gone)).await.unwrap();
    within(LIMIT, a.publish(gone, "again".into()))
        .await
        .unwrap();
    wait_for(&inbox, gone, "again").await;
    let health = b.health();
    assert!(health.healthy && health.nodes.len() == 3, "{health:?}");
    assert_eq!((health.reconnects, health.dropped), (0, 0));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_its_slot_to_another_master() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    let a = bus(&cluster, "a").await;
    let b = bus(&cluster, "b").await;
    let inbox = Inbox::new(&b);
    let channel = "ws:room:moving";
    let slot = key_slot(channel);
    let from = cluster.owner_of(slot);
    let to = *cluster.master_ports().iter().find(|p| **p != from).unwrap();
    within(LIMIT, b.subscribe(channel)).await.unwrap();
    within(LIMIT, a.publish(channel, "before".into()))
        .await
        .unwrap();
    wait_for(&inbox, channel, "before").await;

    tokio::task::block_in_place(|| cluster.migrate_slot(slot, to));
    // Redis unsubscribes the channel on the old master; the bus reads the
    // slot map and subscribes at the new one.
    let new_master = format!("127.0.0.1:{to}");
    eventually(LIMIT, "subscribed at the new master", || {
        b.master_of(channel).as_deref() == Some(new_master.as_str())
    })
    .await;
    assert!(within(LIMIT, b.wait_subscribed(LIMIT)).await);
    assert_eq!(shard_numsub(to, channel).await, 1);
    assert_eq!(shard_numsub(from, channel).await, 0);
    let stats = b.stats();
    assert_eq!(stats.moved_subscriptions, 1, "{stats:?}");
    assert!(b.health().reconnects >= 1, "the window of loss is counted");
    // The publisher still has the old map: MOVED, then the new master.
    within(LIMIT, a.publish(channel, "after".into()))
        .await
        .unwrap();
    wait_for(&inbox, channel, "after").await;
    assert!(a.stats().redirects >= 1, "{:?}", a.stats());
    assert_eq!(a.master_of(channel).as_deref(), Some(new_master.as_str()));
    let got = inbox.payloads(channel);
    assert_eq!(got, [Bytes::from("before"), Bytes::from("after")]);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_and_the_bus_resubscribes_with_the_loss_counted() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 1));
    let per_master = channels_per_master(&cluster, 1);
    let a = bus(&cluster, "a").await;
    let b = bus(&cluster, "b").await;
    let inbox = Inbox::new(&b);
    for list in per_master.values() {
        within(LIMIT, b.subscribe(&list[0])).await.unwrap();
    }
    let victim = cluster.master_ports()[0];
    let channel = per_master[&victim][0].clone();
    let other = per_master
        .iter()
        .find(|(p, _)| **p != victim)
        .map(|(_, l)| l[0].clone())
        .unwrap();
    within(LIMIT, a.publish(&channel, "0".into()))
        .await
        .unwrap();
    wait_for(&inbox, &channel, "0").await;
    assert_eq!(b.health().reconnects, 0);

    let promoted = tokio::task::block_in_place(|| cluster.kill_master_and_wait_failover(victim));
    let promoted_addr = format!("127.0.0.1:{promoted}");
    eventually(
        Duration::from_secs(20),
        "the bus follows the failover",
        || b.master_of(&channel).as_deref() == Some(promoted_addr.as_str()) && b.health().healthy,
    )
    .await;
    assert!(within(LIMIT, b.wait_subscribed(LIMIT)).await);
    assert!(!b.masters().contains(&format!("127.0.0.1:{victim}")));
    let health = b.health();
    assert!(
        health.reconnects >= 1,
        "the lost subscriber is counted: {health:?}"
    );
    assert_eq!(health.nodes.len(), 3);
    // Later messages arrive, on the failed-over shard and on the others.
    within(Duration::from_secs(15), a.publish(&channel, "1".into()))
        .await
        .unwrap();
    wait_for(&inbox, &channel, "1").await;
    within(LIMIT, a.publish(&other, "x".into())).await.unwrap();
    wait_for(&inbox, &other, "x").await;
    assert_eq!(shard_numsub(promoted, &channel).await, 1);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn connect_refuses_an_empty_or_invalid_seed_list() {
    assert!(RedisClusterBus::connect(RedisClusterConfig::default())
        .await
        .is_err());
    assert!(
        RedisClusterBus::connect(RedisClusterConfig::new(["redis+unix:///tmp/x.sock"]))
            .await
            .is_err()
    );
    // An unreachable seed: the bus starts, unhealthy, and publishes fail in time.
    let mut config = RedisClusterConfig::new([format!("redis://{}", free_addr())]);
    config.timeout = Duration::from_millis(100);
    config.publish_timeout = Duration::from_millis(300);
    let bus = RedisClusterBus::connect(config).await.unwrap();
    assert!(!bus.health().healthy);
    assert!(within(LIMIT, bus.publish("c", "x".into())).await.is_err());
    assert_eq!(bus.stats().publish_failures, 1);
    bus.close().await;
}

/// The cross-node suite's nodes: on `cluster`, announcing every 100 ms and
/// dropped after 1 s of silence.
fn on_cluster(cluster: &RedisCluster) -> impl Fn(&str) -> BoxFuture<'static, NodeBuilder> {
    let template = config(cluster, "n");
    move |name: &str| -> BoxFuture<'static, NodeBuilder> {
        let cfg = RedisClusterConfig {
            server_name: Some(name.to_owned()),
            ..template.clone()
        };
        let name = name.to_owned();
        Box::pin(async move {
            let bus = RedisClusterBus::connect(cfg).await.unwrap();
            eventually(LIMIT, "bus healthy", || bus.health().healthy).await;
            Node::builder()
                .server_name(name)
                .bus(bus)
                .membership(Duration::from_millis(100), Duration::from_millis(1000))
        })
    }
}

/// Every send path, cross-server calls, cluster queries and a node crashing,
/// across three nodes on a 3-master cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_suite_on_a_redis_cluster() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    cross_node::run_all(on_cluster(&cluster)).await;
}

/// The same, routing by host: rooms and nodes have channels of their own,
/// spread over the shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_suite_on_a_redis_cluster_routing_by_host() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0));
    cross_node::run_all(cross_node::by_host(on_cluster(&cluster))).await;
}
