//! Local delivery: this node's connections, the socket ids bound to them,
//! and the room index — one type that owns all three and writes frames to
//! the sockets it holds. It knows nothing of the bus: the node decides what
//! also goes to other nodes.

use crate::catch_up::{positioned_text, CatchUp, Why};
use crate::history::{HistoryConfig, Position, SharedHistory};
use crate::rooms::{Rooms, Shape};
use crate::socket::Socket;
use axum::extract::ws::Utf8Bytes;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::Codec;
use dashmap::DashMap;
use parking_lot::RwLock;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// This node's sockets, bound ids and rooms.
pub(crate) struct Local {
    /// Every open connection, by connection number.
    connections: DashMap<u64, Socket>,
    /// Socket ids bound with `set_user_socket`. Looked up once per recipient
    /// of every send: a fast, randomly seeded hasher rather than SipHash.
    bound: DashMap<String, Socket, foldhash::fast::RandomState>,
    rooms: RwLock<Rooms>,
    next_conn: AtomicU64,
}

/// A room message with its position in the room's history, for the sockets
/// that opted into recovery.
pub(crate) struct Positioned<'a> {
    pub(crate) ns: &'a str,
    pub(crate) room: &'a str,
    pub(crate) position: &'a Position,
    /// The history stream (the room in this epoch) of the message, when
    /// known (0: not known).
    pub(crate) stream: u64,
    /// The frame with its position (`cwPos`), encoded once, when the room
    /// has an opted-in member.
    pub(crate) text: OnceCell<Utf8Bytes>,
    pub(crate) frame: &'a PushFrame,
    /// Where a gap in the live stream is filled from.
    pub(crate) history: &'a SharedHistory,
    pub(crate) config: &'a HistoryConfig,
    pub(crate) codec: Codec,
}

/// Writes a positioned room message to an opted-in socket, in order and
/// once: an offset it already has is dropped; after a gap (the missing
/// messages may still be on their way through the bus) a catch-up writes
/// the gap and this message from the history.
pub(crate) fn push_positioned(socket: &Socket, message: &Positioned<'_>) {
    let Some(recovery) = socket.recovery() else {
        return;
    };
    let pos = message.position;
    let write = || {
        let text = message
            .text
            .get_or_init(|| positioned_text(message.frame, message.ns, message.room, pos, false));
        let _ = socket.push(text.clone());
    };
    let gap = recovery.live(message.ns, message.room, message.stream, pos, write);
    if let Some(number) = gap {
        CatchUp {
            socket: socket.clone(),
            ns: message.ns.to_owned(),
            room: message.room.to_owned(),
            store: message.history.clone(),
            config: *message.config,
            codec: message.codec,
            why: Why::Gap,
            number,
        }
        .start();
    }
}

