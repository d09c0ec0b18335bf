//! A minimal WebSocket client (RFC 6455) tuned for load generation.
//!
//! It reads into one growable buffer and parses every complete frame of a
//! read at once, so a burst of frames costs one `read` system call; control
//! replies (pong) and outgoing frames are queued and written with one `write`.
//! Reading ([`WsConn::fill`]) is cancel-safe and may sit in `tokio::select!`;
//! writing ([`WsConn::flush`]) is not and must be awaited outside of it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest message the client accepts (bigger ones are a protocol error).
pub const MAX_MESSAGE: usize = 16 << 20;

/// `Sec-WebSocket-Key` sent by every connection (the RFC 6455 example key).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that [`KEY`] must produce (RFC 6455, 1.3).
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Opcodes used here.
const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Errors of the client: I/O, or a peer that broke the protocol or closed.
#[derive(Debug)]
pub enum WsError {
    /// A socket error (including time-outs).
    Io(io::Error),
    /// The peer sent something this client cannot accept.
    Protocol(String),
    /// The peer closed the connection (close frame code, or `None` for EOF).
    Closed(Option<u16>),
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Io(e) => write!(f, "i/o: {e}"),
            WsError::Protocol(m) => write!(f, "protocol: {m}"),
            WsError::Closed(Some(c)) => write!(f, "closed by peer (code {c})"),
            WsError::Closed(None) => write!(f, "closed by peer (eof)"),
        }
    }
}

impl std::error::Error for WsError {}

impl From<io::Error> for WsError {
    fn from(e: io::Error) -> Self {
        WsError::Io(e)
    }
}

/// One open WebSocket client connection.
#[derive(Debug)]
pub struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    frag: Vec<u8>,
    frag_active: bool,
    out: Vec<u8>,
    rng: u32,
    closed: Option<Option<u16>>,
    pending: std::collections::VecDeque<Vec<u8>>,
}

/// Connects to `addr` (optionally from source address `src`), performs the
/// WebSocket upgrade for `path` and returns the connection. `read_capacity`
/// is the initial read buffer size (it grows on demand).
pub async fn connect(
    addr: SocketAddr,
    src: Option<IpAddr>,
    path: &str,
    read_capacity: usize,
    timeout: Duration,
) -> Result<WsConn, WsError> {
    match tokio::time::timeout(timeout, connect_inner(addr, src, path, read_capacity)).await {
        Ok(r) => r,
        Err(_) => Err(WsError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "connect/upgrade timed out",
        ))),
    }
}

async fn connect_inner(
    addr: SocketAddr,
    src: Option<IpAddr>,
    path: &str,
    read_capacity: usize,
) -> Result<WsConn, WsError> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    // Closing sends RST instead of leaving ~N sockets in TIME_WAIT that would
    // exhaust the ephemeral ports of the next run.
    stream.set_zero_linger()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; read_capacity.max(1024)];
    let mut end = 0;
    let head_end = loop {
        if end == buf.len() {
            if buf.len() >= 64 * 1024 {
                return Err(WsError::Protocol("upgrade response too large".into()));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[end..]).await?;
        if n == 0 {
            return Err(WsError::Closed(None));
        }
        end += n;
        if let Some(p) = memchr::memmem::find(&buf[..end], b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(WsError::Protocol(format!("upgrade refused: {status}")));
    }
    let accept_ok = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == ACCEPT
        })
    });
    if !accept_ok {
        return Err(WsError::Protocol("bad Sec-WebSocket-Accept".into()));
    }
    let seed = (addr.port() as u32) ^ (end as u32).rotate_left(16) ^ 0x9E37_79B9;
    Ok(WsConn {
        stream,
        buf,
        start: head_end,
        end,
        frag: Vec::new(),
        frag_active: false,
        out: Vec::with_capacity(256),
        rng: seed | 1,
        closed: None,
        pending: std::collections::VecDeque::new(),
    })
}

