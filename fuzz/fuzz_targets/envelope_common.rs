//! Shared by the envelope targets: every bus envelope decoder in one codec;
//! what decodes must re-encode, and the re-encoding must be a fixed point
//! (decoding and encoding it again gives the same bytes). Numbers follow
//! JavaScript, which has one number type: `1.7e8` and `170000000` are the
//! same value, so the encoder writes integral numbers as integers and a
//! decoded value may differ from the input in its number representation only.
use crosswire_protocol::channels::ChannelKind;
use crosswire_protocol::envelope::{
    decode_bridge, decode_value, decode_ws_route, encode_bridge, encode_ws_route, Codec,
};

pub fn check(data: &[u8], codec: Codec) {
    if let Ok(env) = decode_bridge(data, codec) {
        if let Ok(bytes) = encode_bridge(&env.message, env.message_id.as_deref(), codec) {
            let again = decode_bridge(&bytes, codec).expect("re-encoded bridge message decodes");
            let twice = encode_bridge(&again.message, again.message_id.as_deref(), codec)
                .expect("a decoded re-encoding encodes");
            assert_eq!(twice, bytes, "bridge encoding is not a fixed point");
        }
    }
    for kind in [
        ChannelKind::Broadcast,
        ChannelKind::PrivateSocket,
        ChannelKind::Room,
    ] {
        if let Ok(env) = decode_ws_route(kind, data, codec) {
            if let Ok(bytes) = encode_ws_route(&env.message, env.message_id.as_deref(), codec) {
                let again = decode_ws_route(kind, &bytes, codec).expect("re-encoded route decodes");
                let twice = encode_ws_route(&again.message, again.message_id.as_deref(), codec)
                    .expect("a decoded re-encoding encodes");
                assert_eq!(twice, bytes, "route encoding is not a fixed point");
            }
        }
    }
    let _ = decode_value(data, codec);
}
