//! MessagePack as the original's `notepack.io` writes and reads it
//! (`docs/protocol.md` §6.4), to and from [`serde_json::Value`].
//!
//! Encoding: maps with string keys in insertion order, always the smallest
//! int/str/map/array form, integral finite numbers as integers (`-0` is
//! `00`), every other number as `cb` float64, strings never as `bin`.
//!
//! Decoding accepts any standard MessagePack and converts it to what
//! `JSON.stringify` would make of notepack's result: `bin` becomes
//! `{"type":"Buffer","data":[…]}`, timestamps become ISO-8601 strings, other
//! extension values become `[type, {"type":"Buffer","data":[…]}]`. The decoder
//! works on a slice, checks every declared length against the bytes left
//! before allocating, bounds nesting at [`MAX_DEPTH`], and refuses trailing
//! bytes.

use crate::error::{EnvelopeError, MAX_DEPTH};
use serde_json::{Map, Number, Value};

fn enc<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), EnvelopeError> {
    r.map(|_| ())
        .map_err(|e| EnvelopeError::Encode(e.to_string()))
}

fn len32(len: usize, what: &'static str) -> Result<u32, EnvelopeError> {
    u32::try_from(len).map_err(|_| EnvelopeError::TooLarge(what))
}

/// Writes a string (fixstr / str8 / str16 / str32).
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) -> Result<(), EnvelopeError> {
    len32(s.len(), "string")?;
    enc(rmp::encode::write_str(buf, s))
}

/// Writes a map header.
pub(crate) fn write_map_len(buf: &mut Vec<u8>, len: usize) -> Result<(), EnvelopeError> {
    enc(rmp::encode::write_map_len(buf, len32(len, "map")?))
}

/// Writes an array header.
pub(crate) fn write_array_len(buf: &mut Vec<u8>, len: usize) -> Result<(), EnvelopeError> {
    enc(rmp::encode::write_array_len(buf, len32(len, "array")?))
}

/// Writes `true` / `false`.
pub(crate) fn write_bool(buf: &mut Vec<u8>, b: bool) -> Result<(), EnvelopeError> {
    enc(rmp::encode::write_bool(buf, b))
}

/// Writes an array of strings.
pub(crate) fn write_str_array(buf: &mut Vec<u8>, items: &[String]) -> Result<(), EnvelopeError> {
    write_array_len(buf, items.len())?;
    for s in items {
        write_str(buf, s)?;
    }
    Ok(())
}

