//! The messages between nodes on the bus, in both codecs of the original,
//! byte for byte (`docs/protocol.md` §6–§9).
//!
//! * [`BridgeMessage`] on the bridge channel (`csbp:server_bridge`): a
//!   cross-server event ([`BridgeEvent`], §7.1) or a callback reply
//!   ([`BridgeReply`], §7.2);
//! * [`WsRoute`] on the WebSocket routing channels (§8): a client frame for
//!   every socket, for one or several socket ids, or for a room;
//! * any JSON value on custom channels ([`encode_value`], [`decode_value`]).
//!
//! The codec is the original's `enableRedisDataCompression`: MessagePack
//! (notepack-compatible, the default) or JSON. All nodes of a cluster must
//! use the same one.
//!
//! Decoders validate like the original's receivers and return an
//! [`EnvelopeError`] for anything the original would drop (or crash on);
//! they never panic, whatever the bytes.
//!
//! ```
//! use crosswire_protocol::client::PushFrame;
//! use crosswire_protocol::channels::ChannelKind;
//! use crosswire_protocol::envelope::{decode_ws_route, encode_ws_route, Codec, WsRoute};
//!
//! let route = WsRoute::Broadcast {
//!     data: PushFrame::encode("news", Some(&serde_json::json!({"n": 1}))).unwrap(),
//!     sender_server: "serverA".into(),
//! };
//! let bytes = encode_ws_route(&route, None, Codec::Json).unwrap();
//! assert_eq!(
//!     bytes,
//!     br#"{"data":"{\"event\":\"news\",\"payload\":{\"n\":1}}","senderServer":"serverA"}"#
//! );
//! let back = decode_ws_route(ChannelKind::Broadcast, &bytes, Codec::Json).unwrap();
//! assert_eq!(back.message, route);
//! assert_eq!(back.message_id, None);
//! ```

use crate::channels::ChannelKind;
use crate::client::PushFrame;
use crate::history::{Position, POSITION_KEY};
use crate::json::write_js_json;
use crate::msgpack;
use serde_json::{Map, Value};

pub use crate::error::{EnvelopeError, MAX_DEPTH};

/// Bridge event name of a node's membership announcement (crosswire nodes
/// announce themselves periodically; the original has no listener for it
/// and ignores it).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::envelope::MEMBER_EVENT, "_cw_member_");
/// ```
pub const MEMBER_EVENT: &str = "_cw_member_";

/// Bridge event name of a node leaving the cluster (sent on shutdown).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_protocol::envelope::MEMBER_LEAVE_EVENT, "_cw_member_leave_");
/// ```
pub const MEMBER_LEAVE_EVENT: &str = "_cw_member_leave_";

/// The bus codec (the original's `enableRedisDataCompression`: `true`, the
/// default, is MessagePack; `false` is JSON).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_value, encode_value, Codec};
/// let v = serde_json::json!({"a": 1});
/// assert_eq!(Codec::default(), Codec::MsgPack);
/// assert_eq!(encode_value(&v, Codec::MsgPack)?, [0x81, 0xa1, b'a', 0x01]);
/// assert_eq!(encode_value(&v, Codec::Json)?, br#"{"a":1}"#);
/// assert_eq!(decode_value(&[0x81, 0xa1, b'a', 0x01], Codec::MsgPack)?, v);
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// MessagePack as notepack writes it (binary payloads).
    #[default]
    MsgPack,
    /// `JSON.stringify` text.
    Json,
}

/// Key order of a [`BridgeEvent`]'s inner object. Receivers accept both;
/// it only matters for byte identity with the original.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{encode_bridge, BridgeEvent, BridgeMessage, Codec, KeyOrder};
/// let mut ev = BridgeEvent {
///     event: "ask".into(),
///     sender_server: Some("a".into()),
///     payload: Some(serde_json::json!(1)),
///     target_server: vec![],
///     callback_id: None,
///     key_order: KeyOrder::Emit,
/// };
/// let emit = encode_bridge(&BridgeMessage::Event(ev.clone()), None, Codec::Json)?;
/// assert_eq!(emit, br#"{"data":{"event":"ask","senderServer":"a","payload":1,"targetServer":[]}}"#);
/// ev.key_order = KeyOrder::Promise;
/// let promise = encode_bridge(&BridgeMessage::Event(ev), None, Codec::Json)?;
/// assert_eq!(promise, br#"{"data":{"payload":1,"event":"ask","senderServer":"a","targetServer":[]}}"#);
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrder {
    /// `emitCrossServer`: `event, senderServer, payload, targetServer[, callbackId]`.
    #[default]
    Emit,
    /// `emitCrossServerWithPromise`: `payload, event, senderServer, targetServer, callbackId`.
    Promise,
}

/// Event name of callback replies on the bridge channel.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{encode_bridge, BridgeMessage, BridgeReply, Codec, CALLBACK_EVENT};
/// assert_eq!(CALLBACK_EVENT, "_Cs_Cb_");
/// let reply = BridgeMessage::Reply(BridgeReply {
///     sender_server: "b".into(),
///     callback_id: "id-1".into(),
///     payload: None,
/// });
/// let text = String::from_utf8(encode_bridge(&reply, None, Codec::Json)?)?;
/// assert!(text.contains(r#""event":"_Cs_Cb_""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const CALLBACK_EVENT: &str = "_Cs_Cb_";

