//! bench-server's TLS flags against real parts: `--tls-cert`/`--tls-key`
//! serve `wss://` (and `/health` over HTTPS), `--redis rediss://…` with
//! `--redis-ca` reaches a `redis-server` that speaks TLS only; certificates
//! are made in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::{eventually_async, http_get, RedisServer, TestPki};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

/// `GET path` over TLS (trusting `pki`'s authority): the whole response.
async fn https_get(addr: SocketAddr, path: &str, pki: &TestPki) -> String {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server may end the TLS session without close_notify.
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_rediss_from_the_flags() {
    let pki = TestPki::new("bench-server");
    let redis = RedisServer::start_tls(&pki, false);
    let (cert, key, ca) = (pki.server_cert_path(), pki.server_key_path(), pki.ca_path());
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--redis",
        &redis.tls_url(),
        "--redis-ca",
        ca.to_str().unwrap(),
        "--nodes",
        "1",
    ])
    .await;

    // The bus reaches Redis over TLS: the node reports itself healthy.
    eventually_async(WAIT, "/health answers 200", || async {
        https_get(server.metrics, "/health", &pki)
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;

    // A WebSocket client over TLS gets its echo.
    let url = format!("wss://localhost:{}/?id=u1", server.addr.port());
    let connector = Connector::Rustls(pki.client_config());
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector));
    let (mut ws, _) = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("wss client connects in time")
        .unwrap();
    ws.send(Message::text(
        r#"{"event":"echo","payload":{"n":1},"callbackId":"c1"}"#,
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        reply.into_text().unwrap().as_str(),
        r#"{"payload":{"n":1},"callbackId":"c1"}"#
    );

    // A plain client gets nothing from the TLS port.
    let plain = tokio_tungstenite::connect_async(format!("ws://{}/?id=u2", server.addr)).await;
    assert!(plain.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_ca_that_did_not_sign_the_server_leaves_the_node_unhealthy() {
    let pki = TestPki::new("bench-redis");
    let redis = RedisServer::start_tls(&pki, false);
    let stranger = TestPki::new("bench-stranger");
    let ca = stranger.ca_path();
    let server = Server::start(&[
        "--redis",
        &redis.tls_url(),
        "--redis-ca",
        ca.to_str().unwrap(),
        "--nodes",
        "1",
    ])
    .await;
    // The first connection attempts have ended when the server listens.
    let response = http_get(server.metrics, "/health").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains(r#""healthy":false"#), "{response}");
}
