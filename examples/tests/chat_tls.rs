//! The chat demo with its TLS flags, against real parts: the page and
//! `/health` over HTTPS, the WebSocket as `wss://`, and the bus over
//! `rediss://` to a `redis-server` that speaks TLS only; certificates are
//! made in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::{eventually_async, within, RedisServer, TestPki, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

/// `GET path` over TLS on `localhost:port`, trusting `pki`'s authority: the
/// whole response.
async fn https_get(port: u16, path: &str, pki: &TestPki) -> String {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server may end the TLS session without close_notify.
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// The next text frame as JSON.
async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Value {
    loop {
        match within(WAIT, ws.next()).await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_serves_https_and_wss_over_a_rediss_bus() {
    let pki = TestPki::new("chat");
    let redis = RedisServer::start_tls(&pki, false);
    let (cert, key, ca) = (pki.server_cert_path(), pki.server_key_path(), pki.ca_path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["--port", "0", "--host", "127.0.0.1", "--name", "tls-1"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--redis", &redis.tls_url()])
        .arg("--redis-ca")
        .arg(&ca)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the chat program starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = within(WAIT, lines.next_line())
            .await
            .unwrap()
            .expect("chat printed where it listens");
        if let Some(url) = line.split("listening on ").nth(1) {
            assert!(url.starts_with("https://127.0.0.1:"), "{line}");
            break url
                .trim_start_matches("https://127.0.0.1:")
                .trim_end_matches('/')
                .parse()
                .unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The bus reaches Redis over TLS: healthy.
    eventually_async(WAIT, "/health answers 200", || async {
        https_get(port, "/health", &pki)
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;
    let page = https_get(port, "/", &pki).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<html"), "{page}");

    // A WebSocket over TLS joins a room and gets its callback.
    let url = format!("wss://localhost:{port}/ws");
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(Connector::Rustls(pki.client_config())),
    );
    let (mut ws, _) = within(WAIT, connecting).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["event"], "welcome", "{welcome}");
    ws.send(Message::text(
        r#"{"event":"join","payload":{"name":"ann","room":"lobby"},"callbackId":"j-1"}"#,
    ))
    .await
    .unwrap();
    let reply = loop {
        let frame = next_json(&mut ws).await;
        if frame["callbackId"] == "j-1" {
            break frame;
        }
    };
    assert_eq!(reply["payload"]["ok"], true, "{reply}");
    child.kill().await.unwrap();
}
