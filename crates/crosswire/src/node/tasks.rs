//! The node's background tasks: membership announcements and the liveness sweep.

use super::*;

/// Announces the node on the bridge channel every `announce_interval`
/// (membership; the original ignores these messages).
pub(crate) async fn announcer(node: Weak<NodeInner>, stop: CancellationToken) {
    let (every, cluster) = match node.upgrade() {
        Some(n) => (n.config.announce_interval, n.cluster.clone()),
        None => return,
    };
    if let Some(cluster) = cluster {
        // Announced once it can hear the others (and, routing by host, the
        // calls and replies addressed to it).
        let channels: Vec<String> = match node.upgrade() {
            Some(n) if n.channels.is_routed() => vec![
                n.channels.bridge().to_owned(),
                n.channels.node_bridge(&n.config.server_name),
            ],
            Some(n) => vec![n.channels.bridge().to_owned()],
            None => return,
        };
        for channel in &channels {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = cluster.wait_confirmed(channel, true) => {}
            }
        }
    }
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    // Members that went silent are dropped within a fifth of a second of
    // their timeout (their presence with them).
    let mut sweep = tokio::time::interval(Duration::from_millis(200));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let announce = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => true,
            _ = sweep.tick() => false,
        };
        let Some(inner) = node.upgrade() else { return };
        let node = Node { inner };
        if announce {
            node.announce(crate::cross_server::MEMBER_EVENT);
        } else {
            node.sweep_members();
        }
    }
}

/// Every `server_ping_interval`: terminate sockets too long in the background
/// or that missed the previous ping, and ping the rest ([docs/protocol.md §4.2](../../docs/protocol.md)).
pub(crate) async fn liveness_sweep(node: Weak<NodeInner>, stop: CancellationToken) {
    let every = match node.upgrade() {
        Some(n) => n.config.server_ping_interval,
        None => return,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(node) = node.upgrade() else { return };
        let limit = node.config.enter_background_close_time;
        node.local.for_each_connection(|socket| {
            if socket.background_for().is_some_and(|d| d > limit) {
                Stats::incr(&node.stats.background_terminations);
                tracing::debug!(socket = socket.id(), "background too long: terminating");
                socket.terminate();
            } else if !socket.take_alive() {
                Stats::incr(&node.stats.liveness_terminations);
                tracing::debug!(socket = socket.id(), "missed pong: terminating");
                socket.terminate();
            } else {
                socket.request_ping();
            }
        });
    }
}
