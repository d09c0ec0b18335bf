//! The bus test vectors of `docs/protocol.md` §12.4–§12.7, read from the
//! document: in both codecs, encoding must give the exact bytes and decoding
//! them must give back the same message. Also checks the document's vector
//! format itself (a malformed or missing vector fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod doc_vectors;

use crosswire_protocol::channels::{ChannelKind, Channels};
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_value, encode_ws_route,
    BridgeEvent, BridgeMessage, BridgeReply, Codec, KeyOrder, WsRoute, MEMBER_EVENT,
    MEMBER_LEAVE_EVENT,
};
use crosswire_protocol::signed::{open, seal, Key, Refused};
use doc_vectors::{of_kind, parse, vector, Vector};
use serde_json::{json, Value};

const CB_ID: &str = "erverA-m0abcdef-k3x9-1";

fn frame(event: &str, payload: Value) -> PushFrame {
    PushFrame::encode(event, Some(&payload)).unwrap()
}

/// The bytes of vector `v` in `codec`.
fn bytes_of(v: &Vector, codec: Codec) -> Vec<u8> {
    match codec {
        Codec::Json => v.text("json").as_bytes().to_vec(),
        Codec::MsgPack => v
            .opt_bytes("msgpack")
            .unwrap_or_else(|| panic!("vector {} has no msgpack", v.name))
            .to_vec(),
    }
}

/// The codecs vector `v` gives bytes for.
fn codecs_of(v: &Vector) -> Vec<Codec> {
    let mut c = vec![Codec::Json];
    if v.opt_bytes("msgpack").is_some() {
        c.push(Codec::MsgPack);
    }
    c
}

/// Whatever a `bus` vector holds: it decodes on its channel in each of its
/// codecs, encodes back to the same bytes, and both codecs carry one value.
fn check_bus_vector(v: &Vector) {
    let channel = v.text("channel");
    let kind = Channels::default().classify(channel);
    for codec in codecs_of(v) {
        let bytes = bytes_of(v, codec);
        let again = match kind {
            ChannelKind::Bridge => {
                let env = decode_bridge(&bytes, codec)
                    .unwrap_or_else(|e| panic!("{} ({codec:?}): {e}", v.name));
                encode_bridge(&env.message, env.message_id.as_deref(), codec).unwrap()
            }
            ChannelKind::Broadcast | ChannelKind::PrivateSocket | ChannelKind::Room => {
                let env = decode_ws_route(kind, &bytes, codec)
                    .unwrap_or_else(|e| panic!("{} ({codec:?}): {e}", v.name));
                if let WsRoute::Room { room_namespace, .. } = &env.message {
                    // The namespace belongs to the channel it came on.
                    assert_eq!(
                        Channels::default().room_namespace(room_namespace).unwrap(),
                        channel,
                        "{}",
                        v.name
                    );
                }
                encode_ws_route(&env.message, env.message_id.as_deref(), codec).unwrap()
            }
            ChannelKind::RoutedRoom | ChannelKind::NodeSockets | ChannelKind::NodeBridge => {
                unreachable!("the default channels classify no routing-by-host channel")
            }
            ChannelKind::Custom => {
                encode_value(&decode_value(&bytes, codec).unwrap(), codec).unwrap()
            }
        };
        assert_eq!(
            again, bytes,
            "{} ({codec:?}) re-encodes differently",
            v.name
        );
    }
    if let Some(mp) = v.opt_bytes("msgpack") {
        assert_eq!(
            decode_value(v.text("json").as_bytes(), Codec::Json).unwrap(),
            decode_value(mp, Codec::MsgPack).unwrap(),
            "{}: JSON and MessagePack differ",
            v.name
        );
    }
}

#[test]
fn every_bus_vector_of_the_document_holds() {
    for v in of_kind("bus") {
        check_bus_vector(v);
    }
}

#[test]
fn every_signed_vector_of_the_document_holds() {
    for v in of_kind("signed") {
        let key = Key::new(v.text("secret").as_bytes());
        let channel = v.text("channel");
        let ts: u64 = v.text("timestamp").parse().unwrap();
        let nonce: u64 = v.text("nonce").parse().unwrap();
        let body = v.bytes("body");
        let frame = v.bytes("frame");
        assert_eq!(seal(&key, channel, ts, nonce, body), frame, "{}", v.name);
        let opened = open(&key, channel, frame).unwrap();
        assert_eq!(
            (opened.timestamp_ms, opened.nonce, opened.body),
            (ts, nonce, body)
        );
        assert_eq!(
            open(&key, "another:channel", frame).err(),
            Some(Refused::BadSignature)
        );
    }
}

