//! `RedisServer` against the real `redis-server`: start, freeze, kill and
//! restart on the same port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::{RedisServer, TestPki};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// PING with a read timeout: Some(true) for PONG, None when nothing answers.
fn ping(port: u16) -> Option<bool> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).ok()?;
    Some(&buf == b"+PONG\r\n")
}

#[test]
fn a_server_answers_freezes_dies_and_comes_back_on_its_port() {
    let mut server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port));
    assert_eq!(ping(server.port), Some(true));
    server.pause();
    assert_eq!(ping(server.port), None, "a frozen server answers nothing");
    server.resume();
    assert_eq!(ping(server.port), Some(true));
    let port = server.port;
    server.kill();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    server.restart();
    assert_eq!(server.port, port);
    assert_eq!(ping(port), Some(true));
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_reserved_port_has_no_server_until_restart() {
    let mut server = RedisServer::reserve();
    assert_eq!(ping(server.port), None);
    server.restart();
    assert_eq!(ping(server.port), Some(true));
}

/// PING over TLS with `client`: Some(true) for PONG, None when the handshake
/// or the exchange fails.
fn tls_ping(port: u16, client: std::sync::Arc<rustls::ClientConfig>) -> Option<bool> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client, name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_millis(2000)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).ok()?;
    Some(&buf == b"+PONG\r\n")
}

#[test]
fn a_tls_server_speaks_tls_only_with_the_test_certificates() {
    let pki = TestPki::new("redis-tls");
    let mut server = RedisServer::start_tls(&pki, false);
    assert_eq!(
        server.tls_url(),
        format!("rediss://127.0.0.1:{}", server.port)
    );
    assert_eq!(tls_ping(server.port, pki.client_config()), Some(true));
    assert_ne!(
        ping(server.port),
        Some(true),
        "no plain Redis on the TLS port"
    );
    let stranger = TestPki::new("stranger");
    assert_eq!(
        tls_ping(server.port, stranger.client_config()),
        None,
        "a client that does not trust the test CA"
    );
    // A restart keeps TLS.
    server.kill();
    server.restart();
    assert_eq!(tls_ping(server.port, pki.client_config()), Some(true));
}

#[test]
fn a_mutual_tls_server_wants_the_client_certificate() {
    let pki = TestPki::new("redis-mtls");
    let server = RedisServer::start_tls(&pki, true);
    assert_eq!(
        tls_ping(server.port, pki.client_config_with_cert()),
        Some(true)
    );
    assert_eq!(tls_ping(server.port, pki.client_config()), None);
}
