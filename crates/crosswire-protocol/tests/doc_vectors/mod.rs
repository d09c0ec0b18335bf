//! The test vectors of `docs/protocol.md` §12, read from the document
//! itself: the document is the one copy of every vector, and the tests check
//! whatever it says.
//!
//! A vector is a fenced block whose info string is `vector <name>`; its
//! lines are `field: value`, hex values may continue on indented lines (see
//! §12.1 of the document). [`parse`] refuses anything else: an unknown kind
//! or field, a missing field, a duplicate name, bad hex, an unterminated
//! block.

#![allow(dead_code)] // Each test binary uses part of it.

use std::sync::OnceLock;

/// The document, compiled in (changing it rebuilds the tests).
pub const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol.md"
));

/// What a field holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Text,
    Hex,
}

/// The fields of each kind: (name, type, required).
fn schema(kind: &str) -> Option<&'static [(&'static str, Type, bool)]> {
    use Type::*;
    Some(match kind {
        "client-event" => &[("text", Text, true)],
        "reply" | "push" => &[("text", Text, true), ("frame", Hex, false)],
        "url" => &[
            ("base", Text, true),
            ("params", Text, true),
            ("result", Text, true),
        ],
        "query" => &[
            ("target", Text, true),
            ("host", Text, false),
            ("options", Text, false),
            ("result", Text, true),
        ],
        "bus" => &[
            ("channel", Text, true),
            ("json", Text, true),
            ("msgpack", Hex, false),
        ],
        "signed" => &[
            ("secret", Text, true),
            ("channel", Text, true),
            ("timestamp", Text, true),
            ("nonce", Text, true),
            ("body", Hex, true),
            ("frame", Hex, true),
        ],
        _ => return None,
    })
}

/// One field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Bytes(Vec<u8>),
}

/// One test vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// Its name (`V1`, `C1`, ...).
    pub name: String,
    /// Its kind (`bus`, `reply`, ...).
    pub kind: String,
    /// Line of the opening fence in the document (1-based).
    pub line: usize,
    fields: Vec<(String, Value)>,
}

impl Vector {
    fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A text field that may be absent.
    pub fn opt_text(&self, name: &str) -> Option<&str> {
        match self.field(name) {
            Some(Value::Text(t)) => Some(t),
            Some(Value::Bytes(_)) => panic!("{}: field {name} is hex", self.name),
            None => None,
        }
    }

    /// A text field.
    pub fn text(&self, name: &str) -> &str {
        self.opt_text(name)
            .unwrap_or_else(|| panic!("vector {} has no field {name}", self.name))
    }

    /// A hex field that may be absent.
    pub fn opt_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.field(name) {
            Some(Value::Bytes(b)) => Some(b),
            Some(Value::Text(_)) => panic!("{}: field {name} is text", self.name),
            None => None,
        }
    }

    /// A hex field.
    pub fn bytes(&self, name: &str) -> &[u8] {
        self.opt_bytes(name)
            .unwrap_or_else(|| panic!("vector {} has no field {name}", self.name))
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() {
        return Err("empty hex".into());
    }
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("not hex: {pair:?}"))
        })
        .collect()
}

/// A block being read.
struct Open {
    name: String,
    line: usize,
    /// (field, raw value, line).
    fields: Vec<(String, String, usize)>,
}

fn finish(open: Open) -> Result<Vector, String> {
    let at = |line: usize| format!("docs/protocol.md line {line} (vector {})", open.name);
    let mut fields = open.fields.into_iter();
    let kind = match fields.next() {
        Some((f, v, _)) if f == "kind" => v,
        Some((_, _, line)) => return Err(format!("{}: `kind` must come first", at(line))),
        None => return Err(format!("{}: empty vector", at(open.line))),
    };
    let schema =
        schema(&kind).ok_or_else(|| format!("{}: unknown kind {kind:?}", at(open.line)))?;
    let mut out = Vec::new();
    for (field, raw, line) in fields {
        let Some(&(_, ty, _)) = schema.iter().find(|(n, _, _)| *n == field) else {
            return Err(format!(
                "{}: unknown field {field:?} for kind {kind}",
                at(line)
            ));
        };
        if out.iter().any(|(n, _)| *n == field) {
            return Err(format!("{}: field {field:?} given twice", at(line)));
        }
        let value = match ty {
            Type::Text => Value::Text(raw),
            Type::Hex => {
                Value::Bytes(unhex(&raw).map_err(|e| format!("{}: {field}: {e}", at(line)))?)
            }
        };
        out.push((field, value));
    }
    for &(name, _, required) in schema {
        if required && !out.iter().any(|(n, _)| n == name) {
            return Err(format!("{}: missing field {name:?}", at(open.line)));
        }
    }
    Ok(Vector {
        name: open.name,
        kind,
        line: open.line,
        fields: out,
    })
}

