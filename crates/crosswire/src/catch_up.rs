//! Catching a socket up on one room from the room's history, at the pace the
//! client reads.
//!
//! One mechanism serves both a client that comes back with a position
//! (resume) and a gap seen in a live stream (a message that overtook others
//! on the bus). While a catch-up runs for a room, live messages of that room
//! are not written to the socket: they are in the history already (a message
//! is stored before it is delivered), so the catch-up writes them in order.
//! It reads a chunk no larger than half the socket's free queue, waits until
//! the client has read half of what is queued, and reads on; when it reaches
//! the room's top and no live message was passed over since its last read,
//! live delivery resumes under the same lock. A long absence therefore
//! replays in order without filling the outbound queue (which would close
//! the socket as a slow consumer), and memory stays bounded by the queue.

use crate::history::{HistoryConfig, Read, SharedHistory};
use crate::socket::{to_utf8, RoomCursor, Socket};
use crate::stats::Stats;
use axum::extract::ws::Utf8Bytes;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::Codec;
use crosswire_protocol::history::{
    positioned_frame, GapReason, Joined, Position, RecoveryStatus, RoomPosition, JOINED_EVENT,
};
use std::time::Duration;

/// Why a catch-up runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The client came back with a position: the messages are marked
    /// recovered and a [`JOINED_EVENT`] reports the outcome at the end.
    Resume,
    /// A live message arrived after a gap: the gap is filled first.
    Gap,
    /// The socket joined a room whose history is read asynchronously: its
    /// position is the room's top when read ([`JOINED_EVENT`] says it), and
    /// live messages that came meanwhile follow from the history.
    Join,
}

/// A room of one socket to catch up.
pub(crate) struct CatchUp {
    pub(crate) socket: Socket,
    pub(crate) ns: String,
    pub(crate) room: String,
    pub(crate) store: SharedHistory,
    pub(crate) config: HistoryConfig,
    /// How a backend's envelopes are decoded.
    pub(crate) codec: Codec,
    pub(crate) why: Why,
    /// The number set in the room's cursor when this catch-up was started.
    pub(crate) number: u64,
}

/// At most this many messages per read.
const CHUNK: usize = 256;

/// Reads of an unreachable history tried before a resume or a gap is
/// reported incomplete (a join keeps trying while the socket is in the
/// room), and the longest wait between two.
const TRIES: u32 = 4;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

impl CatchUp {
    /// Runs the catch-up in its own task. The caller has set the room's
    /// cursor to `catching = Some(number)`, under the lock that orders the
    /// room's deliveries.
    pub(crate) fn start(self) {
        tokio::spawn(self.run());
    }

