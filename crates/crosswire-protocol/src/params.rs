//! Connection URL parameters (`docs/protocol.md` §2.2, §2.3).
//!
//! The client appends its custom parameters to the connection URL as an
//! `application/x-www-form-urlencoded` query ([`append_custom_params`]); the
//! node reads them back from the request target of the upgrade request
//! ([`parse_ws_request_params`]), exactly like the original's
//! `parseWsRequestParams`.
//!
//! ```
//! use crosswire_protocol::params::{append_custom_params, parse_ws_request_params, ParseOptions};
//! let target = append_custom_params("/chat?pre=1", &[("id", "u1"), ("name", "Sam Smith")]);
//! assert_eq!(target, "/chat?pre=1&id=u1&name=Sam+Smith");
//! let p = parse_ws_request_params(&target, None, ParseOptions::default());
//! assert_eq!(p.get("name"), Some("Sam Smith"));
//! assert_eq!(p.path.as_deref(), Some("chat"));
//! ```

use indexmap::IndexMap;
use serde::Serialize;

/// Options of [`parse_ws_request_params`], with the original's defaults.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
/// let opts = ParseOptions { auto_remove_leading_slash: false, ..ParseOptions::default() };
/// assert_eq!(parse_ws_request_params("/room/1?id=u1", None, opts).path.as_deref(), Some("/room/1"));
/// let opts = ParseOptions { parse_path: false, ..ParseOptions::default() };
/// assert_eq!(parse_ws_request_params("/room/1?id=u1", None, opts).path, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Lower-case every key (`autoLowerCaseKeys`, default `false`).
    pub auto_lower_case_keys: bool,
    /// Fill [`RequestParams::path`] (`parsePath`, default `true`).
    pub parse_path: bool,
    /// Remove every leading `/` from the path (`autoRemoveLeadingSlash`,
    /// default `true`).
    pub auto_remove_leading_slash: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            auto_lower_case_keys: false,
            parse_path: true,
            auto_remove_leading_slash: true,
        }
    }
}

/// The value of one query parameter: a single string, or every value of a
/// repeated key in order. Serializes as the original's result does (a JSON
/// string or array of strings).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::params::{parse_ws_request_params, ParamValue, ParseOptions};
/// let p = parse_ws_request_params("/?a=1&a=2&b=x", None, ParseOptions::default());
/// assert_eq!(p.params["a"], ParamValue::Many(vec!["1".into(), "2".into()]));
/// assert_eq!(p.params["b"], ParamValue::One("x".into()));
/// assert_eq!(serde_json::to_string(&p.params["a"])?, r#"["1","2"]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// The key appeared once (or its earlier values were empty).
    One(String),
    /// The key appeared several times with a non-empty first value.
    Many(Vec<String>),
}

impl ParamValue {
    /// The first value.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::params::ParamValue;
    /// assert_eq!(ParamValue::Many(vec!["1".into(), "2".into()]).first(), "1");
    /// ```
    pub fn first(&self) -> &str {
        match self {
            ParamValue::One(s) => s,
            ParamValue::Many(v) => v.first().map(String::as_str).unwrap_or(""),
        }
    }

    /// The value if the key appeared once, else `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::params::ParamValue;
    /// assert_eq!(ParamValue::One("x".into()).as_str(), Some("x"));
    /// assert_eq!(ParamValue::Many(vec!["1".into(), "2".into()]).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::One(s) => Some(s),
            ParamValue::Many(_) => None,
        }
    }
}

/// The result of [`parse_ws_request_params`]: `{"params":{…},"path":…}`.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
/// let p = parse_ws_request_params("/game?id=u1&team=red", Some("example.com"), ParseOptions::default());
/// assert_eq!(p.path.as_deref(), Some("game"));
/// assert_eq!(p.params.len(), 2);
/// assert_eq!(serde_json::to_string(&p)?, r#"{"params":{"id":"u1","team":"red"},"path":"game"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RequestParams {
    /// Query parameters in order of first appearance.
    pub params: IndexMap<String, ParamValue>,
    /// The URL path, still percent-encoded; `None` when not parsed (option
    /// off, or the request target could not be parsed).
    pub path: Option<String>,
}

impl RequestParams {
    /// The first value of parameter `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
    /// let p = parse_ws_request_params("/?id=u1&tag=a&tag=b", None, ParseOptions::default());
    /// assert_eq!(p.get("id"), Some("u1"));
    /// assert_eq!(p.get("tag"), Some("a"));
    /// assert_eq!(p.get("missing"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(ParamValue::first)
    }
}

