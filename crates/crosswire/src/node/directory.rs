//! Routing by host ([`Routing::ByHost`](crate::Routing::ByHost)): which node
//! holds which socket id, and how messages reach only the nodes that host
//! their recipients.
//!
//! Every node keeps a copy of the cluster's directory, with no central store
//! (it works on every bus):
//!
//! * a node tells the others which ids it bound and unbound
//!   ([`DIRECTORY_EVENT`]), in batches numbered by a per-node sequence, so a
//!   batch that overtakes an earlier one on the bus does not undo it (an
//!   unbind is kept as a tombstone for a while);
//! * a node that appears gets each node's whole list ([`DIRECTORY_SYNC_EVENT`]);
//! * a node that goes away takes its ids with it, and ids are only routed to
//!   live nodes.
//!
//! The directory is a routing hint, never the only way: an id it does not
//! know goes on the shared private channel (every node reads it), and a node
//! sent an id it no longer holds passes the message on there. A lagging
//! directory costs traffic, not messages.

use super::Node;
use crate::cross_server::CrossServerMessage;
use crate::Result;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The cross-server event of a node's id changes (reserved).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::DIRECTORY_EVENT, "_cw_dir_");
/// ```
pub const DIRECTORY_EVENT: &str = "_cw_dir_";

/// The cross-server event of a node's whole id list (reserved).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::DIRECTORY_SYNC_EVENT, "_cw_dir_sync_");
/// ```
pub const DIRECTORY_SYNC_EVENT: &str = "_cw_dir_sync_";

/// How long an unbind is remembered, against a bind that arrives after it.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// At most this many ids per change message.
const BATCH: usize = 4096;

/// How long changes are gathered before they go out.
const GATHER: Duration = Duration::from_millis(2);

/// One node's hold of an id.
#[derive(Debug, Clone)]
struct Holder {
    node: Arc<str>,
    /// The sequence number of the change that set it, on its node.
    seq: u64,
    present: bool,
}

#[derive(Default)]
struct State {
    /// id → the nodes that hold it (or held it: tombstones).
    ids: HashMap<String, Vec<Holder>>,
    /// node → the ids it holds.
    by_node: HashMap<Arc<str>, HashSet<String>>,
    /// Unbinds in the order they were applied, for their expiry.
    tombstones: VecDeque<(Instant, String, Arc<str>, u64)>,
}

impl State {
    fn apply(&mut self, node: &Arc<str>, seq: u64, id: &str, present: bool, now: Instant) {
        let holders = self.ids.entry(id.to_owned()).or_default();
        match holders.iter_mut().find(|h| h.node == *node) {
            Some(h) if h.seq > seq => return, // overtaken: a later change holds
            Some(h) => {
                h.seq = seq;
                h.present = present;
            }
            None => holders.push(Holder {
                node: node.clone(),
                seq,
                present,
            }),
        }
        if present {
            self.by_node
                .entry(node.clone())
                .or_default()
                .insert(id.to_owned());
        } else {
            if let Some(ids) = self.by_node.get_mut(node) {
                ids.remove(id);
            }
            self.tombstones
                .push_back((now, id.to_owned(), node.clone(), seq));
        }
    }

    /// Forgets expired tombstones.
    fn sweep(&mut self, now: Instant) {
        while let Some((at, _, _, _)) = self.tombstones.front() {
            if now.duration_since(*at) < TOMBSTONE_TTL {
                break;
            }
            let Some((_, id, node, seq)) = self.tombstones.pop_front() else {
                break;
            };
            if let Some(holders) = self.ids.get_mut(&id) {
                holders.retain(|h| h.present || h.node != node || h.seq != seq);
                if holders.is_empty() {
                    self.ids.remove(&id);
                }
            }
        }
    }

    fn drop_node(&mut self, node: &str) {
        let Some(ids) = self.by_node.remove(node) else {
            return;
        };
        for id in ids {
            if let Some(holders) = self.ids.get_mut(&id) {
                holders.retain(|h| &*h.node != node);
                if holders.is_empty() {
                    self.ids.remove(&id);
                }
            }
        }
    }
}

/// A batch of a node's changes as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct Delta {
    seq: u64,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    del: Vec<String>,
}

/// A node's whole list as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct Sync {
    seq: u64,
    ids: Vec<String>,
}

