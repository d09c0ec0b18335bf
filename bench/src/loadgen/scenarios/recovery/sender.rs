//! The stream of `recovery`: one connection (not opted in, in no room)
//! sending `room` events at the rate, to the rooms in turn. Message `j` goes
//! to room `j mod R` with datum `s` = the room, `q` = its number in that
//! room (from 1) and `t` = the send time.

use super::{room_name, Ctx};
use crate::loadgen::client::open;
use crate::loadgen::scenarios::{alive, readable, NS};
use crate::loadgen::sys::now_us;
use crate::loadgen::wire::{encode_event, Datum};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Socket id of the sender.
pub(crate) const SENDER_ID: &str = "rsend";

/// Connects, reports to `ready`, waits for the start (sent on `start`),
/// sends `total` messages at `rate` per second and says so on `done`. It
/// keeps its connection open until the scenario stops: a reset could make
/// the server discard the last messages before it read them.
pub(crate) async fn sender_task(
    ctx: Arc<Ctx>,
    total: u64,
    rate: f64,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut start: watch::Receiver<Option<Instant>>,
    done: oneshot::Sender<()>,
) {
    let sh = &*ctx.sh;
    let mut c = match open(&ctx.target, ctx.sender_node, SENDER_ID, 4096).await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let rooms = ctx.rooms as u64;
    let never = Instant::now() + Duration::from_secs(86_400);
    let mut begin: Option<Instant> = None;
    let mut j = 0u64;
    while j < total {
        let next = begin.map_or(never, |b| {
            b + Duration::from_secs_f64(j as f64 / rate.max(1e-9))
        });
        tokio::select! {
            biased;
            _ = sh.stop.cancelled() => return,
            ch = start.changed(), if begin.is_none() => {
                if ch.is_err() {
                    return;
                }
                begin = *start.borrow_and_update();
            }
            _ = tokio::time::sleep_until(next), if begin.is_some() => {
                // Everything due by now, in one write.
                let due = begin.map_or(0, |b| {
                    (b.elapsed().as_secs_f64() * rate).floor() as u64 + 1
                });
                let until = total.min(due.max(j + 1));
                let mut out = c.outbox();
                while j < until {
                    let room = (j % rooms) as usize;
                    let d = Datum { s: room as u64, q: j / rooms + 1, t: now_us() };
                    out.text_with(|b| {
                        encode_event(ctx.target.proto, b, "room", None, |b| {
                            let _ = std::io::Write::write_fmt(
                                b,
                                format_args!(r#"{{"ns":"{NS}","room":"{}","data":"#, room_name(room)),
                            );
                            d.write(b);
                            b.push(b'}');
                        })
                    });
                    ctx.sent[room].fetch_add(1, Relaxed);
                    j += 1;
                }
            }
            r = c.fill() => {
                if !alive(sh, SENDER_ID, r) {
                    return;
                }
                // Only pings (answered by parse) and nothing else arrive here.
                let r = c.parse(|_, _| {});
                if !alive(sh, SENDER_ID, r) {
                    return;
                }
            }
        }
        if c.has_output() {
            let r = c.flush().await;
            if !alive(sh, SENDER_ID, r) {
                return;
            }
        }
    }
    let _ = done.send(());
    while readable(&mut c, sh, SENDER_ID).await {
        let r = c.parse(|_, _| {});
        if !alive(sh, SENDER_ID, r) {
            return;
        }
        if c.has_output() {
            let r = c.flush().await;
            if !alive(sh, SENDER_ID, r) {
                return;
            }
        }
    }
}
