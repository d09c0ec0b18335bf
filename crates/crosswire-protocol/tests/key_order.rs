//! Payload objects keep their keys in the order their sender wrote them, as
//! JavaScript does: through a client frame and the push frame that relays
//! it, through a cross-server event and its reply, and from JSON to
//! MessagePack and back. This is why the crate enables serde_json's
//! `preserve_order` feature: without it every relayed object would reach
//! clients with its keys sorted.

#![allow(clippy::expect_used)] // Tests may panic.

use crosswire_protocol::client::{decode_client_frame, encode_reply, Inbound, PushFrame};
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, encode_bridge, encode_value, BridgeMessage, Codec,
};

/// A payload whose keys are in no sorted order, at two levels.
const PAYLOAD: &str = r#"{"zeta":1,"alpha":{"yak":true,"bee":[{"m":1,"c":2}]},"mid":"x"}"#;

#[test]
fn a_client_payload_is_pushed_and_replied_with_its_key_order() {
    let frame = format!(r#"{{"event":"say","payload":{PAYLOAD},"callbackId":"c-1"}}"#);
    let Ok(Inbound::Event(event)) = decode_client_frame(&frame, "ping") else {
        panic!("not decoded as an event: {frame}");
    };
    let payload = event.payload.expect("the frame has a payload");

    let pushed = PushFrame::encode("say", Some(&payload)).expect("encodes");
    assert_eq!(
        pushed.as_str(),
        format!(r#"{{"event":"say","payload":{PAYLOAD}}}"#)
    );
    let reply = encode_reply("c-1", Some(&payload)).expect("encodes");
    assert_eq!(
        reply,
        format!(r#"{{"payload":{PAYLOAD},"callbackId":"c-1"}}"#)
    );
}

#[test]
fn a_cross_server_payload_keeps_its_key_order_in_both_codecs() {
    // As a Node.js node publishes it.
    let published = format!(
        r#"{{"data":{{"event":"count","senderServer":"serverA","payload":{PAYLOAD},"targetServer":[]}}}}"#
    );
    let decoded = decode_bridge(published.as_bytes(), Codec::Json).expect("decodes");
    assert_eq!(
        encode_bridge(&decoded.message, None, Codec::Json).expect("encodes"),
        published.as_bytes()
    );

    // The same message through MessagePack and back to JSON.
    let packed = encode_bridge(&decoded.message, None, Codec::MsgPack).expect("encodes");
    let unpacked = decode_bridge(&packed, Codec::MsgPack).expect("decodes");
    assert_eq!(unpacked.message, decoded.message);
    let BridgeMessage::Event(event) = unpacked.message else {
        panic!("not an event");
    };
    let payload = event.payload.expect("the event has a payload");
    let json = encode_value(&payload, Codec::Json).expect("encodes");
    assert_eq!(std::str::from_utf8(&json).expect("UTF-8"), PAYLOAD);
}

#[test]
fn a_custom_channel_message_keeps_its_key_order_through_messagepack() {
    let value = decode_value(PAYLOAD.as_bytes(), Codec::Json).expect("decodes");
    let packed = encode_value(&value, Codec::MsgPack).expect("encodes");
    let back = decode_value(&packed, Codec::MsgPack).expect("decodes");
    let json = encode_value(&back, Codec::Json).expect("encodes");
    assert_eq!(std::str::from_utf8(&json).expect("UTF-8"), PAYLOAD);
}
