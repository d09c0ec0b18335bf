//! One Redis node of the bus: its identity, flags and counters.

use crate::config::RedisBusConfig;
use crate::error::RedisBusError;
use crate::events::ConnKind;
use crate::job::Job;
use crate::node_id::NodeId;
use crosswire::bus::ByteBudget;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A snapshot of one Redis node, from [`RedisBus::nodes`](crate::RedisBus::nodes).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), crosswire_redis::RedisBusError> {
/// use crosswire_redis::{RedisBus, RedisBusConfig};
/// // Nothing listens on port 1: the node stays down and is retried in the background.
/// let bus = RedisBus::connect(RedisBusConfig::new(["redis://127.0.0.1:1"])).await?;
/// use crosswire_redis::NodeId;
/// let nodes = bus.nodes();
/// assert_eq!(nodes.len(), 1);
/// let node = &nodes[0];
/// assert_eq!(node.id, NodeId::new(0));
/// assert_eq!((node.host.as_str(), node.port), ("127.0.0.1", 1));
/// assert!(!node.publisher_healthy && !node.subscriber_healthy && !node.publish_target);
/// assert_eq!(node.published, 0);
/// assert!(node.error.as_deref().is_some_and(|e| e.contains("refused")));
/// # crosswire::bus::Bus::close(&bus).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: NodeId,
    /// Its URL, with any password removed.
    pub url: String,
    /// Its host (for a Unix socket, the path).
    pub host: String,
    /// Its port (0 for a Unix socket).
    pub port: u16,
    /// The publisher connection is up and its last PING was answered within
    /// `ping_timeout`.
    pub publisher_healthy: bool,
    /// The subscriber connection is up, answering, and has confirmed every
    /// channel the bus was subscribed to when it (re)connected.
    pub subscriber_healthy: bool,
    /// The last measured PING round trip of the publisher, if any.
    pub latency: Option<Duration>,
    /// Whether publishes may go to this node now: both connections healthy.
    pub publish_target: bool,
    /// PUBLISH commands this node acknowledged.
    pub published: u64,
    /// Publishes that failed on this node (error, refusal, full queue, no
    /// answer within `ping_timeout`, removal) and were handed to another node.
    pub failovers: u64,
    /// Messages received from this node.
    pub received: u64,
    /// Why the node is not a publish target: the last connection error
    /// (e.g. `Connection refused (os error 111)` when nothing listens at its
    /// address) or health failure. `None` before the first connection
    /// attempt ended, and again once the node is a publish target.
    pub error: Option<String>,
}

/// Why a node is unusable, since when, and when that was last logged at warn
/// level.
#[derive(Debug, Default)]
pub(crate) struct Trouble {
    /// The last reason; `None` while the node is usable.
    pub(crate) error: Option<String>,
    /// When it became unusable.
    pub(crate) since: Option<Instant>,
    /// When it was last logged at warn level.
    pub(crate) warned: Option<Instant>,
}

/// What the subscriber of a node has confirmed, watched by pending
/// `subscribe` / `unsubscribe` calls.
#[derive(Debug, Default)]
pub(crate) struct SubProgress {
    /// The subscriber is connected and answering.
    pub(crate) live: bool,
    /// The version of the bus's channel set it last matched exactly
    /// (0 after a reconnection, until the first resubscription completes).
    pub(crate) synced: u64,
    /// Increments with every error recorded below.
    pub(crate) error_seq: u64,
    /// The last unconfirmed change per channel: (error_seq, message).
    pub(crate) errors: HashMap<Arc<str>, (u64, String)>,
}

