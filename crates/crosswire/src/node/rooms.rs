//! Rooms in namespaces: joining, leaving and every room query.

use super::cluster::Reason;
use super::*;
use crate::error::NAMESPACE_MSG;
use crate::error::ROOM_ID_MSG;
use crate::error::SOCKET_ID_MSG;
use crate::rooms::Shape;
use crate::Match;
use crosswire_protocol::presence::Op;
use indexmap::IndexMap;
use std::collections::HashSet;

impl Node {
    // ----- rooms -----------------------------------------------------------

    pub(crate) fn check_room_args(&self, ns: &str, room: &str) -> Result<()> {
        non_empty(ns, NAMESPACE_MSG)?;
        non_empty(room, ROOM_ID_MSG)?;
        // Rejects namespaces that would map onto the broadcast or private
        // channels (a defect of the original).
        self.inner.channels.room_namespace(ns)?;
        Ok(())
    }

    /// Adds `socket_id` to room `room` of namespace `ns` (`joinRoom`).
    /// Membership belongs to the id; it need not be bound to a socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("chat", "r1", "u2")?;
    /// assert_eq!(node.socket_count_in_room("chat", Some("r1"), crosswire::Match::Exact), 2);
    /// assert!(node.join_room("chat", "", "u1").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_room(&self, ns: &str, room: &str, socket_id: &str) -> Result<()> {
        self.check_room_args(ns, room)?;
        non_empty(socket_id, SOCKET_ID_MSG)?;
        if self.history_of(ns).is_some() {
            self.join_with_history(ns, room, socket_id);
        } else {
            // First room of this namespace here: subscribe its channel
            // (under the room lock, so subscription changes follow room
            // changes in order).
            self.inner.local.join(ns, room, socket_id, |shape| {
                self.rooms_changed(ns, room, shape, true)
            });
        }
        // Presence lists connected sockets: an id bound to none here (not
        // connected, or just logged in elsewhere) is a member of the room
        // but not present.
        if self.has_presence(ns) && self.get_socket(socket_id).is_some() {
            self.presence_changed(ns, room, socket_id, Op::Join);
        }
        Ok(())
    }

    /// A room or a namespace got its first member here (`created`) or lost
    /// its last one: the channels that follow them. In the compatible mode a
    /// namespace's channel (kept when `auto_unsubscribe` is off); with
    /// routing by host the room's own channel, always given up when empty.
    pub(crate) fn rooms_changed(&self, ns: &str, room: &str, shape: Shape, created: bool) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        if self.inner.channels.is_routed() {
            if shape.room {
                cluster.want(&self.inner.channels.room(ns, room), Reason::Room, created);
            }
            return;
        }
        if !shape.namespace || (!created && !self.inner.config.auto_unsubscribe) {
            return;
        }
        if let Ok(channel) = self.inner.channels.room_namespace(ns) {
            cluster.want(&channel, Reason::Room, created);
        }
    }

    /// Waits until this node gets the other nodes' messages to room `room`
    /// of `ns`: the bus subscription its members here need (the
    /// namespace's channel, or with routing by host the room's own) is
    /// confirmed. A node subscribes when a room (or namespace) gets its
    /// first member here, and what other nodes send before the bus confirms
    /// it does not reach this node: await this after a join when the next
    /// message matters. Immediate without a bus, or when the room has no
    /// member here.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::{bus::MemoryHub, Routing};
    /// let node = crosswire::Node::builder()
    ///     .bus(MemoryHub::new().bus())
    ///     .routing(Routing::ByHost)
    ///     .build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.room_ready("chat", "r1").await;
    /// assert!(node.subscribed_channels().contains(&"csbp:room:4:chat:r1".to_owned()));
    /// node.room_ready("chat", "nobody-here").await; // returns at once
    /// # Ok(())
    /// # }
    /// ```
    pub async fn room_ready(&self, ns: &str, room: &str) {
        let (Some(cluster), Some(channel)) = (self.cluster(), self.room_channel(ns, room)) else {
            return;
        };
        cluster.wait_wanted_confirmed(&channel).await;
    }

    /// The channel a message of room `room` of `ns` travels on: its
    /// namespace's, or with routing by host its own. `None` for a
    /// namespace that maps to a reserved channel.
    pub(crate) fn room_channel(&self, ns: &str, room: &str) -> Option<String> {
        let channels = &self.inner.channels;
        let namespace = channels.room_namespace(ns).ok()?;
        Some(if channels.is_routed() {
            channels.room(ns, room)
        } else {
            namespace
        })
    }

    /// Removes `socket_id` from a room (`leaveRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.leave_room("chat", "r1", "u1")?;
    /// assert!(!node.is_joined_room("u1", "chat", Some("r1")));
    /// assert_eq!(node.room_count("chat", crosswire::Match::Exact), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave_room(&self, ns: &str, room: &str, socket_id: &str) -> Result<()> {
        non_empty(ns, NAMESPACE_MSG)?;
        non_empty(room, ROOM_ID_MSG)?;
        non_empty(socket_id, SOCKET_ID_MSG)?;
        self.inner.local.leave(ns, room, socket_id, |shape| {
            self.rooms_changed(ns, room, shape, false)
        });
        if self.history_of(ns).is_some() {
            self.left_with_history(ns, room, socket_id);
        }
        if self.has_presence(ns) {
            self.presence_changed(ns, room, socket_id, Op::Leave);
        }
        Ok(())
    }

    /// Deletes a room on this node with all its memberships (`removeRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("chat", "r1", "u2")?;
    /// node.remove_room("chat", "r1");
    /// assert!(node.room_ids("chat", crosswire::Match::Exact).is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove_room(&self, ns: &str, room: &str) {
        let members = if self.has_presence(ns) {
            self.room_socket_ids(ns, Some(room), Match::Exact)
        } else {
            Default::default()
        };
        self.inner
            .local
            .remove_room(ns, room, |shape| self.rooms_changed(ns, room, shape, false));
        for id in members {
            self.presence_changed(ns, room, &id, Op::Leave);
        }
    }

    pub(crate) fn leave_all_rooms(&self, socket_id: &str) {
        let mut left = Vec::new();
        if !self.inner.config.presence.is_empty() {
            let rooms = self
                .inner
                .local
                .with_rooms(|r| r.joined_rooms(socket_id, None));
            for (ns, rooms) in rooms {
                if self.has_presence(&ns) {
                    left.extend(rooms.into_iter().map(|room| (ns.clone(), room)));
                }
            }
        }
        self.inner.local.leave_all(socket_id, |ns, room, shape| {
            self.rooms_changed(ns, room, shape, false)
        });
        for (ns, room) in left {
            self.presence_changed(&ns, &room, socket_id, Op::Leave);
        }
    }

    /// Number of memberships in the selected rooms (`getSocketCountInRoom`):
    /// `room` `None` selects every room of `ns`; with [`Match::Prefix`], every
    /// room whose id starts with `room`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game", "eu-1", "u1")?;
    /// node.join_room("game", "eu-2", "u2")?;
    /// node.join_room("game", "us-1", "u3")?;
    /// assert_eq!(node.socket_count_in_room("game", Some("eu-1"), Match::Exact), 1);
    /// assert_eq!(node.socket_count_in_room("game", Some("eu-"), Match::Prefix), 2);
    /// assert_eq!(node.socket_count_in_room("game", None, Match::Exact), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn socket_count_in_room(&self, ns: &str, room: Option<&str>, matching: Match) -> usize {
        self.inner
            .local
            .with_rooms(|r| r.socket_count(ns, room, matching))
    }

    /// The distinct socket ids in the selected rooms (`getRoomSocketIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game", "g1", "u1")?;
    /// node.join_room("game", "g2", "u1")?;
    /// node.join_room("game", "g2", "u2")?;
    /// let mut ids: Vec<String> = node.room_socket_ids("game", None, Match::Exact).into_iter().collect();
    /// ids.sort();
    /// assert_eq!(ids, ["u1", "u2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_socket_ids(
        &self,
        ns: &str,
        room: Option<&str>,
        matching: Match,
    ) -> HashSet<String> {
        self.inner
            .local
            .with_rooms(|r| r.socket_ids(ns, room, matching))
    }

    /// The rooms `socket_id` is in, by namespace, optionally only namespaces
    /// starting with `ns_prefix` (`getJoinedRooms`). A copy: changing it does
    /// not change the node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("game", "g1", "u1")?;
    /// let rooms = node.joined_rooms("u1", None)?;
    /// assert_eq!(rooms["chat"], ["r1"]);
    /// assert_eq!(rooms["game"], ["g1"]);
    /// assert_eq!(node.joined_rooms("u1", Some("ga"))?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn joined_rooms(
        &self,
        socket_id: &str,
        ns_prefix: Option<&str>,
    ) -> Result<IndexMap<String, Vec<String>>> {
        non_empty(socket_id, SOCKET_ID_MSG)?;
        Ok(self
            .inner
            .local
            .with_rooms(|r| r.joined_rooms(socket_id, ns_prefix)))
    }

    /// Whether `socket_id` is in room `room` of `ns`, or with `None` in any
    /// room of exactly `ns` (`isJoinedRoom`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// assert!(node.is_joined_room("u1", "chat", Some("r1")));
    /// assert!(node.is_joined_room("u1", "chat", None));
    /// assert!(!node.is_joined_room("u1", "chat", Some("r2")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_joined_room(&self, socket_id: &str, ns: &str, room: Option<&str>) -> bool {
        self.inner
            .local
            .with_rooms(|r| r.is_joined(socket_id, ns, room))
    }

    /// Number of rooms in `ns`, or in every namespace starting with `ns`
    /// (`getRoomCount`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("game:eu", "g1", "u1")?;
    /// node.join_room("game:us", "g2", "u2")?;
    /// assert_eq!(node.room_count("game:eu", Match::Exact), 1);
    /// assert_eq!(node.room_count("game:", Match::Prefix), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_count(&self, ns: &str, matching: Match) -> usize {
        self.inner.local.with_rooms(|r| r.room_count(ns, matching))
    }

    /// Room ids of `ns` in creation order, or of every namespace starting with
    /// `ns` (`getRoomIds`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// use crosswire::Match;
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "b", "u1")?;
    /// node.join_room("chat", "a", "u1")?;
    /// assert_eq!(node.room_ids("chat", Match::Exact), ["b", "a"]); // creation order
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_ids(&self, ns: &str, matching: Match) -> Vec<String> {
        self.inner.local.with_rooms(|r| r.room_ids(ns, matching))
    }

    /// Namespaces with at least one room on this node.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().server_name("n1").build()?;
    /// node.join_room("chat", "r1", "u1")?;
    /// node.join_room("game", "g1", "u1")?;
    /// let mut namespaces = node.room_namespaces();
    /// namespaces.sort();
    /// assert_eq!(namespaces, ["chat", "game"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn room_namespaces(&self) -> Vec<String> {
        self.inner
            .local
            .with_rooms(|r| r.namespaces().map(str::to_owned).collect())
    }
}
