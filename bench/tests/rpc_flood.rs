//! A client floods `rpc` calls to a node that does not exist, over real
//! WebSockets, against the real bench server, in rounds.
//!
//! `pending_calls_stay_bounded_and_memory_returns` checks that the node
//! never waits on more calls than `max_pending_cross_server_calls`, counts
//! the ones it refuses, and that its memory does not grow from round to
//! round. `flood_rss_figures` (ignored; run it with `--ignored --nocapture`)
//! prints the figures of BENCHMARKS.md with the server's defaults; set
//! `BENCH_SERVER` to flood another build of `bench-server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
mod support;

use crosswire_test_support::eventually_async;
use std::time::{Duration, Instant};
use support::Server;
use tokio_tungstenite::tungstenite::Message;

/// Waits until the node waits on no call (the flood's calls timed out).
async fn drained(server: &Server) {
    eventually_async(Duration::from_secs(60), "pending calls drained", || async {
        server.metric("crosswire_pending_cross_server_calls{").await <= 0.0
    })
    .await;
}

/// One round: `clients` connections each send `calls` rpc frames to node
/// `ghost` as fast as the server takes them. Returns the most pending calls
/// seen in `/metrics` meanwhile.
async fn flood(server: &Server, round: usize, clients: usize, calls: usize) -> f64 {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = format!("ws://{}/flood?id=r{round}c{c}", server.addr);
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for i in 0..calls {
                let frame = format!(
                    r#"{{"event":"rpc","payload":{{"target":"ghost","data":{i}}},"callbackId":"c{i}"}}"#
                );
                ws.feed(Message::text(frame)).await.unwrap();
            }
            ws.flush().await.unwrap();
            ws
        }));
    }
    let mut most = 0f64;
    let mut open = Vec::new();
    for t in tasks {
        while !t.is_finished() {
            most = most.max(server.metric("crosswire_pending_cross_server_calls{").await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        open.push(t.await.unwrap());
    }
    most = most.max(server.metric("crosswire_pending_cross_server_calls{").await);
    drained(server).await;
    for mut ws in open {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    }
    most
}

const BOUND: usize = 500;
/// 16 sockets × 64 handlers each (the per-socket default) could hold 1024
/// calls: more than `BOUND`, so the node bound is what refuses.
const CLIENTS: usize = 16;
const CALLS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_calls_stay_bounded_and_memory_returns() {
    let server = Server::start_program(
        env!("CARGO_BIN_EXE_bench-server"),
        &[
            "--max-pending-calls",
            &BOUND.to_string(),
            "--call-timeout-ms",
            "300",
        ],
        &[],
    )
    .await;
    let mut rss = Vec::new();
    for round in 1..=3 {
        let most = flood(&server, round, CLIENTS, CALLS).await;
        assert!(most > 0.0, "round {round}: no call was pending");
        assert!(
            most <= BOUND as f64,
            "round {round}: {most} pending calls, over the bound {BOUND}"
        );
        rss.push(server.rss_kib());
    }
    let refused = server
        .metric("crosswire_cross_server_calls_refused_total{")
        .await;
    assert!(refused > 0.0, "the bound was never reached");
    let frames = server.metric("crosswire_frames_received_total{").await;
    assert_eq!(frames, (3 * CLIENTS * CALLS) as f64, "every frame was read");
    println!("RSS after each round (KiB): {rss:?}; refused {refused}");
    let (first, last) = (rss[0] as f64, rss[2] as f64);
    assert!(
        last <= first * 1.10,
        "RSS grew from {first} KiB after round 1 to {last} KiB after round 3"
    );
}

/// The figures of BENCHMARKS.md: 200 000 calls per round (200 clients ×
/// 1000) with the server's defaults, RSS at start and after each round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn flood_rss_figures() {
    let program = std::env::var("BENCH_SERVER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bench-server").to_owned());
    let server = Server::start_program(&program, &[], &[]).await;
    println!("start: RSS {} KiB", server.rss_kib());
    for round in 1..=4 {
        let started = Instant::now();
        let most = flood(&server, round, 200, 1_000).await;
        let drained = server.rss_kib();
        let took = started.elapsed().as_secs_f64();
        // jemalloc purges pages unused for 10 s.
        tokio::time::sleep(Duration::from_secs(12)).await;
        println!(
            "round {round}: most pending {most}, RSS {drained} KiB after drain, {} KiB 12 s later, {took:.1} s",
            server.rss_kib(),
        );
    }
}