/// The shared state of one node, owned by the bus and its two tasks.
pub(crate) struct NodeShared {
    pub(crate) id: NodeId,
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client: redis::Client,
    pub(crate) jobs: mpsc::Sender<Job>,
    /// The payload bytes of the jobs queued on this node or in flight.
    pub(crate) jobs_bytes: ByteBudget,
    pub(crate) pub_healthy: AtomicBool,
    pub(crate) sub_healthy: AtomicBool,
    /// PUBLISHes sent on the connection and not yet answered.
    pub(crate) in_flight: std::sync::atomic::AtomicUsize,
    /// The first connection attempt of the publisher / subscriber finished.
    pub(crate) pub_attempted: AtomicBool,
    pub(crate) sub_attempted: AtomicBool,
    /// PING round trip in µs; `u64::MAX` until measured.
    latency_us: AtomicU64,
    /// Asks the publisher to PING now (e.g. after its subscriber lost its
    /// connection).
    pub(crate) probe: Notify,
    pub(crate) progress: watch::Sender<SubProgress>,
    pub(crate) published: AtomicU64,
    /// Publishes handed from this node to another.
    pub(crate) failovers: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) removed: AtomicBool,
    pub(crate) trouble: Mutex<Trouble>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl NodeShared {
    /// A node for `url` (not started), and the receiving end of its publish
    /// queue.
    pub(crate) fn new(
        id: NodeId,
        url: &str,
        config: &RedisBusConfig,
        cancel: CancellationToken,
    ) -> Result<(Arc<Self>, mpsc::Receiver<Job>), RedisBusError> {
        let shown = redact(url);
        let invalid = |e: redis::RedisError| RedisBusError::InvalidUrl {
            url: shown.clone(),
            message: e.to_string(),
        };
        crate::tls::check_url(url).map_err(|message| RedisBusError::InvalidUrl {
            url: shown.clone(),
            message,
        })?;
        let info = redis::Client::open(url)
            .map_err(invalid)?
            .get_connection_info()
            .clone();
        // The original issues no CLIENT SETINFO; neither do we (`docs/protocol.md` §6.1).
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        let (host, port) = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
            redis::ConnectionAddr::Unix(path) => (path.display().to_string(), 0),
            #[allow(unreachable_patterns)]
            _ => ("Unknown Host".to_owned(), 0),
        };
        let client = crate::tls::client(info, config.tls.as_ref(), &shown)?;
        let (jobs, rx) = mpsc::channel(config.publish_queue.max(1));
        let node = Arc::new(Self {
            id,
            url: shown,
            host,
            port,
            client,
            jobs,
            jobs_bytes: ByteBudget::new(config.publish_queue_bytes),
            pub_healthy: AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            sub_healthy: AtomicBool::new(false),
            pub_attempted: AtomicBool::new(false),
            sub_attempted: AtomicBool::new(false),
            latency_us: AtomicU64::new(u64::MAX),
            probe: Notify::new(),
            progress: watch::Sender::new(SubProgress::default()),
            published: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            received: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            trouble: Mutex::new(Trouble::default()),
            cancel,
            tasks: Mutex::new(Vec::new()),
        });
        Ok((node, rx))
    }

    pub(crate) fn flag(&self, kind: ConnKind) -> &AtomicBool {
        match kind {
            ConnKind::Publisher => &self.pub_healthy,
            ConnKind::Subscriber => &self.sub_healthy,
        }
    }

    pub(crate) fn healthy(&self, kind: ConnKind) -> bool {
        self.flag(kind).load(Ordering::Acquire)
    }

    /// Whether publishes may go here now.
    pub(crate) fn is_target(&self) -> bool {
        self.pub_healthy.load(Ordering::Acquire)
            && self.sub_healthy.load(Ordering::Acquire)
            && !self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn attempted(&self) -> bool {
        (self.pub_attempted.load(Ordering::Acquire) && self.sub_attempted.load(Ordering::Acquire))
            || self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn set_latency(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        self.latency_us
            .store(us.min(u64::MAX - 1), Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub(crate) fn status(&self) -> NodeStatus {
        NodeStatus {
            id: self.id,
            url: self.url.clone(),
            host: self.host.clone(),
            port: self.port,
            publisher_healthy: self.healthy(ConnKind::Publisher),
            subscriber_healthy: self.healthy(ConnKind::Subscriber),
            latency: self.latency(),
            publish_target: self.is_target(),
            published: self.published.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            error: self.trouble.lock().error.clone(),
        }
    }

    /// `host:port`, for logs and error messages.
    pub(crate) fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The URL with its password (if any) removed, for logs and status.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(None).is_ok() {
                parsed.to_string()
            } else {
                "<invalid url>".to_owned()
            }
        }
        Ok(_) => url.to_owned(),
        Err(_) if url.contains('@') => "<url with credentials>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

/// The reconnection delay after `failures` failed attempts in a row: 50 ms
/// doubling per failure, capped, then jittered down by up to half.
pub(crate) fn backoff(failures: u32, config: &RedisBusConfig) -> Duration {
    backoff_capped(failures, config.reconnect_backoff_max)
}

/// [`backoff`] with the cap given.
pub(crate) fn backoff_capped(failures: u32, cap: Duration) -> Duration {
    let cap = cap.max(Duration::from_millis(1));
    let base = Duration::from_millis(50)
        .saturating_mul(1u32 << failures.min(16))
        .min(cap);
    base.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://:secret@127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let config = RedisBusConfig::default();
        assert!(backoff(0, &config) <= Duration::from_millis(50));
        assert!(backoff(0, &config) >= Duration::from_millis(25));
        assert!(backoff(30, &config) <= config.reconnect_backoff_max);
        assert!(backoff(30, &config) >= config.reconnect_backoff_max / 2);
    }
}