/// Outer key carrying [`Envelope::message_id`].
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::envelope::{encode_ws_route, Codec, WsRoute, MESSAGE_ID_KEY};
/// assert_eq!(MESSAGE_ID_KEY, "cwMid");
/// let route = WsRoute::Broadcast {
///     data: PushFrame::encode::<()>("bc", None)?,
///     sender_server: "a".into(),
/// };
/// let text = String::from_utf8(encode_ws_route(&route, Some("m-1"), Codec::Json)?)?;
/// assert!(text.ends_with(r#","cwMid":"m-1"}"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MESSAGE_ID_KEY: &str = "cwMid";

/// A cross-server event (`docs/protocol.md` §7.1).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_bridge, encode_bridge, BridgeEvent, BridgeMessage, Codec, KeyOrder};
/// let ev = BridgeMessage::Event(BridgeEvent {
///     event: "count".into(),
///     sender_server: Some("serverA".into()),
///     payload: Some(serde_json::json!({"ns": "chat"})),
///     target_server: vec!["serverB".into()],
///     callback_id: Some("erverA-m0abcdef-k3x9-1".into()),
///     key_order: KeyOrder::Emit,
/// });
/// let bytes = encode_bridge(&ev, None, Codec::MsgPack)?;
/// assert_eq!(decode_bridge(&bytes, Codec::MsgPack)?.message, ev);
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeEvent {
    /// Event name (non-empty).
    pub event: String,
    /// Origin node; `None` when the message had none (still processed, but
    /// it cannot be self-skipped).
    pub sender_server: Option<String>,
    /// Application payload; `None` omits the key (`undefined`).
    pub payload: Option<Value>,
    /// Nodes that must handle the event; empty means every node.
    pub target_server: Vec<String>,
    /// Present when the origin expects replies.
    pub callback_id: Option<String>,
    /// Key order used when encoding; on decoding, [`KeyOrder::Promise`] when
    /// `payload` came before `event`.
    pub key_order: KeyOrder,
}

/// A callback reply (`docs/protocol.md` §7.2). Encodes as
/// `{"event":"_Cs_Cb_","senderServer":…,"targetServer":[],"callbackId":…,"isCallback":true,"payload":…}`.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_bridge, encode_bridge, BridgeMessage, BridgeReply, Codec};
/// let reply = BridgeMessage::Reply(BridgeReply {
///     sender_server: "serverB".into(),
///     callback_id: "erverA-m0abcdef-k3x9-1".into(),
///     payload: Some(serde_json::json!(42)),
/// });
/// let bytes = encode_bridge(&reply, None, Codec::Json)?;
/// assert_eq!(decode_bridge(&bytes, Codec::Json)?.message, reply);
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeReply {
    /// The replying node (non-empty).
    pub sender_server: String,
    /// The callback id of the request.
    pub callback_id: String,
    /// The reply value; `None` omits the key (`cb()` without a value).
    pub payload: Option<Value>,
}

/// A message on the bridge channel.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_bridge, BridgeMessage, Codec};
/// let bytes = br#"{"data":{"event":"_Cs_Cb_","senderServer":"b","targetServer":[],"callbackId":"id-1","isCallback":true,"payload":"ok"}}"#;
/// match decode_bridge(bytes, Codec::Json)?.message {
///     BridgeMessage::Reply(r) => assert_eq!((r.callback_id.as_str(), r.payload), ("id-1", Some("ok".into()))),
///     BridgeMessage::Event(_) => unreachable!(),
/// }
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeMessage {
    /// A cross-server event.
    Event(BridgeEvent),
    /// A reply to a cross-server event.
    Reply(BridgeReply),
}

impl BridgeMessage {
    /// The origin node, if known.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::envelope::{BridgeMessage, BridgeReply};
    /// let reply = BridgeMessage::Reply(BridgeReply {
    ///     sender_server: "serverB".into(),
    ///     callback_id: "id-1".into(),
    ///     payload: None,
    /// });
    /// assert_eq!(reply.sender_server(), Some("serverB"));
    /// ```
    pub fn sender_server(&self) -> Option<&str> {
        match self {
            BridgeMessage::Event(e) => e.sender_server.as_deref(),
            BridgeMessage::Reply(r) => Some(&r.sender_server),
        }
    }
}

/// A client frame routed through the bus (`docs/protocol.md` §8). `data` is
/// the exact text of the pushed frame (§3.6), relayed verbatim.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::envelope::{decode_ws_route, encode_ws_route, Codec, WsRoute};
/// let route = WsRoute::Room {
///     data: PushFrame::encode("say", Some(&"hi"))?,
///     room_namespace: "chat".into(),
///     room_id: Some("r1".into()),
///     sender_server: "serverA".into(),
///     exclude_socket_ids: vec!["u9".into()],
/// };
/// let bytes = encode_ws_route(&route, None, Codec::MsgPack)?;
/// assert_eq!(decode_ws_route(ChannelKind::Room, &bytes, Codec::MsgPack)?.message, route);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum WsRoute {
    /// Channel `ws:broadcast`: every connected socket.
    Broadcast {
        /// The frame.
        data: PushFrame,
        /// Origin node (`""` if a received message had none).
        sender_server: String,
    },
    /// Channel `ws:private_socket`: one socket id.
    Socket {
        /// The frame.
        data: PushFrame,
        /// The target socket id.
        socket_id: String,
        /// Origin node (`""` if a received message had none).
        sender_server: String,
    },
    /// Channel `ws:private_socket`: several socket ids.
    Sockets {
        /// The frame.
        data: PushFrame,
        /// The target socket ids (on decoding: only the non-empty strings).
        socket_ids: Vec<String>,
        /// Origin node (`""` if a received message had none).
        sender_server: String,
    },
    /// A room namespace channel: members of a room (or of every room of the
    /// namespace when `room_id` is `None`).
    Room {
        /// The frame.
        data: PushFrame,
        /// The namespace as the caller spelled it (`chat` or `ws:chat`);
        /// receivers look members up with this, not with the channel.
        room_namespace: String,
        /// The room; `None` (missing or empty on the wire) selects every
        /// room of the namespace.
        room_id: Option<String>,
        /// Origin node (`""` if a received message had none).
        sender_server: String,
        /// Socket ids that must not receive the frame (exact matches).
        exclude_socket_ids: Vec<String>,
    },
}

