//! Missed-message recovery, the node's side: positions for the messages of
//! rooms with history, and the replay when an opted-in socket joins a room
//! (or its id is bound while already a member).

use super::*;
use crate::catch_up::{send_joined, CatchUp, Why};
use crate::history::{Append, HistoryBackend, HistoryConfig, MemoryHistory, SharedHistory};
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
    pub(crate) fn history_of(&self, ns: &str) -> Option<(&SharedHistory, &HistoryConfig)> {
        let config = self.inner.config.history.get(ns)?;
        Some((self.inner.history.as_ref()?, config))
    }

    pub(crate) fn send_with_history(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: &RoomSend,
        store: &SharedHistory,
        config: &HistoryConfig,
    ) {
        match store {
            SharedHistory::Memory(memory) => {
                self.send_with_memory_history(ns, room, frame, options, memory, store, config)
            }
            SharedHistory::Backend(backend) => {
                self.send_with_backend_history(ns, room, frame, options, backend, config)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_with_memory_history(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: &RoomSend,
        memory: &MemoryHistory,
        store: &SharedHistory,
        config: &HistoryConfig,
    ) {
        // Delivered and relayed in the order of the positions: the node's
        // concurrent sends to one room never reach a socket out of order.
        memory.append_then(
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

    /// The backend stores and publishes the message in one step. This
    /// node's members get it as every node's do, when it comes back from
    /// the bus (see `comes_back`): all the room's messages arrive there in
    /// the order of their positions. A message that is not published
    /// (`local_only`, or no bus) is delivered when the backend hands back
    /// its position. When the backend cannot take it, the message is sent
    /// without a position (nothing is lost for the sockets that are here)
    /// and the room's history is reset, so that no recovery passes over it.
    fn send_with_backend_history(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        options: &RoomSend,
        backend: &Arc<dyn HistoryBackend>,
        config: &HistoryConfig,
    ) {
        let codec = self.inner.config.codec;
        let route = crosswire_protocol::envelope::WsRoute::Room {
            data: frame.clone(),
            room_namespace: ns.to_owned(),
            room_id: Some(room.to_owned()),
            sender_server: self.server_name().to_owned(),
            exclude_socket_ids: options.exclude.clone(),
        };
        let cluster = self.cluster();
        let message_id = cluster.and_then(|c| c.next_message_id());
        let channel = match (cluster, options.local_only) {
            (Some(_), false) => self.room_channel(ns, room),
            _ => None,
        };
        let split =
            crosswire_protocol::envelope::split_at_position(&route, message_id.as_deref(), codec);
        let (prefix, suffix) = match split {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(%ns, %room, error = %e, "could not encode a room message");
                return;
            }
        };
        if prefix.len() + suffix.len() + 64 > self.inner.config.max_bus_message_size {
            Stats::incr(&self.inner.stats.bus_publish_oversize);
            tracing::warn!(%ns, %room, "room message larger than max_bus_message_size: not sent");
            return;
        }
        let published = channel.is_some();
        let node = self.clone();
        let (ns_owned, room_owned) = (ns.to_owned(), room.to_owned());
        let (frame, exclude, local_only) =
            (frame.clone(), options.exclude.clone(), options.local_only);
        let store = SharedHistory::Backend(backend.clone());
        let config_copy = *config;
        // On failure the backend has reset the room's history itself (see
        // `HistoryBackend`): the message goes out without a position.
        let done = Box::new(
            move |outcome: Result<crate::history::Position, crate::history::HistoryError>| {
                let (ns, room) = (ns_owned.as_str(), room_owned.as_str());
                match outcome {
                    Ok(_) if published => {}
                    Ok(position) => {
                        let at = At {
                            position: &position,
                            stream: 0,
                        };
                        node.deliver_positioned(
                            ns,
                            room,
                            &frame,
                            &exclude,
                            at,
                            &store,
                            &config_copy,
                        );
                    }
                    Err(e) => {
                        Stats::incr(&node.inner.stats.history_append_failures);
                        tracing::warn!(%ns, %room, error = %e, "room history unavailable: message sent without a position");
                        node.deliver_to_room(ns, Some(room), &frame, &exclude);
                        if !local_only {
                            node.relay_room(ns, room, &frame, exclude);
                        }
                    }
                }
            },
        );
        backend.append(Append {
            ns: ns.to_owned(),
            room: room.to_owned(),
            channel: channel.map(|c| c.to_string()),
            prefix,
            suffix,
            codec,
            config: *config,
            done,
        });
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
        store: &SharedHistory,
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
            codec: self.inner.config.codec,
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
            |shape| self.rooms_changed(ns, room, shape, true),
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
        let resume = recovery.take_resume(ns, room);
        let (why, since) = match (resume, store) {
            (None, SharedHistory::Memory(memory)) => {
                let top = memory.top(ns, room, config);
                recovery.with_room(ns, room, |cursor| {
                    *cursor = RoomCursor {
                        last: Some(top.clone()),
                        ..RoomCursor::default()
                    }
                });
                send_joined(socket, ns, room, &top, RecoveryStatus::None, None, 0);
                return;
            }
            // The top is read asynchronously: live messages wait for it.
            (None, SharedHistory::Backend(_)) => (Why::Join, None),
            (Some(since), _) => (Why::Resume, Some(since)),
        };
        let number = recovery.next_catch_up();
        recovery.with_room(ns, room, |cursor| {
            *cursor = RoomCursor {
                last: since,
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
            codec: self.inner.config.codec,
            why,
            number,
        }
        .start();
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
