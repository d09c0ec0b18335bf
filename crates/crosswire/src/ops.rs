//! Operations endpoints: Prometheus metrics and a health report.

use crate::bus::{BusHealth, BusNodeHealth};
use crate::node::{Node, WeakNode};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::fmt;

/// The node's health report (see [`Node::health`]).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = crosswire::Node::builder().server_name("n1").build()?;
/// let health = node.health();
/// assert_eq!(
///     serde_json::to_string(&health)?,
///     r#"{"status":"ok","node":"n1","connections":0,"live_nodes":["n1"],"bus":null}"#
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// `ok`, `degraded` (the bus has unhealthy nodes but can publish) or
    /// `unavailable` (shutting down, or the bus cannot publish).
    pub status: &'static str,
    /// The node's name.
    pub node: String,
    /// Open connections.
    pub connections: usize,
    /// Live cluster members, this node included.
    pub live_nodes: Vec<String>,
    /// The bus, when the node has one.
    pub bus: Option<BusHealth>,
}

impl Node {
    /// The node's health: connections, cluster members and bus health.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let node = crosswire::Node::builder().server_name("n1").bus(MemoryHub::new().bus()).build()?;
    /// let health = node.health();
    /// assert_eq!(health.status, "ok");
    /// assert_eq!(health.live_nodes, ["n1"]);
    /// assert!(health.bus.is_some_and(|b| b.healthy));
    /// node.shutdown(std::time::Duration::from_millis(100)).await;
    /// assert_eq!(node.health().status, "unavailable");
    /// # Ok(())
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        let bus = self.cluster().map(|c| c.bus.health());
        let status = if self.is_shut_down() || bus.as_ref().is_some_and(|b| !b.healthy) {
            "unavailable"
        } else if bus
            .as_ref()
            .is_some_and(|b| b.nodes.iter().any(|n| !n.healthy))
        {
            "degraded"
        } else {
            "ok"
        };
        Health {
            status,
            node: self.server_name().to_owned(),
            connections: self.connection_count(),
            live_nodes: self.live_nodes(),
            bus,
        }
    }

    /// A route serving [`Node::health`] as JSON, with status 200 unless the
    /// node is unavailable (503).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/ws", node.ws_route())
    ///     .route("/health", node.health_route());
    /// # let _ = app;
    /// assert_eq!(node.health().status, "ok"); // what the route serves, with status 200
    /// # Ok(())
    /// # }
    /// ```
    pub fn health_route(&self) -> MethodRouter {
        let node = self.clone();
        get(move || {
            let node = node.clone();
            async move {
                let h = node.health();
                let code = if h.status == "unavailable" {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                };
                (code, axum::Json(h)).into_response()
            }
        })
    }

    /// A route serving the node's metrics in the Prometheus text format
    /// (version 0.0.4), as [`Node::metrics_text`] renders them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(node: crosswire::Node) {
    /// let app = axum::Router::new()
    ///     .route("/ws", node.ws_route())
    ///     .route("/metrics", node.metrics_route())
    ///     .route("/health", node.health_route());
    /// # let _ = app; }
    /// ```
    pub fn metrics_route(&self) -> MethodRouter {
        let node = self.clone();
        get(move || {
            let node = node.clone();
            async move {
                (
                    [(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
                    node.metrics_text(),
                )
            }
        })
    }

    /// The node's metrics in the Prometheus text exposition format (version
    /// 0.0.4), rendered by `prometheus-client` from a registry holding only
    /// this node's metrics (see [`Node::register_metrics`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let text = node.metrics_text();
    /// assert!(text.contains("# TYPE crosswire_connections gauge"));
    /// assert!(text.contains(r#"crosswire_connections{node="n1"} 0"#));
    /// assert!(text.contains(r#"crosswire_frames_dropped_total{node="n1",reason="invalid"} 0"#));
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics_text(&self) -> String {
        let mut registry = Registry::default();
        self.register_metrics(&mut registry);
        let mut out = String::with_capacity(8192);
        if let Err(e) = prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        out
    }

    /// Registers the node's metrics (every `crosswire_*` metric of
    /// [`Node::metrics_text`], each series labelled with the node's name) into
    /// an application's own registry, so that one endpoint serves the
    /// application's metrics and the node's.
    ///
    /// The registry reads the node's counters when it is encoded; it does not
    /// keep the node alive, and a node that is gone adds nothing. A registry
    /// made with a prefix (`Registry::with_prefix`) puts it before
    /// `crosswire_`. Register each node once; several nodes of one process go
    /// into sub-registries of their own (`Registry::sub_registry_with_prefix`),
    /// since two nodes in one registry would repeat each metric family.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use prometheus_client::encoding::text::encode;
    /// use prometheus_client::metrics::counter::Counter;
    /// use prometheus_client::registry::Registry;
    ///
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// let mut registry = Registry::default();
    /// let orders: Counter = Counter::default();
    /// registry.register("orders", "Orders taken", orders.clone());
    /// node.register_metrics(&mut registry);
    /// orders.inc();
    ///
    /// let mut text = String::new();
    /// encode(&mut text, &registry)?; // OpenMetrics text, as an application serves it
    /// assert!(text.contains("orders_total 1\n"));
    /// assert!(text.contains("crosswire_connections{node=\"n1\"} 0\n"));
    /// assert!(text.contains("crosswire_socket_closes_total{node=\"n1\",reason=\"slow_consumer\"} 0\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(NodeMetrics(self.downgrade())));
    }

    /// Writes every metric family of the node.
    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let node = self.server_name();
        for (name, help, read) in GAUGES {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_family(&[("node", node)])?
                .encode_gauge(&read(self))?;
        }
        self.inner.stats.encode(node, encoder)?;
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let health = cluster.bus.health();
        for (name, help, read) in BUS_LOSSES {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_family(&[("node", node)])?
                .encode_counter::<NoLabelSet, _, u64>(&read(&health), None)?;
        }
        for (name, help, kind, read) in BUS_NODES {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for n in &health.nodes {
                let labels = [("node", node), ("bus_node", n.name.as_str())];
                let mut series = metric.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => {
                        series.encode_counter::<NoLabelSet, _, u64>(&read(n), None)?
                    }
                    _ => series.encode_gauge(&read(n))?,
                }
            }
        }
        Ok(())
    }
}

