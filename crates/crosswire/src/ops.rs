//! Operations endpoints: Prometheus metrics and a health report.

use crate::bus::{BusHealth, BusNodeHealth};
use crate::node::{Node, WeakNode};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a node is doing, as [`Node::health`] reports it (serialized in lower
/// case: `"ok"`, `"degraded"`, `"unavailable"`).
///
/// # Examples
///
/// ```
/// use crosswire::HealthStatus;
/// assert_eq!(serde_json::to_string(&HealthStatus::Degraded).ok().as_deref(), Some("\"degraded\""));
/// assert_eq!(HealthStatus::Ok.as_str(), "ok");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Serving, and every bus node is healthy.
    Ok,
    /// Serving, but some bus node is unhealthy (publishes go to the others).
    Degraded,
    /// Shut down, or no bus node is healthy: `/health` answers 503.
    Unavailable,
}

impl HealthStatus {
    /// The status as the health route writes it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::HealthStatus::Unavailable.as_str(), "unavailable");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unavailable => "unavailable",
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, `degraded` (the bus has unhealthy nodes but can publish) or
    /// `unavailable` (shutting down, or the bus cannot publish).
    pub status: HealthStatus,
    /// The node's name.
    pub node: String,
    /// Open connections.
    pub connections: usize,
    /// Live cluster members, this node included.
    pub live_nodes: Vec<String>,
    /// The bus, when the node has one.
    pub bus: Option<BusHealth>,
    /// A routing conflict this node saw in its cluster
    /// ([`Node::routing_conflict`]); the status is then at best `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_conflict: Option<String>,
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
    /// assert_eq!(health.status, crosswire::HealthStatus::Ok);
    /// assert_eq!(health.live_nodes, ["n1"]);
    /// assert!(health.bus.is_some_and(|b| b.healthy));
    /// node.shutdown(std::time::Duration::from_millis(100)).await;
    /// assert_eq!(node.health().status, crosswire::HealthStatus::Unavailable);
    /// # Ok(())
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        let bus = self.cluster().map(|c| c.bus.health());
        let routing_conflict = self.routing_conflict();
        let status = if self.is_shut_down() || bus.as_ref().is_some_and(|b| !b.healthy) {
            HealthStatus::Unavailable
        } else if routing_conflict.is_some()
            || bus
                .as_ref()
                .is_some_and(|b| b.nodes.iter().any(|n| !n.healthy))
        {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        };
        Health {
            status,
            node: self.server_name().to_owned(),
            connections: self.connection_count(),
            live_nodes: self.live_nodes(),
            bus,
            routing_conflict,
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
    /// assert_eq!(node.health().status, crosswire::HealthStatus::Ok); // what the route serves, with status 200
    /// # Ok(())
    /// # }
    /// ```
    pub fn health_route(&self) -> MethodRouter {
        let node = self.clone();
        get(move || {
            let node = node.clone();
            async move { node.health_response() }
        })
    }

    /// [`Node::health`] as JSON, 200 unless the node is unavailable (503).
    pub(crate) fn health_response(&self) -> axum::response::Response {
        let h = self.health();
        let code = if h.status == HealthStatus::Unavailable {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::OK
        };
        (code, axum::Json(h)).into_response()
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
        for m in &NODE_GAUGES {
            m.encode_one(encoder, node, self)?;
        }
        self.counters().encode(node, encoder)?;
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let health = cluster.bus.health();
        for m in &BUS_LOSSES {
            m.encode_one(encoder, node, &health)?;
        }
        for m in &BUS_NODES {
            let mut metric = encoder.encode_descriptor(m.name, m.help, None, m.kind)?;
            for n in &health.nodes {
                let labels = [("node", node), ("bus_node", n.name.as_str())];
                encode_value(&mut metric.encode_family(&labels)?, m.kind, (m.read)(n))?;
            }
        }
        Ok(())
    }
}

/// A metric read from the node's state (not from its counters): its name,
/// help, type and reading.
struct Reading<T> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    read: fn(&T) -> u64,
}

impl<T> Reading<T> {
    /// Writes the metric with its one series, labelled `node`.
    fn encode_one(&self, encoder: &mut DescriptorEncoder<'_>, node: &str, from: &T) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        encode_value(
            &mut metric.encode_family(&[("node", node)])?,
            self.kind,
            (self.read)(from),
        )
    }
}

fn encode_value(series: &mut MetricEncoder<'_>, kind: MetricType, value: u64) -> fmt::Result {
    match kind {
        MetricType::Counter => series.encode_counter::<NoLabelSet, _, u64>(&value, None),
        _ => series.encode_gauge(&value),
    }
}

/// The node's gauges.
const NODE_GAUGES: [Reading<Node>; 4] = [
    Reading {
        name: "crosswire_connections",
        help: "Open WebSocket connections.",
        kind: MetricType::Gauge,
        read: |node| node.connection_count() as u64,
    },
    Reading {
        name: "crosswire_bound_socket_ids",
        help: "Socket ids bound to connections.",
        kind: MetricType::Gauge,
        read: |node| node.client_count() as u64,
    },
    Reading {
        name: "crosswire_pending_cross_server_calls",
        help: "Cross-server calls waiting for replies.",
        kind: MetricType::Gauge,
        read: |node| node.pending_cross_server_calls() as u64,
    },
    Reading {
        name: "crosswire_live_nodes",
        help: "Cluster members known alive, this node included.",
        kind: MetricType::Gauge,
        read: |node| node.live_nodes().len() as u64,
    },
];

/// The bus's loss counters (nodes with a bus only).
const BUS_LOSSES: [Reading<BusHealth>; 4] = [
    Reading {
        name: "crosswire_bus_publish_failures",
        help: "Publishes no bus node took (all down or refusing): messages lost.",
        kind: MetricType::Counter,
        read: |h| h.publish_failures,
    },
    Reading {
        name: "crosswire_bus_receive_dropped",
        help: "Received bus messages dropped because the receive queue was full.",
        kind: MetricType::Counter,
        read: |h| h.dropped,
    },
    Reading {
        name: "crosswire_bus_reconnects",
        help: "Reconnections of bus connections (a subscriber misses what is published meanwhile).",
        kind: MetricType::Counter,
        read: |h| h.reconnects,
    },
    Reading {
        name: "crosswire_bus_publish_in_doubt",
        help: "Publishes written to a bus node that stopped answering: delivered if it comes back, not sent again.",
        kind: MetricType::Counter,
        read: |h| h.in_doubt,
    },
];

/// One series per bus node (e.g. per Redis node), labelled `bus_node`.
const BUS_NODES: [Reading<BusNodeHealth>; 3] = [
    Reading {
        name: "crosswire_bus_node_healthy",
        help: "Whether a bus node is used for publishing.",
        kind: MetricType::Gauge,
        read: |n| u64::from(n.healthy),
    },
    Reading {
        name: "crosswire_bus_node_published",
        help: "Messages published through a bus node.",
        kind: MetricType::Counter,
        read: |n| n.published,
    },
    Reading {
        name: "crosswire_bus_node_failovers",
        help: "Publishes that failed on a bus node and were handed to another.",
        kind: MetricType::Counter,
        read: |n| n.failovers,
    },
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
