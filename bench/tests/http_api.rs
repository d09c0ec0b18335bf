//! Publishing through the HTTP API on a real two-node cluster: two
//! bench-server processes on one redis-server, the API served by n1, room
//! messages POSTed to it by `loadgen fanout --http-api` reach the
//! subscribers of both nodes, none lost or doubled; a flood of bad requests
//! is answered with error codes, counted, and leaves the node serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_cli::ApiClient;
use crosswire_test_support::net::free_port;
use crosswire_test_support::wait::{eventually_async, WAIT};
use crosswire_test_support::RedisServer;
use serde_json::json;
use support::Server;

const TOKEN: &str = "bench-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sends_reach_both_nodes_without_loss() {
    let redis = RedisServer::start();
    let url = redis.url();
    let api = format!("127.0.0.1:{}", free_port());
    let node = |name: &'static str| {
        let mut args = vec!["--name", name, "--redis", &url, "--nodes", "2"];
        args.extend(["--membership-ms", "200,1000"]);
        args
    };
    let mut with_api = node("n1");
    with_api.extend(["--http-api", &api, "--http-token", TOKEN]);
    let n1 = Server::start(&with_api).await;
    let n2 = Server::start(&node("n2")).await;
    let mut client = ApiClient::new(api.clone(), TOKEN).timeout(WAIT);
    // Both nodes are members before the run.
    eventually_async(WAIT, "both nodes live in n1's view", || {
        let mut client = ApiClient::new(api.clone(), TOKEN).timeout(WAIT);
        async move {
            let nodes = client.get("/api/v1/nodes").await.unwrap().body;
            nodes["nodes"] == json!(["n1", "n2"])
        }
    })
    .await;

    let args = [
        "fanout",
        "-n",
        "40",
        "-p",
        "4",
        "--rate",
        "400",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--p99-ms",
        "1000",
        "--http-api",
        &api,
        "--http-token",
        TOKEN,
    ];
    let (out, j) = support::loadgen(&[&n1, &n2], &args).await;
    assert!(out.status.success(), "{j:#}");
    let r = &j["result"];
    assert_eq!(j["params"]["via"], "http", "{j:#}");
    assert_eq!(r["sent"], 800, "{j:#}");
    assert_eq!(r["received"], 800 * 40, "{j:#}");
    assert_eq!(
        (r["loss"].as_u64(), r["dups"].as_u64()),
        (Some(0), Some(0)),
        "{j:#}"
    );

    // A flood of bad requests: each answered with its code and counted.
    let mut wrong = ApiClient::new(api.clone(), "not-the-token").timeout(WAIT);
    for _ in 0..500 {
        let r = wrong
            .post("/api/v1/broadcast", &json!({"event": "x"}))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("unauthorized"));
        let r = client
            .post("/api/v1/broadcast", &json!({"evnt": "x"}))
            .await
            .unwrap();
        assert_eq!(r.error_code(), Some("invalid_request"));
    }
    assert_eq!(
        n1.metric(r#"crosswire_http_api_requests_total{node="n1",code="unauthorized"}"#)
            .await,
        500.0
    );
    assert_eq!(
        n1.metric(r#"crosswire_http_api_requests_total{node="n1",code="invalid_request"}"#)
            .await,
        500.0
    );
    // Still serving: a call over the API is answered by the other node
    // (bench-server's cross-server `rpc` echoes its `data`).
    let r = client
        .post(
            "/api/v1/call",
            &json!({"event": "rpc", "payload": {"data": 42}, "servers": ["n2"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        r.body,
        json!({"completed": true, "replies": [{"server": "n2", "payload": 42}], "missing": 0})
    );
    let r = client.get("/api/v1/health").await.unwrap();
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("ok")),
        "{:?}",
        r.body
    );
}
