//! The test vectors of PROTOCOL.md Part C, captured from the original, in
//! both codecs: encoding must give the exact bytes, and decoding those bytes
//! must give back the same message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use crosswire_protocol::channels::{ChannelKind, Channels};
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_value, encode_ws_route,
    BridgeEvent, BridgeMessage, BridgeReply, Codec, KeyOrder, WsRoute,
};
use serde_json::{json, Value};

const CB_ID: &str = "erverA-m0abcdef-k3x9-1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn frame(event: &str, payload: Value) -> PushFrame {
    PushFrame::encode(event, Some(&payload)).unwrap()
}

/// Checks a bridge vector in one codec: exact bytes out, same message back.
fn check_bridge(codec: Codec, msg: BridgeMessage, json_text: &str, msgpack_hex: &str) {
    assert_eq!(
        Channels::default().classify("csbp:server_bridge"),
        ChannelKind::Bridge
    );
    let expected = match codec {
        Codec::Json => json_text.as_bytes().to_vec(),
        Codec::MsgPack => unhex(msgpack_hex),
    };
    let encoded = encode_bridge(&msg, None, codec).unwrap();
    match codec {
        Codec::Json => assert_eq!(std::str::from_utf8(&encoded).unwrap(), json_text),
        Codec::MsgPack => assert_eq!(hex(&encoded), msgpack_hex),
    }
    let decoded = decode_bridge(&expected, codec).unwrap();
    assert_eq!(decoded.message, msg);
    assert_eq!(decoded.message_id, None);
    // Both codecs carry the same value.
    assert_eq!(
        decode_value(json_text.as_bytes(), Codec::Json).unwrap(),
        decode_value(&unhex(msgpack_hex), Codec::MsgPack).unwrap()
    );
}

/// Checks a WebSocket route vector received on `channel`, in one codec.
fn check_route(codec: Codec, channel: &str, msg: WsRoute, json_text: &str, msgpack_hex: &str) {
    let kind = Channels::default().classify(channel);
    let expected = match codec {
        Codec::Json => json_text.as_bytes().to_vec(),
        Codec::MsgPack => unhex(msgpack_hex),
    };
    let encoded = encode_ws_route(&msg, None, codec).unwrap();
    match codec {
        Codec::Json => assert_eq!(std::str::from_utf8(&encoded).unwrap(), json_text),
        Codec::MsgPack => assert_eq!(hex(&encoded), msgpack_hex),
    }
    let decoded = decode_ws_route(kind, &expected, codec).unwrap();
    assert_eq!(decoded.message, msg);
    assert_eq!(decoded.message_id, None);
    assert_eq!(
        decode_value(json_text.as_bytes(), Codec::Json).unwrap(),
        decode_value(&unhex(msgpack_hex), Codec::MsgPack).unwrap()
    );
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
        r#"{"data":{"event":"chat","senderServer":"serverA","payload":{"text":"hi"},"targetServer":["serverB"]}}"#,
        "81a46461746184a56576656e74a463686174ac73656e646572536572766572a773657276657241a77061796c6f616481a474657874a26869ac74617267657453657276657291a773657276657242",
    );
});

#[test]
fn v1_is_78_bytes_of_msgpack() {
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
        r#"{"data":{"event":"chat","senderServer":"serverA","payload":{"text":"hi"},"targetServer":[],"callbackId":"erverA-m0abcdef-k3x9-1"}}"#,
        "81a46461746185a56576656e74a463686174ac73656e646572536572766572a773657276657241a77061796c6f616481a474657874a26869ac74617267657453657276657290aa63616c6c6261636b4964b66572766572412d6d306162636465662d6b3378392d31",
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
        r#"{"data":{"payload":{"text":"hi"},"event":"chat","senderServer":"serverA","targetServer":["serverB"],"callbackId":"erverA-m0abcdef-k3x9-1"}}"#,
        "81a46461746185a77061796c6f616481a474657874a26869a56576656e74a463686174ac73656e646572536572766572a773657276657241ac74617267657453657276657291a773657276657242aa63616c6c6261636b4964b66572766572412d6d306162636465662d6b3378392d31",
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
        r#"{"data":{"event":"_Cs_Cb_","senderServer":"serverB","targetServer":[],"callbackId":"erverA-m0abcdef-k3x9-1","isCallback":true,"payload":{"ok":true}}}"#,
        "81a46461746186a56576656e74a75f43735f43625fac73656e646572536572766572a773657276657242ac74617267657453657276657290aa63616c6c6261636b4964b66572766572412d6d306162636465662d6b3378392d31aa697343616c6c6261636bc3a77061796c6f616481a26f6bc3",
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
        r#"{"data":{"event":"_Cs_Cb_","senderServer":"serverB","targetServer":[],"callbackId":"erverA-m0abcdef-k3x9-1","isCallback":true}}"#,
        "81a46461746185a56576656e74a75f43735f43625fac73656e646572536572766572a773657276657242ac74617267657453657276657290aa63616c6c6261636b4964b66572766572412d6d306162636465662d6b3378392d31aa697343616c6c6261636bc3",
    );
});

