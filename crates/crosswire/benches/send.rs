//! Hot paths of sending:
//! (a) encode one push frame and enqueue it for 10,000 local sockets;
//! (b) the writer path: drain a queue of N frames into a real socket and flush.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crosswire::bench_support::{detached_socket, drain};
use crosswire::{Node, RoomSend};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const RECIPIENTS: usize = 10_000;

fn fanout(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let node = rt.block_on(async { Node::builder().build().unwrap() });
    let mut receivers = Vec::with_capacity(RECIPIENTS);
    for i in 0..RECIPIENTS {
        let id = format!("u{i}");
        let socket = rt.block_on(async { detached_socket(&node, &id) });
        node.join_room("bench", "r1", &id).unwrap();
        receivers.push(socket);
    }
    let mut buf = std::collections::VecDeque::new();
    let payload = json!({"s": 1, "q": 123456, "t": 1700000000000000u64, "text": "hello room"});
    let mut drain_all = |receivers: &mut Vec<crosswire::Socket>| {
        for s in receivers.iter() {
            drain(s, &mut buf);
        }
    };

    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    g.bench_function("broadcast_to_room", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                node.broadcast_to_room(
                    "bench",
                    "r1",
                    "room",
                    &payload,
                    RoomSend::new().local_only(),
                )
                .unwrap();
                total += start.elapsed();
                drain_all(&mut receivers);
            }
            total
        })
    });
    g.bench_function("broadcast_all", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                node.broadcast_local("all", &payload).unwrap();
                total += start.elapsed();
                drain_all(&mut receivers);
            }
            total
        })
    });
    g.finish();
}

fn writer(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (node, addr) = rt.block_on(async {
        let node = Node::builder().outbound_queue(4096).build().unwrap();
        let n = node.clone();
        node.on_connection(move |socket, hs| {
            let n = n.clone();
            async move {
                if let Some(id) = hs.param("id") {
                    n.set_user_socket(id, &socket).unwrap();
                }
            }
        });
        let addr = node.listen("127.0.0.1:0").await.unwrap();
        (node, addr)
    });
    let (count_tx, mut count_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    rt.block_on(async {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?id=w"))
            .await
            .unwrap();
        tokio::spawn(async move {
            let (_sink, mut stream) = ws.split();
            let mut n = 0usize;
            while let Some(Ok(msg)) = stream.next().await {
                if msg.is_text() {
                    n += 1;
                    let _ = count_tx.send(n);
                }
            }
        });
        while node.get_socket("w").is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let socket = node.get_socket("w").unwrap();
    let frame = crosswire::protocol::client::PushFrame::encode(
        "to",
        Some(&json!({"s": 1, "q": 2, "t": 1700000000000000u64})),
    )
    .unwrap();
    let mut received = 0usize;

    let mut g = c.benchmark_group("writer");
    for n in [1usize, 16, 256, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("queue_to_socket", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..n {
                            socket.send_frame(&frame).unwrap();
                        }
                        received += n;
                        while let Some(seen) = count_rx.recv().await {
                            if seen >= received {
                                break;
                            }
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = fanout, writer
}
criterion_main!(benches);
