//! A node on a Redis bus of two real `redis-server`s reports each bus node
//! in its metrics, under the names and labels it always had.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::Node;
use crosswire_redis::Strategy;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn every_bus_node_has_its_series() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let bus = connect(config(&[&r1, &r2], Strategy::RoundRobin)).await;
    let node = Node::builder()
        .server_name("n1")
        .bus(bus)
        .membership(Duration::from_millis(100), Duration::from_millis(1000))
        .build()
        .unwrap();
    // The membership announcements go through both Redis nodes in turn.
    eventually(
        Duration::from_secs(10),
        "a publish on each Redis node",
        || {
            node.health()
                .bus
                .is_some_and(|b| b.nodes.iter().all(|n| n.published > 0))
        },
    )
    .await;
    let text = node.metrics_text();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("crosswire_bus_"))
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    let mut expected = vec![
        r#"crosswire_bus_messages_total{node="n1",outcome="received"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="dropped_invalid"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="dropped_oversize"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="dropped_unhandled"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="own_skipped"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="duplicates"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="dropped_unsigned"}"#.to_owned(),
        r#"crosswire_bus_messages_total{node="n1",outcome="dropped_replayed"}"#.to_owned(),
        r#"crosswire_bus_publish_oversize_total{node="n1"}"#.to_owned(),
        r#"crosswire_bus_publish_failures_total{node="n1"}"#.to_owned(),
        r#"crosswire_bus_receive_dropped_total{node="n1"}"#.to_owned(),
        r#"crosswire_bus_reconnects_total{node="n1"}"#.to_owned(),
        r#"crosswire_bus_publish_in_doubt_total{node="n1"}"#.to_owned(),
        r#"crosswire_bus_received_bytes_total{node="n1"}"#.to_owned(),
    ];
    for name in [
        "crosswire_bus_node_healthy",
        "crosswire_bus_node_published_total",
        "crosswire_bus_node_failovers_total",
    ] {
        for r in [&r1, &r2] {
            expected.push(format!("{name}{{node=\"n1\",bus_node=\"{}\"}}", r.url()));
        }
    }
    let mut sorted: Vec<&str> = series.clone();
    sorted.sort_unstable();
    expected.sort();
    assert_eq!(sorted, expected, "{text}");
    for r in [&r1, &r2] {
        let healthy = format!(
            "crosswire_bus_node_healthy{{node=\"n1\",bus_node=\"{}\"}} 1\n",
            r.url()
        );
        assert!(text.contains(&healthy), "no {healthy} in\n{text}");
        let published = format!(
            "crosswire_bus_node_published_total{{node=\"n1\",bus_node=\"{}\"}} ",
            r.url()
        );
        let line = text.lines().find(|l| l.starts_with(&published)).unwrap();
        let n: u64 = line[published.len()..].parse().unwrap();
        assert!(n > 0, "{line}");
    }
    for family in [
        "# TYPE crosswire_bus_node_healthy gauge",
        "# TYPE crosswire_bus_node_published_total counter",
        "# TYPE crosswire_bus_node_failovers_total counter",
    ] {
        assert!(text.contains(family), "no {family} in\n{text}");
    }
}
