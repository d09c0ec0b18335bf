//! The typed forms against real crosswire nodes over TCP: handlers taking
//! the payload as a type, the application state and the connector; replies
//! decoded into a type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::Node;
use crosswire_client::{
    ClientEvent, Connector, ConnectorError, ConnectorOptions, EmitError, EmitOptions, EventStream,
    State,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Move {
    player: String,
    x: i32,
    y: i32,
}

/// Skips events until the push of `event`; returns its payload. The stream
/// sees a push after every handler of it ran.
async fn wait_push(events: &mut EventStream, event: &str) -> Option<Value> {
    match wait_for(
        events,
        |e| matches!(e, ClientEvent::Push { event: name, .. } if name == event),
    )
    .await
    {
        ClientEvent::Push { payload, .. } => payload,
        _ => unreachable!(),
    }
}

/// A node echoing `say` replies as they came, `empty` without a value.
async fn echo_node() -> (Node, std::net::SocketAddr) {
    let (node, addr) = start_default().await;
    node.on("say", |_s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
        if let Some(r) = reply {
            r.send(&payload).unwrap();
        }
    })
    .unwrap();
    node.on(
        "empty",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send_empty().unwrap();
            }
        },
    )
    .unwrap();
    (node, addr)
}

#[tokio::test]
async fn a_typed_payload_arrives_typed() {
    let obs = start_observed(Node::builder()).await;
    let mut sockets = obs.sockets;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let (tx, mut moves) = mpsc::unbounded_channel();
    c.on("move", move |m: Move| tx.send(m).unwrap()).unwrap();
    let (tx, mut maybe) = mpsc::unbounded_channel();
    c.on("maybe", move |n: Option<u32>| tx.send(n).unwrap())
        .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut sockets).await;

    socket
        .emit("move", &json!({"player": "p1", "x": -3, "y": 7}))
        .unwrap();
    assert_eq!(
        recv(&mut moves).await,
        Move {
            player: "p1".into(),
            x: -3,
            y: 7
        }
    );
    // A frame without a payload reads as null.
    socket
        .send_frame(&crosswire::protocol::client::PushFrame::encode::<()>("maybe", None).unwrap())
        .unwrap();
    assert_eq!(recv(&mut maybe).await, None);
    socket.emit("maybe", &5).unwrap();
    assert_eq!(recv(&mut maybe).await, Some(5));
    assert_eq!(c.rejected_payloads(), 0);
}

#[tokio::test]
async fn a_payload_that_does_not_deserialize_never_reaches_the_handler() {
    let obs = start_observed(Node::builder()).await;
    let mut sockets = obs.sockets;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let (tx, mut typed) = mpsc::unbounded_channel();
    c.on("move", move |m: Move| tx.send(m).unwrap()).unwrap();
    let (tx, mut once) = mpsc::unbounded_channel();
    c.once("move", move |m: Move| tx.send(m).unwrap()).unwrap();
    let (tx, mut raw) = mpsc::unbounded_channel();
    c.on("move", move |p: &Value| tx.send(p.clone()).unwrap())
        .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut sockets).await;

    let bad = json!({"player": "p1", "x": "three", "y": 7});
    socket.emit("move", &bad).unwrap();
    assert_eq!(wait_push(&mut events, "move").await, Some(bad.clone()));
    // Every handler of the push ran before the stream saw it.
    assert!(typed.try_recv().is_err(), "the typed handler was called");
    assert!(once.try_recv().is_err(), "the once handler was called");
    assert_eq!(raw.try_recv().unwrap(), bad, "the untyped form sees it");
    assert_eq!(c.rejected_payloads(), 2, "one per refusing handler");
    assert!(
        c.is_open(),
        "a refused payload does not affect the connection"
    );

    // The next payload that fits reaches both, the once handler included.
    let good = Move {
        player: "p2".into(),
        x: 1,
        y: 2,
    };
    socket.emit("move", &good).unwrap();
    assert_eq!(recv(&mut typed).await, good);
    assert_eq!(recv(&mut once).await, good);
    socket.emit("move", &good).unwrap();
    assert_eq!(recv(&mut typed).await, good);
    wait_push(&mut events, "move").await;
    wait_push(&mut events, "move").await;
    assert_eq!(once.recv().await, None, "the once handler is gone");
    assert_eq!(c.rejected_payloads(), 2);
}

