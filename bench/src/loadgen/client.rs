//! Opening bench connections (both protocols) and callback requests.

use crate::loadgen::wire::{decode, encode_event, Incoming, Proto};
use crate::loadgen::ws::{self, WsConn, WsError};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Time allowed for connecting, the upgrade and the Socket.IO handshake.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Wire protocol.
    pub proto: Proto,
    /// Server addresses (`--url`, in order): client `i` goes to `urls[i % len]`.
    pub urls: Vec<SocketAddr>,
    /// Number of source addresses 127.0.0.1.. to spread over (1 = no bind).
    pub src_ips: usize,
    /// Heartbeat string of the original protocol.
    pub heartbeat: Vec<u8>,
    /// Connections opt into missed-message recovery (original protocol).
    pub recovery: bool,
}

impl Target {
    /// Node index of client `i`.
    pub fn node_of(&self, i: usize) -> usize {
        i % self.urls.len()
    }

    /// Source address for client `i` (`None` lets the kernel choose).
    pub fn src_of(&self, i: usize) -> Option<IpAddr> {
        if self.src_ips <= 1 {
            return None;
        }
        let k = (i % self.src_ips) as u32 + 1;
        Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000u32 + k)))
    }
}

/// Parses `ws://HOST:PORT[/...]` with a loopback host into an address.
/// Anything but a loopback address is refused.
pub fn parse_url(s: &str) -> Result<SocketAddr, String> {
    let rest = s
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{s}: only ws:// URLs are supported"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once("]:")
            .ok_or_else(|| format!("{s}: expected [addr]:port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{s}: a port is required"))?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().map_err(|_| format!("{s}: bad port"))?;
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("{s}: host must be an IP literal or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!("{s}: only loopback addresses may be targeted"));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Opens connection `i` with socket id `id` and completes the protocol's
/// handshake (Socket.IO: open packet, `40`, connect ack).
pub async fn open(t: &Target, i: usize, id: &str, read_capacity: usize) -> Result<WsConn, String> {
    let addr = t.urls[t.node_of(i)];
    let mut path = t.proto.path(id);
    if t.recovery && t.proto == Proto::Original {
        path.push_str("&cwRecovery=1");
    }
    let mut c = ws::connect(addr, t.src_of(i), &path, read_capacity, OPEN_TIMEOUT)
        .await
        .map_err(|e| format!("connect {id} to {addr}: {e}"))?;
    if t.proto == Proto::Socketio {
        let m = c
            .recv_one(OPEN_TIMEOUT)
            .await
            .map_err(|e| format!("{id}: waiting for the Engine.IO open packet: {e}"))?;
        if !matches!(decode(t.proto, &m, b""), Incoming::EioOpen) {
            return Err(format!(
                "{id}: expected an Engine.IO open packet, got {}",
                show(&m)
            ));
        }
        c.outbox().text(b"40");
        c.flush().await.map_err(|e| format!("{id}: {e}"))?;
        loop {
            let m = c
                .recv_one(OPEN_TIMEOUT)
                .await
                .map_err(|e| format!("{id}: waiting for the Socket.IO connect ack: {e}"))?;
            match decode(t.proto, &m, b"") {
                Incoming::SioConnect => break,
                Incoming::EioPing => {
                    c.outbox().text(b"3");
                    c.flush().await.map_err(|e| format!("{id}: {e}"))?;
                }
                Incoming::SioConnectError => {
                    return Err(format!("{id}: Socket.IO connect error: {}", show(&m)))
                }
                _ => return Err(format!("{id}: unexpected {}", show(&m))),
            }
        }
    }
    Ok(c)
}

/// A short printable form of a server message (for error messages).
pub fn show(m: &[u8]) -> String {
    let s = String::from_utf8_lossy(&m[..m.len().min(200)]).to_string();
    format!("{s:?}")
}

/// Answers protocol-level messages (Engine.IO ping). Returns true when the
/// message was one.
pub fn control(proto: Proto, inc: &Incoming<'_>, out: &mut ws::Outbox<'_>) -> bool {
    match inc {
        Incoming::EioPing => {
            if proto == Proto::Socketio {
                out.text(b"3");
            }
            true
        }
        Incoming::Heartbeat | Incoming::EioOpen | Incoming::SioConnect => true,
        _ => false,
    }
}

/// Sends `event` with callback id `id` and waits for its reply, answering
/// pings meanwhile. Pushed events that arrive meanwhile are passed to
/// `on_push` (so that nothing is silently dropped).
pub async fn request(
    c: &mut WsConn,
    t: &Target,
    event: &str,
    id: u64,
    payload: impl FnOnce(&mut Vec<u8>),
    timeout: Duration,
    mut on_push: impl FnMut(&Incoming<'_>),
) -> Result<Value, String> {
    let proto = t.proto;
    c.outbox()
        .text_with(|b| encode_event(proto, b, event, Some(id), payload));
    c.flush().await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reply: Option<Result<Value, String>> = None;
    loop {
        let hb = &t.heartbeat;
        let r = c.parse(|m, out| {
            let inc = decode(proto, m, hb);
            if control(proto, &inc, out) {
                return;
            }
            match inc {
                Incoming::Reply { id: got, payload } if got == id => reply = Some(Ok(payload)),
                Incoming::Reply { id: got, .. } => {
                    reply = Some(Err(format!(
                        "reply to callback {got} while waiting for {id}"
                    )))
                }
                other => on_push(&other),
            }
        });
        c.flush().await.map_err(|e| e.to_string())?;
        r.map_err(|e| e.to_string())?;
        if let Some(r) = reply.take() {
            return r;
        }
        match tokio::time::timeout_at(deadline, c.fill()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "no reply to {event} (callback {id}) within {timeout:?}"
                ))
            }
        }
    }
}

/// Whether an error means the peer went away (vs. a local problem).
pub fn is_disconnect(e: &WsError) -> bool {
    matches!(e, WsError::Closed(_) | WsError::Io(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_loopback_only() {
        assert_eq!(
            parse_url("ws://127.0.0.1:9001").ok(),
            Some("127.0.0.1:9001".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!(parse_url("ws://localhost:9001/").is_ok());
        assert!(parse_url("ws://[::1]:9001/").is_ok());
        assert!(parse_url("ws://10.0.0.1:9001").is_err());
        assert!(parse_url("ws://example.com:9001").is_err());
        assert!(parse_url("http://127.0.0.1:9001").is_err());
    }

    #[test]
    fn src_spread() {
        let t = Target {
            proto: Proto::Original,
            urls: vec![],
            src_ips: 4,
            heartbeat: vec![],
            recovery: false,
        };
        assert_eq!(
            t.src_of(0),
            Some("127.0.0.1".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            t.src_of(5),
            Some("127.0.0.2".parse().unwrap_or_else(|_| unreachable!()))
        );
    }
}
