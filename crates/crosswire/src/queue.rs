//! A socket's bounded outbound queue.
//!
//! Senders append under a short lock; the writer takes the whole queue at
//! once by swapping it with its own (empty) buffer, so one wake-up and one lock
//! serve every frame queued meanwhile, and in steady state nothing is
//! allocated. The writer is woken only when the queue goes from empty to
//! non-empty.

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

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
    ready: Notify,
}

impl OutQueue {
    pub(crate) fn new(bound: usize) -> Self {
        OutQueue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                closed: false,
            }),
            bound: bound.max(1),
            ready: Notify::new(),
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
            self.ready.notify_one();
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

    /// Waits for frames and moves them all into `into` (which must be
    /// empty). Returns false once the queue is closed and empty.
    pub(crate) async fn take(&self, into: &mut VecDeque<Utf8Bytes>) -> bool {
        loop {
            {
                let mut s = self.state.lock();
                if !s.frames.is_empty() {
                    std::mem::swap(into, &mut s.frames);
                    return true;
                }
                if s.closed {
                    return false;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Refuses further frames and wakes the writer.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
    }

    /// Frames waiting.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_and_taken_whole() {
        let q = OutQueue::new(2);
        assert_eq!(q.push("a".into()), Ok(()));
        assert_eq!(q.push("b".into()), Ok(()));
        assert_eq!(q.push("c".into()), Err(PushError::Full));
        let mut batch = VecDeque::new();
        assert!(q.take(&mut batch).await);
        assert_eq!(batch.len(), 2);
        batch.clear();
        assert!(!q.try_take(&mut batch));
        q.close();
        assert_eq!(q.push("d".into()), Err(PushError::Closed));
        assert!(!q.take(&mut batch).await);
    }
}
