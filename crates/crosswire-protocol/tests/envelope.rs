//! Receiver validation of bus envelopes (`docs/protocol.md` §6.5–§8), the
//! `cwMid` extension (§10.1, its vectors read from the document), and codec
//! edge cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod doc_vectors;

use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::client::PushFrame;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_value, encode_ws_route,
    is_own_message, sender_of, BridgeEvent, BridgeMessage, BridgeReply, Codec, EnvelopeError,
    KeyOrder, WsRoute, MAX_DEPTH,
};
use doc_vectors::vector;
use serde_json::{json, Value};

const CODECS: [Codec; 2] = [Codec::Json, Codec::MsgPack];

/// `value` in `codec`.
fn bytes(value: &Value, codec: Codec) -> Vec<u8> {
    encode_value(value, codec).unwrap()
}

fn bridge(value: Value) -> Vec<Result<BridgeMessage, EnvelopeError>> {
    CODECS
        .iter()
        .map(|&c| decode_bridge(&bytes(&value, c), c).map(|e| e.message))
        .collect()
}

fn route(kind: ChannelKind, value: Value) -> Vec<Result<WsRoute, EnvelopeError>> {
    CODECS
        .iter()
        .map(|&c| decode_ws_route(kind, &bytes(&value, c), c).map(|e| e.message))
        .collect()
}

fn bridge_ok(value: Value) -> BridgeMessage {
    let mut results = bridge(value).into_iter().map(Result::unwrap);
    let first = results.next().unwrap();
    for other in results {
        assert_eq!(other, first);
    }
    first
}

fn bridge_err(value: Value) -> Vec<EnvelopeError> {
    bridge(value).into_iter().map(Result::unwrap_err).collect()
}

fn route_ok(kind: ChannelKind, value: Value) -> WsRoute {
    let mut results = route(kind, value).into_iter().map(Result::unwrap);
    let first = results.next().unwrap();
    for other in results {
        assert_eq!(other, first);
    }
    first
}

fn route_err(kind: ChannelKind, value: Value) -> Vec<EnvelopeError> {
    route(kind, value)
        .into_iter()
        .map(Result::unwrap_err)
        .collect()
}

fn event(msg: BridgeMessage) -> BridgeEvent {
    match msg {
        BridgeMessage::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    }
}

