//! The two wire protocols of `docs/benchmarks.md` §3: the original's JSON
//! frames and Engine.IO v4 / Socket.IO v5 over WebSocket.
//!
//! Encoding writes frames straight into a byte buffer; decoding of pushed
//! data uses a small scanner for the integers `s`, `q`, `t` (no full JSON
//! parse on the hot path), and callback replies are parsed with `serde_json`.

use serde_json::Value;
use std::io::Write;

/// Wire protocol spoken by the load generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// The original library's JSON frames (crosswire speaks it too).
    Original,
    /// Engine.IO v4 / Socket.IO v5 over the WebSocket transport.
    Socketio,
}

impl Proto {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Original => "original",
            Proto::Socketio => "socketio",
        }
    }

    /// Request path (with query) of a connection binding socket id `id`.
    pub fn path(self, id: &str) -> String {
        match self {
            Proto::Original => format!("/?id={id}"),
            Proto::Socketio => format!("/socket.io/?EIO=4&transport=websocket&id={id}"),
        }
    }
}

/// One published datum `{"s": S, "q": Q, "t": T}` (`docs/benchmarks.md` §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datum {
    /// Sender index.
    pub s: u64,
    /// Sequence number (`step << 32 | index` in stepped runs).
    pub q: u64,
    /// Send time, microseconds since the Unix epoch.
    pub t: u64,
}

