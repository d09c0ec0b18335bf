//! The connector against real crosswire nodes over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::Node;
use crosswire_client::{
    ClientEvent, Connector, ConnectorOptions, EmitError, EmitOptions, ReadyState, ReconnectInfo,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A node answering `say` with `{"echo": payload}`, `empty` without a value
/// and `null` with null.
async fn echo_node() -> (Node, std::net::SocketAddr) {
    let (node, addr) = start_default().await;
    node.on("say", |_s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
        if let Some(r) = reply {
            r.send(&json!({ "echo": payload })).unwrap();
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
    node.on(
        "null",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send(&Value::Null).unwrap();
            }
        },
    )
    .unwrap();
    (node, addr)
}

async fn open_connector(opts: ConnectorOptions) -> (Connector, crosswire_client::EventStream) {
    let c = Connector::new(opts).unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    (c, events)
}

#[tokio::test]
async fn emit_with_callback_resolves_to_the_reply() {
    let (_node, addr) = echo_node().await;
    let (c, _events) = open_connector(opts(addr)).await;

    let reply = c.emit_with_callback("say", &json!({"hello": "world", "n": 1.5}));
    assert!(reply.callback_id().is_some());
    assert_eq!(
        reply.await.unwrap(),
        Some(json!({"echo": {"hello": "world", "n": 1.5}}))
    );
    assert_eq!(c.emit_with_callback("empty", &1).await.unwrap(), None);
    assert_eq!(
        c.emit_with_callback("null", &1).await.unwrap(),
        Some(Value::Null)
    );

    // The callback form runs the callback on the connector's task.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = c.emit_then("say", "cb", EmitOptions::new(), move |r| {
        tx.send(r).unwrap();
    });
    assert!(id.is_some());
    assert_eq!(recv(&mut rx).await.unwrap(), Some(json!({"echo": "cb"})));

    // Many concurrent calls each get their own reply.
    let replies: Vec<_> = (0..50).map(|i| c.emit_with_callback("say", &i)).collect();
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), Some(json!({ "echo": i })));
    }
}

#[tokio::test]
async fn emit_reaches_the_node_in_order() {
    let (node, addr) = start_default().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on(
        "note",
        move |_s: crosswire::Socket,
              payload: serde_json::Value,
              reply: Option<crosswire::Reply>| {
            let tx = tx.clone();
            async move {
                tx.send((payload, reply.is_some())).unwrap();
            }
        },
    )
    .unwrap();
    let (c, _events) = open_connector(opts(addr)).await;
    for i in 0..20 {
        c.emit("note", &json!({ "i": i })).unwrap();
    }
    for i in 0..20 {
        assert_eq!(recv(&mut rx).await, (json!({ "i": i }), false));
    }
    assert_eq!(c.emit("", &1), Err(EmitError::EmptyEvent));
}

#[tokio::test]
async fn not_open_fails_at_once_with_ws_not_open() {
    let addr = free_addr();
    let c = Connector::new(opts(addr)).unwrap();
    assert_eq!(c.state(), ReadyState::Closed);
    assert_eq!(c.emit("x", &1), Err(EmitError::NotOpen));
    let r = c.emit_with_callback("x", &1);
    assert_eq!(r.callback_id(), None);
    let e = r.await.unwrap_err();
    assert_eq!(e.code(), "WS_NOT_OPEN");
    assert_eq!(e.to_string(), "WebSocket is not open");
    // The callback form is called synchronously, as in the original.
    let called = Arc::new(Mutex::new(None));
    let c2 = called.clone();
    c.emit_then("x", &1, EmitOptions::new(), move |r| {
        *c2.lock().unwrap() = Some(r);
    });
    assert_eq!(*called.lock().unwrap(), Some(Err(EmitError::NotOpen)));
}

#[tokio::test]
async fn callback_times_out_with_callback_timeout() {
    let (_node, addr) = start_default().await; // no handler: never replies
    let (c, _events) = open_connector(ConnectorOptions {
        callback_timeout: Duration::from_millis(60),
        ..opts(addr)
    })
    .await;

    let r = c.emit_with_options(
        "nobody",
        &1,
        EmitOptions::new().timeout(Duration::from_millis(30)),
    );
    let id = r.callback_id().unwrap().to_owned();
    let started = tokio::time::Instant::now();
    let e = r.await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(e.code(), "CALLBACK_TIMEOUT");
    assert_eq!(e.to_string(), format!("Is callback timeout: {id}"));

    // The connector's default applies without per-call options.
    let started = tokio::time::Instant::now();
    let e = c.emit_with_callback("nobody", &1).await.unwrap_err();
    assert_eq!(e.code(), "CALLBACK_TIMEOUT");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(c.is_open(), "a timeout does not affect the connection");
}

