//! Missed-message recovery, the node's side: positions for the messages of
//! rooms with history, and the replay when an opted-in socket joins a room
//! (or its id is bound while already a member).

use super::*;
use crate::catch_up::{send_joined, CatchUp, Why};
use crate::history::{HistoryConfig, MemoryHistory};
use crate::local::Positioned;
use crate::socket::{to_utf8, RoomCursor};
use crosswire_protocol::history::{RecoveryStatus, LEFT_EVENT};

/// A message's position, and its history stream when known (0: not known).
pub(crate) struct At<'a> {
    pub(crate) position: &'a crate::history::Position,
    pub(crate) stream: u64,
}

impl Node {
    /// The history of namespace `ns` and its configuration, when it keeps
    /// one.
    pub(crate) fn history_of(&self, ns: &str) -> Option<(&Arc<MemoryHistory>, &HistoryConfig)> {
        let config = self.inner.config.history.get(ns)?;
        Some((self.inner.history.as_ref()?, config))
    }

    pub(crate) fn send_with_history(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: &RoomSend,
        store: &Arc<MemoryHistory>,
        config: &HistoryConfig,
    ) {
        // Delivered and relayed in the order of the positions: the node's
        // concurrent sends to one room never reach a socket out of order.
        store.append_then(
            ns,
            room,
            frame,
            &options.exclude,
            config,
            |position, stream| {
                let at = At { position, stream };
                self.deliver_positioned(ns, room, frame, &options.exclude, at, store, config);
                if !options.local_only {
                    self.relay_room_at(ns, room, frame, options.exclude.clone(), Some(position));
                }
            },
        );
    }

    /// Writes a room message that has a position to this node's members of
    /// the room: opted-in sockets get it with its position, in order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver_positioned(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: &[String],
        at: At<'_>,
        store: &Arc<MemoryHistory>,
        config: &HistoryConfig,
    ) {
        let positioned = Positioned {
            ns,
            room,
            position: at.position,
            stream: at.stream,
            text: std::cell::OnceCell::new(),
            frame,
            history: store,
            config,
        };
        self.inner
            .local
            .push_to_room(ns, Some(room), &to_utf8(frame), exclude, Some(&positioned));
    }

    /// Adds `socket_id` to a room with history: under the room lock, an
    /// opted-in socket gets its position in the room, or a catch-up from
    /// the position it came back with.
    pub(crate) fn join_with_history(&self, ns: &str, room: &str, socket_id: &str) {
        let socket = self.inner.local.get(socket_id);
        self.inner.local.join_then(
            ns,
            room,
            socket_id,
            || self.namespace_changed(ns, true),
            || {
                if let Some(socket) = socket.as_ref().filter(|s| s.recovery().is_some()) {
                    self.recover_room(socket, ns, room);
                }
            },
        );
    }

    /// Catches up the rooms a socket is already in when it gets the id its
    /// positions were kept under.
    pub(crate) fn recover_bound(&self, socket_id: &str, socket: &Socket) {
        let Some(recovery) = socket.recovery() else {
            return;
        };
        if !recovery.has_resume() || self.inner.history.is_none() {
            return;
        }
        self.inner.local.each_room_locked(socket_id, |ns, room| {
            if self.history_of(ns).is_some() {
                self.recover_room(socket, ns, room);
            }
        });
    }

    /// Under the room lock: the socket's cursor starts at the room's top
    /// (no position given: told at once) or at the position it gave (a
    /// catch-up writes what follows and then reports).
    fn recover_room(&self, socket: &Socket, ns: &str, room: &str) {
        let (Some((store, config)), Some(recovery)) = (self.history_of(ns), socket.recovery())
        else {
            return;
        };
        match recovery.take_resume(ns, room) {
            None => {
                let top = store.top(ns, room, config);
                recovery.with_room(ns, room, |cursor| {
                    *cursor = RoomCursor {
                        last: Some(top.clone()),
                        ..RoomCursor::default()
                    }
                });
                send_joined(socket, ns, room, &top, RecoveryStatus::None, None, 0);
            }
            Some(since) => {
                let number = recovery.next_catch_up();
                recovery.with_room(ns, room, |cursor| {
                    *cursor = RoomCursor {
                        last: Some(since),
                        catching: Some(number),
                        skipped: 0,
                    }
                });
                CatchUp {
                    socket: socket.clone(),
                    ns: ns.to_owned(),
                    room: room.to_owned(),
                    store: store.clone(),
                    config: *config,
                    why: Why::Resume,
                    number,
                }
                .start();
            }
        }
    }

    pub(crate) fn left_with_history(&self, ns: &str, room: &str, socket_id: &str) {
        let Some(socket) = self.inner.local.get(socket_id) else {
            return;
        };
        if let Some(recovery) = socket.recovery() {
            recovery.forget(ns, room);
            let _ = socket.emit(LEFT_EVENT, &serde_json::json!({ "ns": ns, "room": room }));
        }
    }
}
