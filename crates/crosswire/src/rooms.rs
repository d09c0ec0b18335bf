//! The room index: namespace → room id → member socket ids, and the reverse
//! map socket id → namespace → room ids.
//!
//! Membership belongs to socket *ids*, not to connections: an id can be a
//! member while no socket is bound to it (as in the original). Namespaces are
//! kept in an ordered map so that prefix queries walk only the matching range;
//! exact lookups are a map lookup, never a scan. Rooms keep their insertion
//! order, as the original's `getRoomIds` does.

use indexmap::{IndexMap, IndexSet};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How a room query matches its namespace or room id argument.
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
/// assert_eq!(node.room_ids("game", Match::Exact), ["eu-1", "eu-2"]);
/// assert_eq!(node.socket_count_in_room("game", Some("eu"), Match::Exact), 0);
/// assert_eq!(node.socket_count_in_room("game", Some("eu"), Match::Prefix), 2);
/// assert_eq!(Match::default(), Match::Exact);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Match {
    /// The name must be equal (the original's `{exactMatch: true}`, its default).
    #[default]
    Exact,
    /// The name must start with the argument.
    Prefix,
}

type Members = IndexSet<String>;

/// What a membership change did to the index: created (on join) or emptied
/// and deleted (on leave) the room, and its namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The room was created / emptied.
    pub(crate) room: bool,
    /// The namespace was created / emptied.
    pub(crate) namespace: bool,
}

impl Shape {
    /// Whether anything was created or emptied.
    pub(crate) fn changed(self) -> bool {
        self.room || self.namespace
    }
}

#[derive(Debug, Default)]
struct Namespace {
    rooms: IndexMap<String, Members>,
}

/// The room index of one node. Not synchronised: the node wraps it in a lock.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    namespaces: BTreeMap<String, Namespace>,
    by_socket: HashMap<String, IndexMap<String, IndexSet<String>>>,
}

/// Walks the keys of `map` that start with `prefix`, in order.
fn prefixed<'a, V>(
    map: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range::<str, _>((
        std::ops::Bound::Included(prefix),
        std::ops::Bound::Unbounded,
    ))
    .take_while(move |(k, _)| k.starts_with(prefix))
}

impl Rooms {
    /// Adds `socket_id` to the room. Returns what this call created (the
    /// room, the namespace: their first member on this node).
    pub(crate) fn join(&mut self, ns: &str, room: &str, socket_id: &str) -> Shape {
        let mut created = Shape {
            room: false,
            namespace: !self.namespaces.contains_key(ns),
        };
        let namespace = self.namespaces.entry(ns.to_owned()).or_default();
        match namespace.rooms.get_mut(room) {
            Some(members) => {
                if !members.contains(socket_id) {
                    members.insert(socket_id.to_owned());
                }
            }
            None => {
                let mut members = Members::default();
                members.insert(socket_id.to_owned());
                namespace.rooms.insert(room.to_owned(), members);
                created.room = true;
            }
        }
        let joined = self.by_socket.entry(socket_id.to_owned()).or_default();
        match joined.get_mut(ns) {
            Some(rooms) => {
                if !rooms.contains(room) {
                    rooms.insert(room.to_owned());
                }
            }
            None => {
                let mut rooms = IndexSet::new();
                rooms.insert(room.to_owned());
                joined.insert(ns.to_owned(), rooms);
            }
        }
        created
    }

    /// Removes `socket_id` from the room. Returns what this emptied (and
    /// deleted): the room, the namespace.
    pub(crate) fn leave(&mut self, ns: &str, room: &str, socket_id: &str) -> Shape {
        let mut emptied = Shape::default();
        if let Some(namespace) = self.namespaces.get_mut(ns) {
            if let Some(members) = namespace.rooms.get_mut(room) {
                members.swap_remove(socket_id);
                if members.is_empty() {
                    namespace.rooms.shift_remove(room);
                    emptied.room = true;
                }
            }
            if namespace.rooms.is_empty() {
                self.namespaces.remove(ns);
                emptied.namespace = true;
            }
        }
        self.forget_membership(socket_id, ns, room);
        emptied
    }

    fn forget_membership(&mut self, socket_id: &str, ns: &str, room: &str) {
        if let Some(joined) = self.by_socket.get_mut(socket_id) {
            if let Some(rooms) = joined.get_mut(ns) {
                rooms.shift_remove(room);
                if rooms.is_empty() {
                    joined.shift_remove(ns);
                }
            }
            if joined.is_empty() {
                self.by_socket.remove(socket_id);
            }
        }
    }

