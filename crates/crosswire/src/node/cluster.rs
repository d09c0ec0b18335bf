//! The node's side of the bus: which channels it subscribes to, what it
//! publishes, and how it routes what it receives.
//!
//! Subscriptions are *reconciled*: join, leave, presets and manual calls only
//! change the desired state (synchronously, under the room lock), and one task
//! per node brings the bus in line with it, one channel at a time. A leave
//! followed at once by a join can therefore never end unsubscribed, which was
//! a race of the original (its state was recorded only on confirmation).

use super::{Node, NodeInner};
use crate::bus::{Bus, BusMessage};
use crate::events::run_detached;
use crate::stats::Stats;
use bytes::Bytes;
use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_ws_route_at,
    is_own_message, sent_by, BridgeMessage, Codec, WsRoute,
};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

/// Why a channel is wanted. A channel is subscribed while any reason holds.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Want {
    core: bool,
    preset: bool,
    custom: bool,
    manual: bool,
    /// Namespaces (as spelled by callers) with rooms on this node that map
    /// to this channel.
    rooms: u32,
}

impl Want {
    fn any(&self) -> bool {
        self.core || self.preset || self.custom || self.manual || self.rooms > 0
    }
}

/// Which reason to set or clear.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reason {
    Core,
    Preset,
    Custom,
    Manual,
    Room,
}

#[derive(Default)]
struct SubState {
    desired: HashMap<String, Want>,
    confirmed: HashSet<String>,
}

/// Recently seen message ids (redundant publishing sends each message twice).
struct Dedup {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

const DEDUP_CAPACITY: usize = 200_000;

impl Dedup {
    /// True when `id` was seen before.
    fn seen_before(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return true;
        }
        if self.order.len() == DEDUP_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        false
    }
}

pub(crate) struct Cluster {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) codec: Codec,
    subs: Mutex<SubState>,
    wake: Notify,
    generation: watch::Sender<u64>,
    dedup: Mutex<Dedup>,
    message_ids: Option<(String, AtomicU64)>,
    signer: Option<crate::signing::Signer>,
    /// `max_bus_message_size`: bigger publishes are refused.
    max_message_size: usize,
    stats: Arc<Stats>,
}

