//! kill -9 of one of three bench-server processes, on each bus: a client
//! on each node in room `bench/r`; n3's process is killed; its client's
//! connection just ends; until the member timeout a cluster query from a
//! survivor answers partially, naming n3 as missing (an answer, not a
//! hang); within the member timeout (plus the sweep) both survivors' `/health`
//! list only n1 and n2 and the query is complete again with two members; a
//! broadcast from one survivor reaches both surviving clients, and nothing
//! else arrives.
//!
//! One test per bus: a bus is the server process(es) the test starts and
//! the bench-server arguments that put a node on them ([`on_buses!`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::{
    closed, connect, eventually_async, http_body, http_get, next_json, nothing_more, send_text,
    within, NatsServer, RedisCluster, RedisServer, Ws,
};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Server, WAIT};

/// Member timeout of the nodes (they announce every 100 ms).
const MEMBER_TIMEOUT: Duration = Duration::from_millis(1000);

/// The bus of a run: its server process(es), kept until the end of the
/// test, and the bench-server arguments naming it.
struct Bus {
    _server: Box<dyn std::any::Any>,
    args: Vec<String>,
}

fn bus<S: 'static>(server: S, args: impl FnOnce(&S) -> Vec<String>) -> Bus {
    Bus {
        args: args(&server),
        _server: Box::new(server),
    }
}

/// One test per line: `test_name: expression giving a Bus;`.
macro_rules! on_buses {
    ($($name:ident: $bus:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            kill9_one_of_three($bus).await;
        }
    )*};
}

on_buses! {
    kill9_of_one_node_on_redis: bus(RedisServer::start(), |r| vec!["--redis".into(), r.url()]);
    kill9_of_one_node_on_nats: bus(NatsServer::start(), |n| vec!["--nats".into(), n.url()]);
    kill9_of_one_node_on_a_redis_cluster: bus(
        tokio::task::block_in_place(|| RedisCluster::start(3, 0)),
        |c| vec!["--redis-cluster".into(), c.seed_urls().join(",")],
    );
    kill9_of_one_node_on_redis_routing_by_host: bus(RedisServer::start(), |r| {
        vec!["--redis".into(), r.url(), "--routing".into(), "by-host".into()]
    });
    kill9_of_one_node_on_nats_routing_by_host: bus(NatsServer::start(), |n| {
        vec!["--nats".into(), n.url(), "--routing".into(), "by-host".into()]
    });
}

/// Sends `event` with `payload` and a fresh callback id; returns the reply's
/// payload, skipping the pushes that come before it.
async fn ask(ws: &mut Ws, event: &str, payload: Value) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "c{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let frame = json!({"event": event, "payload": payload, "callbackId": id});
    send_text(ws, &frame.to_string()).await;
    loop {
        let v = next_json(ws).await;
        if v["callbackId"] == id.as_str() {
            return v["payload"].clone();
        }
    }
}

/// A cluster query of room `bench/r` from `ws`'s node.
async fn query(ws: &mut Ws, timeout_ms: u64) -> Value {
    let q = json!({"ns": "bench", "room": "r", "timeout_ms": timeout_ms});
    ask(ws, "query", q).await
}

/// The `live_nodes` of a node's `/health`.
async fn live_nodes(server: &Server) -> Value {
    let response = within(WAIT, http_get(server.metrics, "/health")).await;
    let health: Value = serde_json::from_str(http_body(&response)).unwrap();
    health["live_nodes"].clone()
}

async fn kill9_one_of_three(bus: Bus) {
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let mut args = vec![
            "--name",
            name,
            "--nodes",
            "3",
            "--membership-ms",
            "100,1000",
        ];
        args.extend(bus.args.iter().map(String::as_str));
        nodes.push(Server::start(&args).await);
    }
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut ws = connect(node.addr, &format!("?id=u{}", i + 1)).await;
        let joined = ask(&mut ws, "join", json!({"ns": "bench", "room": "r"})).await;
        assert_eq!(joined, json!({"ok": true}));
        clients.push(ws);
    }
    let [u1, u2, u3] = &mut clients[..] else {
        unreachable!()
    };
    // Every node knows the three, and the query finds the three members.
    let deadline = Instant::now() + WAIT;
    loop {
        let q = query(u1, 500).await;
        if q == json!({"count": 3, "partial": false, "missing": []}) {
            break;
        }
        assert!(Instant::now() < deadline, "three members never found: {q}");
    }
    for node in &nodes {
        assert_eq!(live_nodes(node).await, json!(["n1", "n2", "n3"]));
    }

    let pid = i32::try_from(nodes[2].pid()).ok().and_then(Pid::from_raw);
    kill_process(pid.unwrap(), Signal::KILL).unwrap();
    let killed = Instant::now();
    // The connection just ends: no close frame.
    assert_eq!(closed(u3).await, None);
    // Until its member timeout n3 is still expected: the query answers at
    // its own timeout, partially.
    let q = query(u1, 300).await;
    assert_eq!(q, json!({"count": 2, "partial": true, "missing": ["n3"]}));
    // Within the member timeout and the sweep, both survivors drop it.
    let limit = MEMBER_TIMEOUT + Duration::from_secs(1);
    for node in &nodes[..2] {
        eventually_async(
            limit.saturating_sub(killed.elapsed()),
            "the survivors drop n3 by the member timeout",
            || async { live_nodes(node).await == json!(["n1", "n2"]) },
        )
        .await;
    }
    // Not before its last announcement expired: no goodbye was said.
    let gone_after = killed.elapsed();
    assert!(
        gone_after + Duration::from_millis(200) >= MEMBER_TIMEOUT,
        "n3 dropped {gone_after:?} after the kill"
    );
    let q = query(u2, 500).await;
    assert_eq!(q, json!({"count": 2, "partial": false, "missing": []}));
    // A broadcast from a survivor reaches both surviving clients, once.
    send_text(u2, r#"{"event":"all","payload":{"data":"after"}}"#).await;
    for ws in [&mut *u1, &mut *u2] {
        assert_eq!(
            next_json(ws).await,
            json!({"event": "all", "payload": "after"})
        );
        nothing_more(ws).await;
    }
}
