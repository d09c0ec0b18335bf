//! Inputs found by the fuzz targets (fuzz/), kept as regression tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_protocol::envelope::{decode_bridge, encode_bridge, BridgeMessage, Codec};
use serde_json::Value;

/// Every number of `v`, in order, as JavaScript sees it (one number type).
fn numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        Value::Object(m) => m.values().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

fn payload(m: &BridgeMessage) -> &Value {
    match m {
        BridgeMessage::Event(e) => e.payload.as_ref().unwrap(),
        other => panic!("not an event: {other:?}"),
    }
}

/// An integral number written as a float (`1.7e8` in JSON, a float64 in
/// MessagePack) is re-encoded as an integer, as JavaScript encoders do: the
/// value is the same, and the encoding is a fixed point after one round.
fn integral_float_round_trip(input: &[u8], codec: Codec) {
    let first = decode_bridge(input, codec).unwrap();
    let bytes = encode_bridge(&first.message, first.message_id.as_deref(), codec).unwrap();
    let again = decode_bridge(&bytes, codec).unwrap();
    let twice = encode_bridge(&again.message, again.message_id.as_deref(), codec).unwrap();
    assert_eq!(twice, bytes);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    numbers(payload(&first.message), &mut a);
    numbers(payload(&again.message), &mut b);
    assert!(!a.is_empty());
    assert_eq!(a, b, "numbers keep their values");
    assert_ne!(
        first.message, again.message,
        "the input held integral floats"
    );
}

#[test]
fn fuzz_envelope_json_integral_float() {
    integral_float_round_trip(
        include_bytes!("fuzz_regressions/envelope_json_integral_float.bin"),
        Codec::Json,
    );
}

#[test]
fn fuzz_envelope_msgpack_integral_float() {
    integral_float_round_trip(
        include_bytes!("fuzz_regressions/envelope_msgpack_integral_float.bin"),
        Codec::MsgPack,
    );
}
