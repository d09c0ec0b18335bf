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
//! The store is [`SharedHistory`]: in memory ([`MemoryHistory`], a node's
//! own or the one its [`MemoryHub`](crate::bus::MemoryHub) shares between
//! the nodes of one process), or a [`HistoryBackend`] that the bus provides
//! (the Redis bus keeps each room's history on one of its Redis nodes, and
//! assigns the position, stores and publishes in one step). In memory, each
//! room has its own lock. A message may reach a node out of
//! order (two nodes send to one room at once); a socket that opted in is
//! written every offset once and in order all the same: an offset it
//! already has is dropped, and a gap before a message is filled from the
//! store, which holds every message before it is handed on.

pub use crate::config::HistoryConfig;
use bytes::Bytes;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::Codec;
pub use crosswire_protocol::history::{GapReason, Position, RecoveryStatus};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the nodes of a cluster keep room histories.
///
/// # Examples
///
/// ```
/// use crosswire::bus::{Bus, MemoryHub};
/// use crosswire::history::SharedHistory;
/// let bus = MemoryHub::new().bus();
/// assert!(matches!(bus.history(), Some(SharedHistory::Memory(_))));
/// ```
#[derive(Clone)]
pub enum SharedHistory {
    /// In this process.
    Memory(Arc<MemoryHistory>),
    /// Outside it (e.g. in Redis), reached asynchronously.
    Backend(Arc<dyn HistoryBackend>),
}

impl std::fmt::Debug for SharedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SharedHistory::Memory(m) => m.fmt(f),
            SharedHistory::Backend(_) => f.write_str("SharedHistory::Backend"),
        }
    }
}

/// Why a [`HistoryBackend`] could not serve a request.
///
/// # Examples
///
/// ```
/// use crosswire::history::HistoryError;
/// let e = HistoryError::Unavailable("redis 10.0.0.1:6379: connection refused".into());
/// assert_eq!(e.to_string(), "room history unavailable: redis 10.0.0.1:6379: connection refused");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The store that keeps the room's history cannot be reached, or did
    /// not answer in time (the request may or may not have been applied).
    #[error("room history unavailable: {0}")]
    Unavailable(String),
}

/// What a [`HistoryBackend`] calls when an append is done: the message's
/// position, or why it was neither stored nor published.
pub type AppendDone = Box<dyn FnOnce(Result<Position, HistoryError>) + Send>;

/// A room message to store and publish: its bus envelope, cut where its
/// position goes (see
/// [`split_at_position`](crosswire_protocol::envelope::split_at_position)).
pub struct Append {
    /// The room's namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// The bus channel to publish on; `None` to store only.
    pub channel: Option<String>,
    /// The envelope before its position.
    pub prefix: Vec<u8>,
    /// The envelope after its position.
    pub suffix: Vec<u8>,
    /// How the position is encoded between them.
    pub codec: Codec,
    /// The room's bounds.
    pub config: HistoryConfig,
    /// Called with the outcome.
    pub done: AppendDone,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append")
            .field("ns", &self.ns)
            .field("room", &self.room)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// A read of a room's history: what follows `after`, or only the room's
/// top (its current position) when `after` is `None`.
#[derive(Debug, Clone)]
pub struct ReadRange {
    /// The room's namespace.
    pub ns: String,
    /// The room.
    pub room: String,
    /// The position to continue from.
    pub after: Option<Position>,
    /// Most entries to return.
    pub limit: usize,
    /// About the most bytes to return (at least one entry is).
    pub max_bytes: usize,
    /// The room's bounds.
    pub config: HistoryConfig,
}

/// What a [`HistoryBackend`] holds of a room.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The room's current position (a new epoch when it had none).
    pub top: Position,
    /// The offset of the oldest message held (`top.offset + 1` when none).
    pub first: u64,
    /// The envelopes, as published, of the messages after the position
    /// read from, in order; empty when that position is not of `top`'s
    /// epoch or no longer held.
    pub entries: Vec<Bytes>,
}

