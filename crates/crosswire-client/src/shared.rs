//! What the connector handles and the connection task share: the
//! connection state, the listener registry, the application state, and the
//! view of one pushed event that handlers are called with.

use crate::command::Command;
use crate::event::HandlerId;
use crate::options::ConnectorOptions;
use crate::recovery::{Meta, Positions};
use crate::registry::Registry;
use crosswire_protocol::ids::CallbackIds;
use parking_lot::Mutex;
use serde_json::Value;
use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The state of the connection, as WebSocket's `readyState`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("echo", |_socket: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
/// #     if let Some(reply) = reply {
/// #         let _ = reply.send(&payload);
/// #     }
/// # })?;
/// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// use crosswire_client::{ClientEvent, Connector, ConnectorOptions, ReadyState};
/// let c = Connector::new(ConnectorOptions::new(url))?;
/// assert_eq!(c.state(), ReadyState::Closed);
/// let mut events = c.subscribe();
/// c.start();
/// while events.recv().await != Some(ClientEvent::Open) {}
/// assert_eq!(c.state(), ReadyState::Open);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// A connection attempt is in progress.
    Connecting,
    /// The connection is open: emits are sent.
    Open,
    /// This client sent a close frame and waits for the node's answer.
    Closing,
    /// No connection (not started, closed, or waiting for a reconnection).
    Closed,
}

impl ReadyState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ReadyState::Connecting,
            1 => ReadyState::Open,
            2 => ReadyState::Closing,
            _ => ReadyState::Closed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ReadyState::Connecting => 0,
            ReadyState::Open => 1,
            ReadyState::Closing => 2,
            ReadyState::Closed => 3,
        }
    }
}

/// The application state given to
/// [`ConnectorBuilder::state`](crate::ConnectorBuilder::state).
pub(crate) type AppState = Arc<dyn Any + Send + Sync>;

/// A registered handler of pushed events, type-erased.
pub(crate) type PushFn = Arc<dyn Fn(&EventContext<'_>) -> Result<(), Rejection> + Send + Sync>;

/// Room members as the connector knows them (presence on).
pub(crate) type PresenceRooms = std::collections::HashMap<
    (String, String),
    std::collections::BTreeMap<(String, String), crosswire_protocol::presence::Member>,
>;

/// State shared by the handles and the task.
pub struct Shared {
    pub(crate) options: ConnectorOptions,
    pub(crate) url: String,
    pub(crate) ids: CallbackIds,
    pub(crate) registry: Mutex<Registry<PushFn>>,
    pub(crate) app_state: Option<AppState>,
    /// The last position in every room (recovery on).
    pub(crate) positions: Mutex<Positions>,
    /// The members of every room, by (ns, room), then by (node, id)
    /// (presence on).
    pub(crate) rooms: Mutex<PresenceRooms>,
    state: AtomicU8,
    repeat: AtomicU32,
    ping_interval_ns: AtomicU64,
    next_handler: AtomicU64,
    rejected: AtomicU64,
}

impl Shared {
    pub(crate) fn new(options: ConnectorOptions, app_state: Option<AppState>) -> Self {
        Shared {
            url: options.connection_url(),
            ids: CallbackIds::client(),
            registry: Mutex::new(Registry::default()),
            app_state,
            positions: Mutex::new(Positions::default()),
            rooms: Mutex::new(PresenceRooms::new()),
            state: AtomicU8::new(ReadyState::Closed.as_u8()),
            repeat: AtomicU32::new(0),
            ping_interval_ns: AtomicU64::new(duration_ns(options.ping_interval)),
            next_handler: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
            options,
        }
    }

    pub(crate) fn state(&self) -> ReadyState {
        ReadyState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: ReadyState) {
        self.state.store(state.as_u8(), Ordering::Release);
    }

    pub(crate) fn repeat(&self) -> u32 {
        self.repeat.load(Ordering::Acquire)
    }

    pub(crate) fn set_repeat(&self, repeat: u32) {
        self.repeat.store(repeat, Ordering::Release);
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_nanos(self.ping_interval_ns.load(Ordering::Acquire))
    }

    pub(crate) fn set_ping_interval(&self, interval: Duration) {
        self.ping_interval_ns
            .store(duration_ns(interval), Ordering::Release);
    }

    pub(crate) fn handler_id(&self) -> HandlerId {
        HandlerId(self.next_handler.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts one pushed payload a handler refused.
    pub(crate) fn count_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One pushed event, as the handlers' arguments are taken from it.
pub struct EventContext<'a> {
    pub(crate) event: &'a str,
    /// The payload; `Null` when the frame had none.
    pub(crate) payload: &'a Value,
    /// The message's position, if it has one.
    pub(crate) meta: &'a Meta,
    pub(crate) shared: &'a Arc<Shared>,
    /// The task's own handle on the command channel: weak, so that the
    /// registry never keeps the connector alive.
    pub(crate) commands: &'a mpsc::WeakUnboundedSender<Command>,
}

/// Why a handler was not called.
pub enum Rejection {
    /// The payload did not deserialize into the handler's type.
    Decode(serde_json::Error),
    /// Something the handler asks for is not available (the connector is
    /// going away, or no application state of the type).
    Unavailable(&'static str),
}
