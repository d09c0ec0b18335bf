//! The task of one connection in a rate run: it sends at the step's rate
//! (or, for a unicast window, whenever a reply frees a slot) and checks every
//! datum it receives.

use super::{RateCtx, StepCmd};
use crate::loadgen::client::control;
use crate::loadgen::gen::{Rng, Seen, Tally};
use crate::loadgen::scenarios::{alive, readable, FAN_ROOM, NS};
use crate::loadgen::sys::now_us;
use crate::loadgen::wire::{decode, encode_event, Datum, Incoming};
use crate::loadgen::ws::WsConn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a rate task sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sends {
    Nothing,
    Room,
    All,
    To,
    /// Per tick one message to the sender's own room (`RateCtx::room_of`,
    /// datum index 2j) and one to a random client (index 2j + 1).
    Pair,
}

/// Sender schedule within a step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) cmd: StepCmd,
    /// The next message's index.
    pub(super) j: u64,
    /// Messages of the step.
    pub(super) total: u64,
    offset: f64,
}

impl Plan {
    /// The schedule of `cmd` for a sender at `phase` (0..1) of the period.
    pub(super) fn new(cmd: StepCmd, phase: f64) -> Plan {
        let offset = phase / cmd.rate.max(1e-9);
        let dur = cmd.end.saturating_duration_since(cmd.start).as_secs_f64();
        let total = ((dur - offset) * cmd.rate).ceil().max(0.0) as u64;
        Plan {
            cmd,
            j: 0,
            total,
            offset,
        }
    }

    /// When message `j` is due.
    pub(super) fn at(&self, j: u64) -> Instant {
        self.cmd.start + Duration::from_secs_f64(self.offset + j as f64 / self.cmd.rate.max(1e-9))
    }
}

