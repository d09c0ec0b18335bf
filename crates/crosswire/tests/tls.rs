//! `wss://` on the standalone listener (feature `tls`), with certificates
//! made in the test: a real WebSocket client over TLS trusting the test
//! authority, and clients that never complete the TLS handshake, which the
//! pre-upgrade limits bound as they bound a silent plain client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use crosswire::config::TlsConfig;
use crosswire::{Node, NodeBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::Connector;

/// A node serving TLS with `pki`'s server certificate, read from its files.
fn tls_builder(pki: &TestPki) -> NodeBuilder {
    let tls = TlsConfig::from_pem_files(pki.server_cert_path(), pki.server_key_path()).unwrap();
    Node::builder().tls(tls)
}

/// Opens `wss://localhost:PORT/PATH` trusting `client`'s roots.
async fn connect_wss(
    addr: SocketAddr,
    path: &str,
    client: Arc<rustls::ClientConfig>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("wss://localhost:{}/{path}", addr.port());
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(Connector::Rustls(client)),
    );
    within(WAIT, connecting).await.map(|(ws, _)| ws)
}

/// Reads until the server closes the connection (end of stream or reset);
/// how long that took. Fails the test after [`WAIT`].
async fn until_closed(tcp: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match within(WAIT, tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_wss_client_exchanges_events_with_a_callback() {
    let pki = TestPki::new("wss");
    let (node, addr) = start_binding(tls_builder(&pki)).await;
    node.on(
        "echo",
        |_s: crosswire::Socket, payload: serde_json::Value, reply: Option<crosswire::Reply>| async move {
            reply.unwrap().send(&serde_json::json!({ "got": payload })).unwrap();
        },
    )
    .unwrap();

    // The client offers HTTP/1.1 by ALPN, as browsers do.
    let mut client = (*pki.client_config()).clone();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut ws = connect_wss(addr, "?id=u1", Arc::new(client)).await.unwrap();
    match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Rustls(tls) => {
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        }
        _ => panic!("the connection is not TLS"),
    }
    wait_until(|| node.get_socket("u1").is_some()).await;

    send_text(
        &mut ws,
        r#"{"event":"echo","payload":{"hello":"tls"},"callbackId":"t-1"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"payload":{"got":{"hello":"tls"}},"callbackId":"t-1"}"#
    );
    node.to_socket_id("u1", "pm", &"over tls").unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"pm","payload":"over tls"}"#
    );
    let stats = node.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.handshakes_tls_failed, 0);

    // A plain `ws://` client gets no WebSocket from a TLS node.
    let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=u2")).await;
    assert!(plain.is_err(), "plain WebSocket accepted by a TLS node");
    eventually(WAIT, "the plain attempt counted as a TLS failure", || {
        node.stats().handshakes_tls_failed == 1
    })
    .await;
    assert!(node.get_socket("u2").is_none());
}

#[tokio::test]
async fn serve_takes_tls_for_the_applications_router() {
    let pki = TestPki::new("serve");
    let tls =
        TlsConfig::from_pem(pki.server().cert.as_bytes(), pki.server().key.as_bytes()).unwrap();
    let node = Node::builder().tls(tls).build().unwrap();
    let app = axum::Router::new().route("/ws", node.ws_route());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn({
        let node = node.clone();
        async move { node.serve(listener, app).await }
    });
    let _ws = connect_wss(addr, "ws", pki.client_config()).await.unwrap();
    eventually(WAIT, "the wss connection on /ws", || {
        node.connection_count() == 1
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_gets_no_connection() {
    let pki = TestPki::new("trusted");
    let (node, addr) = start(tls_builder(&pki)).await;
    let stranger = TestPki::new("stranger");
    let refused = connect_wss(addr, "", stranger.client_config()).await;
    let Err(error) = refused else {
        panic!("a client trusting another CA connected");
    };
    assert!(
        error.to_string().contains("certificate"),
        "not a certificate error: {error}"
    );
    eventually(WAIT, "the aborted handshake counted", || {
        node.stats().handshakes_tls_failed == 1
    })
    .await;
    assert_eq!(node.stats().connections_accepted, 0);
}

#[tokio::test]
async fn a_client_that_never_speaks_tls_is_dropped_at_the_handshake_timeout() {
    let pki = TestPki::new("silent");
    let timeout = Duration::from_millis(300);
    let (node, addr) = start(tls_builder(&pki).handshake_timeout(timeout)).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let held = until_closed(&mut silent).await;
    assert!(
        held >= timeout - Duration::from_millis(50),
        "dropped after {held:?}"
    );
    eventually(WAIT, "the timeout counted", || {
        node.stats().handshakes_timed_out == 1
    })
    .await;
    assert_eq!(node.stats().handshakes_tls_failed, 0);

    // Bytes that are not TLS fail the handshake at once.
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let held = until_closed(&mut http).await;
    assert!(held < timeout, "a non-TLS client held for {held:?}");
    eventually(WAIT, "the TLS failure counted", || {
        node.stats().handshakes_tls_failed == 1
    })
    .await;
}

#[tokio::test]
async fn the_tls_handshake_and_the_request_head_share_one_timeout() {
    let pki = TestPki::new("shared-deadline");
    let timeout = Duration::from_millis(1500);
    let (node, addr) = start(tls_builder(&pki).handshake_timeout(timeout)).await;
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connected = Instant::now();
    // The client waits before its TLS handshake, completes it, then sends no
    // request: the node drops it `timeout` after the TCP connection, not
    // `timeout` after the TLS handshake.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = within(WAIT, connector.connect(name, tcp)).await.unwrap();
    let mut buf = [0u8; 16];
    let end = within(WAIT, tls.read(&mut buf)).await;
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let held = connected.elapsed();
    assert!(
        held >= timeout - Duration::from_millis(100) && held < timeout + Duration::from_millis(700),
        "dropped {held:?} after connecting (handshake timeout {timeout:?})"
    );
    eventually(WAIT, "the timeout counted", || {
        node.stats().handshakes_timed_out == 1
    })
    .await;
    assert_eq!(node.stats().handshakes_tls_failed, 0);
}

#[tokio::test]
async fn connections_in_their_tls_handshake_hold_a_pending_place() {
    let pki = TestPki::new("pending");
    let (node, addr) = start(
        tls_builder(&pki)
            .max_pending_handshakes(2)
            .handshake_timeout(Duration::from_secs(30)),
    )
    .await;
    // Two silent connections fill the places; a third pushes out the oldest.
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let _third = TcpStream::connect(addr).await.unwrap();
    let held = until_closed(&mut oldest).await;
    assert!(held < Duration::from_secs(30));
    eventually(WAIT, "the eviction counted", || {
        node.stats().handshakes_evicted == 1
    })
    .await;
    // A real client still gets in (pushing out another silent one).
    let _ws = connect_wss(addr, "", pki.client_config()).await.unwrap();
    eventually(WAIT, "the wss connection", || node.connection_count() == 1).await;
    assert_eq!(node.stats().handshakes_timed_out, 0);
}
