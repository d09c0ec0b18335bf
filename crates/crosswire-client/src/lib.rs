//! The Rust client of crosswire.
//!
//! This crate will hold `Connector`, the Rust port of the original
//! `WebSocketConnector` (heartbeat, reconnection, emit with callback). It is not
//! implemented yet; the wire formats it will speak are in
//! [`crosswire_protocol`].

pub use crosswire_protocol;
