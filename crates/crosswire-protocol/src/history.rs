//! Missed-message recovery on the wire: a crosswire extension that a client
//! opts into (docs/protocol.md §10.3). Clients that do not opt in see none of
//! it: their frames stay byte-identical to the original's.
//!
//! * A room of a namespace with history numbers its messages: a
//!   [`Position`] is an *offset* within an *epoch*; the epoch changes
//!   whenever the history was lost, so an old position can never be taken
//!   for a current one.
//! * A client opts in with the query parameter [`RECOVERY_PARAM`]`=1`; on a
//!   reconnection it adds [`RESUME_PARAM`] with the last position of every
//!   room it was in ([`encode_resume`]).
//! * To an opted-in client, a room message carries its position under
//!   [`POSITION_KEY`] ([`positioned_frame`]); when the socket joins a room
//!   (or its id is bound while already a member), the node first sends what
//!   the client missed (each frame also marked [`RECOVERED_KEY`]), then a
//!   [`JOINED_EVENT`] frame ([`Joined`]) saying whether the recovery was
//!   complete.

use crate::client::PushFrame;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Query parameter that opts a client into recovery (`cwRecovery=1`).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::RECOVERY_PARAM, "cwRecovery");
/// ```
pub const RECOVERY_PARAM: &str = "cwRecovery";

/// Query parameter with the positions a reconnecting client resumes from
/// (see [`encode_resume`]).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::RESUME_PARAM, "cwResume");
/// ```
pub const RESUME_PARAM: &str = "cwResume";

/// Most rooms one resume parameter may name; more is refused as a whole.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::MAX_RESUME_ROOMS, 256);
/// ```
pub const MAX_RESUME_ROOMS: usize = 256;

/// Key of a message's position, in a client frame (an object, see
/// [`RoomPosition`]) and in a bus envelope (a string, see
/// [`Position::to_envelope`]).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::POSITION_KEY, "cwPos");
/// ```
pub const POSITION_KEY: &str = "cwPos";

/// Key marking a frame sent again during a recovery (`true`).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::RECOVERED_KEY, "cwRecovered");
/// ```
pub const RECOVERED_KEY: &str = "cwRecovered";

/// Event a node sends to an opted-in client after it joined a room with
/// history (payload: [`Joined`]).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::JOINED_EVENT, "_cw_joined");
/// ```
pub const JOINED_EVENT: &str = "_cw_joined";

/// Event a node sends to an opted-in client when it left a room with
/// history (payload `{"ns":…,"room":…}`): the client forgets its position.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::history::LEFT_EVENT, "_cw_left");
/// ```
pub const LEFT_EVENT: &str = "_cw_left";

/// Where a message stands in its room's history.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::Position;
/// let p = Position::new("a1b2", 42);
/// assert_eq!(p.to_envelope(), "a1b2:42");
/// assert_eq!(Position::from_envelope("a1b2:42"), Some(p));
/// assert_eq!(Position::from_envelope("no offset"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The history's generation: changes whenever the history was lost.
    pub epoch: String,
    /// The message's number within the epoch, from 1; 0 before the first.
    pub offset: u64,
}

impl Position {
    /// A position.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = crosswire_protocol::history::Position::new("e", 0);
    /// assert_eq!((p.epoch.as_str(), p.offset), ("e", 0));
    /// ```
    pub fn new(epoch: impl Into<String>, offset: u64) -> Self {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    /// The bus envelope form, `"EPOCH:OFFSET"`.
    ///
    /// # Examples
    ///
    /// See [`Position`].
    pub fn to_envelope(&self) -> String {
        format!("{}:{}", self.epoch, self.offset)
    }

    /// Reads the bus envelope form; `None` when malformed (an empty epoch, a
    /// missing or non-numeric offset).
    ///
    /// # Examples
    ///
    /// See [`Position`].
    pub fn from_envelope(text: &str) -> Option<Self> {
        let (epoch, offset) = text.rsplit_once(':')?;
        if epoch.is_empty() {
            return None;
        }
        Some(Position::new(epoch, offset.parse().ok()?))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.offset)
    }
}