/// A set of excluded ids that is cheap for both short and long lists.
pub(crate) enum Exclusions<'a> {
    Few(&'a [String]),
    Many(HashSet<&'a str>),
}

impl<'a> Exclusions<'a> {
    pub(crate) fn new(ids: &'a [String]) -> Self {
        if ids.len() <= 8 {
            Exclusions::Few(ids)
        } else {
            Exclusions::Many(ids.iter().map(String::as_str).collect())
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        match self {
            Exclusions::Few(ids) => ids.iter().any(|x| x == id),
            Exclusions::Many(set) => set.contains(id),
        }
    }
}

impl Local {
    /// Nothing held yet; connection numbers start at 1.
    pub(crate) fn new() -> Self {
        Local {
            connections: DashMap::new(),
            bound: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            rooms: RwLock::new(Rooms::default()),
            next_conn: AtomicU64::new(1),
        }
    }

    // ----- connections -------------------------------------------------------

    /// A number for a new connection, unique within the node.
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers an open connection.
    pub(crate) fn add_connection(&self, socket: &Socket) {
        self.connections.insert(socket.id(), socket.clone());
    }

    /// Open connections, bound or not.
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Runs `f` on every open connection.
    pub(crate) fn for_each_connection(&self, mut f: impl FnMut(&Socket)) {
        for entry in self.connections.iter() {
            f(entry.value());
        }
    }

    /// Forgets a connection that ended and unbinds the ids it still owns;
    /// returns those ids (the caller takes them out of their rooms).
    pub(crate) fn release(&self, socket: &Socket) -> Vec<String> {
        self.connections.remove(&socket.id());
        let ids = std::mem::take(&mut *socket.bound_ids().lock());
        ids.into_iter()
            .filter(|id| self.bound.remove_if(id, |_, s| s == socket).is_some())
            .collect()
    }

    // ----- bound socket ids --------------------------------------------------

    /// Binds `socket_id` to `socket`; returns the other socket it was bound
    /// to before, if any.
    pub(crate) fn bind(&self, socket_id: &str, socket: &Socket) -> Option<Socket> {
        let previous = self.bound.insert(socket_id.to_owned(), socket.clone());
        if let Some(prev) = &previous {
            if prev == socket {
                return None;
            }
            prev.bound_ids().lock().retain(|id| id != socket_id);
        }
        socket.bound_ids().lock().push(socket_id.to_owned());
        previous
    }

    /// Unbinds `socket_id`.
    pub(crate) fn unbind(&self, socket_id: &str) {
        if let Some((_, socket)) = self.bound.remove(socket_id) {
            socket.bound_ids().lock().retain(|id| id != socket_id);
        }
    }

    /// The socket bound to `socket_id`.
    pub(crate) fn get(&self, socket_id: &str) -> Option<Socket> {
        self.bound.get(socket_id).map(|s| s.clone())
    }

    /// Bound socket ids.
    /// The ids bound to an open socket.
    pub(crate) fn bound_ids(&self) -> Vec<String> {
        self.bound
            .iter()
            .filter(|e| e.value().is_open())
            .map(|e| e.key().clone())
            .collect()
    }

    pub(crate) fn bound_count(&self) -> usize {
        self.bound.len()
    }

    // ----- delivery ----------------------------------------------------------

    /// Queues `text` for the open socket bound to `socket_id`; false when
    /// there is none here.
    pub(crate) fn push_to_bound(&self, socket_id: &str, text: &Utf8Bytes) -> bool {
        match self.bound.get(socket_id) {
            Some(socket) if socket.is_open() => {
                let _ = socket.push(text.clone());
                true
            }
            _ => false,
        }
    }

    /// Queues `text` for every authenticated connection.
    pub(crate) fn push_to_all(&self, text: &Utf8Bytes) {
        self.for_each_connection(|socket| {
            if socket.is_authenticated() {
                let _ = socket.push(text.clone());
            }
        });
    }

    /// Queues `text` for the members of one room (or, with `None`, of every
    /// room of the namespace), skipping `exclude`.
    pub(crate) fn push_to_room(
        &self,
        ns: &str,
        room: Option<&str>,
        text: &Utf8Bytes,
        exclude: &[String],
        positioned: Option<&Positioned<'_>>,
    ) {
        let exclusions = Exclusions::new(exclude);
        let rooms = self.rooms.read();
        let send = |id: &str| {
            if exclusions.contains(id) {
                return;
            }
            match positioned {
                None => {
                    self.push_to_bound(id, text);
                }
                Some(p) => match self.bound.get(id) {
                    Some(socket) if socket.is_open() => {
                        if socket.recovery().is_some() {
                            push_positioned(&socket, p);
                        } else {
                            let _ = socket.push(text.clone());
                        }
                    }
                    _ => {}
                },
            }
        };
        match room {
            Some(room) => {
                if let Some(members) = rooms.members(ns, room) {
                    members.iter().for_each(|id| send(id));
                }
            }
            None => rooms.for_each_member_of_namespace(ns, send),
        }
    }

    // ----- rooms ---------------------------------------------------------------

    /// Adds `socket_id` to a room; `created` runs, under the room lock, when
    /// this created the room or its namespace here (so that what follows
    /// from it happens in the order of room changes).
    pub(crate) fn join(&self, ns: &str, room: &str, socket_id: &str, created: impl FnOnce(Shape)) {
        let mut rooms = self.rooms.write();
        let shape = rooms.join(ns, room, socket_id);
        if shape.changed() {
            created(shape);
        }
    }

    /// Removes `socket_id` from a room; `emptied` runs, under the room lock,
    /// when this emptied the room or the namespace here.
    pub(crate) fn leave(&self, ns: &str, room: &str, socket_id: &str, emptied: impl FnOnce(Shape)) {
        let mut rooms = self.rooms.write();
        let shape = rooms.leave(ns, room, socket_id);
        if shape.changed() {
            emptied(shape);
        }
    }

    /// Deletes a room with its memberships; `emptied` as for [`leave`](Self::leave).
    pub(crate) fn remove_room(&self, ns: &str, room: &str, emptied: impl FnOnce(Shape)) {
        let mut rooms = self.rooms.write();
        let shape = rooms.remove_room(ns, room);
        if shape.changed() {
            emptied(shape);
        }
    }

    /// Removes `socket_id` from every room; `emptied` runs, under the room
    /// lock, for each room (namespace, room) this emptied.
    pub(crate) fn leave_all(&self, socket_id: &str, mut emptied: impl FnMut(&str, &str, Shape)) {
        let mut rooms = self.rooms.write();
        for (ns, room, shape) in rooms.leave_all(socket_id) {
            emptied(&ns, &room, shape);
        }
    }

    /// Adds `socket_id` to a room and runs `joined` under the room lock, so
    /// that no message of this node reaches the room's members between the
    /// two; `created` as for [`join`](Self::join).
    pub(crate) fn join_then(
        &self,
        ns: &str,
        room: &str,
        socket_id: &str,
        created: impl FnOnce(Shape),
        joined: impl FnOnce(),
    ) {
        let mut rooms = self.rooms.write();
        let shape = rooms.join(ns, room, socket_id);
        if shape.changed() {
            created(shape);
        }
        joined();
    }

    /// Runs `f` on every room of `socket_id` under the room lock.
    pub(crate) fn each_room_locked(&self, socket_id: &str, mut f: impl FnMut(&str, &str)) {
        let rooms = self.rooms.write();
        for (ns, ids) in rooms.joined_rooms(socket_id, None) {
            for room in ids {
                f(&ns, &room);
            }
        }
    }

    /// Reads the room index.
    pub(crate) fn with_rooms<R>(&self, f: impl FnOnce(&Rooms) -> R) -> R {
        f(&self.rooms.read())
    }
}
