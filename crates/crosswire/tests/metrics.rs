//! The node's metrics: every metric keeps its name, type, help and labels,
//! and an application's own registry can serve them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::bus::MemoryHub;
use crosswire::Node;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Every line of a fresh node's exposition (named `n1`, with a bus), values
/// left out: the HELP and TYPE lines and the name and labels of every series.
const SHAPE: &str = r#"# HELP crosswire_connections Open WebSocket connections.
# TYPE crosswire_connections gauge
crosswire_connections{node="n1"}
# HELP crosswire_bound_socket_ids Socket ids bound to connections.
# TYPE crosswire_bound_socket_ids gauge
crosswire_bound_socket_ids{node="n1"}
# HELP crosswire_pending_cross_server_calls Cross-server calls waiting for replies.
# TYPE crosswire_pending_cross_server_calls gauge
crosswire_pending_cross_server_calls{node="n1"}
# HELP crosswire_cross_server_calls_refused_total Cross-server calls refused at max_pending_cross_server_calls.
# TYPE crosswire_cross_server_calls_refused_total counter
crosswire_cross_server_calls_refused_total{node="n1"}
# HELP crosswire_recovered_messages_total Room messages sent again to clients that came back (missed-message recovery).
# TYPE crosswire_recovered_messages_total counter
crosswire_recovered_messages_total{node="n1"}
# HELP crosswire_recoveries_total Recoveries at join, by outcome.
# TYPE crosswire_recoveries_total counter
crosswire_recoveries_total{node="n1",outcome="complete"}
crosswire_recoveries_total{node="n1",outcome="incomplete"}
# HELP crosswire_history_append_failures_total Room messages the history could not store: sent without a position, the room's history reset.
# TYPE crosswire_history_append_failures_total counter
crosswire_history_append_failures_total{node="n1"}
# HELP crosswire_bus_received_bytes_total Bytes of the bus messages received.
# TYPE crosswire_bus_received_bytes_total counter
crosswire_bus_received_bytes_total{node="n1"}
# HELP crosswire_routed_ids_total Messages to socket ids under routing by host that took the shared channel, by reason.
# TYPE crosswire_routed_ids_total counter
crosswire_routed_ids_total{node="n1",reason="unknown"}
crosswire_routed_ids_total{node="n1",reason="forwarded"}
# HELP crosswire_routing_conflicts_total Cluster members seen routing in the other mode (or not announcing themselves) under routing by host.
# TYPE crosswire_routing_conflicts_total counter
crosswire_routing_conflicts_total{node="n1"}
# HELP crosswire_bus_publish_oversize_total Messages not published because they exceeded max_bus_message_size.
# TYPE crosswire_bus_publish_oversize_total counter
crosswire_bus_publish_oversize_total{node="n1"}
# HELP crosswire_live_nodes Cluster members known alive, this node included.
# TYPE crosswire_live_nodes gauge
crosswire_live_nodes{node="n1"}
# HELP crosswire_connections_accepted_total WebSocket connections accepted.
# TYPE crosswire_connections_accepted_total counter
crosswire_connections_accepted_total{node="n1"}
# HELP crosswire_connections_refused_total Connections refused (origin, hook, limit).
# TYPE crosswire_connections_refused_total counter
crosswire_connections_refused_total{node="n1"}
# HELP crosswire_frames_received_total Frames received from clients.
# TYPE crosswire_frames_received_total counter
crosswire_frames_received_total{node="n1"}
# HELP crosswire_accept_errors_total accept() failures for lack of resources (file descriptors, memory).
# TYPE crosswire_accept_errors_total counter
crosswire_accept_errors_total{node="n1"}
# HELP crosswire_frames_dropped_total Frames dropped, by reason.
# TYPE crosswire_frames_dropped_total counter
crosswire_frames_dropped_total{node="n1",reason="invalid"}
crosswire_frames_dropped_total{node="n1",reason="reserved"}
crosswire_frames_dropped_total{node="n1",reason="unhandled"}
crosswire_frames_dropped_total{node="n1",reason="bad_payload"}
crosswire_frames_dropped_total{node="n1",reason="unauthenticated"}
crosswire_frames_dropped_total{node="n1",reason="oversize"}
crosswire_frames_dropped_total{node="n1",reason="slow_consumer"}
# HELP crosswire_socket_closes_total Sockets closed by the node, by reason.
# TYPE crosswire_socket_closes_total counter
crosswire_socket_closes_total{node="n1",reason="slow_consumer"}
crosswire_socket_closes_total{node="n1",reason="rate_limit"}
crosswire_socket_closes_total{node="n1",reason="liveness"}
crosswire_socket_closes_total{node="n1",reason="background"}
crosswire_socket_closes_total{node="n1",reason="protocol_error"}
crosswire_socket_closes_total{node="n1",reason="invalid_utf8"}
# HELP crosswire_handshakes_failed_total Connections dropped or refused before their upgrade, by reason.
# TYPE crosswire_handshakes_failed_total counter
crosswire_handshakes_failed_total{node="n1",reason="timeout"}
crosswire_handshakes_failed_total{node="n1",reason="too_large"}
crosswire_handshakes_failed_total{node="n1",reason="evicted"}
crosswire_handshakes_failed_total{node="n1",reason="bad_request"}
crosswire_handshakes_failed_total{node="n1",reason="tls"}
# HELP crosswire_http_api_requests_total Requests answered by the HTTP API, by answer code (ok, or the error code).
# TYPE crosswire_http_api_requests_total counter
crosswire_http_api_requests_total{node="n1",code="ok"}
crosswire_http_api_requests_total{node="n1",code="unauthorized"}
crosswire_http_api_requests_total{node="n1",code="invalid_json"}
crosswire_http_api_requests_total{node="n1",code="invalid_request"}
crosswire_http_api_requests_total{node="n1",code="body_too_large"}
crosswire_http_api_requests_total{node="n1",code="unsupported_media_type"}
crosswire_http_api_requests_total{node="n1",code="not_found"}
crosswire_http_api_requests_total{node="n1",code="method_not_allowed"}
crosswire_http_api_requests_total{node="n1",code="unknown_server"}
crosswire_http_api_requests_total{node="n1",code="rate_limited"}
crosswire_http_api_requests_total{node="n1",code="unavailable"}
crosswire_http_api_requests_total{node="n1",code="too_many_calls"}
crosswire_http_api_requests_total{node="n1",code="internal"}
# HELP crosswire_bus_messages_total Bus messages received, by outcome.
# TYPE crosswire_bus_messages_total counter
crosswire_bus_messages_total{node="n1",outcome="received"}
crosswire_bus_messages_total{node="n1",outcome="dropped_invalid"}
crosswire_bus_messages_total{node="n1",outcome="dropped_oversize"}
crosswire_bus_messages_total{node="n1",outcome="dropped_unhandled"}
crosswire_bus_messages_total{node="n1",outcome="own_skipped"}
crosswire_bus_messages_total{node="n1",outcome="duplicates"}
crosswire_bus_messages_total{node="n1",outcome="dropped_unsigned"}
crosswire_bus_messages_total{node="n1",outcome="dropped_replayed"}
# HELP crosswire_handler_seconds Run time of event handlers, from dispatch to completion.
# TYPE crosswire_handler_seconds histogram
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.0001"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.0005"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.001"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.005"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.01"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.05"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.1"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="0.5"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="1"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="5"}
crosswire_handler_seconds_bucket{node="n1",kind="client",le="+Inf"}
crosswire_handler_seconds_sum{node="n1",kind="client"}
crosswire_handler_seconds_count{node="n1",kind="client"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.0001"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.0005"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.001"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.005"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.01"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.05"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.1"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="0.5"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="1"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="5"}
crosswire_handler_seconds_bucket{node="n1",kind="cross_server",le="+Inf"}
crosswire_handler_seconds_sum{node="n1",kind="cross_server"}
crosswire_handler_seconds_count{node="n1",kind="cross_server"}
# HELP crosswire_bus_publish_failures_total Publishes no bus node took (all down or refusing): messages lost.
# TYPE crosswire_bus_publish_failures_total counter
crosswire_bus_publish_failures_total{node="n1"}
# HELP crosswire_bus_receive_dropped_total Received bus messages dropped because the receive queue was full.
# TYPE crosswire_bus_receive_dropped_total counter
crosswire_bus_receive_dropped_total{node="n1"}
# HELP crosswire_bus_reconnects_total Reconnections of bus connections (a subscriber misses what is published meanwhile).
# TYPE crosswire_bus_reconnects_total counter
crosswire_bus_reconnects_total{node="n1"}
# HELP crosswire_bus_publish_in_doubt_total Publishes written to a bus node that stopped answering: delivered if it comes back, not sent again.
# TYPE crosswire_bus_publish_in_doubt_total counter
crosswire_bus_publish_in_doubt_total{node="n1"}
# HELP crosswire_bus_node_healthy Whether a bus node is used for publishing.
# TYPE crosswire_bus_node_healthy gauge
# HELP crosswire_bus_node_published_total Messages published through a bus node.
# TYPE crosswire_bus_node_published_total counter
# HELP crosswire_bus_node_failovers_total Publishes that failed on a bus node and were handed to another.
# TYPE crosswire_bus_node_failovers_total counter
"#;

/// The exposition without the values of its series.
fn shape(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                l.to_owned()
            } else {
                l.rsplit_once(' ')
                    .map_or(l, |(series, _)| series)
                    .to_owned()
            }
        })
        .collect();
    lines.sort();
    lines
}

