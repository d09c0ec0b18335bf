//! `loadgen recovery` against the real bench server with `--history`: clients
//! that drop (a TCP reset) during a room stream and come back get every
//! message once and in order; with a history too small for their absence the
//! server says the recovery was incomplete, and only those rooms miss
//! anything. The same with the history in Redis: `recovery_redis.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::process::Output;
use support::Server;

/// Runs `loadgen recovery` with `args` against `server`.
async fn recovery(server: &Server, args: &[&str]) -> (Output, Value) {
    let args: Vec<&str> = std::iter::once("recovery")
        .chain(args.iter().copied())
        .collect();
    support::loadgen(&[server], &args).await
}

/// 50 clients in 5 rooms (2 each), 200 msgs/s for 5 s; 30 % of them drop
/// 1 s in, for 2 s.
const RUN: &[&str] = &[
    "-c",
    "50",
    "-r",
    "5",
    "--rooms-per-client",
    "2",
    "--rate",
    "200",
    "--duration",
    "5",
    "--drop-share",
    "0.3",
    "--drop-at",
    "1",
    "--down",
    "2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_drop_get_every_message_they_missed_once_and_in_order() {
    let server = Server::start(&["--history", "bench"]).await;
    let (out, j) = recovery(&server, RUN).await;
    assert!(out.status.success(), "{j:#}");
    assert_eq!(j["dropped"], 15, "{j:#}");
    assert!(j["expected"].as_u64().unwrap() > 0, "{j:#}");
    assert_eq!(j["received"], j["expected"], "{j:#}");
    for key in ["missed", "duplicates", "out_of_order", "unrecovered"] {
        assert_eq!(j[key], 0, "{key}: {j:#}");
    }
    // Every room of every dropped client recovered completely, and what was
    // sent again is what the node announced.
    assert_eq!(j["recoveries"]["complete"], 30, "{j:#}");
    let recovered = j["recovered"].as_u64().unwrap();
    assert!(recovered > 0, "{j:#}");
    assert_eq!(j["recoveries"]["announced"], recovered, "{j:#}");
    assert_eq!(j["recovered_latency"]["samples"], recovered, "{j:#}");
    // Sent again after about 2 s away: older than any live message.
    let lat = &j["recovered_latency"];
    assert!(lat["p99_ms"].as_f64().unwrap() >= lat["p50_ms"].as_f64().unwrap());
    assert!(lat["max_ms"].as_f64().unwrap() >= 1000.0, "{j:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_seconds_away_from_a_1000_msgs_stream_recovers_every_message_once_in_order() {
    // About 5,000 messages to send again per returning client: five times
    // a socket's outbound queue, so they must go at the pace it reads.
    let server = Server::start(&["--history", "bench", "--history-max-messages", "10000"]).await;
    let args = [
        "-c",
        "50",
        "-r",
        "1",
        "--rooms-per-client",
        "1",
        "--rate",
        "1000",
        "--duration",
        "12",
        "--drop-share",
        "0.3",
        "--drop-at",
        "2",
        "--down",
        "5",
    ];
    let (out, j) = recovery(&server, &args).await;
    assert!(out.status.success(), "{j:#}");
    assert_eq!(j["dropped"], 15, "{j:#}");
    assert_eq!(j["received"], j["expected"], "{j:#}");
    for key in ["missed", "duplicates", "out_of_order", "unrecovered"] {
        assert_eq!(j[key], 0, "{key}: {j:#}");
    }
    assert_eq!(j["recoveries"]["complete"], 15, "{j:#}");
    let recovered = j["recovered"].as_u64().unwrap();
    assert!(recovered >= 15 * 4_500, "{j:#}");
    assert_eq!(j["recoveries"]["announced"], recovered, "{j:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_a_tiny_history_recovery_is_reported_incomplete_and_only_those_rooms_miss() {
    let server = Server::start(&["--history", "bench", "--history-max-messages", "5"]).await;
    let (out, j) = recovery(&server, RUN).await;
    // Away for 2 s at 40 msgs/s per room: far more than 5 messages behind.
    let unrecovered = j["unrecovered"].as_u64().unwrap();
    assert!(unrecovered > 0, "{j:#}");
    assert_eq!(j["recoveries"]["too_old"], unrecovered, "{j:#}");
    assert!(j["missed"].as_u64().unwrap() > 0, "{j:#}");
    assert_eq!(j["missed"], j["missed_unrecovered"], "{j:#}");
    assert_eq!(j["duplicates"], 0, "{j:#}");
    assert_eq!(j["out_of_order"], 0, "{j:#}");
    // Nothing was sent again: an incomplete recovery replays nothing.
    assert_eq!(j["recovered"], 0, "{j:#}");
    // A loss the server owned up to is not a failure of the run.
    assert!(out.status.success(), "{j:#}");
}
