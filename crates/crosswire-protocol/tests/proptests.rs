//! Property tests: every envelope kind and client frame round-trips in both
//! codecs, and no decoder panics on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use crosswire_protocol::channels::{ChannelKind, Channels};
use crosswire_protocol::client::{
    decode_client_frame, decode_server_frame, encode_client_event, encode_reply, Inbound,
    PushFrame, ServerFrame,
};
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_value, encode_ws_route,
    sent_by, BridgeEvent, BridgeMessage, BridgeReply, Codec, KeyOrder, WsRoute,
};
use crosswire_protocol::params::{append_custom_params, parse_ws_request_params, ParseOptions};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Json), Just(Codec::MsgPack)]
}

/// Finite non-integral floats (an integral float is the same JavaScript
/// number as the integer and comes back as one), both arbitrary bit patterns
/// and short binary fractions.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (any::<i32>(), 1..=20u32).prop_map(|(i, k)| f64::from(i) / f64::from(1u32 << k)),
    ]
    .prop_filter("finite, non-integral", |f| {
        f.is_finite() && f.fract() != 0.0
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn non_empty() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-empty", |s| !s.is_empty())
}

fn push_frame() -> impl Strategy<Value = PushFrame> {
    prop_oneof![
        any::<String>().prop_map(PushFrame::from_text),
        (non_empty(), prop::option::of(json_value())).prop_map(|(e, p)| PushFrame::encode(
            &e,
            p.as_ref()
        )
        .unwrap()),
    ]
}

fn bridge_event() -> impl Strategy<Value = BridgeEvent> {
    (
        non_empty(),
        prop::option::of(non_empty()),
        prop::option::of(json_value()),
        prop::collection::vec(any::<String>(), 0..4),
        prop::option::of(non_empty()),
        any::<bool>(),
    )
        .prop_map(
            |(event, sender_server, payload, target_server, callback_id, promise)| {
                // The Promise order is only observable with a payload.
                let key_order = if promise && payload.is_some() {
                    KeyOrder::Promise
                } else {
                    KeyOrder::Emit
                };
                BridgeEvent {
                    event,
                    sender_server,
                    payload,
                    target_server,
                    callback_id,
                    key_order,
                }
            },
        )
}

fn bridge_reply() -> impl Strategy<Value = BridgeReply> {
    (non_empty(), any::<String>(), prop::option::of(json_value())).prop_map(
        |(sender_server, callback_id, payload)| BridgeReply {
            sender_server,
            callback_id,
            payload,
        },
    )
}

fn bridge_message() -> impl Strategy<Value = BridgeMessage> {
    prop_oneof![
        bridge_event().prop_map(BridgeMessage::Event),
        bridge_reply().prop_map(BridgeMessage::Reply),
    ]
}

fn ws_route() -> impl Strategy<Value = (ChannelKind, WsRoute)> {
    prop_oneof![
        (push_frame(), any::<String>()).prop_map(|(data, sender_server)| (
            ChannelKind::Broadcast,
            WsRoute::Broadcast {
                data,
                sender_server
            }
        )),
        (push_frame(), any::<String>(), any::<String>()).prop_map(
            |(data, socket_id, sender_server)| (
                ChannelKind::PrivateSocket,
                WsRoute::Socket {
                    data,
                    socket_id,
                    sender_server
                }
            )
        ),
        (
            push_frame(),
            prop::collection::vec(non_empty(), 0..6),
            any::<String>()
        )
            .prop_map(|(data, socket_ids, sender_server)| (
                ChannelKind::PrivateSocket,
                WsRoute::Sockets {
                    data,
                    socket_ids,
                    sender_server
                }
            )),
        (
            push_frame(),
            non_empty(),
            prop::option::of(non_empty()),
            any::<String>(),
            prop::collection::vec(any::<String>(), 0..6)
        )
            .prop_map(
                |(data, room_namespace, room_id, sender_server, exclude_socket_ids)| (
                    ChannelKind::Room,
                    WsRoute::Room {
                        data,
                        room_namespace,
                        room_id,
                        sender_server,
                        exclude_socket_ids
                    }
                )
            ),
    ]
}

proptest! {
    #[test]
    fn values_round_trip(v in json_value(), codec in codec()) {
        let bytes = encode_value(&v, codec).unwrap();
        prop_assert_eq!(decode_value(&bytes, codec).unwrap(), v);
    }

    #[test]
    fn json_and_msgpack_carry_the_same_value(v in json_value()) {
        let json = encode_value(&v, Codec::Json).unwrap();
        let mp = encode_value(&v, Codec::MsgPack).unwrap();
        prop_assert_eq!(decode_value(&json, Codec::Json).unwrap(), decode_value(&mp, Codec::MsgPack).unwrap());
    }

    #[test]
    fn bridge_messages_round_trip(
        msg in bridge_message(),
        id in prop::option::of(any::<String>()),
        codec in codec(),
    ) {
        let bytes = encode_bridge(&msg, id.as_deref(), codec).unwrap();
        let env = decode_bridge(&bytes, codec).unwrap();
        prop_assert_eq!(env.message, msg);
        prop_assert_eq!(env.message_id, id);
    }

    #[test]
    fn ws_routes_round_trip(
        (kind, msg) in ws_route(),
        id in prop::option::of(any::<String>()),
        codec in codec(),
    ) {
        let bytes = encode_ws_route(&msg, id.as_deref(), codec).unwrap();
        let env = decode_ws_route(kind, &bytes, codec).unwrap();
        prop_assert_eq!(env.message, msg);
        prop_assert_eq!(env.message_id, id);
    }

    #[test]
    fn client_events_round_trip(
        event in non_empty(),
        payload in prop::option::of(json_value()),
        callback_id in prop::option::of("[0-9a-z-]{1,64}"),
    ) {
        let text = encode_client_event(&event, payload.as_ref(), callback_id.as_deref()).unwrap();
        let Inbound::Event(ev) = decode_client_frame(&text, "").unwrap() else {
            return Err(TestCaseError::fail("heartbeat"));
        };
        prop_assert_eq!(ev.event, event);
        prop_assert_eq!(ev.payload, payload);
        prop_assert_eq!(ev.callback_id, callback_id);
    }

    #[test]
    fn replies_and_pushes_round_trip(
        event in non_empty(),
        payload in prop::option::of(json_value()),
        callback_id in non_empty(),
    ) {
        let reply = encode_reply(&callback_id, payload.as_ref()).unwrap();
        prop_assert_eq!(
            decode_server_frame(&reply, ""),
            Some(ServerFrame::Reply { callback_id, payload: payload.clone() })
        );
        let push = PushFrame::encode(&event, payload.as_ref()).unwrap();
        prop_assert_eq!(
            decode_server_frame(push.as_str(), ""),
            Some(ServerFrame::Event { event, payload })
        );
    }

    #[test]
    fn url_params_round_trip(
        params in prop::collection::btree_map("[^\u{0}]{1,8}", non_empty(), 0..6),
        lower in any::<bool>(),
    ) {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let target = append_custom_params("/p", &pairs);
        let opts = ParseOptions { auto_lower_case_keys: lower, ..ParseOptions::default() };
        let parsed = parse_ws_request_params(&target, None, opts);
        prop_assert_eq!(parsed.path.as_deref(), Some("p"));
        if !lower {
            prop_assert_eq!(parsed.params.len(), params.len());
            for (k, v) in &params {
                prop_assert_eq!(parsed.get(k), Some(v.as_str()));
            }
        }
    }

    // ------------------------------------------------------------ no panics

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for codec in [Codec::Json, Codec::MsgPack] {
            let _ = decode_value(&bytes, codec);
            let _ = decode_bridge(&bytes, codec);
            for kind in [ChannelKind::Broadcast, ChannelKind::PrivateSocket, ChannelKind::Room, ChannelKind::Bridge, ChannelKind::Custom] {
                let _ = decode_ws_route(kind, &bytes, codec);
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_frame(&text, "");
        let _ = decode_server_frame(&text, "");
        let _ = parse_ws_request_params(&text, Some(&text), ParseOptions::default());
        let _ = Channels::new(&text, "ws:").map(|c| c.classify(&text));
    }

    #[test]
    fn decoders_never_panic_on_msgpack_like_bytes(
        // Bias towards markers with lengths and nesting.
        bytes in prop::collection::vec(prop_oneof![
            any::<u8>(),
            0x80u8..=0x9f,
            0xc4u8..=0xdf,
        ], 0..64),
    ) {
        let _ = decode_value(&bytes, Codec::MsgPack);
        let _ = decode_bridge(&bytes, Codec::MsgPack);
        let _ = decode_ws_route(ChannelKind::Room, &bytes, Codec::MsgPack);
    }

    #[test]
    fn decoders_never_panic_on_mutated_envelopes(
        msg in bridge_message(),
        (kind, route) in ws_route(),
        codec in codec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut bytes in [
            encode_bridge(&msg, Some("m"), codec).unwrap(),
            encode_ws_route(&route, None, codec).unwrap(),
        ] {
            for (at, b) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            let _ = decode_bridge(&bytes, codec);
            let _ = decode_ws_route(kind, &bytes, codec);
            let _ = decode_value(&bytes, codec);
            let truncated = &bytes[..cut.index(bytes.len())];
            let _ = decode_bridge(truncated, codec);
            let _ = decode_ws_route(kind, truncated, codec);
            let _ = decode_value(truncated, codec);
        }
    }

    #[test]
    fn client_decoders_never_panic_on_json_like_text(
        text in r#"[\[\]{}":,0-9a-zA-Z\\ .eE+-]{0,64}"#,
        heartbeat in "[a-z]{0,3}",
    ) {
        let _ = decode_client_frame(&text, &heartbeat);
        let _ = decode_server_frame(&text, &heartbeat);
        let _ = decode_value(text.as_bytes(), Codec::Json);
    }
}

/// A map with arbitrary values around (or instead of) a `senderServer`, at
/// the top or inside `data`.
fn envelope_like() -> impl Strategy<Value = Value> {
    let sender = prop_oneof![
        Just(None),
        Just(Some(Value::from("n1"))),
        Just(Some(Value::from("n2"))),
        json_value().prop_map(Some),
    ];
    (
        prop::collection::vec((any::<String>(), json_value()), 0..4),
        sender.clone(),
        sender,
        any::<bool>(),
    )
        .prop_map(|(extra, top, inner, data_is_map)| {
            let mut data: Map<String, Value> = extra.iter().cloned().collect();
            if let Some(v) = inner {
                data.insert("senderServer".into(), v);
            }
            let mut outer: Map<String, Value> = extra.into_iter().collect();
            outer.insert(
                "data".into(),
                if data_is_map {
                    Value::Object(data)
                } else {
                    Value::from("x")
                },
            );
            if let Some(v) = top {
                outer.insert("senderServer".into(), v);
            }
            Value::Object(outer)
        })
}

proptest! {
    /// The fast sender check never says "own" for a message the full
    /// decoders would not attribute to that node, and finds every own one.
    #[test]
    fn sent_by_agrees_with_the_full_decoders(v in envelope_like(), codec in codec()) {
        let bytes = encode_value(&v, codec).unwrap();
        let bridge_sender = v.get("data").and_then(|d| d.get("senderServer")).and_then(Value::as_str);
        let route_sender = v.get("senderServer").and_then(Value::as_str);
        prop_assert_eq!(sent_by(&bytes, codec, ChannelKind::Bridge, "n1"), bridge_sender == Some("n1"));
        prop_assert_eq!(sent_by(&bytes, codec, ChannelKind::Broadcast, "n1"), route_sender == Some("n1"));
        prop_assert!(!sent_by(&bytes, codec, ChannelKind::Custom, "n1"));
    }

    #[test]
    fn sent_by_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), codec in codec()) {
        let _ = sent_by(&bytes, codec, ChannelKind::Bridge, "n1");
        let _ = sent_by(&bytes, codec, ChannelKind::Room, "n1");
    }
}