    async fn run(self) {
        let mut written = 0u64;
        let mut failures = 0u32;
        let ids = self.socket.socket_ids();
        while self.socket.queue().room().await {
            let Some(recovery) = self.socket.recovery() else {
                return;
            };
            // Where the cursor stands, while this catch-up is its current one.
            let current = recovery.with_existing_room(&self.ns, &self.room, |cursor| {
                (cursor.catching == Some(self.number)).then(|| cursor.last.clone())
            });
            let Some(Some(after)) = current else {
                break; // left the room, or a newer catch-up runs
            };
            let (frames, bytes) = self.socket.queue().free();
            let limit = (frames / 2).clamp(1, CHUNK);
            // Read outside the cursor lock: a live message that comes
            // meanwhile was stored before it is delivered, and is left to
            // this catch-up by `skipped`.
            let read = (self.store)
                .read_after(
                    &self.ns,
                    &self.room,
                    after.as_ref(),
                    limit,
                    bytes / 2,
                    &ids,
                    &self.config,
                    self.codec,
                )
                .await;
            if matches!(read, Read::Unavailable) {
                failures += 1;
                if failures < TRIES || after.is_none() {
                    let wait = Duration::from_millis(100 << failures.min(6)).min(MAX_RETRY_WAIT);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            } else {
                failures = 0;
            }
            let step = recovery.with_existing_room(&self.ns, &self.room, |cursor| {
                if cursor.catching != Some(self.number) || cursor.last != after {
                    return Step::Done;
                }
                self.apply(cursor, read, &mut written)
            });
            match step {
                Some(Step::More) => {}
                Some(Step::Done) | None => break,
            }
        }
        if written > 0 && self.why == Why::Resume {
            Stats::add(&self.socket.stats().recovered_messages, written);
        }
    }

    /// Writes what was read, under the socket's cursor lock.
    fn apply(&self, cursor: &mut RoomCursor, read: Read, written: &mut u64) -> Step {
        let after = cursor.last.clone();
        match read {
            Read::Unavailable => {
                // Given up: the client is told, at the position it had.
                cursor.catching = None;
                if let Some(at) = after {
                    self.finish(
                        &at,
                        RecoveryStatus::Incomplete,
                        Some(GapReason::Unavailable),
                        *written,
                    );
                }
                Step::Done
            }
            Read::Gap { top, reason } => {
                cursor.last = Some(top.clone());
                cursor.catching = None;
                self.finish(&top, RecoveryStatus::Incomplete, Some(reason), *written);
                Step::Done
            }
            Read::Entries { frames, upto, top } => {
                let Some(after) = after else {
                    // A join: the socket's position is the room's top now.
                    cursor.last = Some(top.clone());
                    send_joined(
                        &self.socket,
                        &self.ns,
                        &self.room,
                        &top,
                        RecoveryStatus::None,
                        None,
                        0,
                    );
                    return if cursor.skipped <= top.offset {
                        cursor.catching = None;
                        Step::Done
                    } else {
                        Step::More
                    };
                };
                let recovered = self.why == Why::Resume;
                for (offset, frame) in frames {
                    let at = Position::new(&*after.epoch, offset);
                    let text = positioned_text(&frame, &self.ns, &self.room, &at, recovered);
                    let _ = self.socket.push(text);
                    *written += 1;
                }
                if let Some(last) = cursor.last.as_mut() {
                    last.offset = upto;
                }
                if upto >= top.offset && cursor.skipped <= upto {
                    cursor.catching = None;
                    if self.why == Why::Resume {
                        self.finish(&top, RecoveryStatus::Complete, None, *written);
                    }
                    Step::Done
                } else {
                    Step::More
                }
            }
        }
    }

    /// Tells the client how it went (and counts it). A gap in a live stream
    /// that cannot be filled is reported the same way: the client must
    /// reload.
    fn finish(
        &self,
        top: &Position,
        status: RecoveryStatus,
        reason: Option<GapReason>,
        written: u64,
    ) {
        let stats = self.socket.stats();
        match status {
            RecoveryStatus::Complete => Stats::incr(&stats.recoveries_complete),
            RecoveryStatus::Incomplete => Stats::incr(&stats.recoveries_incomplete),
            RecoveryStatus::None => {}
        }
        let recovered = if self.why == Why::Resume { written } else { 0 };
        send_joined(
            &self.socket,
            &self.ns,
            &self.room,
            top,
            status,
            reason,
            recovered,
        );
    }
}

/// The frame with its position (`cwPos`, and `cwRecovered` when it is
/// sent again), as opted-in sockets get it.
pub(crate) fn positioned_text(
    frame: &PushFrame,
    ns: &str,
    room: &str,
    pos: &Position,
    recovered: bool,
) -> Utf8Bytes {
    let p = RoomPosition::new(ns, room, &*pos.epoch, pos.offset);
    to_utf8(&positioned_frame(frame, &p, recovered))
}

enum Step {
    More,
    Done,
}

/// Sends [`JOINED_EVENT`]: the client's position in the room and how its
/// recovery went.
pub(crate) fn send_joined(
    socket: &Socket,
    ns: &str,
    room: &str,
    top: &Position,
    recovery: RecoveryStatus,
    reason: Option<GapReason>,
    recovered: u64,
) {
    let joined = Joined {
        ns: ns.to_owned(),
        room: room.to_owned(),
        epoch: top.epoch.clone(),
        offset: top.offset,
        recovery,
        reason,
        recovered,
    };
    if let Err(e) = socket.emit(JOINED_EVENT, &joined) {
        tracing::debug!(error = %e, "position not sent");
    }
}
