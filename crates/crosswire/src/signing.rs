//! Opt-in signing of bus messages with a shared secret (the frame itself is
//! defined in [`crosswire_protocol::signed`]).
//!
//! The original's bus is unauthenticated: anyone who can publish on Redis can
//! impersonate a node, run cross-server events, forge replies and push frames
//! to any socket. With signing on, every message a node publishes is wrapped
//! as
//!
//! ```text
//! "CWS1" | timestamp (u64 ms, big endian) | nonce (u64) | HMAC-SHA256 (32 bytes) | envelope
//! ```
//!
//! where the MAC covers the channel name, the timestamp, the nonce and the
//! envelope. Receivers drop (and count) anything unsigned, with a wrong MAC,
//! older or newer than the replay window, or whose nonce they have already
//! seen within the window. This changes the wire: every node of the cluster
//! must use it with the same secret, and original Node.js nodes cannot join
//! such a cluster.

pub(crate) use crosswire_protocol::signed::Refused;
use crosswire_protocol::signed::{open, seal, Key};
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nonces seen within the replay window, and their (timestamp, nonce) in
/// arrival order for expiry.
type Seen = (HashSet<u64>, VecDeque<(u64, u64)>);

/// Signs what this node publishes and checks what it receives: the frame
/// format is the protocol's ([`crosswire_protocol::signed`]); the replay
/// window and the nonces seen are this node's.
pub(crate) struct Signer {
    key: Key,
    window: Duration,
    seen: Mutex<Seen>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Signer {
    pub(crate) fn new(secret: &[u8], window: Duration) -> Option<Self> {
        Some(Signer {
            key: Key::new(secret),
            window,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        })
    }

    /// Wraps an encoded envelope for `channel`.
    pub(crate) fn sign(&self, channel: &str, body: &[u8]) -> Vec<u8> {
        seal(&self.key, channel, now_ms(), rand::random(), body)
    }

    /// Checks a received message; returns the envelope inside.
    pub(crate) fn verify<'a>(&self, channel: &str, msg: &'a [u8]) -> Result<&'a [u8], Refused> {
        let opened = open(&self.key, channel, msg)?;
        let now = now_ms();
        let window = self.window.as_millis() as u64;
        if opened.timestamp_ms.abs_diff(now) > window {
            return Err(Refused::Stale);
        }
        let mut seen = self.seen.lock();
        let (set, order) = &mut *seen;
        while let Some(&(old_ts, old_nonce)) = order.front() {
            if now.saturating_sub(old_ts) > window {
                order.pop_front();
                set.remove(&old_nonce);
            } else {
                break;
            }
        }
        if !set.insert(opened.nonce) {
            return Err(Refused::Replayed);
        }
        order.push_back((opened.timestamp_ms, opened.nonce));
        Ok(opened.body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_refusals() {
        let s = Signer::new(b"secret", Duration::from_secs(30)).unwrap();
        let msg = s.sign("ws:chat", b"hello");
        assert_eq!(s.verify("ws:chat", &msg), Ok(&b"hello"[..]));
        assert_eq!(s.verify("ws:chat", &msg), Err(Refused::Replayed));
        let msg = s.sign("ws:chat", b"hello");
        assert_eq!(s.verify("ws:other", &msg), Err(Refused::BadSignature));
        let mut tampered = s.sign("ws:chat", b"hello");
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(s.verify("ws:chat", &tampered), Err(Refused::BadSignature));
        assert_eq!(s.verify("ws:chat", b"hello"), Err(Refused::Unsigned));
        let other = Signer::new(b"other", Duration::from_secs(30)).unwrap();
        assert_eq!(
            other.verify("ws:chat", &s.sign("ws:chat", b"x")),
            Err(Refused::BadSignature)
        );
    }
}
