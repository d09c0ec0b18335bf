//! Missed-message recovery, the node's side: positions for the messages of
//! rooms with history, and the replay when an opted-in socket joins a room
//! (or its id is bound while already a member).

use super::*;
use crate::history::{HistoryConfig, MemoryHistory};
use crate::local::{positioned_text, Positioned};
use crate::socket::to_utf8;
use crosswire_protocol::history::{
    positioned_frame, Joined, RoomPosition, JOINED_EVENT, LEFT_EVENT,
};

impl Node {
    /// The history of namespace `ns` and its configuration, when it keeps
    /// one.
    pub(crate) fn history_of(&self, ns: &str) -> Option<(&Arc<MemoryHistory>, &HistoryConfig)> {
        let config = self.inner.config.history.get(ns)?;
        Some((self.inner.history.as_ref()?, config))
    }

    /// Sends a room message of a namespace with history: appends it, then
    /// writes it to this node's members (positioned for the opted-in
    /// sockets) and relays it with its position.
    pub(crate) fn send_with_history(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: &RoomSend,
        store: &MemoryHistory,
        config: &HistoryConfig,
    ) {
        let position = store.append(ns, room, frame, &options.exclude, config);
        self.deliver_positioned(ns, room, frame, &options.exclude, &position, store);
        if !options.local_only {
            self.relay_room_at(ns, room, frame, options.exclude.clone(), Some(&position));
        }
    }

    /// Writes a positioned room message to this node's members.
    pub(crate) fn deliver_positioned(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: &[String],
        position: &crate::history::Position,
        store: &MemoryHistory,
    ) {
        let positioned = Positioned {
            ns,
            room,
            position,
            text: positioned_text(frame, ns, room, position),
            history: store,
        };
        self.inner
            .local
            .push_to_room(ns, Some(room), &to_utf8(frame), exclude, Some(&positioned));
    }

    /// Adds `socket_id` to a room of a namespace with history; an opted-in
    /// socket bound to it first gets what it missed, then its position.
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

    /// After `socket_id` was bound to an opted-in socket that resumes from
    /// positions: the rooms it is already in recover now.
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

    /// Called with the room lock held: writes the messages after the
    /// socket's resume position (if it gave one), then [`JOINED_EVENT`] with
    /// the outcome; from then on the socket gets the room's messages after
    /// that position.
    fn recover_room(&self, socket: &Socket, ns: &str, room: &str) {
        let (Some((store, config)), Some(recovery)) = (self.history_of(ns), socket.recovery())
        else {
            return;
        };
        let since = recovery.take_resume(ns, room);
        let ids = socket.socket_ids();
        let found = store.recover(ns, room, since.as_ref(), &ids, config);
        let recovered = found.frames.len() as u64;
        for (offset, frame) in &found.frames {
            let p = RoomPosition::new(ns, room, found.top.epoch.clone(), *offset);
            let _ = socket.push(to_utf8(&positioned_frame(frame, &p, true)));
        }
        if recovered > 0 {
            Stats::add(&self.inner.stats.recovered_messages, recovered);
        }
        match found.status {
            crate::history::RecoveryStatus::Complete => {
                Stats::incr(&self.inner.stats.recoveries_complete)
            }
            crate::history::RecoveryStatus::Incomplete => {
                Stats::incr(&self.inner.stats.recoveries_incomplete)
            }
            crate::history::RecoveryStatus::None => {}
        }
        recovery.with_last(ns, room, |last| *last = Some(found.top.clone()));
        let joined = Joined {
            ns: ns.to_owned(),
            room: room.to_owned(),
            epoch: found.top.epoch.clone(),
            offset: found.top.offset,
            recovery: found.status,
            reason: found.reason,
            recovered,
        };
        if let Err(e) = socket.emit(JOINED_EVENT, &joined) {
            tracing::debug!(error = %e, "position not sent");
        }
    }

    /// After `socket_id` left a room of a namespace with history: an
    /// opted-in socket bound to it forgets its position and is told.
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
