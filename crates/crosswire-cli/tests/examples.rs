//! The HTTP API examples of `docs/examples/http-api/` (`send.sh` with curl,
//! `send.py` with Python's standard library) against a real node: every
//! message they send reaches the WebSocket clients it is meant for, the call
//! is answered, and both end with status 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestNode;
use crosswire::{CrossReply, CrossServerMessage};
use crosswire_test_support::{bounded, next_json, nothing_more, Ws};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;

const TOKEN: &str = "examples-test-token";

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples/http-api")
        .join(name)
}

/// Asserts the next frame of `ws` is `event` with the payload's `from`.
async fn expect_event(ws: &mut Ws, event: &str, from: &str) {
    let frame: Value = next_json(ws).await;
    assert_eq!(frame["event"], event, "{frame}");
    assert_eq!(frame["payload"]["from"], from, "{frame}");
}

#[track_caller]
fn assert_ok(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_and_python_examples_reach_their_sockets() {
    let t = TestNode::start(TOKEN).await;
    let (node, api) = (t.node.clone(), t.api);
    let (calls_tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
    node.on_cross_server(
        "status-check",
        move |msg: CrossServerMessage, reply: Option<CrossReply>| {
            let _ = calls_tx.send(msg.payload.clone());
            async move {
                if let Some(reply) = reply {
                    let _ = reply.send(&json!({ "healthy": true }));
                }
            }
        },
    )
    .unwrap();
    // Two members of the room, two sockets bound to the target ids, one
    // bystander.
    let mut member1 = t.client("m1").await;
    let mut member2 = t.client("m2").await;
    let mut target1 = t.client("t1").await;
    let mut target2 = t.client("t2").await;
    let mut bystander = t.client("x").await;
    node.join_room("ops", "night shift", "m1").unwrap();
    node.join_room("ops", "night shift", "m2").unwrap();

    // (program, script, its flags, CROSSWIRE_ROOM, the payloads' `from`,
    // how the reply to the call shows): the room comes from a flag, which
    // wins over the environment, for bash, and from the environment for
    // Python.
    let runs = [
        (
            "bash",
            example("send.sh"),
            &["--room", "night shift"][..],
            "elsewhere",
            "curl",
            r#""replies":[{"server":"n1","payload":{"healthy":true}}]"#,
        ),
        (
            "python3",
            example("send.py"),
            &[][..],
            "night shift",
            "python",
            "n1: {\"healthy\": true}\ncompleted\n",
        ),
    ];
    for (program, script, flags, room_env, from, reply) in runs {
        let o = bounded(
            tokio::process::Command::new(program)
                .arg(&script)
                .args(flags)
                // No bytecode cache left in the repository.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("CROSSWIRE_API", api.to_string())
                .env("CROSSWIRE_TOKEN", TOKEN)
                .env("CROSSWIRE_NAMESPACE", "ops")
                .env("CROSSWIRE_ROOM", room_env)
                .env("CROSSWIRE_IDS", "t1,t2,nowhere")
                .env("CROSSWIRE_CALL_EVENT", "status-check")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap();
        assert_ok(&o, &format!("{program} {}", script.display()));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("invalid_request"), "the error answer: {out}");
        assert!(out.contains(reply), "the reply to the call: {out}");

        for ws in [&mut member1, &mut member2] {
            expect_event(ws, "announcement", from).await;
        }
        for ws in [&mut target1, &mut target2] {
            expect_event(ws, "notice", from).await;
        }
        for ws in [
            &mut member1,
            &mut member2,
            &mut target1,
            &mut target2,
            &mut bystander,
        ] {
            expect_event(ws, "news", from).await;
            nothing_more(ws).await;
        }
        let payload = crosswire_test_support::recv(&mut calls).await;
        assert_eq!(payload, json!({ "from": from }));
    }
}
