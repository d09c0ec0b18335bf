//! The bus message size limit against a `redis-server` with its default
//! settings (`client-output-buffer-limit pubsub 32mb 8mb 60`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::config::DEFAULT_MAX_BUS_MESSAGE_SIZE;
use crosswire::{Error, Node};
use crosswire_redis::Strategy;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const LONG: Duration = Duration::from_secs(30);

/// `CLIENT LIST` of a server: (id, number of subscribed channels) per client.
async fn clients(server: &RedisServer) -> Vec<(u64, u64)> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap()
            };
            (field("id"), field("sub"))
        })
        .collect()
}

/// Ids of the connections subscribed to something.
async fn subscriber_ids(server: &RedisServer) -> Vec<u64> {
    let mut ids: Vec<u64> = clients(server)
        .await
        .into_iter()
        .filter(|(_, sub)| *sub > 0)
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Ten bus messages of the default maximum size, published in one burst:
/// Redis disconnects no subscriber (same connections before and after, no
/// reconnection counted) and all ten reach the other node. A message one
/// byte larger is refused at the publisher with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_maximum_size_messages_disconnects_no_subscriber() {
    let r = RedisServer::start();
    let bus_a = connect(config(&[&r], Strategy::Random)).await;
    let bus_b = connect(config(&[&r], Strategy::Random)).await;
    let a = Node::builder()
        .server_name("a")
        .bus(bus_a.clone())
        .build()
        .unwrap();
    let b = Node::builder()
        .server_name("b")
        .bus(bus_b.clone())
        .custom_channels(["big"])
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.set_custom_channel_handler(move |_channel, message: Value| {
        let _ = tx.send(message);
        async {}
    });
    within(LONG, a.ready()).await;
    within(LONG, b.ready()).await;

    let max = DEFAULT_MAX_BUS_MESSAGE_SIZE;
    // MessagePack of {"d": s} is s plus 8 bytes (map, key, str32 header).
    let over = a.publish_raw("big", &json!({ "d": "x".repeat(max - 7) }));
    assert!(
        matches!(over, Err(Error::BusMessageTooLarge { size, max: m }) if size == max + 1 && m == max),
        "{over:?}"
    );
    assert_eq!(a.stats().bus_publish_oversize, 1);

    let subscribers = subscriber_ids(&r).await;
    assert_eq!(subscribers.len(), 2, "one subscriber connection per bus");
    let reconnects = (bus_a.stats().reconnects, bus_b.stats().reconnects);
    for i in 0..10u8 {
        let fill = char::from(b'a' + i).to_string().repeat(max - 8);
        a.publish_raw("big", &json!({ "d": fill })).unwrap();
    }
    for i in 0..10u8 {
        let message = within(LONG, rx.recv()).await.unwrap();
        let d = message["d"].as_str().unwrap();
        assert_eq!(d.len(), max - 8);
        assert!(d.starts_with(char::from(b'a' + i)), "message {i} in order");
    }
    assert_eq!(b.stats().bus_dropped_oversize, 0);
    assert_eq!(
        subscriber_ids(&r).await,
        subscribers,
        "no subscriber was disconnected"
    );
    assert_eq!(
        (bus_a.stats().reconnects, bus_b.stats().reconnects),
        reconnects
    );
    assert_eq!(bus_a.stats().publish_failures, 0);
}
