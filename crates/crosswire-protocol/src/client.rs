//! The frames exchanged between a client and a node (`docs/protocol.md` §2–§4).
//!
//! * client → node: an event frame `{"event":…,"payload":…,"callbackId":…}`
//!   ([`decode_client_frame`]) or the heartbeat string;
//! * node → client: a callback reply `{"payload":…,"callbackId":…}`
//!   ([`encode_reply`]) or a pushed event `{"event":…,"payload":…}`
//!   ([`PushFrame::encode`]), always as text frames.
//!
//! The client side of the same exchange ([`encode_client_event`],
//! [`decode_server_frame`]) serves the Rust client.

use crate::json::write_js_json;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Longest callback id (in UTF-16 code units, as JavaScript counts) that a
/// node honours with a reply handle.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{is_valid_callback_id, MAX_CALLBACK_ID_LEN};
/// assert_eq!(MAX_CALLBACK_ID_LEN, 64);
/// assert!(is_valid_callback_id(&"é".repeat(MAX_CALLBACK_ID_LEN)));
/// assert!(!is_valid_callback_id(&"é".repeat(MAX_CALLBACK_ID_LEN + 1)));
/// ```
pub const MAX_CALLBACK_ID_LEN: usize = 64;

/// Whether `id` is a callback id the original would answer: a string of 1 to
/// 64 UTF-16 code units.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::is_valid_callback_id;
/// assert!(is_valid_callback_id("mwyihlrn-18kj-1"));
/// assert!(!is_valid_callback_id(""));
/// assert!(is_valid_callback_id(&"x".repeat(64)));
/// assert!(!is_valid_callback_id(&"x".repeat(65)));
/// ```
pub fn is_valid_callback_id(id: &str) -> bool {
    // Fast path: a byte count within the limit bounds the UTF-16 count too.
    if id.is_empty() {
        return false;
    }
    if id.len() <= MAX_CALLBACK_ID_LEN {
        return true;
    }
    id.encode_utf16().take(MAX_CALLBACK_ID_LEN + 1).count() <= MAX_CALLBACK_ID_LEN
}

/// An event frame sent by a client.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_client_frame, ClientEvent, Inbound};
/// use serde_json::json;
/// let frame = decode_client_frame(r#"{"event":"say","payload":{"text":"hi"},"callbackId":"c-1"}"#, "ping")?;
/// assert_eq!(
///     frame,
///     Inbound::Event(ClientEvent {
///         event: "say".into(),
///         payload: Some(json!({"text": "hi"})),
///         callback_id: Some("c-1".into()),
///     })
/// );
/// # Ok::<(), crosswire_protocol::client::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEvent {
    /// The event name (never empty).
    pub event: String,
    /// The payload; `None` when the frame had no `payload` key.
    pub payload: Option<Value>,
    /// The callback id, present only when it was a valid one
    /// ([`is_valid_callback_id`]); a frame with an invalid id still reaches
    /// its handlers, but they cannot reply.
    pub callback_id: Option<String>,
}

/// What one inbound text frame from a client is.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_client_frame, Inbound};
/// assert_eq!(decode_client_frame("ping", "ping")?, Inbound::Heartbeat);
/// match decode_client_frame(r#"{"event":"move"}"#, "ping")? {
///     Inbound::Event(ev) => assert_eq!((ev.event.as_str(), ev.payload), ("move", None)),
///     Inbound::Heartbeat => unreachable!(),
/// }
/// # Ok::<(), crosswire_protocol::client::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The frame equals the heartbeat string: echo it back.
    Heartbeat,
    /// An application event.
    Event(ClientEvent),
}

/// Why a client frame was dropped.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_client_frame, FrameError};
/// assert!(matches!(decode_client_frame("{not json", ""), Err(FrameError::NotJson(_))));
/// assert!(matches!(decode_client_frame(r#"{"event":""}"#, ""), Err(FrameError::NoEvent)));
/// assert!(matches!(decode_client_frame("[1,2]", ""), Err(FrameError::NoEvent)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is not JSON.
    #[error("frame is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The frame is JSON but has no non-empty string `event`.
    #[error("frame has no non-empty string `event`")]
    NoEvent,
}

