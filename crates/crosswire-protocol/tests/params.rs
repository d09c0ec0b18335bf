//! Connection URL parameters (`docs/protocol.md` §2.2 and §2.3). The
//! document's `url` and `query` vectors (§12.2, §12.3) are read from it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod doc_vectors;

use crosswire_protocol::params::{
    append_custom_params, parse_ws_request_params, ParamValue, ParseOptions, RequestParams,
};
use doc_vectors::{of_kind, vector, Vector};

fn parse(target: &str) -> RequestParams {
    parse_ws_request_params(target, None, ParseOptions::default())
}

fn to_json(p: &RequestParams) -> String {
    serde_json::to_string(p).unwrap()
}

/// The `params` of a `url` vector: a JSON array of `[key, value]` pairs.
fn pairs(v: &Vector) -> Vec<(String, String)> {
    serde_json::from_str(v.text("params")).unwrap_or_else(|e| panic!("{}: params: {e}", v.name))
}

fn encode(v: &Vector) -> String {
    let pairs = pairs(v);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect();
    append_custom_params(v.text("base"), &refs)
}

/// The options of a `query` vector.
fn options(v: &Vector) -> ParseOptions {
    let mut o = ParseOptions::default();
    for opt in v.opt_text("options").unwrap_or("").split(',') {
        match opt.trim() {
            "" => {}
            "lowercase-keys" => o.auto_lower_case_keys = true,
            "keep-leading-slash" => o.auto_remove_leading_slash = false,
            "no-path" => o.parse_path = false,
            other => panic!("{}: unknown option {other:?}", v.name),
        }
    }
    o
}

fn read(v: &Vector) -> RequestParams {
    parse_ws_request_params(v.text("target"), v.opt_text("host"), options(v))
}

#[test]
fn every_url_vector_of_the_document_holds() {
    for v in of_kind("url") {
        assert_eq!(encode(v), v.text("result"), "{}", v.name);
    }
}

#[test]
fn every_query_vector_of_the_document_holds() {
    for v in of_kind("query") {
        assert_eq!(to_json(&read(v)), v.text("result"), "{}", v.name);
    }
}

#[test]
fn captured_example_encodes_exactly() {
    // The original's customParams, already stringified as JavaScript's
    // `String(v)` does (`[1,2]` ⇒ `1,2`, `{a:1}` ⇒ `[object Object]`, …).
    let v = vector("U1");
    let keys: Vec<String> = pairs(v).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["id", "name", "q", "n", "arr", "obj", "nul", "und"]);
    assert_eq!(encode(v), v.text("result"));
}

#[test]
fn captured_example_decodes_exactly() {
    // Q1 reads back the request target of U1.
    let url = vector("U1").text("result");
    let q = vector("Q1");
    assert_eq!(
        url.strip_prefix("ws://")
            .and_then(|u| u.strip_prefix(q.opt_text("host").unwrap_or(""))),
        Some(q.text("target"))
    );
    let p = read(q);
    assert_eq!(to_json(&p), q.text("result"));
    // Without a Host header the result is the same.
    assert_eq!(parse(q.text("target")), p);
    assert_eq!(p.get("name"), Some("Sam Smith"));
    assert_eq!(p.path.as_deref(), Some("chat/room"));
}

#[test]
fn encoding_round_trips() {
    // Every printable ASCII character (U2) reads back as itself.
    let v = vector("U2");
    let (_, all) = pairs(v).remove(0);
    assert_eq!(parse(v.text("result")).get("k"), Some(all.as_str()));
}

#[test]
fn repeated_keys() {
    let p = parse("/?a=1&a=2");
    assert_eq!(p.get("a"), Some("1"));
    assert_eq!(p.params["a"].as_str(), None);
    assert_eq!(p.get("missing"), None);
}

#[test]
fn failures_give_the_empty_result() {
    assert_eq!(to_json(&parse("")), r#"{"params":{},"path":null}"#);
    let p = parse_ws_request_params("/?a=1", Some("bad host"), ParseOptions::default());
    assert_eq!(to_json(&p), r#"{"params":{},"path":null}"#);
    // An empty Host header falls back to localhost.
    let p = parse_ws_request_params("/?a=1", Some(""), ParseOptions::default());
    assert_eq!(p.get("a"), Some("1"));
}

#[test]
fn param_value_serializes_untagged() {
    assert_eq!(
        serde_json::to_string(&ParamValue::One("a".into())).unwrap(),
        r#""a""#
    );
    assert_eq!(
        serde_json::to_string(&ParamValue::Many(vec!["a".into(), "b".into()])).unwrap(),
        r#"["a","b"]"#
    );
    let d = ParseOptions::default();
    assert!(!d.auto_lower_case_keys && d.parse_path && d.auto_remove_leading_slash);
}
