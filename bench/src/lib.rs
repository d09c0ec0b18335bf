//! Bench tooling of crosswire: the load generator library behind the
//! `loadgen` binary (see `docs/benchmarks.md` and `bench/run.sh`).

pub mod loadgen;
