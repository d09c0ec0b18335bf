//! A socket's bounded outbound queue, and the one waker of its connection
//! task.
//!
//! Senders append under a short lock; the connection task takes the whole
//! queue at once by swapping it with its own (empty) buffer, so one wake-up
//! and one lock serve every frame queued meanwhile, and in steady state
//! nothing is allocated. The task is woken only when the queue goes from
//! empty to non-empty, or by [`OutQueue::wake`] (close and ping requests).
//!
//! The queue is bounded in frames and in bytes. Both bounds count every frame
//! not yet handed to the WebSocket, including those the connection task took
//! and still holds in its batch: the task reports each frame it hands over
//! with [`OutQueue::sent`]. A frame bigger than the byte bound is still
//! accepted when nothing is pending, so that a frame of the largest size
//! allowed can always be sent.

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its bound of frames or of bytes.
    Full,
    /// The writer is gone.
    Closed,
}

struct State {
    frames: VecDeque<Utf8Bytes>,
    closed: bool,
}

pub(crate) struct OutQueue {
    state: Mutex<State>,
    bound: usize,
    byte_bound: usize,
    /// Frames queued or taken by the connection task, not yet handed to the
    /// WebSocket. Raised under the lock, lowered by the task without it (a
    /// stale read only refuses a frame early).
    pending: AtomicUsize,
    /// Their bytes.
    pending_bytes: AtomicUsize,
    waker: AtomicWaker,
    /// Woken when the queue falls to half its bounds or closes, for writers
    /// that pace themselves ([`OutQueue::room`]); `draining` says whether
    /// one waits, so that the write path pays one load otherwise.
    drained: tokio::sync::Notify,
    draining: std::sync::atomic::AtomicBool,
}