/// Reads every vector of a Markdown document.
pub fn parse(doc: &str) -> Result<Vec<Vector>, String> {
    let mut vectors: Vec<Vector> = Vec::new();
    let mut open: Option<Open> = None;
    // The fence of another code block we are inside (its backtick count).
    let mut other_fence: Option<usize> = None;
    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        let ticks = line.bytes().take_while(|&b| b == b'`').count();
        if let Some(fence) = other_fence {
            if ticks >= fence && line[ticks..].trim().is_empty() {
                other_fence = None;
            }
            continue;
        }
        if let Some(block) = open.as_mut() {
            if ticks >= 3 && line[ticks..].trim().is_empty() {
                let Some(block) = open.take() else { continue };
                let v = finish(block)?;
                if vectors.iter().any(|o| o.name == v.name) {
                    return Err(format!(
                        "docs/protocol.md line {}: vector {} defined twice",
                        v.line, v.name
                    ));
                }
                vectors.push(v);
            } else if line.starts_with([' ', '\t']) {
                match block.fields.last_mut() {
                    Some(last) if !line.trim().is_empty() => {
                        last.1.push(' ');
                        last.1.push_str(line.trim());
                    }
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "docs/protocol.md line {n}: continuation before any field"
                        ))
                    }
                }
            } else if let Some((field, value)) = line.split_once(':') {
                let value = match value.strip_prefix(' ') {
                    Some(v) => v,
                    None if value.is_empty() => "",
                    None => {
                        return Err(format!(
                            "docs/protocol.md line {n}: expected `field: value`"
                        ))
                    }
                };
                if field.is_empty() || !field.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                    return Err(format!(
                        "docs/protocol.md line {n}: bad field name {field:?}"
                    ));
                }
                block.fields.push((field.to_owned(), value.to_owned(), n));
            } else {
                return Err(format!(
                    "docs/protocol.md line {n}: expected `field: value`, got {line:?}"
                ));
            }
            continue;
        }
        if ticks >= 3 {
            let info = line[ticks..].trim();
            let mut words = info.split_whitespace();
            if words.next() == Some("vector") {
                if ticks != 3 {
                    return Err(format!(
                        "docs/protocol.md line {n}: a vector block opens with ```"
                    ));
                }
                let name = words
                    .next()
                    .ok_or_else(|| format!("docs/protocol.md line {n}: vector without a name"))?;
                if words.next().is_some() {
                    return Err(format!(
                        "docs/protocol.md line {n}: text after the vector's name"
                    ));
                }
                open = Some(Open {
                    name: name.to_owned(),
                    line: n,
                    fields: Vec::new(),
                });
            } else if info.starts_with("vector") {
                return Err(format!(
                    "docs/protocol.md line {n}: unknown info string {info:?}"
                ));
            } else {
                other_fence = Some(ticks);
            }
        }
    }
    if let Some(block) = open {
        return Err(format!(
            "docs/protocol.md line {}: vector {} is never closed",
            block.line, block.name
        ));
    }
    if other_fence.is_some() {
        return Err("docs/protocol.md: a code block is never closed".into());
    }
    Ok(vectors)
}

/// Every vector of `docs/protocol.md` (panics, naming the line, if the
/// document is malformed).
pub fn all() -> &'static [Vector] {
    static ALL: OnceLock<Vec<Vector>> = OnceLock::new();
    ALL.get_or_init(|| {
        let v = parse(DOC).unwrap_or_else(|e| panic!("{e}"));
        assert!(!v.is_empty(), "docs/protocol.md has no test vectors");
        v
    })
}

/// The vector named `name` (panics if the document lacks it).
pub fn vector(name: &str) -> &'static Vector {
    all()
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("docs/protocol.md has no vector {name}"))
}

/// Every vector of one kind; panics if there is none.
pub fn of_kind(kind: &str) -> Vec<&'static Vector> {
    let v: Vec<_> = all().iter().filter(|v| v.kind == kind).collect();
    assert!(
        !v.is_empty(),
        "docs/protocol.md has no vector of kind {kind}"
    );
    v
}