/// A room history kept outside the process, shared by the nodes of a
/// cluster. Provided by a bus through [`Bus::history`](crate::bus::Bus::history).
///
/// Contract: an append assigns the next offset of the room's epoch (a new
/// epoch, taken at random, when the room has none), stores the envelope
/// with its position and publishes it, in one atomic step; appends of one
/// endpoint to one room are applied, and their `done` called, in call
/// order. An append that fails (`done` gets an error) may have been
/// applied or not, and its caller sends the message without a position: the
/// backend then drops the room's history itself (as [`reset`](Self::reset)
/// does), so that its epoch changes rather than a recovery passing over
/// the message. [`reset`](Self::reset) is for a message that reached the
/// room without a position by another way (an original node's).
pub trait HistoryBackend: Send + Sync + 'static {
    /// Appends and publishes; `append.done` gets the outcome.
    fn append(&self, append: Append);
    /// Reads a room's history.
    fn read(&self, read: ReadRange) -> BoxFuture<'static, Result<Stored, HistoryError>>;
    /// Drops a room's history (now, or before this endpoint's next request
    /// for the room if its store cannot be reached now).
    fn reset(&self, ns: &str, room: &str);
}

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
    /// Unique in the process: this room in this epoch.
    id: u64,
    epoch: Arc<str>,
    last: u64,
    last_at: Instant,
    entries: VecDeque<Entry>,
}

