//! What can go wrong reading or writing a bus envelope, and the nesting
//! limit both codecs share (re-exported by [`crate::envelope`]).

use crate::channels::ChannelKind;

/// Deepest nesting of arrays and maps accepted (and produced) by the bus
/// codecs, counting the outermost container as 1. serde_json refuses a
/// 128th level, so MessagePack uses the same limit and both codecs accept
/// the same shapes.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_value, Codec, EnvelopeError, MAX_DEPTH};
/// assert_eq!(MAX_DEPTH, 127);
/// let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
/// assert!(matches!(decode_value(too_deep.as_bytes(), Codec::Json), Err(EnvelopeError::TooDeep)));
/// let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
/// assert!(decode_value(ok.as_bytes(), Codec::Json).is_ok());
/// ```
pub const MAX_DEPTH: usize = 127;

/// Why an envelope could not be encoded or decoded.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::envelope::{decode_bridge, decode_value, decode_ws_route, Codec, EnvelopeError};
/// assert!(matches!(decode_value(b"{", Codec::Json), Err(EnvelopeError::InvalidJson(_))));
/// assert!(matches!(decode_value(&[0x01, 0x02], Codec::MsgPack), Err(EnvelopeError::TrailingBytes(1))));
/// assert!(matches!(decode_bridge(b"{}", Codec::Json), Err(EnvelopeError::MissingField("data"))));
/// assert!(matches!(
///     decode_ws_route(ChannelKind::Custom, b"{}", Codec::Json),
///     Err(EnvelopeError::UnexpectedChannel(ChannelKind::Custom))
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not JSON (JSON codec).
    #[error("not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The bytes are not MessagePack (MessagePack codec).
    #[error("not valid MessagePack at byte {offset}: {reason}")]
    InvalidMsgPack {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// One MessagePack value followed by more bytes (notepack refuses those
    /// too).
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A required key is missing (`"envelope"` for a message that is not an
    /// object at all).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A key has the wrong type or value.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The key (`"envelope"` for the outer value itself).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// [`decode_ws_route`](crate::envelope::decode_ws_route) was asked to decode a message of a channel that
    /// carries no WebSocket routes.
    #[error("channel kind {0:?} carries no WebSocket route messages")]
    UnexpectedChannel(ChannelKind),
    /// A string, array or map longer than MessagePack can express.
    #[error("{0} too large for MessagePack")]
    TooLarge(&'static str),
    /// Encoding failed otherwise.
    #[error("encoding failed: {0}")]
    Encode(String),
}
