//! Hostile clients before and at the upgrade, and protocol violations after
//! it: every connection is bounded in time, bytes and count, and every
//! violation gets its RFC 6455 close code and is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::Node;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(key: &str, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads until the peer closes the connection; returns what it sent.
async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut out))
        .await
        .expect("connection not closed in time")
        .ok();
    out
}

/// The HTTP status line of a response.
fn status(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// An upgraded raw TCP connection (the 101 response read).
async fn raw_upgraded(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(upgrade_request(KEY, "").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(WAIT, tcp.read_exact(&mut byte))
            .await
            .expect("no upgrade response")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(status(&head).contains("101"), "{}", status(&head));
    tcp
}

/// A masked client frame with the given first byte (FIN, RSV, opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![first];
    assert!(payload.len() < 126);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads frames until a close frame arrives or the connection ends; returns
/// the close code.
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    let bytes = read_to_end(tcp).await;
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let len = usize::from(rest[1] & 0x7f);
        assert!(len < 126, "unexpected long frame");
        let payload = rest.get(2..2 + len)?;
        if opcode == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
        rest = &rest[2 + len..];
    }
    None
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_handshake_timeout() {
    let (node, addr) = start(Node::builder().handshake_timeout(Duration::from_millis(200))).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_to_end(&mut silent).await.is_empty());
    wait_until(|| node.stats().handshakes_timed_out == 1).await;
}

#[tokio::test]
async fn a_dripping_head_is_dropped_at_the_deadline_not_kept_alive_by_each_byte() {
    let (node, addr) = start(Node::builder().handshake_timeout(Duration::from_millis(300))).await;
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let request = upgrade_request(KEY, "");
    // One byte every 20 ms: 60 bytes would take 1.2 s, four times the
    // deadline, and the head is never finished.
    let drip = tokio::spawn(async move {
        for b in request.as_bytes().iter().take(60) {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::future::pending::<()>().await;
    });
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, read.read_to_end(&mut out))
        .await
        .expect("dripping connection not closed")
        .ok();
    assert!(!drip.is_finished() || out.is_empty());
    drip.abort();
    wait_until(|| node.stats().handshakes_timed_out == 1).await;
}

#[tokio::test]
async fn a_head_over_the_limit_is_refused_with_431() {
    let (node, addr) = start(Node::builder().max_handshake_size(8 * 1024)).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let pad = format!("X-Pad: {}\r\n", "a".repeat(20_000));
    // The server answers before it has read everything: ignore write errors.
    let _ = tcp.write_all(upgrade_request(KEY, &pad).as_bytes()).await;
    let response = read_to_end(&mut tcp).await;
    assert!(status(&response).contains("431"), "{}", status(&response));
    wait_until(|| node.stats().handshakes_too_large == 1).await;
}

