//! `loadgen recovery` against the real bench server with `--history`: clients
//! that drop (a TCP reset) during a room stream and come back get every
//! message once and in order; with a history too small for their absence the
//! server says the recovery was incomplete, and only those rooms miss
//! anything. With the history in Redis (two bench-server processes on two
//! redis-servers): a node killed with -9 mid-stream, its clients recover
//! everything on the other node; a Redis server killed mid-stream, the rooms
//! whose history it held recover incompletely, and nothing else is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::RedisServer;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;
use support::Server;
use tokio::process::Command;

/// Runs `loadgen recovery` with `args` against `server`; returns its exit
/// status and its JSON line.
async fn recovery(server: &Server, args: &[&str]) -> (Output, Value) {
    let url = format!("ws://{}", server.addr);
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", &url, "--max-time", "120", "recovery"])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("loadgen ended in time")
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let line = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON line ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
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

/// Two bench-server processes (`n1`, `n2`) keeping the history of `bench`
/// on two Redis servers.
async fn redis_pair(r1: &RedisServer, r2: &RedisServer) -> (Server, Server) {
    let urls = format!("{},{}", r1.url(), r2.url());
    let mut servers = Vec::new();
    for name in ["n1", "n2"] {
        let args = ["--name", name, "--redis", &urls, "--history", "bench"];
        servers.push(Server::start(&args).await);
    }
    let n2 = servers.pop().unwrap();
    let n1 = servers.pop().unwrap();
    (n1, n2)
}

/// `loadgen recovery` over both nodes: 50 clients in 10 rooms (2 each),
/// 1,000 msgs/s for 10 s; 30 % drop 3 s in for 3 s and come back to the
/// other node; `extra` adds a fault.
async fn recovery_on(n1: &Server, n2: &Server, extra: &[&str]) -> (Output, Value) {
    let (u1, u2) = (format!("ws://{}", n1.addr), format!("ws://{}", n2.addr));
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", &u1, "--url", &u2, "--max-time", "120", "recovery"])
        .args([
            "-c",
            "50",
            "-r",
            "10",
            "--rooms-per-client",
            "2",
            "--rate",
            "1000",
        ])
        .args([
            "--duration",
            "10",
            "--drop-share",
            "0.3",
            "--drop-at",
            "3",
            "--down",
            "3",
        ])
        .arg("--move")
        .args(extra)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run)
        .await
        .expect("loadgen ended in time")
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON line ({e}): {stdout}"));
    (out, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_clients_of_a_node_killed_mid_stream_recover_everything_on_the_other() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let (n1, n2) = redis_pair(&r1, &r2).await;
    let pid = n1.pid().to_string();
    let (out, j) = recovery_on(
        &n1,
        &n2,
        &["--kill-node-at", "4.5", "--kill-node-pid", &pid],
    )
    .await;
    assert!(out.status.success(), "{j:#}");
    // n1's clients that were connected moved at once; the dropped ones came
    // back to n2 (or moved on from n1).
    assert!(j["moved"].as_u64().unwrap() > 0, "{j:#}");
    assert_eq!(j["received"], j["expected"], "{j:#}");
    for key in [
        "missed",
        "duplicates",
        "out_of_order",
        "unrecovered",
        "unpositioned",
    ] {
        assert_eq!(j[key], 0, "{key}: {j:#}");
    }
    let away = j["dropped"].as_u64().unwrap() + j["moved"].as_u64().unwrap();
    assert_eq!(
        j["recoveries"]["complete"].as_u64(),
        Some(2 * away),
        "{j:#}"
    );
    assert_eq!(j["recoveries"]["announced"], j["recovered"], "{j:#}");
}

/// Rooms of `bench` (of `r0..r{rooms}`) whose history `server` holds.
fn rooms_held(server: &RedisServer, rooms: usize) -> usize {
    (0..rooms)
        .filter(|k| {
            let key = format!("cw:h:{{5:bench:r{k}}}:m");
            let port = server
                .url()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port, "EXISTS", &key])
                .output()
                .expect("redis-cli runs");
            String::from_utf8_lossy(&out.stdout).trim() == "1"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_losing_a_history_s_redis_server_makes_only_its_rooms_recover_incompletely() {
    let mut r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let (n1, n2) = redis_pair(&r1, &r2).await;
    let pid = r1.pid().to_string();
    let (out, j) = recovery_on(
        &n1,
        &n2,
        &["--kill-redis-at", "4", "--kill-redis-pid", &pid],
    )
    .await;
    r1.kill();
    // A loss the server owned up to is not a failure of the run.
    assert!(out.status.success(), "{j:#}");
    for key in ["duplicates", "out_of_order"] {
        assert_eq!(j[key], 0, "{key}: {j:#}");
    }
    // Every message missed is in a room whose recovery said it was
    // incomplete: nothing passed over silently.
    assert_eq!(j["missed"], j["missed_unrecovered"], "{j:#}");
    let lost_rooms = 10 - rooms_held(&r2, 10);
    let r = &j["recoveries"];
    assert_eq!(
        r["complete"].as_u64().unwrap() + r["incomplete"].as_u64().unwrap(),
        2 * j["dropped"].as_u64().unwrap(),
        "{j:#}"
    );
    if lost_rooms > 0 {
        // Clients away over the kill, in the rooms it held, were told.
        assert!(j["unrecovered"].as_u64().unwrap() > 0, "{j:#}");
        // And live ones got every message, without a position meanwhile.
        assert!(j["unpositioned"].as_u64().unwrap() > 0, "{j:#}");
    } else {
        assert_eq!(j["unrecovered"], 0, "{j:#}");
    }
}
