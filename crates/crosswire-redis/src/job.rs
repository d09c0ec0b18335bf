//! One publish on its way to the Redis nodes: its copies ([`Job`]), their
//! common outcome ([`Group`]), and the bus counters they update.

use crate::node_id::NodeId;
use bytes::Bytes;
use crosswire::bus::{BusError, Charge};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) subscription_errors: AtomicU64,
    pub(crate) in_doubt: AtomicU64,
    pub(crate) stalls: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One copy of one publish, on its way to a node.
pub(crate) struct Job {
    pub(crate) channel: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) group: Arc<Group>,
    /// When the current attempt started (the copy was queued on its node).
    pub(crate) attempt_start: Instant,
    /// The payload's bytes in the publish queue of the node it is queued on.
    pub(crate) charge: Option<Charge>,
}

/// The copies of one publish call, and its outcome.
pub(crate) struct Group {
    tx: Mutex<Option<oneshot::Sender<Result<(), BusError>>>>,
    /// Copies not yet settled as failed.
    pending: AtomicUsize,
    /// Nodes any copy was sent to (a failover goes elsewhere).
    used: Mutex<Vec<NodeId>>,
}

impl Group {
    /// The outcome of a publish whose copies went to the nodes `used`.
    pub(crate) fn new(tx: oneshot::Sender<Result<(), BusError>>, used: Vec<NodeId>) -> Self {
        Group {
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(used.len()),
            used: Mutex::new(used),
        }
    }

    /// Claims `node` for a copy; false if some copy already went there.
    pub(crate) fn claim(&self, node: NodeId) -> bool {
        let mut used = self.used.lock();
        if used.contains(&node) {
            false
        } else {
            used.push(node);
            true
        }
    }

    /// Gives `node` back: its copy left it without being written (handed
    /// over from a queue), so the copy may come back to it later.
    pub(crate) fn release(&self, node: NodeId) {
        self.used.lock().retain(|n| *n != node);
    }

    pub(crate) fn succeed(&self) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(Ok(()));
        }
    }

    pub(crate) fn fail(&self, counters: &Counters, error: BusError) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.tx.lock().take() {
                bump(&counters.failures);
                let _ = tx.send(Err(error));
            }
        }
    }

    /// A copy was written to a node that stopped answering: the publish is
    /// in doubt unless another copy succeeds.
    pub(crate) fn in_doubt(&self, counters: &Counters, why: String) {
        bump(&counters.in_doubt);
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.tx.lock().take() {
                let _ = tx.send(Err(BusError::InDoubt(why)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_handed_back_can_return_to_the_node_it_left_unwritten() {
        let (tx, _rx) = oneshot::channel();
        let (a, b) = (NodeId::new(0), NodeId::new(1));
        let group = Group::new(tx, vec![a]);
        // Handed from a (queued, never written) to b...
        group.release(a);
        assert!(group.claim(b));
        // ...and from b back to a, which took no copy of it.
        group.release(b);
        assert!(group.claim(a));
        // A node that holds a copy is not claimed twice (redundant mode).
        assert!(!group.claim(a));
    }
}
