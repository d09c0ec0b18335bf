//! Bench tooling of crosswire: the load generator library behind the
//! `loadgen` binary (see `bench/SCENARIOS.md` in the shared folder and
//! `bench/run.sh`).

pub mod loadgen;
