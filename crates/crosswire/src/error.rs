//! The one error type of crosswire.

use crosswire_protocol::channels::ChannelError;

/// Everything that can go wrong in a crosswire call.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::Error;
/// let node = crosswire::Node::builder().build()?;
/// let empty = node.on("", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {});
/// assert!(matches!(empty, Err(Error::InvalidArgument("event must be a non-empty string"))));
/// let reserved = node.on("close", |_: crosswire::Socket, _: serde_json::Value, _: Option<crosswire::Reply>| async {});
/// assert!(matches!(reserved, Err(Error::ReservedEvent(name)) if name == "close"));
/// assert!(matches!(node.join_room("broadcast", "r1", "u1"), Err(Error::Channel(_))));
/// assert!(matches!(node.publish_raw("jobs", &1), Err(Error::NoBus)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was empty or malformed; the message names it, with the
    /// original's wording (e.g. `event must be a non-empty string`).
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// A client-event handler was registered under a name that is reserved
    /// for system events (`connection`, `close`, ...) or for the protocol.
    #[error("event name {0:?} is reserved; use the node's on_* system-event methods instead")]
    ReservedEvent(String),
    /// A room namespace or prefix is not usable as a bus channel.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A payload could not be serialized to JSON.
    #[error("payload could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// Binding or serving the WebSocket endpoint failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The socket is closed; nothing was sent.
    #[error("socket is closed")]
    SocketClosed,
    /// The node has been shut down.
    #[error("node is shut down")]
    Shutdown,
    /// The operation needs a bus and the node has none (a cluster of one).
    #[error("the node has no bus")]
    NoBus,
    /// No cross-server call of that callback id is waiting on this node.
    #[error("no cross-server call is registered under that callback id")]
    UnknownCall,
    /// A bus envelope could not be encoded.
    #[error("bus envelope could not be encoded: {0}")]
    Envelope(#[from] crosswire_protocol::envelope::EnvelopeError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A handler asks for a [`State`](crate::handler::State) of a type the
    /// node was not given with [`NodeBuilder::state`](crate::NodeBuilder::state).
    #[error("no state of type {0} was given to the node builder")]
    MissingState(&'static str),
    /// A cross-server call was refused: the node already waits on
    /// `max_pending_cross_server_calls` calls. Nothing was published.
    #[error("too many pending cross-server calls (limit {limit})")]
    TooManyPendingCalls {
        /// The node's `max_pending_cross_server_calls`.
        limit: usize,
    },
    /// An encoded bus message exceeded `max_bus_message_size`; nothing was
    /// published.
    #[error("bus message of {size} bytes exceeds max_bus_message_size ({max} bytes)")]
    BusMessageTooLarge {
        /// The encoded message's size in bytes.
        size: usize,
        /// The node's `max_bus_message_size`.
        max: usize,
    },
}

/// `Result` with crosswire's [`Error`].
///
/// # Examples
///
/// ```
/// fn event_name(name: &str) -> crosswire::Result<&str> {
///     if crosswire::events::is_reserved(name) {
///         return Err(crosswire::Error::ReservedEvent(name.to_owned()));
///     }
///     Ok(name)
/// }
/// assert_eq!(event_name("say").ok(), Some("say"));
/// assert!(event_name("close").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `value` is a non-empty string argument, with the original's message.
pub(crate) fn non_empty(value: &str, message: &'static str) -> Result<()> {
    if value.is_empty() {
        Err(Error::InvalidArgument(message))
    } else {
        Ok(())
    }
}

pub(crate) const EVENT_MSG: &str = "event must be a non-empty string";
pub(crate) const SOCKET_ID_MSG: &str = "socketId must be a non-empty string";
pub(crate) const NAMESPACE_MSG: &str = "roomNamespace must be a non-empty string";
pub(crate) const ROOM_ID_MSG: &str = "roomId must be a non-empty string";
