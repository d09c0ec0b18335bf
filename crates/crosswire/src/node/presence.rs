//! Room presence across the cluster (opt-in per namespace,
//! [`NodeBuilder::presence`](crate::NodeBuilder::presence)).
//!
//! Every node keeps a copy of who is in the rooms of the namespaces with
//! presence, on every node, with no central store (it works on the
//! in-memory bus and on any number of independent Redis nodes):
//!
//! * a join or leave here changes the copy and is told to the other nodes
//!   (crosswire's own cross-server event [`PRESENCE_EVENT`]), numbered by a
//!   per-node sequence, so that a change that overtakes an earlier one on
//!   the bus does not undo it (a leave is kept as a tombstone for a while);
//! * a node that appears gets each node's whole state ([`SYNC_EVENT`]);
//! * a node that goes away (its announcements stop for the membership
//!   timeout, or it says goodbye) takes its members with it: each node
//!   announces their leaves itself, so there are no ghosts.
//!
//! Sockets that connected with `cwPresence=1` get the members of each such
//! room their id joins (`_cw_presence_state`) and then every change
//! (`_cw_presence`); see [`crosswire_protocol::presence`].

use super::Node;
use crate::cross_server::CrossServerMessage;
use crate::socket::to_utf8;
use crate::Result;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::presence::{Change, Member, Op, State, CHANGE_EVENT, STATE_EVENT};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The cross-server event of presence changes (reserved).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::PRESENCE_EVENT, "_cw_presence_");
/// ```
pub const PRESENCE_EVENT: &str = "_cw_presence_";

/// The cross-server event of a node's whole presence state (reserved).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::SYNC_EVENT, "_cw_presence_sync_");
/// ```
pub const SYNC_EVENT: &str = "_cw_presence_sync_";

/// How long a leave is remembered, against a join that arrives after it.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// One member of a room as a node knows it.
#[derive(Debug, Clone)]
struct Entry {
    info: Value,
    /// The sequence number of the change that set it, on its node.
    seq: u64,
    present: bool,
    at: Instant,
}

/// Members of one room, by (node, id).
type RoomMembers = HashMap<(String, String), Entry>;

/// A node's copy of the presence of every node.
pub(crate) struct Presence {
    /// This node's change numbers: they start at the process's start time
    /// in milliseconds, shifted left by 20 bits, so that a node restarted
    /// under the same name numbers its changes above its former self's (a
    /// late change of the old process cannot undo a new one).
    seq: AtomicU64,
    rooms: Mutex<HashMap<String, HashMap<String, RoomMembers>>>,
}

impl Default for Presence {
    fn default() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Presence {
            seq: AtomicU64::new(ms << 20),
            rooms: Mutex::default(),
        }
    }
}

/// A change as it travels between nodes.
#[derive(Debug, Serialize, Deserialize)]
struct Delta {
    op: Op,
    ns: String,
    room: String,
    id: String,
    #[serde(default)]
    info: Value,
    seq: u64,
}

/// A node's whole state as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct Sync {
    seq: u64,
    members: Vec<(String, String, String, Value)>,
}

impl Presence {
    /// Applies a change of `node`'s member; the change to announce, if the
    /// copy changed.
    fn apply(&self, node: &str, d: &Delta) -> Option<Change> {
        let now = Instant::now();
        let mut rooms = self.rooms.lock();
        let members = rooms
            .entry(d.ns.clone())
            .or_default()
            .entry(d.room.clone())
            .or_default();
        let key = (node.to_owned(), d.id.clone());
        let present = d.op == Op::Join;
        let was = match members.get(&key) {
            Some(e) if e.seq > d.seq => return None, // overtaken: a later change holds
            Some(e) => e.present,
            None => false,
        };
        members.insert(
            key,
            Entry {
                info: d.info.clone(),
                seq: d.seq,
                present,
                at: now,
            },
        );
        // A tombstone of an old leave goes in time.
        members.retain(|_, e| e.present || now.duration_since(e.at) < TOMBSTONE_TTL);
        (was != present).then(|| Change {
            ns: d.ns.clone(),
            room: d.room.clone(),
            op: d.op,
            member: Member {
                id: d.id.clone(),
                node: node.to_owned(),
                info: d.info.clone(),
            },
        })
    }