impl WsRoute {
    /// The frame carried.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// use crosswire_protocol::envelope::WsRoute;
    /// let frame = PushFrame::encode("pm", Some(&1))?;
    /// let route = WsRoute::Socket { data: frame.clone(), socket_id: "u1".into(), sender_server: "a".into() };
    /// assert_eq!(route.data(), &frame);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn data(&self) -> &PushFrame {
        match self {
            WsRoute::Broadcast { data, .. }
            | WsRoute::Socket { data, .. }
            | WsRoute::Sockets { data, .. }
            | WsRoute::Room { data, .. } => data,
        }
    }

    /// The origin node (`""` if unknown).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::client::PushFrame;
    /// use crosswire_protocol::envelope::WsRoute;
    /// let route = WsRoute::Broadcast { data: PushFrame::encode::<()>("bc", None)?, sender_server: "serverA".into() };
    /// assert_eq!(route.sender_server(), "serverA");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn sender_server(&self) -> &str {
        match self {
            WsRoute::Broadcast { sender_server, .. }
            | WsRoute::Socket { sender_server, .. }
            | WsRoute::Sockets { sender_server, .. }
            | WsRoute::Room { sender_server, .. } => sender_server,
        }
    }
}

/// A decoded message plus the optional message id of crosswire's opt-in
/// redundant publishing, carried as an extra last outer key `"cwMid"`
/// (a string) that the original ignores.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::envelope::{decode_ws_route, Codec};
/// let bytes = br#"{"data":"{\"event\":\"bc\"}","senderServer":"a","cwMid":"m-7"}"#;
/// let envelope = decode_ws_route(ChannelKind::Broadcast, bytes, Codec::Json)?;
/// assert_eq!(envelope.message_id.as_deref(), Some("m-7"));
/// assert_eq!(envelope.message.sender_server(), "a");
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<M> {
    /// The message.
    pub message: M,
    /// The `cwMid` key, when present and a string.
    pub message_id: Option<String>,
    /// The `cwPos` key of a room message of a room with history, when
    /// present and well formed (`"EPOCH:OFFSET"`, see
    /// [`Position::to_envelope`]).
    pub position: Option<Position>,
}

// ---------------------------------------------------------------------------
// Encoding

