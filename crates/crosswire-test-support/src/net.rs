//! Loopback ports and a minimal HTTP GET.

use std::net::{SocketAddr, TcpListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback port that was free a moment ago (the listener that found it is
/// closed again): for a server the test starts on it.
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A loopback address where nothing listens (its port was just released):
/// for a server that starts later, or a connection that must fail.
pub fn free_addr() -> SocketAddr {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr,
        Err(e) => panic!("no free loopback port: {e}"),
    }
}

/// A plain HTTP/1.1 GET of `path` over a new TCP connection: the whole
/// response, status line and headers included. Not bounded in time: wrap it
/// in [`within`](crate::within) where the server may not answer.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = match tokio::net::TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => panic!("cannot connect to {addr}: {e}"),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if let Err(e) = tcp.write_all(request.as_bytes()).await {
        panic!("cannot send GET {path} to {addr}: {e}");
    }
    let mut out = Vec::new();
    if let Err(e) = tcp.read_to_end(&mut out).await {
        panic!("cannot read the answer to GET {path} from {addr}: {e}");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body of an HTTP response (all of it when it has no header block).
pub fn http_body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map_or(response, |(_, body)| body)
}

/// Percent-encodes a query value: every byte but the unreserved characters
/// of RFC 3986 (letters, digits, `-`, `_`, `.`, `~`).
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire_test_support::percent_encode(r#"["a b"]"#), "%5B%22a%20b%22%5D");
/// ```
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_addr_is_a_loopback_port() {
        let addr = free_addr();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
    }

    #[test]
    fn the_body_follows_the_header_block() {
        assert_eq!(http_body("HTTP/1.1 200 OK\r\nA: b\r\n\r\nok\r\n"), "ok\r\n");
        assert_eq!(http_body("no head"), "no head");
    }
}
