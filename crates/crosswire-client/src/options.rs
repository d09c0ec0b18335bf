//! Connector options (the original's `options`, with its defaults) and
//! per-call emit options.

use crate::error::ConnectorError;
use crosswire_protocol::history::RECOVERY_PARAM;
use crosswire_protocol::params::append_custom_params;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Everything a [`Connector`](crate::Connector) is built from, with the
/// original `WebSocketConnector`'s defaults (listed in `docs/migration.md`,
/// "Client").
///
/// Durations are milliseconds when read from or written to JSON/TOML
/// (`ping_interval_ms`, ...); missing fields take their defaults.
///
/// # Examples
///
/// ```
/// use crosswire_client::ConnectorOptions;
/// use std::time::Duration;
/// let opts: ConnectorOptions =
///     serde_json::from_str(r#"{"url":"ws://127.0.0.1:9000","ping_interval_ms":5000}"#).unwrap();
/// assert_eq!(opts.ping_interval, Duration::from_secs(5));
/// assert_eq!(opts.pong_timeout, Duration::from_secs(2));
/// let opts = ConnectorOptions::new("ws://127.0.0.1:9000").param("id", "u1");
/// assert_eq!(opts.connection_url(), "ws://127.0.0.1:9000/?id=u1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectorOptions {
    /// The full `ws://` or `wss://` URL (`url`, required). `wss://` needs
    /// the crate's `rustls` feature.
    pub url: String,
    /// Time between the opening (or the previous heartbeat reply) and the
    /// next heartbeat (`pingInterval`, default 10 s).
    #[serde(rename = "ping_interval_ms", with = "ms")]
    pub ping_interval: Duration,
    /// How long to wait for the heartbeat reply before closing with 4002
    /// (`pongTimeout`, default 2 s).
    #[serde(rename = "pong_timeout_ms", with = "ms")]
    pub pong_timeout: Duration,
    /// Number of reconnection attempts that use the fixed fast delay
    /// (`fastReconnectThreshold`, default 3).
    pub fast_reconnect_threshold: u32,
    /// The fast delay, also the backoff unit and the jitter range
    /// (`fastReconnectInterval`, default 3 s).
    #[serde(rename = "fast_reconnect_interval_ms", with = "ms")]
    pub fast_reconnect_interval: Duration,
    /// Cap of the backoff delay (`reconnectMaxInterval`, default 120 s).
    #[serde(rename = "reconnect_max_interval_ms", with = "ms")]
    pub reconnect_max_interval: Duration,
    /// The heartbeat string; must equal the node's heartbeat string
    /// (`pingMsg`, default empty).
    pub ping_msg: String,
    /// Default reply timeout of the emit-with-callback forms
    /// (`callbackTimeout`, default 5 s).
    #[serde(rename = "callback_timeout_ms", with = "ms")]
    pub callback_timeout: Duration,
    /// Most reconnection attempts scheduled in a row, `None` for no limit
    /// (`repeatLimit`, default `None`).
    pub repeat_limit: Option<u32>,
    /// Default delay before an emit's `on_pending` hook (`pendingTimeout`,
    /// default 100 ms).
    #[serde(rename = "pending_timeout_ms", with = "ms")]
    pub pending_timeout: Duration,
    /// Query parameters appended to the URL, in order (`customParams`,
    /// default none). Encoded exactly as the original does (`docs/protocol.md`
    /// §2.2).
    pub custom_params: Vec<(String, String)>,
    /// Add the original's random term `U·I` (U uniform in [0, 1)) to backoff
    /// delays (default `true`); `false` makes the schedule deterministic.
    pub jitter: bool,
    /// How long a close handshake this client started may take before the
    /// connection is dropped (not in the original, which relies on the
    /// WebSocket implementation's own timeout; default 5 s). A pong timeout
    /// whose close is never answered ends as an abnormal close (1006), which
    /// reconnects.
    #[serde(rename = "close_timeout_ms", with = "ms")]
    pub close_timeout: Duration,
    /// Missed-message recovery (a crosswire extension, default `false`; see
    /// [`recovery()`](Self::recovery())). Off, the connector's frames and URLs
    /// are the original's, byte for byte.
    pub recovery: bool,
    /// Room presence (a crosswire extension, default `false`; see
    /// [`presence()`](Self::presence())).
    pub presence: bool,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        ConnectorOptions {
            url: String::new(),
            ping_interval: Duration::from_millis(10_000),
            pong_timeout: Duration::from_millis(2_000),
            fast_reconnect_threshold: 3,
            fast_reconnect_interval: Duration::from_millis(3_000),
            reconnect_max_interval: Duration::from_millis(120_000),
            ping_msg: String::new(),
            callback_timeout: Duration::from_millis(5_000),
            repeat_limit: None,
            pending_timeout: Duration::from_millis(100),
            custom_params: Vec::new(),
            jitter: true,
            close_timeout: Duration::from_millis(5_000),
            recovery: false,
            presence: false,
        }
    }
}

