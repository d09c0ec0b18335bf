//! Room presence on the wire (crosswire's extension, opt-in per client):
//! a client that connects with [`PRESENCE_PARAM`]`=1` gets, for each room of
//! a namespace with presence that its id joins, the room's members across
//! the cluster ([`STATE_EVENT`]) and then every change ([`CHANGE_EVENT`]).
//! Clients that do not opt in get nothing new. See docs/protocol.md §10.4.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The connection parameter that opts into presence events: `cwPresence=1`.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::presence::PRESENCE_PARAM, "cwPresence");
/// ```
pub const PRESENCE_PARAM: &str = "cwPresence";

/// The members of a room when the client's id joined it: [`State`].
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::presence::STATE_EVENT, "_cw_presence_state");
/// ```
pub const STATE_EVENT: &str = "_cw_presence_state";

/// A member joined or left a room the client is in: [`Change`].
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::presence::CHANGE_EVENT, "_cw_presence");
/// ```
pub const CHANGE_EVENT: &str = "_cw_presence";

/// One member of a room: a socket id on a node, with what the application
/// set about it.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::presence::Member;
/// let m = Member { id: "u1".into(), node: "n1".into(), info: serde_json::json!({"name": "Ann"}) };
/// assert_eq!(serde_json::to_string(&m)?, r#"{"id":"u1","node":"n1","info":{"name":"Ann"}}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The socket id.
    pub id: String,
    /// The node it is connected to.
    pub node: String,
    /// The application's value for it (`null` when none).
    #[serde(default)]
    pub info: Value,
}

/// Payload of [`STATE_EVENT`].
///
/// # Examples
///
/// ```
/// use crosswire_protocol::presence::State;
/// let s = State { ns: "chat".into(), room: "r1".into(), members: vec![] };
/// assert_eq!(serde_json::to_string(&s)?, r#"{"ns":"chat","room":"r1","members":[]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// Its members, over the cluster.
    pub members: Vec<Member>,
}

/// What happened to a member.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::presence::Op;
/// assert_eq!(serde_json::to_string(&Op::Leave)?, r#""leave""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// It joined the room.
    Join,
    /// It left the room (or its connection or its node went away).
    Leave,
}

/// Payload of [`CHANGE_EVENT`].
///
/// # Examples
///
/// ```
/// use crosswire_protocol::presence::{Change, Member, Op};
/// let c = Change {
///     ns: "chat".into(), room: "r1".into(), op: Op::Join,
///     member: Member { id: "u2".into(), node: "n2".into(), info: serde_json::Value::Null },
/// };
/// assert_eq!(
///     serde_json::to_string(&c)?,
///     r#"{"ns":"chat","room":"r1","op":"join","member":{"id":"u2","node":"n2","info":null}}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// Joined or left.
    pub op: Op,
    /// Who.
    pub member: Member,
}
