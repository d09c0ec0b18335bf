//! What the WebSocket transport asks of the node: a socket for a new
//! connection, the handling of each text frame (heartbeat, authentication,
//! dispatch to the event handlers), and the handles it needs to run the
//! connection (configuration, counters, system-event listeners, tasks).

use super::{ClientContext, Node, SystemEvents};
use crate::auth::UpgradeHook;
use crate::events::{run_detached, Slotted};
use crate::socket::{close_code, Handshake, Socket};
use crate::stats::{HandlerKind, Stats, Timed};
use axum::extract::ws::Utf8Bytes;
use crosswire_protocol::client::{decode_client_frame, Inbound};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

impl Node {
    /// The node's counters.
    pub(crate) fn counters(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// The system-event listeners.
    pub(crate) fn system(&self) -> &SystemEvents {
        &self.inner.system
    }

    /// The upgrade hook, if the application set one.
    pub(crate) fn upgrade_hook(&self) -> Option<&UpgradeHook> {
        self.inner.upgrade_hook.as_ref()
    }

    /// The tracker of connection tasks (shutdown waits for them).
    pub(crate) fn tasks(&self) -> &tokio_util::task::TaskTracker {
        &self.inner.tasks
    }

    /// Cancelled when the node shuts down.
    pub(crate) fn shutdown_token(&self) -> &tokio_util::sync::CancellationToken {
        &self.inner.shutdown
    }

    /// Registers a new connection's socket (closing it at once when the node is
    /// shutting down or full; arming the authentication timeout).
    pub(crate) fn open_socket(&self, handshake: Arc<Handshake>) -> Socket {
        let node = self;
        let inner = &self.inner;
        let conn_id = inner.local.next_conn_id();
        let socket = node.new_socket(conn_id, handshake, inner.auth.is_none());
        inner.local.add_connection(&socket);
        Stats::incr(&inner.stats.connections_accepted);
        if node.is_shut_down() {
            socket.close(close_code::GOING_AWAY, "server shutting down");
        } else if inner
            .config
            .max_connections
            .is_some_and(|max| inner.local.connection_count() > max)
        {
            Stats::incr(&inner.stats.connections_refused);
            socket.close(close_code::TRY_AGAIN_LATER, "connection limit reached");
        }
        if let Some(auth) = &inner.auth {
            let s = socket.clone();
            let timeout = auth.timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if s.is_open() && !s.is_authenticated() {
                    s.close(close_code::NOT_AUTHENTICATED, "not authenticated in time");
                }
            });
        }
        socket
    }

    /// Handles one text frame of `socket`: a heartbeat, the auth event, or an
    /// event for this node's handlers; then the `message` listeners.
    pub(crate) async fn on_text(&self, socket: &Socket, text: Utf8Bytes, slots: &Arc<Semaphore>) {
        let node = self;
        let inner = &self.inner;
        match decode_client_frame(text.as_str(), &inner.config.heartbeat) {
            Ok(Inbound::Heartbeat) => {
                for h in inner.system.client_ping.take_for_dispatch() {
                    run_detached(h(socket.clone())).await;
                }
                let _ = socket.push(text.clone());
            }
            Ok(Inbound::Event(ev)) if !socket.is_authenticated() => {
                node.authenticate(socket, ev).await;
            }
            Ok(Inbound::Event(ev)) => {
                if crate::events::is_reserved(&ev.event) {
                    Stats::incr(&inner.stats.frames_dropped_reserved);
                    tracing::debug!(socket = socket.id(), event = %ev.event, "reserved event name: dropped");
                } else {
                    let handlers = inner.client_events.dispatch(&ev.event);
                    if handlers.is_empty() {
                        Stats::incr(&inner.stats.frames_dropped_unhandled);
                        tracing::debug!(socket = socket.id(), event = %ev.event, "no handler: dropped");
                    } else {
                        let reply = ev
                            .callback_id
                            .map(|id| crate::events::Reply::new(socket.clone(), id));
                        let payload = ev.payload.unwrap_or(Value::Null);
                        let start = Instant::now();
                        // Free unless the socket is closing (then step() reads no more).
                        let slot = slots.clone().try_acquire_owned().ok().map(Arc::new);
                        for (h, p) in crate::events::each_with(&handlers, payload) {
                            let cx =
                                ClientContext::new(node.clone(), socket.clone(), p, reply.clone());
                            let fut = h.call(cx);
                            let timed =
                                Timed::new(fut, start, inner.stats.clone(), HandlerKind::Client);
                            run_detached(Slotted::new(timed, slot.clone())).await;
                        }
                    }
                }
            }
            Err(e) => {
                Stats::incr(&inner.stats.frames_dropped_invalid);
                tracing::debug!(socket = socket.id(), error = %e, "invalid frame: dropped");
            }
        }
        for h in inner.system.message.take_for_dispatch() {
            run_detached(h((socket.clone(), text.clone()))).await;
        }
    }

    /// Handles a frame from a socket that has not authenticated yet: only the
    /// auth event counts.
    async fn authenticate(&self, socket: &Socket, ev: crosswire_protocol::client::ClientEvent) {
        let node = self;
        let Some(auth) = &node.inner.auth else { return };
        if ev.event != auth.event {
            Stats::incr(&node.inner.stats.frames_dropped_unauthenticated);
            tracing::debug!(socket = socket.id(), event = %ev.event, "not authenticated: dropped");
            return;
        }
        let reply = ev
            .callback_id
            .map(|id| crate::events::Reply::new(socket.clone(), id));
        let user = (auth.verify)(ev.payload.unwrap_or(Value::Null)).await;
        match user.filter(|u| !u.is_empty()) {
            Some(user) => {
                if let Ok(Some(previous)) = node.set_user_socket(&user, socket) {
                    tracing::debug!(%user, old = previous.id(), "user re-authenticated on another socket");
                }
                socket.set_authenticated();
                if let Some(r) = reply {
                    let _ = r.send(&serde_json::json!({ "ok": true }));
                }
            }
            None => {
                if let Some(r) = reply {
                    let _ = r.send(&serde_json::json!({ "ok": false }));
                }
                socket.close(close_code::AUTH_FAILED, "Auth failure");
            }
        }
    }
}
