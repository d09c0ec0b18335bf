//! `loadgen traffic` against four bench-server processes on one
//! redis-server, in both routing modes: rooms of two placed at random, room
//! messages and unicasts. Nothing is lost either way; with routing by host
//! each node reads a fraction of what it reads in the compatible mode, where
//! every node receives every room and unicast message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::RedisServer;
use serde_json::Value;
use support::Server;

/// Runs the scenario on four fresh nodes routing in `mode`; returns the
/// report.
async fn traffic(redis: &RedisServer, mode: &str) -> Value {
    let url = redis.url();
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3", "n4"] {
        let args = [
            "--name",
            name,
            "--redis",
            &url,
            "--nodes",
            "4",
            "--routing",
            mode,
            "--membership-ms",
            "200,1000",
        ];
        nodes.push(Server::start(&args).await);
    }
    let args = [
        "traffic",
        "--clients",
        "200",
        "--room-size",
        "2",
        "--rate",
        "200",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--p99-ms",
        "1000",
    ];
    let refs: Vec<&Server> = nodes.iter().collect();
    let (out, j) = support::loadgen(&refs, &args).await;
    assert!(out.status.success(), "{mode}: {j:#}");
    let r = &j["result"];
    assert_eq!(r["loss"], 0, "{mode}: {j:#}");
    assert_eq!(r["dups"], 0, "{mode}: {j:#}");
    assert_eq!(r["per_node"].as_array().unwrap().len(), 4, "{j:#}");
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_host_reads_a_fraction_of_the_compatible_traffic() {
    let redis = RedisServer::start();
    let compat = traffic(&redis, "compatible").await;
    let host = traffic(&redis, "by-host").await;
    let per_pair = |j: &Value| {
        j["result"]["bus_messages_per_node_per_pair"]
            .as_f64()
            .unwrap()
    };
    // Compatible: every node reads every room message and every unicast
    // (two per pair, plus membership). By host: a room message reaches the
    // (at most two) nodes with members, a unicast one node: 3/4 per node
    // at most.
    assert!(per_pair(&compat) >= 1.9, "{compat:#}");
    assert!(per_pair(&host) <= 0.9, "{host:#}");
    for n in host["result"]["per_node"].as_array().unwrap() {
        assert!(n["bus_messages"].as_u64().unwrap() > 0, "{host:#}");
    }
}
