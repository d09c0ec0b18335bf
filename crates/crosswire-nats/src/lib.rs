//! The NATS bus of crosswire: [`NatsBus`], a [`crosswire`] bus over a NATS
//! server (or a NATS cluster: give several URLs), on the async-nats client.
//!
//! # The model
//!
//! Each bus channel is a NATS subject (`cw.` followed by the channel, with
//! any character NATS reserves written as `~XX`): a publish goes to the
//! server, which hands it to every subscriber of the subject. A node
//! subscribes to the channels it needs, exactly as on the Redis bus; every
//! send path, cross-server call and membership announcement works the same.
//!
//! * Publishes are handed to the client in call order by one task, through
//!   a queue bounded in messages and bytes; a full queue refuses the
//!   publish (counted).
//! * A subscription is confirmed by a round trip to the server (`flush`),
//!   so that what is published after [`subscribe`](Bus::subscribe) returns
//!   reaches this endpoint.
//! * The client reconnects by itself when the server goes away and
//!   subscribes again; **core NATS delivers at most once**: what is
//!   published while a subscriber is disconnected is lost for it. The
//!   reconnections are counted ([`BusHealth::reconnects`]) so that a loss is
//!   never silent.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crosswire::bus::Bus;
//! use crosswire_nats::{NatsBus, NatsBusConfig};
//!
//! let bus = NatsBus::connect(NatsBusConfig::new(["nats://127.0.0.1:4222"])).await?;
//! let mut incoming = bus.take_incoming().ok_or("taken")?;
//! bus.subscribe("csbp:server_bridge").await?;
//! bus.publish("csbp:server_bridge", "hello".into()).await?;
//! let message = incoming.recv().await.ok_or("closed")?;
//! assert_eq!(&message.payload[..], b"hello");
//! # Ok(()) }
//! ```

use bytes::Bytes;
use crosswire::bus::{Bus, BusError, BusHealth, BusMessage, BusNodeHealth, ByteBudget, Charge};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Settings of a [`NatsBus`].
///
/// # Examples
///
/// ```
/// use crosswire_nats::NatsBusConfig;
/// let c = NatsBusConfig::new(["nats://127.0.0.1:4222"]);
/// assert_eq!(c.servers, ["nats://127.0.0.1:4222"]);
/// assert_eq!(c.incoming_capacity, 65_536);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBusConfig {
    /// NATS server URLs (`nats://host:port`); several for a NATS cluster.
    pub servers: Vec<String>,
    /// A name for the connection, shown by the server (the node's name).
    pub name: Option<String>,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Received messages the node has not handled yet, at most.
    pub incoming_capacity: usize,
    /// Bytes of those, at most (default 64 MiB).
    pub incoming_bytes: usize,
    /// Publishes waiting for the client, at most.
    pub publish_queue: usize,
    /// Bytes of those, at most (default 64 MiB).
    pub publish_queue_bytes: usize,
}

impl NatsBusConfig {
    /// Defaults for the given servers.
    ///
    /// # Examples
    ///
    /// See [`NatsBusConfig`].
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NatsBusConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            name: None,
            connect_timeout: Duration::from_secs(2),
            incoming_capacity: 65_536,
            incoming_bytes: crosswire::bus::DEFAULT_INCOMING_BYTES,
            publish_queue: 65_536,
            publish_queue_bytes: 64 << 20,
        }
    }
}

/// Why a [`NatsBus`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsBusError {
    /// No server URL was given.
    #[error("no NATS server given")]
    NoServer,
    /// The client could not connect.
    #[error("cannot connect to NATS ({servers}): {message}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        message: String,
    },
}

/// The subject of a bus channel: `cw.` and the channel, with the characters
/// NATS gives a meaning (`.`, `*`, `>`, whitespace) and `~` written `~XX`.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_nats::subject("csbp:server_bridge"), "cw.csbp:server_bridge");
/// assert_eq!(crosswire_nats::subject("ws:room:a.b c"), "cw.ws:room:a~2Eb~20c");
/// ```
pub fn subject(channel: &str) -> String {
    let mut s = String::with_capacity(channel.len() + 3);
    s.push_str("cw.");
    for c in channel.chars() {
        match c {
            '.' | '*' | '>' | '~' => s.push_str(&format!("~{:02X}", c as u32)),
            c if c.is_whitespace() || c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    s.push_str(&format!("~{b:02X}"));
                }
            }
            c => s.push(c),
        }
    }
    s
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

struct Publish {
    subject: String,
    payload: Bytes,
    done: oneshot::Sender<Result<(), BusError>>,
    _charge: Charge,
}

