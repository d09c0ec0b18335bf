//! Shared by the envelope targets: every bus envelope decoder in one codec;
//! what decodes must re-encode and decode to the same message.
use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_ws_route, Codec,
};

pub fn check(data: &[u8], codec: Codec) {
    if let Ok(env) = decode_bridge(data, codec) {
        if let Ok(bytes) = encode_bridge(&env.message, env.message_id.as_deref(), codec) {
            let again = decode_bridge(&bytes, codec).expect("re-encoded bridge message decodes");
            assert_eq!(again.message, env.message);
        }
    }
    for kind in [ChannelKind::Broadcast, ChannelKind::PrivateSocket, ChannelKind::Room] {
        if let Ok(env) = decode_ws_route(kind, data, codec) {
            if let Ok(bytes) = encode_ws_route(&env.message, env.message_id.as_deref(), codec) {
                let again = decode_ws_route(kind, &bytes, codec).expect("re-encoded route decodes");
                assert_eq!(again.message, env.message);
            }
        }
    }
    let _ = decode_value(data, codec);
}
