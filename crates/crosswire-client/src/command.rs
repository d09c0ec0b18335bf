//! What the handles ask the connection task to do, and where replies go.

use crate::reply::ReplyResult;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::oneshot;

/// What a handle asks the task to do.
pub(crate) enum Command {
    /// Connect now if idle (also re-enables a manually closed connector).
    Start,
    /// Send one encoded event frame, if open.
    Send(String),
    /// Send an event frame and wait for its reply.
    Request(Request),
    /// `reconnect(reset)`.
    Reconnect(bool),
    /// `manual_close()`.
    ManualClose,
    /// The ping interval changed; restart the cycle now if `immediate`.
    PingInterval { immediate: bool },
}

/// An event frame sent with a callback id, and what to do with the reply.
pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) frame: String,
    pub(crate) timeout: Duration,
    pub(crate) pending_timeout: Duration,
    pub(crate) on_pending: Option<Box<dyn FnOnce() + Send + 'static>>,
    pub(crate) done: Completion,
}

/// Where a reply goes.
pub(crate) enum Completion {
    Future(oneshot::Sender<ReplyResult>),
    Callback(Box<dyn FnOnce(ReplyResult) + Send + 'static>),
}

impl Completion {
    pub(crate) fn complete(self, result: ReplyResult) {
        match self {
            Completion::Future(tx) => {
                let _ = tx.send(result);
            }
            Completion::Callback(f) => {
                guarded("emit callback", move || f(result));
            }
        }
    }
}

/// Runs a listener, containing a panic so that it cannot kill the task.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!("a connector {what} panicked");
            None
        }
    }
}
