//! Missed-message recovery, the client's side (docs/protocol.md §10.3): the
//! last position held in every room, the resume parameter built from them,
//! and what a handler learns of a message's position ([`Meta`]).

use crate::connector::Connector;
use crosswire_protocol::history::{encode_resume, RoomPosition, MAX_RESUME_ROOMS, RESUME_PARAM};
use std::collections::HashMap;

/// What a handler of pushed events can know of a message besides its
/// payload, as a handler argument (see [`Handler`](crate::Handler)): its
/// position in its room's history and whether it is a replay of a message
/// sent while the connector was away.
///
/// Only a connector with [`recovery`](crate::ConnectorOptions::recovery())
/// on, talking to a crosswire node whose namespace keeps a history, gets
/// positions; for every other message `position` is `None` and `recovered`
/// is `false`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions, Meta};
/// let c = Connector::new(ConnectorOptions::new("ws://127.0.0.1:9000").recovery(true))?;
/// c.on("say", |text: String, meta: Meta| {
///     let mark = if meta.recovered { " (while you were away)" } else { "" };
///     match meta.position {
///         Some(p) => println!("[{} #{}] {text}{mark}", p.room, p.offset),
///         None => println!("{text}"),
///     }
/// })?;
/// assert_eq!(Meta::default(), Meta { position: None, recovered: false });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The message's room and position (`cwPos`), when it has one.
    pub position: Option<RoomPosition>,
    /// Whether the node sent it again during a recovery (`cwRecovered`):
    /// it was sent to the room while this connector was away.
    pub recovered: bool,
}

/// One room's last position and when it was last updated.
#[derive(Debug)]
struct Held {
    epoch: String,
    offset: u64,
    updated: u64,
}

/// The last position received in every room, at most
/// [`MAX_RESUME_ROOMS`] of them: a resume parameter names no more, so the
/// least recently updated room is forgotten when one more comes.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    rooms: HashMap<String, HashMap<String, Held>>,
    len: usize,
    clock: u64,
}

impl Positions {
    /// Holds `(epoch, offset)` as the position of `room` of `ns`.
    pub(crate) fn set(&mut self, ns: &str, room: &str, epoch: &str, offset: u64) {
        self.clock += 1;
        let updated = self.clock;
        if let Some(held) = self.rooms.get_mut(ns).and_then(|r| r.get_mut(room)) {
            if held.epoch != epoch {
                epoch.clone_into(&mut held.epoch);
            }
            held.offset = offset;
            held.updated = updated;
            return;
        }
        if self.len >= MAX_RESUME_ROOMS {
            self.forget_oldest();
        }
        self.rooms.entry(ns.to_owned()).or_default().insert(
            room.to_owned(),
            Held {
                epoch: epoch.to_owned(),
                offset,
                updated,
            },
        );
        self.len += 1;
    }

    /// Forgets the position of `room` of `ns`.
    pub(crate) fn forget(&mut self, ns: &str, room: &str) {
        let Some(rooms) = self.rooms.get_mut(ns) else {
            return;
        };
        if rooms.remove(room).is_some() {
            self.len -= 1;
        }
        if rooms.is_empty() {
            self.rooms.remove(ns);
        }
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .rooms
            .iter()
            .flat_map(|(ns, rooms)| rooms.iter().map(move |(room, h)| (h.updated, ns, room)))
            .min()
            .map(|(_, ns, room)| (ns.clone(), room.clone()));
        if let Some((ns, room)) = oldest {
            self.forget(&ns, &room);
        }
    }

    /// The position held for `room` of `ns`.
    #[cfg(test)]
    pub(crate) fn get(
        &self,
        ns: &str,
        room: &str,
    ) -> Option<crosswire_protocol::history::Position> {
        let held = self.rooms.get(ns)?.get(room)?;
        Some(crosswire_protocol::history::Position::new(
            held.epoch.clone(),
            held.offset,
        ))
    }

    /// Every position held, the most recently updated first.
    pub(crate) fn list(&self) -> Vec<RoomPosition> {
        let mut all: Vec<(u64, RoomPosition)> = self
            .rooms
            .iter()
            .flat_map(|(ns, rooms)| {
                rooms.iter().map(move |(room, h)| {
                    (
                        h.updated,
                        RoomPosition::new(ns.as_str(), room.as_str(), h.epoch.as_str(), h.offset),
                    )
                })
            })
            .collect();
        all.sort_unstable_by_key(|(updated, _)| std::cmp::Reverse(*updated));
        all.truncate(MAX_RESUME_ROOMS);
        all.into_iter().map(|(_, p)| p).collect()
    }
}

