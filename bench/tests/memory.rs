//! Memory of a node serving a client that sends echo requests and reads
//! nothing: the node must hold at most its outbound byte bound for that
//! socket, close it with 4003, and give the memory back afterwards.
//!
//! The server runs in its own process (`bench-server`) so that its resident
//! set can be read from `/proc/PID/status`. The figures are printed (run with
//! `--nocapture` to see them). `RSS_QUEUE_BYTES` and `RSS_FRAMES` change the
//! byte bound and the number of requests, to measure other settings; the
//! asserts hold for the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_bench::loadgen::ws::connect;
use std::time::Duration;
use support::{Server, WAIT};

const MIB: u64 = 1024 * 1024;
/// Payload of each echo request: just under the node's 1 MiB frame limit
/// with the envelope, so each echo is a frame of about 1 MB.
const PAYLOAD: usize = 1_000_000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn spawn_server(queue_bytes: u64) -> Server {
    Server::start(&["--outbound-queue-bytes", &queue_bytes.to_string()]).await
}

/// One sample of the node's Prometheus metric `name` (first series).
async fn metric(server: &Server, name: &str) -> u64 {
    server.metric(name).await as u64
}

fn rss(server: &Server) -> u64 {
    server.rss_kib() * 1024
}

#[tokio::test]
async fn a_client_that_does_not_read_costs_the_byte_bound_and_is_given_back() {
    let queue_bytes = env_or("RSS_QUEUE_BYTES", 4 * MIB);
    let frames = env_or("RSS_FRAMES", 64);
    let server = spawn_server(queue_bytes).await;
    let closes = r#"crosswire_socket_closes_total{node="n1",reason="slow_consumer"}"#;
    let connections = r#"crosswire_connections{node="n1"}"#;

    let mut conn = connect(server.addr, None, "/?id=slow", 4096, WAIT)
        .await
        .unwrap();
    // A small echo first: every part of the path has run once.
    conn.outbox()
        .text(br#"{"event":"echo","payload":"warm","callbackId":"w"}"#);
    conn.flush().await.unwrap();
    let reply = conn.recv_one(WAIT).await.unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("warm"));
    let baseline = rss(&server);

    // Echo requests the client never reads the answers of. The sender
    // blocks once the node stops reading and ends when it drops the
    // connection.
    let sender = tokio::spawn(async move {
        let frame = format!(
            r#"{{"event":"echo","payload":"{}","callbackId":"c"}}"#,
            "x".repeat(PAYLOAD)
        );
        for _ in 0..frames {
            conn.outbox().text(frame.as_bytes());
            if conn.flush().await.is_err() {
                break;
            }
        }
    });
    let mut peak = baseline;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        peak = peak.max(rss(&server));
        if metric(&server, closes).await == 1 && metric(&server, connections).await == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow consumer was not closed in time"
        );
        // The sampling period of the peak.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = rss(&server);
    tokio::time::timeout(WAIT, sender).await.unwrap().unwrap();
    let mib = |b: u64| b as f64 / MIB as f64;
    eprintln!(
        "queue bound {:.1} MiB, {frames} requests of {PAYLOAD} bytes: RSS baseline {:.1} MiB, \
         peak {:.1} MiB (+{:.1}), after the close {:.1} MiB (+{:.1})",
        mib(queue_bytes),
        mib(baseline),
        mib(peak),
        mib(peak.saturating_sub(baseline)),
        mib(after),
        mib(after.saturating_sub(baseline)),
    );
    // Beyond the queue: the frame being read, its decoded payload and
    // encoded reply, the frame the WebSocket is writing, allocator slack.
    let slack = 16 * MIB;
    assert!(
        peak <= baseline + queue_bytes + slack,
        "peak {peak} over baseline {baseline} + bound {queue_bytes} + {slack}"
    );
    assert!(
        after <= baseline + 8 * MIB,
        "after the close {after}, baseline {baseline}"
    );
}
