//! One regression test per defect of the original client (`docs/compatibility.md`,
//! "Client defects") that applies to a Rust client; each fails on the original's
//! behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::protocol::client::PushFrame;
use crosswire::Node;
use crosswire_client::{
    ClientEvent, Connector, ConnectorError, ConnectorOptions, EmitOptions, ReadyState,
    ReconnectInfo,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Defect 26: `manualClose()` / `reconnect()` while CONNECTING crashed the
/// Node process (unhandled `error`). Here they abort the attempt quietly.
#[tokio::test]
async fn defect_26_manual_close_and_reconnect_while_connecting_are_safe() {
    // A node whose upgrade hook holds each handshake until released: the
    // client stays CONNECTING meanwhile.
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let (_node, addr) = start(Node::builder().on_upgrade(move |_hs| {
        let (tx, g) = (entered_tx.clone(), g.clone());
        async move {
            tx.send(()).unwrap();
            g.acquire().await.unwrap().forget();
            Ok(())
        }
    }))
    .await;
    let c = Connector::new(opts(addr)).unwrap();
    let mut events = c.subscribe();

    c.start();
    recv(&mut entered).await;
    assert_eq!(c.state(), ReadyState::Connecting);
    c.manual_close();
    wait_until(|| c.state() == ReadyState::Closed).await;
    assert_eq!(
        events.try_recv(),
        None,
        "an aborted attempt reports nothing"
    );

    c.start();
    recv(&mut entered).await;
    assert_eq!(c.state(), ReadyState::Connecting);
    c.reconnect(false);
    assert_eq!(
        next(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo {
            attempt: 1,
            delay: Duration::from_millis(20)
        })
    );
    recv(&mut entered).await;
    gate.add_permits(10);
    assert_eq!(next(&mut events).await, ClientEvent::Open);
    assert!(c.is_open());
}

/// Defect 27: pushes such as `{"event":"constructor"}` or a non-string
/// `event` threw out of the original's message handler.
#[tokio::test]
async fn defect_27_odd_pushes_are_ignored() {
    let mut obs = start_observed(Node::builder()).await;
    obs.node
        .on("ping-me", |_s: crosswire::Socket, p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send(&p).unwrap();
            }
        })
        .unwrap();
    let c = Connector::new(opts(obs.addr)).unwrap();
    let ctor = Arc::new(AtomicUsize::new(0));
    let k = ctor.clone();
    c.on("constructor", move |_: &serde_json::Value| {
        k.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut obs.sockets).await;
    for raw in [
        r#"{"event":"constructor"}"#,
        r#"{"event":"__proto__","payload":1}"#,
        r#"{"event":"toString"}"#,
        r#"{"event":5}"#,
        r#"{"event":null}"#,
        r#"{"event":["a"]}"#,
        r#"{"callbackId":7}"#,
        r#"{"callbackId":"unknown","payload":1}"#,
        r#"[1,2]"#,
        r#""str""#,
        "not json",
        r#"{"event":"after","payload":1}"#,
    ] {
        socket.send_frame(&PushFrame::from_text(raw)).unwrap();
    }
    let mut pushed = Vec::new();
    loop {
        if let ClientEvent::Push { event, .. } = next(&mut events).await {
            pushed.push(event.clone());
            if event == "after" {
                break;
            }
        }
    }
    assert_eq!(pushed, ["constructor", "__proto__", "toString", "after"]);
    assert_eq!(ctor.load(Ordering::SeqCst), 1);
    assert!(c.is_open());
    assert_eq!(
        c.emit_with_callback("ping-me", &1).await.unwrap(),
        Some(json!(1))
    );
}