impl OutQueue {
    /// A queue of at most `bound` frames and `byte_bound` bytes.
    pub(crate) fn new(bound: usize, byte_bound: usize) -> Self {
        OutQueue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                closed: false,
            }),
            bound: bound.max(1),
            byte_bound,
            pending: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
            drained: tokio::sync::Notify::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Appends a frame without waiting.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        let len = frame.len();
        let mut s = self.state.lock();
        if s.closed {
            return Err(PushError::Closed);
        }
        let pending = self.pending.load(Ordering::Acquire);
        if pending >= self.bound
            || (pending > 0
                && self
                    .pending_bytes
                    .load(Ordering::Acquire)
                    .saturating_add(len)
                    > self.byte_bound)
        {
            return Err(PushError::Full);
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.pending_bytes.fetch_add(len, Ordering::AcqRel);
        s.frames.push_back(frame);
        let first = s.frames.len() == 1;
        drop(s);
        if first {
            self.waker.wake();
        }
        Ok(())
    }

    /// Moves every queued frame into `into` (which must be empty) without
    /// waiting; returns false when there was none. The frames stay counted
    /// until reported with [`sent`](OutQueue::sent) or
    /// [`discard`](OutQueue::discard).
    pub(crate) fn try_take(&self, into: &mut VecDeque<Utf8Bytes>) -> bool {
        let mut s = self.state.lock();
        if s.frames.is_empty() {
            return false;
        }
        std::mem::swap(into, &mut s.frames);
        true
    }

    /// A taken frame of `len` bytes was handed to the WebSocket.
    pub(crate) fn sent(&self, len: usize) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.pending_bytes.fetch_sub(len, Ordering::AcqRel);
        self.wake_drained();
    }

    fn wake_drained(&self) {
        if self.draining.load(Ordering::Acquire) && self.half_empty() {
            self.draining.store(false, Ordering::Release);
            self.drained.notify_waiters();
        }
    }

    fn half_empty(&self) -> bool {
        self.len() <= self.bound / 2 && self.bytes() <= self.byte_bound / 2
    }

    /// How many frames and bytes can be queued now without refusal.
    pub(crate) fn free(&self) -> (usize, usize) {
        (
            self.bound.saturating_sub(self.len()),
            self.byte_bound.saturating_sub(self.bytes()),
        )
    }

    /// Waits until the queue is at most half full (in frames and bytes) or
    /// closed; `true` when it is open. For writers that send a long
    /// sequence at the pace the client reads it.
    pub(crate) async fn room(&self) -> bool {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            self.draining.store(true, Ordering::Release);
            if self.state.lock().closed {
                return false;
            }
            if self.half_empty() {
                return true;
            }
            drained.await;
        }
    }

    /// Drops the taken frames in `batch` unsent, and its spare capacity.
    pub(crate) fn discard(&self, batch: &mut VecDeque<Utf8Bytes>) {
        let dropped = std::mem::take(batch);
        self.uncount(&dropped);
        self.wake_drained();
    }

    fn uncount(&self, frames: &VecDeque<Utf8Bytes>) {
        let bytes = frames.iter().map(|f| f.len()).sum();
        self.pending.fetch_sub(frames.len(), Ordering::AcqRel);
        self.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Registers the connection task's waker: pushes to an empty queue and
    /// [`wake`](OutQueue::wake) wake it. Register before checking for work.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Wakes the connection task (a close or ping request is waiting).
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// Refuses further frames and drops those still queued (with the
    /// queue's allocation).
    pub(crate) fn close(&self) {
        let dropped = {
            let mut s = self.state.lock();
            s.closed = true;
            std::mem::take(&mut s.frames)
        };
        self.uncount(&dropped);
        drop(dropped);
        self.drained.notify_waiters();
    }

    /// Frames not yet handed to the WebSocket.
    pub(crate) fn len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Bytes of the frames not yet handed to the WebSocket.
    pub(crate) fn bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn bounded_taken_whole_and_woken_on_first_frame_only() {
        let q = OutQueue::new(2, usize::MAX);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        q.register(&Waker::from(count.clone()));
        assert_eq!(q.push("a".into()), Ok(()));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        q.register(&Waker::from(count.clone()));
        assert_eq!(q.push("b".into()), Ok(()));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "not empty: no wake");
        assert_eq!(q.push("c".into()), Err(PushError::Full));
        let mut batch = VecDeque::new();
        assert!(q.try_take(&mut batch));
        assert_eq!(batch.len(), 2);
        batch.clear();
        assert!(!q.try_take(&mut batch));
        q.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        q.close();
        assert_eq!(q.push("d".into()), Err(PushError::Closed));
        assert!(!q.try_take(&mut batch));
    }

    #[test]
    fn bytes_are_counted_until_handed_to_the_websocket() {
        let q = OutQueue::new(100, 10);
        // A frame bigger than the byte bound goes when nothing is pending.
        let big = "b".repeat(25);
        assert_eq!(q.push(big.as_str().into()), Ok(()));
        assert_eq!((q.len(), q.bytes()), (1, 25));
        assert_eq!(q.push("x".into()), Err(PushError::Full));
        // Taken by the task but not yet written: still counted.
        let mut batch = VecDeque::new();
        assert!(q.try_take(&mut batch));
        assert_eq!((q.len(), q.bytes()), (1, 25));
        assert_eq!(q.push("x".into()), Err(PushError::Full));
        let frame = batch.pop_front().unwrap();
        q.sent(frame.len());
        assert_eq!((q.len(), q.bytes()), (0, 0));
        // Up to the bound, and not one byte more.
        assert_eq!(q.push("1234".into()), Ok(()));
        assert_eq!(q.push("567890".into()), Ok(()));
        assert_eq!(q.bytes(), 10);
        assert_eq!(q.push("!".into()), Err(PushError::Full));
        assert!(q.try_take(&mut batch));
        assert_eq!(q.push("ab".into()), Err(PushError::Full));
        let first = batch.pop_front().unwrap();
        q.sent(first.len());
        assert_eq!(q.bytes(), 6);
        assert_eq!(q.push("ab".into()), Ok(()));
        assert_eq!((q.len(), q.bytes()), (2, 8));
        // Dropped frames, taken or queued, are uncounted and freed.
        q.discard(&mut batch);
        assert_eq!(batch.capacity(), 0);
        assert_eq!((q.len(), q.bytes()), (1, 2));
        q.close();
        assert_eq!((q.len(), q.bytes()), (0, 0));
        assert_eq!(q.push("c".into()), Err(PushError::Closed));
    }

    #[test]
    fn the_frame_bound_counts_taken_frames() {
        let q = OutQueue::new(2, usize::MAX);
        assert_eq!(q.push("a".into()), Ok(()));
        let mut batch = VecDeque::new();
        assert!(q.try_take(&mut batch));
        assert_eq!(q.push("b".into()), Ok(()));
        assert_eq!(q.push("c".into()), Err(PushError::Full));
        let a = batch.pop_front().unwrap();
        q.sent(a.len());
        assert_eq!(q.push("c".into()), Ok(()));
    }
}