/// Every series follows the HELP and TYPE lines of its own family.
fn assert_grouped(text: &str) {
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            assert!(
                line.starts_with(family) && !family.is_empty(),
                "{line} outside its family ({family}) in\n{text}"
            );
        }
    }
}

fn assert_same(actual: Vec<String>, expected: Vec<String>, text: &str) {
    let missing: Vec<_> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<_> = actual.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && actual.len() == expected.len(),
        "missing {missing:#?}\nextra {extra:#?}\nin\n{text}"
    );
}

#[tokio::test]
async fn every_metric_keeps_its_name_type_help_and_labels() {
    let node = Node::builder()
        .server_name("n1")
        .bus(MemoryHub::new().bus())
        .build()
        .unwrap();
    let text = node.metrics_text();
    assert_grouped(&text);
    let mut expected: Vec<String> = SHAPE.lines().map(str::to_owned).collect();
    expected.sort();
    assert_same(shape(&text), expected, &text);
    assert!(
        text.contains("crosswire_live_nodes{node=\"n1\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("crosswire_handler_seconds_count{node=\"n1\",kind=\"client\"} 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_node_without_a_bus_has_no_bus_metrics() {
    let node = Node::builder().server_name("n1").build().unwrap();
    let text = node.metrics_text();
    assert_grouped(&text);
    let bus_only = [
        "crosswire_bus_publish_failures_total",
        "crosswire_bus_receive_dropped_total",
        "crosswire_bus_reconnects_total",
        "crosswire_bus_publish_in_doubt_total",
        "crosswire_bus_node_",
    ];
    let mut expected: Vec<String> = SHAPE
        .lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            !bus_only.iter().any(|b| name.starts_with(b))
        })
        .map(str::to_owned)
        .collect();
    expected.sort();
    assert_same(shape(&text), expected, &text);
}

#[tokio::test]
async fn the_node_label_is_escaped() {
    let node = Node::builder().server_name("a\"b\\c").build().unwrap();
    let text = node.metrics_text();
    assert!(
        text.contains("crosswire_connections{node=\"a\\\"b\\\\c\"} 0\n"),
        "{text}"
    );
}

/// An application serves its own registry (OpenMetrics text) with the node's
/// metrics registered in it; they are read at each scrape.
#[tokio::test]
async fn an_application_registry_serves_the_node_metrics() {
    let (node, ws_addr) = start(Node::builder().server_name("app")).await;
    let orders: Counter = Counter::default();
    let mut registry = Registry::default();
    registry.register("orders", "Orders taken", orders.clone());
    node.register_metrics(&mut registry);
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                encode(&mut text, &registry).unwrap();
                text
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let before = http_get(addr, "/metrics").await;
    assert!(
        before.contains("crosswire_connections{node=\"app\"} 0\n"),
        "{before}"
    );
    assert!(
        before.contains("crosswire_frames_dropped_total{node=\"app\",reason=\"invalid\"} 0\n"),
        "{before}"
    );

    orders.inc();
    let mut ws = connect(ws_addr, "").await;
    send_text(&mut ws, "not json").await;
    wait_until(|| node.stats().frames_dropped_invalid == 1).await;
    let after = http_get(addr, "/metrics").await;
    for line in [
        "orders_total 1\n",
        "crosswire_connections{node=\"app\"} 1\n",
        "crosswire_connections_accepted_total{node=\"app\"} 1\n",
        "crosswire_frames_received_total{node=\"app\"} 1\n",
        "crosswire_frames_dropped_total{node=\"app\",reason=\"invalid\"} 1\n",
        "# TYPE crosswire_frames_dropped counter\n",
        "# TYPE crosswire_handler_seconds histogram\n",
        "# EOF\n",
    ] {
        assert!(after.contains(line), "no {line} in\n{after}");
    }
    // The same series as the node's own endpoint (bucket bounds aside, which
    // OpenMetrics writes as 1.0 where the Prometheus text format writes 1).
    let names = |text: &str| {
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("crosswire_") && !l.contains("_bucket{"))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect();
        names.sort();
        names
    };
    let own = node.metrics_text();
    assert_eq!(names(&after), names(&own), "{after}\n{own}");
    assert_eq!(
        after.matches("crosswire_handler_seconds_bucket{").count(),
        own.matches("crosswire_handler_seconds_bucket{").count()
    );
}

/// The registry does not keep the node alive; a node that is gone adds
/// nothing to it.
#[tokio::test]
async fn a_registry_holds_the_node_weakly() {
    let node = Node::builder().server_name("gone").build().unwrap();
    let weak = node.downgrade();
    let mut registry = Registry::default();
    node.register_metrics(&mut registry);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("crosswire_live_nodes{node=\"gone\"} 1\n"),
        "{text}"
    );
    drop(node);
    assert!(weak.upgrade().is_none(), "the registry kept the node alive");
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(text, "# EOF\n");
}