struct Inner {
    config: NatsBusConfig,
    client: async_nats::Client,
    publishes: mpsc::Sender<Publish>,
    publish_bytes: ByteBudget,
    incoming_tx: mpsc::Sender<BusMessage>,
    incoming_bytes: ByteBudget,
    incoming_rx: Mutex<Option<mpsc::Receiver<BusMessage>>>,
    subs: Mutex<HashMap<String, JoinHandle<()>>>,
    publisher: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// A crosswire bus over NATS. Cheap to clone; clones share the connection.
///
/// # Examples
///
/// See the [crate documentation](crate).
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("servers", &self.inner.config.servers)
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects to the servers (waiting at most `connect_timeout` for the
    /// first connection) and starts the publisher.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), crosswire_nats::NatsBusError> {
    /// let bus = crosswire_nats::NatsBus::connect(crosswire_nats::NatsBusConfig::new(["nats://127.0.0.1:4222"])).await?;
    /// # let _ = bus; Ok(()) }
    /// ```
    pub async fn connect(config: NatsBusConfig) -> Result<NatsBus, NatsBusError> {
        if config.servers.is_empty() {
            return Err(NatsBusError::NoServer);
        }
        let counters = Arc::new(Counters::default());
        let events = counters.clone();
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(config.connect_timeout)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            events.reconnects.fetch_add(1, Ordering::Relaxed);
                            tracing::info!("nats bus connected");
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("nats bus disconnected: messages published meanwhile are lost for this node");
                        }
                        other => tracing::debug!(event = %other, "nats bus event"),
                    }
                }
            });
        if let Some(name) = &config.name {
            options = options.name(name.clone());
        }
        let servers = config.servers.join(",");
        let client = options
            .connect(config.servers.as_slice())
            .await
            .map_err(|e| NatsBusError::Connect {
                servers: servers.clone(),
                message: e.to_string(),
            })?;
        let (publishes, rx) = mpsc::channel(config.publish_queue.max(1));
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
        let inner = Arc::new(Inner {
            publish_bytes: ByteBudget::new(config.publish_queue_bytes),
            incoming_bytes: ByteBudget::new(config.incoming_bytes),
            config,
            client: client.clone(),
            publishes,
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            subs: Mutex::new(HashMap::new()),
            publisher: Mutex::new(None),
            counters,
        });
        let task = tokio::spawn(publisher(client, rx, inner.counters.clone()));
        *inner.publisher.lock() = Some(task);
        Ok(NatsBus { inner })
    }
}

/// Hands the publishes to the client in call order.
async fn publisher(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<Publish>,
    counters: Arc<Counters>,
) {
    while let Some(p) = rx.recv().await {
        let outcome = client.publish(p.subject, p.payload).await.map_err(|e| {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            BusError::Publish(e.to_string())
        });
        if outcome.is_ok() {
            counters.published.fetch_add(1, Ordering::Relaxed);
        }
        let _ = p.done.send(outcome);
    }
}

impl Bus for NatsBus {
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        let inner = &self.inner;
        let Some(charge) = inner.publish_bytes.reserve(payload.len()) else {
            inner.counters.failures.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async { Err(BusError::Publish("publish queue full (bytes)".into())) });
        };
        let (done, rx) = oneshot::channel();
        let p = Publish {
            subject: subject(channel),
            payload,
            done,
            _charge: charge,
        };
        if inner.publishes.try_send(p).is_err() {
            inner.counters.failures.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async { Err(BusError::Publish("publish queue full".into())) });
        }
        Box::pin(async move { rx.await.unwrap_or(Err(BusError::Closed)) })
    }

    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        let inner = self.inner.clone();
        let channel: Arc<str> = channel.into();
        Box::pin(async move {
            if inner.subs.lock().contains_key(&*channel) {
                return Ok(());
            }
            let fail = |e: &dyn std::fmt::Display| BusError::Subscription {
                channel: channel.to_string(),
                message: e.to_string(),
            };
            let mut sub = inner
                .client
                .subscribe(subject(&channel))
                .await
                .map_err(|e| fail(&e))?;
            // The server has the subscription once it answered a ping.
            inner.client.flush().await.map_err(|e| fail(&e))?;
            let forward = {
                let inner = inner.clone();
                let channel = channel.clone();
                tokio::spawn(async move {
                    while let Some(m) = sub.next().await {
                        let Some(charge) = inner.incoming_bytes.reserve(m.payload.len()) else {
                            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let payload = charge.attach(m.payload);
                        let msg = BusMessage {
                            channel: channel.clone(),
                            payload,
                        };
                        if inner.incoming_tx.try_send(msg).is_err() {
                            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            };
            if let Some(old) = inner.subs.lock().insert(channel.to_string(), forward) {
                old.abort();
            }
            Ok(())
        })
    }

    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        let task = self.inner.subs.lock().remove(channel);
        let client = self.inner.client.clone();
        Box::pin(async move {
            if let Some(task) = task {
                // Dropping the subscriber unsubscribes.
                task.abort();
                let _ = task.await;
                client
                    .flush()
                    .await
                    .map_err(|e| BusError::Publish(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>> {
        self.inner.incoming_rx.lock().take()
    }

    fn health(&self) -> BusHealth {
        let c = &self.inner.counters;
        let connected = matches!(
            self.inner.client.connection_state(),
            async_nats::connection::State::Connected
        );
        BusHealth {
            healthy: connected,
            nodes: vec![BusNodeHealth {
                name: self.inner.config.servers.join(","),
                healthy: connected,
                latency_ms: None,
                published: c.published.load(Ordering::Relaxed),
                failovers: 0,
                error: (!connected).then(|| "not connected".to_owned()),
            }],
            publish_failures: c.failures.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed).saturating_sub(1),
            in_doubt: 0,
        }
    }

    fn close(&self) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            for (_, task) in inner.subs.lock().drain() {
                task.abort();
            }
            let _ = inner.client.flush().await;
            if let Some(task) = inner.publisher.lock().take() {
                task.abort();
            }
        })
    }
}
