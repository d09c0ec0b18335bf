//! The signed bus frame (opt-in signing mode): a bus envelope wrapped with a
//! timestamp, a nonce and an HMAC-SHA256 tag, so that receivers can refuse
//! forged, altered and replayed messages.
//!
//! ```text
//! "CWS1" | timestamp (u64 ms, big endian) | nonce (u64, big endian) | HMAC-SHA256 (32 bytes) | envelope
//! ```
//!
//! The tag covers the channel name (its length as a big-endian u64, then its
//! bytes), the timestamp, the nonce and the envelope, so a message signed
//! for one channel does not verify on another. The replay window and the
//! nonce memory are the receiver's policy, not part of the frame.
//!
//! # Examples
//!
//! ```
//! use crosswire_protocol::signed::{open, seal, Key, Refused};
//! let key = Key::new(b"shared secret");
//! let frame = seal(&key, "ws:chat", 1_700_000_000_000, 42, b"envelope");
//! let opened = open(&key, "ws:chat", &frame)?;
//! assert_eq!((opened.timestamp_ms, opened.nonce, opened.body), (1_700_000_000_000, 42, &b"envelope"[..]));
//! assert_eq!(open(&key, "ws:other", &frame).err(), Some(Refused::BadSignature));
//! assert_eq!(open(&key, "ws:chat", b"plain").err(), Some(Refused::Unsigned));
//! # Ok::<(), Refused>(())
//! ```

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The first bytes of every signed frame.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::signed::MAGIC, b"CWS1");
/// ```
pub const MAGIC: &[u8; 4] = b"CWS1";

/// Bytes before the envelope: magic, timestamp, nonce, tag.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::signed::HEADER_LEN, 52);
/// ```
pub const HEADER_LEN: usize = 4 + 8 + 8 + 32;

/// A shared secret, ready to sign with.
///
/// # Examples
///
/// ```
/// let key = crosswire_protocol::signed::Key::new(b"secret");
/// # let _ = key;
/// ```
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from the shared secret (any length).
    ///
    /// # Examples
    ///
    /// ```
    /// let key = crosswire_protocol::signed::Key::new(b"");
    /// # let _ = key;
    /// ```
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
            Ok(mac) => Key(mac),
            Err(_) => Key(<Hmac<Sha256> as KeyInit>::new(&Default::default())),
        }
    }

    fn mac(&self, channel: &str, timestamp_ms: u64, nonce: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(&(channel.len() as u64).to_be_bytes());
        mac.update(channel.as_bytes());
        mac.update(&timestamp_ms.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        mac.update(body);
        mac
    }
}

/// Why a frame was refused.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::signed::{open, Key, Refused};
/// assert_eq!(open(&Key::new(b"k"), "c", b"").err(), Some(Refused::Unsigned));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a signed frame, or too short.
    Unsigned,
    /// The tag does not match (another key, another channel, or altered).
    BadSignature,
    /// The timestamp is outside the receiver's replay window.
    Stale,
    /// The nonce was seen before within the receiver's window.
    Replayed,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Unsigned => "not a signed frame",
            Refused::BadSignature => "bad signature",
            Refused::Stale => "outside the replay window",
            Refused::Replayed => "replayed",
        })
    }
}

impl std::error::Error for Refused {}

/// A verified frame.
///
/// # Examples
///
/// See the [module](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The sender's clock when it signed, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The sender's random nonce.
    pub nonce: u64,
    /// The envelope inside.
    pub body: &'a [u8],
}

/// Wraps an encoded envelope for `channel`.
///
/// # Examples
///
/// See the [module](self).
pub fn seal(key: &Key, channel: &str, timestamp_ms: u64, nonce: u64, body: &[u8]) -> Vec<u8> {
    let tag = key
        .mac(channel, timestamp_ms, nonce, body)
        .finalize()
        .into_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(body);
    out
}

/// Checks a frame received on `channel` (constant-time tag comparison);
/// returns its parts. Freshness and replay are the caller's to check.
///
/// # Examples
///
/// See the [module](self).
pub fn open<'a>(key: &Key, channel: &str, frame: &'a [u8]) -> Result<Opened<'a>, Refused> {
    let (Some(magic), Some(ts), Some(nonce), Some(tag)) = (
        frame.get(..4),
        frame.get(4..12),
        frame.get(12..20),
        frame.get(20..HEADER_LEN),
    ) else {
        return Err(Refused::Unsigned);
    };
    if magic != MAGIC {
        return Err(Refused::Unsigned);
    }
    let timestamp_ms = u64::from_be_bytes(ts.try_into().map_err(|_| Refused::Unsigned)?);
    let nonce = u64::from_be_bytes(nonce.try_into().map_err(|_| Refused::Unsigned)?);
    let body = &frame[HEADER_LEN..];
    key.mac(channel, timestamp_ms, nonce, body)
        .verify_slice(tag)
        .map_err(|_| Refused::BadSignature)?;
    Ok(Opened {
        timestamp_ms,
        nonce,
        body,
    })
}
