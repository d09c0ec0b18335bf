//! Opt-in signing of bus messages with a shared secret.
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

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"CWS1";
const HEADER: usize = 4 + 8 + 8 + 32;

/// Why a signed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a signed message, or too short.
    Unsigned,
    /// The MAC does not match.
    BadSignature,
    /// The timestamp is outside the replay window.
    Stale,
    /// The nonce was seen before within the window.
    Replayed,
}

/// Nonces seen within the replay window, and their (timestamp, nonce) in
/// arrival order for expiry.
type Seen = (HashSet<u64>, VecDeque<(u64, u64)>);

pub(crate) struct Signer {
    mac: Hmac<Sha256>,
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
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
        Some(Signer {
            mac,
            window,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        })
    }

    fn tag(&self, channel: &str, ts: u64, nonce: u64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&(channel.len() as u64).to_be_bytes());
        mac.update(channel.as_bytes());
        mac.update(&ts.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Wraps an encoded envelope for `channel`.
    pub(crate) fn sign(&self, channel: &str, body: &[u8]) -> Vec<u8> {
        let ts = now_ms();
        let nonce: u64 = rand::random();
        let tag = self.tag(channel, ts, nonce, body);
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&nonce.to_be_bytes());
        out.extend_from_slice(&tag);
        out.extend_from_slice(body);
        out
    }

    /// Checks a received message; returns the envelope inside.
    pub(crate) fn verify<'a>(&self, channel: &str, msg: &'a [u8]) -> Result<&'a [u8], Refused> {
        if msg.len() < HEADER || &msg[..4] != MAGIC {
            return Err(Refused::Unsigned);
        }
        let ts = u64::from_be_bytes(msg[4..12].try_into().map_err(|_| Refused::Unsigned)?);
        let nonce = u64::from_be_bytes(msg[12..20].try_into().map_err(|_| Refused::Unsigned)?);
        let body = &msg[HEADER..];
        let mut mac = self.mac.clone();
        mac.update(&(channel.len() as u64).to_be_bytes());
        mac.update(channel.as_bytes());
        mac.update(&ts.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        mac.update(body);
        mac.verify_slice(&msg[20..HEADER])
            .map_err(|_| Refused::BadSignature)?;
        let now = now_ms();
        let window = self.window.as_millis() as u64;
        if ts.abs_diff(now) > window {
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
        if !set.insert(nonce) {
            return Err(Refused::Replayed);
        }
        order.push_back((ts, nonce));
        Ok(body)
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