/// The fields of a frame the original looks at. Deserializes only from a
/// JSON object (an array such as `["say",1]` has no `event` property in
/// JavaScript); a repeated key takes its last value, like `JSON.parse`.
struct RawFrame<'a> {
    event: Option<MaybeStr<'a>>,
    /// `Some` whenever the key is present, even with a `null` value.
    payload: Option<Value>,
    callback_id: Option<MaybeStr<'a>>,
}

/// The keys of [`RawFrame`].
enum FrameKey {
    Event,
    Payload,
    CallbackId,
    Other,
}

impl<'de> Deserialize<'de> for FrameKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FrameKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, v: &str) -> Result<FrameKey, E> {
                Ok(match v {
                    "event" => FrameKey::Event,
                    "payload" => FrameKey::Payload,
                    "callbackId" => FrameKey::CallbackId,
                    _ => FrameKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawFrame<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawFrame<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut frame = RawFrame {
                    event: None,
                    payload: None,
                    callback_id: None,
                };
                while let Some(key) = a.next_key::<FrameKey>()? {
                    match key {
                        FrameKey::Event => frame.event = Some(a.next_value()?),
                        FrameKey::Payload => frame.payload = Some(a.next_value()?),
                        FrameKey::CallbackId => frame.callback_id = Some(a.next_value()?),
                        FrameKey::Other => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(frame)
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value that is kept only when it is a string; other values only
/// keep their JavaScript truthiness.
enum MaybeStr<'a> {
    Str(Cow<'a, str>),
    /// A truthy non-string (`true`, a non-zero number, an array or object).
    Truthy,
    /// A falsy non-string (`null`, `false`, `0`).
    Falsy,
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v { MaybeStr::Truthy } else { MaybeStr::Falsy })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(if v != 0 {
                    MaybeStr::Truthy
                } else {
                    MaybeStr::Falsy
                })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(if v != 0 {
                    MaybeStr::Truthy
                } else {
                    MaybeStr::Falsy
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(if v != 0.0 {
                    MaybeStr::Truthy
                } else {
                    MaybeStr::Falsy
                })
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Falsy)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Falsy)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr::Truthy)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr::Truthy)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads one inbound client frame (text, or a binary frame already decoded
/// as UTF-8) the way the original does (`docs/protocol.md` §3.3, §4.1).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_client_frame, Inbound};
/// let f = decode_client_frame(r#"{"event":"say","payload":1,"callbackId":"a-1"}"#, "").unwrap();
/// let Inbound::Event(ev) = f else { panic!() };
/// assert_eq!(ev.event, "say");
/// assert_eq!(ev.callback_id.as_deref(), Some("a-1"));
/// assert_eq!(decode_client_frame("", "").unwrap(), Inbound::Heartbeat);
/// ```
pub fn decode_client_frame(text: &str, heartbeat: &str) -> Result<Inbound, FrameError> {
    if text == heartbeat {
        return Ok(Inbound::Heartbeat);
    }
    // Any JSON that is not an object (null, numbers, arrays, strings) has no
    // `event`; serde reports a type error for those, which we map to NoEvent
    // after checking that the text is JSON at all.
    let raw: RawFrame<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) if e.is_data() => {
            serde_json::from_str::<IgnoredAny>(text)?;
            return Err(FrameError::NoEvent);
        }
        Err(e) => return Err(FrameError::NotJson(e)),
    };
    let event = match raw.event {
        Some(MaybeStr::Str(s)) if !s.is_empty() => s.into_owned(),
        _ => return Err(FrameError::NoEvent),
    };
    let callback_id = match raw.callback_id {
        Some(MaybeStr::Str(s)) if is_valid_callback_id(&s) => Some(s.into_owned()),
        _ => None,
    };
    Ok(Inbound::Event(ClientEvent {
        event,
        payload: raw.payload,
        callback_id,
    }))
}

/// An encoded pushed-event frame, `{"event":…,"payload":…}`: the text a node
/// sends to clients and relays verbatim to other nodes (`docs/protocol.md` §3.6).
///
/// Cloning is cheap (a reference count), so one encoded frame serves every
/// recipient of a broadcast.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::PushFrame;
/// let frame = PushFrame::encode("news", Some(&[1, 2]))?;
/// assert_eq!(frame.as_str(), r#"{"event":"news","payload":[1,2]}"#);
/// assert_eq!(frame.len(), frame.as_str().len());
/// let copy = frame.clone(); // shares the bytes
/// assert_eq!(copy, frame);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PushFrame(Bytes);

impl PushFrame {
    /// Encodes `{"event":event,"payload":payload}`; a `None` payload omits the
    /// key, as the original does for `undefined`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let f = PushFrame::encode("news", Some(&serde_json::json!({"n": 1}))).unwrap();
    /// assert_eq!(f.as_str(), r#"{"event":"news","payload":{"n":1}}"#);
    /// let f = PushFrame::encode::<()>("bc", None).unwrap();
    /// assert_eq!(f.as_str(), r#"{"event":"bc"}"#);
    /// ```
    pub fn encode<T: Serialize + ?Sized>(
        event: &str,
        payload: Option<&T>,
    ) -> Result<Self, serde_json::Error> {
        let mut buf = Vec::with_capacity(32 + event.len());
        buf.extend_from_slice(b"{\"event\":");
        write_js_json(&mut buf, event)?;
        if let Some(p) = payload {
            buf.extend_from_slice(b",\"payload\":");
            write_js_json(&mut buf, p)?;
        }
        buf.push(b'}');
        Ok(PushFrame(Bytes::from(buf)))
    }

    /// Wraps frame text received from another node without re-encoding it.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let frame = PushFrame::from_text(r#"{"event":"bc"}"#);
    /// assert_eq!(frame, PushFrame::encode::<()>("bc", None)?);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_text(text: impl Into<String>) -> Self {
        PushFrame(Bytes::from(text.into()))
    }

    /// Wraps bytes known to be UTF-8; returns `None` if they are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use crosswire_protocol::client::PushFrame;
    /// let frame = PushFrame::from_utf8(Bytes::from_static(br#"{"event":"x"}"#));
    /// assert_eq!(frame.map(|f| f.len()), Some(13));
    /// assert_eq!(PushFrame::from_utf8(Bytes::from_static(&[0xff, 0xfe])), None);
    /// ```
    pub fn from_utf8(bytes: Bytes) -> Option<Self> {
        std::str::from_utf8(&bytes).ok()?;
        Some(PushFrame(bytes))
    }

    /// The frame text.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let frame = PushFrame::encode("score", Some(&7))?;
    /// assert_eq!(frame.as_str(), r#"{"event":"score","payload":7}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        // Every constructor guarantees UTF-8; fall back to "" rather than panic.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The frame bytes (UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let frame = PushFrame::encode::<()>("tick", None)?;
    /// assert_eq!(&frame.bytes()[..], br#"{"event":"tick"}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The frame as shared bytes (UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let bytes = PushFrame::encode::<()>("tick", None)?.into_bytes();
    /// assert_eq!(bytes, bytes::Bytes::from_static(br#"{"event":"tick"}"#));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// let frame = PushFrame::encode::<()>("a", None)?;
    /// assert_eq!(frame.len(), r#"{"event":"a"}"#.len());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the frame is empty (never true for an encoded frame).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// assert!(!PushFrame::encode::<()>("a", None)?.is_empty());
    /// assert!(PushFrame::from_text("").is_empty());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for PushFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PushFrame").field(&self.as_str()).finish()
    }
}