/// Parses the request target of an upgrade request the way the original's
/// `parseWsRequestParams(req, options)` does.
///
/// The target is resolved with the WHATWG URL parser against
/// `http://<host or "localhost">`; query pairs are form-urlencoded (`+` is a
/// space). For a repeated key, an empty (falsy) current value is replaced,
/// otherwise the values are collected into an array (`?x=&x=1` gives
/// `x:"1"`, `?a=1&a=2` gives `a:["1","2"]`). Keys such as `__proto__` or
/// `toString` are ordinary keys here (fixing weakness 7 of `docs/compatibility.md`).
///
/// An empty target or one that cannot be parsed gives
/// `{"params":{},"path":null}`, as the original returns after catching the
/// error.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::params::{parse_ws_request_params, ParseOptions};
/// let opts = ParseOptions { auto_lower_case_keys: true, ..ParseOptions::default() };
/// let p = parse_ws_request_params("/?A=1&a=2&A=3", None, opts);
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"params":{"a":["1","2","3"]},"path":""}"#);
/// ```
pub fn parse_ws_request_params(
    request_target: &str,
    host: Option<&str>,
    opts: ParseOptions,
) -> RequestParams {
    let mut result = RequestParams::default();
    if request_target.is_empty() {
        return result;
    }
    let host = match host {
        Some(h) if !h.is_empty() => h,
        _ => "localhost",
    };
    let Ok(base) = url::Url::parse(&format!("http://{host}")) else {
        return result;
    };
    let Ok(url) = base.join(request_target) else {
        return result;
    };
    for (key, value) in url.query_pairs() {
        let key = if opts.auto_lower_case_keys {
            key.to_lowercase()
        } else {
            key.into_owned()
        };
        let value = value.into_owned();
        match result.params.get_mut(&key) {
            None => {
                result.params.insert(key, ParamValue::One(value));
            }
            Some(slot) => match slot {
                // A falsy (empty) current value is replaced.
                ParamValue::One(old) if old.is_empty() => *old = value,
                ParamValue::One(old) => {
                    let old = std::mem::take(old);
                    *slot = ParamValue::Many(vec![old, value]);
                }
                ParamValue::Many(values) => values.push(value),
            },
        }
    }
    if opts.parse_path {
        let path = url.path();
        let path = if opts.auto_remove_leading_slash {
            path.trim_start_matches('/')
        } else {
            path
        };
        result.path = Some(path.to_owned());
    }
    result
}

/// Appends `params` to `url` as a form-urlencoded query, as the original
/// client does with `customParams` (`docs/protocol.md` §2.2): `&` if `url` already
/// contains a `?` anywhere, else `?`; nothing at all when `params` is
/// empty. The query is appended at the very end, even after a `#fragment`.
///
/// Encoding is WHATWG `URLSearchParams`: ASCII alphanumerics and `*-._` are
/// kept, space becomes `+`, every other byte is `%XX` (uppercase).
/// Stringifying values (JavaScript `String(v)`) is the caller's job.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::params::append_custom_params;
/// assert_eq!(append_custom_params("ws://h/", &[("q", "a b~")]), "ws://h/?q=a+b%7E");
/// assert_eq!(append_custom_params("ws://h/?x=1", &[("y", "2")]), "ws://h/?x=1&y=2");
/// assert_eq!(append_custom_params("ws://h/", &[]), "ws://h/");
/// ```
pub fn append_custom_params(url: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return url.to_owned();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().copied())
        .finish();
    let mut out = String::with_capacity(url.len() + 1 + query.len());
    out.push_str(url);
    out.push(if url.contains('?') { '&' } else { '?' });
    out.push_str(&query);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(target: &str) -> RequestParams {
        parse_ws_request_params(target, None, ParseOptions::default())
    }

    #[test]
    fn falsy_value_is_replaced() {
        let p = parse("/?x=&x=1");
        assert_eq!(p.params["x"], ParamValue::One("1".into()));
        let p = parse("/?x=1&x=");
        assert_eq!(p.params["x"], ParamValue::Many(vec!["1".into(), "".into()]));
        let p = parse("/?x=1&x=&x=2");
        assert_eq!(
            p.params["x"],
            ParamValue::Many(vec!["1".into(), "".into(), "2".into()])
        );
    }

    #[test]
    fn prototype_keys_are_ordinary() {
        let p = parse("/?toString=x&__proto__=y&constructor=z");
        assert_eq!(p.get("toString"), Some("x"));
        assert_eq!(p.get("__proto__"), Some("y"));
        assert_eq!(p.get("constructor"), Some("z"));
    }

    #[test]
    fn paths() {
        assert_eq!(parse("/").path.as_deref(), Some(""));
        assert_eq!(parse("/p%20q").path.as_deref(), Some("p%20q"));
        assert_eq!(parse("//a//b/").path.as_deref(), Some("b/"));
        let keep = ParseOptions {
            auto_remove_leading_slash: false,
            ..ParseOptions::default()
        };
        assert_eq!(
            parse_ws_request_params("/a/b", None, keep).path.as_deref(),
            Some("/a/b")
        );
        let no_path = ParseOptions {
            parse_path: false,
            ..ParseOptions::default()
        };
        assert_eq!(parse_ws_request_params("/a/b", None, no_path).path, None);
    }

    #[test]
    fn empty_or_unparsable_target() {
        assert_eq!(parse(""), RequestParams::default());
        let p = parse_ws_request_params("/?a=1", Some("bad host[]"), ParseOptions::default());
        assert_eq!(p, RequestParams::default());
    }

    #[test]
    fn host_header_is_used_as_base() {
        let p =
            parse_ws_request_params("/x?a=1", Some("example.com:8080"), ParseOptions::default());
        assert_eq!(p.path.as_deref(), Some("x"));
        assert_eq!(p.get("a"), Some("1"));
    }

    #[test]
    fn param_value_accessors() {
        let one = ParamValue::One("a".into());
        assert_eq!(one.first(), "a");
        assert_eq!(one.as_str(), Some("a"));
        let many = ParamValue::Many(vec![]);
        assert_eq!(many.first(), "");
        assert_eq!(many.as_str(), None);
    }
}
