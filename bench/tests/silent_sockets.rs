//! 19,000 connections that never send their upgrade request (or drip it),
//! against a bench-server in its own process: a healthy client still
//! connects and gets its echo while they are held, `/metrics` answers, and
//! every one of them is closed once the handshake timeout passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::eventually;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SILENT: usize = 19_000;
/// Long enough for a debug build on a busy 2-core machine to open them all
/// before the first one times out.
const HANDSHAKE_TIMEOUT_MS: u64 = 25_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_do_not_keep_a_healthy_client_out_and_are_all_closed() {
    let server = Server::start(&[
        "--handshake-timeout-ms",
        &HANDSHAKE_TIMEOUT_MS.to_string(),
        "--max-pending-handshakes",
        "20000",
    ])
    .await;
    let started = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        if i % 2 == 1 {
            // Half of them start a request and never finish it.
            use tokio::io::AsyncWriteExt;
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        silent.push(tcp);
    }
    let opened = started.elapsed();
    // The server holds them all (descriptors, not just the kernel's queue).
    let what = format!("the server to hold {SILENT} sockets");
    eventually(WAIT, &what, || server.open_fds() >= SILENT).await;

    // A healthy client connects and echoes.
    let t = Instant::now();
    let url = format!("ws://{}/?id=healthy", server.addr);
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("healthy client connects")
        .unwrap();
    ws.send(Message::text(
        r#"{"event":"echo","payload":{"n":1},"callbackId":"c1"}"#,
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("echo reply");
    let echoed = t.elapsed();
    let reply = reply.unwrap().unwrap().into_text().unwrap();
    assert!(reply.contains("c1"), "{reply}");
    // It was served while every silent socket was still held: none had
    // timed out yet.
    assert_eq!(
        server
            .metric("crosswire_handshakes_failed_total{node=\"n1\",reason=\"timeout\"}")
            .await,
        0.0
    );
    assert_eq!(
        server
            .metric("crosswire_handshakes_failed_total{node=\"n1\",reason=\"evicted\"}")
            .await,
        0.0
    );

    // Every silent socket is closed by the server.
    let t = Instant::now();
    let reads = silent.into_iter().map(|mut tcp| async move {
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.ok();
    });
    let limit = Duration::from_millis(HANDSHAKE_TIMEOUT_MS) + WAIT;
    tokio::time::timeout(limit, futures_util::future::join_all(reads))
        .await
        .expect("every silent socket closed");
    let all_closed = t.elapsed();
    assert_eq!(
        server
            .metric("crosswire_handshakes_failed_total{node=\"n1\",reason=\"timeout\"}")
            .await,
        SILENT as f64
    );
    println!(
        "{SILENT} silent sockets opened in {opened:?}; healthy client connected and echoed in \
         {echoed:?}; all closed {all_closed:?} after the echo (handshake timeout \
         {HANDSHAKE_TIMEOUT_MS} ms)"
    );
}