/// One value of an envelope being written.
enum Field<'a> {
    Str(&'a str),
    Json(&'a Value),
    StrList(&'a [String]),
    Bool(bool),
    Map(Vec<(&'static str, Field<'a>)>),
}

fn write_fields(
    buf: &mut Vec<u8>,
    fields: &[(&'static str, Field<'_>)],
    codec: Codec,
    depth: usize,
) -> Result<(), EnvelopeError> {
    match codec {
        Codec::MsgPack => msgpack::write_map_len(buf, fields.len())?,
        Codec::Json => buf.push(b'{'),
    }
    for (i, (key, field)) in fields.iter().enumerate() {
        match codec {
            Codec::MsgPack => msgpack::write_str(buf, key)?,
            Codec::Json => {
                if i > 0 {
                    buf.push(b',');
                }
                // Keys are fixed ASCII identifiers: no escaping needed.
                buf.push(b'"');
                buf.extend_from_slice(key.as_bytes());
                buf.extend_from_slice(b"\":");
            }
        }
        write_field(buf, field, codec, depth + 1)?;
    }
    if codec == Codec::Json {
        buf.push(b'}');
    }
    Ok(())
}

fn json_err(e: serde_json::Error) -> EnvelopeError {
    EnvelopeError::Encode(e.to_string())
}

fn write_field(
    buf: &mut Vec<u8>,
    field: &Field<'_>,
    codec: Codec,
    depth: usize,
) -> Result<(), EnvelopeError> {
    match (field, codec) {
        (Field::Map(fields), _) => write_fields(buf, fields, codec, depth),
        (Field::Str(s), Codec::MsgPack) => msgpack::write_str(buf, s),
        (Field::Str(s), Codec::Json) => write_js_json(buf, *s).map_err(json_err),
        (Field::Bool(b), Codec::MsgPack) => msgpack::write_bool(buf, *b),
        (Field::Bool(b), Codec::Json) => {
            buf.extend_from_slice(if *b { b"true" } else { b"false" });
            Ok(())
        }
        (Field::StrList(items), Codec::MsgPack) => msgpack::write_str_array(buf, items),
        (Field::StrList(items), Codec::Json) => write_js_json(buf, items).map_err(json_err),
        (Field::Json(v), Codec::MsgPack) => msgpack::write_value(buf, v, depth),
        (Field::Json(v), Codec::Json) => {
            check_depth(v, depth)?;
            write_js_json(buf, *v).map_err(json_err)
        }
    }
}

/// Refuses values nested deeper than [`MAX_DEPTH`] (counting from the
/// envelope), so that anything encoded also decodes.
fn check_depth(value: &Value, depth: usize) -> Result<(), EnvelopeError> {
    match value {
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(EnvelopeError::TooDeep);
            }
            for child in items {
                check_depth(child, depth + 1)?;
            }
        }
        Value::Object(map) => {
            if depth > MAX_DEPTH {
                return Err(EnvelopeError::TooDeep);
            }
            for child in map.values() {
                check_depth(child, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn encode_root<'a>(
    mut fields: Vec<(&'static str, Field<'a>)>,
    message_id: Option<&'a str>,
    codec: Codec,
    capacity: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    if let Some(id) = message_id {
        fields.push((MESSAGE_ID_KEY, Field::Str(id)));
    }
    let mut buf = Vec::with_capacity(capacity);
    write_fields(&mut buf, &fields, codec, 1)?;
    Ok(buf)
}

/// Encodes a bridge message: `{"data":{…}}` (plus `"cwMid"` when
/// `message_id` is given), with the exact key order of the original.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{encode_bridge, BridgeMessage, BridgeReply, Codec};
/// let reply = BridgeMessage::Reply(BridgeReply {
///     sender_server: "serverB".into(),
///     callback_id: "erverA-m0abcdef-k3x9-1".into(),
///     payload: None,
/// });
/// let bytes = encode_bridge(&reply, None, Codec::Json).unwrap();
/// assert_eq!(
///     std::str::from_utf8(&bytes).unwrap(),
///     r#"{"data":{"event":"_Cs_Cb_","senderServer":"serverB","targetServer":[],"callbackId":"erverA-m0abcdef-k3x9-1","isCallback":true}}"#
/// );
/// ```
pub fn encode_bridge(
    msg: &BridgeMessage,
    message_id: Option<&str>,
    codec: Codec,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut inner: Vec<(&'static str, Field<'_>)> = Vec::with_capacity(6);
    match msg {
        BridgeMessage::Event(ev) => {
            let payload = ev.payload.as_ref().map(|p| ("payload", Field::Json(p)));
            if ev.key_order == KeyOrder::Promise {
                inner.extend(payload);
                inner.push(("event", Field::Str(&ev.event)));
                if let Some(s) = &ev.sender_server {
                    inner.push(("senderServer", Field::Str(s)));
                }
            } else {
                inner.push(("event", Field::Str(&ev.event)));
                if let Some(s) = &ev.sender_server {
                    inner.push(("senderServer", Field::Str(s)));
                }
                inner.extend(payload);
            }
            inner.push(("targetServer", Field::StrList(&ev.target_server)));
            if let Some(id) = &ev.callback_id {
                inner.push(("callbackId", Field::Str(id)));
            }
        }
        BridgeMessage::Reply(r) => {
            inner.push(("event", Field::Str(CALLBACK_EVENT)));
            inner.push(("senderServer", Field::Str(&r.sender_server)));
            inner.push(("targetServer", Field::StrList(&[])));
            inner.push(("callbackId", Field::Str(&r.callback_id)));
            inner.push(("isCallback", Field::Bool(true)));
            if let Some(p) = &r.payload {
                inner.push(("payload", Field::Json(p)));
            }
        }
    }
    encode_root(vec![("data", Field::Map(inner))], message_id, codec, 128)
}

/// Encodes a WebSocket route message (`data` is embedded as a string, never
/// as a nested object), with the exact key order of the original:
///
/// * broadcast: `data, senderServer`;
/// * one socket: `data, socketId, senderServer`;
/// * several sockets: `data, socketIds, senderServer`;
/// * room: `data, roomNamespace, roomId, senderServer, excludeSocketIds`
///   (`roomId` omitted when `None`).
///
/// `"cwMid"` comes last when `message_id` is given.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::envelope::{encode_ws_route, Codec, WsRoute};
/// let route = WsRoute::Sockets {
///     data: PushFrame::encode::<()>("pm", None)?,
///     socket_ids: vec!["u1".into(), "u2".into()],
///     sender_server: "a".into(),
/// };
/// let bytes = encode_ws_route(&route, None, Codec::Json)?;
/// assert_eq!(bytes, br#"{"data":"{\"event\":\"pm\"}","socketIds":["u1","u2"],"senderServer":"a"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_ws_route(
    msg: &WsRoute,
    message_id: Option<&str>,
    codec: Codec,
) -> Result<Vec<u8>, EnvelopeError> {
    encode_ws_route_at(msg, message_id, None, codec)
}

/// [`encode_ws_route`] of a room message that has a `position` in its
/// room's history: `"cwPos":"EPOCH:OFFSET"` comes after the original's keys
/// (and before `"cwMid"`). Original nodes ignore it.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::envelope::{decode_ws_route, encode_ws_route_at, Codec, WsRoute};
/// use crosswire_protocol::history::Position;
/// let route = WsRoute::Room {
///     data: PushFrame::encode("say", Some(&1))?,
///     room_namespace: "chat".into(),
///     room_id: Some("r1".into()),
///     sender_server: "a".into(),
///     exclude_socket_ids: vec![],
/// };
/// let pos = Position::new("e1", 5);
/// let bytes = encode_ws_route_at(&route, None, Some(&pos), Codec::Json)?;
/// assert!(bytes.ends_with(br#""excludeSocketIds":[],"cwPos":"e1:5"}"#));
/// let back = decode_ws_route(ChannelKind::Room, &bytes, Codec::Json)?;
/// assert_eq!(back.position, Some(pos));
/// assert_eq!(back.message, route);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_ws_route_at(
    msg: &WsRoute,
    message_id: Option<&str>,
    position: Option<&Position>,
    codec: Codec,
) -> Result<Vec<u8>, EnvelopeError> {
    let position = position.map(Position::to_envelope);
    let mut fields: Vec<(&'static str, Field<'_>)> = Vec::with_capacity(6);
    let data = msg.data();
    fields.push(("data", Field::Str(data.as_str())));
    match msg {
        WsRoute::Broadcast { sender_server, .. } => {
            fields.push(("senderServer", Field::Str(sender_server)));
        }
        WsRoute::Socket {
            socket_id,
            sender_server,
            ..
        } => {
            fields.push(("socketId", Field::Str(socket_id)));
            fields.push(("senderServer", Field::Str(sender_server)));
        }
        WsRoute::Sockets {
            socket_ids,
            sender_server,
            ..
        } => {
            fields.push(("socketIds", Field::StrList(socket_ids)));
            fields.push(("senderServer", Field::Str(sender_server)));
        }
        WsRoute::Room {
            room_namespace,
            room_id,
            sender_server,
            exclude_socket_ids,
            ..
        } => {
            fields.push(("roomNamespace", Field::Str(room_namespace)));
            if let Some(id) = room_id {
                fields.push(("roomId", Field::Str(id)));
            }
            fields.push(("senderServer", Field::Str(sender_server)));
            fields.push(("excludeSocketIds", Field::StrList(exclude_socket_ids)));
        }
    }
    if let Some(position) = &position {
        fields.push((POSITION_KEY, Field::Str(position)));
    }
    // JSON escapes every quote of the frame: leave room for that.
    let capacity = 96 + data.len() + data.len() / 4;
    encode_root(fields, message_id, codec, capacity)
}

/// A room message's envelope cut where its position goes, for a store that
/// assigns the position and publishes in one step (the Redis history's
/// script): `prefix ++ position ++ suffix` is the envelope
/// [`encode_ws_route_at`] gives for that position, where `position` is the
/// `"EPOCH:OFFSET"` string encoded by [`encode_position`].
///
/// # Examples
///
/// ```
/// use crosswire_protocol::client::PushFrame;
/// use crosswire_protocol::envelope::{encode_position, encode_ws_route_at, split_at_position, Codec, WsRoute};
/// use crosswire_protocol::history::Position;
/// let route = WsRoute::Room {
///     data: PushFrame::encode("say", Some(&1))?,
///     room_namespace: "chat".into(),
///     room_id: Some("r1".into()),
///     sender_server: "a".into(),
///     exclude_socket_ids: vec![],
/// };
/// let pos = Position::new("e1", 5);
/// for codec in [Codec::Json, Codec::MsgPack] {
///     let (prefix, suffix) = split_at_position(&route, Some("m1"), codec)?;
///     let whole = [prefix, encode_position(&pos, codec), suffix].concat();
///     assert_eq!(whole, encode_ws_route_at(&route, Some("m1"), Some(&pos), codec)?);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn split_at_position(
    msg: &WsRoute,
    message_id: Option<&str>,
    codec: Codec,
) -> Result<(Vec<u8>, Vec<u8>), EnvelopeError> {
    // A placeholder that no epoch is (epochs are hex), found from the end:
    // only the message id can follow it.
    let placeholder = Position::new("~", 0);
    let mut whole = encode_ws_route_at(msg, message_id, Some(&placeholder), codec)?;
    let mark = encode_position(&placeholder, codec);
    let at = whole
        .windows(mark.len())
        .rposition(|w| w == mark.as_slice())
        .ok_or_else(|| EnvelopeError::Encode("position placeholder not found".into()))?;
    let suffix = whole.split_off(at + mark.len());
    whole.truncate(at);
    Ok((whole, suffix))
}

/// A position as the value of the `cwPos` key: a JSON string or a
/// MessagePack str.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{encode_position, Codec};
/// use crosswire_protocol::history::Position;
/// let pos = Position::new("e1", 5);
/// assert_eq!(encode_position(&pos, Codec::Json), br#""e1:5""#);
/// assert_eq!(encode_position(&pos, Codec::MsgPack), b"\xa4e1:5");
/// ```
pub fn encode_position(position: &Position, codec: Codec) -> Vec<u8> {
    let text = position.to_envelope();
    let mut buf = Vec::with_capacity(text.len() + 3);
    match codec {
        Codec::Json => {
            buf.push(b'"');
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'"');
        }
        Codec::MsgPack => {
            // Epochs are short: a fixstr, or a str8 (never longer).
            match u8::try_from(text.len()) {
                Ok(n) if n < 32 => buf.push(0xa0 | n),
                Ok(n) => buf.extend_from_slice(&[0xd9, n]),
                Err(_) => {
                    let n = u32::try_from(text.len()).unwrap_or(u32::MAX);
                    buf.push(0xdb);
                    buf.extend_from_slice(&n.to_be_bytes());
                }
            }
            buf.extend_from_slice(text.as_bytes());
        }
    }
    buf
}

