//! Every bus envelope decoder in the MsgPack codec (see envelope_common.rs).
#![no_main]
use crosswire_protocol::envelope::Codec;
use libfuzzer_sys::fuzz_target;

#[path = "envelope_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::check(data, Codec::MsgPack));
