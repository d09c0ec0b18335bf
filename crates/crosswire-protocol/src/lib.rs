//! Wire formats of crosswire, byte-compatible with the original
//! `websocket-cross-server-adapter` (Node.js).
//!
//! This crate does no I/O. It holds:
//!
//! * [`client`] — the frames between a client and a node (`docs/protocol.md`
//!   §2–§4): event frames, callback replies, pushed events, heartbeats and
//!   callback-id validation;
//! * [`envelope`] — the messages between nodes on the bus (§6–§9), in both
//!   codecs of the original: JSON and MessagePack (its "compression");
//! * [`channels`] — the bus channel names and how a received channel is
//!   classified;
//! * [`ids`] — callback id generators in the original's formats;
//! * [`params`] — connection URL parameters: the client's encoding and the
//!   server's `parseWsRequestParams`;
//! * [`json`] — JSON written exactly as JavaScript's `JSON.stringify` does.
//!
//! Decoders return errors and never panic, whatever the input.
//!
//! JSON objects keep their keys in the order they were received (the crate
//! enables serde_json's `preserve_order` feature, so [`serde_json::Map`] is
//! insertion-ordered for every crate of the build): JavaScript objects keep
//! their keys in insertion order, and a payload relayed by a node, or
//! converted between JSON and MessagePack, must reach clients as its sender
//! wrote it.

pub mod channels;
pub mod client;
pub mod envelope;
mod error;
pub mod history;
pub mod ids;
pub mod json;
mod msgpack;
pub mod params;
pub mod presence;
pub mod signed;

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
