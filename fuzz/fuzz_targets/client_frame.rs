//! Client frames (text or UTF-8 binary) as a node reads them, and frames from
//! a node as a client reads them.
#![no_main]
use crosswire_protocol::client::{decode_client_frame, decode_server_frame, Inbound};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Inbound::Event(ev)) = decode_client_frame(text, "") {
        assert!(!ev.event.is_empty());
        if let Some(id) = &ev.callback_id {
            assert!(crosswire_protocol::client::is_valid_callback_id(id));
        }
    }
    let _ = decode_client_frame(text, "ping");
    let _ = decode_server_frame(text, "");
});