/// Encodes any JSON value: messages on custom channels
/// (`publishRedisMessage`). Nothing is added (no `senderServer`).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{encode_value, Codec};
/// let v = serde_json::json!({"n": -5, "f": 0.5});
/// assert_eq!(encode_value(&v, Codec::MsgPack).unwrap(), [0x82, 0xa1, b'n', 0xfb, 0xa1, b'f', 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(encode_value(&v, Codec::Json).unwrap(), br#"{"n":-5,"f":0.5}"#);
/// ```
pub fn encode_value(value: &Value, codec: Codec) -> Result<Vec<u8>, EnvelopeError> {
    let mut buf = Vec::with_capacity(64);
    match codec {
        Codec::MsgPack => msgpack::write_value(&mut buf, value, 1)?,
        Codec::Json => {
            check_depth(value, 1)?;
            write_js_json(&mut buf, value).map_err(json_err)?;
        }
    }
    Ok(buf)
}

// ---------------------------------------------------------------------------
// Decoding

/// Decodes any value: messages on custom channels. MessagePack extension
/// types become what `JSON.stringify` makes of notepack's result (`bin` ⇒
/// `{"type":"Buffer","data":[…]}`, timestamps ⇒ ISO-8601 strings, other
/// extensions ⇒ `[type, Buffer]`).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_value, Codec};
/// assert_eq!(decode_value(&[0x92, 0x01, 0xa1, b'x'], Codec::MsgPack).unwrap(), serde_json::json!([1, "x"]));
/// assert!(decode_value(&[0x01, 0x02], Codec::MsgPack).is_err()); // trailing byte
/// ```
pub fn decode_value(bytes: &[u8], codec: Codec) -> Result<Value, EnvelopeError> {
    match codec {
        Codec::MsgPack => msgpack::decode(bytes),
        Codec::Json => serde_json::from_slice(bytes).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                EnvelopeError::TooDeep
            } else {
                EnvelopeError::InvalidJson(e)
            }
        }),
    }
}