impl ConnectorOptions {
    /// The defaults with `url`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// let opts = ConnectorOptions::new("ws://127.0.0.1:9000");
    /// assert_eq!(opts.url, "ws://127.0.0.1:9000");
    /// assert_eq!(opts.ping_interval, std::time::Duration::from_secs(10));
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        ConnectorOptions {
            url: url.into(),
            ..ConnectorOptions::default()
        }
    }

    /// Appends one custom parameter (builder style).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// let opts = ConnectorOptions::new("ws://h/").param("id", "u1").param("room", "a b");
    /// assert_eq!(opts.custom_params, [("id".to_owned(), "u1".to_owned()), ("room".to_owned(), "a b".to_owned())]);
    /// assert_eq!(opts.connection_url(), "ws://h/?id=u1&room=a+b");
    /// ```
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.custom_params.push((key.into(), value.into()));
        self
    }

    /// Turns missed-message recovery on or off (builder style; default off).
    ///
    /// On, the connector opts in with `cwRecovery=1` in its URL (after the
    /// custom parameters), keeps the last position it received in every room
    /// of a namespace with history, and resumes from those positions on every
    /// later connection (`cwResume=`): the node then sends what was missed,
    /// marked as recovered ([`Meta`](crate::Meta)), before anything new, and
    /// reports per room how it went ([`Connector::on_recovery`](crate::Connector::on_recovery)).
    /// Needs a crosswire node whose namespace keeps a history; an original
    /// server ignores the parameter and nothing is ever recovered.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// let opts = ConnectorOptions::new("ws://h/").param("id", "u1").recovery(true);
    /// assert!(opts.recovery);
    /// assert_eq!(opts.connection_url(), "ws://h/?id=u1&cwRecovery=1");
    /// assert_eq!(opts.recovery(false).connection_url(), "ws://h/?id=u1");
    /// ```
    pub fn recovery(mut self, on: bool) -> Self {
        self.recovery = on;
        self
    }

    /// Turns room presence on or off (builder style; default off).
    ///
    /// On, the connector opts in with `cwPresence=1` in its URL: for each
    /// room of a namespace with presence that the node puts the connection
    /// in, it receives the room's members over the cluster and then every
    /// join and leave, keeps them ([`Connector::presence_members`](crate::Connector::presence_members))
    /// and reports them ([`Connector::on_presence`](crate::Connector::on_presence)).
    /// An original server ignores the parameter.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// let opts = ConnectorOptions::new("ws://h/").param("id", "u1").presence(true);
    /// assert_eq!(opts.connection_url(), "ws://h/?id=u1&cwPresence=1");
    /// ```
    pub fn presence(mut self, on: bool) -> Self {
        self.presence = on;
        self
    }

    /// Checks the options: the URL must be non-empty and every duration but
    /// the reconnection cap greater than zero (the original turns an
    /// explicit `undefined` into a 1 ms timer loop instead, defect 32).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::{ConnectorError, ConnectorOptions};
    /// use std::time::Duration;
    /// assert_eq!(ConnectorOptions::new("ws://h").validate(), Ok(()));
    /// assert_eq!(ConnectorOptions::default().validate(), Err(ConnectorError::MissingUrl));
    /// let opts = ConnectorOptions { callback_timeout: Duration::ZERO, ..ConnectorOptions::new("ws://h") };
    /// assert_eq!(opts.validate(), Err(ConnectorError::ZeroDuration("callback_timeout")));
    /// ```
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.url.is_empty() {
            return Err(ConnectorError::MissingUrl);
        }
        let positive = [
            ("ping_interval", self.ping_interval),
            ("pong_timeout", self.pong_timeout),
            ("fast_reconnect_interval", self.fast_reconnect_interval),
            ("callback_timeout", self.callback_timeout),
            ("pending_timeout", self.pending_timeout),
            ("close_timeout", self.close_timeout),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(ConnectorError::ZeroDuration(name));
            }
        }
        Ok(())
    }

    /// The URL the connector connects to: [`url`](Self::url) with the
    /// custom parameters appended as the original does (`&` if the URL
    /// already has a `?`, else `?`; form-urlencoded), then `cwRecovery=1`
    /// when [`recovery`](field@Self::recovery) is on.
    ///
    /// A `#fragment` is removed first: the original appends the query after
    /// it, where it never reaches the server (defect 32), and RFC 6455
    /// forbids fragments in WebSocket URLs anyway. The result is then
    /// normalised by the WHATWG URL parser, as the WebSocket constructor does
    /// (`ws://h:9000?id=1` becomes `ws://h:9000/?id=1`); a URL that does not
    /// parse is kept as it is, and its connection attempts fail (and retry).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// let o = ConnectorOptions::new("ws://h/chat?pre=1#top")
    ///     .param("id", "u1")
    ///     .param("q", "a&b=c/d?é+*~");
    /// assert_eq!(o.connection_url(), "ws://h/chat?pre=1&id=u1&q=a%26b%3Dc%2Fd%3F%C3%A9%2B*%7E");
    /// ```
    pub fn connection_url(&self) -> String {
        let base = self
            .url
            .split_once('#')
            .map_or(self.url.as_str(), |(base, _)| base);
        let mut pairs: Vec<(&str, &str)> = self
            .custom_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if self.presence {
            pairs.push((crosswire_protocol::presence::PRESENCE_PARAM, "1"));
        }
        if self.recovery {
            pairs.push((RECOVERY_PARAM, "1"));
        }
        let url = append_custom_params(base, &pairs);
        match url::Url::parse(&url) {
            Ok(parsed) => parsed.into(),
            Err(_) => url,
        }
    }

    /// The delay before reconnection attempt `attempt` (1-based), given the
    /// jitter draw `u` in [0, 1) (`docs/concepts.md`, "Reconnection"; `r` = attempt,
    /// `T` = threshold, `I` = fast interval, `M` = cap):
    ///
    /// * `r ≤ T` ⇒ `I`;
    /// * else `floor(max(min(2^(r−T)·I + u·I, M), I))` milliseconds.
    ///
    /// The connector draws `u` at random when [`jitter`](Self::jitter) is on
    /// and uses 0 otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::ConnectorOptions;
    /// use std::time::Duration;
    /// let o = ConnectorOptions::default();
    /// let ms = |r, u| o.reconnect_delay(r, u).as_millis();
    /// assert_eq!([ms(1, 0.5), ms(3, 0.5), ms(4, 0.0), ms(4, 0.999), ms(9, 0.0)],
    ///            [3000, 3000, 6000, 8997, 120000]);
    /// ```
    pub fn reconnect_delay(&self, attempt: u32, u: f64) -> Duration {
        if attempt <= self.fast_reconnect_threshold {
            return self.fast_reconnect_interval;
        }
        let interval = self.fast_reconnect_interval.as_secs_f64() * 1000.0;
        let max = self.reconnect_max_interval.as_secs_f64() * 1000.0;
        let exp = i32::try_from(attempt - self.fast_reconnect_threshold).unwrap_or(i32::MAX);
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let raw = 2f64.powi(exp.min(2048)) * interval + u * interval;
        let ms = raw.min(max).max(interval).floor();
        Duration::from_millis(ms as u64)
    }
}

