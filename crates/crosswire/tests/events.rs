//! Client events, callbacks, heartbeats and system events over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::{Node, Refusal};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test]
async fn event_with_callback_gets_reply_in_original_key_order() {
    let (node, addr) = start(Node::builder()).await;
    node.on("say", |_s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
        reply.unwrap().send(&json!({"got": payload})).unwrap();
    })
    .unwrap();
    let mut ws = connect(addr, "").await;
    send_text(
        &mut ws,
        r#"{"event":"say","payload":{"hello":"world","n":1.5},"callbackId":"mwyihlrn-18kj-1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":{"got":{"hello":"world","n":1.5}},"callbackId":"mwyihlrn-18kj-1"}"#
    );
}

#[tokio::test]
async fn empty_reply_omits_payload_and_null_is_kept() {
    let (node, addr) = start(Node::builder()).await;
    node.on(
        "a",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            reply.unwrap().send_empty().unwrap()
        },
    )
    .unwrap();
    node.on(
        "b",
        |_s: crosswire::Socket, _p: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            reply.unwrap().send(&Value::Null).unwrap()
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, r#"{"event":"a","payload":1,"callbackId":"x-3"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"callbackId":"x-3"}"#);
    send_text(&mut ws, r#"{"event":"b","payload":1,"callbackId":"x-4"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":null,"callbackId":"x-4"}"#
    );
}

#[tokio::test]
async fn callback_id_validity_decides_the_reply_handle() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on(
        "e",
        move |_s: crosswire::Socket,
              payload: serde_json::Value,
              reply: Option<crosswire::Reply>| {
            let tx = tx.clone();
            async move {
                tx.send((payload, reply.is_some())).unwrap();
                if let Some(r) = reply {
                    r.send(&"ok").unwrap();
                }
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    let id64 = "a".repeat(64);
    let id65 = "a".repeat(65);
    for (id, expect) in [
        (json!(id64), true),
        (json!(id65), false),
        (json!(12345), false),
        (json!(""), false),
    ] {
        let frame = json!({"event":"e","payload":1,"callbackId":id});
        send_text(&mut ws, &frame.to_string()).await;
        let (payload, has_reply) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payload, json!(1));
        assert_eq!(has_reply, expect, "callback id {id}");
    }
    // Only the 64-character id was answered.
    sync(&mut ws).await; // would fail if an unexpected reply came first
    let _ = id64;
}

#[tokio::test]
async fn a_reply_may_be_sent_many_times_and_is_shared_by_handlers() {
    let (node, addr) = start(Node::builder()).await;
    node.on(
        "e",
        |_s: crosswire::Socket, _p: serde_json::Value, r: Option<crosswire::Reply>| async move {
            r.unwrap().send(&1).unwrap()
        },
    )
    .unwrap();
    node.on(
        "e",
        |_s: crosswire::Socket, _p: serde_json::Value, r: Option<crosswire::Reply>| async move {
            let r = r.unwrap();
            r.send(&2).unwrap();
            r.send(&3).unwrap();
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, r#"{"event":"e","payload":0,"callbackId":"c"}"#).await;
    for n in 1..=3 {
        assert_eq!(
            next_json(&mut ws).await,
            json!({"payload": n, "callbackId": "c"})
        );
    }
}

#[tokio::test]
async fn heartbeat_default_empty_string_is_echoed_and_fires_client_ping() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_client_ping(move |s| {
        let tx = tx.clone();
        async move { tx.send(s.id()).unwrap() }
    });
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, "").await;
    assert_eq!(next_text(&mut ws).await, "");
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // An empty binary frame is a heartbeat too, answered with a text frame.
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::binary(
        Vec::<u8>::new(),
    ))
    .await
    .unwrap();
    assert_eq!(next_text(&mut ws).await, "");
}