#[tokio::test]
async fn pending_hook_fires_once_while_the_reply_is_late() {
    let (node, addr) = start_default().await;
    // The node answers `slow` only when the test says so.
    let (release_tx, release_rx) = mpsc::unbounded_channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(release_rx));
    node.on(
        "slow",
        move |_s: crosswire::Socket,
              payload: serde_json::Value,
              reply: Option<crosswire::Reply>| {
            let release_rx = release_rx.clone();
            async move {
                release_rx.lock().await.recv().await;
                if let Some(r) = reply {
                    r.send(&payload).unwrap();
                }
            }
        },
    )
    .unwrap();
    let (c, _events) = open_connector(opts(addr)).await;

    let hooks = Arc::new(AtomicUsize::new(0));
    let (hook_tx, mut hook_rx) = mpsc::unbounded_channel();
    let h = hooks.clone();
    let reply = c.emit_with_options(
        "slow",
        "late",
        EmitOptions::new()
            .timeout(Duration::from_secs(30))
            .pending_timeout(Duration::from_millis(20))
            .on_pending(move || {
                h.fetch_add(1, Ordering::SeqCst);
                hook_tx.send(()).unwrap();
            }),
    );
    recv(&mut hook_rx).await;
    release_tx.send(()).unwrap();
    assert_eq!(bounded(reply).await.unwrap(), Some(json!("late")));
    assert_eq!(hooks.load(Ordering::SeqCst), 1);

    // A pending timeout not shorter than the timeout never calls the hook.
    let h = hooks.clone();
    let e = c
        .emit_with_options(
            "nobody",
            &1,
            EmitOptions::new()
                .timeout(Duration::from_millis(30))
                .pending_timeout(Duration::from_millis(30))
                .on_pending(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                }),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CALLBACK_TIMEOUT");
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pending_hook_is_cancelled_by_the_reply() {
    let (_node, addr) = echo_node().await;
    let (c, _events) = open_connector(opts(addr)).await;
    let hooks = Arc::new(AtomicUsize::new(0));
    let h = hooks.clone();
    let reply = c
        .emit_with_options(
            "say",
            &1,
            EmitOptions::new()
                .pending_timeout(Duration::from_millis(40))
                .on_pending(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                }),
        )
        .await;
    // The reply may exceptionally be slower than 40 ms on a loaded machine;
    // only check the cancellation when it was not.
    if hooks.load(Ordering::SeqCst) == 0 {
        assert_eq!(reply.unwrap(), Some(json!({"echo": 1})));
        // Past the pending timeout (an observation window, not a sync).
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(hooks.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn pushed_events_reach_listeners_and_the_stream() {
    let obs = start_observed(Node::builder()).await;
    let mut sockets = obs.sockets;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    c.on("news", move |p: &Value| {
        s.lock().unwrap().push(("on", p.clone()))
    })
    .unwrap();
    let s = seen.clone();
    c.once("news", move |p: &Value| {
        s.lock().unwrap().push(("once", p.clone()))
    })
    .unwrap();
    let s = seen.clone();
    c.on("bare", move |p: &Value| {
        s.lock().unwrap().push(("bare", p.clone()))
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut sockets).await;

    socket.emit("news", &json!({"n": 1})).unwrap();
    socket.emit("news", &json!({"n": 2})).unwrap();
    socket
        .send_frame(&crosswire::protocol::client::PushFrame::encode::<()>("bare", None).unwrap())
        .unwrap();
    obs.node.broadcast("news", &json!({"n": 3})).unwrap();

    let mut pushes = Vec::new();
    while pushes.len() < 4 {
        if let ClientEvent::Push { event, payload } = next(&mut events).await {
            pushes.push((event, payload));
        }
    }
    assert_eq!(
        pushes,
        [
            ("news".to_owned(), Some(json!({"n": 1}))),
            ("news".to_owned(), Some(json!({"n": 2}))),
            ("bare".to_owned(), None),
            ("news".to_owned(), Some(json!({"n": 3}))),
        ]
    );
    // Listeners ran before the stream saw each event.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("on", json!({"n": 1})),
            ("once", json!({"n": 1})),
            ("on", json!({"n": 2})),
            ("bare", Value::Null),
            ("on", json!({"n": 3})),
        ]
    );
}

#[tokio::test]
async fn listeners_can_be_removed_by_id_tag_event_and_kind() {
    let obs = start_observed(Node::builder()).await;
    let mut sockets = obs.sockets;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let hits = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let h = hits.clone();
    let by_id = c
        .on("e", move |_: &Value| h.lock().unwrap().push("by_id"))
        .unwrap();
    let h = hits.clone();
    c.listen()
        .tag("t")
        .on("e", move |_: &Value| h.lock().unwrap().push("tagged"))
        .unwrap();
    let h = hits.clone();
    c.listen()
        .tag("t")
        .on_message(move |_| h.lock().unwrap().push("tagged message"));
    let h = hits.clone();
    c.on("other", move |_: &Value| h.lock().unwrap().push("other"))
        .unwrap();
    let h = hits.clone();
    c.on("e", move |_: &Value| h.lock().unwrap().push("kept"))
        .unwrap();
    let h = hits.clone();
    c.on_ping(move || h.lock().unwrap().push("ping"));
    assert!(c.on("", |_: &Value| {}).is_err());

    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    let socket = recv(&mut sockets).await;

    assert!(c.off(by_id));
    assert!(!c.off(by_id));
    assert_eq!(c.off_tag("t"), 2);
    assert_eq!(c.off_event("other"), 1);
    assert_eq!(c.off_kind(crosswire_client::EventKind::Ping), 1);
    socket.emit("other", &1).unwrap();
    socket.emit("e", &1).unwrap();
    wait_for(
        &mut events,
        |e| matches!(e, ClientEvent::Push { event, .. } if event == "e"),
    )
    .await;
    c.set_ping_interval(Duration::from_millis(5), true).unwrap();
    wait_for(&mut events, |e| matches!(e, ClientEvent::Ping)).await;
    assert_eq!(*hits.lock().unwrap(), ["kept"]);
}

#[tokio::test]
async fn heartbeat_reports_latency() {
    let (node, addr) = start_default().await;
    let client_pings = Arc::new(AtomicUsize::new(0));
    let cp = client_pings.clone();
    node.on_client_ping(move |_s| {
        cp.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let c = Connector::new(ConnectorOptions {
        ping_interval: Duration::from_millis(20),
        pong_timeout: Duration::from_secs(5),
        ..opts(addr)
    })
    .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let l = latencies.clone();
    c.on_pong(move |d| l.lock().unwrap().push(d));
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    for _ in 0..3 {
        assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Ping);
        match next_lifecycle(&mut events).await {
            ClientEvent::Pong(latency) => assert!(latency < Duration::from_secs(5)),
            other => panic!("expected pong, got {other:?}"),
        }
    }
    assert_eq!(latencies.lock().unwrap().len(), 3);
    assert!(client_pings.load(Ordering::SeqCst) >= 3);
    assert!(c.is_open());
}

#[tokio::test]
async fn set_ping_interval_now_or_next_tick() {
    let (_node, addr) = start_default().await;
    let (c, mut events) = open_connector(opts(addr)).await;
    assert_eq!(c.ping_interval(), Duration::from_secs(3600));
    assert!(c.set_ping_interval(Duration::ZERO, true).is_err());
    c.set_ping_interval(Duration::from_millis(15), true)
        .unwrap();
    assert_eq!(c.ping_interval(), Duration::from_millis(15));
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Ping);
    assert!(matches!(
        next_lifecycle(&mut events).await,
        ClientEvent::Pong(_)
    ));
    // Not immediate: used from the next arming (after this reply).
    c.set_ping_interval(Duration::from_millis(10), false)
        .unwrap();
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Ping);
}