/// Per-call options of [`Connector::emit_with_options`](crate::Connector::emit_with_options)
/// and [`Connector::emit_then`](crate::Connector::emit_then).
///
/// # Examples
///
/// ```
/// use crosswire_client::EmitOptions;
/// use std::time::Duration;
/// let opts = EmitOptions::new()
///     .timeout(Duration::from_secs(2))
///     .pending_timeout(Duration::from_millis(300))
///     .on_pending(|| println!("still waiting..."));
/// # let _ = opts;
/// ```
#[derive(Default)]
pub struct EmitOptions {
    /// Reply timeout; `None` (or zero) uses the connector's
    /// [`callback_timeout`](ConnectorOptions::callback_timeout).
    pub timeout: Option<Duration>,
    /// Delay before `on_pending`; `None` (or zero) uses the connector's
    /// [`pending_timeout`](ConnectorOptions::pending_timeout).
    pub pending_timeout: Option<Duration>,
    /// Called once, on the connector's task, when no reply arrived within the
    /// pending timeout — only if the pending timeout is shorter than the
    /// reply timeout, as in the original.
    pub on_pending: Option<Box<dyn FnOnce() + Send + 'static>>,
}

impl EmitOptions {
    /// No options: the connector's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EmitOptions;
    /// let opts = EmitOptions::new();
    /// assert!(opts.timeout.is_none() && opts.pending_timeout.is_none() && opts.on_pending.is_none());
    /// ```
    pub fn new() -> Self {
        EmitOptions::default()
    }