/// Writes a number the way notepack does: integral and in range ⇒ the
/// smallest integer form, otherwise float64.
fn write_number(buf: &mut Vec<u8>, n: &Number) -> Result<(), EnvelopeError> {
    if let Some(u) = n.as_u64() {
        return enc(rmp::encode::write_uint(buf, u));
    }
    if let Some(i) = n.as_i64() {
        return enc(rmp::encode::write_sint(buf, i));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // 2^64 and -2^63 are exact in f64.
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    const MINUS_TWO_63: f64 = -9_223_372_036_854_775_808.0;
    if f.is_finite() && f.trunc() == f {
        if (0.0..TWO_64).contains(&f) {
            // Also maps -0.0 to 0, as notepack does.
            return enc(rmp::encode::write_uint(buf, f as u64));
        }
        if (MINUS_TWO_63..0.0).contains(&f) {
            return enc(rmp::encode::write_sint(buf, f as i64));
        }
    }
    enc(rmp::encode::write_f64(buf, f))
}

/// Writes `value`; `depth` is the nesting level of `value` itself if it is a
/// container (the outermost container is level 1).
pub(crate) fn write_value(
    buf: &mut Vec<u8>,
    value: &Value,
    depth: usize,
) -> Result<(), EnvelopeError> {
    match value {
        Value::Null => enc(rmp::encode::write_nil(buf)),
        Value::Bool(b) => write_bool(buf, *b),
        Value::Number(n) => write_number(buf, n),
        Value::String(s) => write_str(buf, s),
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(EnvelopeError::TooDeep);
            }
            write_array_len(buf, items.len())?;
            for item in items {
                write_value(buf, item, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            if depth > MAX_DEPTH {
                return Err(EnvelopeError::TooDeep);
            }
            write_map_len(buf, map.len())?;
            for (k, v) in map {
                write_str(buf, k)?;
                write_value(buf, v, depth + 1)?;
            }
            Ok(())
        }
    }
}

/// Decodes exactly one MessagePack value from `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, EnvelopeError> {
    let mut rd = Reader { buf: bytes, pos: 0 };
    let value = rd.value(1)?;
    if rd.pos != bytes.len() {
        return Err(EnvelopeError::TrailingBytes(bytes.len() - rd.pos));
    }
    Ok(value)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, offset: usize, reason: &'static str) -> EnvelopeError {
        EnvelopeError::InvalidMsgPack { offset, reason }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if n > self.remaining() {
            return Err(self.err(self.pos, "unexpected end of input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A declared byte length, checked against the input left.
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], EnvelopeError> {
        self.take(len)
    }

    fn str(&mut self, len: usize) -> Result<Value, EnvelopeError> {
        let raw = self.bytes(len)?;
        // notepack decodes with Buffer#toString('utf8'): invalid sequences
        // become U+FFFD rather than failing.
        Ok(Value::String(String::from_utf8_lossy(raw).into_owned()))
    }

    fn seq(&mut self, len: usize, depth: usize) -> Result<Value, EnvelopeError> {
        if depth > MAX_DEPTH {
            return Err(EnvelopeError::TooDeep);
        }
        // Every element takes at least one byte: never reserve more than
        // the input could hold.
        if len > self.remaining() {
            return Err(self.err(self.pos, "array length exceeds input"));
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, EnvelopeError> {
        if depth > MAX_DEPTH {
            return Err(EnvelopeError::TooDeep);
        }
        // Every entry takes at least two bytes.
        if len > self.remaining() / 2 {
            return Err(self.err(self.pos, "map length exceeds input"));
        }
        let mut map = Map::with_capacity(len);
        for _ in 0..len {
            let key = self.key(depth + 1)?;
            let value = self.value(depth + 1)?;
            // Like a JS property assignment: a repeated key keeps its first
            // position and takes the last value.
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    /// A map key, coerced to a property name as JavaScript would.
    fn key(&mut self, depth: usize) -> Result<String, EnvelopeError> {
        let marker = self.buf.get(self.pos).copied();
        match marker {
            Some(0xc4..=0xc6) => {
                // A Buffer key: String(buffer) is its UTF-8 text.
                self.pos += 1;
                let len = self.bin_len(marker.unwrap_or(0xc4))?;
                let raw = self.bytes(len)?;
                Ok(String::from_utf8_lossy(raw).into_owned())
            }
            _ => match self.value(depth)? {
                Value::String(s) => Ok(s),
                other => Ok(js_string(&other)),
            },
        }
    }

    fn bin_len(&mut self, marker: u8) -> Result<usize, EnvelopeError> {
        Ok(match marker {
            0xc4 => usize::from(self.u8()?),
            0xc5 => usize::from(self.u16()?),
            _ => self.u32()? as usize,
        })
    }

    fn ext(&mut self, marker: u8, len: usize) -> Result<Value, EnvelopeError> {
        let ty = self.u8()? as i8;
        let data = self.bytes(len)?;
        Ok(ext_value(marker, ty, data))
    }

    fn value(&mut self, depth: usize) -> Result<Value, EnvelopeError> {
        let offset = self.pos;
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::from(m),
            0x80..=0x8f => return self.map(usize::from(m & 0x0f), depth),
            0x90..=0x9f => return self.seq(usize::from(m & 0x0f), depth),
            0xa0..=0xbf => return self.str(usize::from(m & 0x1f)),
            0xc0 => Value::Null,
            0xc1 => return Err(self.err(offset, "reserved marker 0xc1")),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let len = self.bin_len(m)?;
                buffer_json(self.bytes(len)?)
            }
            0xc7 => {
                let len = usize::from(self.u8()?);
                return self.ext(m, len);
            }
            0xc8 => {
                let len = usize::from(self.u16()?);
                return self.ext(m, len);
            }
            0xc9 => {
                let len = self.u32()? as usize;
                return self.ext(m, len);
            }
            0xca => float(f64::from(f32::from_bits(self.u32()?))),
            0xcb => float(f64::from_bits(self.u64()?)),
            0xcc => Value::from(self.u8()?),
            0xcd => Value::from(self.u16()?),
            0xce => Value::from(self.u32()?),
            0xcf => Value::from(self.u64()?),
            0xd0 => Value::from(self.u8()? as i8),
            0xd1 => Value::from(self.u16()? as i16),
            0xd2 => Value::from(self.u32()? as i32),
            0xd3 => Value::from(self.u64()? as i64),
            0xd4 => return self.ext(m, 1),
            0xd5 => return self.ext(m, 2),
            0xd6 => return self.ext(m, 4),
            0xd7 => return self.ext(m, 8),
            0xd8 => return self.ext(m, 16),
            0xd9 => {
                let len = usize::from(self.u8()?);
                return self.str(len);
            }
            0xda => {
                let len = usize::from(self.u16()?);
                return self.str(len);
            }
            0xdb => {
                let len = self.u32()? as usize;
                return self.str(len);
            }
            0xdc => {
                let len = usize::from(self.u16()?);
                return self.seq(len, depth);
            }
            0xdd => {
                let len = self.u32()? as usize;
                return self.seq(len, depth);
            }
            0xde => {
                let len = usize::from(self.u16()?);
                return self.map(len, depth);
            }
            0xdf => {
                let len = self.u32()? as usize;
                return self.map(len, depth);
            }
            0xe0..=0xff => Value::from(m as i8),
        })
    }
}

/// A float as JSON: NaN and the infinities become `null` (JSON.stringify).
fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `JSON.stringify` of a Node `Buffer`.
fn buffer_json(bytes: &[u8]) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert("type".to_owned(), Value::String("Buffer".to_owned()));
    map.insert(
        "data".to_owned(),
        Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
    );
    Value::Object(map)
}

/// An extension value as notepack decodes it, then as JSON.
fn ext_value(marker: u8, ty: i8, data: &[u8]) -> Value {
    match (ty, data.len()) {
        // Timestamp extension (type -1): 32, 64 and 96-bit forms.
        (-1, 4) => {
            let secs = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            date_json(i128::from(secs) * 1_000_000_000)
        }
        (-1, 8) => {
            let v = u64::from_be_bytes([
                data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7],
            ]);
            let nanos = v >> 34;
            let secs = v & 0x3_ffff_ffff;
            date_json(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
        }
        (-1, 12) => {
            let nanos = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let secs = i64::from_be_bytes([
                data[4], data[5], data[6], data[7], data[8], data[9], data[10], data[11],
            ]);
            date_json(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
        }
        // notepack < 3 wrote a Date as fixext 8 type 0: int64 milliseconds.
        (0, 8) if marker == 0xd7 => {
            let ms = i64::from_be_bytes([
                data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7],
            ]);
            date_json(i128::from(ms) * 1_000_000)
        }
        // notepack < 3 wrote `undefined` as fixext 1 type 0.
        (0, 1) if marker == 0xd4 => Value::Null,
        // notepack < 3 wrote ArrayBuffers as ext type 0; read as a Buffer.
        (0, _) if matches!(marker, 0xc7..=0xc9) => buffer_json(data),
        _ => Value::Array(vec![Value::from(ty), buffer_json(data)]),
    }
}

/// Largest absolute time value of a JavaScript Date, in ms.
const MAX_DATE_MS: i128 = 8_640_000_000_000_000;

/// `Date#toJSON` of a time given in nanoseconds since the epoch: an
/// ISO-8601 string, or `null` for an invalid date (out of range).
fn date_json(nanos: i128) -> Value {
    // new Date(x) truncates fractional milliseconds toward zero.
    let ms = nanos / 1_000_000;
    if ms.abs() > MAX_DATE_MS {
        return Value::Null;
    }
    // In range, so it fits an i64.
    Value::String(iso_string(ms as i64))
}

/// JavaScript `Date#toISOString` for a valid time value.
pub(crate) fn iso_string(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y < 0 {
        format!("-{:06}", -y)
    } else {
        format!("+{y:06}")
    };
    format!("{year}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Proleptic Gregorian date of a day number (days since 1970-01-01),
/// after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// JavaScript `String(value)` for a JSON value (used for non-string map
/// keys).
fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => crate::json::to_js_string(n).unwrap_or_default(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                other => js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc_value(v: &Value) -> Vec<u8> {
        let mut buf = Vec::new();
        write_value(&mut buf, v, 1).unwrap();
        buf
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn integers_use_the_smallest_form() {
        let cases: &[(Value, &str)] = &[
            (json!(0), "00"),
            (json!(127), "7f"),
            (json!(128), "cc80"),
            (json!(255), "ccff"),
            (json!(256), "cd0100"),
            (json!(65536), "ce00010000"),
            (json!(4294967296u64), "cf0000000100000000"),
            (json!(-1), "ff"),
            (json!(-32), "e0"),
            (json!(-33), "d0df"),
            (json!(-129), "d1ff7f"),
            (json!(-32769), "d2ffff7fff"),
            (json!(-2147483649i64), "d3ffffffff7fffffff"),
            (json!(u64::MAX), "cfffffffffffffffff"),
            (json!(i64::MIN), "d38000000000000000"),
        ];
        for (v, h) in cases {
            assert_eq!(hex(&enc_value(v)), *h, "{v}");
            assert_eq!(decode(&unhex(h)).unwrap(), *v);
        }
    }

    #[test]
    fn floats() {
        assert_eq!(hex(&enc_value(&json!(5.0))), "05");
        assert_eq!(hex(&enc_value(&json!(-0.0))), "00");
        assert_eq!(hex(&enc_value(&json!(-5.0))), "fb");
        assert_eq!(hex(&enc_value(&json!(0.5))), "cb3fe0000000000000");
        assert_eq!(hex(&enc_value(&json!(1e19))), "cf8ac7230489e80000");
        // 2^64 is integral but out of range: float64.
        assert_eq!(
            hex(&enc_value(&json!(18446744073709551616.0))),
            "cb43f0000000000000"
        );
        assert_eq!(hex(&enc_value(&json!(-1e19))), "cbc3e158e460913d00");
        // float32 is read as f64.
        assert_eq!(decode(&unhex("ca3fc00000")).unwrap(), json!(1.5));
        // NaN and infinities become null.
        assert_eq!(decode(&unhex("cb7ff8000000000000")).unwrap(), Value::Null);
        assert_eq!(decode(&unhex("cb7ff0000000000000")).unwrap(), Value::Null);
    }

    #[test]
    fn strings_and_containers() {
        let s31 = "a".repeat(31);
        let s32 = "a".repeat(32);
        assert_eq!(enc_value(&json!(s31))[0], 0xbf);
        assert_eq!(enc_value(&json!(s32))[..2], [0xd9, 32]);
        assert_eq!(enc_value(&json!("a".repeat(256)))[..3], [0xda, 1, 0]);
        assert_eq!(
            enc_value(&json!("a".repeat(65536)))[..5],
            [0xdb, 0, 1, 0, 0]
        );
        let arr15 = Value::Array(vec![Value::Null; 15]);
        let arr16 = Value::Array(vec![Value::Null; 16]);
        assert_eq!(enc_value(&arr15)[0], 0x9f);
        assert_eq!(enc_value(&arr16)[..3], [0xdc, 0, 16]);
        let big = Value::Array(vec![Value::Null; 65536]);
        assert_eq!(enc_value(&big)[..5], [0xdd, 0, 1, 0, 0]);
        let mut m = Map::new();
        for i in 0..16 {
            m.insert(format!("k{i}"), Value::Null);
        }
        assert_eq!(enc_value(&Value::Object(m.clone()))[..3], [0xde, 0, 16]);
        assert_eq!(
            decode(&enc_value(&Value::Object(m.clone()))).unwrap(),
            Value::Object(m)
        );
        assert_eq!(hex(&enc_value(&json!([true, false, null]))), "93c3c2c0");
    }

    #[test]
    fn bin_and_ext() {
        assert_eq!(
            decode(&unhex("c403010203")).unwrap(),
            json!({"type":"Buffer","data":[1,2,3]})
        );
        assert_eq!(
            decode(&unhex("d40507")).unwrap(),
            json!([5, {"type":"Buffer","data":[7]}])
        );
        assert_eq!(
            decode(&unhex("c702fe0102")).unwrap(),
            json!([-2, {"type":"Buffer","data":[1,2]}])
        );
        // Timestamps: 2000-06-13T00:00:00.000Z as notepack 3 writes it.
        assert_eq!(
            decode(&unhex("d6ff39457980")).unwrap(),
            json!("2000-06-13T00:00:00.000Z")
        );
        // The same date as notepack 2 wrote it (fixext 8, type 0, int64 ms).
        assert_eq!(
            decode(&unhex("d700000000dfb7629c00")).unwrap(),
            json!("2000-06-13T00:00:00.000Z")
        );
        // 64-bit timestamp with nanoseconds: 2024-01-02T03:04:05.678Z.
        let secs: u64 = 1_704_164_645;
        let nanos: u64 = 678_000_000;
        let v = (nanos << 34) | secs;
        let mut b = vec![0xd7, 0xff];
        b.extend_from_slice(&v.to_be_bytes());
        assert_eq!(decode(&b).unwrap(), json!("2024-01-02T03:04:05.678Z"));
        // 96-bit timestamp before the epoch.
        let mut b = vec![0xc7, 12, 0xff];
        b.extend_from_slice(&500_000_000u32.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(decode(&b).unwrap(), json!("1969-12-31T23:59:59.500Z"));
        // Out of the Date range: Invalid Date, which toJSON turns into null.
        let mut b = vec![0xc7, 12, 0xff, 0, 0, 0, 0];
        b.extend_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(decode(&b).unwrap(), Value::Null);
        // Legacy undefined.
        assert_eq!(decode(&unhex("d40000")).unwrap(), Value::Null);
    }

    #[test]
    fn iso_years() {
        assert_eq!(iso_string(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_string(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            iso_string(8_640_000_000_000_000),
            "+275760-09-13T00:00:00.000Z"
        );
        assert_eq!(
            iso_string(-8_640_000_000_000_000),
            "-271821-04-20T00:00:00.000Z"
        );
        assert_eq!(iso_string(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(
            iso_string(-62_167_219_200_001),
            "-000001-12-31T23:59:59.999Z"
        );
        assert_eq!(
            iso_string(253_402_300_800_000),
            "+010000-01-01T00:00:00.000Z"
        );
        assert_eq!(iso_string(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn map_keys_are_coerced() {
        // {1: "a", true: "b", null: "c", 1.5: "d", [1,null,2]: "e", bin "k": "f"}
        let mut b = vec![0x86, 0x01, 0xa1, b'a', 0xc3, 0xa1, b'b', 0xc0, 0xa1, b'c'];
        b.extend_from_slice(&unhex("cb3ff8000000000000a164"));
        b.extend_from_slice(&unhex("9301c002a165"));
        b.extend_from_slice(&unhex("c4016ba166"));
        let v = decode(&b).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"1":"a","true":"b","null":"c","1.5":"d","1,,2":"e","k":"f"}"#
        );
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        // {"a":1,"b":2,"a":3}
        let v = decode(&unhex("83a16101a16202a16103")).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode(&unhex("a2c328")).unwrap(), json!("\u{fffd}("));
    }

    #[test]
    fn malformed_inputs_fail_fast() {
        for h in [
            "",
            "c1",
            "ddffffffff",
            "dfffffffff",
            "dbffffffff61",
            "c6ffffffff",
            "c9ffffffffff",
            "9201",
            "cb00",
            "81a161",
        ] {
            assert!(decode(&unhex(h)).is_err(), "{h}");
        }
        assert!(matches!(
            decode(&unhex("c0c0")),
            Err(EnvelopeError::TrailingBytes(1))
        ));
    }

    #[test]
    fn depth_is_bounded() {
        let ok = [vec![0x91u8; MAX_DEPTH - 1], vec![0x90]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [vec![0x91u8; MAX_DEPTH], vec![0x90]].concat();
        assert!(matches!(decode(&deep), Err(EnvelopeError::TooDeep)));
        let huge = vec![0x91u8; 1_000_000];
        assert!(decode(&huge).is_err());

        let mut v = json!([]);
        for _ in 0..MAX_DEPTH - 1 {
            v = json!([v]);
        }
        assert!(write_value(&mut Vec::new(), &v, 1).is_ok());
        let v = json!([v]);
        assert!(matches!(
            write_value(&mut Vec::new(), &v, 1),
            Err(EnvelopeError::TooDeep)
        ));
    }
}

/// `senderServer` of a MessagePack envelope (inside its `data` map when
/// `nested`), the last one when the key repeats, without building anything:
/// the other values are skipped. `None` when the bytes are not a map or the
/// field is missing or not a string.
pub(crate) fn sender(bytes: &[u8], nested: bool) -> Option<&[u8]> {
    let mut buf = bytes;
    let entries = map_len(&mut buf)?;
    let mut found: Option<&[u8]> = None;
    for _ in 0..entries {
        let key = key_of(&mut buf);
        match (key, nested) {
            (Some(b"senderServer"), false) => found = str_of(&mut buf),
            (Some(b"data"), true) => {
                found = None;
                let mut inner = buf;
                let n = map_len(&mut inner);
                match n {
                    Some(n) => {
                        for _ in 0..n {
                            match key_of(&mut inner) {
                                Some(b"senderServer") => found = str_of(&mut inner),
                                _ => skip(&mut inner)?,
                            }
                        }
                        buf = inner;
                    }
                    None => skip(&mut buf)?,
                }
            }
            (Some(_), _) => skip(&mut buf)?,
            // A key that is not a string: skip it and its value.
            (None, _) => {
                skip(&mut buf)?;
                skip(&mut buf)?;
            }
        }
    }
    found
}

/// Reads a map header.
fn map_len(buf: &mut &[u8]) -> Option<usize> {
    use rmp::Marker;
    let marker = rmp::decode::read_marker(buf).ok()?;
    Some(match marker {
        Marker::FixMap(n) => n as usize,
        Marker::Map16 => take_be(buf, 2)?,
        Marker::Map32 => take_be(buf, 4)?,
        _ => return None,
    })
}

/// Reads a string (fixstr / str8 / str16 / str32); on any other value the
/// buffer is left where it was and `None` returned.
fn str_of<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    text_of(buf, false)
}

/// Reads a map key that names a property: a string, or a binary (the full
/// decoder takes a Buffer key as its UTF-8 text, see [`Reader::key`]); on
/// any other value the buffer is left where it was and `None` returned.
fn key_of<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    text_of(buf, true)
}

fn text_of<'a>(buf: &mut &'a [u8], bin: bool) -> Option<&'a [u8]> {
    use rmp::Marker;
    let mut b = *buf;
    let len = match rmp::decode::read_marker(&mut b).ok()? {
        Marker::FixStr(n) => n as usize,
        Marker::Str8 => take_be(&mut b, 1)?,
        Marker::Str16 => take_be(&mut b, 2)?,
        Marker::Str32 => take_be(&mut b, 4)?,
        Marker::Bin8 if bin => take_be(&mut b, 1)?,
        Marker::Bin16 if bin => take_be(&mut b, 2)?,
        Marker::Bin32 if bin => take_be(&mut b, 4)?,
        _ => return None,
    };
    let s = b.get(..len)?;
    *buf = &b[len..];
    Some(s)
}

/// A big-endian length of `n` bytes.
fn take_be(buf: &mut &[u8], n: usize) -> Option<usize> {
    let bytes = buf.get(..n)?;
    let v = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    *buf = &buf[n..];
    Some(v)
}

/// Skips one value, without recursion: `pending` counts the values still
/// to skip (a container adds its items). Every value takes at least one
/// byte, so more pending values than bytes left is malformed.
fn skip(buf: &mut &[u8]) -> Option<()> {
    use rmp::Marker;
    let mut pending = 1usize;
    while pending > 0 {
        pending -= 1;
        let marker = rmp::decode::read_marker(buf).ok()?;
        let bytes = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                0
            }
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => n as usize,
            Marker::Str8 | Marker::Bin8 => take_be(buf, 1)?,
            Marker::Str16 | Marker::Bin16 => take_be(buf, 2)?,
            Marker::Str32 | Marker::Bin32 => take_be(buf, 4)?,
            Marker::FixArray(n) => {
                pending = pending.checked_add(n as usize)?;
                0
            }
            Marker::Array16 => {
                pending = pending.checked_add(take_be(buf, 2)?)?;
                0
            }
            Marker::Array32 => {
                pending = pending.checked_add(take_be(buf, 4)?)?;
                0
            }
            Marker::FixMap(n) => {
                pending = pending.checked_add(2 * n as usize)?;
                0
            }
            Marker::Map16 => {
                pending = pending.checked_add(2 * take_be(buf, 2)?)?;
                0
            }
            Marker::Map32 => {
                pending = pending.checked_add(take_be(buf, 4)?.checked_mul(2)?)?;
                0
            }
            Marker::FixExt1 => 2,
            Marker::FixExt2 => 3,
            Marker::FixExt4 => 5,
            Marker::FixExt8 => 9,
            Marker::FixExt16 => 17,
            Marker::Ext8 => take_be(buf, 1)? + 1,
            Marker::Ext16 => take_be(buf, 2)? + 1,
            Marker::Ext32 => take_be(buf, 4)? + 1,
            Marker::Reserved => return None,
        };
        if pending > buf.len() {
            return None;
        }
        *buf = buf.get(bytes..)?;
    }
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sender_tests {
    use super::*;

    #[test]
    fn the_sender_is_found_among_values_of_every_kind() {
        let v = serde_json::json!({
            "data": {"event": "e", "payload": {"a": [1, -2, 3.5, null, true, "x", {"b": 70000}], "n": 4294967296u64}, "senderServer": "n1", "targetServer": ["n2"]},
            "cwMid": "m:1"
        });
        let bytes = crate::envelope::encode_value(&v, crate::envelope::Codec::MsgPack).unwrap();
        assert_eq!(sender(&bytes, true), Some(&b"n1"[..]));
        assert_eq!(sender(&bytes, false), None);
        let top = crate::envelope::encode_value(
            &serde_json::json!({"data": "x", "senderServer": "n2"}),
            crate::envelope::Codec::MsgPack,
        )
        .unwrap();
        assert_eq!(sender(&top, false), Some(&b"n2"[..]));
    }

    #[test]
    fn a_binary_key_counts_as_the_full_decoder_counts_it() {
        // {"senderServer": "n1", <bin "senderServer">: "n2"}: the last one
        // wins, as in `decode`.
        let mut bytes = vec![0x82, 0xac];
        bytes.extend_from_slice(b"senderServer");
        bytes.extend_from_slice(b"\xa2n1\xc4\x0c");
        bytes.extend_from_slice(b"senderServer");
        bytes.extend_from_slice(b"\xa2n2");
        let full = decode(&bytes).unwrap();
        assert_eq!(full["senderServer"], "n2");
        assert_eq!(sender(&bytes, false), Some(&b"n2"[..]));
    }

    #[test]
    fn malformed_input_is_refused_not_panicked() {
        for bytes in [
            &b""[..],
            b"\x81",
            b"\x81\xa4data",
            b"\x81\xa4data\x81",
            b"\xdf\xff\xff\xff\xff",
            b"\x81\xa4data\xdd\xff\xff\xff\xff",
        ] {
            assert_eq!(sender(bytes, true), None);
        }
    }
}