/// A node's copy of the cluster's directory, and its own changes waiting to
/// be told.
pub(crate) struct Directory {
    /// This node's change numbers: they start at the process's start time
    /// in milliseconds shifted left by 20 bits, so that a node restarted
    /// under the same name numbers its changes above its former self's.
    seq: AtomicU64,
    state: Mutex<State>,
    /// Ids bound or unbound here since the last batch (their state is read
    /// when the batch goes out).
    pending: Mutex<Vec<String>>,
    wake: Arc<Notify>,
}

impl Default for Directory {
    fn default() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Directory {
            seq: AtomicU64::new(ms << 20),
            state: Mutex::default(),
            pending: Mutex::default(),
            wake: Arc::new(Notify::new()),
        }
    }
}

/// Where the socket ids of one message go.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Routes<'a> {
    /// node → the ids it holds.
    pub(crate) nodes: Vec<(Arc<str>, Vec<&'a str>)>,
    /// Ids no live node is known to hold: the shared channel.
    pub(crate) unknown: Vec<&'a str>,
}

impl Directory {
    /// Groups `ids` by the live nodes holding them (`live` tells which are).
    pub(crate) fn route<'a>(&self, ids: &[&'a str], live: impl Fn(&str) -> bool) -> Routes<'a> {
        let mut routes = Routes::default();
        let state = self.state.lock();
        for &id in ids {
            let mut found = false;
            for h in state.ids.get(id).into_iter().flatten() {
                if !h.present || !live(&h.node) {
                    continue;
                }
                found = true;
                match routes.nodes.iter_mut().find(|(n, _)| *n == h.node) {
                    Some((_, list)) => list.push(id),
                    None => routes.nodes.push((h.node.clone(), vec![id])),
                }
            }
            if !found {
                routes.unknown.push(id);
            }
        }
        routes
    }

    /// The number of (id, node) holds known, for tests and metrics.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().by_node.values().map(HashSet::len).sum()
    }
}

impl Node {
    fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// Whether this node routes by host.
    pub(crate) fn routes_by_host(&self) -> bool {
        self.inner.channels.is_routed() && self.cluster().is_some()
    }

    /// `id` was bound or unbound here: the other nodes will be told.
    pub(crate) fn directory_touched(&self, id: &str) {
        if !self.routes_by_host() {
            return;
        }
        self.directory().pending.lock().push(id.to_owned());
        self.directory().wake.notify_one();
    }

    /// Registers the handlers of the other nodes' changes and lists (at
    /// build, with routing by host).
    pub(crate) fn install_directory(&self) -> Result<()> {
        if !self.routes_by_host() {
            return Ok(());
        }
        self.on_internal(
            DIRECTORY_EVENT,
            |node: Node, msg: CrossServerMessage| async move {
                let Some((from, d)) = node.sent_by_other_node::<Delta>(msg) else {
                    return;
                };
                let from: Arc<str> = from.into();
                let now = Instant::now();
                let mut state = node.directory().state.lock();
                for id in &d.add {
                    state.apply(&from, d.seq, id, true, now);
                }
                for id in &d.del {
                    state.apply(&from, d.seq, id, false, now);
                }
                state.sweep(now);
            },
        )?;
        self.on_internal(
            DIRECTORY_SYNC_EVENT,
            |node: Node, msg: CrossServerMessage| async move {
                let Some((from, sync)) = node.sent_by_other_node::<Sync>(msg) else {
                    return;
                };
                let from: Arc<str> = from.into();
                let now = Instant::now();
                let mut state = node.directory().state.lock();
                let listed: HashSet<&str> = sync.ids.iter().map(String::as_str).collect();
                let gone: Vec<String> = state
                    .by_node
                    .get(&from)
                    .map(|ids| {
                        ids.iter()
                            .filter(|id| !listed.contains(id.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for id in &gone {
                    state.apply(&from, sync.seq, id, false, now);
                }
                for id in &sync.ids {
                    state.apply(&from, sync.seq, id, true, now);
                }
            },
        )?;
        let weak = Arc::downgrade(&self.inner);
        let stop = self.inner.shutdown.clone();
        let wake = self.directory().wake.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = wake.notified() => {}
                }
                // Gather what follows closely, then tell it in one message.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(GATHER) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                Node { inner }.flush_directory();
            }
        });
        Ok(())
    }