impl Stream {
    fn new() -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Stream {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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

/// One room's history, and the lock that keeps a node's sends to the room
/// in the order of their positions (held from the append until the message
/// is queued for the node's sockets and the bus).
struct RoomLog {
    order: Mutex<()>,
    stream: Mutex<Stream>,
}

/// Rooms by namespace (looked up by `&str`, without allocating).
type Logs = HashMap<Arc<str>, HashMap<Arc<str>, Arc<RoomLog>>>;

/// What [`MemoryHistory::read`] found after a position.
#[derive(Debug)]
pub(crate) enum Read {
    /// The messages that follow, in order (the reader's excluded ones
    /// skipped), and the offset read up to: the room's top when `upto ==
    /// top.offset`.
    Entries {
        frames: Vec<(u64, PushFrame)>,
        upto: u64,
        top: Position,
    },
    /// The position cannot be continued from: nothing is invented.
    Gap { top: Position, reason: GapReason },
    /// The history cannot be reached now.
    Unavailable,
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
    streams: Mutex<Logs>,
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
        self.streams.lock().values().map(HashMap::len).sum()
    }

    /// Messages held, in every room.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::history::MemoryHistory::new().messages(), 0);
    /// ```
    pub fn messages(&self) -> usize {
        let logs: Vec<_> = (self.streams.lock().values())
            .flat_map(|rooms| rooms.values().cloned())
            .collect();
        logs.iter().map(|l| l.stream.lock().entries.len()).sum()
    }

    /// The room's log, when it has one.
    fn find(all: &Logs, ns: &str, room: &str) -> Option<Arc<RoomLog>> {
        all.get(ns).and_then(|rooms| rooms.get(room)).cloned()
    }

    /// The room's log, created when absent.
    fn log(&self, ns: &str, room: &str) -> Arc<RoomLog> {
        let mut all = self.streams.lock();
        if let Some(log) = Self::find(&all, ns, room) {
            return log;
        }
        let log = Arc::new(RoomLog {
            order: Mutex::new(()),
            stream: Mutex::new(Stream::new()),
        });
        all.entry(ns.into())
            .or_default()
            .insert(room.into(), log.clone());
        log
    }

    /// Drops the rooms idle past `max_age` (their history is all gone).
    fn sweep(&self, max_age: Duration, now: Instant) {
        let mut all = self.streams.lock();
        for rooms in all.values_mut() {
            rooms.retain(|_, l| now.saturating_duration_since(l.stream.lock().last_at) <= max_age);
        }
        all.retain(|_, rooms| !rooms.is_empty());
    }

    /// Appends `frame` to the room's history and runs `deliver` with its
    /// position (and the stream's number, see [`stream_of`](Self::stream_of))
    /// before any later append to the room is delivered; returns the
    /// position. `deliver` must not read this store.
    pub(crate) fn append_then(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: &[String],
        config: &HistoryConfig,
        deliver: impl FnOnce(&Position, u64),
    ) -> Position {
        let log = self.log(ns, room);
        let _order = log.order.lock();
        let (position, stream) = self.append_to(&log, frame, exclude, config);
        deliver(&position, stream);
        position
    }

    /// The number of the room's stream when its current epoch is `epoch`
    /// (0 otherwise): the same for every node sharing this store, so that
    /// a socket finds its cursor for a message without comparing names.
    pub(crate) fn stream_of(&self, ns: &str, room: &str, epoch: &str) -> u64 {
        let log = Self::find(&self.streams.lock(), ns, room);
        log.map_or(0, |log| {
            let stream = log.stream.lock();
            if *stream.epoch == *epoch {
                stream.id
            } else {
                0
            }
        })
    }

    /// Appends `frame` to the room's history; returns its position.
    #[cfg(test)]
    fn append(
        &self,
        ns: &str,
        room: &str,
        frame: &PushFrame,
        exclude: &[String],
        config: &HistoryConfig,
    ) -> Position {
        self.append_then(ns, room, frame, exclude, config, |_, _| {})
    }

    fn append_to(
        &self,
        log: &RoomLog,
        frame: &PushFrame,
        exclude: &[String],
        config: &HistoryConfig,
    ) -> (Position, u64) {
        let now = Instant::now();
        if self
            .appends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % SWEEP_EVERY
            == SWEEP_EVERY - 1
        {
            self.sweep(config.max_age, now);
        }
        let mut stream = log.stream.lock();
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
        (stream.position(), stream.id)
    }

    /// The room's current position (where a client that joins now starts).
    pub(crate) fn top(&self, ns: &str, room: &str, config: &HistoryConfig) -> Position {
        let log = self.log(ns, room);
        let mut stream = log.stream.lock();
        stream.trim(config, Instant::now());
        stream.position()
    }

    /// Up to `limit` messages (and about `max_bytes`, at least one) that
    /// follow `after`, skipping those that excluded one of `ids`; a
    /// [`Read::Gap`] when `after` is of another epoch or its successors are
    /// no longer all held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read(
        &self,
        ns: &str,
        room: &str,
        after: &Position,
        limit: usize,
        max_bytes: usize,
        ids: &[String],
        config: &HistoryConfig,
    ) -> Read {
        let log = self.log(ns, room);
        let mut stream = log.stream.lock();
        stream.trim(config, Instant::now());
        let top = stream.position();
        if after.epoch != *stream.epoch || after.offset > stream.last {
            let reason = GapReason::EpochChanged;
            return Read::Gap { top, reason };
        }
        // Offsets are consecutive: the entry after `after` is at a known index.
        let first = stream.entries.front().map_or(stream.last + 1, |e| e.offset);
        if after.offset + 1 < first {
            let reason = GapReason::TooOld;
            return Read::Gap { top, reason };
        }
        let skip = usize::try_from(after.offset + 1 - first).unwrap_or(usize::MAX);
        let (mut frames, mut upto, mut bytes) = (Vec::new(), after.offset, 0usize);
        for e in stream.entries.iter().skip(skip) {
            if frames.len() >= limit || (bytes > 0 && bytes + e.frame.len() > max_bytes) {
                break;
            }
            upto = e.offset;
            if !excluded(&e.exclude, ids) {
                bytes += e.frame.len();
                frames.push((e.offset, e.frame.clone()));
            }
        }
        Read::Entries { frames, upto, top }
    }
}