impl Cluster {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        config: &crate::NodeConfig,
        signer: Option<crate::signing::Signer>,
        stats: Arc<Stats>,
    ) -> Self {
        let codec = config.codec;
        let server_name = &config.server_name;
        let message_ids = bus.redundant().then(|| {
            let boot = crosswire_protocol::ids::to_base36(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            );
            (format!("{server_name}:{boot}"), AtomicU64::new(1))
        });
        Cluster {
            bus,
            codec,
            subs: Mutex::new(SubState::default()),
            wake: Notify::new(),
            generation: watch::Sender::new(0),
            dedup: Mutex::new(Dedup {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
            message_ids,
            signer,
            max_message_size: config.max_bus_message_size,
            stats,
        }
    }

    pub(crate) fn next_message_id(&self) -> Option<String> {
        self.message_ids
            .as_ref()
            .map(|(prefix, n)| format!("{prefix}:{}", n.fetch_add(1, Ordering::Relaxed)))
    }

    /// Sets (`on`) or clears a reason to subscribe to `channel`.
    pub(crate) fn want(&self, channel: &str, reason: Reason, on: bool) {
        let mut state = self.subs.lock();
        let want = state.desired.entry(channel.to_owned()).or_default();
        match reason {
            Reason::Core => want.core = on,
            Reason::Preset => want.preset = on,
            Reason::Custom => want.custom = on,
            Reason::Manual => want.manual = on,
            Reason::Room => {
                if on {
                    want.rooms += 1;
                } else {
                    want.rooms = want.rooms.saturating_sub(1);
                }
            }
        }
        if !want.any() && !state.confirmed.contains(channel) {
            state.desired.remove(channel);
        }
        drop(state);
        self.wake.notify_one();
        // Waiters on a channel that is no longer wanted must see it.
        self.generation.send_modify(|g| *g += 1);
    }

    /// Waits until `channel` is confirmed subscribed, or no longer wanted.
    pub(crate) async fn wait_wanted_confirmed(&self, channel: &str) {
        let mut rx = self.generation.subscribe();
        loop {
            {
                let s = self.subs.lock();
                let wanted = s.desired.get(channel).is_some_and(Want::any);
                if !wanted || s.confirmed.contains(channel) {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the channel is wanted for any reason.
    pub(crate) fn is_wanted(&self, channel: &str) -> bool {
        self.subs.lock().desired.get(channel).is_some_and(Want::any)
    }

    /// Waits until the bus state of `channel` matches `subscribed`.
    pub(crate) async fn wait_confirmed(&self, channel: &str, subscribed: bool) {
        let mut rx = self.generation.subscribe();
        loop {
            if self.subs.lock().confirmed.contains(channel) == subscribed {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until every wanted channel is confirmed and nothing else is.
    pub(crate) async fn wait_settled(&self) {
        let mut rx = self.generation.subscribe();
        loop {
            {
                let s = self.subs.lock();
                let settled = s
                    .desired
                    .iter()
                    .all(|(c, w)| w.any() == s.confirmed.contains(c));
                if settled {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Channels confirmed subscribed.
    pub(crate) fn subscribed(&self) -> Vec<String> {
        let mut v: Vec<String> = self.subs.lock().confirmed.iter().cloned().collect();
        v.sort();
        v
    }

    /// Brings the bus in line with the desired state, forever.
    pub(crate) async fn reconcile(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let work = {
                let s = self.subs.lock();
                s.desired
                    .iter()
                    .find(|(c, w)| w.any() != s.confirmed.contains(*c))
                    .map(|(c, w)| (c.clone(), w.any()))
            };
            let Some((channel, subscribe)) = work else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => continue,
                }
            };
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = async {
                    if subscribe {
                        self.bus.subscribe(&channel).await
                    } else {
                        self.bus.unsubscribe(&channel).await
                    }
                } => r,
            };
            match result {
                Ok(()) => {
                    backoff = Duration::from_millis(50);
                    let mut s = self.subs.lock();
                    if subscribe {
                        s.confirmed.insert(channel.clone());
                    } else {
                        s.confirmed.remove(&channel);
                        if !s.desired.get(&channel).is_some_and(Want::any) {
                            s.desired.remove(&channel);
                        }
                    }
                    drop(s);
                    self.generation.send_modify(|g| *g += 1);
                }
                Err(e) => {
                    tracing::warn!(%channel, subscribe, error = %e, "subscription change failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Publishes an encoded envelope. The bus takes the message now; the
    /// outcome is counted by the bus. A message over `max_bus_message_size`
    /// is refused (and counted) before it reaches the bus: receivers would
    /// drop it, and Redis may disconnect subscribers for it.
    fn publish(&self, channel: &str, bytes: Vec<u8>) -> crate::Result<()> {
        let bytes = match &self.signer {
            Some(signer) => signer.sign(channel, &bytes),
            None => bytes,
        };
        if bytes.len() > self.max_message_size {
            Stats::incr(&self.stats.bus_publish_oversize);
            tracing::warn!(%channel, size = bytes.len(), max = self.max_message_size, "bus message too large: not published");
            return Err(crate::Error::BusMessageTooLarge {
                size: bytes.len(),
                max: self.max_message_size,
            });
        }
        let fut = self.bus.publish(channel, Bytes::from(bytes));
        drop(fut);
        Ok(())
    }

    /// Publishes a routing envelope. Its callers send to local sockets
    /// first and return nothing, so a refusal is only counted and logged.
    pub(crate) fn publish_route(&self, channel: &str, route: &WsRoute) {
        self.publish_route_at(channel, route, None);
    }

    /// Publishes a routed frame, with its position in its room's history.
    pub(crate) fn publish_route_at(
        &self,
        channel: &str,
        route: &WsRoute,
        position: Option<&crate::history::Position>,
    ) {
        let id = self.next_message_id();
        match encode_ws_route_at(route, id.as_deref(), position, self.codec) {
            Ok(bytes) => {
                let _ = self.publish(channel, bytes);
            }
            Err(e) => tracing::warn!(%channel, error = %e, "could not encode a routing envelope"),
        }
    }

    pub(crate) fn publish_bridge(&self, channel: &str, msg: &BridgeMessage) -> crate::Result<()> {
        let bytes = encode_bridge(msg, self.next_message_id().as_deref(), self.codec)?;
        self.publish(channel, bytes)
    }

    pub(crate) fn publish_raw(&self, channel: &str, bytes: Vec<u8>) -> crate::Result<()> {
        self.publish(channel, bytes)
    }

    fn is_duplicate(&self, message_id: Option<&str>) -> bool {
        match message_id {
            Some(id) => self.dedup.lock().seen_before(id),
            None => false,
        }
    }
}

/// Reads the bus and routes every message, in order.
pub(crate) async fn receive_loop(
    node: Weak<NodeInner>,
    mut rx: mpsc::Receiver<BusMessage>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            msg = rx.recv() => msg,
        };
        let Some(msg) = msg else { return };
        let Some(inner) = node.upgrade() else { return };
        Node { inner }.handle_bus_message(msg).await;
    }
}

impl Node {
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
    }

    async fn handle_bus_message(&self, msg: BusMessage) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let stats = &self.inner.stats;
        Stats::incr(&stats.bus_received);
        Stats::add(&stats.bus_received_bytes, msg.payload.len() as u64);
        if msg.payload.len() > self.inner.config.max_bus_message_size {
            Stats::incr(&stats.bus_dropped_oversize);
            tracing::debug!(channel = %msg.channel, size = msg.payload.len(), "bus message too large: dropped");
            return;
        }
        let own = self.server_name();
        let codec = cluster.codec;
        let payload: &[u8] = match &cluster.signer {
            None => &msg.payload,
            Some(signer) => match signer.verify(&msg.channel, &msg.payload) {
                Ok(body) => body,
                Err(why) => {
                    use crate::signing::Refused;
                    let counter = match why {
                        Refused::Unsigned | Refused::BadSignature => &stats.bus_dropped_unsigned,
                        Refused::Stale | Refused::Replayed => &stats.bus_dropped_replayed,
                    };
                    Stats::incr(counter);
                    tracing::debug!(channel = %msg.channel, ?why, "bus message refused by signature check");
                    return;
                }
            },
        };
        let kind = self.inner.channels.classify(&msg.channel);
        // The bus hands a node its own publications back: skipped before
        // they are decoded. (Not a room message that a history in the bus
        // positioned: those come back on purpose, see `comes_back`.)
        let may_come_back = !matches!(kind, ChannelKind::Bridge | ChannelKind::NodeBridge)
            && matches!(
                self.inner.history,
                Some(crate::history::SharedHistory::Backend(_))
            );
        if !may_come_back && sent_by(payload, codec, kind, own) {
            Stats::incr(&stats.bus_own_skipped);
            return;
        }
        match kind {
            ChannelKind::Bridge | ChannelKind::NodeBridge => match decode_bridge(payload, codec) {
                Ok(env) => {
                    if let Some(sender) = env.message.sender_server() {
                        self.check_sender(sender);
                    }
                    if env.message.sender_server() == Some(own) {
                        Stats::incr(&stats.bus_own_skipped);
                    } else if cluster.is_duplicate(env.message_id.as_deref()) {
                        Stats::incr(&stats.bus_duplicates);
                    } else {
                        self.handle_bridge(env.message).await;
                    }
                }
                Err(e) => self.drop_invalid(&msg.channel, &e),
            },
            kind @ (ChannelKind::Broadcast
            | ChannelKind::PrivateSocket
            | ChannelKind::Room
            | ChannelKind::RoutedRoom
            | ChannelKind::NodeSockets) => match decode_ws_route(kind, payload, codec) {
                Ok(env) => {
                    self.check_sender(env.message.sender_server());
                    if env.message.sender_server() == own && !self.comes_back(&env) {
                        Stats::incr(&stats.bus_own_skipped);
                    } else if cluster.is_duplicate(env.message_id.as_deref()) {
                        Stats::incr(&stats.bus_duplicates);
                    } else {
                        let forward = kind == ChannelKind::NodeSockets;
                        self.deliver_route(&msg.channel, env.message, env.position, forward);
                    }
                }
                Err(e) => self.drop_invalid(&msg.channel, &e),
            },
            ChannelKind::Custom => match decode_value(payload, codec) {
                Ok(value) => {
                    if is_own_message(&value, own) {
                        Stats::incr(&stats.bus_own_skipped);
                        return;
                    }
                    let handler = self.inner.custom_handler.read().clone();
                    match handler {
                        Some(h) => {
                            run_detached(h(msg.channel.to_string(), value)).await;
                        }
                        None => Stats::incr(&stats.bus_dropped_unhandled),
                    }
                }
                Err(e) => self.drop_invalid(&msg.channel, &e),
            },
        }
    }

    /// Whether this node's own publication is delivered to its own members
    /// when it comes back from the bus: a room message positioned by a
    /// history backend. Every node then gets a room's messages from one
    /// connection (to the Redis node that keeps the room's history), in the
    /// order of their positions, its own included, so opted-in sockets see
    /// no gap to fill.
    fn comes_back(&self, env: &crosswire_protocol::envelope::Envelope<WsRoute>) -> bool {
        match (&env.message, &env.position) {
            (WsRoute::Room { room_namespace, .. }, Some(_)) => matches!(
                self.history_of(room_namespace),
                Some((crate::history::SharedHistory::Backend(_), _))
            ),
            _ => false,
        }
    }

    fn drop_invalid(&self, channel: &str, error: &dyn std::fmt::Display) {
        Stats::incr(&self.inner.stats.bus_dropped_invalid);
        tracing::debug!(%channel, %error, "undecodable bus message: dropped");
    }

    /// Delivers a routed frame to this node's matching sockets. With
    /// `forward` (a message sent to this node's own socket-id channel), the
    /// ids it does not hold (any more) are passed on to the shared channel.
    fn deliver_route(
        &self,
        channel: &str,
        route: WsRoute,
        position: Option<crate::history::Position>,
        forward: bool,
    ) {
        match route {
            WsRoute::Broadcast { data, .. } => self.broadcast_frame(&data, true),
            WsRoute::Socket {
                data, socket_id, ..
            } => {
                if !self.push_to_bound(&socket_id, &crate::socket::to_utf8(&data)) && forward {
                    self.forward_unheld(&[&socket_id], &data);
                }
            }
            WsRoute::Sockets {
                data, socket_ids, ..
            } => {
                // One conversion for every recipient.
                let text = crate::socket::to_utf8(&data);
                let mut unheld = Vec::new();
                for id in &socket_ids {
                    if !self.push_to_bound(id, &text) && forward {
                        unheld.push(id.as_str());
                    }
                }
                if !unheld.is_empty() {
                    self.forward_unheld(&unheld, &data);
                }
            }
            WsRoute::Room {
                data,
                room_namespace,
                room_id,
                exclude_socket_ids,
                ..
            } => {
                // The namespace must belong to the channel it came on: a
                // message cannot reach another namespace's members.
                let expected = match room_id.as_deref() {
                    Some(room) => self.room_channel(&room_namespace, room),
                    // A message to a whole namespace (from an original
                    // node) has no room channel.
                    None if !self.inner.channels.is_routed() => {
                        self.inner.channels.room_namespace(&room_namespace).ok()
                    }
                    None => None,
                };
                match expected {
                    Some(c) if c == channel => {}
                    _ => {
                        Stats::incr(&self.inner.stats.bus_dropped_invalid);
                        tracing::debug!(%channel, %room_namespace, "room message on a foreign channel: dropped");
                        return;
                    }
                }
                // A message with a position in a room with history reaches
                // the opted-in sockets in order and once.
                if let (Some(room), Some((store, config))) =
                    (room_id.as_deref(), self.history_of(&room_namespace))
                {
                    let Some(position) = position.as_ref() else {
                        // Sent without a position (by a node whose history
                        // store failed, or by an original node): the
                        // history missed it, so its epoch must change
                        // rather than a recovery pass over it.
                        if let crate::history::SharedHistory::Backend(backend) = store {
                            backend.reset(&room_namespace, room);
                        }
                        self.deliver_to_room(
                            &room_namespace,
                            Some(room),
                            &data,
                            &exclude_socket_ids,
                        );
                        return;
                    };
                    {
                        let stream = match store {
                            crate::history::SharedHistory::Memory(m) => {
                                m.stream_of(&room_namespace, room, &position.epoch)
                            }
                            crate::history::SharedHistory::Backend(_) => 0,
                        };
                        let at = super::recovery::At { position, stream };
                        self.deliver_positioned(
                            &room_namespace,
                            room,
                            &data,
                            &exclude_socket_ids,
                            at,
                            store,
                            config,
                        );
                        return;
                    }
                }
                self.deliver_to_room(
                    &room_namespace,
                    room_id.as_deref(),
                    &data,
                    &exclude_socket_ids,
                );
            }
        }
    }
}