/// Runs one connection of a rate run until the scenario stops or the
/// connection ends.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rate_task(
    mut c: WsConn,
    ctx: Arc<RateCtx>,
    who: String,
    me: u64,
    phase: f64,
    sends: Sends,
    record: bool,
    mut cmd: watch::Receiver<Option<StepCmd>>,
) {
    let sh = &*ctx.sh;
    let proto = ctx.target.proto;
    let hb = ctx.target.heartbeat.clone();
    let nodes = ctx.target.urls.len();
    let my_node = me as usize % nodes;
    let mut seen = Seen::default();
    let mut tally = Tally::default();
    let mut rng = Rng::new(me.wrapping_add(7));
    let mut plan: Option<Plan> = None;
    let window = ctx.window > 0 && sends == Sends::To;
    let pad = ctx.pad;
    let never = Instant::now() + Duration::from_secs(86_400);
    loop {
        let next_at = match plan {
            Some(p) if !window => p.at(p.j).min(p.cmd.end),
            _ => never,
        };
        let end_at = plan.map(|p| p.cmd.end).unwrap_or(never);
        let mut to_send = 0u64;
        tokio::select! {
            biased;
            ok = readable(&mut c, sh, &who) => {
                if !ok {
                    break;
                }
                let now = now_us();
                let res = c.parse(|m, out| {
                    let inc = decode(proto, m, &hb);
                    if control(proto, &inc, out) || !record {
                        return;
                    }
                    match inc {
                        Incoming::Push { datum: Some(d), .. } => {
                            if let Some(s) = seen.on_datum(sh, &mut tally, d.s, d.q, d.t, now) {
                                if window {
                                    if let Some(p) = ctx.permits.get(s as usize) {
                                        p.add_permits(1);
                                    }
                                }
                            }
                        }
                        // Recovery's own events (positions on join).
                        Incoming::Push { event, .. } if event.starts_with(b"_cw_") => {}
                        Incoming::Push { .. } | Incoming::Other => tally.invalid(),
                        _ => {}
                    }
                });
                tally.flush(sh);
                if !alive(sh, &who, res) {
                    break;
                }
            }
            ch = cmd.changed() => {
                if ch.is_err() {
                    break;
                }
                let new = *cmd.borrow_and_update();
                plan = new
                    .filter(|_| sends != Sends::Nothing)
                    .map(|cmd| Plan::new(cmd, phase));
            }
            _ = tokio::time::sleep_until(end_at), if plan.is_some() && window => {
                plan = None;
            }
            p = ctx.permits[me as usize % ctx.permits.len().max(1)].acquire(),
                if window && plan.is_some() => {
                if let Ok(p) = p {
                    p.forget();
                    to_send = 1;
                }
            }
            _ = tokio::time::sleep_until(next_at), if plan.is_some() && !window => {
                let now = Instant::now();
                if let Some(p) = plan.as_mut() {
                    if now >= p.cmd.end {
                        plan = None;
                    } else {
                        let mut n = 0;
                        while p.j + n < p.total && p.at(p.j + n) <= now && n < 1000 {
                            n += 1;
                        }
                        to_send = n;
                    }
                }
            }
        }
        if to_send > 0 {
            if let Some(p) = plan.as_mut() {
                let t = now_us();
                let step = p.cmd.step;
                let mut out = c.outbox();
                for _ in 0..to_send {
                    let idx = if sends == Sends::Pair { 2 * p.j } else { p.j };
                    let d = Datum {
                        s: me,
                        q: (step << 32) | idx,
                        t,
                    };
                    p.j += 1;
                    match sends {
                        Sends::Room => out.text_with(|b| {
                            encode_event(proto, b, "room", None, |b| {
                                let _ = std::io::Write::write_fmt(
                                    b,
                                    format_args!(r#"{{"ns":"{NS}","room":"{FAN_ROOM}","data":"#),
                                );
                                d.write_padded(b, pad);
                                b.push(b'}');
                            })
                        }),
                        Sends::All => out.text_with(|b| {
                            encode_event(proto, b, "all", None, |b| {
                                b.extend_from_slice(br#"{"data":"#);
                                d.write_padded(b, pad);
                                b.push(b'}');
                            })
                        }),
                        Sends::To => {
                            let to =
                                pick_target(&mut rng, me as usize, my_node, nodes, ctx.clients);
                            out.text_with(|b| {
                                encode_event(proto, b, "to", None, |b| {
                                    let _ = std::io::Write::write_fmt(
                                        b,
                                        format_args!(r#"{{"to":"c{to}","data":"#),
                                    );
                                    d.write(b);
                                    b.push(b'}');
                                })
                            })
                        }
                        Sends::Pair => {
                            let room = ctx.room_of.get(me as usize).copied().unwrap_or(0);
                            out.text_with(|b| {
                                encode_event(proto, b, "room", None, |b| {
                                    let _ = std::io::Write::write_fmt(
                                        b,
                                        format_args!(r#"{{"ns":"{NS}","room":"t{room}","data":"#),
                                    );
                                    d.write(b);
                                    b.push(b'}');
                                })
                            });
                            let to =
                                pick_target(&mut rng, me as usize, my_node, nodes, ctx.clients);
                            let d = Datum { q: d.q + 1, ..d };
                            out.text_with(|b| {
                                encode_event(proto, b, "to", None, |b| {
                                    let _ = std::io::Write::write_fmt(
                                        b,
                                        format_args!(r#"{{"to":"c{to}","data":"#),
                                    );
                                    d.write(b);
                                    b.push(b'}');
                                })
                            })
                        }
                        Sends::Nothing => {}
                    }
                }
                sh.sent.fetch_add(to_send, Relaxed);
                if !window && p.j >= p.total {
                    plan = None;
                }
            }
        }
        if c.has_output() && !alive(sh, &who, c.flush().await) {
            break;
        }
    }
}

/// A random client other than `me`, on another node when there are several.
fn pick_target(rng: &mut Rng, me: usize, my_node: usize, nodes: usize, clients: usize) -> usize {
    for _ in 0..16 {
        let j = rng.below(clients as u64) as usize;
        if j != me && (nodes == 1 || j % nodes != my_node) {
            return j;
        }
    }
    (me + 1) % clients.max(1)
}