impl SharedHistory {
    /// Up to `limit` messages (about `max_bytes`) after `after`, skipping
    /// those that excluded one of `ids`; only the room's top when `after`
    /// is `None`. Envelopes read from a backend are decoded with `codec`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read_after(
        &self,
        ns: &str,
        room: &str,
        after: Option<&Position>,
        limit: usize,
        max_bytes: usize,
        ids: &[String],
        config: &HistoryConfig,
        codec: Codec,
    ) -> Read {
        match self {
            SharedHistory::Memory(store) => match after {
                Some(after) => store.read(ns, room, after, limit, max_bytes, ids, config),
                None => {
                    let top = store.top(ns, room, config);
                    let upto = top.offset;
                    Read::Entries {
                        frames: Vec::new(),
                        upto,
                        top,
                    }
                }
            },
            SharedHistory::Backend(backend) => {
                let request = ReadRange {
                    ns: ns.to_owned(),
                    room: room.to_owned(),
                    after: after.cloned(),
                    limit,
                    max_bytes,
                    config: *config,
                };
                match backend.read(request).await {
                    Ok(stored) => decode_stored(stored, after, ids, codec),
                    Err(e) => {
                        tracing::debug!(%ns, %room, error = %e, "history read failed");
                        Read::Unavailable
                    }
                }
            }
        }
    }
}