    /// Sets the reply timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EmitOptions;
    /// use std::time::Duration;
    /// assert_eq!(EmitOptions::new().timeout(Duration::from_secs(2)).timeout, Some(Duration::from_secs(2)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the delay before `on_pending`.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EmitOptions;
    /// use std::time::Duration;
    /// let opts = EmitOptions::new().pending_timeout(Duration::from_millis(300));
    /// assert_eq!(opts.pending_timeout, Some(Duration::from_millis(300)));
    /// ```
    pub fn pending_timeout(mut self, pending_timeout: Duration) -> Self {
        self.pending_timeout = Some(pending_timeout);
        self
    }

    /// Sets the hook called once when the reply is late.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_client::EmitOptions;
    /// let opts = EmitOptions::new().on_pending(|| println!("still waiting..."));
    /// assert!(opts.on_pending.is_some());
    /// ```
    pub fn on_pending(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_pending = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for EmitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmitOptions")
            .field("timeout", &self.timeout)
            .field("pending_timeout", &self.pending_timeout)
            .field("on_pending", &self.on_pending.is_some())
            .finish()
    }
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn default_schedule_matches_the_original() {
        // The original's default schedule (`docs/concepts.md`, "Reconnection").
        let o = ConnectorOptions::default();
        let ranges: [(u32, u128, u128); 9] = [
            (1, 3000, 3000),
            (2, 3000, 3000),
            (3, 3000, 3000),
            (4, 6000, 8999),
            (5, 12000, 14999),
            (6, 24000, 26999),
            (7, 48000, 50999),
            (8, 96000, 98999),
            (9, 120000, 120000),
        ];
        for (r, lo, hi) in ranges {
            for u in [0.0, 0.25, 0.5, 0.999_999] {
                let d = ms(o.reconnect_delay(r, u));
                assert!((lo..=hi).contains(&d), "attempt {r}, u {u}: {d}");
            }
        }
        assert_eq!(ms(o.reconnect_delay(40, 0.5)), 120000);
        assert_eq!(ms(o.reconnect_delay(u32::MAX, 0.5)), 120000);
    }

