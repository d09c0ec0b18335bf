//! The in-process bus.

use super::{Bus, BusError, BusMessage, ByteBudget, DEFAULT_INCOMING_BYTES};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Default bound of each endpoint's receive queue, in messages.
const QUEUE: usize = 65_536;

struct Endpoint {
    tx: mpsc::Sender<BusMessage>,
    /// The bytes of the messages in the queue (and being handled).
    budget: ByteBudget,
    channels: RwLock<HashSet<Arc<str>>>,
    dropped: AtomicU64,
}

struct Hub {
    history: Arc<crate::history::MemoryHistory>,
    endpoints: RwLock<HashMap<u64, Arc<Endpoint>>>,
    next: AtomicU64,
    queue: usize,
    queue_bytes: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            history: Arc::default(),
            endpoints: RwLock::default(),
            next: AtomicU64::new(0),
            queue: QUEUE,
            queue_bytes: DEFAULT_INCOMING_BYTES,
        }
    }
}

/// A hub that connects the nodes of one process: every [`MemoryBus`] made by
/// the same hub sees the others' publications.
///
/// # Examples
///
/// ```
/// # #[tokio::main] async fn main() -> crosswire::Result<()> {
/// use crosswire::bus::MemoryHub;
/// let hub = MemoryHub::new();
/// let a = crosswire::Node::builder().server_name("a").bus(hub.bus()).build()?;
/// let b = crosswire::Node::builder().server_name("b").bus(hub.bus()).build()?;
/// # let _ = (a, b); Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryHub {
    hub: Arc<Hub>,
}

impl MemoryHub {
    /// A new, empty hub.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::bus::MemoryHub;
    /// let hub = MemoryHub::new();
    /// let node = crosswire::Node::builder().server_name("n1").bus(hub.bus()).build()?;
    /// node.ready().await;
    /// assert!(node.subscribed_channels().contains(&"csbp:server_bridge".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty hub whose endpoints queue at most `messages` messages
    /// and `bytes` bytes of payload each (default 65,536 and
    /// [`DEFAULT_INCOMING_BYTES`]); what arrives over either bound is
    /// dropped and counted in [`MemoryBus::dropped`]. A message is counted
    /// until the node has handled it; one bigger than `bytes` still passes
    /// an empty queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::bus::{Bus, MemoryHub};
    /// let hub = MemoryHub::with_limits(100, 10);
    /// let (a, b) = (hub.bus(), hub.bus());
    /// let mut incoming = b.take_incoming().ok_or("taken")?;
    /// b.subscribe("c").await?;
    /// a.publish("c", "123456".into()).await?;
    /// a.publish("c", "123456".into()).await?; // 12 bytes queued > 10
    /// assert_eq!(b.dropped(), 1);
    /// let first = incoming.recv().await.ok_or("closed")?;
    /// drop(first); // handled: its bytes are free again
    /// a.publish("c", "123456".into()).await?;
    /// assert_eq!(b.dropped(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_limits(messages: usize, bytes: usize) -> Self {
        MemoryHub {
            hub: Arc::new(Hub {
                queue: messages.max(1),
                queue_bytes: bytes,
                ..Hub::default()
            }),
        }
    }

    /// A new endpoint on this hub, for one node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::bus::{Bus, MemoryHub};
    /// let hub = MemoryHub::new();
    /// let (a, b) = (hub.bus(), hub.bus());
    /// let mut incoming = b.take_incoming().ok_or("taken")?;
    /// b.subscribe("news").await?;
    /// a.publish("news", "hello".into()).await?;
    /// assert_eq!(&incoming.recv().await.ok_or("closed")?.payload[..], b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn bus(&self) -> MemoryBus {
        let (tx, rx) = mpsc::channel(self.hub.queue);
        let id = self.hub.next.fetch_add(1, Ordering::Relaxed);
        let endpoint = Arc::new(Endpoint {
            tx,
            budget: ByteBudget::new(self.hub.queue_bytes),
            channels: RwLock::new(HashSet::new()),
            dropped: AtomicU64::new(0),
        });
        self.hub.endpoints.write().insert(id, endpoint.clone());
        MemoryBus {
            hub: self.hub.clone(),
            id,
            endpoint,
            rx: Mutex::new(Some(rx)),
        }
    }
}

/// One node's endpoint on a [`MemoryHub`].
///
/// Delivery is synchronous and ordered: `publish` puts the message in every
/// subscribed endpoint's queue before it returns. A queue that is full
/// in messages or in bytes (a node that stopped reading) drops the message
/// and counts it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::bus::{Bus, MemoryHub};
/// let bus = MemoryHub::new().bus();
/// let mut incoming = bus.take_incoming().ok_or("taken")?;
/// assert!(bus.take_incoming().is_none());
/// bus.subscribe("jobs").await?;
/// bus.publish("jobs", "job-1".into()).await?;
/// let message = incoming.recv().await.ok_or("closed")?;
/// assert_eq!((&*message.channel, &message.payload[..]), ("jobs", &b"job-1"[..]));
/// bus.unsubscribe("jobs").await?;
/// bus.publish("jobs", "job-2".into()).await?;
/// assert!(incoming.try_recv().is_err());
/// # Ok(())
/// # }
/// ```
pub struct MemoryBus {
    hub: Arc<Hub>,
    id: u64,
    endpoint: Arc<Endpoint>,
    rx: Mutex<Option<mpsc::Receiver<BusMessage>>>,
}

impl MemoryBus {
    /// Messages this endpoint could not take because its queue was full (in
    /// messages or in bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire::bus::{Bus, MemoryHub};
    /// let bus = MemoryHub::new().bus();
    /// bus.subscribe("c").await?;
    /// bus.publish("c", "x".into()).await?;
    /// assert_eq!(bus.dropped(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.endpoint.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        self.hub.endpoints.write().remove(&self.id);
    }
}

impl Bus for MemoryBus {
    fn publish(&self, channel: &str, payload: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        let result = {
            {
                let channel: Arc<str> = channel.into();
                for endpoint in self.hub.endpoints.read().values() {
                    if !endpoint.channels.read().contains(&channel) {
                        continue;
                    }
                    let Some(charge) = endpoint.budget.reserve(payload.len()) else {
                        endpoint.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let msg = BusMessage {
                        channel: channel.clone(),
                        payload: charge.attach(payload.clone()),
                    };
                    if endpoint.tx.try_send(msg).is_err() {
                        endpoint.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<(), BusError>(())
            }
        };
        Box::pin(async move { result })
    }

    fn subscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.endpoint.channels.write().insert(channel.into());
        Box::pin(async { Ok(()) })
    }

    fn unsubscribe(&self, channel: &str) -> BoxFuture<'static, Result<(), BusError>> {
        self.endpoint.channels.write().remove(channel);
        Box::pin(async { Ok(()) })
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<BusMessage>> {
        self.rx.lock().take()
    }

    fn history(&self) -> Option<crate::history::SharedHistory> {
        Some(crate::history::SharedHistory::Memory(
            self.hub.history.clone(),
        ))
    }

    fn health(&self) -> super::BusHealth {
        super::BusHealth {
            healthy: true,
            dropped: self.dropped(),
            ..super::BusHealth::default()
        }
    }
}
