//! A publisher of a rate run that posts to a crosswire node's HTTP API
//! instead of sending on a WebSocket (`fanout --http-api`).

use super::sender::Plan;
use super::RateCtx;
use super::StepCmd;
use crate::loadgen::scenarios::{FAN_ROOM, NS};
use crate::loadgen::sys::now_us;
use crate::loadgen::wire::Datum;
use crosswire_cli::ApiClient;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Posts publisher `me`'s messages of each step to the API at `api`: a room
/// message (or a broadcast with `all`) whose payload is the datum, one
/// request at a time on one connection, each as soon as it is due (late
/// ones at once). Every message counts as sent before its request; a
/// request that fails or is refused is recorded as an error (its message
/// then shows as lost).
pub(crate) async fn http_task(
    ctx: Arc<RateCtx>,
    api: String,
    token: String,
    me: u64,
    phase: f64,
    all: bool,
    mut cmd: watch::Receiver<Option<StepCmd>>,
) {
    let sh = &*ctx.sh;
    let mut client = ApiClient::new(api.clone(), token).timeout(Duration::from_secs(10));
    let path = if all {
        "/api/v1/broadcast"
    } else {
        "/api/v1/rooms/send"
    };
    loop {
        tokio::select! {
            _ = sh.stop.cancelled() => return,
            ch = cmd.changed() => {
                if ch.is_err() {
                    return;
                }
            }
        }
        let Some(c) = *cmd.borrow_and_update() else {
            continue;
        };
        let mut plan = Plan::new(c, phase);
        while plan.j < plan.total {
            let at = plan.at(plan.j);
            if at >= plan.cmd.end {
                break;
            }
            tokio::select! {
                _ = sh.stop.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            let d = Datum {
                s: me,
                q: (plan.cmd.step << 32) | plan.j,
                t: now_us(),
            };
            plan.j += 1;
            let datum = json!({"s": d.s, "q": d.q, "t": d.t});
            let body = if all {
                json!({"event": "all", "payload": datum})
            } else {
                json!({"namespace": NS, "room": FAN_ROOM, "event": "room", "payload": datum})
            };
            sh.sent.fetch_add(1, Relaxed);
            match client.post(path, &body).await {
                Ok(r) if r.status == 200 => {}
                Ok(r) => sh.error(format!("http publisher {me}: {} {}", r.status, r.body)),
                Err(e) => sh.error(format!("http publisher {me} ({api}): {e}")),
            }
        }
    }
}