/// What a backend returned, as a [`Read`]: the envelopes decoded, checked
/// to continue `after` one by one.
fn decode_stored(stored: Stored, after: Option<&Position>, ids: &[String], codec: Codec) -> Read {
    use crosswire_protocol::channels::ChannelKind;
    use crosswire_protocol::envelope::{decode_ws_route, WsRoute};
    let top = stored.top;
    let Some(after) = after else {
        let upto = top.offset;
        return Read::Entries {
            frames: Vec::new(),
            upto,
            top,
        };
    };
    if after.epoch != top.epoch || after.offset > top.offset {
        let reason = GapReason::EpochChanged;
        return Read::Gap { top, reason };
    }
    if after.offset + 1 < stored.first {
        let reason = GapReason::TooOld;
        return Read::Gap { top, reason };
    }
    let (mut frames, mut upto) = (Vec::new(), after.offset);
    for payload in &stored.entries {
        let entry = decode_ws_route(ChannelKind::Room, payload, codec)
            .ok()
            .and_then(|env| Some((env.position?, env.message)));
        match entry {
            Some((
                pos,
                WsRoute::Room {
                    data,
                    exclude_socket_ids,
                    ..
                },
            )) if pos.epoch == top.epoch && pos.offset == upto + 1 => {
                upto = pos.offset;
                if !ids.iter().any(|id| exclude_socket_ids.contains(id)) {
                    frames.push((pos.offset, data));
                }
            }
            // Unreadable, or not the next one: nothing is invented.
            _ => {
                let reason = GapReason::Unavailable;
                return Read::Gap { top, reason };
            }
        }
    }
    if stored.entries.is_empty() && upto < top.offset {
        let reason = GapReason::Unavailable;
        return Read::Gap { top, reason };
    }
    Read::Entries { frames, upto, top }
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

    fn all(h: &MemoryHistory, after: &Position, ids: &[String], c: &HistoryConfig) -> Read {
        h.read("n", "r", after, usize::MAX, usize::MAX, ids, c)
    }

    fn offsets(r: &Read) -> Vec<u64> {
        match r {
            Read::Entries { frames, .. } => frames.iter().map(|f| f.0).collect(),
            Read::Gap { .. } | Read::Unavailable => panic!("not entries: {r:?}"),
        }
    }

    fn gap(r: &Read) -> Option<GapReason> {
        match r {
            Read::Gap { reason, .. } => Some(*reason),
            Read::Entries { .. } | Read::Unavailable => None,
        }
    }

    #[test]
    fn positions_count_up_and_a_read_returns_what_follows() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let p1 = h.append("n", "r", &frame(1), &[], &c);
        let p2 = h.append("n", "r", &frame(2), &[], &c);
        assert_eq!((p1.offset, p2.offset), (1, 2));
        assert_eq!(p1.epoch, p2.epoch);
        let r = all(&h, &p1, &[], &c);
        assert_eq!(offsets(&r), [2]);
        let Read::Entries { upto, top, .. } = r else {
            panic!("gap")
        };
        assert_eq!((upto, top), (2, p2.clone()));
        assert_eq!(h.top("n", "r", &c), p2);
    }

    #[test]
    fn reads_stop_at_the_limit_and_the_byte_budget() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let p0 = h.top("n", "r", &c);
        for i in 1..=5 {
            h.append("n", "r", &frame(i), &[], &c);
        }
        let r = h.read("n", "r", &p0, 2, usize::MAX, &[], &c);
        assert_eq!(offsets(&r), [1, 2]);
        let one = frame(1).len();
        let r = h.read(
            "n",
            "r",
            &Position::new(p0.epoch.clone(), 2),
            9,
            one * 2,
            &[],
            &c,
        );
        assert_eq!(offsets(&r), [3, 4]);
        // At least one message, whatever its size.
        let r = h.read("n", "r", &Position::new(p0.epoch.clone(), 4), 9, 1, &[], &c);
        assert_eq!(offsets(&r), [5]);
        let r = h.read("n", "r", &Position::new(p0.epoch, 5), 9, 1, &[], &c);
        assert_eq!(offsets(&r), Vec::<u64>::new());
    }

    #[test]
    fn too_old_and_other_epochs_are_gaps() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::new(2, Duration::from_secs(60));
        let first = h.append("n", "r", &frame(1), &[], &c);
        for i in 2..=5 {
            h.append("n", "r", &frame(i), &[], &c);
        }
        assert_eq!(gap(&all(&h, &first, &[], &c)), Some(GapReason::TooOld));
        let other = Position::new("other", 1);
        assert_eq!(
            gap(&all(&h, &other, &[], &c)),
            Some(GapReason::EpochChanged)
        );
        let ahead = Position::new(first.epoch.clone(), 6);
        assert_eq!(
            gap(&all(&h, &ahead, &[], &c)),
            Some(GapReason::EpochChanged)
        );
        // Exactly at the edge: offsets 4 and 5 are held, so 3 continues.
        let at3 = Position::new(first.epoch.clone(), 3);
        assert_eq!(offsets(&all(&h, &at3, &[], &c)), [4, 5]);
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
        let p0 = h.top("n", "r", &c);
        let f = frame(1);
        h.append("n", "r", &f, &[], &c);
        let Read::Entries { frames, .. } = all(&h, &p0, &[], &c) else {
            panic!("gap")
        };
        assert_eq!(
            frames[0].1.bytes().as_ptr(),
            f.bytes().as_ptr(),
            "the frame is shared, not copied"
        );
    }

    #[test]
    fn excluded_ids_never_get_an_entry_back_but_are_read_past() {
        let h = MemoryHistory::new();
        let c = HistoryConfig::default();
        let p0 = h.top("n", "r", &c);
        h.append("n", "r", &frame(1), &["u1".into()], &c);
        h.append("n", "r", &frame(2), &[], &c);
        let r = all(&h, &p0, &["u1".into()], &c);
        assert_eq!(offsets(&r), [2]);
        let r = h.read("n", "r", &p0, 1, usize::MAX, &["u1".into()], &c);
        assert_eq!(
            offsets(&r),
            [2],
            "the excluded one is read past, not counted"
        );
        assert_eq!(offsets(&all(&h, &p0, &["u2".into()], &c)), [1, 2]);
    }
}
