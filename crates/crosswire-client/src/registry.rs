//! The two listener registries (one for the connector's lifecycle events,
//! one for events pushed by the node) and the event subscribers.

use crate::event::{ClientEvent, EventKind, HandlerId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(crate) type LifecycleFn = Arc<dyn Fn(&ClientEvent) + Send + Sync + 'static>;

struct Entry<F> {
    id: HandlerId,
    once: bool,
    tag: Option<String>,
    f: F,
}

/// Both listener registries and the event subscribers; `P` is the type of
/// a pushed-event handler.
pub(crate) struct Registry<P> {
    lifecycle: HashMap<EventKind, Vec<Entry<LifecycleFn>>>,
    pushed: HashMap<String, Vec<Entry<P>>>,
    subscribers: Vec<mpsc::UnboundedSender<ClientEvent>>,
    /// The connector's task ended: new subscribers get a finished stream.
    pub(crate) finished: bool,
}

impl<P> Default for Registry<P> {
    fn default() -> Self {
        Registry {
            lifecycle: HashMap::new(),
            pushed: HashMap::new(),
            subscribers: Vec::new(),
            finished: false,
        }
    }
}

impl<P: Clone> Registry<P> {
    pub(crate) fn add_lifecycle(
        &mut self,
        kind: EventKind,
        id: HandlerId,
        once: bool,
        tag: Option<String>,
        f: LifecycleFn,
    ) {
        self.lifecycle
            .entry(kind)
            .or_default()
            .push(Entry { id, once, tag, f });
    }

    pub(crate) fn add_push(
        &mut self,
        event: &str,
        id: HandlerId,
        once: bool,
        tag: Option<String>,
        f: P,
    ) {
        self.pushed
            .entry(event.to_owned())
            .or_default()
            .push(Entry { id, once, tag, f });
    }

    fn remove_in<K, F>(
        map: &mut HashMap<K, Vec<Entry<F>>>,
        key: Option<&K>,
        mut pred: impl FnMut(&Entry<F>) -> bool,
    ) -> usize
    where
        K: std::hash::Hash + Eq,
    {
        let mut removed = 0;
        let mut sweep = |v: &mut Vec<Entry<F>>| {
            let before = v.len();
            v.retain(|e| !pred(e));
            removed += before - v.len();
        };
        match key {
            Some(k) => {
                if let Some(v) = map.get_mut(k) {
                    sweep(v);
                }
            }
            None => map.values_mut().for_each(&mut sweep),
        }
        map.retain(|_, v| !v.is_empty());
        removed
    }

    pub(crate) fn remove_id(&mut self, id: HandlerId) -> bool {
        Self::remove_in(&mut self.lifecycle, None, |e| e.id == id)
            + Self::remove_in(&mut self.pushed, None, |e| e.id == id)
            > 0
    }

    pub(crate) fn remove_tag(&mut self, tag: &str) -> usize {
        Self::remove_in(&mut self.lifecycle, None, |e| e.tag.as_deref() == Some(tag))
            + Self::remove_in(&mut self.pushed, None, |e| e.tag.as_deref() == Some(tag))
    }

    pub(crate) fn remove_event(&mut self, event: &str) -> usize {
        Self::remove_in(&mut self.pushed, Some(&event.to_owned()), |_| true)
    }

    pub(crate) fn remove_kind(&mut self, kind: EventKind) -> usize {
        Self::remove_in(&mut self.lifecycle, Some(&kind), |_| true)
    }

    /// The listeners of `kind` in registration order; `once` ones are removed.
    pub(crate) fn take_lifecycle(&mut self, kind: EventKind) -> Vec<LifecycleFn> {
        take(&mut self.lifecycle, &kind)
    }

    /// The listeners of pushed event `event` with their ids and whether
    /// they are `once` ones: those are removed by the caller once they ran
    /// (a handler that refused the payload stays for the next push).
    pub(crate) fn push_handlers(&self, event: &str) -> Vec<(HandlerId, bool, P)> {
        self.pushed.get(event).map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .map(|e| (e.id, e.once, e.f.clone()))
                .collect()
        })
    }

    /// Whether anyone observes `kind` (listeners or subscribers).
    pub(crate) fn observed(&self, kind: EventKind) -> bool {
        !self.subscribers.is_empty() || self.lifecycle.contains_key(&kind)
    }

    pub(crate) fn subscribe(&mut self) -> mpsc::UnboundedReceiver<ClientEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if !self.finished {
            self.subscribers.push(tx);
        }
        rx
    }

    /// Sends `ev` to every live subscriber, forgetting the dropped ones.
    pub(crate) fn publish(&mut self, ev: &ClientEvent) {
        self.subscribers.retain(|s| s.send(ev.clone()).is_ok());
    }

    /// Ends every subscription.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.subscribers.clear();
    }
}

fn take<K, Q, F>(map: &mut HashMap<K, Vec<Entry<F>>>, key: &Q) -> Vec<F>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
    F: Clone,
{
    let Some(entries) = map.get_mut(key) else {
        return Vec::new();
    };
    let out = entries.iter().map(|e| e.f.clone()).collect();
    if entries.iter().any(|e| e.once) {
        entries.retain(|e| !e.once);
        if entries.is_empty() {
            map.remove(key);
        }
    }
    out
}