    /// Removes every member of `node` (gone); the leaves to announce.
    fn drop_node(&self, node: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut rooms = self.rooms.lock();
        for (ns, rs) in rooms.iter_mut() {
            for (room, members) in rs.iter_mut() {
                members.retain(|(n, id), e| {
                    if n != node {
                        return true;
                    }
                    if e.present {
                        changes.push(Change {
                            ns: ns.clone(),
                            room: room.clone(),
                            op: Op::Leave,
                            member: Member {
                                id: id.clone(),
                                node: n.clone(),
                                info: e.info.clone(),
                            },
                        });
                    }
                    false
                });
            }
            rs.retain(|_, m| !m.is_empty());
        }
        rooms.retain(|_, rs| !rs.is_empty());
        changes
    }

    /// Replaces `node`'s members by those of its state at `seq`; the
    /// changes to announce.
    fn replace_node(&self, node: &str, sync: &Sync) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut listed: HashMap<(&str, &str, &str), &Value> = HashMap::new();
        for (ns, room, id, info) in &sync.members {
            listed.insert((ns, room, id), info);
        }
        // Members it no longer has (not in the state, set before it).
        let gone: Vec<Delta> = {
            let rooms = self.rooms.lock();
            let mut gone = Vec::new();
            for (ns, rs) in rooms.iter() {
                for (room, members) in rs {
                    for ((n, id), e) in members {
                        let key = (ns.as_str(), room.as_str(), id.as_str());
                        if n == node && e.present && e.seq <= sync.seq && !listed.contains_key(&key)
                        {
                            gone.push(Delta {
                                op: Op::Leave,
                                ns: ns.clone(),
                                room: room.clone(),
                                id: id.clone(),
                                info: Value::Null,
                                seq: sync.seq,
                            });
                        }
                    }
                }
            }
            gone
        };
        changes.extend(gone.iter().filter_map(|d| self.apply(node, d)));
        for ((ns, room, id), info) in listed {
            let d = Delta {
                op: Op::Join,
                ns: ns.to_owned(),
                room: room.to_owned(),
                id: id.to_owned(),
                info: info.clone(),
                seq: sync.seq,
            };
            changes.extend(self.apply(node, &d));
        }
        changes
    }

    /// The members of a room.
    fn members(&self, ns: &str, room: &str) -> Vec<Member> {
        let rooms = self.rooms.lock();
        let Some(members) = rooms.get(ns).and_then(|rs| rs.get(room)) else {
            return Vec::new();
        };
        let mut list: Vec<Member> = members
            .iter()
            .filter(|(_, e)| e.present)
            .map(|((node, id), e)| Member {
                id: id.clone(),
                node: node.clone(),
                info: e.info.clone(),
            })
            .collect();
        list.sort_by(|a, b| (&a.id, &a.node).cmp(&(&b.id, &b.node)));
        list
    }
}

impl Node {
    /// Whether namespace `ns` has presence.
    pub(crate) fn has_presence(&self, ns: &str) -> bool {
        self.inner.config.presence.contains(ns)
    }

