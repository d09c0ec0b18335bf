//! The `crosswire` command line against a real node: its HTTP API on one
//! loopback port, its WebSocket endpoint on another, with real WebSocket
//! clients bound to socket ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestNode;
use crosswire::{CrossReply, CrossServerMessage};
use crosswire_test_support::{bounded, free_addr, next_text, nothing_more};
use serde_json::{json, Value};
use std::process::{Output, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "cli-test-token";

/// The test node, answering the cross-server event `ping` with
/// `{"pong": <payload>}`.
async fn test_node() -> TestNode {
    let t = TestNode::start(TOKEN).await;
    t.node
        .on_cross_server(
            "ping",
            |msg: CrossServerMessage, reply: Option<CrossReply>| async move {
                if let Some(reply) = reply {
                    let _ = reply.send(&json!({ "pong": msg.payload }));
                }
            },
        )
        .unwrap();
    t
}

trait RunCli {
    /// Runs `crosswire --api <api> --token <TOKEN> ARGS` against the node.
    async fn run(&self, args: &[&str]) -> Output;
}

impl RunCli for TestNode {
    async fn run(&self, args: &[&str]) -> Output {
        run_with(&self.api.to_string(), TOKEN, args).await
    }
}

fn cli(api: &str, token: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_crosswire"));
    cmd.env_remove("CROSSWIRE_API")
        .env_remove("CROSSWIRE_TOKEN")
        .args(["--api", api, "--token", token])
        .kill_on_drop(true);
    cmd
}

async fn run_with(api: &str, token: &str, args: &[&str]) -> Output {
    bounded(cli(api, token).args(args).output()).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing what the program wrote when it differs.
#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_a_room_ids_and_everyone() {
    let t = test_node().await;
    let mut a = t.client("a").await;
    let mut b = t.client("b").await;
    let mut c = t.client("c").await;
    t.node.join_room("chat", "lobby", "a").unwrap();
    t.node.join_room("chat", "lobby", "b").unwrap();

    let o = t
        .run(&[
            "publish",
            "say",
            r#"{"text":"hi","z":1,"a":2}"#,
            "--room",
            "chat/lobby",
            "--exclude",
            "b",
        ])
        .await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("room chat/lobby"), "{}", stdout(&o));
    // The payload keeps its key order.
    assert_eq!(
        next_text(&mut a).await,
        r#"{"event":"say","payload":{"text":"hi","z":1,"a":2}}"#
    );
    nothing_more(&mut b).await;
    nothing_more(&mut c).await;

    let o = t
        .run(&[
            "publish",
            "notice",
            r#""ready""#,
            "--to",
            "c",
            "--to",
            "ghost",
        ])
        .await;
    assert_exit(&o, 0);
    assert_eq!(
        next_text(&mut c).await,
        r#"{"event":"notice","payload":"ready"}"#
    );
    nothing_more(&mut a).await;

    let o = t.run(&["publish", "news"]).await;
    assert_exit(&o, 0);
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next_text(ws).await, r#"{"event":"news","payload":null}"#);
    }

    let o = t
        .run(&["--json", "publish", "local", "1", "--local-only"])
        .await;
    assert_exit(&o, 0);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(next_text(&mut a).await, r#"{"event":"local","payload":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_json_is_refused_before_any_request() {
    // Nothing listens there: a request would fail with "cannot connect".
    let nowhere = free_addr().to_string();
    let o = run_with(&nowhere, TOKEN, &["publish", "say", "hello"]).await;
    assert_exit(&o, 64);
    let err = stderr(&o);
    assert!(err.contains("must be JSON"), "{err}");
    assert!(err.contains(r#"'"hello"'"#), "the error shows how: {err}");
    assert!(!err.contains("cannot connect"), "{err}");

    let o = run_with(&nowhere, TOKEN, &["call", "ping", "{oops"]).await;
    assert_exit(&o, 64);
    let o = run_with(&nowhere, TOKEN, &["publish", "say", "1", "--room", "lobby"]).await;
    assert_exit(&o, 64);
    assert!(stderr(&o).contains("NAMESPACE/ROOM"), "{}", stderr(&o));
    // --to and --room exclude each other (a usage error of the parser).
    let o = run_with(
        &nowhere,
        TOKEN,
        &["publish", "say", "--to", "a", "--room", "c/l"],
    )
    .await;
    assert_exit(&o, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_prints_the_replies_and_says_whether_it_completed() {
    let t = test_node().await;
    let o = t.run(&["call", "ping", r#"{"n":1}"#]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains(r#"n1: {"pong":{"n":1}}"#), "{out}");
    assert!(out.contains("completed: 1 reply"), "{out}");

    let o = t.run(&["--json", "call", "ping", "--server", "n1"]).await;
    assert_exit(&o, 0);
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(answer["completed"], true);
    assert_eq!(answer["replies"][0]["server"], "n1");

    // Two replies expected from a cluster of one: not completed, exit 3.
    let o = t
        .run(&["call", "ping", "--expect", "2", "--call-timeout-ms", "200"])
        .await;
    assert_exit(&o, 3);
    assert!(
        stdout(&o).contains("not completed: 1 reply, 1 missing"),
        "{}",
        stdout(&o)
    );

    // A node that is not a member.
    let o = t.run(&["call", "ping", "--server", "n9"]).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with("error unknown_server: "),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_health_rooms_room_locate_and_stats() {
    let t = test_node().await;
    let _a = t.client("a").await;
    let _b = t.client("b").await;
    t.node.join_room("chat", "lobby", "a").unwrap();
    t.node.join_room("chat", "lobby", "b").unwrap();
    t.node.join_room("game", "g1", "b").unwrap();

    let o = t.run(&["nodes"]).await;
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "n1 (serving this API)\n");

    let o = t.run(&["health"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("ok: node n1, 2 connections"), "{out}");

    let o = t.run(&["cluster"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    let row = out
        .lines()
        .find(|l| l.starts_with("n1 "))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["n1", "ok", "2", "1", "none"], "{out}");

    let o = t.run(&["rooms"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAMESPACE"), "{out}");
    // Largest first.
    assert!(
        lines[1].starts_with("chat") && lines[1].ends_with('2'),
        "{out}"
    );
    assert!(
        lines[2].starts_with("game") && lines[2].ends_with('1'),
        "{out}"
    );

    let o = t.run(&["rooms", "--namespace", "game"]).await;
    assert_exit(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));

    let o = t.run(&["room", "chat", "lobby"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("2 sockets in chat/lobby"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("a ") && l.contains("n1")),
        "{out}"
    );

    let o = t.run(&["locate", "b"]).await;
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "b: connected on n1\n");
    let o = t.run(&["locate", "nobody here"]).await;
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "nobody here: not connected\n");

    let o = t.run(&["stats"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("connections_accepted"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("connections ") && l.ends_with(" 2")),
        "{out}"
    );

    let o = t.run(&["--json", "health"]).await;
    assert_exit(&o, 0);
    let health: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_failed() {
    let t = test_node().await;
    let api = t.api.to_string();
    let o = run_with(&api, "wrong-token", &["nodes"]).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with("error unauthorized: "),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());

    // The API's own validation: an empty id.
    let o = t.run(&["publish", "x", "--to", ""]).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with("error invalid_request: "),
        "{}",
        stderr(&o)
    );

    let nowhere = free_addr().to_string();
    let o = run_with(&nowhere, TOKEN, &["health"]).await;
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!("cannot connect to {nowhere}")),
        "{}",
        stderr(&o)
    );

    // No token at all.
    let o = bounded(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_crosswire"))
            .env_remove("CROSSWIRE_TOKEN")
            .args(["--api", &api, "nodes"])
            .output(),
    )
    .await
    .unwrap();
    assert_exit(&o, 64);
    assert!(stderr(&o).contains("CROSSWIRE_TOKEN"), "{}", stderr(&o));

    // The token and the address from the environment.
    let o = bounded(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_crosswire"))
            .env("CROSSWIRE_API", format!("http://{api}/api/v1/"))
            .env("CROSSWIRE_TOKEN", TOKEN)
            .arg("nodes")
            .output(),
    )
    .await
    .unwrap();
    assert_exit(&o, 0);
}

/// The first `n` lines a running `watch` prints.
async fn watch_lines(mut cmd: tokio::process::Command, n: usize) -> Vec<String> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    while got.len() < n {
        match bounded(lines.next_line()).await.unwrap() {
            Some(line) => got.push(line),
            None => panic!("watch ended after {got:?}"),
        }
    }
    child.start_kill().unwrap();
    let _ = bounded(child.wait()).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_a_line_per_interval_and_keeps_going_when_unreachable() {
    let t = test_node().await;
    let _a = t.client("a").await;
    let mut cmd = cli(&t.api.to_string(), TOKEN);
    cmd.args(["watch", "--every-ms", "200"]);
    let lines = watch_lines(cmd, 3).await;
    assert!(lines[0].starts_with("TIME(UTC)"), "{lines:?}");
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.get(1), Some(&"ok"), "{lines:?}");
        assert_eq!(cells.get(2), Some(&"1"), "one live node: {lines:?}");
        assert_eq!(cells.get(3), Some(&"1"), "one connection: {lines:?}");
    }

    let nowhere = free_addr().to_string();
    let mut cmd = cli(&nowhere, TOKEN);
    cmd.args(["watch", "--every-ms", "100"]);
    let lines = watch_lines(cmd, 3).await;
    for line in &lines[1..] {
        assert!(line.contains("unreachable"), "{lines:?}");
        assert!(line.contains(&nowhere), "{lines:?}");
    }
}