#[tokio::test]
async fn pong_timeout_closes_with_4002() {
    // The node's heartbeat string differs: it never echoes the client's.
    let mut obs = start_observed(Node::builder().heartbeat("other")).await;
    let (c, mut events) = open_connector(ConnectorOptions {
        ping_interval: Duration::from_millis(20),
        pong_timeout: Duration::from_millis(50),
        ..opts(obs.addr)
    })
    .await;
    let pending = c.emit_with_options(
        "nobody",
        &1,
        EmitOptions::new().timeout(Duration::from_secs(30)),
    );
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Ping);
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::PongTimeout);
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 4002,
            reason: "pong timeout".into()
        }
    );
    assert_eq!(recv(&mut obs.closes).await, (4002, "pong timeout".into()));
    assert_eq!(bounded(pending).await.unwrap_err().code(), "DISCONNECTED");
    // A clean close: nothing reconnects by itself.
    assert_eq!(c.state(), ReadyState::Closed);
    assert!(!c.reconnecting());
    assert_eq!(events.try_recv(), None);
}

#[tokio::test]
async fn reconnects_after_the_node_restarts_on_the_same_port() {
    let (node, addr) = echo_node().await;
    let c = Connector::new(opts(addr)).unwrap();
    // The original's documented pattern: reconnect from the close listener.
    let weak = c.downgrade();
    c.on_close(move |_code, _reason| {
        if let Some(c) = weak.upgrade() {
            c.reconnect(false);
        }
    });
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    assert_eq!(
        c.emit_with_callback("say", "one").await.unwrap(),
        Some(json!({"echo": "one"}))
    );

    node.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 1001,
            reason: "server shutting down".into()
        }
    );
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo {
            attempt: 1,
            delay: Duration::from_millis(20)
        })
    );
    // While the node is down, attempts fail and are retried automatically.
    wait_for(&mut events, |e| matches!(e, ClientEvent::Error(_))).await;
    wait_for(&mut events, |e| matches!(e, ClientEvent::Reconnect(_))).await;
    assert!(c.reconnecting());

    let node2 = start_on(Node::builder, addr).await;
    node2
        .on("say", |_s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            if let Some(r) = reply {
                r.send(&json!({ "again": payload })).unwrap();
            }
        })
        .unwrap();
    wait_open(&mut events).await;
    assert!(!c.reconnecting(), "the count resets on open");
    assert_eq!(
        c.emit_with_callback("say", "two").await.unwrap(),
        Some(json!({"again": "two"}))
    );
}

