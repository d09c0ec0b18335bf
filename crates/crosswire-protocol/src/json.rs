//! JSON exactly as JavaScript's `JSON.stringify` writes it.
//!
//! The original emits every frame and envelope with `JSON.stringify`: compact,
//! keys in insertion order, numbers in JavaScript notation (`5` rather than
//! `5.0`, `1e+21` rather than `1e21`). serde_json already writes compact output
//! and, with its `preserve_order` feature, keeps key order; this module only
//! swaps its float formatting for JavaScript's.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

/// A [`serde_json`] formatter that writes floating-point numbers the way
/// JavaScript's `Number.prototype.toString` does.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::json::JsFormatter;
/// use serde::Serialize;
/// let mut out = Vec::new();
/// let mut ser = serde_json::Serializer::with_formatter(&mut out, JsFormatter);
/// (1.0_f64, 1e21_f64, f64::NAN).serialize(&mut ser)?;
/// assert_eq!(out, b"[1,1e+21,null]");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsFormatter;

impl Formatter for JsFormatter {
    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        if !value.is_finite() {
            // JSON.stringify writes NaN and the infinities as null.
            return writer.write_all(b"null");
        }
        let mut buf = ryu_js::Buffer::new();
        writer.write_all(buf.format_finite(value).as_bytes())
    }
}

/// Appends `value` as JavaScript-compatible JSON to `buf`.
///
/// # Examples
///
/// ```
/// let mut buf = Vec::new();
/// crosswire_protocol::json::write_js_json(&mut buf, &serde_json::json!({"n": 5.0, "f": 0.5})).unwrap();
/// assert_eq!(buf, br#"{"n":5,"f":0.5}"#);
/// ```
pub fn write_js_json<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let mut ser = serde_json::Serializer::with_formatter(buf, JsFormatter);
    value.serialize(&mut ser)
}

/// Serializes `value` to a JavaScript-compatible JSON string.
///
/// # Examples
///
/// ```
/// let s = crosswire_protocol::json::to_js_string(&1e21_f64).unwrap();
/// assert_eq!(s, "1e+21");
/// ```
pub fn to_js_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut buf = Vec::with_capacity(64);
    write_js_json(&mut buf, value)?;
    // serde_json only ever writes valid UTF-8.
    String::from_utf8(buf).map_err(<serde_json::Error as serde::ser::Error>::custom)
}