    #[test]
    fn small_value_schedule_matches_the_capture() {
        // threshold 2, interval 20, max 200: captured 20, 20, 48, 81, 172, 200, 200.
        let o = ConnectorOptions {
            fast_reconnect_threshold: 2,
            fast_reconnect_interval: Duration::from_millis(20),
            reconnect_max_interval: Duration::from_millis(200),
            ..ConnectorOptions::default()
        };
        let captured = [20u128, 20, 48, 81, 172, 200, 200];
        for (i, want) in captured.into_iter().enumerate() {
            let r = i as u32 + 1;
            let lo = ms(o.reconnect_delay(r, 0.0));
            let hi = ms(o.reconnect_delay(r, 0.999_999));
            assert!(
                lo <= want && want <= hi,
                "attempt {r}: {want} not in {lo}..={hi}"
            );
        }
        let deterministic: Vec<u128> = (1..=7).map(|r| ms(o.reconnect_delay(r, 0.0))).collect();
        assert_eq!(deterministic, [20, 20, 40, 80, 160, 200, 200]);
    }

    #[test]
    fn cap_below_interval_gives_the_interval() {
        let o = ConnectorOptions {
            fast_reconnect_threshold: 0,
            fast_reconnect_interval: Duration::from_millis(100),
            reconnect_max_interval: Duration::from_millis(10),
            ..ConnectorOptions::default()
        };
        assert_eq!(ms(o.reconnect_delay(1, 0.5)), 100);
        assert_eq!(ms(o.reconnect_delay(0, 0.5)), 100);
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let o = ConnectorOptions::new("ws://h/").param("id", "u1");
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains(r#""ping_interval_ms":10000"#), "{json}");
        assert!(json.contains(r#""custom_params":[["id","u1"]]"#), "{json}");
        let back: ConnectorOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o);
        let partial: ConnectorOptions = serde_json::from_str(r#"{"url":"ws://x/"}"#).unwrap();
        assert_eq!(partial, ConnectorOptions::new("ws://x/"));
    }

    #[test]
    fn validation() {
        assert_eq!(
            ConnectorOptions::default().validate(),
            Err(ConnectorError::MissingUrl)
        );
        let o = ConnectorOptions {
            ping_interval: Duration::ZERO,
            ..ConnectorOptions::new("ws://h/")
        };
        assert_eq!(
            o.validate(),
            Err(ConnectorError::ZeroDuration("ping_interval"))
        );
        assert!(ConnectorOptions::new("ws://h/").validate().is_ok());
    }

    #[test]
    fn connection_url_rules() {
        let o = ConnectorOptions::new("ws://h/");
        assert_eq!(o.connection_url(), "ws://h/");
        let o = ConnectorOptions::new("ws://h/#f").param("a", "1");
        assert_eq!(o.connection_url(), "ws://h/?a=1");
        let o = ConnectorOptions::new("ws://h/p?x=1")
            .param("name", "Sam Smith")
            .param("n", "42");
        assert_eq!(o.connection_url(), "ws://h/p?x=1&name=Sam+Smith&n=42");
        // Normalised as the WebSocket constructor does.
        let o = ConnectorOptions::new("ws://H:80?a=1").param("b", "2");
        assert_eq!(o.connection_url(), "ws://h/?a=1&b=2");
        let o = ConnectorOptions::new("wss://h:9000").param("id", "é");
        assert_eq!(o.connection_url(), "wss://h:9000/?id=%C3%A9");
        // Not a URL: kept, so that the attempts fail and retry.
        let o = ConnectorOptions::new("ws://h:notaport/").param("a", "1");
        assert_eq!(o.connection_url(), "ws://h:notaport/?a=1");
    }
}
