//! Errors: configuration errors ([`ConnectorError`]) and the errors an emit
//! resolves to ([`EmitError`], with the original's error codes and
//! crosswire's own).

/// A connector could not be created or configured.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorError, ConnectorOptions};
/// use std::time::Duration;
/// assert_eq!(Connector::new(ConnectorOptions::new("")).err(), Some(ConnectorError::MissingUrl));
/// let opts = ConnectorOptions { pong_timeout: Duration::ZERO, ..ConnectorOptions::new("ws://h") };
/// assert_eq!(opts.validate(), Err(ConnectorError::ZeroDuration("pong_timeout")));
/// let c = Connector::new(ConnectorOptions::new("ws://h"))?;
/// assert_eq!(c.on("", || {}).err(), Some(ConnectorError::EmptyEvent));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// [`ConnectorOptions::url`](crate::ConnectorOptions::url) is empty.
    #[error("url is required")]
    MissingUrl,
    /// A duration that must be positive is zero (the field name).
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// An empty event name.
    #[error("event must be a non-empty string")]
    EmptyEvent,
    /// [`Connector::new`](crate::Connector::new) was called outside a Tokio
    /// runtime.
    #[error("a Connector must be created inside a Tokio runtime")]
    NoRuntime,
    /// A handler takes [`State<S>`](crate::State) but the connector was not
    /// built with a state of type `S` (the type's name); see
    /// [`ConnectorBuilder::state`](crate::ConnectorBuilder::state).
    #[error("the handler takes State<{0}> but the connector has no state of that type")]
    MissingState(&'static str),
}

/// The error codes of [`EmitError::code`].
///
/// # Examples
///
/// ```
/// use crosswire_client::{error_code, EmitError};
/// assert_eq!(error_code::WS_NOT_OPEN, EmitError::NotOpen.code());
/// assert_eq!(error_code::CALLBACK_TIMEOUT, EmitError::Timeout { callback_id: "c-1".into() }.code());
/// assert_eq!(error_code::DISCONNECTED, EmitError::Disconnected { callback_id: "c-1".into() }.code());
/// assert_eq!(error_code::INVALID_EVENT, EmitError::EmptyEvent.code());
/// assert_eq!(error_code::ENCODE_ERROR, EmitError::Encode("NaN".into()).code());
/// let decode = EmitError::Decode { callback_id: "c-1".into(), message: "invalid type".into() };
/// assert_eq!(error_code::DECODE_ERROR, decode.code());
/// ```
pub mod error_code {
    /// The connection is not open (the original's code).
    pub const WS_NOT_OPEN: &str = "WS_NOT_OPEN";
    /// No reply within the timeout (the original's code).
    pub const CALLBACK_TIMEOUT: &str = "CALLBACK_TIMEOUT";
    /// The connection closed while the reply was pending (new: the original
    /// lets such callbacks wait for their timeout).
    pub const DISCONNECTED: &str = "DISCONNECTED";
    /// The event name was empty.
    pub const INVALID_EVENT: &str = "INVALID_EVENT";
    /// The payload could not be serialized.
    pub const ENCODE_ERROR: &str = "ENCODE_ERROR";
    /// The reply did not deserialize into the type asked for (typed forms
    /// only: [`Connector::request`](crate::Connector::request),
    /// [`ReplyFuture::decode`](crate::ReplyFuture::decode)).
    pub const DECODE_ERROR: &str = "DECODE_ERROR";
}

/// Why an emit failed or a reply did not come.
///
/// The [`Display`](std::fmt::Display) texts of the first two variants are
/// the original's `error` strings.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions, EmitError};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000"))?; // not started
/// assert_eq!(c.emit("say", &1), Err(EmitError::NotOpen));
/// assert_eq!(c.emit_with_callback("say", &1).await, Err(EmitError::NotOpen));
/// assert_eq!(EmitError::NotOpen.to_string(), "WebSocket is not open");
/// assert_eq!(EmitError::EmptyEvent.code(), "INVALID_EVENT");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The connection was not open when the event was emitted; nothing was
    /// sent or queued (`WS_NOT_OPEN`).
    #[error("WebSocket is not open")]
    NotOpen,
    /// No reply within the callback timeout (`CALLBACK_TIMEOUT`).
    #[error("Is callback timeout: {callback_id}")]
    Timeout {
        /// The callback id that was sent.
        callback_id: String,
    },
    /// The connection closed — for any reason: the node closed it, it
    /// dropped, a pong timeout, [`reconnect`](crate::Connector::reconnect) or
    /// [`manual_close`](crate::Connector::manual_close) — before the reply
    /// arrived (`DISCONNECTED`). Raised at once, not after the timeout.
    #[error("Connection closed before the reply: {callback_id}")]
    Disconnected {
        /// The callback id that was sent.
        callback_id: String,
    },
    /// The event name was empty (`INVALID_EVENT`).
    #[error("event must be a non-empty string")]
    EmptyEvent,
    /// The payload could not be serialized to JSON (`ENCODE_ERROR`).
    #[error("payload could not be encoded: {0}")]
    Encode(String),
    /// The node replied, but the reply did not deserialize into the type
    /// asked for (`DECODE_ERROR`; typed forms only:
    /// [`Connector::request`](crate::Connector::request),
    /// [`ReplyFuture::decode`](crate::ReplyFuture::decode)).
    #[error("reply to {callback_id} could not be decoded: {message}")]
    Decode {
        /// The callback id that was sent.
        callback_id: String,
        /// What serde reported.
        message: String,
    },
}

impl EmitError {
    /// The error code, as the original's `errorCode` (see [`error_code`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EmitError;
    /// assert_eq!(EmitError::NotOpen.code(), "WS_NOT_OPEN");
    /// let e = EmitError::Timeout { callback_id: "m0abcdef-k3x9-1".into() };
    /// assert_eq!(e.code(), "CALLBACK_TIMEOUT");
    /// assert_eq!(e.to_string(), "Is callback timeout: m0abcdef-k3x9-1");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            EmitError::NotOpen => error_code::WS_NOT_OPEN,
            EmitError::Timeout { .. } => error_code::CALLBACK_TIMEOUT,
            EmitError::Disconnected { .. } => error_code::DISCONNECTED,
            EmitError::EmptyEvent => error_code::INVALID_EVENT,
            EmitError::Encode(_) => error_code::ENCODE_ERROR,
            EmitError::Decode { .. } => error_code::DECODE_ERROR,
        }
    }
}