/// The outer object of an envelope without `cwMid` and `cwPos`, then those.
type Outer = (Map<String, Value>, Option<String>, Option<Position>);

/// Decodes the outer object of an envelope, its `cwMid` and its `cwPos`.
fn decode_outer(bytes: &[u8], codec: Codec) -> Result<Outer, EnvelopeError> {
    let Value::Object(mut outer) = decode_value(bytes, codec)? else {
        return Err(EnvelopeError::WrongType {
            field: "envelope",
            expected: "an object",
        });
    };
    let message_id = match outer.remove(MESSAGE_ID_KEY) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let position = match outer.remove(POSITION_KEY) {
        Some(Value::String(s)) => Position::from_envelope(&s),
        _ => None,
    };
    Ok((outer, message_id, position))
}

/// JavaScript truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn wrong(field: &'static str, expected: &'static str) -> EnvelopeError {
    EnvelopeError::WrongType { field, expected }
}

/// A required non-empty string.
fn take_non_empty_str(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<String, EnvelopeError> {
    match map.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None => Err(EnvelopeError::MissingField(field)),
        Some(_) => Err(wrong(field, "a non-empty string")),
    }
}

/// A string that is kept only when non-empty; anything else is `None`.
fn take_opt_str(map: &mut Map<String, Value>, field: &'static str) -> Option<String> {
    match map.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Decodes a message of the bridge channel, validating like the original's
/// `_handleServerBridgeMessage`:
///
/// * `data` must be an object;
/// * a truthy `isCallback` makes it a [`BridgeReply`], which needs a string
///   `callbackId` and a non-empty string `senderServer`;
/// * otherwise `event` must be a non-empty string and `targetServer` an
///   array of strings (the original silently drops a missing or string
///   `targetServer`; an array with non-string elements is refused here
///   because dropping the elements could turn it into "every node");
/// * `senderServer` and `callbackId` of an event are kept only when they are
///   non-empty strings; `payload` is kept as is (`Some(null)` for `null`,
///   `None` when absent). Unknown keys are ignored.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::{decode_bridge, BridgeMessage, Codec, KeyOrder};
/// let json = br#"{"data":{"payload":1,"event":"chat","senderServer":"serverA","targetServer":["serverB"],"callbackId":"id-1"}}"#;
/// let BridgeMessage::Event(ev) = decode_bridge(json, Codec::Json).unwrap().message else { panic!() };
/// assert_eq!(ev.event, "chat");
/// assert_eq!(ev.key_order, KeyOrder::Promise);
/// assert_eq!(ev.target_server, ["serverB"]);
/// assert!(decode_bridge(br#"{"data":{"event":"chat","targetServer":"serverB"}}"#, Codec::Json).is_err());
/// ```
pub fn decode_bridge(bytes: &[u8], codec: Codec) -> Result<Envelope<BridgeMessage>, EnvelopeError> {
    let (mut outer, message_id, position) = decode_outer(bytes, codec)?;
    let mut data = match outer.remove("data") {
        Some(Value::Object(data)) => data,
        None => return Err(EnvelopeError::MissingField("data")),
        Some(_) => return Err(wrong("data", "an object")),
    };
    let message = if data.get("isCallback").is_some_and(truthy) {
        let callback_id = match data.remove("callbackId") {
            Some(Value::String(s)) => s,
            None => return Err(EnvelopeError::MissingField("callbackId")),
            Some(_) => return Err(wrong("callbackId", "a string")),
        };
        let sender_server = take_non_empty_str(&mut data, "senderServer")?;
        BridgeMessage::Reply(BridgeReply {
            sender_server,
            callback_id,
            payload: data.remove("payload"),
        })
    } else {
        let key_order = {
            let mut order = KeyOrder::Emit;
            for key in data.keys() {
                match key.as_str() {
                    "event" => break,
                    "payload" => {
                        order = KeyOrder::Promise;
                        break;
                    }
                    _ => {}
                }
            }
            order
        };
        let target_server = match data.remove("targetServer") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(wrong("targetServer", "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => return Err(EnvelopeError::MissingField("targetServer")),
            Some(_) => return Err(wrong("targetServer", "an array of strings")),
        };
        let event = take_non_empty_str(&mut data, "event")?;
        BridgeMessage::Event(BridgeEvent {
            event,
            sender_server: take_opt_str(&mut data, "senderServer"),
            payload: data.remove("payload"),
            target_server,
            callback_id: take_opt_str(&mut data, "callbackId"),
            key_order,
        })
    };
    Ok(Envelope {
        message,
        message_id,
        position,
    })
}

/// Decodes a message of a WebSocket routing channel, validating like the
/// original's `_handleWsRouteMessage`. `kind` is the channel's
/// classification ([`crate::channels::Channels::classify`]): `Broadcast`,
/// `PrivateSocket` or `Room`; other kinds are refused.
///
/// * `data` must be a string; `senderServer` is `""` when missing or not a
///   string (such messages are still processed, as in the original);
/// * private socket: a truthy `socketIds` must be an array (only its
///   non-empty string elements are kept) and makes it [`WsRoute::Sockets`];
///   otherwise `socketId` must be a string ([`WsRoute::Socket`]);
/// * room: `roomNamespace` must be a non-empty string; a missing or falsy
///   `roomId` is `None` (every room of the namespace), a non-string truthy
///   one is refused; `excludeSocketIds` is an array whose string elements
///   are kept (others dropped), falsy means none, and a single string is
///   taken as a one-element list — **never** as the substring match the
///   original performs on a string (weakness 20 of `docs/compatibility.md`); any other value is
///   refused.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::envelope::{decode_ws_route, Codec, WsRoute};
/// let json = br#"{"data":"{\"event\":\"pm\",\"payload\":[1,2]}","socketIds":["u1",5,"","u2"],"senderServer":"serverA"}"#;
/// let WsRoute::Sockets { socket_ids, data, .. } = decode_ws_route(ChannelKind::PrivateSocket, json, Codec::Json).unwrap().message else { panic!() };
/// assert_eq!(socket_ids, ["u1", "u2"]);
/// assert_eq!(data.as_str(), r#"{"event":"pm","payload":[1,2]}"#);
/// ```
pub fn decode_ws_route(
    kind: ChannelKind,
    bytes: &[u8],
    codec: Codec,
) -> Result<Envelope<WsRoute>, EnvelopeError> {
    // A room's own channel and a node's socket-id channel (routing by host)
    // carry the same envelopes as a namespace channel and the private one.
    let kind = match kind {
        ChannelKind::RoutedRoom => ChannelKind::Room,
        ChannelKind::NodeSockets => ChannelKind::PrivateSocket,
        ChannelKind::Broadcast | ChannelKind::PrivateSocket | ChannelKind::Room => kind,
        ChannelKind::Bridge | ChannelKind::NodeBridge | ChannelKind::Custom => {
            return Err(EnvelopeError::UnexpectedChannel(kind));
        }
    };
    let (mut outer, message_id, position) = decode_outer(bytes, codec)?;
    let data = match outer.remove("data") {
        Some(Value::String(s)) => PushFrame::from_text(s),
        None => return Err(EnvelopeError::MissingField("data")),
        Some(_) => return Err(wrong("data", "a string")),
    };
    let sender_server = match outer.remove("senderServer") {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let message = match kind {
        ChannelKind::PrivateSocket => match outer.remove("socketIds") {
            Some(v) if truthy(&v) => {
                let Value::Array(items) = v else {
                    return Err(wrong("socketIds", "an array"));
                };
                let socket_ids = items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) if !s.is_empty() => Some(s),
                        _ => None,
                    })
                    .collect();
                WsRoute::Sockets {
                    data,
                    socket_ids,
                    sender_server,
                }
            }
            _ => {
                let socket_id = match outer.remove("socketId") {
                    Some(Value::String(s)) => s,
                    None => return Err(EnvelopeError::MissingField("socketId")),
                    Some(_) => return Err(wrong("socketId", "a string")),
                };
                WsRoute::Socket {
                    data,
                    socket_id,
                    sender_server,
                }
            }
        },
        ChannelKind::Room => {
            let room_namespace = take_non_empty_str(&mut outer, "roomNamespace")?;
            let room_id = match outer.remove("roomId") {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(v) if truthy(&v) => return Err(wrong("roomId", "a string")),
                _ => None,
            };
            let exclude_socket_ids = match outer.remove("excludeSocketIds") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                Some(Value::String(s)) if !s.is_empty() => vec![s],
                Some(v) if truthy(&v) => {
                    return Err(wrong("excludeSocketIds", "an array of strings"));
                }
                _ => Vec::new(),
            };
            WsRoute::Room {
                data,
                room_namespace,
                room_id,
                sender_server,
                exclude_socket_ids,
            }
        }
        _ => WsRoute::Broadcast {
            data,
            sender_server,
        },
    };
    Ok(Envelope {
        message,
        message_id,
        position,
    })
}