    /// Tells the other nodes the current state of every id touched since the
    /// last batch.
    fn flush_directory(&self) {
        let touched = std::mem::take(&mut *self.directory().pending.lock());
        if touched.is_empty() {
            return;
        }
        let mut seen = HashSet::new();
        let (mut add, mut del) = (Vec::new(), Vec::new());
        for id in touched {
            if !seen.insert(id.clone()) {
                continue;
            }
            if self.inner.local.get(&id).is_some() {
                add.push(id);
            } else {
                del.push(id);
            }
        }
        while !add.is_empty() || !del.is_empty() {
            let a: Vec<String> = add.drain(..add.len().min(BATCH)).collect();
            let d: Vec<String> = del.drain(..del.len().min(BATCH - a.len())).collect();
            let delta = Delta {
                seq: self.directory().seq.fetch_add(1, Ordering::Relaxed) + 1,
                add: a,
                del: d,
            };
            if let Ok(payload) = serde_json::to_value(&delta) {
                let _ = self
                    .emit_internal(DIRECTORY_EVENT, payload)
                    .except_self()
                    .send();
            }
        }
    }

    /// A node appeared: it gets this node's whole list.
    pub(crate) fn directory_node_appeared(&self, name: &str) {
        if !self.routes_by_host() {
            return;
        }
        // Changes not yet told are in the list; numbering it after them
        // keeps their late arrival from undoing it.
        let sync = Sync {
            seq: self.directory().seq.fetch_add(1, Ordering::Relaxed) + 1,
            ids: self.inner.local.bound_ids(),
        };
        if let Ok(payload) = serde_json::to_value(&sync) {
            let _ = self
                .emit_internal(DIRECTORY_SYNC_EVENT, payload)
                .to([name])
                .send();
        }
    }

    /// A node went away: its ids with it.
    pub(crate) fn directory_node_gone(&self, name: &str) {
        if self.routes_by_host() {
            self.directory().state.lock().drop_node(name);
        }
    }

    /// Groups socket ids by the live nodes that hold them.
    pub(crate) fn route_ids<'a>(&self, ids: &[&'a str]) -> Routes<'a> {
        let timeout = self.inner.config.member_timeout;
        let now = Instant::now();
        let members = &self.inner.members;
        self.directory().route(ids, |node| {
            members
                .get(node)
                .is_some_and(|seen| now.duration_since(*seen) <= timeout)
        })
    }

    /// The other live nodes this node's directory places `socket_id` on,
    /// sorted (routing by host; empty otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().build()?;
    /// assert!(node.directory_lookup("u1").is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn directory_lookup(&self, socket_id: &str) -> Vec<String> {
        let mut nodes: Vec<String> = (self.route_ids(&[socket_id]).nodes.into_iter())
            .map(|(n, _)| n.to_string())
            .collect();
        nodes.sort();
        nodes
    }

    /// The number of (socket id, node) pairs in this node's directory
    /// (routing by host; 0 otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> crosswire::Result<()> {
    /// let node = crosswire::Node::builder().build()?;
    /// assert_eq!(node.directory_size(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn directory_size(&self) -> usize {
        self.directory().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_late_change_does_not_undo_a_later_one() {
        let mut s = State::default();
        let a: Arc<str> = "a".into();
        let now = Instant::now();
        s.apply(&a, 5, "u1", false, now);
        s.apply(&a, 4, "u1", true, now); // overtaken
        assert!(s.by_node.get(&a).is_none_or(|ids| !ids.contains("u1")));
        s.apply(&a, 6, "u1", true, now);
        assert!(s.by_node[&a].contains("u1"));
    }

    #[test]
    fn routes_group_by_live_holder_and_fall_back_when_unknown() {
        let d = Directory::default();
        {
            let mut s = d.state.lock();
            let now = Instant::now();
            s.apply(&"a".into(), 1, "u1", true, now);
            s.apply(&"a".into(), 1, "u2", true, now);
            s.apply(&"b".into(), 1, "u2", true, now);
            s.apply(&"dead".into(), 1, "u3", true, now);
        }
        let r = d.route(&["u1", "u2", "u3", "u4"], |n| n != "dead");
        assert_eq!(r.nodes.len(), 2);
        assert_eq!(r.nodes[0], ("a".into(), vec!["u1", "u2"]));
        assert_eq!(r.nodes[1], ("b".into(), vec!["u2"]));
        assert_eq!(r.unknown, ["u3", "u4"]);
        d.state.lock().drop_node("a");
        let r = d.route(&["u1"], |_| true);
        assert_eq!(r.unknown, ["u1"]);
    }

    #[test]
    fn tombstones_expire() {
        let mut s = State::default();
        let a: Arc<str> = "a".into();
        let then = Instant::now();
        s.apply(&a, 1, "u1", true, then);
        s.apply(&a, 2, "u1", false, then);
        s.sweep(then + TOMBSTONE_TTL + Duration::from_secs(1));
        assert!(s.ids.is_empty());
        assert!(s.tombstones.is_empty());
    }
}