impl WsConn {
    /// Waits until the socket has data (or data is already buffered) and
    /// reads what is available. Cancel-safe.
    pub async fn fill(&mut self) -> Result<(), WsError> {
        if let Some(c) = self.closed {
            return Err(WsError::Closed(c));
        }
        if !self.pending.is_empty() {
            return Ok(());
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < 1024 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < 1024 {
                let n = (self.buf.len() * 2).max(4096);
                self.buf.resize(n, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            self.closed = Some(None);
            return Err(WsError::Closed(None));
        }
        self.end += n;
        Ok(())
    }

    /// Parses every complete frame in the buffer: data messages go to `on_msg`
    /// (which may queue outgoing frames through the `&mut Outbox`); pings are
    /// answered (queued); a close frame ends the connection with
    /// [`WsError::Closed`] after delivering the messages before it.
    pub fn parse<F>(&mut self, mut on_msg: F) -> Result<usize, WsError>
    where
        F: FnMut(&[u8], &mut Outbox<'_>),
    {
        let mut count = 0;
        while let Some(m) = self.pending.pop_front() {
            let mut ob = Outbox {
                out: &mut self.out,
                rng: &mut self.rng,
            };
            on_msg(&m, &mut ob);
            count += 1;
        }
        Ok(count + self.parse_frames(on_msg)?)
    }

    fn parse_frames<F>(&mut self, mut on_msg: F) -> Result<usize, WsError>
    where
        F: FnMut(&[u8], &mut Outbox<'_>),
    {
        let mut count = 0;
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                break;
            }
            let b0 = avail[0];
            let b1 = avail[1];
            let fin = b0 & 0x80 != 0;
            let op = b0 & 0x0f;
            let masked = b1 & 0x80 != 0;
            let mut hdr = 2usize;
            let len = match b1 & 0x7f {
                126 => {
                    if avail.len() < 4 {
                        break;
                    }
                    hdr = 4;
                    u16::from_be_bytes([avail[2], avail[3]]) as usize
                }
                127 => {
                    if avail.len() < 10 {
                        break;
                    }
                    hdr = 10;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    let l = u64::from_be_bytes(b);
                    if l > MAX_MESSAGE as u64 {
                        return Err(WsError::Protocol(format!("frame of {l} bytes")));
                    }
                    l as usize
                }
                l => l as usize,
            };
            if len > MAX_MESSAGE {
                return Err(WsError::Protocol(format!("frame of {len} bytes")));
            }
            let mask = if masked {
                if avail.len() < hdr + 4 {
                    break;
                }
                let m = [avail[hdr], avail[hdr + 1], avail[hdr + 2], avail[hdr + 3]];
                hdr += 4;
                Some(m)
            } else {
                None
            };
            if avail.len() < hdr + len {
                // Make sure the buffer can hold the whole frame.
                let need = hdr + len;
                if self.buf.len() - self.start < need {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    if self.buf.len() < need + 1024 {
                        self.buf.resize(need + 1024, 0);
                    }
                }
                break;
            }
            let p0 = self.start + hdr;
            let p1 = p0 + len;
            self.start = p1;
            if let Some(m) = mask {
                for (i, b) in self.buf[p0..p1].iter_mut().enumerate() {
                    *b ^= m[i & 3];
                }
            }
            match op {
                OP_TEXT | OP_BINARY | OP_CONT => {
                    if op == OP_CONT && !self.frag_active {
                        return Err(WsError::Protocol("continuation without start".into()));
                    }
                    if op != OP_CONT && self.frag_active {
                        return Err(WsError::Protocol(
                            "new message inside a fragmented one".into(),
                        ));
                    }
                    if fin && !self.frag_active {
                        let mut ob = Outbox {
                            out: &mut self.out,
                            rng: &mut self.rng,
                        };
                        on_msg(&self.buf[p0..p1], &mut ob);
                        count += 1;
                    } else {
                        if self.frag.len() + len > MAX_MESSAGE {
                            return Err(WsError::Protocol("fragmented message too large".into()));
                        }
                        self.frag.extend_from_slice(&self.buf[p0..p1]);
                        self.frag_active = true;
                        if fin {
                            let msg = std::mem::take(&mut self.frag);
                            self.frag_active = false;
                            let mut ob = Outbox {
                                out: &mut self.out,
                                rng: &mut self.rng,
                            };
                            on_msg(&msg, &mut ob);
                            count += 1;
                        }
                    }
                }
                OP_PING => {
                    let payload = self.buf[p0..p1].to_vec();
                    let mut ob = Outbox {
                        out: &mut self.out,
                        rng: &mut self.rng,
                    };
                    ob.frame(OP_PONG, &payload);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let code =
                        (len >= 2).then(|| u16::from_be_bytes([self.buf[p0], self.buf[p0 + 1]]));
                    self.closed = Some(code);
                    return Err(WsError::Closed(code));
                }
                other => return Err(WsError::Protocol(format!("opcode {other}"))),
            }
        }
        Ok(count)
    }

    /// Gives access to the queue of outgoing frames.
    pub fn outbox(&mut self) -> Outbox<'_> {
        Outbox {
            out: &mut self.out,
            rng: &mut self.rng,
        }
    }

    /// Whether frames wait to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes every queued frame (one `write_all`). Not cancel-safe.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
        }
        Ok(())
    }

    /// Reads until one data message arrives and returns a copy of it; pings
    /// are answered on the way. Messages that arrive after it in the same
    /// read are kept and handed to the next [`WsConn::parse`] first. For
    /// handshakes, not hot paths.
    pub async fn recv_one(&mut self, timeout: Duration) -> Result<Vec<u8>, WsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            let mut got = std::collections::VecDeque::new();
            let r = self.parse_frames(|m, _| got.push_back(m.to_vec()));
            self.pending.extend(got);
            self.flush().await?;
            r?;
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(WsError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no message in time",
                    )))
                }
            }
        }
    }
}

/// Queue of outgoing (masked) client frames of one connection.
#[derive(Debug)]
pub struct Outbox<'a> {
    out: &'a mut Vec<u8>,
    rng: &'a mut u32,
}

impl Outbox<'_> {
    /// Queues a text frame.
    pub fn text(&mut self, payload: &[u8]) {
        self.frame(OP_TEXT, payload);
    }

    /// Queues a text frame whose payload is written by `fill` (no extra copy).
    pub fn text_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        let mut tmp = Vec::with_capacity(96);
        fill(&mut tmp);
        self.frame(OP_TEXT, &tmp);
    }

    /// Queues a close frame with `code` and no reason.
    pub fn close(&mut self, code: u16) {
        self.frame(OP_CLOSE, &code.to_be_bytes());
    }

    fn frame(&mut self, op: u8, payload: &[u8]) {
        let out = &mut *self.out;
        out.push(0x80 | op);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xffff {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        // xorshift32: masking keys need not be secret for a load generator.
        let mut x = *self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *self.rng = x;
        let m = x.to_be_bytes();
        out.extend_from_slice(&m);
        let base = out.len();
        out.extend_from_slice(payload);
        for (i, b) in out[base..].iter_mut().enumerate() {
            *b ^= m[i & 3];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_masks_and_sizes() {
        let mut out = Vec::new();
        let mut rng = 12345u32;
        let mut ob = Outbox {
            out: &mut out,
            rng: &mut rng,
        };
        let payload = vec![b'z'; 300];
        ob.text(&payload);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 126);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 300);
        let m = [out[4], out[5], out[6], out[7]];
        let un: Vec<u8> = out[8..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ m[i & 3])
            .collect();
        assert_eq!(un, payload);
    }
}
