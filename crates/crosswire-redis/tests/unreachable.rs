//! A bus whose Redis cannot be reached says so: a warning at once and again
//! while it lasts (no more often than `warn_interval`), the cause in the
//! node status, an unhealthy bus in the node's `/health` (503); and all of it
//! clears once a real `redis-server` starts on that port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::bus::Bus;
use crosswire_redis::{RedisBus, Strategy};
use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

const LONG: Duration = Duration::from_secs(10);

/// Every event at info level or above, from every thread: (level, fields).
static EVENTS: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

/// A tracing subscriber that records events into [`EVENTS`].
struct Capture;

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                text.push_str(&format!("{}={value:?} ", field.name()));
            },
        );
        EVENTS
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// Captured events of `level` that mention all of `words`.
fn events(level: Level, words: &[&str]) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, text)| *l == level && words.iter().all(|w| text.contains(w)))
        .map(|(_, text)| text.clone())
        .collect()
}

/// A plain HTTP/1.1 GET: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let code = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (code, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_reported_until_it_is_up() {
    capture();
    let interval = Duration::from_millis(300);
    let mut server = RedisServer::reserve(); // a free port: nothing listens yet
    let addr = format!("127.0.0.1:{}", server.port);
    let mut config = config(&[&server], Strategy::Random);
    config.warn_interval = interval;
    let start = Instant::now();
    let bus = within(LONG, RedisBus::connect(config)).await.unwrap();

    // At once, before `connect` returned: a warning naming the node and the
    // cause, and the cause in the node's status.
    let first = events(Level::WARN, &[&addr, "redis unreachable"]);
    assert!(!first.is_empty(), "no warning at start");
    assert!(first[0].contains("refused"), "{first:?}");
    let status = &bus.nodes()[0];
    assert!(!status.publish_target);
    let error = status.error.clone().unwrap_or_default();
    assert!(error.contains("refused"), "{error:?}");

    // The bus's health, and the node's health route over HTTP: unavailable.
    let health = bus.health();
    assert!(!health.healthy);
    assert_eq!(health.nodes.len(), 1);
    assert!(!health.nodes[0].healthy);
    let node = crosswire::Node::builder()
        .server_name("n1")
        .bus(bus.clone())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let app = node.router().route("/health", node.health_route());
    tokio::spawn({
        let node = node.clone();
        async move { node.serve(listener, app).await }
    });
    let (code, body) = get(http, "/health").await;
    assert_eq!(code, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "unavailable", "{body}");
    assert_eq!(report["bus"]["healthy"], false, "{body}");
    assert_eq!(report["bus"]["nodes"][0]["name"], server.url(), "{body}");
    assert_eq!(report["bus"]["nodes"][0]["healthy"], false, "{body}");
    // The cause, not only the verdict.
    assert!(
        report["bus"]["nodes"][0]["error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("refused")),
        "{body}"
    );

    // Again while it lasts, but no more often than the interval (each of the
    // node's two connections retries several times per interval).
    eventually(LONG, "a third warning", || {
        events(Level::WARN, &[&addr, "redis unreachable"]).len() >= 3
    })
    .await;
    let warned = events(Level::WARN, &[&addr, "unreachable"]).len();
    let allowed = start.elapsed().as_millis() / interval.as_millis() + 1;
    assert!(
        warned as u128 <= allowed,
        "{warned} warnings in {:?}",
        start.elapsed()
    );

    // Redis starts on that port: the node is used, its trouble forgotten
    // (said at info level), and the health route answers 200 again.
    server.restart();
    within(LONG, bus.wait_for_publish_targets(1)).await.unwrap();
    eventually(LONG, "the error cleared", || bus.nodes()[0].error.is_none()).await;
    assert!(!events(Level::INFO, &[&addr, "usable again"]).is_empty());
    assert!(bus.health().healthy);
    let (code, body) = get(http, "/health").await;
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "ok", "{body}");
    assert_eq!(report["bus"]["nodes"][0]["healthy"], true, "{body}");
    assert!(report["bus"]["nodes"][0].get("error").is_none(), "{body}");

    publish(&bus, "c", "through the node").await;

    node.shutdown(Duration::from_secs(1)).await;
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_url_is_named_with_its_cause() {
    capture();
    // A host name that cannot resolve (the .invalid top-level domain is
    // reserved for that).
    let url = "redis://no-such-host.invalid:6379";
    let mut config = config(&[], Strategy::Random);
    config.nodes = vec![url.to_owned()];
    let bus = within(LONG, RedisBus::connect(config)).await.unwrap();
    let warned = events(
        Level::WARN,
        &["no-such-host.invalid:6379", "redis unreachable"],
    );
    assert!(!warned.is_empty(), "no warning at start");
    let error = bus.nodes()[0].error.clone();
    assert!(error.is_some(), "no error in the status");
    assert!(!bus.health().healthy);
    bus.close().await;
}