/// A position in one room: what a client frame carries and what a client
/// resumes from.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::RoomPosition;
/// let p = RoomPosition::new("chat", "r1", "a1b2", 7);
/// assert_eq!(
///     serde_json::to_string(&p)?,
///     r#"{"ns":"chat","room":"r1","epoch":"a1b2","offset":7}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoomPosition {
    /// The room's namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// The history's epoch.
    pub epoch: String,
    /// The offset within the epoch.
    pub offset: u64,
}

impl RoomPosition {
    /// A position in room `room` of `ns`.
    ///
    /// # Examples
    ///
    /// See [`RoomPosition`].
    pub fn new(
        ns: impl Into<String>,
        room: impl Into<String>,
        epoch: impl Into<String>,
        offset: u64,
    ) -> Self {
        RoomPosition {
            ns: ns.into(),
            room: room.into(),
            epoch: epoch.into(),
            offset,
        }
    }

    /// The position without its room.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::history::{Position, RoomPosition};
    /// assert_eq!(RoomPosition::new("n", "r", "e", 3).position(), Position::new("e", 3));
    /// ```
    pub fn position(&self) -> Position {
        Position::new(self.epoch.clone(), self.offset)
    }
}

/// The room message `frame` as an opted-in client gets it: the same frame
/// with `"cwPos":{…}` (and `"cwRecovered":true` when sent again during a
/// recovery) added as its last keys.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::history::{positioned_frame, RoomPosition};
/// let frame = PushFrame::encode("say", Some(&"hi"))?;
/// let pos = RoomPosition::new("chat", "r1", "a1b2", 7);
/// assert_eq!(
///     positioned_frame(&frame, &pos, false).as_str(),
///     r#"{"event":"say","payload":"hi","cwPos":{"ns":"chat","room":"r1","epoch":"a1b2","offset":7}}"#
/// );
/// assert!(positioned_frame(&frame, &pos, true).as_str().ends_with(r#","cwRecovered":true}"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn positioned_frame(frame: &PushFrame, pos: &RoomPosition, recovered: bool) -> PushFrame {
    let text = frame.as_str();
    // A push frame is always a JSON object: `{…}`.
    let body = text.strip_suffix('}').unwrap_or(text);
    let pos = serde_json::to_string(pos).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + pos.len() + 32);
    out.push_str(body);
    if body.len() > 1 {
        out.push(',');
    }
    out.push('"');
    out.push_str(POSITION_KEY);
    out.push_str("\":");
    out.push_str(&pos);
    if recovered {
        out.push_str(",\"");
        out.push_str(RECOVERED_KEY);
        out.push_str("\":true");
    }
    out.push('}');
    PushFrame::from_text(out)
}

/// What a client learns from a node's frame about recovery: the position of
/// a room message and whether it was sent again.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::{read_position, RoomPosition};
/// let text = r#"{"event":"say","payload":1,"cwPos":{"ns":"n","room":"r","epoch":"e","offset":3},"cwRecovered":true}"#;
/// assert_eq!(read_position(text), Some((RoomPosition::new("n", "r", "e", 3), true)));
/// assert_eq!(read_position(r#"{"event":"say","payload":1}"#), None);
/// ```
pub fn read_position(text: &str) -> Option<(RoomPosition, bool)> {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(rename = "cwPos")]
        pos: Option<RoomPosition>,
        #[serde(rename = "cwRecovered", default)]
        recovered: bool,
    }
    let keys: Keys = serde_json::from_str(text).ok()?;
    Some((keys.pos?, keys.recovered))
}