/// Defect 28: a pushed `{"event":"close"}` (or `open`, `reconnect`, ...)
/// fired the original's lifecycle listeners.
#[tokio::test]
async fn defect_28_pushes_cannot_fire_lifecycle_listeners() {
    let mut obs = start_observed(Node::builder()).await;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let lifecycle = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lifecycle.clone();
    c.on_close(move |code, _| l.lock().unwrap().push(format!("close {code}")));
    let l = lifecycle.clone();
    c.on_open(move || l.lock().unwrap().push("open".into()));
    let l = lifecycle.clone();
    c.on_reconnect(move |_| l.lock().unwrap().push("reconnect".into()));
    let l = lifecycle.clone();
    c.on_error(move |_| l.lock().unwrap().push("error".into()));
    let l = lifecycle.clone();
    c.on_pong(move |_| l.lock().unwrap().push("pong".into()));
    let pushed_close = Arc::new(Mutex::new(Vec::new()));
    let p = pushed_close.clone();
    c.on("close", move |payload: &serde_json::Value| {
        p.lock().unwrap().push(payload.clone())
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut obs.sockets).await;
    for name in [
        "close",
        "open",
        "reconnect",
        "error",
        "pong",
        "repeat-limit",
    ] {
        socket.emit(name, &json!({"spoofed": name})).unwrap();
    }
    socket.emit("marker", &1).unwrap();
    let mut pushed = Vec::new();
    loop {
        match next(&mut events).await {
            ClientEvent::Push { event, .. } if event == "marker" => break,
            ClientEvent::Push { event, .. } => pushed.push(event),
            ClientEvent::Message(_) => {}
            other => panic!("a push produced a lifecycle event: {other:?}"),
        }
    }
    assert_eq!(
        pushed,
        [
            "close",
            "open",
            "reconnect",
            "error",
            "pong",
            "repeat-limit"
        ]
    );
    assert_eq!(*lifecycle.lock().unwrap(), ["open"]);
    assert_eq!(*pushed_close.lock().unwrap(), [json!({"spoofed": "close"})]);
    assert!(c.is_open());
}

/// Defect 29: after a synchronous failure (invalid URL) the original made
/// exactly two attempts and stopped; here retries go on. On tokio's paused
/// clock: the attempts fail without any I/O.
#[tokio::test(start_paused = true)]
async fn defect_29_immediate_failures_keep_retrying() {
    let c = Connector::new(ConnectorOptions {
        fast_reconnect_interval: Duration::from_millis(2),
        reconnect_max_interval: Duration::from_millis(5),
        ..ConnectorOptions::new("ws://127.0.0.1:notaport/")
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    for attempt in 1..=6 {
        assert!(matches!(next(&mut events).await, ClientEvent::Error(_)));
        match next(&mut events).await {
            ClientEvent::Reconnect(info) => assert_eq!(info.attempt, attempt),
            other => panic!("expected reconnect {attempt}, got {other:?}"),
        }
    }
    c.manual_close();
}

/// Defect 30: the original's heartbeat timers survived `close`, giving a
/// spurious `ping` + `pong-timeout` after every close.
#[tokio::test]
async fn defect_30_heartbeat_stops_when_the_connection_closes() {
    let (node, addr) = start_default().await;
    // The node closes every connection at once (as an auth failure would).
    node.on_connection(|socket, _hs| {
        socket.close(4011, "Auth failure");
        async {}
    });
    let c = Connector::new(ConnectorOptions {
        ping_interval: Duration::from_millis(10),
        pong_timeout: Duration::from_millis(10),
        ..opts(addr)
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    loop {
        match next(&mut events).await {
            ClientEvent::Close { code, .. } => {
                assert_eq!(code, 4011);
                break;
            }
            // A heartbeat may legitimately fire before the close arrives.
            ClientEvent::Ping | ClientEvent::Pong(_) | ClientEvent::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Observation window of many heartbeat periods: nothing may follow.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(events.try_recv(), None);
}

/// Defect 31: failed attempts never reported `close` but the one hitting
/// the repeat limit did (1006); `reconnect()` closed an open socket with
/// 4001 like a manual close. Here `close` pairs with `open`, and a
/// reconnection closes with 4000.
#[tokio::test]
async fn defect_31_close_is_reported_once_per_open() {
    // No server: only errors, reconnects and the limit; never a close.
    let c = Connector::new(ConnectorOptions {
        repeat_limit: Some(2),
        ..opts(free_addr())
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    let mut kinds = Vec::new();
    loop {
        let ev = next(&mut events).await;
        let done = matches!(ev, ClientEvent::RepeatLimit(_));
        kinds.push(ev.kind().unwrap().name());
        if done {
            break;
        }
    }
    assert_eq!(
        kinds,
        [
            "error",
            "reconnect",
            "error",
            "reconnect",
            "error",
            "repeat-limit"
        ]
    );
    assert_eq!(events.try_recv(), None, "no close after the repeat limit");
    drop(c);

    // reconnect() on an open connection: the node sees 4000, not 4001.
    let mut obs = start_observed(Node::builder()).await;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    c.reconnect(false);
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 4000,
            reason: "client reconnect".into()
        }
    );
    assert!(matches!(
        next_lifecycle(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo { attempt: 1, .. })
    ));
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Open);
    assert_eq!(
        recv(&mut obs.closes).await,
        (4000, "client reconnect".into())
    );
}

/// Defect 32: callbacks pending when the connection dropped waited for
/// their timeout; here they fail at once with DISCONNECTED.
#[tokio::test]
async fn defect_32_pending_callbacks_fail_at_once_on_disconnect() {
    let (node, addr) = start_default().await;
    // `hold` never replies; it closes the socket instead.
    node.on("hold", |socket: crosswire::Socket, _p: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
        socket.close(4010, "bye");
    })
    .unwrap();
    node.on("wait", |_s: crosswire::Socket, _p: serde_json::Value, _reply: Option<crosswire::Reply>| async move {}).unwrap();
    let c = Connector::new(opts(addr)).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let long = EmitOptions::new().timeout(Duration::from_secs(60));
    let waiting = c.emit_with_options("wait", &1, long);
    let (tx, mut rx) = mpsc::unbounded_channel();
    c.emit_then(
        "wait",
        &2,
        EmitOptions::new().timeout(Duration::from_secs(60)),
        move |r| tx.send(r).unwrap(),
    );
    let started = tokio::time::Instant::now();
    let id = waiting.callback_id().unwrap().to_owned();
    c.emit("hold", &0).unwrap();
    let e = bounded(waiting).await.unwrap_err();
    assert_eq!(e.code(), "DISCONNECTED");
    assert_eq!(
        e.to_string(),
        format!("Connection closed before the reply: {id}")
    );
    assert_eq!(recv(&mut rx).await.unwrap_err().code(), "DISCONNECTED");
    assert!(started.elapsed() < WAIT);
}

/// Defect 32: any frame equal to the ping string counted as a heartbeat
/// reply (with the default `""`, any empty frame); here only while a
/// heartbeat is outstanding.
#[tokio::test]
async fn defect_32_ping_string_frames_count_only_for_an_outstanding_heartbeat() {
    for ping in ["", "hb"] {
        let mut obs = start_observed(Node::builder().heartbeat(ping)).await;
        let c = Connector::new(ConnectorOptions {
            ping_msg: ping.into(),
            ..opts(obs.addr)
        })
        .unwrap();
        let mut events = c.subscribe();
        c.start();
        wait_open(&mut events).await;
        let socket = recv(&mut obs.sockets).await;
        socket.send_frame(&PushFrame::from_text(ping)).unwrap();
        socket.emit("marker", &1).unwrap();
        assert_eq!(next(&mut events).await, ClientEvent::Message(ping.into()));
        assert!(matches!(next(&mut events).await, ClientEvent::Message(_)));
        assert!(matches!(next(&mut events).await, ClientEvent::Push { .. }));

        // A real heartbeat still gets its pong.
        c.set_ping_interval(Duration::from_millis(5), true).unwrap();
        assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Ping);
        assert!(matches!(
            next_lifecycle(&mut events).await,
            ClientEvent::Pong(_)
        ));
    }
}

/// Defect 32: custom params were appended after a `#fragment`, where they
/// never reach the server.
#[tokio::test]
async fn defect_32_custom_params_survive_a_fragment() {
    let (node, addr) = start_default().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_connection(move |_s, hs| {
        tx.send(hs.param("id").map(str::to_owned)).unwrap();
        async {}
    });
    let c = Connector::new(ConnectorOptions {
        url: format!("ws://{addr}#section"),
        ..opts(addr).param("id", "u1")
    })
    .unwrap();
    assert_eq!(c.url(), format!("ws://{addr}/?id=u1"));
    c.start();
    assert_eq!(recv(&mut rx).await.as_deref(), Some("u1"));
}

/// Defect 32: an explicit `undefined` replaced a default (a 1 ms timer
/// loop for `pingInterval: undefined`); here an explicit null is an error
/// and zero durations are refused.
#[tokio::test]
async fn defect_32_no_option_can_become_a_zero_timer() {
    let parsed =
        serde_json::from_str::<ConnectorOptions>(r#"{"url":"ws://x/","ping_interval_ms":null}"#);
    assert!(parsed.is_err());
    let zero = ConnectorOptions {
        ping_interval: Duration::ZERO,
        ..ConnectorOptions::new("ws://x/")
    };
    assert_eq!(
        Connector::new(zero).unwrap_err(),
        ConnectorError::ZeroDuration("ping_interval")
    );
}

/// Defect 32: `manualClose()` was irreversible; `start()` re-opens.
#[tokio::test]
async fn defect_32_manual_close_is_reversible() {
    let mut obs = start_observed(Node::builder()).await;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    recv(&mut obs.sockets).await;
    c.manual_close();
    assert_eq!(
        recv(&mut obs.closes).await,
        (4001, "client manual close".into())
    );
    c.start();
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 4001,
            reason: "client manual close".into()
        }
    );
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Open);
    recv(&mut obs.sockets).await;
    assert!(c.is_open());
}
