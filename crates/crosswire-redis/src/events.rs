//! Health and subscription events, with the original's field names.

use serde::{Deserialize, Serialize};

/// One of the two connections a [`RedisBus`](crate::RedisBus) keeps per Redis
/// node. Serialized as `"publisher"` / `"subscriber"`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
/// use crosswire_redis::{RedisBus, RedisBusConfig};
/// // Nothing listens on port 1: the node stays down and is retried in the background.
/// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
/// use crosswire_redis::ConnKind;
/// assert_eq!(bus.healthy_count(ConnKind::Publisher), 0);
/// assert_eq!(bus.healthy_count(ConnKind::Subscriber), 0);
/// assert_eq!(serde_json::to_string(&ConnKind::Publisher).ok().as_deref(), Some(r#""publisher""#));
/// # crosswire::bus::Bus::close(&bus).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnKind {
    /// The connection that sends PUBLISH (and the health PING).
    Publisher,
    /// The connection that holds the subscriptions and receives messages.
    Subscriber,
}

/// What made a connection's health flag change. Serialized in lowercase, as
/// the original's `event` field.
///
/// The bus reports changes only, so in practice: [`Connect`](Self::Connect)
/// when a connection became usable (for a subscriber: connected **and**
/// every channel re-subscribed), [`Close`](Self::Close) when it was lost,
/// [`Ping`](Self::Ping) when a PING or another command was not answered
/// within `ping_timeout` (unhealthy) or was answered again (healthy), and
/// [`Error`](Self::Error) when Redis answered with an error (e.g. `LOADING`).
/// `Ready` and `Reconnecting` exist for compatibility with the original's
/// vocabulary; a reconnecting connection is already unhealthy, so no change
/// is reported for it.
///
/// # Examples
///
/// ```
/// use crosswire_redis::HealthEventKind;
/// assert_eq!(serde_json::to_string(&HealthEventKind::Reconnecting)?, r#""reconnecting""#);
/// let kind: HealthEventKind = serde_json::from_str(r#""ping""#)?;
/// assert_eq!(kind, HealthEventKind::Ping);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthEventKind {
    /// The connection was established (and, for a subscriber, resubscribed).
    Connect,
    /// The connection is ready (kept for compatibility).
    Ready,
    /// Redis answered with an error.
    Error,
    /// The connection was closed or lost.
    Close,
    /// The connection is being re-established (kept for compatibility).
    Reconnecting,
    /// A health PING (or another command) timed out or succeeded again.
    Ping,
}

/// A change of one connection's health, passed to the handlers registered
/// with [`RedisBus::on_health_change`](crate::RedisBus::on_health_change).
///
/// Serializes with the original's keys (`onRedisHealthChange`'s `info`):
///
/// # Examples
///
/// ```
/// use crosswire_redis::{ConnKind, HealthEvent, HealthEventKind};
/// let event = HealthEvent {
///     host: "127.0.0.1".into(),
///     port: 16379,
///     server_name: Some("serverA".into()),
///     event: HealthEventKind::Connect,
///     is_healthy: true,
///     error: None,
///     healthy_subscriber_count: 1,
///     healthy_publisher_count: 1,
///     total_node_count: 2,
///     kind: ConnKind::Subscriber,
/// };
/// assert_eq!(
///     serde_json::to_string(&event).unwrap(),
///     r#"{"host":"127.0.0.1","port":16379,"serverName":"serverA","event":"connect","isHealthy":true,"error":null,"healthySubscriberCount":1,"healthyPublisherCount":1,"totalNodeCount":2,"type":"subscriber"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthEvent {
    /// The node's host (for a Unix socket, its path).
    pub host: String,
    /// The node's port (0 for a Unix socket).
    pub port: u16,
    /// [`RedisBusConfig::server_name`](crate::RedisBusConfig::server_name).
    pub server_name: Option<String>,
    /// What made the flag change.
    pub event: HealthEventKind,
    /// The new value of the flag.
    pub is_healthy: bool,
    /// The error behind the change, if any.
    pub error: Option<String>,
    /// Nodes whose subscriber is healthy, counted after the change.
    pub healthy_subscriber_count: usize,
    /// Nodes whose publisher is healthy, counted after the change.
    pub healthy_publisher_count: usize,
    /// Nodes of this bus.
    pub total_node_count: usize,
    /// Which connection changed (`"type"` on the wire).
    #[serde(rename = "type")]
    pub kind: ConnKind,
}

/// Whether a subscription change was a subscribe or an unsubscribe.
///
/// # Examples
///
/// ```
/// use crosswire_redis::SubscriptionOp;
/// assert_eq!(serde_json::to_string(&SubscriptionOp::Unsubscribe)?, r#""unsubscribe""#);
/// assert_eq!(serde_json::from_str::<SubscriptionOp>(r#""subscribe""#)?, SubscriptionOp::Subscribe);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionOp {
    /// `SUBSCRIBE`.
    Subscribe,
    /// `UNSUBSCRIBE`.
    Unsubscribe,
}

/// A subscription change that a node did not confirm, passed to the handlers
/// registered with
/// [`RedisBus::on_subscription_error`](crate::RedisBus::on_subscription_error)
/// (the original's `onRedisSubscriptionError` info). The bus keeps trying:
/// the change is applied when the node answers again or on its reconnection.
///
/// # Examples
///
/// ```
/// use crosswire_redis::{SubscriptionErrorEvent, SubscriptionOp};
/// let event = SubscriptionErrorEvent {
///     host: "127.0.0.1".into(),
///     port: 6379,
///     server_name: None,
///     channel: "ws:chat".into(),
///     event: SubscriptionOp::Subscribe,
///     error: "not confirmed within 2000 ms".into(),
/// };
/// let json = serde_json::to_value(&event).unwrap();
/// assert_eq!(json["event"], "subscribe");
/// assert_eq!(json["serverName"], serde_json::Value::Null);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionErrorEvent {
    /// The node's host.
    pub host: String,
    /// The node's port.
    pub port: u16,
    /// [`RedisBusConfig::server_name`](crate::RedisBusConfig::server_name).
    pub server_name: Option<String>,
    /// The channel.
    pub channel: String,
    /// Subscribe or unsubscribe.
    pub event: SubscriptionOp,
    /// What went wrong.
    pub error: String,
}
