//! Room history, for missed-message recovery (opt-in per namespace, see
//! [`NodeBuilder::history`](crate::NodeBuilder::history) and
//! docs/protocol.md §10.3).
//!
//! Every message sent to a room of a namespace with history gets a
//! [`Position`]: an offset within an epoch. The store keeps the last
//! messages of each room, bounded by count and age; a room whose history is
//! gone entirely (idle past its age, or a new store after a restart) starts
//! a new epoch, so an old position is never mistaken for a current one.
//!
//! The store is in memory: a node's own, or the one its
//! [`MemoryHub`](crate::bus::MemoryHub) shares between the nodes of one
//! process. Each room has its own lock. A message may reach a node out of
//! order (two nodes send to one room at once); a socket that opted in is
//! written every offset once and in order all the same: an offset it
//! already has is dropped, and a gap before a message is filled from the
//! store, which holds every message before it is handed on.

pub use crate::config::HistoryConfig;
use crosswire_protocol::client::PushFrame;
pub use crosswire_protocol::history::{GapReason, Position, RecoveryStatus};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One stored message.
struct Entry {
    offset: u64,
    at: Instant,
    frame: PushFrame,
    /// Socket ids the send excluded (they never get it, recovered or not);
    /// `None` for none, so that an ordinary message costs no allocation
    /// beyond the entry (the frame's bytes are shared with the frame sent).
    exclude: Option<Arc<[String]>>,
}

/// One room's history.
struct Stream {
    epoch: Arc<str>,
    last: u64,
    last_at: Instant,
    entries: VecDeque<Entry>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            epoch: new_epoch(),
            last: 0,
            last_at: Instant::now(),
            entries: VecDeque::new(),
        }
    }

    fn trim(&mut self, config: &HistoryConfig, now: Instant) {
        while self.entries.len() > config.max_messages.max(1) {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > config.max_age)
        {
            self.entries.pop_front();
        }
    }

    fn position(&self) -> Position {
        Position::new(&*self.epoch, self.last)
    }
}

/// A fresh epoch: 16 random hex digits.
fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

type Key = (Arc<str>, Arc<str>);

/// What a recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The room's position now (the last message's).
    pub(crate) top: Position,
    /// The messages after the client's position, in order.
    pub(crate) frames: Vec<(u64, PushFrame)>,
    pub(crate) status: RecoveryStatus,
    pub(crate) reason: Option<GapReason>,
}

/// Room histories in memory, shared by the nodes that use one store.
///
/// # Examples
///
/// ```
/// use crosswire::history::MemoryHistory;
/// let store = MemoryHistory::new();
/// assert_eq!(store.rooms(), 0);
/// ```
pub struct MemoryHistory {
    streams: Mutex<HashMap<Key, Arc<Mutex<Stream>>>>,
    appends: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MemoryHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHistory")
            .field("rooms", &self.rooms())
            .finish()
    }
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new()
    }
}

/// How many appends between two sweeps of idle rooms.
const SWEEP_EVERY: u64 = 4096;