/// On tokio's paused clock: every attempt is refused at once by a loopback
/// port where nothing listens, so the clock only jumps over the backoffs.
#[tokio::test(start_paused = true)]
async fn repeat_limit_stops_the_retries() {
    let addr = free_addr();
    let c = Connector::new(ConnectorOptions {
        fast_reconnect_threshold: 2,
        fast_reconnect_interval: Duration::from_millis(10),
        reconnect_max_interval: Duration::from_millis(50),
        repeat_limit: Some(4),
        ..opts(addr)
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    let mut delays = Vec::new();
    loop {
        match next(&mut events).await {
            ClientEvent::Error(_) => {}
            ClientEvent::Reconnect(info) => {
                assert_eq!(info.attempt as usize, delays.len() + 1);
                delays.push(info.delay.as_millis());
            }
            ClientEvent::RepeatLimit(limit) => {
                assert_eq!(limit, 4);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delays, [10, 10, 20, 40]);
    assert!(c.reconnecting());
    assert_eq!(c.reconnect_attempts(), 4);
    assert_eq!(events.try_recv(), None, "nothing after the limit");

    // A manual reconnect with reset starts the schedule again.
    c.reconnect(true);
    assert_eq!(
        next(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo {
            attempt: 1,
            delay: Duration::from_millis(10)
        })
    );
}

#[tokio::test]
async fn custom_params_reach_the_connection_event() {
    let (node, addr) = start_default().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_connection(move |_s, hs| {
        tx.send((
            hs.uri.query().map(str::to_owned),
            hs.path().map(str::to_owned),
            serde_json::to_value(&hs.params.params).unwrap(),
        ))
        .unwrap();
        async {}
    });
    let opts = ConnectorOptions {
        url: format!("ws://{addr}/chat/room?pre=1"),
        custom_params: vec![
            ("id".into(), "u1".into()),
            ("name".into(), "Sam Smith".into()),
            ("q".into(), "a&b=c/d?é+*~".into()),
            ("n".into(), "42".into()),
        ],
        ..opts(addr)
    };
    let (_c, _events) = open_connector(opts).await;
    let (query, path, params) = recv(&mut rx).await;
    assert_eq!(
        query.as_deref(),
        Some("pre=1&id=u1&name=Sam+Smith&q=a%26b%3Dc%2Fd%3F%C3%A9%2B*%7E&n=42")
    );
    assert_eq!(path.as_deref(), Some("chat/room"));
    assert_eq!(
        params,
        json!({"pre": "1", "id": "u1", "name": "Sam Smith", "q": "a&b=c/d?é+*~", "n": "42"})
    );
}

#[tokio::test]
async fn abnormal_close_reconnects_automatically() {
    let mut obs = start_observed(Node::builder()).await;
    let (c, mut events) = open_connector(opts(obs.addr)).await;
    let socket = recv(&mut obs.sockets).await;
    socket.terminate();
    assert!(matches!(
        next_lifecycle(&mut events).await,
        ClientEvent::Error(_)
    ));
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 1006,
            reason: String::new()
        }
    );
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo {
            attempt: 1,
            delay: Duration::from_millis(20)
        })
    );
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Open);
    assert!(c.is_open());
    recv(&mut obs.sockets).await;
}

