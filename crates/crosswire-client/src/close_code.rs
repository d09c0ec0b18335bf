//! Close codes this client sends or reports.
//!
//! # Examples
//!
//! ```
//! use crosswire_client::close_code::*;
//! assert_eq!(GOING_AWAY, 1001);
//! assert_eq!(NO_STATUS, 1005);
//! assert_eq!(ABNORMAL, 1006);
//! assert_eq!(RECONNECT, 4000);
//! assert_eq!(MANUAL_CLOSE, 4001);
//! assert_eq!(PONG_TIMEOUT, 4002);
//! ```

/// The client goes away: every [`Connector`](crate::Connector) handle was dropped.
pub const GOING_AWAY: u16 = 1001;
/// Reported when the node's close frame carried no code.
pub const NO_STATUS: u16 = 1005;
/// Reported when the connection ended without a close frame (or the
/// close handshake timed out); such a close reconnects automatically.
pub const ABNORMAL: u16 = 1006;
/// Sent when [`Connector::reconnect`](crate::Connector::reconnect)
/// closes an open connection (reason `client reconnect`).
pub const RECONNECT: u16 = 4000;
/// Sent by [`Connector::manual_close`](crate::Connector::manual_close)
/// (reason `client manual close`).
pub const MANUAL_CLOSE: u16 = 4001;
/// Sent when the heartbeat reply did not come in time (reason `pong timeout`).
pub const PONG_TIMEOUT: u16 = 4002;
