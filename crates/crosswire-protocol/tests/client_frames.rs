//! Client ⇄ node frames (`docs/protocol.md` §3 and §4.1). The frames of the
//! document's test vectors (§12.2) are read from the document.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod doc_vectors;

use crosswire_protocol::client::{
    decode_client_frame, decode_server_frame, encode_client_event, encode_reply,
    is_valid_callback_id, FrameError, Inbound, PushFrame, ServerFrame,
};
use doc_vectors::{of_kind, vector, Vector};
use serde_json::{json, Value};

/// The text of vector `name`.
fn text(name: &str) -> &'static str {
    vector(name).text("text")
}

/// Checks a vector's optional `frame`: the unmasked text frame carrying
/// its text (FIN + text opcode, 7-bit length).
fn check_frame(v: &Vector) {
    if let Some(frame) = v.opt_bytes("frame") {
        let text = v.text("text").as_bytes();
        assert!(text.len() < 126, "{}: use a 7-bit length", v.name);
        assert_eq!(frame[0], 0x81, "{}: FIN + text", v.name);
        assert_eq!(usize::from(frame[1]), text.len(), "{}: length", v.name);
        assert_eq!(&frame[2..], text, "{}: payload", v.name);
    }
}

#[test]
fn every_client_frame_vector_of_the_document_holds() {
    for v in of_kind("client-event") {
        let t = v.text("text");
        let Ok(Inbound::Event(ev)) = decode_client_frame(t, "") else {
            panic!("{}: not an event frame", v.name)
        };
        assert_eq!(
            encode_client_event(&ev.event, ev.payload.as_ref(), ev.callback_id.as_deref()).unwrap(),
            t,
            "{}",
            v.name
        );
    }
    for v in of_kind("reply") {
        let t = v.text("text");
        let Some(ServerFrame::Reply {
            callback_id,
            payload,
        }) = decode_server_frame(t, "")
        else {
            panic!("{}: not a reply", v.name)
        };
        assert!(is_valid_callback_id(&callback_id), "{}", v.name);
        assert_eq!(
            encode_reply(&callback_id, payload.as_ref()).unwrap(),
            t,
            "{}",
            v.name
        );
        check_frame(v);
    }
    for v in of_kind("push") {
        let t = v.text("text");
        let Some(ServerFrame::Event { event, payload }) = decode_server_frame(t, "") else {
            panic!("{}: not a push", v.name)
        };
        assert_eq!(
            PushFrame::encode(&event, payload.as_ref())
                .unwrap()
                .as_str(),
            t,
            "{}",
            v.name
        );
        check_frame(v);
    }
}

fn event(text: &str) -> crosswire_protocol::client::ClientEvent {
    match decode_client_frame(text, "") {
        Ok(Inbound::Event(ev)) => ev,
        other => panic!("{text}: {other:?}"),
    }
}

// ------------------------------------------------- event frames, heartbeat

#[test]
fn captured_client_frames() {
    let ev = event(text("C1"));
    assert_eq!(ev.event, "say");
    assert_eq!(ev.payload, Some(json!({"hello": "world", "n": 1.5})));
    assert_eq!(ev.callback_id.as_deref(), Some("mwyihlrn-18kj-1"));

    let ev = event(text("C2"));
    assert_eq!(ev.event, "nocallback");
    assert_eq!(ev.payload, Some(json!("x")));
    assert_eq!(ev.callback_id, None);
}

#[test]
fn heartbeat_default_is_the_empty_string() {
    assert_eq!(decode_client_frame("", "").unwrap(), Inbound::Heartbeat);
    // With the default, "ping" is not a heartbeat (and not JSON).
    assert!(matches!(
        decode_client_frame("ping", ""),
        Err(FrameError::NotJson(_))
    ));
}

