//! The events a connector reports.

use crosswire_protocol::history::Joined;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Something that happened on a connector, as [`Connector::subscribe`]
/// streams it. Lifecycle events and pushed events are distinct variants: a
/// node pushing `{"event":"close"}` produces a [`ClientEvent::Push`], never a
/// [`ClientEvent::Close`].
///
/// [`Connector::subscribe`]: crate::Connector::subscribe
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
/// # let c = crosswire_client::Connector::new(crosswire_client::ConnectorOptions::new(&url))?;
/// # let mut events = c.subscribe();
/// # c.start();
/// # while events.recv().await.ok_or("ended")? != crosswire_client::ClientEvent::Open {}
/// use crosswire_client::ClientEvent;
/// c.emit("shout", &"hi")?;
/// while let Some(event) = events.recv().await {
///     match event {
///         ClientEvent::Push { event, payload } => {
///             assert_eq!((event.as_str(), payload), ("heard", Some("hi".into())));
///             break;
///         }
///         ClientEvent::Message(text) => assert!(text.contains("heard")),
///         other => panic!("unexpected {other:?}"),
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The connection opened (`open`). [`Connector::reconnecting`] is still
    /// `true` while the listeners of an open that follows a reconnection
    /// run; the retry count is reset right after.
    ///
    /// [`Connector::reconnecting`]: crate::Connector::reconnecting
    Open,
    /// An open connection closed (`close`): exactly one per [`Open`](Self::Open).
    /// `code` is the code of the node's close frame, 1005 for a close frame
    /// without one, 1006 for a connection that ended without a close frame;
    /// for a close this client started (manual close, reconnect) it is the
    /// code this client sent.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A connection attempt failed, or an open connection broke (`error`);
    /// the text describes the cause. An automatic reconnection follows.
    Error(String),
    /// Every text frame received (and every binary frame that is UTF-8),
    /// before it is interpreted (`message`).
    Message(String),
    /// The heartbeat timer fired; the heartbeat string is being sent (`ping`).
    Ping,
    /// The heartbeat reply arrived after this round-trip time (`pong`).
    Pong(Duration),
    /// A reconnection attempt was scheduled (`reconnect`).
    Reconnect(ReconnectInfo),
    /// A reconnection was refused because the repeat limit (the value) was
    /// reached (`repeat-limit`).
    RepeatLimit(u32),
    /// No heartbeat reply within the pong timeout (`pong-timeout`); the
    /// connection is being closed with 4002.
    PongTimeout,
    /// How the missed-message recovery of one room went (`recovery`; only
    /// with [`recovery`](crate::ConnectorOptions::recovery()) on): reported
    /// when the node puts the connection in a room with history, after the
    /// replayed messages of that room (if any) went to their handlers and
    /// before anything new of it. The node's `_cw_joined` frame, which never
    /// reaches handlers of pushed events nor this stream as a
    /// [`Push`](Self::Push). See [`Connector::on_recovery`].
    ///
    /// [`Connector::on_recovery`]: crate::Connector::on_recovery
    Recovery(Joined),
    /// The members of a room changed (`presence`; only with
    /// [`presence`](crate::ConnectorOptions::presence()) on): the node's
    /// `_cw_presence_state` (all members, `change` `None`) or
    /// `_cw_presence` (one joined or left) frame, which never reach handlers
    /// of pushed events. See [`Connector::on_presence`].
    ///
    /// [`Connector::on_presence`]: crate::Connector::on_presence
    Presence(PresenceReport),
    /// An event pushed by the node (`{"event":…,"payload":…}`).
    Push {
        /// The event name.
        event: String,
        /// The payload; `None` when the frame had none.
        payload: Option<Value>,
    },
}

