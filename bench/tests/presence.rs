//! `loadgen presence` against three bench-server processes on two
//! redis-servers (`--presence bench --one-session`): every user logs in
//! twice at the same moment on two nodes and ends with one session; every
//! node lists exactly the users that are there; cluster-wide queries answer
//! exactly, and partially (not a hang) while a node is frozen (SIGSTOP);
//! after kill -9 of a node, each of its members is announced as leaving
//! within the membership timeout plus one second, and no node lists them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::RedisServer;
use serde_json::Value;
use std::time::Duration;
use support::Server;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_logins_presence_queries_a_frozen_node_and_a_killed_one() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let urls = format!("{},{}", r1.url(), r2.url());
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let args = [
            "--name",
            name,
            "--redis",
            &urls,
            "--nodes",
            "3",
            "--presence",
            "bench",
            "--one-session",
            "--membership-ms",
            "200,1000",
        ];
        nodes.push(Server::start(&args).await);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    for n in &nodes {
        cmd.args(["--url", &format!("ws://{}", n.addr)]);
    }
    let (freeze, kill) = (nodes[1].pid().to_string(), nodes[0].pid().to_string());
    cmd.args([
        "--max-time",
        "120",
        "presence",
        "--users",
        "1000",
        "--wave",
        "250",
    ])
    .args([
        "--queries",
        "50",
        "--query-timeout-ms",
        "500",
        "--member-timeout-ms",
        "1000",
    ])
    .args(["--freeze-pid", &freeze, "--kill-node-pid", &kill])
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(150), cmd.output())
        .await
        .expect("loadgen ended in time")
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let j: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "no JSON line ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(out.status.success(), "{j:#}");
    for key in ["duplicate_sessions", "lost_sessions", "ghosts", "missing"] {
        assert_eq!(j[key], 0, "{key}: {j:#}");
    }
    assert_eq!(
        j["kicked"], 1000,
        "one of each user's two logins was closed with 4012: {j:#}"
    );
    assert_eq!(j["query_ms"]["wrong"], 0, "{j:#}");
    assert_eq!(j["frozen"]["partial"], 3, "{j:#}");
    assert!(j["frozen"]["max_ms"].as_f64().unwrap() < 1500.0, "{j:#}");
    let killed = &j["killed"];
    assert!(killed["members"].as_u64().unwrap() > 0, "{j:#}");
    assert_eq!(killed["announced"], killed["members"], "{j:#}");
    assert_eq!(killed["ghosts"], 0, "{j:#}");
    assert!(
        killed["leave_latency_ms"]["p99"].as_f64().unwrap() <= 2000.0,
        "{j:#}"
    );
}
