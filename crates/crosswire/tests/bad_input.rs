//! Hostile and malformed input, slow consumers, and one regression test per
//! server-side weakness of the original (`docs/compatibility.md`, the
//! "Server" sections) that applies to a single node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::{Node, SlowConsumerPolicy};
use futures_util::SinkExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Defect 1: `{"event":"constructor"}` (and other prototype keys) crashed the
/// original's whole process.
#[tokio::test]
async fn defect_01_prototype_key_event_names_do_not_crash() {
    let (node, addr) = start(Node::builder()).await;
    let mut ws = connect(addr, "").await;
    for name in [
        "constructor",
        "__proto__",
        "toString",
        "hasOwnProperty",
        "valueOf",
    ] {
        send_text(
            &mut ws,
            &json!({"event": name, "payload": 1, "callbackId": "x"}).to_string(),
        )
        .await;
    }
    sync(&mut ws).await;
    assert_eq!(node.stats().frames_dropped_unhandled, 5);
    assert_eq!(node.connection_count(), 1);
}

/// Defect 2: a client frame named like a system event ran the application's
/// system handlers (`close` ⇒ removeUserSocket, `connection` ⇒ hijack).
#[tokio::test]
async fn defect_02_client_frames_cannot_fire_system_events() {
    let (node, addr) = start_binding(Node::builder()).await;
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    node.on_close(move |_s, _i| {
        let f = f.clone();
        async move {
            f.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut ws = connect_id(&node, addr, "attacker").await;
    for name in [
        "close",
        "connection",
        "error",
        "pong",
        "message",
        "client-ping",
        "listening",
        "server-error",
        "ws-server-close",
        "_Cs_Cb_",
    ] {
        let frame = json!({"event": name, "payload": {"url": "/?id=victim", "headers": {}}});
        send_text(&mut ws, &frame.to_string()).await;
    }
    sync(&mut ws).await;
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    assert!(node.get_socket("victim").is_none());
    assert!(node.get_socket("attacker").is_some());
    assert_eq!(node.stats().frames_dropped_reserved, 10);
}

/// Defect 6: no size limit (100 MiB) and a log line with a stack trace per bad
/// frame. Oversize frames close with 1009; bad frames are counted.
#[tokio::test]
async fn defect_06_oversize_frames_close_with_1009() {
    let (node, addr) = start(Node::builder().max_frame_size(1024)).await;
    let mut ws = connect(addr, "").await;
    let big = format!(r#"{{"event":"e","payload":"{}"}}"#, "x".repeat(2000));
    send_text(&mut ws, &big).await;
    assert_eq!(closed(&mut ws).await, Some(1009));
    wait_until(|| node.connection_count() == 0).await;
    assert_eq!(node.stats().frames_oversize, 1);
}

#[tokio::test]
async fn malformed_frames_are_dropped_and_counted() {
    let (node, addr) = start(Node::builder()).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    node.on(
        "e",
        move |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    let bad = [
        "not json",
        "null",
        "5",
        "[1,2]",
        "\"str\"",
        "{}",
        r#"{"event":""}"#,
        r#"{"event":5}"#,
        r#"{"event":null}"#,
        r#"{"event":["e"]}"#,
        r#"{"event":"e""#,
        "{\"event\":\"e\",\"payload\":}",
    ];
    for f in bad {
        send_text(&mut ws, f).await;
    }
    sync(&mut ws).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(node.stats().frames_dropped_invalid, bad.len() as u64);
    // A valid frame without payload still reaches its handler.
    send_text(&mut ws, r#"{"event":"e"}"#).await;
    sync(&mut ws).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// Defect 7: `parseWsRequestParams` used a plain object, so `__proto__` and
/// `toString` keys misbehaved.
#[tokio::test]
async fn defect_07_prototype_named_query_keys_are_plain_keys() {
    let (node, addr) = start(Node::builder()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_connection(move |_s, hs| {
        let tx = tx.clone();
        async move {
            tx.send(serde_json::to_value(&hs.params.params).unwrap())
                .unwrap()
        }
    });
    let _ws = connect(addr, "?__proto__=x&toString=y&constructor=z").await;
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        json!({"__proto__": "x", "toString": "y", "constructor": "z"})
    );
}

/// Defect 22: with the documented pattern, a quick re-login of the same user
/// was unbound when the old socket's close fired.
#[tokio::test]
async fn defect_22_relogin_is_not_unbound_by_the_old_sockets_close() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut old = connect_id(&node, addr, "u1").await;
    let first = node.get_socket("u1").unwrap();
    node.join_room("chat", "r1", "u1").unwrap();
    let _new = connect(addr, "?id=u1").await;
    wait_until(|| node.get_socket("u1").is_some_and(|s| s != first)).await;
    close_with(&mut old, 1000, "bye").await;
    wait_until(|| node.connection_count() == 1).await;
    let bound = node.get_socket("u1").expect("the new login stays bound");
    assert!(bound != first && bound.is_open());
    assert!(node.is_joined_room("u1", "chat", Some("r1")));
}

/// Defect 22 (second half): `getJoinedRooms` returned the live internal map.
#[tokio::test]
async fn defect_22_joined_rooms_is_a_copy() {
    let node = Node::builder().build().unwrap();
    node.join_room("chat", "r1", "a").unwrap();
    let mut copy = node.joined_rooms("a", None).unwrap();
    copy.clear();
    assert!(node.is_joined_room("a", "chat", Some("r1")));
}

/// Defect 10 (node side): when members disconnect, their namespaces are
/// cleaned up.
#[tokio::test]
async fn defect_10_disconnect_cleans_empty_namespaces() {
    let (node, addr) = start_binding(Node::builder()).await;
    let mut ws = connect_id(&node, addr, "a").await;
    node.join_room("chat", "r1", "a").unwrap();
    close_with(&mut ws, 1000, "").await;
    wait_until(|| node.connection_count() == 0).await;
    assert!(node.room_namespaces().is_empty());
}

#[tokio::test]
async fn a_flood_of_frames_is_handled_without_harm() {
    let (node, addr) = start(Node::builder()).await;
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    node.on(
        "f",
        move |_s: crosswire::Socket, _p: serde_json::Value, _r: Option<crosswire::Reply>| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
            }
        },
    )
    .unwrap();
    let mut ws = connect(addr, "").await;
    for i in 0..20_000 {
        let frame = if i % 2 == 0 {
            r#"{"event":"f","payload":1}"#
        } else {
            "garbage"
        };
        ws.feed(Message::text(frame)).await.unwrap();
    }
    ws.flush().await.unwrap();
    sync(&mut ws).await;
    assert_eq!(count.load(Ordering::Relaxed), 10_000);
    assert_eq!(node.stats().frames_dropped_invalid, 10_000);
}

/// A client that stops reading: its queue fills, the node closes it with 4003
/// (policy Close), and other clients keep receiving. Memory stays bounded by
/// the queue bound.
#[tokio::test]
async fn slow_consumer_is_closed_with_4003_and_others_are_unaffected() {
    let (node, addr) = start_binding(Node::builder().outbound_queue(64)).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.on_close(move |s, info| {
        let tx = tx.clone();
        async move { tx.send((s.socket_ids(), info.code)).unwrap() }
    });
    let _stalled = connect_id(&node, addr, "slow").await; // never read
    let mut healthy = connect_id(&node, addr, "ok").await;
    let payload = "x".repeat(16 * 1024);
    let mut i = 0u64;
    // Send until the stalled socket is closed (bounded: it must happen well
    // before the kernel buffers could absorb this much).
    while node.stats().slow_consumer_closes == 0 {
        assert!(i < 100_000, "slow consumer never detected");
        node.to_socket_id("slow", "big", &payload).unwrap();
        if i.is_multiple_of(64) {
            node.to_socket_id("ok", "tick", &i).unwrap();
            assert_eq!(next_json(&mut healthy).await["payload"], json!(i));
        }
        i += 1;
        tokio::task::yield_now().await;
    }
    let (_ids, code) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // The socket never read, so it never saw the close frame: the node gave
    // up on the close handshake.
    assert!(code == 1006 || code == 4003, "code {code}");
    node.to_socket_id("ok", "after", &1).unwrap();
    assert_eq!(
        next_text(&mut healthy).await,
        r#"{"event":"after","payload":1}"#
    );
}

#[tokio::test]
async fn slow_consumer_drop_policy_keeps_the_socket_and_counts() {
    let (node, addr) = start_binding(
        Node::builder()
            .outbound_queue(8)
            .slow_consumer(SlowConsumerPolicy::DropFrame),
    )
    .await;
    let mut ws = connect_id(&node, addr, "a").await;
    let payload = "y".repeat(64 * 1024);
    while node.stats().frames_dropped_slow == 0 {
        node.to_socket_id("a", "big", &payload).unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(node.stats().slow_consumer_closes, 0);
    // The socket still works once it reads again.
    let sock = node.get_socket("a").unwrap();
    assert!(sock.is_open());
    drop(sock);
    let _ = next_text(&mut ws).await;
}

/// `close()` on a socket that stopped reading, with more queued than the
/// kernel buffers take: the writer must not hang on the drain, and the
/// connection ends (its close handlers run, its id is released).
#[tokio::test]
async fn close_of_a_stalled_socket_with_a_full_queue_does_not_hang() {
    let (node, addr) = start_binding(
        Node::builder()
            .outbound_queue(4096)
            .outbound_queue_bytes(64 << 20),
    )
    .await;
    let _stalled = connect_id(&node, addr, "s").await; // never read
    let socket = node.get_socket("s").unwrap();
    let payload = "z".repeat(16 * 1024);
    for _ in 0..3000 {
        socket.emit("big", &payload).unwrap();
    }
    socket.close(4012, "bye");
    wait_until(|| node.connection_count() == 0 && node.get_socket("s").is_none()).await;
}
