//! nats-server killed and restarted mid-stream, measured: two bench-server
//! processes on one nats-server; a client of n1 streams numbered room
//! events (`bench/r`) at 1,000 msgs/s for 6 s; one member of the room on n1
//! (local delivery, the control) and one on n2 (across NATS) count what
//! arrives. About 1 s into the stream the nats-server is killed (SIGKILL),
//! and restarted on the same port about 1 s later.
//!
//! Core NATS delivers at most once: what is published while a subscriber is
//! disconnected is lost for it. The test prints what was lost (the numbers
//! and when they were sent), how long delivery took to resume, duplicates
//! and reordering, and the bus health of both nodes (`reconnects`,
//! `dropped`, `publish_failures`); it asserts what must hold: the control
//! member gets everything, nothing is duplicated or reordered, the loss is
//! one window around the outage, delivery resumes and both buses count
//! their reconnection. For the figures of BENCHMARKS.md, run it on a
//! release build:
//!
//! ```text
//! cargo test --release -p crosswire-bench --test nats_restart -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::{
    connect, eventually, http_body, http_get, next_json, send_text, within, NatsServer, Ws,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, WAIT};
use tokio_tungstenite::tungstenite::Message;

const RATE: u64 = 1_000;
const TOTAL: u64 = 6 * RATE;
const KILL_AT: Duration = Duration::from_secs(1);
const DOWN: Duration = Duration::from_secs(1);

/// Joins room `bench/r` and waits for the join's reply.
async fn join(ws: &mut Ws) {
    let frame =
        json!({"event": "join", "payload": {"ns": "bench", "room": "r"}, "callbackId": "j"});
    send_text(ws, &frame.to_string()).await;
    let reply = next_json(ws).await;
    assert_eq!(reply, json!({"payload": {"ok": true}, "callbackId": "j"}));
}

/// What one member received: (number, time of arrival), in order.
type Log = Arc<Mutex<Vec<(u64, Instant)>>>;

fn record(mut ws: Ws) -> (Log, tokio::task::JoinHandle<()>) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(q) = v["payload"]["q"].as_u64() {
                    sink.lock().unwrap().push((q, Instant::now()));
                }
            }
        }
    });
    (log, task)
}

/// The bus part of a node's `/health`.
async fn bus_health(server: &Server) -> Value {
    let response = within(WAIT, http_get(server.metrics, "/health")).await;
    let health: Value = serde_json::from_str(http_body(&response)).unwrap();
    health["bus"].clone()
}

