//! `RedisServer` against the real `redis-server`: start, freeze, kill and
//! restart on the same port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::RedisServer;
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