/// How a recovery at join ended.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::RecoveryStatus;
/// assert_eq!(serde_json::to_string(&RecoveryStatus::Incomplete)?, r#""incomplete""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStatus {
    /// The client gave no position for this room: nothing to recover.
    None,
    /// Every message after the client's position was sent again.
    Complete,
    /// The messages after the client's position are not all known: the
    /// application must reload its state ([`GapReason`] says why).
    Incomplete,
}

/// Why a recovery was incomplete.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::GapReason;
/// assert_eq!(serde_json::to_string(&GapReason::EpochChanged)?, r#""epoch_changed""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The history was lost since (a restart, an eviction of the whole
    /// room): positions of the old epoch mean nothing now.
    EpochChanged,
    /// The client was away longer than the history keeps (by count or age).
    TooOld,
    /// The history could not be read.
    Unavailable,
}

/// Payload of [`JOINED_EVENT`]: the client's position in the room now, and
/// how the recovery went.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::{GapReason, Joined, RecoveryStatus};
/// let j = Joined {
///     ns: "chat".into(), room: "r1".into(), epoch: "a1b2".into(), offset: 9,
///     recovery: RecoveryStatus::Incomplete, reason: Some(GapReason::TooOld), recovered: 0,
/// };
/// assert_eq!(
///     serde_json::to_string(&j)?,
///     r#"{"ns":"chat","room":"r1","epoch":"a1b2","offset":9,"recovery":"incomplete","reason":"too_old","recovered":0}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// The history's epoch now.
    pub epoch: String,
    /// The offset of the last message the client has now (0: none yet).
    pub offset: u64,
    /// How the recovery went.
    pub recovery: RecoveryStatus,
    /// Why it was incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<GapReason>,
    /// Messages sent again before this frame.
    #[serde(default)]
    pub recovered: u64,
}

/// Why a resume parameter was refused.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::{parse_resume, ResumeError};
/// assert!(matches!(parse_resume("nope"), Err(ResumeError::Malformed(_))));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// Not a JSON array of `[ns, room, epoch, offset]` entries.
    #[error("malformed resume positions: {0}")]
    Malformed(String),
    /// More rooms than [`MAX_RESUME_ROOMS`].
    #[error("more than {MAX_RESUME_ROOMS} rooms to resume")]
    TooMany,
}

/// The value of [`RESUME_PARAM`]: a JSON array of `[ns, room, epoch,
/// offset]` entries (to be percent-encoded in the URL).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::history::{encode_resume, parse_resume, RoomPosition};
/// let positions = vec![RoomPosition::new("chat", "r1", "a1b2", 7)];
/// let text = encode_resume(&positions);
/// assert_eq!(text, r#"[["chat","r1","a1b2",7]]"#);
/// assert_eq!(parse_resume(&text)?, positions);
/// # Ok::<(), crosswire_protocol::history::ResumeError>(())
/// ```
pub fn encode_resume(positions: &[RoomPosition]) -> String {
    let entries: Vec<(&str, &str, &str, u64)> = positions
        .iter()
        .map(|p| (p.ns.as_str(), p.room.as_str(), p.epoch.as_str(), p.offset))
        .collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads the value of [`RESUME_PARAM`] (already percent-decoded). Entries
/// with an empty namespace, room or epoch are refused.
///
/// # Examples
///
/// See [`encode_resume`].
pub fn parse_resume(text: &str) -> Result<Vec<RoomPosition>, ResumeError> {
    let entries: Vec<(String, String, String, u64)> =
        serde_json::from_str(text).map_err(|e| ResumeError::Malformed(e.to_string()))?;
    if entries.len() > MAX_RESUME_ROOMS {
        return Err(ResumeError::TooMany);
    }
    entries
        .into_iter()
        .map(|(ns, room, epoch, offset)| {
            if ns.is_empty() || room.is_empty() || epoch.is_empty() {
                Err(ResumeError::Malformed(
                    "empty namespace, room or epoch".into(),
                ))
            } else {
                Ok(RoomPosition {
                    ns,
                    room,
                    epoch,
                    offset,
                })
            }
        })
        .collect()
}
