//! The Redis bus of crosswire.
//!
//! This crate will hold `RedisBus`: a [`crosswire`] bus over any number of
//! independent Redis nodes, wire-compatible with the original Node.js cluster.
//! It is not implemented yet; until it is, use the in-process bus of the
//! `crosswire` crate (a single node needs no bus at all).

pub use crosswire;