impl MemoryHistory {
    /// An empty store.
    ///
    /// # Examples
    ///
    /// See [`MemoryHistory`].
    pub fn new() -> Self {
        MemoryHistory {
            streams: Mutex::new(HashMap::new()),
            appends: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Rooms with a history (an epoch) in the store.
    ///
    /// # Examples
    ///
    /// See [`MemoryHistory`].
    pub fn rooms(&self) -> usize {
        self.streams.lock().len()
    }

    /// Messages held, in every room.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::history::MemoryHistory::new().messages(), 0);
    /// ```
    pub fn messages(&self) -> usize {
        let streams: Vec<_> = self.streams.lock().values().cloned().collect();
        streams.iter().map(|s| s.lock().entries.len()).sum()
    }

    /// The room's stream, created when absent.
    fn stream(&self, ns: &str, room: &str) -> Arc<Mutex<Stream>> {
        let mut streams = self.streams.lock();
        if let Some(s) = streams.get(&(Arc::from(ns), Arc::from(room))) {
            return s.clone();
        }
        let s = Arc::new(Mutex::new(Stream::new()));
        streams.insert((ns.into(), room.into()), s.clone());
        s
    }

    /// Drops the rooms idle past `max_age` (their history is all gone).
    fn sweep(&self, max_age: Duration, now: Instant) {
        self.streams
            .lock()
            .retain(|_, s| now.saturating_duration_since(s.lock().last_at) <= max_age);
    }

    /// Appends `frame` to the room's history; returns its position.
    pub(crate) fn append(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: &[String],
        config: &HistoryConfig,
    ) -> Position {
        let now = Instant::now();
        if self
            .appends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % SWEEP_EVERY
            == SWEEP_EVERY - 1
        {
            self.sweep(config.max_age, now);
        }
        let stream = self.stream(ns, room);
        let mut stream = stream.lock();
        if now.saturating_duration_since(stream.last_at) > config.max_age && stream.last > 0 {
            // Idle past its age: everything it held is gone; so is the epoch.
            *stream = Stream::new();
        }
        stream.last += 1;
        stream.last_at = now;
        let offset = stream.last;
        stream.entries.push_back(Entry {
            offset,
            at: now,
            frame: frame.clone(),
            exclude: (!exclude.is_empty()).then(|| exclude.into()),
        });
        stream.trim(config, now);
        stream.position()
    }

    /// What a client that last had `since` missed in the room; entries that
    /// excluded one of `ids` are left out.
    pub(crate) fn recover(
        &self,
        ns: &str,
        room: &str,
        since: Option<&Position>,
        ids: &[String],
        config: &HistoryConfig,
    ) -> Recovered {
        let now = Instant::now();
        let stream = self.stream(ns, room);
        let mut stream = stream.lock();
        stream.trim(config, now);
        let top = stream.position();
        let Some(since) = since else {
            return Recovered {
                top,
                frames: Vec::new(),
                status: RecoveryStatus::None,
                reason: None,
            };
        };
        let incomplete = |reason| Recovered {
            top: stream.position(),
            frames: Vec::new(),
            status: RecoveryStatus::Incomplete,
            reason: Some(reason),
        };
        if since.epoch != *stream.epoch || since.offset > stream.last {
            return incomplete(GapReason::EpochChanged);
        }
        // The oldest offset still held; everything after `since` must be.
        let first = stream.entries.front().map_or(stream.last + 1, |e| e.offset);
        if since.offset + 1 < first {
            return incomplete(GapReason::TooOld);
        }
        let frames = stream
            .entries
            .iter()
            .filter(|e| e.offset > since.offset && !excluded(&e.exclude, ids))
            .map(|e| (e.offset, e.frame.clone()))
            .collect();
        Recovered {
            top,
            frames,
            status: RecoveryStatus::Complete,
            reason: None,
        }
    }

    /// The messages of `epoch` with offsets in `after+1 .. before` (a gap
    /// seen in a live stream); `None` when they are no longer all held.
    pub(crate) fn range(
        &self,
        ns: &str,
        room: &str,
        epoch: &str,
        after: u64,
        before: u64,
        ids: &[String],
    ) -> Option<Vec<(u64, PushFrame)>> {
        let stream = self
            .streams
            .lock()
            .get(&(Arc::from(ns), Arc::from(room)))?
            .clone();
        let stream = stream.lock();
        if *stream.epoch != *epoch {
            return None;
        }
        let first = stream.entries.front()?.offset;
        if after + 1 < first {
            return None;
        }
        Some(
            stream
                .entries
                .iter()
                .filter(|e| e.offset > after && e.offset < before && !excluded(&e.exclude, ids))
                .map(|e| (e.offset, e.frame.clone()))
                .collect(),
        )
    }
}

fn excluded(exclude: &Option<Arc<[String]>>, ids: &[String]) -> bool {
    exclude
        .as_deref()
        .is_some_and(|exclude| ids.iter().any(|id| exclude.contains(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> PushFrame {
        PushFrame::encode("m", Some(&n)).unwrap_or_else(|_| PushFrame::from_text("{}"))
    }

    #[test]
    fn positions_count_up_and_recovery_returns_what_follows() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let p1 = h.append("n", "r", &frame(1), &[], &c);
        let p2 = h.append("n", "r", &frame(2), &[], &c);
        assert_eq!((p1.offset, p2.offset), (1, 2));
        assert_eq!(p1.epoch, p2.epoch);
        let r = h.recover("n", "r", Some(&p1), &[], &c);
        assert_eq!(r.status, RecoveryStatus::Complete);
        assert_eq!(r.frames.iter().map(|f| f.0).collect::<Vec<_>>(), [2]);
        assert_eq!(r.top, p2);
    }

    #[test]
    fn too_old_and_other_epochs_are_incomplete() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::new(2, Duration::from_secs(60));
        let first = h.append("n", "r", &frame(1), &[], &c);
        for i in 2..=5 {
            h.append("n", "r", &frame(i), &[], &c);
        }
        let r = h.recover("n", "r", Some(&first), &[], &c);
        assert_eq!(
            (r.status, r.reason),
            (RecoveryStatus::Incomplete, Some(GapReason::TooOld))
        );
        assert!(r.frames.is_empty());
        let other = Position::new("other", 1);
        let r = h.recover("n", "r", Some(&other), &[], &c);
        assert_eq!(r.reason, Some(GapReason::EpochChanged));
        // Exactly at the edge: offsets 4 and 5 are held, so 3 recovers.
        let at3 = Position::new(first.epoch.clone(), 3);
        let r = h.recover("n", "r", Some(&at3), &[], &c);
        assert_eq!(r.status, RecoveryStatus::Complete);
        assert_eq!(r.frames.len(), 2);
    }

    #[test]
    fn a_stored_message_costs_one_small_entry_beside_its_shared_frame() {
        // offset, time, the frame's handle (its bytes are the frame sent),
        // and no allocation for an empty exclusion list.
        assert!(
            std::mem::size_of::<Entry>() <= 72,
            "{}",
            std::mem::size_of::<Entry>()
        );
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let f = frame(1);
        h.append("n", "r", &f, &[], &c);
        let stored = h.recover(
            "n",
            "r",
            Some(&Position::new(
                h.recover("n", "r", None, &[], &c).top.epoch,
                0,
            )),
            &[],
            &c,
        );
        assert_eq!(
            stored.frames[0].1.bytes().as_ptr(),
            f.bytes().as_ptr(),
            "the frame is shared, not copied"
        );
    }

    #[test]
    fn excluded_ids_never_get_an_entry_back() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let p0 = h.recover("n", "r", None, &[], &c).top;
        h.append("n", "r", &frame(1), &["u1".into()], &c);
        h.append("n", "r", &frame(2), &[], &c);
        let r = h.recover("n", "r", Some(&p0), &["u1".into()], &c);
        assert_eq!(r.frames.iter().map(|f| f.0).collect::<Vec<_>>(), [2]);
        let gap = h.range("n", "r", &p0.epoch, 0, 3, &["u2".into()]);
        assert_eq!(gap.map(|g| g.len()), Some(2));
    }
}