/// Checks a bridge vector in one codec: exact bytes out, same message back.
fn check_bridge(codec: Codec, msg: BridgeMessage, name: &str) {
    let v = vector(name);
    assert_eq!(
        Channels::default().classify(v.text("channel")),
        ChannelKind::Bridge
    );
    let expected = bytes_of(v, codec);
    assert_eq!(
        encode_bridge(&msg, None, codec).unwrap(),
        expected,
        "{name}"
    );
    let decoded = decode_bridge(&expected, codec).unwrap();
    assert_eq!(decoded.message, msg);
    assert_eq!(decoded.message_id, None);
}

/// Checks a WebSocket route vector in one codec.
fn check_route(codec: Codec, msg: WsRoute, name: &str) {
    let v = vector(name);
    let kind = Channels::default().classify(v.text("channel"));
    let expected = bytes_of(v, codec);
    assert_eq!(
        encode_ws_route(&msg, None, codec).unwrap(),
        expected,
        "{name}"
    );
    let decoded = decode_ws_route(kind, &expected, codec).unwrap();
    assert_eq!(decoded.message, msg);
    assert_eq!(decoded.message_id, None);
}

/// One test per codec for a vector: `vector!(name, codec => body)` makes
/// `name::json` and `name::msgpack`.
macro_rules! vector {
    ($name:ident, $codec:ident => $body:expr) => {
        mod $name {
            use super::*;
            fn run($codec: Codec) {
                $body
            }
            #[test]
            fn json() {
                run(Codec::Json)
            }
            #[test]
            fn msgpack() {
                run(Codec::MsgPack)
            }
        }
    };
}

vector!(v1_emit_targeted_without_callback, codec => {
    check_bridge(
        codec,
        BridgeMessage::Event(BridgeEvent {
            event: "chat".into(),
            sender_server: Some("serverA".into()),
            payload: Some(json!({"text": "hi"})),
            target_server: vec!["serverB".into()],
            callback_id: None,
            key_order: KeyOrder::Emit,
        }),
        "V1",
    );
});

#[test]
fn v1_is_78_bytes_of_msgpack() {
    assert_eq!(vector("V1").bytes("msgpack").len(), 78);
    let msg = BridgeMessage::Event(BridgeEvent {
        event: "chat".into(),
        sender_server: Some("serverA".into()),
        payload: Some(json!({"text": "hi"})),
        target_server: vec!["serverB".into()],
        callback_id: None,
        key_order: KeyOrder::Emit,
    });
    assert_eq!(encode_bridge(&msg, None, Codec::MsgPack).unwrap().len(), 78);
}

vector!(v2_emit_broadcast_with_callback, codec => {
    check_bridge(
        codec,
        BridgeMessage::Event(BridgeEvent {
            event: "chat".into(),
            sender_server: Some("serverA".into()),
            payload: Some(json!({"text": "hi"})),
            target_server: vec![],
            callback_id: Some(CB_ID.into()),
            key_order: KeyOrder::Emit,
        }),
        "V2",
    );
});

vector!(v3_emit_with_promise, codec => {
    check_bridge(
        codec,
        BridgeMessage::Event(BridgeEvent {
            event: "chat".into(),
            sender_server: Some("serverA".into()),
            payload: Some(json!({"text": "hi"})),
            target_server: vec!["serverB".into()],
            callback_id: Some(CB_ID.into()),
            key_order: KeyOrder::Promise,
        }),
        "V3",
    );
});

vector!(v4_reply_with_payload, codec => {
    check_bridge(
        codec,
        BridgeMessage::Reply(BridgeReply {
            sender_server: "serverB".into(),
            callback_id: CB_ID.into(),
            payload: Some(json!({"ok": true})),
        }),
        "V4",
    );
});

vector!(v4b_reply_without_payload, codec => {
    check_bridge(
        codec,
        BridgeMessage::Reply(BridgeReply {
            sender_server: "serverB".into(),
            callback_id: CB_ID.into(),
            payload: None,
        }),
        "V4b",
    );
});

vector!(v5_broadcast, codec => {
    assert_eq!(Channels::default().broadcast(), vector("V5").text("channel"));
    check_route(
        codec,
        WsRoute::Broadcast {
            data: frame("news", json!({"n": 1})),
            sender_server: "serverA".into(),
        },
        "V5",
    );
});