#[test]
fn custom_heartbeat() {
    assert_eq!(
        decode_client_frame("ping", "ping").unwrap(),
        Inbound::Heartbeat
    );
    // Exact match only.
    assert!(decode_client_frame("ping ", "ping").is_err());
    // The empty frame is then simply not JSON.
    assert!(matches!(
        decode_client_frame("", "ping"),
        Err(FrameError::NotJson(_))
    ));
    // A heartbeat string that is itself JSON is still a heartbeat.
    assert_eq!(
        decode_client_frame(r#"{"event":"hb"}"#, r#"{"event":"hb"}"#).unwrap(),
        Inbound::Heartbeat
    );
}

#[test]
fn non_json_is_dropped() {
    for text in [
        "{",
        "hello",
        "{\"event\":\"x\"",
        "{'event':'x'}",
        "\u{feff}{}",
    ] {
        assert!(
            matches!(decode_client_frame(text, ""), Err(FrameError::NotJson(_))),
            "{text}"
        );
    }
}

#[test]
fn frames_without_a_string_event_are_dropped() {
    for text in [
        "null",
        "0",
        "true",
        "\"event\"",
        "[]",
        r#"["say",1]"#,
        "{}",
        r#"{"event":""}"#,
        r#"{"event":5}"#,
        r#"{"event":null}"#,
        r#"{"event":["say"]}"#,
        r#"{"event":{"name":"say"}}"#,
        r#"{"Event":"say"}"#,
    ] {
        assert!(
            matches!(decode_client_frame(text, ""), Err(FrameError::NoEvent)),
            "{text}"
        );
    }
}

#[test]
fn callback_id_rules() {
    let id64 = "x".repeat(64);
    let id65 = "x".repeat(65);
    let ev = event(&format!(
        r#"{{"event":"e","payload":1,"callbackId":"{id64}"}}"#
    ));
    assert_eq!(ev.callback_id.as_deref(), Some(id64.as_str()));
    // Still delivered, but without a reply handle.
    let ev = event(&format!(
        r#"{{"event":"e","payload":1,"callbackId":"{id65}"}}"#
    ));
    assert_eq!(ev.callback_id, None);
    assert_eq!(ev.payload, Some(json!(1)));
    for id in ["12345", "\"\"", "null", "true", "[\"a\"]", "{}"] {
        let ev = event(&format!(r#"{{"event":"e","callbackId":{id}}}"#));
        assert_eq!(ev.callback_id, None, "{id}");
    }
}

#[test]
fn callback_id_length_counts_utf16_units() {
    // 32 astral characters = 64 UTF-16 units (128 bytes): accepted.
    let astral = "😀".repeat(32);
    assert!(is_valid_callback_id(&astral));
    assert!(!is_valid_callback_id(&"😀".repeat(33)));
    // 64 two-byte characters: 64 units, 128 bytes.
    assert!(is_valid_callback_id(&"é".repeat(64)));
    assert!(!is_valid_callback_id(&"é".repeat(65)));
    let ev = event(&format!(r#"{{"event":"e","callbackId":"{astral}"}}"#));
    assert_eq!(ev.callback_id.as_deref(), Some(astral.as_str()));
    // Escaped in the JSON text: the decoded length counts.
    let escaped = "\\u00e9".repeat(64);
    let ev = event(&format!(r#"{{"event":"e","callbackId":"{escaped}"}}"#));
    assert_eq!(ev.callback_id.as_deref(), Some("é".repeat(64).as_str()));
}

#[test]
fn payload_absent_vs_null() {
    assert_eq!(event(r#"{"event":"e"}"#).payload, None);
    assert_eq!(
        event(r#"{"event":"e","payload":null}"#).payload,
        Some(Value::Null)
    );
    assert_eq!(
        event(r#"{"event":"e","payload":0}"#).payload,
        Some(json!(0))
    );
}

#[test]
fn repeated_keys_take_the_last_value() {
    // JSON.parse semantics.
    let ev = event(r#"{"event":"a","payload":1,"event":"b","payload":2}"#);
    assert_eq!(ev.event, "b");
    assert_eq!(ev.payload, Some(json!(2)));
    assert!(matches!(
        decode_client_frame(r#"{"event":"a","event":""}"#, ""),
        Err(FrameError::NoEvent)
    ));
}

#[test]
fn unknown_keys_and_system_event_names_are_plain_events() {
    let ev = event(r#"{"extra":{"deep":[1,2]},"event":"close","payload":{"url":"/?id=victim"}}"#);
    // The protocol layer does not interpret names; the node keeps system
    // events in a separate registry.
    assert_eq!(ev.event, "close");
    let ev = event(r#"{"event":"constructor"}"#);
    assert_eq!(ev.event, "constructor");
}

#[test]
fn escapes_in_event_names() {
    let ev = event(r#"{"event":"caf\u00e9 \"q\" \n"}"#);
    assert_eq!(ev.event, "café \"q\" \n");
}

// ------------------------------------------------------ replies and pushes

#[test]
fn reply_encoding() {
    assert_eq!(
        encode_reply("mwyilcgo-ev07-1", Some(&"ok")).unwrap(),
        text("R1")
    );
    // cb() without a value: no payload key.
    assert_eq!(
        encode_reply::<Value>("mwyihlvs-wabr-3", None).unwrap(),
        text("R2")
    );
    // cb(null) keeps it.
    assert_eq!(encode_reply("id", Some(&Value::Null)).unwrap(), text("R3"));
}

#[test]
fn captured_reply_bytes() {
    // The node's frame on the wire: 81 2f <47 bytes>.
    let text = encode_reply("mwyilcgo-ev07-1", Some(&"ok")).unwrap();
    let frame = vector("R1").bytes("frame");
    assert_eq!(&frame[..2], [0x81, 0x2f]);
    assert_eq!(&frame[2..], text.as_bytes());
}

#[test]
fn error_reply_shape() {
    // crosswire's error reply: the error inside the reply value.
    let Some(ServerFrame::Reply {
        callback_id,
        payload: Some(payload),
    }) = decode_server_frame(text("E1"), "")
    else {
        panic!("E1 is not a reply with a value")
    };
    assert_eq!(callback_id, "c1");
    assert_eq!(payload["error"]["code"], "bad_payload");
    assert!(payload["error"]["message"].is_string());
    assert_eq!(payload.as_object().unwrap().len(), 1);
}

#[test]
fn push_encoding() {
    assert_eq!(
        PushFrame::encode("e", Some(&1)).unwrap().as_str(),
        text("P1")
    );
    assert_eq!(PushFrame::encode("e", Some(&1)).unwrap().len(), 0x19);
    assert_eq!(
        PushFrame::encode::<Value>("bc", None).unwrap().as_str(),
        text("P2")
    );
    assert_eq!(
        PushFrame::encode("srvEvt", Some(&Value::Null))
            .unwrap()
            .as_str(),
        text("P3")
    );
}

#[test]
fn captured_push_frame() {
    // The node's frame on the wire: 81 19 <25 bytes>.
    let frame = vector("P1").bytes("frame");
    assert_eq!(&frame[..2], [0x81, 0x19]);
    assert_eq!(
        &frame[2..],
        PushFrame::encode("e", Some(&json!(1)))
            .unwrap()
            .as_str()
            .as_bytes()
    );
}

#[test]
fn escaping_is_that_of_json_stringify() {
    let payload = json!({
        "ctl": "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
        "quote": "\"\\/",
        "uni": "é漢😀\u{2028}\u{2029}",
    });
    assert_eq!(
        PushFrame::encode("ä", Some(&payload)).unwrap().as_str(),
        "{\"event\":\"ä\",\"payload\":{\"ctl\":\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\",\"quote\":\"\\\"\\\\/\",\"uni\":\"é漢😀\u{2028}\u{2029}\"}}"
    );
}

#[test]
fn numbers_are_written_as_javascript_does() {
    let payload = json!([
        5.0,
        -0.0,
        0.1,
        1e21,
        1e-7,
        123.456,
        1e300,
        -1.5e-10,
        9007199254740993_u64
    ]);
    assert_eq!(
        PushFrame::encode("n", Some(&payload)).unwrap().as_str(),
        r#"{"event":"n","payload":[5,0,0.1,1e+21,1e-7,123.456,1e+300,-1.5e-10,9007199254740993]}"#
    );
}

#[test]
fn client_event_encoding() {
    assert_eq!(
        encode_client_event(
            "say",
            Some(&json!({"hello":"world","n":1.5})),
            Some("mwyihlrn-18kj-1")
        )
        .unwrap(),
        text("C1")
    );
    assert_eq!(
        encode_client_event("nocallback", Some(&"x"), None).unwrap(),
        text("C2")
    );
    assert_eq!(
        encode_client_event::<Value>("e", None, None).unwrap(),
        text("C3")
    );
}

// ---------------------------------------------------------------- client side

#[test]
fn server_frames_seen_by_a_client() {
    assert_eq!(decode_server_frame("", ""), Some(ServerFrame::Heartbeat));
    assert_eq!(
        decode_server_frame(r#"{"payload":"ok","callbackId":"a-1"}"#, ""),
        Some(ServerFrame::Reply {
            callback_id: "a-1".into(),
            payload: Some(json!("ok"))
        })
    );
    assert_eq!(
        decode_server_frame(r#"{"callbackId":"a-1"}"#, ""),
        Some(ServerFrame::Reply {
            callback_id: "a-1".into(),
            payload: None
        })
    );
    // A truthy callbackId wins over event.
    assert!(matches!(
        decode_server_frame(r#"{"event":"e","callbackId":"a-1"}"#, ""),
        Some(ServerFrame::Reply { .. })
    ));
    assert_eq!(
        decode_server_frame(r#"{"event":"e","payload":1}"#, ""),
        Some(ServerFrame::Event {
            event: "e".into(),
            payload: Some(json!(1))
        })
    );
    // Falsy ids are not replies: the event is dispatched.
    for id in ["\"\"", "null", "0", "false"] {
        assert_eq!(
            decode_server_frame(&format!(r#"{{"event":"e","callbackId":{id}}}"#), ""),
            Some(ServerFrame::Event {
                event: "e".into(),
                payload: None
            }),
            "{id}"
        );
    }
    // A truthy non-string id can never be pending: dropped.
    assert_eq!(
        decode_server_frame(r#"{"event":"e","callbackId":5}"#, ""),
        None
    );
    for text in [
        "x",
        "null",
        "[]",
        r#"["e"]"#,
        "{}",
        r#"{"event":""}"#,
        r#"{"event":3}"#,
    ] {
        assert_eq!(decode_server_frame(text, ""), None, "{text}");
    }
    assert_eq!(
        decode_server_frame("pong", "pong"),
        Some(ServerFrame::Heartbeat)
    );
}