#[tokio::test]
async fn heartbeat_custom_string_is_echoed_unchanged() {
    let (_node, addr) = start(Node::builder().heartbeat("ping")).await;
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws).await, "ping");
    // The empty string is no heartbeat on this node: dropped, no answer.
    send_text(&mut ws, "").await;
    send_text(&mut ws, "ping").await;
    assert_eq!(next_text(&mut ws).await, "ping");
}

#[tokio::test]
async fn binary_frames_are_read_as_utf8_text_and_answered_with_text() {
    let (node, addr) = start(Node::builder()).await;
    node.on(
        "e",
        |_s: crosswire::Socket, p: serde_json::Value, r: Option<crosswire::Reply>| async move {
            r.unwrap().send(&p).unwrap()
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::binary(
        br#"{"event":"e","payload":"bin","callbackId":"b1"}"#.to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":"bin","callbackId":"b1"}"#
    );
    // Invalid UTF-8 is dropped and counted.
    ws.send(Message::binary(vec![0xff, 0xfe])).await.unwrap();
    sync(&mut ws).await;
    assert_eq!(node.stats().frames_dropped_invalid, 1);
}

#[tokio::test]
async fn connection_event_sees_params_and_path_like_parse_ws_request_params() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_connection(move |_s, hs| {
        let tx = tx.clone();
        async move { tx.send(serde_json::to_value(&hs.params).unwrap()).unwrap() }
    });
    let _ws = connect(
        addr,
        "chat/room?pre=1&id=u1&name=Sam+Smith&q=a%26b%3Dc%2Fd%3F%C3%A9%2B*%7E&n=42&arr=1%2C2&obj=%5Bobject+Object%5D&nul=null&und=undefined",
    )
    .await;
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let want: Value = serde_json::from_str(r#"{"params":{"pre":"1","id":"u1","name":"Sam Smith","q":"a&b=c/d?é+*~","n":"42","arr":"1,2","obj":"[object Object]","nul":"null","und":"undefined"},"path":"chat/room"}"#).unwrap();
    assert_eq!(got, want);
}

#[tokio::test]
async fn close_event_reports_code_and_reason_then_node_unbinds() {
    let (node, addr) = start_binding(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = node.clone();
    node.on_close(move |s, info| {
        let tx = tx.clone();
        let n = n.clone();
        async move {
            // Still bound and in its rooms while the close handlers run.
            let bound = n.get_socket("u1").is_some_and(|b| b == s);
            tx.send((info, bound, n.is_joined_room("u1", "chat", Some("r1"))))
                .unwrap();
        }
    });
    let mut ws = connect_id(&node, addr, "u1").await;
    node.join_room("chat", "r1", "u1").unwrap();
    close_with(&mut ws, 4001, "client manual close").await;
    let (info, bound, joined) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.code, info.reason.as_str()),
        (4001, "client manual close")
    );
    assert!(bound && joined);
    wait_until(|| node.get_socket("u1").is_none()).await;
    assert!(!node.is_joined_room("u1", "chat", None));
    assert_eq!(node.room_count("chat", crosswire::Match::Exact), 0);
    assert_eq!(node.connection_count(), 0);
}

#[tokio::test]
async fn message_event_fires_after_every_frame_including_dropped_ones() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_message(move |_s, text| {
        let tx = tx.clone();
        async move { tx.send(text.as_str().to_owned()).unwrap() }
    });
    let mut ws = connect(addr, "").await;
    for f in ["not json", r#"{"event":"nobody"}"#, ""] {
        send_text(&mut ws, f).await;
        assert_eq!(
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap(),
            f
        );
    }
}