vector!(v6_to_socket_id, codec => {
    assert_eq!(Channels::default().private_socket(), vector("V6").text("channel"));
    check_route(
        codec,
        WsRoute::Socket {
            data: frame("pm", json!("hello")),
            socket_id: "u42".into(),
            sender_server: "serverA".into(),
        },
        "V6",
    );
});

vector!(v7_to_socket_ids, codec => {
    check_route(
        codec,
        WsRoute::Sockets {
            data: frame("pm", json!([1, 2])),
            socket_ids: vec!["u1".into(), "u2".into()],
            sender_server: "serverA".into(),
        },
        "V7",
    );
});

vector!(v8_room_with_exclusions, codec => {
    let channels = Channels::default();
    assert_eq!(channels.room_namespace("chat").unwrap(), vector("V8").text("channel"));
    check_route(
        codec,
        WsRoute::Room {
            data: frame("say", json!({"t": "yo"})),
            room_namespace: "chat".into(),
            room_id: Some("r1".into()),
            sender_server: "serverA".into(),
            exclude_socket_ids: vec!["u9".into()],
        },
        "V8",
    );
});

vector!(v9_room_with_prefixed_namespace_and_null_payload, codec => {
    let channels = Channels::default();
    assert_eq!(channels.room_namespace("ws:game").unwrap(), vector("V9").text("channel"));
    check_route(
        codec,
        WsRoute::Room {
            data: frame("start", Value::Null),
            room_namespace: "ws:game".into(),
            room_id: Some("g7".into()),
            sender_server: "serverA".into(),
            exclude_socket_ids: vec![],
        },
        "V9",
    );
});

vector!(room_to_every_room_of_the_namespace, codec => {
    check_route(
        codec,
        WsRoute::Room {
            data: frame("e", json!(1)),
            room_namespace: "chat".into(),
            room_id: None,
            sender_server: "a".into(),
            exclude_socket_ids: vec![],
        },
        "ROOM-ALL",
    );
});

/// V10 as a value: `undef: undefined` is simply absent from a serde_json
/// value.
fn v10_value() -> Value {
    json!({
        "kind": "x", "n": -5, "f": 0.5, "big": 1_700_000_000_000_u64,
        "neg": -200_000, "t": true, "nil": null
    })
}

vector!(v10_custom_channel_value, codec => {
    let v = vector("V10");
    assert_eq!(Channels::default().classify(v.text("channel")), ChannelKind::Custom);
    let expected = bytes_of(v, codec);
    assert_eq!(encode_value(&v10_value(), codec).unwrap(), expected);
    assert_eq!(decode_value(&expected, codec).unwrap(), v10_value());
});

#[test]
fn v10_integral_floats_encode_as_integers() {
    // A JavaScript number is one type: 1700000000000.0 is the same value as
    // 1700000000000 and must give the same bytes.
    let value = json!({
        "kind": "x", "n": -5.0, "f": 0.5, "big": 1_700_000_000_000.0,
        "neg": -200_000.0, "t": true, "nil": null
    });
    let v = vector("V10");
    assert_eq!(
        encode_value(&value, Codec::MsgPack).unwrap(),
        v.bytes("msgpack")
    );
    assert_eq!(
        encode_value(&value, Codec::Json).unwrap(),
        v.text("json").as_bytes()
    );
}

vector!(live_capture_reply, codec => {
    let v = vector("L1");
    assert_eq!(Channels::default().classify(v.text("channel")), ChannelKind::Bridge);
    let bytes = bytes_of(v, codec);
    let msg = decode_bridge(&bytes, codec).unwrap().message;
    assert_eq!(
        msg,
        BridgeMessage::Reply(BridgeReply {
            sender_server: "game-server-42".into(),
            callback_id: "erverA-mwyijang-ip49-1".into(),
            payload: Some(json!({"from": "game-server-42"})),
        })
    );
    assert_eq!(encode_bridge(&msg, None, codec).unwrap(), bytes);
});

vector!(live_capture_sockets, codec => {
    let v = vector("L2");
    let kind = Channels::default().classify(v.text("channel"));
    let bytes = bytes_of(v, codec);
    let msg = decode_ws_route(kind, &bytes, codec).unwrap().message;
    assert_eq!(
        msg,
        WsRoute::Sockets {
            data: frame("pm", json!("multi")),
            socket_ids: vec!["u2".into(), "u3".into(), "ghost".into()],
            sender_server: "serverA".into(),
        }
    );
    assert_eq!(encode_ws_route(&msg, None, codec).unwrap(), bytes);
});