/// The node's gauges: name, help, reading.
const GAUGES: [(&str, &str, fn(&Node) -> usize); 4] = [
    (
        "crosswire_connections",
        "Open WebSocket connections.",
        Node::connection_count,
    ),
    (
        "crosswire_bound_socket_ids",
        "Socket ids bound to connections.",
        Node::client_count,
    ),
    (
        "crosswire_pending_cross_server_calls",
        "Cross-server calls waiting for replies.",
        Node::pending_cross_server_calls,
    ),
    (
        "crosswire_live_nodes",
        "Cluster members known alive, this node included.",
        |node| node.live_nodes().len(),
    ),
];

/// The bus's loss counters (nodes with a bus only): name, help, reading.
const BUS_LOSSES: [(&str, &str, fn(&BusHealth) -> u64); 3] = [
    (
        "crosswire_bus_publish_failures",
        "Publishes no bus node took (all down or refusing): messages lost.",
        |h| h.publish_failures,
    ),
    (
        "crosswire_bus_receive_dropped",
        "Received bus messages dropped because the receive queue was full.",
        |h| h.dropped,
    ),
    (
        "crosswire_bus_reconnects",
        "Reconnections of bus connections (a subscriber misses what is published meanwhile).",
        |h| h.reconnects,
    ),
];

/// One series per bus node (e.g. per Redis node), labelled `bus_node`: name,
/// help, type, reading.
#[allow(clippy::type_complexity)]
const BUS_NODES: [(&str, &str, MetricType, fn(&BusNodeHealth) -> u64); 3] = [
    (
        "crosswire_bus_node_healthy",
        "Whether a bus node is used for publishing.",
        MetricType::Gauge,
        |n| u64::from(n.healthy),
    ),
    (
        "crosswire_bus_node_published",
        "Messages published through a bus node.",
        MetricType::Counter,
        |n| n.published,
    ),
    (
        "crosswire_bus_node_failovers",
        "Publishes that failed on a bus node and were handed to another.",
        MetricType::Counter,
        |n| n.failovers,
    ),
];

/// The node's metrics as a `prometheus-client` collector, read at each
/// encoding; holds the node weakly.
#[derive(Debug)]
struct NodeMetrics(WeakNode);

impl Collector for NodeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        match self.0.upgrade() {
            Some(node) => node.encode_metrics(&mut encoder),
            None => Ok(()),
        }
    }
}