    /// Deletes a room and every membership in it. Returns what this emptied:
    /// the room (if it existed), the namespace.
    pub(crate) fn remove_room(&mut self, ns: &str, room: &str) -> Shape {
        let Some(namespace) = self.namespaces.get_mut(ns) else {
            return Shape::default();
        };
        let Some(members) = namespace.rooms.shift_remove(room) else {
            return Shape::default();
        };
        let emptied = Shape {
            room: true,
            namespace: namespace.rooms.is_empty(),
        };
        if emptied.namespace {
            self.namespaces.remove(ns);
        }
        for id in &members {
            self.forget_membership(id, ns, room);
        }
        emptied
    }

    /// Removes `socket_id` from every room. Returns the rooms this emptied,
    /// with whether each emptied its namespace.
    pub(crate) fn leave_all(&mut self, socket_id: &str) -> Vec<(String, String, Shape)> {
        let Some(joined) = self.by_socket.remove(socket_id) else {
            return Vec::new();
        };
        let mut emptied = Vec::new();
        for (ns, rooms) in joined {
            let Some(namespace) = self.namespaces.get_mut(&ns) else {
                continue;
            };
            let first = emptied.len();
            for room in rooms {
                if let Some(members) = namespace.rooms.get_mut(&room) {
                    members.swap_remove(socket_id);
                    if members.is_empty() {
                        namespace.rooms.shift_remove(&room);
                        emptied.push((
                            ns.clone(),
                            room,
                            Shape {
                                room: true,
                                namespace: false,
                            },
                        ));
                    }
                }
            }
            if namespace.rooms.is_empty() {
                self.namespaces.remove(&ns);
                // The namespace went with its last emptied room.
                let any = emptied.len() > first;
                match emptied.last_mut() {
                    Some(last) if any => last.2.namespace = true,
                    _ => emptied.push((
                        ns,
                        String::new(),
                        Shape {
                            room: false,
                            namespace: true,
                        },
                    )),
                }
            }
        }
        emptied
    }

    /// Members of exactly one room (for sending).
    pub(crate) fn members(&self, ns: &str, room: &str) -> Option<&IndexSet<String>> {
        self.namespaces.get(ns)?.rooms.get(room)
    }

    /// Calls `f` for every member of every room of exactly `ns` (a socket in
    /// several rooms is visited once per room).
    pub(crate) fn for_each_member_of_namespace(&self, ns: &str, mut f: impl FnMut(&str)) {
        if let Some(namespace) = self.namespaces.get(ns) {
            for members in namespace.rooms.values() {
                members.iter().for_each(|m| f(m));
            }
        }
    }

