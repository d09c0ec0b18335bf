//! Errors of the Redis bus.

/// What can go wrong when creating or reconfiguring a
/// [`RedisBus`](crate::RedisBus). Failures of Redis itself are not errors
/// here: the bus retries them and reports them through health events.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use crosswire_redis::{RedisBus, RedisBusConfig, RedisBusError};
/// let empty = RedisBus::connect(RedisBusConfig::default()).await;
/// assert!(matches!(empty, Err(RedisBusError::NoNodes)));
/// let invalid = RedisBus::connect(RedisBusConfig::new(["http://127.0.0.1:6379"])).await;
/// assert!(matches!(invalid, Err(RedisBusError::InvalidUrl { .. })));
/// assert_eq!(RedisBusError::Closed.to_string(), "the Redis bus is closed");
/// # }
/// ```
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
    /// The TLS settings ([`RedisBusConfig::tls`](crate::RedisBusConfig::tls))
    /// are unusable for a `rediss://` node: PEM without a certificate, a
    /// client certificate without its key, ...
    #[error("unusable TLS settings for {url:?}: {message}")]
    Tls {
        /// The node's URL, with any password removed.
        url: String,
        /// What is wrong.
        message: String,
    },
}
