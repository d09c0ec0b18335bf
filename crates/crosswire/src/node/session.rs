//! One session per socket id across the cluster (opt-in,
//! [`NodeBuilder::one_session_per_id`](crate::NodeBuilder::one_session_per_id)).
//!
//! Each binding of an id ([`Node::set_user_socket`]) is a login with a
//! [`Claim`]: its wall-clock time, the node's name and a sequence number,
//! ordered in that order. The node tells every other node (crosswire's own
//! cross-server event [`CLAIM_EVENT`]), and every node keeps, per id, the
//! highest claim it has seen. A socket whose claim is lower than one seen
//! is closed with 4012 (the original's "kicked by a second login": its
//! client does not reconnect). Two logins of one id at the same moment on
//! two nodes therefore end the same way everywhere: the higher claim stays,
//! the other is closed, whatever order the claims arrive in.

use super::Node;
use crate::cross_server::CrossServerMessage;
use crate::{Result, Socket};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cross-server event of login claims (reserved: see
/// [`RESERVED_PREFIX`](crate::cross_server::RESERVED_PREFIX)).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::CLAIM_EVENT, "_cw_claim_");
/// ```
pub const CLAIM_EVENT: &str = "_cw_claim_";

/// The close code of a session ended by a newer login of its id.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::KICKED_CLOSE_CODE, 4012);
/// ```
pub const KICKED_CLOSE_CODE: u16 = 4012;

/// How long a node remembers the highest claim of an id.
const CLAIM_TTL: Duration = Duration::from_secs(300);
/// Claims between two sweeps of the old ones.
const SWEEP_EVERY: u64 = 1024;

/// One login of an id: compared by time, then node, then sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Claim {
    at: u64,
    node: String,
    seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimMessage {
    id: String,
    #[serde(flatten)]
    claim: Claim,
}

/// A node's view of the logins.
#[derive(Default)]
pub(crate) struct Sessions {
    seq: AtomicU64,
    /// One lock for both maps: a claim from another node and a login here
    /// must not pass each other between "highest seen" and "bound here".
    maps: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    /// The highest claim seen per id, and when it was seen.
    best: HashMap<String, (Claim, Instant)>,
    /// The claim of each id bound here, with its socket's connection id.
    local: HashMap<String, (Claim, u64)>,
}

impl Maps {
    /// Records `claim` for `id`; whether it is the highest seen.
    fn offer(&mut self, id: &str, claim: &Claim, sweep: bool) -> bool {
        let now = Instant::now();
        if sweep {
            self.best
                .retain(|_, (_, seen)| now.duration_since(*seen) < CLAIM_TTL);
        }
        match self.best.get(id) {
            Some((known, _)) if known > claim => false,
            _ => {
                self.best.insert(id.to_owned(), (claim.clone(), now));
                true
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Node {
    /// Registers the claim handler (at build, when the option is on).
    pub(crate) fn install_sessions(&self) -> Result<()> {
        if !self.inner.config.one_session {
            return Ok(());
        }
        self.on_internal(
            CLAIM_EVENT,
            |node: Node, msg: CrossServerMessage| async move {
                if let Ok(m) = serde_json::from_value::<ClaimMessage>(msg.payload) {
                    node.claim_seen(&m.id, &m.claim);
                }
            },
        )?;
        Ok(())
    }

    /// A login of `id` on this node, bound to `socket`; `previous` is the
    /// socket the id was bound to here before, if another.
    pub(crate) fn claim_login(&self, id: &str, socket: &Socket, previous: Option<&Socket>) {
        if !self.inner.config.one_session {
            return;
        }
        let sessions = &self.inner.sessions;
        let claim = Claim {
            at: now_ms(),
            node: self.server_name().to_owned(),
            seq: sessions.seq.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(old) = previous.filter(|old| old.id() != socket.id()) {
            old.close(KICKED_CLOSE_CODE, "logged in elsewhere");
        }
        let sweep = claim.seq.is_multiple_of(SWEEP_EVERY);
        let won = {
            let mut maps = sessions.maps.lock();
            let won = maps.offer(id, &claim, sweep);
            if won {
                maps.local
                    .insert(id.to_owned(), (claim.clone(), socket.id()));
            }
            won
        };
        if !won {
            // A later login of the id is known already: this one loses.
            self.kick(id, socket);
            return;
        }
        let message = ClaimMessage {
            id: id.to_owned(),
            claim,
        };
        match serde_json::to_value(&message) {
            Ok(payload) => {
                if let Err(e) = self
                    .emit_internal(CLAIM_EVENT, payload)
                    .except_self()
                    .send()
                {
                    tracing::warn!(%id, error = %e, "login claim not sent");
                }
            }
            Err(e) => tracing::warn!(%id, error = %e, "login claim not encoded"),
        }
    }

    /// Another node's claim: a session here with a lower one is closed.
    fn claim_seen(&self, id: &str, claim: &Claim) {
        let conn = {
            let mut maps = self.inner.sessions.maps.lock();
            if !maps.offer(id, claim, false) {
                return;
            }
            match maps.local.get(id) {
                Some((local, conn)) if local < claim => {
                    let conn = *conn;
                    maps.local.remove(id);
                    conn
                }
                _ => return,
            }
        };
        if let Some(socket) = self.get_socket(id).filter(|s| s.id() == conn) {
            self.kick(id, &socket);
        }
    }

    /// Ends the session of `id` on `socket`: unbound at once (so that no
    /// query or send finds it), then closed with 4012.
    fn kick(&self, id: &str, socket: &Socket) {
        let mut maps = self.inner.sessions.maps.lock();
        if maps.local.get(id).is_some_and(|(_, c)| *c == socket.id()) {
            maps.local.remove(id);
        }
        drop(maps);
        if self.get_socket(id).is_some_and(|s| s.id() == socket.id()) {
            let _ = self.remove_user_socket(id);
        }
        socket.close(KICKED_CLOSE_CODE, "logged in elsewhere");
    }

    /// Forgets the local claim of `id` when its socket is unbound.
    pub(crate) fn session_ended(&self, id: &str, conn: u64) {
        if !self.inner.config.one_session {
            return;
        }
        let mut maps = self.inner.sessions.maps.lock();
        if maps.local.get(id).is_some_and(|(_, c)| *c == conn) {
            maps.local.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_order_by_time_then_node_then_sequence() {
        let c = |at, node: &str, seq| Claim {
            at,
            node: node.into(),
            seq,
        };
        assert!(c(2, "a", 0) > c(1, "z", 9));
        assert!(c(1, "b", 0) > c(1, "a", 9));
        assert!(c(1, "a", 2) > c(1, "a", 1));
        let mut m = Maps::default();
        assert!(m.offer("u", &c(1, "a", 1), false));
        assert!(!m.offer("u", &c(1, "a", 0), false));
        assert!(m.offer("u", &c(1, "b", 0), true));
    }
}