/// The sender of a decoded message for self-skipping (`docs/protocol.md` §6.5): the
/// outer `senderServer` if it is a string, else `data.senderServer` when
/// `data` is an object.
///
/// The original drops a message when *either* equals its own name; use
/// [`is_own_message`] for that exact test.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::sender_of;
/// use serde_json::json;
/// assert_eq!(sender_of(&json!({"data": "x", "senderServer": "a"})), Some("a"));
/// assert_eq!(sender_of(&json!({"data": {"senderServer": "b"}})), Some("b"));
/// assert_eq!(sender_of(&json!({"kind": "custom"})), None);
/// ```
pub fn sender_of(value: &Value) -> Option<&str> {
    let obj = value.as_object()?;
    if let Some(Value::String(s)) = obj.get("senderServer") {
        return Some(s);
    }
    match obj.get("data") {
        Some(Value::Object(data)) => data.get("senderServer")?.as_str(),
        _ => None,
    }
}

/// The original's self-skip test (`docs/protocol.md` §6.5): `value.senderServer` or
/// `value.data.senderServer` equals `server_name`.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::envelope::is_own_message;
/// use serde_json::json;
/// let v = json!({"senderServer": "x", "data": {"senderServer": "me"}});
/// assert!(is_own_message(&v, "me"));
/// assert!(!is_own_message(&json!({"kind": "custom"}), "me"));
/// ```
pub fn is_own_message(value: &Value, server_name: &str) -> bool {
    let Some(obj) = value.as_object() else {
        return false;
    };
    if obj.get("senderServer").and_then(Value::as_str) == Some(server_name) {
        return true;
    }
    match obj.get("data") {
        Some(Value::Object(data)) => {
            data.get("senderServer").and_then(Value::as_str) == Some(server_name)
        }
        _ => false,
    }
}

