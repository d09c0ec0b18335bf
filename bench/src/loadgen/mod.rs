//! `loadgen`: the load generator of `docs/benchmarks.md`.
//!
//! Connections are spread over a few generator threads (single-threaded
//! tokio runtimes, [`gen::Generator`]); each connection is one task that owns
//! its socket and a [`ws::WsConn`] with one read buffer, so a burst of frames
//! is one `read`. Every published datum carries sender, sequence and send
//! time ([`wire::Datum`]); receivers detect loss and duplicates per sender
//! with bit sets ([`gen::Seen`]) and record latency in per-thread histograms.

pub mod cli;
pub mod client;
pub mod gen;
pub mod hist;
pub mod report;
pub mod scenarios;
pub mod soak;
pub mod sys;
pub mod wire;
pub mod ws;