impl Datum {
    /// Writes the datum as compact JSON.
    pub fn write(&self, out: &mut Vec<u8>) {
        let _ = write!(out, r#"{{"s":{},"q":{},"t":{}}}"#, self.s, self.q, self.t);
    }

    /// Writes the datum with `pad` filler bytes in an extra `"p"` string
    /// (none when `pad` is 0).
    pub fn write_padded(&self, out: &mut Vec<u8>, pad: usize) {
        if pad == 0 {
            return self.write(out);
        }
        let _ = write!(
            out,
            r#"{{"s":{},"q":{},"t":{},"p":""#,
            self.s, self.q, self.t
        );
        out.resize(out.len() + pad, b'x');
        out.extend_from_slice(b"\"}");
    }

    /// Reads a datum from a parsed JSON value.
    pub fn from_value(v: &Value) -> Option<Datum> {
        Some(Datum {
            s: v.get("s")?.as_u64()?,
            q: v.get("q")?.as_u64()?,
            t: v.get("t")?.as_u64()?,
        })
    }
}

/// Writes one client event frame: `event` with the payload written by
/// `payload`, with callback id `callback` when given.
pub fn encode_event(
    proto: Proto,
    out: &mut Vec<u8>,
    event: &str,
    callback: Option<u64>,
    payload: impl FnOnce(&mut Vec<u8>),
) {
    match proto {
        Proto::Original => {
            let _ = write!(out, r#"{{"event":"{event}","payload":"#);
            payload(out);
            if let Some(id) = callback {
                let _ = write!(out, r#","callbackId":"{id}""#);
            }
            out.push(b'}');
        }
        Proto::Socketio => {
            out.extend_from_slice(b"42");
            if let Some(id) = callback {
                let _ = write!(out, "{id}");
            }
            let _ = write!(out, r#"["{event}","#);
            payload(out);
            out.push(b']');
        }
    }
}

/// A decoded server frame.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A pushed event, with its datum when the payload carries one.
    Push {
        /// Event name (raw bytes, without quotes).
        event: &'a [u8],
        /// The `s`/`q`/`t` datum, if found.
        datum: Option<Datum>,
    },
    /// A callback (ack) reply.
    Reply {
        /// The callback id the client sent.
        id: u64,
        /// The reply's payload.
        payload: Value,
    },
    /// The heartbeat string echoed by the server (original protocol).
    Heartbeat,
    /// Engine.IO ping (`2`): the client must answer `3`.
    EioPing,
    /// Engine.IO open packet (`0{...}`).
    EioOpen,
    /// Socket.IO namespace connect acknowledgement (`40...`).
    SioConnect,
    /// Socket.IO connect error (`44...`).
    SioConnectError,
    /// Anything else (counted, not an error by itself).
    Other,
}

/// Decodes one server frame. `heartbeat` is the configured heartbeat string
/// of the original protocol.
pub fn decode<'a>(proto: Proto, msg: &'a [u8], heartbeat: &[u8]) -> Incoming<'a> {
    match proto {
        Proto::Original => {
            if msg == heartbeat {
                return Incoming::Heartbeat;
            }
            if memchr::memmem::find(msg, b"\"callbackId\"").is_some() {
                let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(msg) else {
                    return Incoming::Other;
                };
                let id = match obj.get("callbackId") {
                    Some(Value::String(s)) => s.parse::<u64>().ok(),
                    Some(Value::Number(n)) => n.as_u64(),
                    _ => None,
                };
                return match id {
                    Some(id) => Incoming::Reply {
                        id,
                        payload: obj.remove("payload").unwrap_or(Value::Null),
                    },
                    None => Incoming::Other,
                };
            }
            match string_after_key(msg, b"\"event\"") {
                Some(event) => Incoming::Push {
                    event,
                    datum: scan_datum(msg),
                },
                None => Incoming::Other,
            }
        }
        Proto::Socketio => match msg {
            [b'2'] => Incoming::EioPing,
            [b'0', ..] => Incoming::EioOpen,
            [b'4', b'0', ..] => Incoming::SioConnect,
            [b'4', b'4', ..] => Incoming::SioConnectError,
            [b'4', b'2', rest @ ..] => {
                // 42["E",P]
                let Some(rest) = rest.strip_prefix(b"[\"") else {
                    return Incoming::Other;
                };
                let Some(q) = memchr::memchr(b'"', rest) else {
                    return Incoming::Other;
                };
                Incoming::Push {
                    event: &rest[..q],
                    datum: scan_datum(&rest[q..]),
                }
            }
            [b'4', b'3', rest @ ..] => {
                // 43N[DATA]
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let Some(id) = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    return Incoming::Other;
                };
                match serde_json::from_slice::<Value>(&rest[digits..]) {
                    Ok(Value::Array(mut a)) if !a.is_empty() => Incoming::Reply {
                        id,
                        payload: a.swap_remove(0),
                    },
                    Ok(Value::Array(_)) => Incoming::Reply {
                        id,
                        payload: Value::Null,
                    },
                    _ => Incoming::Other,
                }
            }
            _ => Incoming::Other,
        },
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Position just after `key` followed by optional whitespace and `:` and
/// optional whitespace (first occurrence that has the colon).
fn value_pos(msg: &[u8], key: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&msg[from..], key) {
        let i = skip_ws(msg, from + p + key.len());
        if i < msg.len() && msg[i] == b':' {
            return Some(skip_ws(msg, i + 1));
        }
        from += p + 1;
    }
    None
}

/// The string value of `key` (no escape handling: event names are plain).
fn string_after_key<'a>(msg: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let i = value_pos(msg, key)?;
    if msg.get(i) != Some(&b'"') {
        return None;
    }
    let rest = &msg[i + 1..];
    let e = memchr::memchr(b'"', rest)?;
    Some(&rest[..e])
}

/// The unsigned integer value of `key`.
fn u64_after_key(msg: &[u8], key: &[u8]) -> Option<u64> {
    let i = value_pos(msg, key)?;
    let mut v: u64 = 0;
    let mut n = 0;
    for &b in &msg[i..] {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        n += 1;
    }
    // A fraction or exponent means it was not written as a plain integer.
    match msg.get(i + n) {
        _ if n == 0 => None,
        Some(b'.' | b'e' | b'E') => None,
        _ => Some(v),
    }
}

