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
use support::Server;

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
    let (freeze, kill) = (nodes[1].pid().to_string(), nodes[0].pid().to_string());
    let args = [
        "presence",
        "--users",
        "1000",
        "--wave",
        "250",
        "--queries",
        "50",
        "--query-timeout-ms",
        "500",
        "--member-timeout-ms",
        "1000",
        "--freeze-pid",
        &freeze,
        "--kill-node-pid",
        &kill,
    ];
    let (out, j) = support::loadgen(&[&nodes[0], &nodes[1], &nodes[2]], &args).await;
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