#[tokio::test]
async fn once_fires_once_and_off_removes_by_handler_and_by_tag() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let t = tx.clone();
    node.once(
        "e",
        move |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| {
            let t = t.clone();
            async move { t.send("once").unwrap() }
        },
    )
    .unwrap();
    let t = tx.clone();
    let id = node
        .on(
            "e",
            move |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| {
                let t = t.clone();
                async move { t.send("plain").unwrap() }
            },
        )
        .unwrap();
    let t = tx.clone();
    node.on_tagged(
        "e",
        "grp",
        move |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| {
            let t = t.clone();
            async move { t.send("tagged").unwrap() }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    async fn round(ws: &mut Ws, rx: &mut mpsc::UnboundedReceiver<&'static str>, expect: Vec<&str>) {
        send_text(ws, r#"{"event":"e","payload":1}"#).await;
        sync(ws).await;
        let mut got = Vec::new();
        while let Ok(x) = rx.try_recv() {
            got.push(x);
        }
        assert_eq!(got, expect);
    }
    round(&mut ws, &mut rx, vec!["once", "plain", "tagged"]).await;
    round(&mut ws, &mut rx, vec!["plain", "tagged"]).await;
    assert!(node.off_handler(id));
    round(&mut ws, &mut rx, vec!["tagged"]).await;
    assert_eq!(node.off_tag("e", "grp"), 1);
    round(&mut ws, &mut rx, vec![]).await;
    assert_eq!(node.stats().frames_dropped_unhandled, 1);
}

#[tokio::test]
async fn handlers_run_in_frame_order_and_a_slow_handler_does_not_block() {
    let (node, addr) = start(Node::builder()).await;
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Notify::new());
    let (o, g) = (order.clone(), gate.clone());
    node.on(
        "slow",
        move |_s: crosswire::Socket, _p: serde_json::Value, r: Option<crosswire::Reply>| {
            let (o, g) = (o.clone(), g.clone());
            async move {
                o.lock().push("slow-start");
                g.notified().await; // waits until the fast frame was handled
                o.lock().push("slow-end");
                r.unwrap().send(&"slow").unwrap();
            }
        },
    )
    .unwrap();
    let (o, g) = (order.clone(), gate.clone());
    node.on(
        "fast",
        move |_s: crosswire::Socket, _p: serde_json::Value, r: Option<crosswire::Reply>| {
            let (o, g) = (o.clone(), g.clone());
            async move {
                o.lock().push("fast");
                r.unwrap().send(&"fast").unwrap();
                g.notify_one();
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, r#"{"event":"slow","payload":1,"callbackId":"1"}"#).await;
    send_text(&mut ws, r#"{"event":"fast","payload":1,"callbackId":"2"}"#).await;
    assert_eq!(next_json(&mut ws).await["payload"], "fast");
    assert_eq!(next_json(&mut ws).await["payload"], "slow");
    assert_eq!(*order.lock(), vec!["slow-start", "fast", "slow-end"]);
}

#[tokio::test]
async fn reserved_names_cannot_be_registered_as_client_events() {
    let node = Node::builder().build().unwrap();
    for name in [
        "connection",
        "close",
        "error",
        "pong",
        "message",
        "client-ping",
        "_Cs_Cb_",
    ] {
        let r = node.on(
            name,
            |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| async {},
        );
        assert!(
            matches!(r, Err(crosswire::Error::ReservedEvent(_))),
            "{name}"
        );
    }
    assert!(node
        .on(
            "",
            |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| async {}
        )
        .is_err());
}

#[tokio::test]
async fn defect_04_upgrade_hook_refuses_with_http_status_before_upgrade() {
    let node = Node::builder()
        .on_upgrade(|hs| async move {
            if hs.param("token") == Some("good") && hs.headers.contains_key("host") {
                hs.insert_data(String::from("alice"));
                Ok(())
            } else {
                Err(Refusal::new(http::StatusCode::UNAUTHORIZED, "bad token"))
            }
        })
        .build()
        .unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_connection(move |s, _| {
        let tx = tx.clone();
        async move { tx.send(s.data::<String>()).unwrap() }
    });
    let err = tokio_tungstenite::connect_async(format!("ws://{addr}/?token=bad"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    let _ws = connect(addr, "?token=good").await;
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn ws_route_mounts_on_an_application_router() {
    let node = Node::builder().build().unwrap();
    node.on(
        "e",
        |_s: crosswire::Socket, p: serde_json::Value, r: Option<crosswire::Reply>| async move {
            r.unwrap().send(&p).unwrap()
        },
    )
    .unwrap();
    let app = axum::Router::new()
        .route("/ws", node.ws_route())
        .route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ws = connect(addr, "ws?id=1").await;
    send_text(&mut ws, r#"{"event":"e","payload":[1],"callbackId":"k"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":[1],"callbackId":"k"}"#
    );
}

#[tokio::test]
async fn protocol_ping_terminates_a_client_that_stops_answering() {
    let (node, addr) =
        start(Node::builder().server_ping_interval(Duration::from_millis(100))).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_close(move |_s, info| {
        let tx = tx.clone();
        async move { tx.send(info.code).unwrap() }
    });
    let (ptx, mut prx) = mpsc::unbounded_channel();
    node.on_pong(move |_s, _p| {
        let ptx = ptx.clone();
        async move {
            let _ = ptx.send(());
        }
    });
    // A client that reads (and so answers pings) stays connected across ticks.
    let mut alive = connect(addr, "").await;
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = alive.next().await {}
    });
    // A client that never reads never answers.
    let _silent = connect(addr, "").await;
    tokio::time::timeout(WAIT, prx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        1006
    );
    assert_eq!(node.stats().liveness_terminations, 1);
    assert_eq!(node.connection_count(), 1);
    reader.abort();
}

#[tokio::test]
async fn background_sockets_are_terminated_after_the_close_time() {
    let (node, addr) = start(
        Node::builder()
            .server_ping_interval(Duration::from_millis(50))
            .enter_background_close_time(Duration::from_millis(120)),
    )
    .await;
    node.on(
        "bg",
        |s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| async move {
            s.enter_background()
        },
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_close(move |_s, info| {
        let tx = tx.clone();
        async move { tx.send(info.code).unwrap() }
    });
    let mut ws = connect(addr, "").await;
    let started = std::time::Instant::now();
    send_text(&mut ws, r#"{"event":"bg","payload":1}"#).await;
    // Keep answering pings: only the background rule can close it.
    let reader = tokio::spawn(async move { closed(&mut ws).await });
    assert_eq!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap(),
        1006
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(node.stats().background_terminations, 1);
    let _ = reader.await;
}

#[tokio::test]
async fn socket_close_sends_code_and_reason() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut ws = connect(addr, "").await; // no id: refused with 4011
    assert_eq!(closed(&mut ws).await, Some(4011));
    let mut ws = connect_id(&node, addr, "u1").await;
    node.get_socket("u1")
        .unwrap()
        .close(4012, "Kicked by concurrent login");
    assert_eq!(closed(&mut ws).await, Some(4012));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_releases_the_port() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_server_close(move || {
        let tx = tx.clone();
        async move { tx.send(()).unwrap() }
    });
    let mut a = connect(addr, "").await;
    let mut b = connect(addr, "").await;
    let closer = tokio::spawn(async move { (closed(&mut a).await, closed(&mut b).await) });
    node.shutdown(Duration::from_secs(5)).await;
    assert_eq!(closer.await.unwrap(), (Some(1001), Some(1001)));
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // The port is free again: a new node takes it.
    let again = Node::builder().build().unwrap();
    let addr2 = again.listen(addr).await.unwrap();
    assert_eq!(addr, addr2);
    let _ws = connect(addr2, "").await;
}

#[tokio::test]
async fn handler_panic_does_not_kill_the_connection() {
    let (node, addr) = start(Node::builder()).await;
    node.on(
        "boom",
        |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| async move {
            if true {
                panic!("handler bug")
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    send_text(&mut ws, r#"{"event":"boom","payload":1}"#).await;
    sync(&mut ws).await;
    assert_eq!(node.connection_count(), 1);
}
