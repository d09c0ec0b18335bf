//! `loadgen recovery` with the history in Redis: two bench-server processes
//! on two redis-servers. A node killed with -9 mid-stream: its clients
//! recover everything on the other node. A Redis server killed mid-stream:
//! the rooms whose history it held recover incompletely, and nothing else is
//! lost. (A test binary of its own, so that these runs do not share the
//! machine with the single-node ones.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::RedisServer;
use serde_json::Value;
use std::process::Output;
use support::Server;

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
    let mut args = vec![
        "recovery",
        "-c",
        "50",
        "-r",
        "10",
        "--rooms-per-client",
        "2",
    ];
    args.extend(["--rate", "1000", "--duration", "10", "--drop-share", "0.3"]);
    args.extend(["--drop-at", "3", "--down", "3", "--move"]);
    args.extend(extra);
    support::loadgen(&[n1, n2], &args).await
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
