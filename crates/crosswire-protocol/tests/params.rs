//! Connection URL parameters (PROTOCOL.md A.2, BEHAVIOUR.md §2.10).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use crosswire_protocol::params::{
    append_custom_params, parse_ws_request_params, ParamValue, ParseOptions, RequestParams,
};

const CAPTURED_TARGET: &str = "/chat/room?pre=1&id=u1&name=Sam+Smith&q=a%26b%3Dc%2Fd%3F%C3%A9%2B*%7E&n=42&arr=1%2C2&obj=%5Bobject+Object%5D&nul=null&und=undefined";

/// The captured customParams, already stringified as JavaScript's
/// `String(v)` does (`[1,2]` ⇒ `1,2`, `{a:1}` ⇒ `[object Object]`, …).
const CAPTURED_PARAMS: &[(&str, &str)] = &[
    ("id", "u1"),
    ("name", "Sam Smith"),
    ("q", "a&b=c/d?é+*~"),
    ("n", "42"),
    ("arr", "1,2"),
    ("obj", "[object Object]"),
    ("nul", "null"),
    ("und", "undefined"),
];

fn parse(target: &str) -> RequestParams {
    parse_ws_request_params(target, None, ParseOptions::default())
}

fn to_json(p: &RequestParams) -> String {
    serde_json::to_string(p).unwrap()
}

#[test]
fn captured_example_encodes_exactly() {
    let url = append_custom_params("ws://127.0.0.1:19000/chat/room?pre=1", CAPTURED_PARAMS);
    let target = url.strip_prefix("ws://127.0.0.1:19000").unwrap();
    assert_eq!(target, CAPTURED_TARGET);
}

#[test]
fn captured_example_decodes_exactly() {
    let p = parse_ws_request_params(
        CAPTURED_TARGET,
        Some("127.0.0.1:19000"),
        ParseOptions::default(),
    );
    assert_eq!(
        to_json(&p),
        r#"{"params":{"pre":"1","id":"u1","name":"Sam Smith","q":"a&b=c/d?é+*~","n":"42","arr":"1,2","obj":"[object Object]","nul":"null","und":"undefined"},"path":"chat/room"}"#
    );
    assert_eq!(parse(CAPTURED_TARGET), p);
}

#[test]
fn encoding_byte_set_is_url_search_params() {
    let all: String = (0x20u8..0x7f).map(char::from).collect();
    let url = append_custom_params("/", &[("k", &all)]);
    assert_eq!(
        url,
        "/?k=+%21%22%23%24%25%26%27%28%29*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D%7E"
    );
    // Keys are encoded the same way; multi-byte UTF-8 uses uppercase hex.
    assert_eq!(
        append_custom_params("/", &[("ké y", "漢")]),
        "/?k%C3%A9+y=%E6%BC%A2"
    );
    // Round trip.
    let p = parse(&url);
    assert_eq!(p.get("k"), Some(all.as_str()));
}

#[test]
fn separator_and_empty_params() {
    assert_eq!(append_custom_params("ws://h/p", &[]), "ws://h/p");
    assert_eq!(
        append_custom_params("ws://h/p", &[("a", "1")]),
        "ws://h/p?a=1"
    );
    assert_eq!(
        append_custom_params("ws://h/p?", &[("a", "1")]),
        "ws://h/p?&a=1"
    );
    assert_eq!(
        append_custom_params("ws://h/p?x=1", &[("a", "1"), ("b", "")]),
        "ws://h/p?x=1&a=1&b="
    );
    // Appended after a fragment, and a '?' inside the fragment counts.
    assert_eq!(
        append_custom_params("ws://h/p#f", &[("a", "1")]),
        "ws://h/p#f?a=1"
    );
    assert_eq!(
        append_custom_params("ws://h/p#f?", &[("a", "1")]),
        "ws://h/p#f?&a=1"
    );
    // An empty key still produces a query.
    assert_eq!(append_custom_params("/", &[("", "")]), "/?=");
}

#[test]
fn repeated_keys() {
    assert_eq!(
        to_json(&parse("/?x=&x=1")),
        r#"{"params":{"x":"1"},"path":""}"#
    );
    assert_eq!(
        to_json(&parse("/?a=1&a=2")),
        r#"{"params":{"a":["1","2"]},"path":""}"#
    );
    assert_eq!(
        to_json(&parse("/?a=1&b=2&a=3&a=")),
        r#"{"params":{"a":["1","3",""],"b":"2"},"path":""}"#
    );
    let lower = ParseOptions {
        auto_lower_case_keys: true,
        ..ParseOptions::default()
    };
    assert_eq!(
        to_json(&parse_ws_request_params("/?A=1&a=2&A=3", None, lower)),
        r#"{"params":{"a":["1","2","3"]},"path":""}"#
    );
    // Without lower-casing the keys are distinct.
    assert_eq!(
        to_json(&parse("/?A=1&a=2&A=3")),
        r#"{"params":{"A":["1","3"],"a":"2"},"path":""}"#
    );
    let p = parse("/?a=1&a=2");
    assert_eq!(p.get("a"), Some("1"));
    assert_eq!(p.params["a"].as_str(), None);
    assert_eq!(p.get("missing"), None);
}

#[test]
fn prototype_like_keys_are_ordinary() {
    assert_eq!(
        to_json(&parse(
            "/?toString=x&__proto__=y&hasOwnProperty=z&__proto__=w"
        )),
        r#"{"params":{"toString":"x","__proto__":["y","w"],"hasOwnProperty":"z"},"path":""}"#
    );
}

#[test]
fn query_decoding() {
    let p = parse("/?a=1+2&b=%2B&c&=v&d=%zz&e=%C3%A9&f=%FF&&g==x");
    assert_eq!(p.get("a"), Some("1 2"));
    assert_eq!(p.get("b"), Some("+"));
    assert_eq!(p.get("c"), Some(""));
    assert_eq!(p.get(""), Some("v"));
    assert_eq!(p.get("d"), Some("%zz"));
    assert_eq!(p.get("e"), Some("é"));
    assert_eq!(p.get("f"), Some("\u{fffd}"));
    assert_eq!(p.get("g"), Some("=x"));
    // The fragment is not part of the query.
    assert_eq!(parse("/?a=1#b=2").get("b"), None);
    assert_eq!(parse("/?a=1#b=2").params.len(), 1);
}

#[test]
fn path_rules() {
    assert_eq!(parse("/").path.as_deref(), Some(""));
    assert_eq!(parse("/?a=1").path.as_deref(), Some(""));
    assert_eq!(parse("/chat/room/").path.as_deref(), Some("chat/room/"));
    assert_eq!(parse("/p%20q").path.as_deref(), Some("p%20q"));
    assert_eq!(parse("/p q").path.as_deref(), Some("p%20q"));
    assert_eq!(parse("//a//b/").path.as_deref(), Some("b/"));
    assert_eq!(parse("/a/../b").path.as_deref(), Some("b"));
    assert_eq!(parse("relative?x=1").path.as_deref(), Some("relative"));
    let keep = ParseOptions {
        auto_remove_leading_slash: false,
        ..ParseOptions::default()
    };
    assert_eq!(
        parse_ws_request_params("//a//b/", None, keep)
            .path
            .as_deref(),
        Some("//b/")
    );
    let off = ParseOptions {
        parse_path: false,
        ..ParseOptions::default()
    };
    assert_eq!(
        to_json(&parse_ws_request_params("/x?a=1", None, off)),
        r#"{"params":{"a":"1"},"path":null}"#
    );
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