/// Encodes a callback reply `{"payload":…,"callbackId":…}`; a `None` payload
/// omits the key (`docs/protocol.md` §3.4).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::encode_reply;
/// assert_eq!(encode_reply("id-1", Some(&"ok")).unwrap(), r#"{"payload":"ok","callbackId":"id-1"}"#);
/// assert_eq!(encode_reply::<()>("id-1", None).unwrap(), r#"{"callbackId":"id-1"}"#);
/// ```
pub fn encode_reply<T: Serialize + ?Sized>(
    callback_id: &str,
    payload: Option<&T>,
) -> Result<String, serde_json::Error> {
    let mut buf = Vec::with_capacity(32 + callback_id.len());
    buf.push(b'{');
    if let Some(p) = payload {
        buf.extend_from_slice(b"\"payload\":");
        write_js_json(&mut buf, p)?;
        buf.push(b',');
    }
    buf.extend_from_slice(b"\"callbackId\":");
    write_js_json(&mut buf, callback_id)?;
    buf.push(b'}');
    String::from_utf8(buf).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// Encodes a client event frame in the JS client's key order: `event`,
/// `payload`, `callbackId`.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::encode_client_event;
/// let s = encode_client_event("say", Some(&1), Some("a-1")).unwrap();
/// assert_eq!(s, r#"{"event":"say","payload":1,"callbackId":"a-1"}"#);
/// ```
pub fn encode_client_event<T: Serialize + ?Sized>(
    event: &str,
    payload: Option<&T>,
    callback_id: Option<&str>,
) -> Result<String, serde_json::Error> {
    let mut buf = Vec::with_capacity(48 + event.len());
    buf.extend_from_slice(b"{\"event\":");
    write_js_json(&mut buf, event)?;
    if let Some(p) = payload {
        buf.extend_from_slice(b",\"payload\":");
        write_js_json(&mut buf, p)?;
    }
    if let Some(id) = callback_id {
        buf.extend_from_slice(b",\"callbackId\":");
        write_js_json(&mut buf, id)?;
    }
    buf.push(b'}');
    String::from_utf8(buf).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// What one frame from a node is, seen from a client (`docs/protocol.md` §3.7).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_server_frame, ServerFrame};
/// use serde_json::json;
/// assert_eq!(decode_server_frame("pong", "pong"), Some(ServerFrame::Heartbeat));
/// assert_eq!(
///     decode_server_frame(r#"{"event":"news","payload":{"n":1}}"#, "pong"),
///     Some(ServerFrame::Event { event: "news".into(), payload: Some(json!({"n": 1})) })
/// );
/// assert_eq!(
///     decode_server_frame(r#"{"callbackId":"c-1"}"#, "pong"),
///     Some(ServerFrame::Reply { callback_id: "c-1".into(), payload: None })
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// The frame equals the client's heartbeat string.
    Heartbeat,
    /// A callback reply: the object had a truthy `callbackId`.
    Reply {
        /// The callback id (as a string; non-string truthy ids are dropped).
        callback_id: String,
        /// The reply value; `None` when the server replied without one.
        payload: Option<Value>,
    },
    /// A pushed event.
    Event {
        /// Event name.
        event: String,
        /// Payload; `None` when absent.
        payload: Option<Value>,
    },
}

/// Reads one frame from a node on the client side. Returns `None` for frames
/// the original client ignores (not JSON, no truthy `callbackId` or `event`,
/// a non-string event or id).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::{decode_server_frame, ServerFrame};
/// let f = decode_server_frame(r#"{"payload":"ok","callbackId":"a-1"}"#, "").unwrap();
/// assert_eq!(f, ServerFrame::Reply { callback_id: "a-1".into(), payload: Some("ok".into()) });
/// ```
pub fn decode_server_frame(text: &str, ping_msg: &str) -> Option<ServerFrame> {
    if text == ping_msg {
        return Some(ServerFrame::Heartbeat);
    }
    let raw: RawFrame<'_> = serde_json::from_str(text).ok()?;
    match raw.callback_id {
        Some(MaybeStr::Str(id)) if !id.is_empty() => {
            return Some(ServerFrame::Reply {
                callback_id: id.into_owned(),
                payload: raw.payload,
            });
        }
        // A truthy non-string id: the JS client treats the frame as a reply
        // whose id can never be pending, and drops it.
        Some(MaybeStr::Truthy) => return None,
        // Absent or falsy: not a reply; fall through to the event check.
        _ => {}
    }
    match raw.event {
        Some(MaybeStr::Str(event)) if !event.is_empty() => Some(ServerFrame::Event {
            event: event.into_owned(),
            payload: raw.payload,
        }),
        _ => None,
    }
}