/// `base` (which already has a query: `cwRecovery=1`) with the resume
/// parameter for `positions` appended; `base` itself when there is nothing
/// to resume.
pub(crate) fn resume_url(base: &str, positions: &[RoomPosition]) -> String {
    if positions.is_empty() {
        return base.to_owned();
    }
    let value = encode_resume(&positions[..positions.len().min(MAX_RESUME_ROOMS)]);
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{RESUME_PARAM}={}", encode_component(&value))
}

/// Percent-encodes a query value as JavaScript's `encodeURIComponent`
/// does (everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`).
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out
}

impl Connector {
    /// The last position this connector holds in every room (with
    /// [`recovery`](crate::ConnectorOptions::recovery()) on), the most
    /// recently updated first: what it resumes from on its next connection.
    /// A room's position comes from the last message received in it and
    /// from the node's recovery report when the connector joined it; a room
    /// the node removed the connector from is forgotten. Empty with recovery
    /// off.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder()
    /// #     .history("chat", crosswire::history::HistoryConfig::default())
    /// #     .build()?;
    /// # node.on_connection(|socket, _hs| async move {
    /// #     if let Some(node) = socket.node() {
    /// #         let _ = node.set_user_socket("u1", &socket);
    /// #         let _ = node.join_room("chat", "lobby", "u1");
    /// #     }
    /// # });
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{Connector, ConnectorOptions};
    /// let c = Connector::new(ConnectorOptions::new(url).recovery(true))?;
    /// let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    /// c.on_recovery(move |report| {
    ///     let _ = tx.send(report.clone());
    /// });
    /// c.start(); // the node puts the connection in room `lobby` of `chat`
    /// let joined = reports.recv().await.ok_or("ended")?;
    /// let held = c.room_positions();
    /// assert_eq!((held[0].room.as_str(), held[0].offset), ("lobby", joined.offset));
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_positions(&self) -> Vec<RoomPosition> {
        self.shared.positions.lock().list()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crosswire_protocol::history::{parse_resume, Position};

    #[test]
    fn positions_are_updated_forgotten_and_listed_most_recent_first() {
        let mut p = Positions::default();
        p.set("chat", "a", "e1", 1);
        p.set("chat", "b", "e1", 5);
        p.set("game", "a", "e2", 0);
        p.set("chat", "a", "e3", 2);
        assert_eq!(p.get("chat", "a"), Some(Position::new("e3", 2)));
        let rooms: Vec<_> = p
            .list()
            .into_iter()
            .map(|r| (r.ns, r.room, r.offset))
            .collect();
        assert_eq!(
            rooms,
            [
                ("chat".to_owned(), "a".to_owned(), 2),
                ("game".to_owned(), "a".to_owned(), 0),
                ("chat".to_owned(), "b".to_owned(), 5)
            ]
        );
        p.forget("game", "a");
        p.forget("game", "nope");
        assert_eq!(p.get("game", "a"), None);
        assert_eq!(p.list().len(), 2);
        assert_eq!(p.len, 2);
    }

    #[test]
    fn at_most_the_resumable_number_of_rooms_is_held_the_least_recent_forgotten() {
        let mut p = Positions::default();
        let extra = 44;
        for i in 0..MAX_RESUME_ROOMS + extra {
            p.set("chat", &format!("r{i}"), "e", i as u64);
        }
        // r0..r43 were updated least recently: forgotten. r50 is updated last.
        p.set("chat", "r50", "e", 1000);
        let list = p.list();
        assert_eq!(list.len(), MAX_RESUME_ROOMS);
        assert_eq!(list[0].room, "r50");
        assert_eq!(list[1].room, format!("r{}", MAX_RESUME_ROOMS + extra - 1));
        assert!(list.iter().all(|r| r.offset >= extra as u64));
        assert_eq!(p.get("chat", "r0"), None);
        assert_eq!(p.len, MAX_RESUME_ROOMS);
    }

    #[test]
    fn the_resume_parameter_is_percent_encoded_and_parses_back() {
        let positions = vec![
            RoomPosition::new("chat", "a b&c=d/é+", "a1b2", 7),
            RoomPosition::new("chat", "r2", "a1b2", 0),
        ];
        let url = resume_url("ws://h/?id=u1&cwRecovery=1", &positions);
        let (base, value) = url.split_once("&cwResume=").unwrap();
        assert_eq!(base, "ws://h/?id=u1&cwRecovery=1");
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)),
            "{value}"
        );
        assert!(value.starts_with("%5B%5B%22chat%22%2C%22a%20b%26c%3Dd%2F%C3%A9%2B%22"));
        let decoded: Vec<(String, String)> =
            url::form_urlencoded::parse(format!("cwResume={value}").as_bytes())
                .into_owned()
                .collect();
        assert_eq!(parse_resume(&decoded[0].1).unwrap(), positions);
        assert_eq!(resume_url("ws://h/", &[]), "ws://h/");
        assert!(resume_url("ws://h/", &positions).starts_with("ws://h/?cwResume="));
    }
}