#[tokio::test]
async fn clean_close_leaves_reconnection_to_the_application() {
    let mut obs = start_observed(Node::builder()).await;
    let (c, mut events) = open_connector(opts(obs.addr)).await;
    let socket = recv(&mut obs.sockets).await;
    socket.close(4010, "Forced logout");
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Close {
            code: 4010,
            reason: "Forced logout".into()
        }
    );
    // The close and any automatic reconnection are decided in the same turn
    // of the connector's task, so a reconnection would already be queued.
    assert_eq!(events.try_recv(), None);
    assert_eq!(c.state(), ReadyState::Closed);

    c.reconnect(false);
    assert_eq!(
        next_lifecycle(&mut events).await,
        ClientEvent::Reconnect(ReconnectInfo {
            attempt: 1,
            delay: Duration::from_millis(20)
        })
    );
    assert_eq!(next_lifecycle(&mut events).await, ClientEvent::Open);
}

#[tokio::test]
async fn manual_close_sends_4001_and_stops_everything() {
    let mut obs = start_observed(Node::builder()).await;
    let (c, mut events) = open_connector(ConnectorOptions {
        ping_interval: Duration::from_millis(10),
        ..opts(obs.addr)
    })
    .await;
    let pending = c.emit_with_options(
        "nobody",
        &1,
        EmitOptions::new().timeout(Duration::from_secs(30)),
    );
    c.manual_close();
    assert_eq!(
        wait_for(&mut events, |e| matches!(e, ClientEvent::Close { .. })).await,
        ClientEvent::Close {
            code: 4001,
            reason: "client manual close".into()
        }
    );
    assert_eq!(bounded(pending).await.unwrap_err().code(), "DISCONNECTED");
    assert_eq!(
        recv(&mut obs.closes).await,
        (4001, "client manual close".into())
    );
    // reconnect() is refused after a manual close.
    c.reconnect(true);
    assert_eq!(c.emit("x", &1), Err(EmitError::NotOpen));
    // Heartbeat and reconnection are stopped: nothing more happens
    // (observation window of many heartbeat intervals).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(events.try_recv(), None);
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let mut obs = start_observed(Node::builder()).await;
    let (c, mut events) = open_connector(opts(obs.addr)).await;
    let weak = c.downgrade();
    drop(c);
    assert_eq!(recv(&mut obs.closes).await, (1001, "client dropped".into()));
    wait_for(&mut events, |e| {
        matches!(e, ClientEvent::Close { code: 1001, .. })
    })
    .await;
    let end = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert_eq!(end, None, "the stream ends with the task");
    assert!(weak.upgrade().is_none());
}

#[tokio::test]
async fn reconnecting_is_true_inside_open_listeners_after_a_reconnection() {
    let mut obs = start_observed(Node::builder()).await;
    let c = Connector::new(opts(obs.addr)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, weak) = (seen.clone(), c.downgrade());
    c.on_open(move || {
        if let Some(c) = weak.upgrade() {
            s.lock().unwrap().push(c.reconnecting());
        }
    });
    let mut events = c.subscribe();
    c.start();
    wait_open(&mut events).await;
    recv(&mut obs.sockets).await.terminate();
    wait_open(&mut events).await;
    assert_eq!(*seen.lock().unwrap(), [false, true]);
    assert!(!c.reconnecting());
}

#[tokio::test]
async fn a_failing_wss_attempt_is_an_error_and_retries() {
    // A plain-TCP node behind a wss:// URL: the TLS handshake fails (or,
    // without the `rustls` feature, TLS is not available). Either way it is
    // an `error` followed by a scheduled reconnection, never a panic.
    let (_node, addr) = start_default().await;
    let c = Connector::new(ConnectorOptions {
        url: format!("wss://{addr}/"),
        ..opts(addr)
    })
    .unwrap();
    let mut events = c.subscribe();
    c.start();
    for attempt in 1..=2 {
        match next(&mut events).await {
            ClientEvent::Error(e) => assert!(!e.is_empty()),
            other => panic!("expected an error, got {other:?}"),
        }
        assert!(matches!(
            next(&mut events).await,
            ClientEvent::Reconnect(ReconnectInfo { attempt: a, .. }) if a == attempt
        ));
    }
    c.manual_close();
}