/// Contiguous ranges of `numbers` (sorted).
fn ranges(numbers: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &q in numbers {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == q => *end = q,
            _ => out.push((q, q)),
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_killed_and_restarted_during_a_room_stream() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let mut nodes = Vec::new();
    for name in ["n1", "n2"] {
        let args = [
            "--name",
            name,
            "--nats",
            &url,
            "--membership-ms",
            "100,1000",
        ];
        nodes.push(Server::start(&args).await);
    }
    let mut local = connect(nodes[0].addr, "?id=local").await;
    let mut remote = connect(nodes[1].addr, "?id=remote").await;
    let mut sender = connect(nodes[0].addr, "?id=sender").await;
    join(&mut local).await;
    join(&mut remote).await;
    // The join's reply comes before n2 has subscribed to the room's channel
    // on NATS: probe until the member on n2 is reached across the bus (the
    // recorders below skip the probes still on their way).
    let mut reached = false;
    for _ in 0..50 {
        let probe =
            json!({"event": "room", "payload": {"ns": "bench", "room": "r", "data": "probe"}});
        send_text(&mut sender, &probe.to_string()).await;
        if let Ok(v) =
            tokio::time::timeout(Duration::from_millis(200), next_json(&mut remote)).await
        {
            assert_eq!(v, json!({"event": "room", "payload": "probe"}));
            reached = true;
            break;
        }
    }
    assert!(reached, "the member on n2 was never reached");
    let (local_log, local_task) = record(local);
    let (remote_log, remote_task) = record(remote);

    let start = Instant::now();
    let fault = tokio::task::spawn_blocking(move || {
        std::thread::sleep(KILL_AT);
        nats.kill();
        let killed = Instant::now();
        std::thread::sleep(DOWN);
        nats.restart();
        (nats, killed, Instant::now())
    });
    let mut sent_at = Vec::with_capacity(TOTAL as usize);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    for q in 0..TOTAL {
        tick.tick().await;
        let frame =
            json!({"event": "room", "payload": {"ns": "bench", "room": "r", "data": {"q": q}}});
        send_text(&mut sender, &frame.to_string()).await;
        sent_at.push(Instant::now());
    }
    let stream_s = start.elapsed().as_secs_f64();
    let (_nats, killed, restarted) = within(WAIT, fault).await.unwrap();
    // The control gets everything; the remote member at least the end.
    eventually(WAIT, "the control member got every message", || {
        local_log.lock().unwrap().len() as u64 >= TOTAL
    })
    .await;
    eventually(WAIT, "the last message crossed the bus", || {
        remote_log
            .lock()
            .unwrap()
            .iter()
            .any(|(q, _)| *q == TOTAL - 1)
    })
    .await;
    local_task.abort();
    remote_task.abort();
    let health = [bus_health(&nodes[0]).await, bus_health(&nodes[1]).await];

    let local = local_log.lock().unwrap().clone();
    let remote = remote_log.lock().unwrap().clone();
    let mut seen = vec![0u32; TOTAL as usize];
    let mut out_of_order = 0;
    let mut last = None;
    for &(q, _) in &remote {
        seen[q as usize] += 1;
        if last.is_some_and(|l| q <= l) {
            out_of_order += 1;
        }
        last = Some(q);
    }
    let lost: Vec<u64> = (0..TOTAL).filter(|q| seen[*q as usize] == 0).collect();
    let duplicated = seen.iter().filter(|n| **n > 1).count();
    // When the lost messages were sent, relative to the kill.
    let sent_rel = |q: u64| {
        let t = sent_at[q as usize];
        if t >= killed {
            ms(t.duration_since(killed))
        } else {
            -ms(killed.duration_since(t))
        }
    };
    // Delivery across the bus: the last arrival before the kill and the
    // first one after the restart.
    let resumed = remote
        .iter()
        .find(|(_, t)| *t >= restarted)
        .map(|(_, t)| *t);
    let max_gap = remote
        .windows(2)
        .map(|w| w[1].1.duration_since(w[0].1))
        .max()
        .unwrap_or_default();
    let report = json!({
        "sent": TOTAL,
        "stream_s": (stream_s * 100.0).round() / 100.0,
        "nats_down_ms": ms(restarted.duration_since(killed)),
        "control_received": local.len(),
        "remote_received": remote.len(),
        "lost": lost.len(),
        "lost_ranges": ranges(&lost),
        "lost_sent_ms_after_kill": lost.first().map(|q| (sent_rel(*q), sent_rel(*lost.last().unwrap()))),
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "resumed_ms_after_restart": resumed.map(|t| ms(t.duration_since(restarted))),
        "longest_silence_ms": ms(max_gap),
        "n1_bus": health[0],
        "n2_bus": health[1],
    });
    println!("{report:#}");

    assert_eq!(
        local.len() as u64,
        TOTAL,
        "the control lost nothing: {report:#}"
    );
    assert_eq!(duplicated, 0, "{report:#}");
    assert_eq!(out_of_order, 0, "{report:#}");
    assert!(ranges(&lost).len() <= 1, "one window of loss: {report:#}");
    assert!(resumed.is_some(), "delivery resumed: {report:#}");
    for h in &health {
        assert!(h["reconnects"].as_u64().unwrap() >= 1, "{report:#}");
        assert_eq!(h["healthy"], true, "{report:#}");
    }
}
