//! The server's Prometheus metrics, read before and after a soak run.

use crate::loadgen::scenarios::Env;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Splits `http://HOST:PORT/PATH` (loopback only) into address and path.
pub fn parse_http_url(s: &str) -> Result<(SocketAddr, String), String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s}: only http:// metrics URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/metrics".to_string()),
    };
    let addr = crate::loadgen::client::parse_url(&format!("ws://{hostport}"))
        .map_err(|e| format!("--metrics: {e}"))?;
    Ok((addr, path))
}

/// Fetches the server's metrics text (HTTP/1.1, one request).
pub async fn fetch_metrics(url: &str) -> Result<String, String> {
    let (addr, path) = parse_http_url(url)?;
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .map_err(|_| format!("{url}: no answer within 5 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}

/// The sum of the series of metric `name` whose labels include every
/// `key="value"` of `labels` (`None` when there is no such series).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series_labels, value) = match rest.as_bytes().first() {
            Some(b'{') => match rest.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            Some(b' ') => ("", &rest[1..]),
            _ => continue,
        };
        if !labels
            .iter()
            .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        if let Ok(v) = value.trim().parse::<f64>() {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// The figures `slow` and `storm` read from the server's metrics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerFigures {
    pub(crate) connections: f64,
    pub(crate) bound_ids: f64,
    pub(crate) accepted: f64,
    pub(crate) slow_closes: f64,
    pub(crate) liveness_closes: f64,
}

impl ServerFigures {
    /// The figures in a metrics text (0 for a missing series).
    pub(crate) fn read(text: &str) -> ServerFigures {
        let get = |name: &str, labels: &[(&str, &str)]| metric(text, name, labels).unwrap_or(0.0);
        ServerFigures {
            connections: get("crosswire_connections", &[]),
            bound_ids: get("crosswire_bound_socket_ids", &[]),
            accepted: get("crosswire_connections_accepted_total", &[]),
            slow_closes: get(
                "crosswire_socket_closes_total",
                &[("reason", "slow_consumer")],
            ),
            liveness_closes: get("crosswire_socket_closes_total", &[("reason", "liveness")]),
        }
    }
}

/// Reads the server's figures when `--metrics` is given; a failure to read
/// them becomes a note.
pub(crate) async fn figures(env: &Env, notes: &mut Vec<String>) -> Option<ServerFigures> {
    let url = env.common.metrics.as_deref()?;
    match fetch_metrics(url).await {
        Ok(t) => Some(ServerFigures::read(&t)),
        Err(e) => {
            notes.push(format!("metrics not read: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines() {
        let t = "# TYPE crosswire_connections gauge\n\
                 crosswire_connections{node=\"n1\"} 12\n\
                 crosswire_connections_accepted_total{node=\"n1\"} 40\n\
                 crosswire_socket_closes_total{node=\"n1\",reason=\"slow_consumer\"} 3\n\
                 crosswire_socket_closes_total{node=\"n1\",reason=\"liveness\"} 1\n";
        assert_eq!(metric(t, "crosswire_connections", &[]), Some(12.0));
        assert_eq!(
            metric(t, "crosswire_connections_accepted_total", &[]),
            Some(40.0)
        );
        assert_eq!(
            metric(
                t,
                "crosswire_socket_closes_total",
                &[("reason", "slow_consumer")]
            ),
            Some(3.0)
        );
        assert_eq!(metric(t, "crosswire_socket_closes_total", &[]), Some(4.0));
        assert_eq!(metric(t, "crosswire_missing", &[]), None);
    }

    #[test]
    fn metrics_urls_loopback_only() {
        let (a, p) =
            parse_http_url("http://127.0.0.1:9100/metrics").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.port(), 9100);
        assert_eq!(p, "/metrics");
        assert!(parse_http_url("http://10.0.0.1:9100/metrics").is_err());
        assert!(parse_http_url("https://127.0.0.1:9100/metrics").is_err());
    }
}