#[tokio::test]
async fn silent_connections_over_the_limit_push_out_the_oldest_and_a_healthy_client_connects() {
    let (node, addr) = start(
        Node::builder()
            .max_pending_handshakes(20)
            .handshake_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The 30 oldest are pushed out as the newer ones arrive.
    for tcp in silent.iter_mut().take(30) {
        assert!(read_to_end(tcp).await.is_empty());
    }
    let mut ws = connect(addr, "").await;
    sync(&mut ws).await;
    assert!(node.stats().handshakes_evicted >= 30);
    assert_eq!(node.connection_count(), 1);
}

#[tokio::test]
async fn a_malformed_websocket_key_is_refused_with_400() {
    let (node, addr) = start(Node::builder()).await;
    for key in [
        "short",
        "dGhlIHNhbXBsZSBub25jZQ",    // no padding
        "dGhlIHNhbXBsZSBub25jZR==",  // 16 bytes with stray bits
        "dGhlIHNhbXBsZSBub25j!Q==",  // not base64
        "dGhlIHNhbXBsZSBub25jZQ===", // too long
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(upgrade_request(key, "").as_bytes())
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
        let response = read_to_end(&mut tcp).await;
        assert!(
            status(&response).contains("400"),
            "{key}: {}",
            status(&response)
        );
    }
    assert_eq!(node.stats().handshakes_bad_request, 5);
    assert_eq!(node.stats().connections_accepted, 0);
    // A valid key still upgrades.
    let mut ws = connect(addr, "").await;
    sync(&mut ws).await;
}

#[tokio::test]
async fn protocol_violations_are_closed_with_1002_and_counted() {
    let (node, addr) = start(Node::builder()).await;
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", unmasked),
        ("reserved bits", frame(0x80 | 0x40 | 0x1, b"hi")),
        ("unknown opcode", frame(0x80 | 0x3, b"hi")),
        ("continuation without start", frame(0x80, b"hi")),
        ("fragmented control frame", frame(0x9, b"")),
    ];
    for (name, bytes) in &cases {
        let mut tcp = raw_upgraded(addr).await;
        tcp.write_all(bytes).await.unwrap();
        assert_eq!(close_code(&mut tcp).await, Some(1002), "{name}");
    }
    // A control frame over 125 bytes (length 126 form).
    let mut tcp = raw_upgraded(addr).await;
    let mut big_ping = vec![0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0];
    big_ping.extend(std::iter::repeat_n(0u8, 200));
    tcp.write_all(&big_ping).await.unwrap();
    assert_eq!(
        close_code(&mut tcp).await,
        Some(1002),
        "oversized control frame"
    );
    wait_until(|| node.stats().protocol_error_closes == 6).await;
    assert!(node
        .metrics_text()
        .contains("crosswire_socket_closes_total{node=\"crosswire\",reason=\"protocol_error\"} 6"));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007_and_counted() {
    let (node, addr) = start(Node::builder()).await;
    let mut tcp = raw_upgraded(addr).await;
    tcp.write_all(&frame(0x81, &[0xff, 0xfe, 0x80]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut tcp).await, Some(1007));
    wait_until(|| node.stats().invalid_utf8_closes == 1).await;
}

#[tokio::test]
async fn a_socket_keeps_a_bounded_copy_of_its_headers() {
    let (node, addr) = start(
        Node::builder()
            .max_handshake_size(512 * 1024)
            .kept_header_bytes(1024),
    )
    .await;
    let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    node.on_connection(move |socket, _| {
        let _ = tx.send(socket);
        async {}
    });
    let mut request = format!("ws://{addr}/?id=u1").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-big", "a".repeat(400_000).parse().unwrap());
    request
        .headers_mut()
        .insert("x-small", "kept".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let socket = sockets.recv().await.unwrap();
    let hs = socket.handshake();
    assert!(hs.headers.get("x-big").is_none());
    assert_eq!(hs.headers.get("x-small").unwrap(), "kept");
    assert_eq!(hs.param("id"), Some("u1"));
    // The handshake's own headers are not kept; the others are.
    assert!(hs.headers.get("host").is_some());
    for name in [
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
    ] {
        assert!(hs.headers.get(name).is_none(), "{name} kept");
    }
    // Sized to what is kept (a map grown from empty has room for 6).
    assert!(
        hs.headers.capacity() < 6,
        "{} slots for {} headers",
        hs.headers.capacity(),
        hs.headers.len()
    );
    let kept: usize = hs
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    assert!(kept <= 1024, "{kept}");
}

#[tokio::test]
async fn the_upgrade_hook_sees_every_header_and_the_socket_keeps_the_named_ones() {
    let node = Node::builder()
        .max_handshake_size(512 * 1024)
        .keep_headers(["X-Big"])
        .on_upgrade(|hs| async move {
            assert_eq!(hs.headers.get("x-big").map(|v| v.len()), Some(100_000));
            assert!(hs.headers.get("x-other").is_some());
            Ok(())
        })
        .build()
        .unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
    node.on_connection(move |socket, _| {
        let _ = tx.send(socket);
        async {}
    });
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-big", "a".repeat(100_000).parse().unwrap());
    request
        .headers_mut()
        .insert("x-other", "dropped".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let socket = sockets.recv().await.unwrap();
    let headers = &socket.handshake().headers;
    assert_eq!(headers.len(), 1);
    assert_eq!(headers.get("x-big").map(|v| v.len()), Some(100_000));
}

#[tokio::test]
async fn same_origin_allows_the_nodes_own_pages_and_programs_only() {
    let (node, addr) = start(Node::builder().same_origin(true)).await;
    let with_origin = |origin: String| {
        let mut request = format!("ws://{addr}/").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        request
    };
    let refused =
        tokio_tungstenite::connect_async(with_origin("https://evil.example".into())).await;
    assert!(matches!(
        refused,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403
    ));
    let other_port = format!("http://127.0.0.1:{}", addr.port().wrapping_add(1));
    assert!(tokio_tungstenite::connect_async(with_origin(other_port))
        .await
        .is_err());
    tokio_tungstenite::connect_async(with_origin(format!("http://{addr}")))
        .await
        .unwrap();
    // No Origin: a program, not a page.
    let mut ws = connect(addr, "").await;
    sync(&mut ws).await;
    assert_eq!(node.stats().connections_refused, 2);
}

#[tokio::test]
async fn health_answers_on_the_same_listener_while_silent_sockets_wait() {
    let node = Node::builder().max_pending_handshakes(10).build().unwrap();
    let app = axum::Router::new()
        .route("/ws", node.ws_route())
        .route("/health", node.health_route());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn({
        let node = node.clone();
        async move { node.serve(listener, app).await }
    });
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = read_to_end(&mut tcp).await;
    assert!(status(&response).contains("200"), "{}", status(&response));
    node.shutdown(Duration::from_secs(1)).await;
}