fn reply(msg: BridgeMessage) -> BridgeReply {
    match msg {
        BridgeMessage::Reply(r) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

fn frame() -> PushFrame {
    PushFrame::encode("e", Some(&1)).unwrap()
}

// ---------------------------------------------------------------- cwMid

#[test]
fn message_id_is_the_last_outer_key() {
    let msg = BridgeMessage::Reply(BridgeReply {
        sender_server: "b".into(),
        callback_id: "id".into(),
        payload: None,
    });
    let v = vector("MID1");
    let json = encode_bridge(&msg, Some("m-1"), Codec::Json).unwrap();
    assert_eq!(std::str::from_utf8(&json).unwrap(), v.text("json"));
    let mp = encode_bridge(&msg, Some("m-1"), Codec::MsgPack).unwrap();
    assert_eq!(mp, v.bytes("msgpack"));
    // fixmap of 2 entries, "data" first, "cwMid" last.
    assert_eq!(mp[0], 0x82);
    assert!(mp.ends_with(b"\xa5cwMid\xa3m-1"));
    for (codec, b) in [(Codec::Json, &json), (Codec::MsgPack, &mp)] {
        let env = decode_bridge(b, codec).unwrap();
        assert_eq!(env.message, msg);
        assert_eq!(env.message_id.as_deref(), Some("m-1"));
    }

    let route = WsRoute::Broadcast {
        data: frame(),
        sender_server: "a".into(),
    };
    let v = vector("MID2");
    let json = encode_ws_route(&route, Some("m-2"), Codec::Json).unwrap();
    assert_eq!(std::str::from_utf8(&json).unwrap(), v.text("json"));
    assert_eq!(
        encode_ws_route(&route, Some("m-2"), Codec::MsgPack).unwrap(),
        v.bytes("msgpack")
    );
    for codec in CODECS {
        let b = encode_ws_route(&route, Some("m-2"), codec).unwrap();
        let env = decode_ws_route(ChannelKind::Broadcast, &b, codec).unwrap();
        assert_eq!(env.message, route);
        assert_eq!(env.message_id.as_deref(), Some("m-2"));
    }
}

#[test]
fn non_string_message_id_is_ignored() {
    let v = json!({"data": "x", "senderServer": "a", "cwMid": 5});
    for codec in CODECS {
        let env = decode_ws_route(ChannelKind::Broadcast, &bytes(&v, codec), codec).unwrap();
        assert_eq!(env.message_id, None);
    }
}

// ---------------------------------------------------------------- outer shape

#[test]
fn outer_value_must_be_an_object() {
    for v in [json!(null), json!([1]), json!("x"), json!(0), json!(true)] {
        for e in bridge_err(v.clone()) {
            assert!(
                matches!(
                    e,
                    EnvelopeError::WrongType {
                        field: "envelope",
                        ..
                    }
                ),
                "{e}"
            );
        }
        for e in route_err(ChannelKind::Broadcast, v) {
            assert!(matches!(
                e,
                EnvelopeError::WrongType {
                    field: "envelope",
                    ..
                }
            ));
        }
    }
}

#[test]
fn undecodable_bytes() {
    assert!(matches!(
        decode_bridge(b"{\"data\":", Codec::Json),
        Err(EnvelopeError::InvalidJson(_))
    ));
    assert!(matches!(
        decode_bridge(b"{} x", Codec::Json),
        Err(EnvelopeError::InvalidJson(_))
    ));
    // JSON text in MessagePack mode (codec mismatch in the cluster).
    assert!(decode_bridge(br#"{"data":{}}"#, Codec::MsgPack).is_err());
    // MessagePack in JSON mode.
    let mp = bytes(&json!({"data": {}}), Codec::MsgPack);
    assert!(decode_bridge(&mp, Codec::Json).is_err());
    // A trailing byte.
    let mut mp = bytes(&json!({"data": "x", "senderServer": "a"}), Codec::MsgPack);
    mp.push(0xc0);
    assert!(matches!(
        decode_ws_route(ChannelKind::Broadcast, &mp, Codec::MsgPack),
        Err(EnvelopeError::TrailingBytes(1))
    ));
    // Whitespace around JSON is fine, as for JSON.parse.
    assert!(decode_ws_route(
        ChannelKind::Broadcast,
        b" {\"data\":\"x\",\"senderServer\":\"a\"}\n",
        Codec::Json
    )
    .is_ok());
}

#[test]
fn forged_lengths_fail_fast() {
    for b in [
        &b"\xdd\xff\xff\xff\xff"[..],
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff",
        b"\xc9\xff\xff\xff\xff\x01",
        b"\x81\xa4data\xdd\xff\xff\xff\xff",
        b"\x81\xa4data\xdf\x7f\xff\xff\xff\x00",
    ] {
        assert!(decode_bridge(b, Codec::MsgPack).is_err());
        assert!(decode_value(b, Codec::MsgPack).is_err());
    }
}

#[test]
fn nesting_is_bounded() {
    let mut payload = json!(1);
    for _ in 0..MAX_DEPTH {
        payload = json!([payload]);
    }
    let msg = BridgeMessage::Event(BridgeEvent {
        event: "e".into(),
        sender_server: None,
        payload: Some(payload),
        target_server: vec![],
        callback_id: None,
        key_order: KeyOrder::Emit,
    });
    for codec in CODECS {
        assert!(matches!(
            encode_bridge(&msg, None, codec),
            Err(EnvelopeError::TooDeep)
        ));
    }
    // The deepest payload that fits: outer map and data map take two levels.
    let mut payload = json!(1);
    for _ in 0..MAX_DEPTH - 2 {
        payload = json!([payload]);
    }
    let msg = BridgeMessage::Event(BridgeEvent {
        payload: Some(payload),
        ..event(msg)
    });
    for codec in CODECS {
        let b = encode_bridge(&msg, None, codec).unwrap();
        assert_eq!(decode_bridge(&b, codec).unwrap().message, msg);
    }
}

// ---------------------------------------------------------------- bridge

#[test]
fn bridge_data_must_be_an_object() {
    for e in bridge_err(json!({"other": 1})) {
        assert!(matches!(e, EnvelopeError::MissingField("data")));
    }
    for data in [json!(null), json!("x"), json!([]), json!(1)] {
        for e in bridge_err(json!({ "data": data })) {
            assert!(matches!(e, EnvelopeError::WrongType { field: "data", .. }));
        }
    }
}

#[test]
fn truthy_is_callback_makes_a_reply() {
    for flag in [json!(true), json!(1), json!("yes"), json!([]), json!({})] {
        let r = reply(bridge_ok(json!({"data": {
            "senderServer": "b", "callbackId": "id", "isCallback": flag, "payload": 2
        }})));
        assert_eq!(r.sender_server, "b");
        assert_eq!(r.callback_id, "id");
        assert_eq!(r.payload, Some(json!(2)));
    }
    // The event name and targetServer are not checked for replies.
    let r = reply(bridge_ok(json!({"data": {
        "event": "whatever", "targetServer": "x", "senderServer": "b", "callbackId": "id", "isCallback": true
    }})));
    assert_eq!(r.payload, None);
    // A null reply value is kept.
    let r = reply(bridge_ok(json!({"data": {
        "senderServer": "b", "callbackId": "id", "isCallback": true, "payload": null
    }})));
    assert_eq!(r.payload, Some(Value::Null));
}

#[test]
fn falsy_is_callback_makes_an_event() {
    for flag in [json!(false), json!(0), json!(""), json!(null)] {
        let e = event(bridge_ok(json!({"data": {
            "event": "x", "targetServer": [], "isCallback": flag
        }})));
        assert_eq!(e.event, "x");
    }
}

#[test]
fn reply_validation() {
    let cases = [
        (
            json!({"senderServer": "b", "isCallback": true}),
            "callbackId",
        ),
        (
            json!({"senderServer": "b", "callbackId": 5, "isCallback": true}),
            "callbackId",
        ),
        (
            json!({"callbackId": "id", "isCallback": true}),
            "senderServer",
        ),
        (
            json!({"senderServer": "", "callbackId": "id", "isCallback": true}),
            "senderServer",
        ),
        (
            json!({"senderServer": 5, "callbackId": "id", "isCallback": true}),
            "senderServer",
        ),
    ];
    for (data, field) in cases {
        for e in bridge_err(json!({ "data": data })) {
            let named = match e {
                EnvelopeError::MissingField(f) => f,
                EnvelopeError::WrongType { field, .. } => field,
                other => panic!("{other}"),
            };
            assert_eq!(named, field);
        }
    }
}

#[test]
fn event_target_server_must_be_an_array_of_strings() {
    for e in bridge_err(json!({"data": {"event": "x"}})) {
        assert!(matches!(e, EnvelopeError::MissingField("targetServer")));
    }
    for target in [
        json!("serverB"),
        json!(null),
        json!({}),
        json!(["a", 5]),
        json!([null]),
    ] {
        for e in bridge_err(json!({"data": {"event": "x", "targetServer": target}})) {
            assert!(
                matches!(
                    e,
                    EnvelopeError::WrongType {
                        field: "targetServer",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }
    // Duplicates are kept (they count as expected responses upstream).
    let e = event(bridge_ok(
        json!({"data": {"event": "x", "targetServer": ["a", "a"]}}),
    ));
    assert_eq!(e.target_server, ["a", "a"]);
}

#[test]
fn event_name_must_be_a_non_empty_string() {
    for name in [json!(""), json!(5), json!(null)] {
        for e in bridge_err(json!({"data": {"event": name, "targetServer": []}})) {
            assert!(matches!(e, EnvelopeError::WrongType { field: "event", .. }));
        }
    }
    for e in bridge_err(json!({"data": {"targetServer": []}})) {
        assert!(matches!(e, EnvelopeError::MissingField("event")));
    }
}

#[test]
fn event_optional_fields() {
    let e = event(bridge_ok(
        json!({"data": {"event": "x", "targetServer": []}}),
    ));
    assert_eq!(e.sender_server, None);
    assert_eq!(e.callback_id, None);
    assert_eq!(e.payload, None);
    assert_eq!(e.key_order, KeyOrder::Emit);

    let e = event(bridge_ok(json!({"data": {
        "event": "x", "senderServer": 5, "targetServer": [], "callbackId": 7, "payload": null, "extra": [1]
    }})));
    assert_eq!(e.sender_server, None);
    assert_eq!(e.callback_id, None);
    assert_eq!(e.payload, Some(Value::Null));

    let e = event(bridge_ok(json!({"data": {
        "event": "x", "senderServer": "", "targetServer": [], "callbackId": ""
    }})));
    assert_eq!(e.sender_server, None);
    assert_eq!(e.callback_id, None);
}

#[test]
fn key_order_is_recovered() {
    let e = event(bridge_ok(
        json!({"data": {"payload": 1, "event": "x", "targetServer": []}}),
    ));
    assert_eq!(e.key_order, KeyOrder::Promise);
    let e = event(bridge_ok(
        json!({"data": {"targetServer": [], "event": "x", "payload": 1}}),
    ));
    assert_eq!(e.key_order, KeyOrder::Emit);
    // Without a payload the Promise order is indistinguishable from Emit.
    let msg = BridgeMessage::Event(BridgeEvent {
        event: "x".into(),
        sender_server: Some("a".into()),
        payload: None,
        target_server: vec![],
        callback_id: Some("id".into()),
        key_order: KeyOrder::Promise,
    });
    let json = encode_bridge(&msg, None, Codec::Json).unwrap();
    assert_eq!(
        std::str::from_utf8(&json).unwrap(),
        r#"{"data":{"event":"x","senderServer":"a","targetServer":[],"callbackId":"id"}}"#
    );
}

// ---------------------------------------------------------------- routes

#[test]
fn route_data_must_be_a_string() {
    for kind in [
        ChannelKind::Broadcast,
        ChannelKind::PrivateSocket,
        ChannelKind::Room,
    ] {
        for e in route_err(
            kind,
            json!({"senderServer": "a", "socketId": "u", "roomNamespace": "n"}),
        ) {
            assert!(matches!(e, EnvelopeError::MissingField("data")));
        }
        for data in [json!({"event": "x"}), json!(null), json!(1), json!(["x"])] {
            let v =
                json!({"data": data, "senderServer": "a", "socketId": "u", "roomNamespace": "n"});
            for e in route_err(kind, v) {
                assert!(matches!(e, EnvelopeError::WrongType { field: "data", .. }));
            }
        }
    }
}

#[test]
fn route_data_is_relayed_verbatim() {
    // Whatever the string holds, it is the frame text.
    let r = route_ok(
        ChannelKind::Broadcast,
        json!({"data": "not json é \u{1}", "senderServer": "a"}),
    );
    assert_eq!(r.data().as_str(), "not json é \u{1}");
    // Escaping in JSON mode is that of JSON.stringify.
    let b = encode_ws_route(&r, None, Codec::Json).unwrap();
    assert_eq!(
        std::str::from_utf8(&b).unwrap(),
        r#"{"data":"not json é \u0001","senderServer":"a"}"#
    );
}

#[test]
fn route_sender_server_defaults_to_empty() {
    let r = route_ok(ChannelKind::Broadcast, json!({"data": "x"}));
    assert_eq!(r.sender_server(), "");
    let r = route_ok(
        ChannelKind::Broadcast,
        json!({"data": "x", "senderServer": 1}),
    );
    assert_eq!(r.sender_server(), "");
}

#[test]
fn wrong_channel_kind() {
    for kind in [ChannelKind::Bridge, ChannelKind::Custom] {
        for e in route_err(kind, json!({"data": "x", "senderServer": "a"})) {
            assert!(matches!(e, EnvelopeError::UnexpectedChannel(k) if k == kind));
        }
    }
}

#[test]
fn private_socket_single() {
    let r = route_ok(
        ChannelKind::PrivateSocket,
        json!({"data": "x", "socketId": "u1", "senderServer": "a"}),
    );
    assert!(matches!(r, WsRoute::Socket { ref socket_id, .. } if socket_id == "u1"));
    // A falsy socketIds falls back to socketId.
    for ids in [json!(null), json!(false), json!(0), json!("")] {
        let r = route_ok(
            ChannelKind::PrivateSocket,
            json!({"data": "x", "socketIds": ids, "socketId": "u1"}),
        );
        assert!(matches!(r, WsRoute::Socket { .. }));
    }
    for e in route_err(ChannelKind::PrivateSocket, json!({"data": "x"})) {
        assert!(matches!(e, EnvelopeError::MissingField("socketId")));
    }
    for e in route_err(
        ChannelKind::PrivateSocket,
        json!({"data": "x", "socketId": 42}),
    ) {
        assert!(matches!(
            e,
            EnvelopeError::WrongType {
                field: "socketId",
                ..
            }
        ));
    }
}

#[test]
fn private_socket_multiple() {
    let r = route_ok(
        ChannelKind::PrivateSocket,
        json!({"data": "x", "socketIds": ["u1", "", 3, null, "u2", "u1"], "socketId": "ignored"}),
    );
    let WsRoute::Sockets { socket_ids, .. } = r else {
        panic!()
    };
    assert_eq!(socket_ids, ["u1", "u2", "u1"]);
    // An empty array is truthy: multi-socket with nobody.
    let r = route_ok(
        ChannelKind::PrivateSocket,
        json!({"data": "x", "socketIds": []}),
    );
    assert!(matches!(r, WsRoute::Sockets { ref socket_ids, .. } if socket_ids.is_empty()));
    // A truthy non-array throws in the original: refused.
    for ids in [json!("u1"), json!(1), json!({"0": "u1"}), json!(true)] {
        for e in route_err(
            ChannelKind::PrivateSocket,
            json!({"data": "x", "socketIds": ids}),
        ) {
            assert!(matches!(
                e,
                EnvelopeError::WrongType {
                    field: "socketIds",
                    ..
                }
            ));
        }
    }
}

#[test]
fn room_fields() {
    let base = |extra: Value| {
        let mut v = json!({"data": "x", "roomNamespace": "chat", "senderServer": "a"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let WsRoute::Room {
        room_namespace,
        room_id,
        exclude_socket_ids,
        ..
    } = route_ok(ChannelKind::Room, base(json!({})))
    else {
        panic!()
    };
    assert_eq!(room_namespace, "chat");
    assert_eq!(room_id, None);
    assert!(exclude_socket_ids.is_empty());

    for id in [json!(""), json!(null), json!(false), json!(0)] {
        let r = route_ok(ChannelKind::Room, base(json!({ "roomId": id })));
        assert!(matches!(r, WsRoute::Room { room_id: None, .. }));
    }
    for id in [json!(5), json!(["r1"]), json!(true)] {
        for e in route_err(ChannelKind::Room, base(json!({ "roomId": id }))) {
            assert!(matches!(
                e,
                EnvelopeError::WrongType {
                    field: "roomId",
                    ..
                }
            ));
        }
    }
    for ns in [json!(""), json!(null), json!(5)] {
        for e in route_err(ChannelKind::Room, base(json!({ "roomNamespace": ns }))) {
            assert!(matches!(
                e,
                EnvelopeError::WrongType {
                    field: "roomNamespace",
                    ..
                }
            ));
        }
    }
    for e in route_err(ChannelKind::Room, json!({"data": "x"})) {
        assert!(matches!(e, EnvelopeError::MissingField("roomNamespace")));
    }
}

#[test]
fn room_exclusions_match_exactly() {
    let excl = |v: Value| match route_ok(
        ChannelKind::Room,
        json!({"data": "x", "roomNamespace": "chat", "roomId": "r", "excludeSocketIds": v}),
    ) {
        WsRoute::Room {
            exclude_socket_ids, ..
        } => exclude_socket_ids,
        _ => unreachable!(),
    };
    assert_eq!(excl(json!(["u1", 2, null, "u3"])), ["u1", "u3"]);
    assert!(excl(json!(null)).is_empty());
    assert!(excl(json!("")).is_empty());
    assert!(excl(json!(false)).is_empty());
    // A string is one id, not a set of substrings ("u12" does not exclude "u1").
    assert_eq!(excl(json!("u12")), ["u12"]);
    for v in [json!({}), json!(5), json!(true)] {
        for e in route_err(
            ChannelKind::Room,
            json!({"data": "x", "roomNamespace": "chat", "excludeSocketIds": v}),
        ) {
            assert!(matches!(
                e,
                EnvelopeError::WrongType {
                    field: "excludeSocketIds",
                    ..
                }
            ));
        }
    }
}

// ---------------------------------------------------------------- misc

#[test]
fn msgpack_bin_and_ext_in_payloads() {
    // {"data":{"event":"x","targetServer":[],"payload":<bin 01 02>}}
    let mut b = b"\x81\xa4data\x83\xa5event\xa1x\xactargetServer\x90\xa7payload".to_vec();
    b.extend_from_slice(b"\xc4\x02\x01\x02");
    let e = event(decode_bridge(&b, Codec::MsgPack).unwrap().message);
    assert_eq!(e.payload, Some(json!({"type": "Buffer", "data": [1, 2]})));
    // A Date payload (timestamp 32).
    let mut b = b"\x81\xa4data\x83\xa5event\xa1x\xactargetServer\x90\xa7payload".to_vec();
    b.extend_from_slice(b"\xd6\xff\x39\x45\x79\x80");
    let e = event(decode_bridge(&b, Codec::MsgPack).unwrap().message);
    assert_eq!(e.payload, Some(json!("2000-06-13T00:00:00.000Z")));
}

#[test]
fn route_data_as_bin_is_refused() {
    // The original validates typeof data === 'string'; a Buffer is not.
    let b = b"\x82\xa4data\xc4\x01x\xacsenderServer\xa1a";
    assert!(matches!(
        decode_ws_route(ChannelKind::Broadcast, b, Codec::MsgPack),
        Err(EnvelopeError::WrongType { field: "data", .. })
    ));
}

#[test]
fn codec_serde_names() {
    assert_eq!(
        serde_json::to_string(&Codec::MsgPack).unwrap(),
        r#""msgpack""#
    );
    assert_eq!(serde_json::to_string(&Codec::Json).unwrap(), r#""json""#);
    assert_eq!(
        serde_json::from_str::<Codec>(r#""json""#).unwrap(),
        Codec::Json
    );
    assert_eq!(Codec::default(), Codec::MsgPack);
    assert_eq!(KeyOrder::default(), KeyOrder::Emit);
}

#[test]
fn self_skip_helpers() {
    let route = json!({"data": "x", "senderServer": "me"});
    assert_eq!(sender_of(&route), Some("me"));
    assert!(is_own_message(&route, "me"));
    assert!(!is_own_message(&route, "other"));

    let bridge = json!({"data": {"event": "e", "senderServer": "me"}});
    assert_eq!(sender_of(&bridge), Some("me"));
    assert!(is_own_message(&bridge, "me"));

    // Either field matching is enough for the original.
    let both = json!({"senderServer": "x", "data": {"senderServer": "me"}});
    assert_eq!(sender_of(&both), Some("x"));
    assert!(is_own_message(&both, "me"));
    assert!(is_own_message(&both, "x"));

    for v in [
        json!(null),
        json!("me"),
        json!({"senderServer": 1}),
        json!({"data": "me"}),
    ] {
        assert_eq!(sender_of(&v), None);
        assert!(!is_own_message(&v, "me"));
    }
    // Custom messages carry no sender unless the application adds one.
    assert_eq!(sender_of(&json!({"kind": "x"})), None);

    let m = BridgeMessage::Reply(BridgeReply {
        sender_server: "b".into(),
        callback_id: "i".into(),
        payload: None,
    });
    assert_eq!(m.sender_server(), Some("b"));
}

#[test]
fn json_numbers_follow_javascript() {
    let v = json!({"a": 1e21, "b": 5.0, "c": -0.0, "d": 1.5e-7, "e": 123456789012345680000.0});
    assert_eq!(
        std::str::from_utf8(&encode_value(&v, Codec::Json).unwrap()).unwrap(),
        r#"{"a":1e+21,"b":5,"c":0,"d":1.5e-7,"e":123456789012345680000}"#
    );
}

#[test]
fn long_strings_use_str8_str16() {
    let long = "é".repeat(200); // 400 bytes
    let r = WsRoute::Socket {
        data: PushFrame::from_text(long.clone()),
        socket_id: "u".into(),
        sender_server: "a".into(),
    };
    let b = encode_ws_route(&r, None, Codec::MsgPack).unwrap();
    assert_eq!(&b[..8], b"\x83\xa4data\xda\x01");
    assert_eq!(b[8], 0x90);
    assert_eq!(
        decode_ws_route(ChannelKind::PrivateSocket, &b, Codec::MsgPack)
            .unwrap()
            .message,
        r
    );
}
