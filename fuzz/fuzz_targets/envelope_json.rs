//! Every bus envelope decoder in the Json codec; what decodes must re-encode
//! and decode to the same message.
#![no_main]
use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_ws_route, Codec,
};
use libfuzzer_sys::fuzz_target;

const CODEC: Codec = Codec::Json;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = decode_bridge(data, CODEC) {
        if let Ok(bytes) = encode_bridge(&env.message, env.message_id.as_deref(), CODEC) {
            let again = decode_bridge(&bytes, CODEC).expect("re-encoded bridge message decodes");
            assert_eq!(again.message, env.message);
        }
    }
    for kind in [ChannelKind::Broadcast, ChannelKind::PrivateSocket, ChannelKind::Room] {
        if let Ok(env) = decode_ws_route(kind, data, CODEC) {
            if let Ok(bytes) = encode_ws_route(&env.message, env.message_id.as_deref(), CODEC) {
                let again = decode_ws_route(kind, &bytes, CODEC).expect("re-encoded route decodes");
                assert_eq!(again.message, env.message);
            }
        }
    }
    let _ = decode_value(data, CODEC);
});