vector!(live_capture_room, codec => {
    let v = vector("L3");
    let kind = Channels::default().classify(v.text("channel"));
    assert_eq!(kind, ChannelKind::Room);
    let bytes = bytes_of(v, codec);
    let msg = decode_ws_route(kind, &bytes, codec).unwrap().message;
    assert_eq!(
        msg,
        WsRoute::Room {
            data: frame("roomEvt", json!({"m": 3})),
            room_namespace: "chat".into(),
            room_id: Some("r1".into()),
            sender_server: "serverA".into(),
            exclude_socket_ids: vec!["u3".into()],
        }
    );
    assert_eq!(encode_ws_route(&msg, None, codec).unwrap(), bytes);
});

vector!(membership_announcements, codec => {
    for (name, event) in [("MEMBER", MEMBER_EVENT), ("MEMBER-LEAVE", MEMBER_LEAVE_EVENT)] {
        check_bridge(
            codec,
            BridgeMessage::Event(BridgeEvent {
                event: event.into(),
                sender_server: Some("serverA".into()),
                payload: Some(json!({"v": 1})),
                target_server: vec![],
                callback_id: None,
                key_order: KeyOrder::Emit,
            }),
            name,
        );
    }
});

#[test]
fn live_captures_reencode_to_the_captured_text() {
    for name in ["L1", "L2", "L3"] {
        check_bus_vector(vector(name));
    }
}

#[test]
fn signed_vector_wraps_v5() {
    let v = vector("SIGNED1");
    assert_eq!(v.bytes("body"), vector("V5").bytes("msgpack"));
    assert_eq!(v.text("channel"), vector("V5").text("channel"));
}

// ------------------------------------------------------- the vector format

#[test]
fn the_document_parses_and_names_are_unique() {
    // `all()` panics on a malformed document; here the error is shown.
    let vectors = parse(doc_vectors::DOC).unwrap();
    assert!(vectors.len() >= 50, "only {} vectors", vectors.len());
    for kind in [
        "client-event",
        "reply",
        "push",
        "url",
        "query",
        "bus",
        "signed",
    ] {
        assert!(vectors.iter().any(|v| v.kind == kind), "no {kind} vector");
    }
}

#[test]
fn a_well_formed_block_is_read() {
    let doc =
        "text\n\n```vector A\nkind: push\ntext: {\"event\":\"e\"}\nframe:\n  81 0d\n  7b\n```\n";
    let v = parse(doc).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].name, "A");
    assert_eq!(v[0].text("text"), r#"{"event":"e"}"#);
    assert_eq!(v[0].bytes("frame"), [0x81, 0x0d, 0x7b]);
    // Examples inside longer fences are not vectors.
    let doc = "````\n```vector A\nkind: nonsense\n```\n````\n";
    assert!(parse(doc).unwrap().is_empty());
}

#[test]
fn malformed_blocks_are_refused() {
    for (why, doc) in [
        ("unknown kind", "```vector A\nkind: frob\ntext: x\n```\n"),
        ("kind not first", "```vector A\ntext: x\nkind: push\n```\n"),
        (
            "unknown field",
            "```vector A\nkind: push\ntext: x\nextra: y\n```\n",
        ),
        (
            "missing field",
            "```vector A\nkind: bus\nchannel: ws:x\n```\n",
        ),
        (
            "field twice",
            "```vector A\nkind: push\ntext: x\ntext: y\n```\n",
        ),
        (
            "bad hex",
            "```vector A\nkind: push\ntext: x\nframe: 8g\n```\n",
        ),
        (
            "odd hex",
            "```vector A\nkind: push\ntext: x\nframe: 811\n```\n",
        ),
        (
            "empty hex",
            "```vector A\nkind: push\ntext: x\nframe:\n```\n",
        ),
        ("no name", "```vector\nkind: push\ntext: x\n```\n"),
        ("two names", "```vector A B\nkind: push\ntext: x\n```\n"),
        ("not a field", "```vector A\nkind: push\ntext x\n```\n"),
        ("never closed", "```vector A\nkind: push\ntext: x\n"),
        ("empty", "```vector A\n```\n"),
        ("misspelt", "```vectors A\nkind: push\ntext: x\n```\n"),
        (
            "same name twice",
            "```vector A\nkind: push\ntext: x\n```\n```vector A\nkind: push\ntext: y\n```\n",
        ),
    ] {
        assert!(parse(doc).is_err(), "{why}: accepted");
    }
}