impl ClientEvent {
    /// The lifecycle kind of this event; `None` for a pushed event.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::{ClientEvent, EventKind};
    /// assert_eq!(ClientEvent::Open.kind(), Some(EventKind::Open));
    /// assert_eq!(ClientEvent::RepeatLimit(3).kind(), Some(EventKind::RepeatLimit));
    /// let push = ClientEvent::Push { event: "close".into(), payload: None };
    /// assert_eq!(push.kind(), None); // a pushed event, even one named "close"
    /// ```
    pub fn kind(&self) -> Option<EventKind> {
        Some(match self {
            ClientEvent::Open => EventKind::Open,
            ClientEvent::Close { .. } => EventKind::Close,
            ClientEvent::Error(_) => EventKind::Error,
            ClientEvent::Message(_) => EventKind::Message,
            ClientEvent::Ping => EventKind::Ping,
            ClientEvent::Pong(_) => EventKind::Pong,
            ClientEvent::Reconnect(_) => EventKind::Reconnect,
            ClientEvent::RepeatLimit(_) => EventKind::RepeatLimit,
            ClientEvent::PongTimeout => EventKind::PongTimeout,
            ClientEvent::Recovery(_) => EventKind::Recovery,
            ClientEvent::Presence(_) => EventKind::Presence,
            ClientEvent::Push { .. } => return None,
        })
    }
}

/// The connector's own (lifecycle) events, for
/// [`Listen::on_kind`](crate::Listen::on_kind) and
/// [`Connector::off_kind`](crate::Connector::off_kind).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions, EventKind};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
/// c.listen().on_kind(EventKind::Error, |event| eprintln!("{event:?}"));
/// assert_eq!(c.off_kind(EventKind::Error), 1);
/// assert_eq!(EventKind::PongTimeout.to_string(), "pong-timeout");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`ClientEvent::Open`].
    Open,
    /// [`ClientEvent::Close`].
    Close,
    /// [`ClientEvent::Error`].
    Error,
    /// [`ClientEvent::Message`].
    Message,
    /// [`ClientEvent::Ping`].
    Ping,
    /// [`ClientEvent::Pong`].
    Pong,
    /// [`ClientEvent::Reconnect`].
    Reconnect,
    /// [`ClientEvent::RepeatLimit`].
    RepeatLimit,
    /// [`ClientEvent::PongTimeout`].
    PongTimeout,
    /// [`ClientEvent::Recovery`].
    Recovery,
    /// [`ClientEvent::Presence`].
    Presence,
}

impl EventKind {
    /// The original's event name (`open`, `repeat-limit`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EventKind;
    /// assert_eq!(EventKind::Open.name(), "open");
    /// assert_eq!(EventKind::RepeatLimit.name(), "repeat-limit");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Close => "close",
            EventKind::Error => "error",
            EventKind::Message => "message",
            EventKind::Ping => "ping",
            EventKind::Pong => "pong",
            EventKind::Reconnect => "reconnect",
            EventKind::RepeatLimit => "repeat-limit",
            EventKind::PongTimeout => "pong-timeout",
            EventKind::Recovery => "recovery",
            EventKind::Presence => "presence",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduled reconnection attempt (the original's `{repeat, timeout}`).
///
/// # Examples
///
/// ```
/// use crosswire_client::{ConnectorOptions, ReconnectInfo};
/// use std::time::Duration;
/// let opts = ConnectorOptions { jitter: false, ..ConnectorOptions::new("ws://h") };
/// // What the first `reconnect` event reports with the default schedule.
/// let info = ReconnectInfo { attempt: 1, delay: opts.reconnect_delay(1, 0.0) };
/// assert_eq!(info.delay, Duration::from_secs(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectInfo {
    /// The attempt number since the last successful open (1-based).
    pub attempt: u32,
    /// The delay before the attempt.
    pub delay: Duration,
}

/// Identifies one registered listener, for [`Connector::off`](crate::Connector::off).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions, HandlerId};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?;
/// let a: HandlerId = c.on_open(|| {});
/// let b: HandlerId = c.on("news", || {})?;
/// assert_ne!(a, b);
/// assert!(c.off(a) && c.off(b));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub(crate) u64);

/// A room's members after a change (see [`ClientEvent::Presence`]).
///
/// # Examples
///
/// ```
/// use crosswire_client::PresenceReport;
/// let r = PresenceReport { ns: "chat".into(), room: "r1".into(), members: vec![], change: None };
/// assert!(r.members.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceReport {
    /// The namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// Every member, sorted by id then node.
    pub members: Vec<crosswire_protocol::presence::Member>,
    /// The member that joined or left; `None` when the whole list came.
    pub change: Option<(
        crosswire_protocol::presence::Op,
        crosswire_protocol::presence::Member,
    )>,
}
