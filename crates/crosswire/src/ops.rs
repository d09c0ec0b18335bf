//! Operations endpoints: Prometheus metrics and a health report.

use crate::bus::BusHealth;
use crate::node::Node;
use crate::stats::HANDLER_BUCKETS;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use serde::Serialize;
use std::fmt::Write;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        let status = if self.is_shut_down() || bus.as_ref().is_some_and(|b| !b.healthy) {
            HealthStatus::Unavailable
        } else if bus
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
            async move {
                let h = node.health();
                let code = if h.status == HealthStatus::Unavailable {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                };
                (code, axum::Json(h)).into_response()
            }
        })
    }

    /// A route serving the node's metrics in the Prometheus text format.
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
                    [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                    node.metrics_text(),
                )
            }
        })
    }

    /// The node's metrics in the Prometheus text exposition format.
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
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics_text(&self) -> String {
        let s = self.stats();
        let node = escape(self.server_name());
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: f64, extra: &str| {
            let _ = writeln!(out, "# HELP crosswire_{name} {help}");
            let _ = writeln!(out, "# TYPE crosswire_{name} {kind}");
            let _ = writeln!(out, "crosswire_{name}{{node=\"{node}\"{extra}}} {value}");
        };
        metric(
            "connections",
            "gauge",
            "Open WebSocket connections.",
            self.connection_count() as f64,
            "",
        );
        metric(
            "bound_socket_ids",
            "gauge",
            "Socket ids bound to connections.",
            self.client_count() as f64,
            "",
        );
        metric(
            "pending_cross_server_calls",
            "gauge",
            "Cross-server calls waiting for replies.",
            self.pending_cross_server_calls() as f64,
            "",
        );
        metric(
            "cross_server_calls_refused_total",
            "counter",
            "Cross-server calls refused at max_pending_cross_server_calls.",
            s.cross_server_calls_refused as f64,
            "",
        );
        metric(
            "bus_publish_oversize_total",
            "counter",
            "Messages not published because they exceeded max_bus_message_size.",
            s.bus_publish_oversize as f64,
            "",
        );
        metric(
            "live_nodes",
            "gauge",
            "Cluster members known alive, this node included.",
            self.live_nodes().len() as f64,
            "",
        );
        metric(
            "connections_accepted_total",
            "counter",
            "WebSocket connections accepted.",
            s.connections_accepted as f64,
            "",
        );
        metric(
            "connections_refused_total",
            "counter",
            "Connections refused (origin, hook, limit).",
            s.connections_refused as f64,
            "",
        );
        metric(
            "frames_received_total",
            "counter",
            "Frames received from clients.",
            s.frames_received as f64,
            "",
        );
        metric(
            "accept_errors_total",
            "counter",
            "accept() failures for lack of resources (file descriptors, memory).",
            s.accept_errors as f64,
            "",
        );
        let dropped = [
            ("invalid", s.frames_dropped_invalid),
            ("reserved", s.frames_dropped_reserved),
            ("unhandled", s.frames_dropped_unhandled),
            ("bad_payload", s.frames_dropped_bad_payload),
            ("unauthenticated", s.frames_dropped_unauthenticated),
            ("oversize", s.frames_oversize),
            ("slow_consumer", s.frames_dropped_slow),
        ];
        let _ = writeln!(
            out,
            "# HELP crosswire_frames_dropped_total Frames dropped, by reason."
        );
        let _ = writeln!(out, "# TYPE crosswire_frames_dropped_total counter");
        for (reason, n) in dropped {
            let _ = writeln!(
                out,
                "crosswire_frames_dropped_total{{node=\"{node}\",reason=\"{reason}\"}} {n}"
            );
        }
        let closes = [
            ("slow_consumer", s.slow_consumer_closes),
            ("rate_limit", s.rate_limit_closes),
            ("liveness", s.liveness_terminations),
            ("background", s.background_terminations),
            ("protocol_error", s.protocol_error_closes),
            ("invalid_utf8", s.invalid_utf8_closes),
        ];
        let _ = writeln!(
            out,
            "# HELP crosswire_socket_closes_total Sockets closed by the node, by reason."
        );
        let _ = writeln!(out, "# TYPE crosswire_socket_closes_total counter");
        for (reason, n) in closes {
            let _ = writeln!(
                out,
                "crosswire_socket_closes_total{{node=\"{node}\",reason=\"{reason}\"}} {n}"
            );
        }
        let handshakes = [
            ("timeout", s.handshakes_timed_out),
            ("too_large", s.handshakes_too_large),
            ("evicted", s.handshakes_evicted),
            ("bad_request", s.handshakes_bad_request),
        ];
        let _ = writeln!(
            out,
            "# HELP crosswire_handshakes_failed_total Connections dropped or refused before their upgrade, by reason."
        );
        let _ = writeln!(out, "# TYPE crosswire_handshakes_failed_total counter");
        for (reason, n) in handshakes {
            let _ = writeln!(
                out,
                "crosswire_handshakes_failed_total{{node=\"{node}\",reason=\"{reason}\"}} {n}"
            );
        }
        let bus = [
            ("received", s.bus_received),
            ("dropped_invalid", s.bus_dropped_invalid),
            ("dropped_oversize", s.bus_dropped_oversize),
            ("dropped_unhandled", s.bus_dropped_unhandled),
            ("own_skipped", s.bus_own_skipped),
            ("duplicates", s.bus_duplicates),
            ("dropped_unsigned", s.bus_dropped_unsigned),
            ("dropped_replayed", s.bus_dropped_replayed),
        ];
        let _ = writeln!(
            out,
            "# HELP crosswire_bus_messages_total Bus messages received, by outcome."
        );
        let _ = writeln!(out, "# TYPE crosswire_bus_messages_total counter");
        for (outcome, n) in bus {
            let _ = writeln!(
                out,
                "crosswire_bus_messages_total{{node=\"{node}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP crosswire_handler_seconds Run time of event handlers, from dispatch to completion."
        );
        let _ = writeln!(out, "# TYPE crosswire_handler_seconds histogram");
        for (kind, h) in [
            ("client", &s.client_handler_seconds),
            ("cross_server", &s.cross_server_handler_seconds),
        ] {
            let labels = format!("node=\"{node}\",kind=\"{kind}\"");
            for (le, n) in HANDLER_BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "crosswire_handler_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "crosswire_handler_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "crosswire_handler_seconds_sum{{{labels}}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "crosswire_handler_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        if let Some(cluster) = self.cluster() {
            let health = cluster.bus.health();
            let losses = [
                (
                    "bus_publish_failures_total",
                    "Publishes no bus node took (all down or refusing): messages lost.",
                    health.publish_failures,
                ),
                (
                    "bus_receive_dropped_total",
                    "Received bus messages dropped because the receive queue was full.",
                    health.dropped,
                ),
                (
                    "bus_reconnects_total",
                    "Reconnections of bus connections (a subscriber misses what is published meanwhile).",
                    health.reconnects,
                ),
            ];
            for (name, help, n) in losses {
                let _ = writeln!(out, "# HELP crosswire_{name} {help}");
                let _ = writeln!(out, "# TYPE crosswire_{name} counter");
                let _ = writeln!(out, "crosswire_{name}{{node=\"{node}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP crosswire_bus_node_healthy Whether a bus node is used for publishing."
            );
            let _ = writeln!(out, "# TYPE crosswire_bus_node_healthy gauge");
            for n in &health.nodes {
                let _ = writeln!(
                    out,
                    "crosswire_bus_node_healthy{{node=\"{node}\",bus_node=\"{}\"}} {}",
                    escape(&n.name),
                    u8::from(n.healthy)
                );
            }
            let _ = writeln!(
                out,
                "# HELP crosswire_bus_node_published_total Messages published through a bus node."
            );
            let _ = writeln!(out, "# TYPE crosswire_bus_node_published_total counter");
            for n in &health.nodes {
                let _ = writeln!(
                    out,
                    "crosswire_bus_node_published_total{{node=\"{node}\",bus_node=\"{}\"}} {}",
                    escape(&n.name),
                    n.published
                );
            }
            let _ = writeln!(
                out,
                "# HELP crosswire_bus_node_failovers_total Publishes that failed on a bus node and were handed to another."
            );
            let _ = writeln!(out, "# TYPE crosswire_bus_node_failovers_total counter");
            for n in &health.nodes {
                let _ = writeln!(
                    out,
                    "crosswire_bus_node_failovers_total{{node=\"{node}\",bus_node=\"{}\"}} {}",
                    escape(&n.name),
                    n.failovers
                );
            }
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
