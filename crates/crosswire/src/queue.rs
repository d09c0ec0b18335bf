//! A socket's bounded outbound queue, and the one waker of its connection
//! task.
//!
//! Senders append under a short lock; the connection task takes the whole
//! queue at once by swapping it with its own (empty) buffer, so one wake-up
//! and one lock serve every frame queued meanwhile, and in steady state
//! nothing is allocated. The task is woken only when the queue goes from
//! empty to non-empty, or by [`OutQueue::wake`] (close and ping requests).

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::task::Waker;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its bound of frames.
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
    waker: AtomicWaker,
}

impl OutQueue {
    pub(crate) fn new(bound: usize) -> Self {
        OutQueue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                closed: false,
            }),
            bound: bound.max(1),
            waker: AtomicWaker::new(),
        }
    }

    /// Appends a frame without waiting.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(PushError::Closed);
        }
        if s.frames.len() >= self.bound {
            return Err(PushError::Full);
        }
        s.frames.push_back(frame);
        let first = s.frames.len() == 1;
        drop(s);
        if first {
            self.waker.wake();
        }
        Ok(())
    }

    /// Moves every queued frame into `into` (which must be empty) without
    /// waiting; returns false when there was none.
    pub(crate) fn try_take(&self, into: &mut VecDeque<Utf8Bytes>) -> bool {
        let mut s = self.state.lock();
        if s.frames.is_empty() {
            return false;
        }
        std::mem::swap(into, &mut s.frames);
        true
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

    /// Refuses further frames and drops those still queued.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut s = self.state.lock();
            s.closed = true;
            std::mem::take(&mut s.frames)
        };
        drop(dropped);
    }

    /// Frames waiting.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().frames.len()
    }
}

#[cfg(test)]
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
        let q = OutQueue::new(2);
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
}