    /// Whether the namespace has any room on this node.
    #[cfg(test)]
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.contains_key(ns)
    }

    fn selected_rooms<'a>(
        &'a self,
        ns: &'a str,
        room: Option<&'a str>,
        matching: Match,
    ) -> Box<dyn Iterator<Item = &'a Members> + 'a> {
        let Some(namespace) = self.namespaces.get(ns) else {
            return Box::new(std::iter::empty());
        };
        match (room, matching) {
            (None, _) | (Some(""), _) => Box::new(namespace.rooms.values()),
            (Some(room), Match::Exact) => Box::new(namespace.rooms.get(room).into_iter()),
            (Some(room), Match::Prefix) => Box::new(
                namespace
                    .rooms
                    .iter()
                    .filter(move |(id, _)| id.starts_with(room))
                    .map(|(_, m)| m),
            ),
        }
    }

    pub(crate) fn socket_count(&self, ns: &str, room: Option<&str>, matching: Match) -> usize {
        self.selected_rooms(ns, room, matching)
            .map(|m| m.len())
            .sum()
    }

    pub(crate) fn socket_ids(
        &self,
        ns: &str,
        room: Option<&str>,
        matching: Match,
    ) -> HashSet<String> {
        let mut out = HashSet::new();
        for members in self.selected_rooms(ns, room, matching) {
            out.extend(members.iter().cloned());
        }
        out
    }

    pub(crate) fn joined_rooms(
        &self,
        socket_id: &str,
        ns_prefix: Option<&str>,
    ) -> IndexMap<String, Vec<String>> {
        let Some(joined) = self.by_socket.get(socket_id) else {
            return IndexMap::new();
        };
        joined
            .iter()
            .filter(|(ns, _)| ns_prefix.is_none_or(|p| ns.starts_with(p)))
            .map(|(ns, rooms)| (ns.clone(), rooms.iter().cloned().collect()))
            .collect()
    }

    pub(crate) fn is_joined(&self, socket_id: &str, ns: &str, room: Option<&str>) -> bool {
        let Some(rooms) = self.by_socket.get(socket_id).and_then(|j| j.get(ns)) else {
            return false;
        };
        match room {
            Some(room) => rooms.contains(room),
            None => !rooms.is_empty(),
        }
    }

    pub(crate) fn room_count(&self, ns: &str, matching: Match) -> usize {
        match matching {
            Match::Exact => self.namespaces.get(ns).map_or(0, |n| n.rooms.len()),
            Match::Prefix => prefixed(&self.namespaces, ns)
                .map(|(_, n)| n.rooms.len())
                .sum(),
        }
    }

    pub(crate) fn room_ids(&self, ns: &str, matching: Match) -> Vec<String> {
        match matching {
            Match::Exact => self
                .namespaces
                .get(ns)
                .map(|n| n.rooms.keys().cloned().collect())
                .unwrap_or_default(),
            Match::Prefix => prefixed(&self.namespaces, ns)
                .flat_map(|(_, n)| n.rooms.keys().cloned())
                .collect(),
        }
    }

    /// Namespaces that currently have rooms.
    pub(crate) fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_and_namespace_lifecycle() {
        let mut r = Rooms::default();
        let both = Shape {
            room: true,
            namespace: true,
        };
        let room = Shape {
            room: true,
            namespace: false,
        };
        assert_eq!(r.join("chat", "r1", "u1"), both);
        assert_eq!(r.join("chat", "r2", "u1"), room);
        assert_eq!(r.join("chat", "r1", "u2"), Shape::default());
        assert!(!r.join("chat", "r1", "u2").changed());
        assert_eq!(r.socket_count("chat", None, Match::Exact), 3);
        assert_eq!(r.room_ids("chat", Match::Exact), vec!["r1", "r2"]);
        assert_eq!(r.leave("chat", "r1", "u1"), Shape::default());
        assert_eq!(r.leave("chat", "r2", "u1"), room);
        assert_eq!(r.leave("chat", "r1", "u2"), both);
        assert!(!r.has_namespace("chat"));
        assert!(r.by_socket.is_empty());
    }

    #[test]
    fn leave_all_reports_emptied_rooms_and_namespaces() {
        let mut r = Rooms::default();
        r.join("a", "1", "u1");
        r.join("b", "1", "u1");
        r.join("b", "2", "u2");
        r.join("c", "1", "u1");
        r.join("c", "2", "u1");
        let mut emptied = r.leave_all("u1");
        emptied.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        let both = Shape {
            room: true,
            namespace: true,
        };
        let room = Shape {
            room: true,
            namespace: false,
        };
        let names: Vec<(&str, &str)> = emptied
            .iter()
            .map(|(n, r, _)| (n.as_str(), r.as_str()))
            .collect();
        assert_eq!(names, [("a", "1"), ("b", "1"), ("c", "1"), ("c", "2")]);
        assert_eq!(emptied[0].2, both);
        assert_eq!(emptied[1].2, room);
        assert!(emptied[2].2.namespace || emptied[3].2.namespace);
        assert!(emptied[2].2.room && emptied[3].2.room);
        assert!(r.has_namespace("b"));
        assert!(!r.is_joined("u1", "b", None));
    }

    #[test]
    fn prefix_queries_walk_only_matching_namespaces() {
        let mut r = Rooms::default();
        r.join("game", "g1", "u1");
        r.join("game2", "g1", "u2");
        r.join("gamf", "x", "u3");
        r.join("chat", "c", "u4");
        assert_eq!(r.room_count("game", Match::Prefix), 2);
        assert_eq!(r.room_count("game", Match::Exact), 1);
        assert_eq!(r.room_ids("ga", Match::Prefix), vec!["g1", "g1", "x"]);
        assert_eq!(r.socket_count("game", Some("g"), Match::Prefix), 1);
    }

    #[test]
    fn remove_room_forgets_members() {
        let mut r = Rooms::default();
        r.join("chat", "r1", "u1");
        r.join("chat", "r1", "u2");
        assert_eq!(
            r.remove_room("chat", "r1"),
            Shape {
                room: true,
                namespace: true
            }
        );
        assert_eq!(r.remove_room("chat", "r1"), Shape::default());
        assert!(!r.is_joined("u1", "chat", Some("r1")));
        assert!(r.joined_rooms("u2", None).is_empty());
    }
}
