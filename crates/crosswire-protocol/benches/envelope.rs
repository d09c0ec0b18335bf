//! Bus envelope encode/decode in both codecs, and client frame decoding.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::client::{decode_client_frame, PushFrame};
use crosswire_protocol::envelope::{
    decode_bridge, decode_ws_route, encode_bridge, encode_ws_route, BridgeEvent, BridgeMessage,
    Codec, KeyOrder, WsRoute,
};
use serde_json::json;

fn envelopes(c: &mut Criterion) {
    let datum = json!({"s": 17, "q": 4294967296u64, "t": 1764230000123456u64});
    let room = WsRoute::Room {
        data: PushFrame::encode("room", Some(&datum)).unwrap(),
        room_namespace: "bench".into(),
        room_id: Some("r1".into()),
        sender_server: "n1".into(),
        exclude_socket_ids: vec![],
    };
    let bridge = BridgeMessage::Event(BridgeEvent {
        event: "rpc".into(),
        sender_server: Some("n1".into()),
        payload: Some(json!({"target": "n2", "data": datum})),
        target_server: vec!["n2".into()],
        callback_id: Some("n1-mwyijang-ip49-1".into()),
        key_order: KeyOrder::Emit,
    });
    let mut g = c.benchmark_group("envelope");
    for codec in [Codec::MsgPack, Codec::Json] {
        let name = format!("{codec:?}");
        let room_bytes = encode_ws_route(&room, None, codec).unwrap();
        let bridge_bytes = encode_bridge(&bridge, None, codec).unwrap();
        g.bench_with_input(
            BenchmarkId::new("encode_room", &name),
            &codec,
            |b, &codec| b.iter(|| encode_ws_route(&room, None, codec).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("decode_room", &name),
            &codec,
            |b, &codec| b.iter(|| decode_ws_route(ChannelKind::Room, &room_bytes, codec).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("encode_bridge", &name),
            &codec,
            |b, &codec| b.iter(|| encode_bridge(&bridge, None, codec).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("decode_bridge", &name),
            &codec,
            |b, &codec| b.iter(|| decode_bridge(&bridge_bytes, codec).unwrap()),
        );
    }
    let frame = r#"{"event":"room","payload":{"ns":"bench","room":"r1","data":{"s":17,"q":4294967296,"t":1764230000123456}},"callbackId":"17"}"#;
    g.bench_function("decode_client_frame", |b| {
        b.iter(|| decode_client_frame(frame, "").unwrap())
    });
    g.bench_function("encode_push_frame", |b| {
        b.iter(|| PushFrame::encode("room", Some(&datum)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, envelopes);
criterion_main!(benches);
