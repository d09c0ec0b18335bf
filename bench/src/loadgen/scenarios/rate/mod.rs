//! Open-loop rate runs: senders publish at a given rate for a step while
//! every receiver checks what arrives ([`sender`]); a run is one step or a
//! search for the highest passing rate ([`run`]), each step measured into a
//! [`StepResult`] ([`step`]) and the whole run reported ([`outcome`]). Used by
//! `fanout`, `unicast` and the steady fan-out of the soak scenarios.

use crate::loadgen::client::Target;
use crate::loadgen::gen::Shared;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub(crate) mod http_sender;
pub(crate) mod outcome;
pub(crate) mod run;
pub(crate) mod sender;
pub(crate) mod step;

pub(crate) use http_sender::http_task;
pub(crate) use outcome::rate_outcome;
pub(crate) use run::RateRun;
pub(crate) use sender::{rate_task, Sends};
pub(crate) use step::{StepResult, STEP_HEADER};

/// One step's command to the senders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCmd {
    step: u64,
    start: Instant,
    end: Instant,
    /// Messages per second per sender (rate mode).
    rate: f64,
}

/// What the connections of one rate run share.
#[derive(Debug)]
pub(crate) struct RateCtx {
    pub(crate) sh: Arc<Shared>,
    pub(crate) target: Target,
    /// Filler bytes in every published datum.
    pub(crate) pad: usize,
    /// Unicast: number of clients (targets are `c0..`).
    pub(crate) clients: usize,
    /// Unicast closed loop: one semaphore per sender (never empty).
    pub(crate) permits: Vec<Semaphore>,
    pub(crate) window: usize,
    /// `traffic`: the room number of each client (empty otherwise).
    pub(crate) room_of: Vec<usize>,
}
