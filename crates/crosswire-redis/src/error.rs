//! Errors of the Redis bus.

/// What can go wrong when creating or reconfiguring a
/// [`RedisBus`](crate::RedisBus). Failures of Redis itself are not errors
/// here: the bus retries them and reports them through health events.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBusError {
    /// The configuration lists no Redis node.
    #[error("no Redis node configured")]
    NoNodes,
    /// A node URL could not be parsed.
    #[error("invalid Redis URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// Why it is invalid.
        message: String,
    },
    /// The bus was closed.
    #[error("the Redis bus is closed")]
    Closed,
}