/// Whether the envelope in `bytes`, received on a channel of `kind`, was
/// sent by `server`: its `senderServer` (inside `data` on the bridge
/// channels, at the top on the routing channels) equals it, the last one
/// counting when a key repeats, as for the full decoders.
///
/// It reads nothing else and builds nothing, so that a node can skip its
/// own publications, which the bus hands back to it, before decoding them.
/// `false` whenever the bytes do not say so plainly (not an envelope, the
/// field missing or not a string, a custom channel): such messages go to
/// the full decoders as before.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::channels::ChannelKind;
/// use crosswire_protocol::envelope::{encode_ws_route, sent_by, Codec, WsRoute};
/// use crosswire_protocol::client::PushFrame;
/// let route = WsRoute::Broadcast { data: PushFrame::from_text("{}"), sender_server: "n1".into() };
/// for codec in [Codec::Json, Codec::MsgPack] {
///     let bytes = encode_ws_route(&route, None, codec)?;
///     assert!(sent_by(&bytes, codec, ChannelKind::Broadcast, "n1"));
///     assert!(!sent_by(&bytes, codec, ChannelKind::Broadcast, "n2"));
/// }
/// let bridge = br#"{"data":{"event":"e","senderServer":"n1","payload":1}}"#;
/// assert!(sent_by(bridge, Codec::Json, ChannelKind::Bridge, "n1"));
/// assert!(!sent_by(b"\xc1", Codec::MsgPack, ChannelKind::Bridge, "n1"));
/// # Ok::<(), crosswire_protocol::envelope::EnvelopeError>(())
/// ```
pub fn sent_by(bytes: &[u8], codec: Codec, kind: ChannelKind, server: &str) -> bool {
    let nested = match kind {
        ChannelKind::Bridge | ChannelKind::NodeBridge => true,
        ChannelKind::Broadcast
        | ChannelKind::PrivateSocket
        | ChannelKind::Room
        | ChannelKind::RoutedRoom
        | ChannelKind::NodeSockets => false,
        ChannelKind::Custom => return false,
    };
    match codec {
        Codec::Json => json_sender(bytes, nested).is_some_and(|s| s == server.as_bytes()),
        Codec::MsgPack => {
            crate::msgpack::sender(bytes, nested).is_some_and(|s| s == server.as_bytes())
        }
    }
}

/// `senderServer` of a JSON envelope, without building it.
fn json_sender(bytes: &[u8], nested: bool) -> Option<Vec<u8>> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Sender<'a> {
        #[serde(rename = "senderServer", borrow)]
        sender: Option<Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Bridge<'a> {
        #[serde(borrow)]
        data: Option<Sender<'a>>,
    }
    // A repeated key makes these fail (serde refuses duplicate fields): the
    // message then goes to the full decoder.
    let sender = if nested {
        serde_json::from_slice::<Bridge<'_>>(bytes)
            .ok()?
            .data?
            .sender
    } else {
        serde_json::from_slice::<Sender<'_>>(bytes).ok()?.sender
    };
    sender.map(|s| s.as_bytes().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn truthiness() {
        use serde_json::json;
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!(""),
        ] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(1),
            json!(-1),
            json!(0.5),
            json!("0"),
            json!([]),
            json!({}),
        ] {
            assert!(truthy(&v), "{v}");
        }
    }

    #[test]
    fn json_recursion_limit_matches_max_depth() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(decode_value(ok.as_bytes(), Codec::Json).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(
            decode_value(deep.as_bytes(), Codec::Json),
            Err(EnvelopeError::TooDeep)
        ));
    }
}
