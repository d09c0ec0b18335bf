//! Handlers that take what they ask for and reply with what they return,
//! over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::handler::{Data, ReplyError, State};
use crosswire::{Node, Reply, Socket};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Deserialize)]
struct Move {
    x: u32,
    y: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Placed {
    at: [u32; 2],
    by: Vec<String>,
}

#[derive(Clone, Default)]
struct Game {
    moves: Arc<AtomicUsize>,
}

async fn call(ws: &mut Ws, event: &str, payload: Value, id: &str) -> Value {
    send_text(
        ws,
        &json!({"event": event, "payload": payload, "callbackId": id}).to_string(),
    )
    .await;
    let reply = next_json(ws).await;
    assert_eq!(reply["callbackId"], id);
    reply["payload"].clone()
}

#[tokio::test]
async fn a_typed_handler_gets_its_payload_state_and_socket_and_its_value_is_the_reply() {
    let game = Game::default();
    let (node, addr) = start_binding(Node::builder().state(game.clone())).await;
    node.on(
        "move",
        |Data(m): Data<Move>, State(game): State<Game>, socket: Socket| async move {
            game.moves.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ReplyError>(Data(Placed {
                at: [m.x, m.y],
                by: socket.socket_ids(),
            }))
        },
    )
    .unwrap();
    let mut ws = connect_id(&node, addr, "p1").await;
    let reply = call(&mut ws, "move", json!({"x": 3, "y": 4}), "c1").await;
    assert_eq!(
        serde_json::from_value::<Placed>(reply).unwrap(),
        Placed {
            at: [3, 4],
            by: vec!["p1".into()]
        }
    );
    assert_eq!(game.moves.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_payload_that_does_not_fit_never_reaches_the_handler_and_is_counted() {
    let game = Game::default();
    let (node, addr) = start(Node::builder().state(game.clone())).await;
    node.on(
        "move",
        |Data(_m): Data<Move>, State(game): State<Game>| async move {
            game.moves.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    let reply = call(&mut ws, "move", json!({"x": "three"}), "c1").await;
    assert_eq!(reply["error"]["code"], "bad_payload");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid type"));
    // Without a callback: no reply, still counted.
    send_text(&mut ws, r#"{"event":"move","payload":[1]}"#).await;
    sync(&mut ws).await;
    assert_eq!(game.moves.load(Ordering::SeqCst), 0);
    assert_eq!(node.stats().frames_dropped_bad_payload, 2);
    assert!(node.metrics_text().contains("reason=\"bad_payload\"} 2"));
}

#[tokio::test]
async fn errors_become_the_documented_error_reply_and_unit_sends_nothing() {
    let (node, addr) = start(Node::builder()).await;
    node.on("fail", || async {
        Err::<(), _>(ReplyError::new("room_full", "the room is full"))
    })
    .unwrap();
    node.on("quiet", || async {}).unwrap();
    node.on("ack", || async { Ok::<_, String>(()) }).unwrap();
    let mut ws = connect(addr, "").await;
    assert_eq!(
        call(&mut ws, "fail", Value::Null, "c1").await,
        json!({"error": {"code": "room_full", "message": "the room is full"}})
    );
    send_text(&mut ws, r#"{"event":"quiet","callbackId":"c2"}"#).await;
    // The next frame the client gets is the heartbeat echo, not a reply.
    sync(&mut ws).await;
    assert_eq!(call(&mut ws, "ack", Value::Null, "c3").await, Value::Null);
}

#[tokio::test]
async fn the_reply_handle_still_replies_later_and_more_than_once() {
    let (node, addr) = start(Node::builder()).await;
    node.on("twice", |reply: Option<Reply>, payload: Value| async move {
        if let Some(r) = reply {
            r.send(&json!({"n": 1, "echo": payload})).unwrap();
            r.send(&json!({"n": 2})).unwrap();
        }
        // Returned values are not sent when the handle was taken.
        Ok::<_, String>("ignored")
    })
    .unwrap();
    let mut ws = connect(addr, "").await;
    assert_eq!(call(&mut ws, "twice", json!(7), "c1").await["echo"], 7);
    assert_eq!(next_json(&mut ws).await["payload"]["n"], 2);
    sync(&mut ws).await;
}

#[tokio::test]
async fn a_missing_state_is_refused_at_registration() {
    let (node, _addr) = start(Node::builder()).await;
    let err = node.on("x", |State(_g): State<Game>| async {}).unwrap_err();
    assert!(matches!(err, crosswire::Error::MissingState(name) if name.contains("Game")));
    assert!(node
        .on_cross_server("x", |State(_g): State<Game>| async {})
        .is_err());
}

#[tokio::test]
async fn handlers_do_not_keep_the_node_alive() {
    let node = Node::builder().build().unwrap();
    node.on("who", |node: Node| async move {
        Ok::<_, String>(node.server_name().to_owned())
    })
    .unwrap();
    node.on_cross_server("who", |node: Node| async move {
        Ok::<_, String>(node.server_name().to_owned())
    })
    .unwrap();
    let weak = node.downgrade();
    drop(node);
    assert!(weak.upgrade().is_none(), "a handler kept the node alive");
}

#[tokio::test]
async fn typed_cross_server_handlers_reply_with_their_return_value() {
    let (node, _addr) = start(Node::builder().server_name("n1").state(Game::default())).await;
    node.on_cross_server(
        "sum",
        |Data(v): Data<Vec<i64>>, State(g): State<Game>| async move {
            g.moves.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(v.iter().sum::<i64>())
        },
    )
    .unwrap();
    let result = node
        .emit_cross_server("sum", &json!([1, 2, 3]))
        .unwrap()
        .expect(1)
        .collect()
        .await
        .unwrap();
    let reply = result.responses.get("n1").unwrap();
    assert_eq!(reply.payload, Some(json!(6)));
    let bad = node
        .emit_cross_server("sum", &json!({"not": "a list"}))
        .unwrap()
        .expect(1)
        .collect()
        .await
        .unwrap();
    let reply = bad.responses.get("n1").unwrap();
    assert_eq!(
        reply.payload.as_ref().unwrap()["error"]["code"],
        "bad_payload"
    );
}

/// What a tower layer puts in the request's extensions (e.g. auth claims)
/// reaches the socket, and the route mounts on a router with its own state.
#[tokio::test]
async fn axum_state_and_request_extensions_reach_the_socket() {
    #[derive(Clone, Debug, PartialEq)]
    struct Claims(&'static str);
    #[derive(Clone)]
    struct AppState;
    let node = Node::builder().build().unwrap();
    let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    node.on_connection(move |socket, _| {
        let _ = tx.send(socket);
        async {}
    });
    let app: axum::Router = axum::Router::<AppState>::new()
        .route("/ws", node.ws_route())
        .route("/", axum::routing::get(|| async { "page" }))
        .layer(axum::middleware::from_fn(
            |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
                req.extensions_mut().insert(Claims("alice"));
                next.run(req).await
            },
        ))
        .with_state(AppState);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn({
        let node = node.clone();
        async move { node.serve(listener, app).await }
    });
    let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let socket = sockets.recv().await.unwrap();
    assert_eq!(socket.data::<Claims>(), Some(Claims("alice")));
}