vector!(v5_broadcast, codec => {
    assert_eq!(Channels::default().broadcast(), "ws:broadcast");
    check_route(
        codec,
        "ws:broadcast",
        WsRoute::Broadcast {
            data: frame("news", json!({"n": 1})),
            sender_server: "serverA".into(),
        },
        r#"{"data":"{\"event\":\"news\",\"payload\":{\"n\":1}}","senderServer":"serverA"}"#,
        "82a464617461d9227b226576656e74223a226e657773222c227061796c6f6164223a7b226e223a317d7dac73656e646572536572766572a773657276657241",
    );
});

vector!(v6_to_socket_id, codec => {
    assert_eq!(Channels::default().private_socket(), "ws:private_socket");
    check_route(
        codec,
        "ws:private_socket",
        WsRoute::Socket {
            data: frame("pm", json!("hello")),
            socket_id: "u42".into(),
            sender_server: "serverA".into(),
        },
        r#"{"data":"{\"event\":\"pm\",\"payload\":\"hello\"}","socketId":"u42","senderServer":"serverA"}"#,
        "83a464617461d9207b226576656e74223a22706d222c227061796c6f6164223a2268656c6c6f227da8736f636b65744964a3753432ac73656e646572536572766572a773657276657241",
    );
});

vector!(v7_to_socket_ids, codec => {
    check_route(
        codec,
        "ws:private_socket",
        WsRoute::Sockets {
            data: frame("pm", json!([1, 2])),
            socket_ids: vec!["u1".into(), "u2".into()],
            sender_server: "serverA".into(),
        },
        r#"{"data":"{\"event\":\"pm\",\"payload\":[1,2]}","socketIds":["u1","u2"],"senderServer":"serverA"}"#,
        "83a464617461be7b226576656e74223a22706d222c227061796c6f6164223a5b312c325d7da9736f636b657449647392a27531a27532ac73656e646572536572766572a773657276657241",
    );
});

vector!(v8_room_with_exclusions, codec => {
    let channels = Channels::default();
    assert_eq!(channels.room_namespace("chat").unwrap(), "ws:chat");
    check_route(
        codec,
        "ws:chat",
        WsRoute::Room {
            data: frame("say", json!({"t": "yo"})),
            room_namespace: "chat".into(),
            room_id: Some("r1".into()),
            sender_server: "serverA".into(),
            exclude_socket_ids: vec!["u9".into()],
        },
        r#"{"data":"{\"event\":\"say\",\"payload\":{\"t\":\"yo\"}}","roomNamespace":"chat","roomId":"r1","senderServer":"serverA","excludeSocketIds":["u9"]}"#,
        "85a464617461d9247b226576656e74223a22736179222c227061796c6f6164223a7b2274223a22796f227d7dad726f6f6d4e616d657370616365a463686174a6726f6f6d4964a27231ac73656e646572536572766572a773657276657241b06578636c756465536f636b657449647391a27539",
    );
});

vector!(v9_room_with_prefixed_namespace_and_null_payload, codec => {
    let channels = Channels::default();
    assert_eq!(channels.room_namespace("ws:game").unwrap(), "ws:game");
    check_route(
        codec,
        "ws:game",
        WsRoute::Room {
            data: frame("start", Value::Null),
            room_namespace: "ws:game".into(),
            room_id: Some("g7".into()),
            sender_server: "serverA".into(),
            exclude_socket_ids: vec![],
        },
        r#"{"data":"{\"event\":\"start\",\"payload\":null}","roomNamespace":"ws:game","roomId":"g7","senderServer":"serverA","excludeSocketIds":[]}"#,
        "85a464617461d9207b226576656e74223a227374617274222c227061796c6f6164223a6e756c6c7dad726f6f6d4e616d657370616365a777733a67616d65a6726f6f6d4964a26737ac73656e646572536572766572a773657276657241b06578636c756465536f636b657449647390",
    );
});