    /// The members of room `room` of namespace `ns` over the cluster, as
    /// this node knows them (no round trip; changes reach every node within
    /// the bus's delay, and a dead node's members go within its membership
    /// timeout): the ids in the room that are bound to a connected socket
    /// ([`Node::set_user_socket`]). Empty when `ns` has no presence.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = crosswire::Node::builder().server_name("n1").presence("chat").build()?;
    /// let n = node.clone();
    /// node.on_connection(move |socket, _| {
    ///     let n = n.clone();
    ///     async move {
    ///         n.set_user_socket("u1", &socket).unwrap();
    ///         n.join_room("chat", "r1", "u1").unwrap();
    ///     }
    /// });
    /// let addr = node.listen("127.0.0.1:0").await?;
    /// let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    /// while node.presence_count("chat", "r1") == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// let members = node.presence_members("chat", "r1");
    /// assert_eq!((members[0].id.as_str(), members[0].node.as_str()), ("u1", "n1"));
    /// // An id with no socket here is in the room, but not present.
    /// node.join_room("chat", "r1", "ghost")?;
    /// assert_eq!(node.presence_count("chat", "r1"), 1);
    /// drop(client);
    /// while node.presence_count("chat", "r1") == 1 {
    ///     tokio::task::yield_now().await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn presence_members(&self, ns: &str, room: &str) -> Vec<Member> {
        self.inner.presence.members(ns, room)
    }

    /// How many members room `room` of `ns` has over the cluster (see
    /// [`presence_members`](Self::presence_members)).
    ///
    /// # Examples
    ///
    /// See [`presence_members`](Self::presence_members).
    pub fn presence_count(&self, ns: &str, room: &str) -> usize {
        self.presence_members(ns, room).len()
    }

    /// Registers the handlers of the other nodes' changes and states (at
    /// build, when a namespace has presence).
    pub(crate) fn install_presence(&self) -> Result<()> {
        if self.inner.config.presence.is_empty() {
            return Ok(());
        }
        self.on_internal(
            PRESENCE_EVENT,
            |node: Node, msg: CrossServerMessage| async move {
                let Some((from, d)) = node.sent_by_other_node::<Delta>(msg) else {
                    return;
                };
                if node.has_presence(&d.ns) {
                    if let Some(change) = node.inner.presence.apply(&from, &d) {
                        node.tell_members(&change);
                    }
                }
            },
        )?;
        self.on_internal(
            SYNC_EVENT,
            |node: Node, msg: CrossServerMessage| async move {
                let Some((from, sync)) = node.sent_by_other_node::<Sync>(msg) else {
                    return;
                };
                for change in node.inner.presence.replace_node(&from, &sync) {
                    node.tell_members(&change);
                }
            },
        )?;
        Ok(())
    }

    /// A member of this node joined or left a room of `ns` (a namespace
    /// with presence): the copy, the local subscribers and the other nodes.
    pub(crate) fn presence_changed(&self, ns: &str, room: &str, id: &str, op: Op) {
        let info = match op {
            Op::Join => self
                .get_socket(id)
                .and_then(|s| s.info())
                .unwrap_or(Value::Null),
            Op::Leave => Value::Null,
        };
        let d = Delta {
            op,
            ns: ns.to_owned(),
            room: room.to_owned(),
            id: id.to_owned(),
            info,
            seq: self.inner.presence.seq.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let own = self.server_name().to_owned();
        let change = self.inner.presence.apply(&own, &d);
        if op == Op::Join {
            // The joiner gets the whole list (itself included), the others
            // the change.
            self.send_state(ns, room, id);
        }
        if let Some(change) = change {
            self.tell_members_except(&change, Some(id));
        }
        if let Ok(payload) = serde_json::to_value(&d) {
            if self.cluster().is_some() {
                let _ = self
                    .emit_internal(PRESENCE_EVENT, payload)
                    .except_self()
                    .send();
            }
        }
    }

    /// Sends the members of the room to `id`'s socket, if it asked for
    /// presence.
    fn send_state(&self, ns: &str, room: &str, id: &str) {
        let Some(socket) = self.get_socket(id).filter(|s| s.wants_presence()) else {
            return;
        };
        let state = State {
            ns: ns.to_owned(),
            room: room.to_owned(),
            members: self.presence_members(ns, room),
        };
        if let Err(e) = socket.emit(STATE_EVENT, &state) {
            tracing::debug!(error = %e, "presence state not sent");
        }
    }

    /// Pushes a change to this node's members of the room that asked for
    /// presence (one encoding for all).
    fn tell_members(&self, change: &Change) {
        self.tell_members_except(change, None);
    }

    fn tell_members_except(&self, change: &Change, except: Option<&str>) {
        let Ok(frame) = PushFrame::encode(CHANGE_EVENT, Some(change)) else {
            return;
        };
        let text = to_utf8(&frame);
        let ids = self.room_socket_ids(&change.ns, Some(&change.room), crate::Match::Exact);
        for id in ids.iter().filter(|id| Some(id.as_str()) != except) {
            if let Some(socket) = self.get_socket(id).filter(|s| s.wants_presence()) {
                let _ = socket.push(text.clone());
            }
        }
    }

    /// A node appeared: it gets this node's whole state.
    pub(crate) fn presence_node_appeared(&self, name: &str) {
        if self.inner.config.presence.is_empty() {
            return;
        }
        let own = self.server_name().to_owned();
        let members: Vec<(String, String, String, Value)> = {
            let rooms = self.inner.presence.rooms.lock();
            let mut list = Vec::new();
            for (ns, rs) in rooms.iter() {
                for (room, members) in rs {
                    for ((n, id), e) in members {
                        if *n == own && e.present {
                            list.push((ns.clone(), room.clone(), id.clone(), e.info.clone()));
                        }
                    }
                }
            }
            list
        };
        let sync = Sync {
            seq: self.inner.presence.seq.load(Ordering::Relaxed),
            members,
        };
        if let Ok(payload) = serde_json::to_value(&sync) {
            let _ = self.emit_internal(SYNC_EVENT, payload).to([name]).send();
        }
    }

    /// A node went away: its members leave, announced here.
    pub(crate) fn presence_node_gone(&self, name: &str) {
        if self.inner.config.presence.is_empty() {
            return;
        }
        for change in self.inner.presence.drop_node(name) {
            self.tell_members(&change);
        }
    }
}