#[tokio::test]
async fn handlers_take_the_state_and_the_connector() {
    let obs = start_observed(Node::builder()).await;
    let mut sockets = obs.sockets;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    obs.node
        .on(
            "seen",
            move |_s: crosswire::Socket,
                  payload: serde_json::Value,
                  _reply: Option<crosswire::Reply>| {
                let tx = seen_tx.clone();
                async move {
                    tx.send(payload).unwrap();
                }
            },
        )
        .unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let c = Connector::builder(opts(obs.addr))
        .state(total.clone())
        .build()
        .unwrap();
    // Nothing captured: the state and a handle come as arguments.
    c.on(
        "points",
        |State(total): State<Arc<AtomicU64>>, n: u64, c: Connector| {
            let sum = total.fetch_add(n, Ordering::SeqCst) + n;
            c.emit("seen", &sum).unwrap();
        },
    )
    .unwrap();
    assert_eq!(
        c.on("points", |State(_): State<String>| {}).err(),
        Some(ConnectorError::MissingState("alloc::string::String"))
    );
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut sockets).await;

    socket.emit("points", &5).unwrap();
    assert_eq!(recv(&mut seen).await, json!(5));
    socket.emit("points", &7).unwrap();
    assert_eq!(recv(&mut seen).await, json!(12));
    assert_eq!(total.load(Ordering::SeqCst), 12);
}

#[tokio::test]
async fn a_handler_taking_the_connector_does_not_keep_it_alive() {
    let mut obs = start_observed(Node::builder()).await;
    let (back_tx, mut back) = mpsc::unbounded_channel();
    obs.node
        .on(
            "pong-back",
            move |_s: crosswire::Socket,
                  payload: serde_json::Value,
                  _reply: Option<crosswire::Reply>| {
                let tx = back_tx.clone();
                async move {
                    tx.send(payload).unwrap();
                }
            },
        )
        .unwrap();
    let c = Connector::new(opts(obs.addr)).unwrap();
    c.on("ping-back", |n: u32, c: Connector| {
        let _ = c.emit("pong-back", &n);
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut obs.sockets).await;
    socket.emit("ping-back", &9).unwrap();
    assert_eq!(recv(&mut back).await, json!(9), "the handler ran");

    drop(c);
    // The only handle is gone: the task ends and closes with 1001.
    assert_eq!(
        recv(&mut obs.closes).await,
        (1001, "client dropped".to_owned())
    );
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            None => break,
            Some(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_typed_reply_decodes() {
    let (_node, addr) = echo_node().await;
    let c = Connector::new(opts(addr)).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;

    let m = Move {
        player: "p1".into(),
        x: 4,
        y: -4,
    };
    let reply = c.request::<Move>("say", &m);
    assert!(reply.callback_id().is_some());
    assert_eq!(bounded(reply).await.unwrap(), m);
    // With per-call options.
    let n: u8 = bounded(
        c.emit_with_options(
            "say",
            &200,
            EmitOptions::new().timeout(Duration::from_secs(5)),
        )
        .decode(),
    )
    .await
    .unwrap();
    assert_eq!(n, 200);
    // A reply without a value reads as null.
    let none: Option<Move> = bounded(c.request("empty", &1)).await.unwrap();
    assert_eq!(none, None);
    bounded(c.request::<()>("empty", &1)).await.unwrap();
}

#[tokio::test]
async fn a_reply_that_does_not_decode_gives_the_decode_error() {
    let (_node, addr) = echo_node().await;
    let c = Connector::new(opts(addr)).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;

    let reply = c.request::<Move>("say", &json!({"player": "p1", "x": 1}));
    let id = reply.callback_id().unwrap().to_owned();
    let e = bounded(reply).await.unwrap_err();
    match &e {
        EmitError::Decode {
            callback_id,
            message,
        } => {
            assert_eq!(callback_id, &id);
            assert!(message.contains("missing field `y`"), "{message}");
        }
        other => panic!("not a decode error: {other:?}"),
    }
    assert_eq!(e.code(), "DECODE_ERROR");
    let e = bounded(c.request::<u8>("say", &300)).await.unwrap_err();
    assert_eq!(e.code(), "DECODE_ERROR");
    let e = bounded(c.request::<Move>("empty", &1)).await.unwrap_err();
    assert_eq!(e.code(), "DECODE_ERROR", "no value is null, not a Move");
    assert!(
        c.is_open(),
        "a reply that does not decode leaves the connection"
    );

    // The other errors keep their codes in the typed form.
    c.manual_close();
    wait_for(&mut events, |e| matches!(e, ClientEvent::Close { .. })).await;
    assert_eq!(
        bounded(c.request::<Move>("say", &1)).await,
        Err(EmitError::NotOpen)
    );
}

#[tokio::test]
async fn the_typed_reply_reports_timeout_and_disconnection() {
    let (_node, addr) = start_default().await; // no handler: never replies
    let c = Connector::new(ConnectorOptions {
        callback_timeout: Duration::from_millis(30),
        ..opts(addr)
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;

    let e = bounded(c.request::<u8>("nobody", &1)).await.unwrap_err();
    assert_eq!(e.code(), "CALLBACK_TIMEOUT");
    let pending = c.emit_with_options(
        "nobody",
        &1,
        EmitOptions::new().timeout(Duration::from_secs(30)),
    );
    let pending = pending.decode::<u8>();
    c.manual_close();
    let e = bounded(pending).await.unwrap_err();
    assert_eq!(e.code(), "DISCONNECTED");
}