const V10_JSON: &str =
    r#"{"kind":"x","n":-5,"f":0.5,"big":1700000000000,"neg":-200000,"t":true,"nil":null}"#;
const V10_HEX: &str = "87a46b696e64a178a16efba166cb3fe0000000000000a3626967cf0000018bcfe56800a36e6567d2fffcf2c0a174c3a36e696cc0";

vector!(v10_custom_channel_value, codec => {
    assert_eq!(Channels::default().classify("my:custom"), ChannelKind::Custom);
    // `undef: undefined` is simply absent from a serde_json value.
    let value = json!({
        "kind": "x", "n": -5, "f": 0.5, "big": 1_700_000_000_000_u64,
        "neg": -200_000, "t": true, "nil": null
    });
    let encoded = encode_value(&value, codec).unwrap();
    let expected = match codec {
        Codec::Json => {
            assert_eq!(std::str::from_utf8(&encoded).unwrap(), V10_JSON);
            V10_JSON.as_bytes().to_vec()
        }
        Codec::MsgPack => {
            assert_eq!(hex(&encoded), V10_HEX);
            unhex(V10_HEX)
        }
    };
    assert_eq!(decode_value(&expected, codec).unwrap(), value);
});

#[test]
fn v10_integral_floats_encode_as_integers() {
    // A JavaScript number is one type: 1700000000000.0 is the same value as
    // 1700000000000 and must give the same bytes.
    let value = json!({
        "kind": "x", "n": -5.0, "f": 0.5, "big": 1_700_000_000_000.0,
        "neg": -200_000.0, "t": true, "nil": null
    });
    assert_eq!(hex(&encode_value(&value, Codec::MsgPack).unwrap()), V10_HEX);
    assert_eq!(
        std::str::from_utf8(&encode_value(&value, Codec::Json).unwrap()).unwrap(),
        V10_JSON
    );
}

const LIVE_REPLY: &str = r#"{"data":{"event":"_Cs_Cb_","senderServer":"game-server-42","targetServer":[],"callbackId":"erverA-mwyijang-ip49-1","isCallback":true,"payload":{"from":"game-server-42"}}}"#;
const LIVE_MULTI: &str = r#"{"data":"{\"event\":\"pm\",\"payload\":\"multi\"}","socketIds":["u2","u3","ghost"],"senderServer":"serverA"}"#;
const LIVE_ROOM: &str = r#"{"data":"{\"event\":\"roomEvt\",\"payload\":{\"m\":3}}","roomNamespace":"chat","roomId":"r1","senderServer":"serverA","excludeSocketIds":["u3"]}"#;

/// The live captures at the end of Part C were taken in JSON mode: they
/// decode and re-encode to the captured text. In MessagePack mode they
/// round-trip through the same values.
fn to_codec(text: &str, codec: Codec) -> Vec<u8> {
    let value = decode_value(text.as_bytes(), Codec::Json).unwrap();
    encode_value(&value, codec).unwrap()
}

vector!(live_capture_reply, codec => {
    let channels = Channels::default();
    assert_eq!(channels.classify("csbp:server_bridge"), ChannelKind::Bridge);
    let bytes = to_codec(LIVE_REPLY, codec);
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
    let kind = Channels::default().classify("ws:private_socket");
    let bytes = to_codec(LIVE_MULTI, codec);
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
    let kind = Channels::default().classify("ws:chat");
    assert_eq!(kind, ChannelKind::Room);
    let bytes = to_codec(LIVE_ROOM, codec);
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

#[test]
fn live_captures_reencode_to_the_captured_text() {
    assert_eq!(to_codec(LIVE_REPLY, Codec::Json), LIVE_REPLY.as_bytes());
    assert_eq!(to_codec(LIVE_MULTI, Codec::Json), LIVE_MULTI.as_bytes());
    assert_eq!(to_codec(LIVE_ROOM, Codec::Json), LIVE_ROOM.as_bytes());
}

/// A.10: the frames in the captured exchange are what PushFrame writes.
#[test]
fn captured_push_frame() {
    assert_eq!(
        hex(frame("e", json!(1)).as_str().as_bytes()),
        "7b226576656e74223a2265222c227061796c6f6164223a317d"
    );
}