/// Finds `"s"`, `"q"` and `"t"` anywhere in `msg` (key order free).
pub fn scan_datum(msg: &[u8]) -> Option<Datum> {
    Some(Datum {
        s: u64_after_key(msg, b"\"s\"")?,
        q: u64_after_key(msg, b"\"q\"")?,
        t: u64_after_key(msg, b"\"t\"")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_both() {
        let d = Datum { s: 1, q: 2, t: 3 };
        let mut o = Vec::new();
        encode_event(Proto::Original, &mut o, "echo", Some(17), |b| d.write(b));
        assert_eq!(
            std::str::from_utf8(&o).ok(),
            Some(r#"{"event":"echo","payload":{"s":1,"q":2,"t":3},"callbackId":"17"}"#)
        );
        let mut o = Vec::new();
        encode_event(Proto::Socketio, &mut o, "echo", Some(17), |b| d.write(b));
        assert_eq!(
            std::str::from_utf8(&o).ok(),
            Some(r#"4217["echo",{"s":1,"q":2,"t":3}]"#)
        );
        let mut o = Vec::new();
        encode_event(Proto::Socketio, &mut o, "room", None, |b| d.write(b));
        assert_eq!(
            std::str::from_utf8(&o).ok(),
            Some(r#"42["room",{"s":1,"q":2,"t":3}]"#)
        );
    }

    #[test]
    fn padded_datum_scans() {
        let d = Datum { s: 1, q: 2, t: 3 };
        let mut o = Vec::new();
        d.write_padded(&mut o, 4);
        assert_eq!(
            std::str::from_utf8(&o).ok(),
            Some(r#"{"s":1,"q":2,"t":3,"p":"xxxx"}"#)
        );
        assert_eq!(scan_datum(&o), Some(d));
        let mut o = Vec::new();
        d.write_padded(&mut o, 0);
        assert_eq!(std::str::from_utf8(&o).ok(), Some(r#"{"s":1,"q":2,"t":3}"#));
    }

    #[test]
    fn decode_push_any_order() {
        let m = br#"{"payload": {"t": 30, "q" : 4294967297, "s":5}, "event" : "room"}"#;
        match decode(Proto::Original, m, b"") {
            Incoming::Push { event, datum } => {
                assert_eq!(event, b"room");
                assert_eq!(
                    datum,
                    Some(Datum {
                        s: 5,
                        q: 4294967297,
                        t: 30
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        let m = br#"42["to",{"q":2,"s":1,"t":3}]"#;
        match decode(Proto::Socketio, m, b"") {
            Incoming::Push { event, datum } => {
                assert_eq!(event, b"to");
                assert_eq!(datum, Some(Datum { s: 1, q: 2, t: 3 }));
            }
            other => panic!("{other:?}"),
        }
        // Floats are not plain integers.
        assert_eq!(scan_datum(br#"{"s":1.0,"q":2,"t":3}"#), None);
        // "ns" must not be taken for "s".
        assert_eq!(
            scan_datum(br#"{"ns":9,"s":1,"q":2,"t":3}"#),
            Some(Datum { s: 1, q: 2, t: 3 })
        );
    }

    #[test]
    fn decode_replies() {
        match decode(
            Proto::Original,
            br#"{"payload":{"ok":true},"callbackId":"17"}"#,
            b"",
        ) {
            Incoming::Reply { id, payload } => {
                assert_eq!(id, 17);
                assert_eq!(payload["ok"], Value::Bool(true));
            }
            other => panic!("{other:?}"),
        }
        match decode(Proto::Socketio, br#"43123[{"total":50}]"#, b"") {
            Incoming::Reply { id, payload } => {
                assert_eq!(id, 123);
                assert_eq!(payload["total"], 50);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(Proto::Original, b"", b""),
            Incoming::Heartbeat
        ));
        assert!(matches!(
            decode(Proto::Socketio, b"2", b""),
            Incoming::EioPing
        ));
        assert!(matches!(
            decode(Proto::Socketio, br#"0{"sid":"x"}"#, b""),
            Incoming::EioOpen
        ));
        assert!(matches!(
            decode(Proto::Socketio, br#"40{"sid":"x"}"#, b""),
            Incoming::SioConnect
        ));
        assert!(matches!(
            decode(Proto::Original, b"garbage", b""),
            Incoming::Other
        ));
    }
}
